package org.iommuemu.device.machine;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongSupplier;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.device.inject.FaultInjector;
import org.iommuemu.device.sanitize.Sanitizer;
import org.iommuemu.device.smmuv3.SmmuV3Device;
import org.iommuemu.device.trace.Tracer;
import org.iommuemu.device.vtd.VtdDevice;

/**
 * The emulated machine: guest RAM, the IOMMU instances, stream routing and interrupt delivery.
 *
 * <p>The CPU's view (MMIO to the IOMMUs, physical memory) and the devices' view (DMA through an IOMMU)
 * both end here; the bus server and in-process drivers are two ways in.
 */
public final class Machine {
    private final MachineConfig config;
    private final SparseRam memory;
    private final InterruptHub interrupts;
    private final Map<String, IommuDevice> iommus;
    private final DmaEngine dma;
    private final StreamClaims claims = new StreamClaims();
    private final DriverHost driverHost;
    private final FaultInjector faults;
    private final Sanitizer sanitizer;
    private final Tracer tracer;

    /**
     * Builds the machine {@code config} describes.
     *
     * @throws IllegalArgumentException when its RAM exceeds the configured max RAM ({@link MachineConfig#checkRam})
     */
    public Machine(MachineConfig config) {
        this.config = config.checkRam();
        this.memory = new SparseRam(config.ram());
        this.interrupts = new InterruptHub(memory);
        this.faults = new FaultInjector(memory);
        Map<String, IommuDevice> devices = new LinkedHashMap<>();
        for (IommuSpec spec : config.iommus()) {
            devices.put(spec.name(), create(spec));
        }
        this.iommus = Collections.unmodifiableMap(devices);
        this.dma = new DmaEngine(memory);
        List<IommuDevice> all = List.copyOf(devices.values());
        LongSupplier[] clocks = new LongSupplier[all.size()];
        for (int i = 0; i < clocks.length; i++) {
            clocks[i] = all.get(i)::simTimeNs;
        }
        this.tracer = new Tracer(List.copyOf(devices.keySet()), clocks, all.toArray());
        for (int i = 0; i < clocks.length; i++) {
            all.get(i).tracer(tracer, i);
        }
        this.dma.tracer(tracer);
        this.faults.tracer(tracer);
        this.driverHost = new DriverHost(this);
        this.dma.afterFault(driverHost::deliverPendingInterrupts);
        this.sanitizer = new Sanitizer(dma, List.copyOf(iommus.keySet()));
        driverHost.streamListener(sanitizer);
        driverHost.heapListener(sanitizer);
    }

    private IommuDevice create(IommuSpec spec) {
        return switch (spec.type()) {
            case SMMUV3 -> new SmmuV3Device(spec.name(), spec.smmuv3OrDefaults(), memory, interrupts, faults);
            case VTD -> new VtdDevice(spec.name(), spec.vtdOrDefaults(), memory, interrupts, faults);
        };
    }

    public MachineConfig config() {
        return config;
    }

    public Limits limits() {
        return config.limits();
    }

    /** Guest physical memory. */
    public PhysicalMemory memory() {
        return memory;
    }

    /** The sparse RAM behind {@link #memory()}, for accounting. */
    public SparseRam ram() {
        return memory;
    }

    public InterruptHub interrupts() {
        return interrupts;
    }

    /** The IOMMU instances in configuration order. */
    public List<IommuDevice> iommus() {
        return new ArrayList<>(iommus.values());
    }

    /** The instance named {@code name}, or null. */
    public IommuDevice iommu(String name) {
        return iommus.get(name);
    }

    /** Instance names, in configuration order, for messages. */
    public List<String> iommuNames() {
        return List.copyOf(iommus.keySet());
    }

    public DmaEngine dma() {
        return dma;
    }

    public StreamClaims claims() {
        return claims;
    }

    /** The machine's fault injector: every IOMMU instance's injection points answer to it. */
    public FaultInjector faults() {
        return faults;
    }

    /** The stale-DMA sanitizer (off until {@link Sanitizer#enable}d). */
    public Sanitizer sanitizer() {
        return sanitizer;
    }

    /** The trace recorder: off until a {@code Telemetry.Trace} stream opens a reader. */
    public Tracer tracer() {
        return tracer;
    }

    /** The in-process IOMMU driver: its heap and the instances it has taken over. */
    public DriverHost driverHost() {
        return driverHost;
    }

    /**
     * Returns every IOMMU to its power-on state (RAM keeps its contents).
     *
     * @throws IllegalStateException when the machine's driver has taken an instance over: a reset would pull the
     *     hardware from under its queues and tables, and the driver has no way to notice
     */
    public void resetDevices() {
        for (IommuDevice d : iommus.values()) {
            if (driverHost.owns(d.name())) {
                throw new IllegalStateException(d.name() + " is driven by the machine's driver; it cannot be reset");
            }
        }
        for (IommuDevice d : iommus.values()) {
            d.reset();
        }
    }
}
