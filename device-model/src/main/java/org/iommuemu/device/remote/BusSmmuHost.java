package org.iommuemu.device.remote;

import io.grpc.Channel;
import java.time.Duration;
import org.iommuemu.core.driver.smmuv3.SmmuHost;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.proto.v1.Interrupt;
import org.iommuemu.proto.v1.IommuKind;
import org.iommuemu.proto.v1.MachineGrpc;

/**
 * The SMMUv3 driver's host interface on the far side of the bus ({@link BusIommuHost}): MMIO, memory and interrupts
 * over the {@code Machine} service, pages from the allocator the caller gives (usually a {@link BuddyPageAllocator}
 * over a range of guest RAM the caller has to itself, {@link #connect}).
 *
 * <p>Interrupts are the SMMU's by source ({@link SmmuHost.Irq#fromSource}). A CMD_SYNC whose MSI was written into
 * RAM completed a poll (a memory write the driver watches), not a CPU interrupt, and is not delivered, exactly as on
 * the in-process host: the server writes an MSI into RAM when its address is 4-byte aligned RAM, so that is what
 * {@link #landedInRam} checks.
 */
public final class BusSmmuHost extends BusIommuHost<SmmuHost.Irq> implements SmmuHost {
    /** As {@link #BusSmmuHost(Channel, String, BusPhysicalMemory, PageAllocator, Duration)} with the default deadline. */
    public BusSmmuHost(Channel channel, String iommu, BusPhysicalMemory memory, PageAllocator allocator) {
        this(channel, iommu, memory, allocator, BusPhysicalMemory.DEFAULT_DEADLINE);
    }

    /**
     * Checks that the machine has the SMMUv3 instance and subscribes to its interrupts.
     *
     * @throws IllegalArgumentException when the machine has no such instance or it is not an SMMUv3
     * @throws BusUnavailableException when the bus fails or the server does not confirm the subscription in time
     */
    public BusSmmuHost(Channel channel, String iommu, BusPhysicalMemory memory, PageAllocator allocator,
            Duration deadline) {
        super(channel, iommu, IommuKind.SMMUV3, memory, allocator, deadline);
    }

    /**
     * A host for {@code iommu} whose driver takes its pages from {@code [heapBase, heapBase + heapSize)} of guest
     * RAM, which nothing else on the machine may use (for instance the machine's driver heap, when the
     * {@code Driver} service is not used). Two hosts made this way have two allocators: give the drivers of several
     * instances disjoint ranges, or build one allocator and use the constructor.
     */
    public static BusSmmuHost connect(Channel channel, String iommu, long heapBase, long heapSize) {
        BusPhysicalMemory memory = new BusPhysicalMemory(MachineGrpc.newBlockingStub(channel));
        return new BusSmmuHost(channel, iommu, memory, new BuddyPageAllocator(memory, heapBase, heapSize));
    }

    @Override
    protected Irq classify(Interrupt message) {
        Irq irq = Irq.fromSource(message.getSource());
        return irq == Irq.CMD_SYNC && landedInRam(message) ? null : irq;
    }
}
