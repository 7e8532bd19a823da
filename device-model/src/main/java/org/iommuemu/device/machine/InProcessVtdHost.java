package org.iommuemu.device.machine;

import java.util.Objects;
import java.util.function.Consumer;
import org.iommuemu.core.driver.vtd.VtdHost;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;

/**
 * The VT-d driver's host interface in the same process as the device: MMIO goes straight to the {@link IommuDevice}'s
 * register window, memory is the machine's RAM, pages come from the given allocator, and the unit's MSIs are taken
 * from the machine's {@link InterruptHub}.
 *
 * <p><b>Interrupt delivery</b> is {@link InProcessSmmuHost}'s: interrupts of this unit are queued and delivered to the
 * handler after the MMIO access that caused them has returned (never from inside the device), one delivery loop at a
 * time; interrupts raised by DMA on another thread wait for the next MMIO access or for
 * {@link #deliverPendingInterrupts()}, which the machine calls after a DMA fault ({@link PendingInterrupts}). A handler that throws is logged; the MMIO access still succeeds.
 *
 * <p>Only MSIs that reached the interrupt controller (the doorbell window) are interrupts: one the unit wrote to RAM
 * is a memory write, and one that aborted reached nobody. Sources are told apart by name: "fault-event",
 * "inv-completion" ({@link VtdHost.Irq#fromSource}).
 */
public final class InProcessVtdHost implements VtdHost, AutoCloseable {
    private final IommuDevice device;
    private final PhysicalMemory memory;
    private final PageAllocator allocator;
    private final PendingInterrupts<Irq> pending;

    /**
     * @param device    the VT-d unit (its MMIO window)
     * @param memory    the machine's physical memory
     * @param allocator where the driver's tables and queue come from
     * @param hub       the machine's interrupt controller, which the device raises its MSIs on
     */
    public InProcessVtdHost(IommuDevice device, PhysicalMemory memory, PageAllocator allocator, InterruptHub hub) {
        this.device = Objects.requireNonNull(device, "device");
        this.memory = Objects.requireNonNull(memory, "memory");
        this.allocator = Objects.requireNonNull(allocator, "allocator");
        // an MSI the unit wrote to RAM is a memory write, not an interrupt
        this.pending = new PendingInterrupts<>(device.name(), hub,
                (source, landedInRam) -> landedInRam ? null : Irq.fromSource(source));
    }

    /** A host for VT-d unit {@code iommu} of {@code machine}. */
    public static InProcessVtdHost of(Machine machine, String iommu, PageAllocator allocator) {
        IommuDevice d = machine.iommu(iommu);
        if (d == null) {
            throw new IllegalArgumentException("no IOMMU instance named '" + iommu + "' (have " + machine.iommuNames() + ")");
        }
        if (d.type() != IommuType.VTD) {
            throw new IllegalArgumentException("IOMMU instance '" + iommu + "' is " + d.type() + ", not VT-d");
        }
        return new InProcessVtdHost(d, machine.memory(), allocator, machine.interrupts());
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
     * Delivers the pending interrupts to the handler, in order, unless a delivery loop is already running (it will
     * deliver them). Without a handler they are dropped, as a masked line would be.
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
