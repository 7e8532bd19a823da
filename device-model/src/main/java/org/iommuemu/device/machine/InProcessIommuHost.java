package org.iommuemu.device.machine;

import java.util.Objects;
import java.util.function.Consumer;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;

/**
 * What the in-process driver hosts ({@link InProcessSmmuHost}, {@link InProcessVtdHost}) share: MMIO straight to
 * the {@link IommuDevice}'s register window, the machine's RAM, pages from the given allocator, and the instance's
 * interrupts taken from the machine's {@link InterruptHub} as {@code I} (the driver's interrupt type).
 *
 * <p><b>Interrupt delivery.</b> A device raises interrupts from inside its own register and queue handling, so
 * calling the driver there would re-enter the device. Instead, interrupts of this instance are queued and
 * delivered to the handler after the MMIO access that caused them has returned, as a CPU takes a pending interrupt
 * at its next instruction boundary: each {@link #mmioRead}/{@link #mmioWrite} ends by delivering what is pending,
 * one delivery loop at a time (an MMIO access made by a handler queues what it raises for the running loop).
 * Interrupts raised by DMA on another thread (a translation fault's event) wait for the next MMIO access or for
 * {@link #deliverPendingInterrupts()}, which the machine calls after a DMA fault ({@link PendingInterrupts}). A
 * handler that throws is logged; the MMIO access that delivered the interrupt still succeeds.
 *
 * @param <I> the driver's interrupt type
 */
abstract class InProcessIommuHost<I> implements AutoCloseable {
    private final IommuDevice device;
    private final PhysicalMemory memory;
    private final PageAllocator allocator;
    private final PendingInterrupts<I> pending;

    /**
     * @param device     the instance (its MMIO window)
     * @param memory     the machine's physical memory
     * @param allocator  where the driver's queues and tables come from
     * @param hub        the machine's interrupt controller, which the device raises its interrupts on
     * @param classifier which of the hub's records are this driver's interrupts, and which
     */
    InProcessIommuHost(IommuDevice device, PhysicalMemory memory, PageAllocator allocator, InterruptHub hub,
            PendingInterrupts.Classifier<I> classifier) {
        this.device = Objects.requireNonNull(device, "device");
        this.memory = Objects.requireNonNull(memory, "memory");
        this.allocator = Objects.requireNonNull(allocator, "allocator");
        this.pending = new PendingInterrupts<>(device.name(), hub, classifier);
    }

    /** Instance {@code iommu} of {@code machine}, or a clear error naming the instances there are. */
    static IommuDevice instance(Machine machine, String iommu) {
        IommuDevice d = machine.iommu(iommu);
        if (d == null) {
            throw new IllegalArgumentException("no IOMMU instance named '" + iommu + "' (have "
                    + machine.iommuNames() + ")");
        }
        return d;
    }

    public long mmioRead(long offset, int width) {
        long v = device.mmioRead(offset, width);
        deliverPendingInterrupts();
        return v;
    }

    public void mmioWrite(long offset, int width, long value) {
        device.mmioWrite(offset, width, value);
        deliverPendingInterrupts();
    }

    public PhysicalMemory memory() {
        return memory;
    }

    public PageAllocator allocator() {
        return allocator;
    }

    public void onInterrupt(Consumer<I> handler) {
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
