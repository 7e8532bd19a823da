package org.iommuemu.device.machine;

import java.util.Objects;
import java.util.function.Consumer;
import org.iommuemu.core.driver.smmuv3.SmmuHost;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;

/**
 * The SMMUv3 driver's host interface in the same process as the device: MMIO goes straight to the
 * {@link IommuDevice}'s register window, memory is the machine's RAM, pages come from the given allocator, and the
 * instance's interrupts are taken from the machine's {@link InterruptHub}.
 *
 * <p><b>Interrupt delivery.</b> A device raises interrupts from inside its own register and queue handling, so
 * calling the driver there would re-enter the device. Instead, interrupts of this instance are queued and
 * delivered to the handler after the MMIO access that caused them has returned, as a CPU takes a pending interrupt
 * at its next instruction boundary: each {@link #mmioRead}/{@link #mmioWrite} ends by delivering what is pending,
 * one delivery loop at a time (an MMIO access made by a handler queues what it raises for the running loop).
 * Interrupts raised by DMA on another thread (a translation fault's event) wait for the next MMIO access or for
 * {@link #deliverPendingInterrupts()}, which the machine calls after a DMA fault ({@link PendingInterrupts}).
 *
 * A handler that throws is logged; the MMIO access that delivered the interrupt still succeeds.
 *
 * <p>Wired lines and MSIs are told apart by the device's source name: "eventq", "gerror", "priq", "cmd-sync".
 */
public final class InProcessSmmuHost implements SmmuHost, AutoCloseable {
    private final IommuDevice device;
    private final PhysicalMemory memory;
    private final PageAllocator allocator;
    private final PendingInterrupts<Irq> pending;

    /**
     * @param device    the SMMU instance (its MMIO window)
     * @param memory    the machine's physical memory
     * @param allocator where the driver's queues and tables come from
     * @param hub       the machine's interrupt controller, which the device raises its interrupts on
     */
    public InProcessSmmuHost(IommuDevice device, PhysicalMemory memory, PageAllocator allocator, InterruptHub hub) {
        this.device = Objects.requireNonNull(device, "device");
        this.memory = Objects.requireNonNull(memory, "memory");
        this.allocator = Objects.requireNonNull(allocator, "allocator");
        // a CMD_SYNC whose MSI was written to RAM completed a poll: a memory write, not a CPU interrupt
        this.pending = new PendingInterrupts<>(device.name(), hub, (source, landedInRam) -> {
            Irq irq = Irq.fromSource(source);
            return irq == Irq.CMD_SYNC && landedInRam ? null : irq;
        });
    }

    /** A host for instance {@code iommu} of {@code machine}. */
    public static InProcessSmmuHost of(Machine machine, String iommu, PageAllocator allocator) {
        IommuDevice d = machine.iommu(iommu);
        if (d == null) {
            throw new IllegalArgumentException("no IOMMU instance named '" + iommu + "' (have " + machine.iommuNames() + ")");
        }
        return new InProcessSmmuHost(d, machine.memory(), allocator, machine.interrupts());
    }


    @Override
    public long mmioRead(long offset, int width) {
        long v = device.mmioRead(offset, width);
        deliverPendingInterrupts();
        return v;
    }

    @Override
    public void mmioWrite(long offset, int width, long value) {
        device.mmioWrite(offset, width, value);
        deliverPendingInterrupts();
    }

    @Override
    public PhysicalMemory memory() {
        return memory;
    }

    @Override
    public PageAllocator allocator() {
        return allocator;
    }

    @Override
    public void onInterrupt(Consumer<Irq> handler) {
        pending.handler(handler);
    }

    /** Interrupts raised and not delivered yet. */
    public int pendingInterrupts() {
        return pending.size();
    }

    /**
     * Delivers the pending interrupts to the handler, in order, unless a delivery loop is already running (it
     * will deliver them). Without a handler they are dropped, as a masked line would be.
     */
    public void deliverPendingInterrupts() {
        pending.deliver();
    }

    /** Stops taking interrupts from the hub. */
    @Override
    public void close() {
        pending.close();
    }
}
