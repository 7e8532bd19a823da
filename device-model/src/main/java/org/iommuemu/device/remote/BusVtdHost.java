package org.iommuemu.device.remote;

import io.grpc.Channel;
import java.time.Duration;
import org.iommuemu.core.driver.vtd.VtdHost;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.proto.v1.Interrupt;
import org.iommuemu.proto.v1.IommuKind;

/**
 * The VT-d driver's host interface on the far side of the bus ({@link BusIommuHost}): MMIO, memory and interrupts
 * over the {@code Machine} service, pages from the allocator the caller gives. VT-d signals only with MSIs (the
 * fault event, the invalidation completion event, {@link VtdHost.Irq#fromSource}); one the unit wrote into RAM is a
 * memory write, not an interrupt, as on the in-process host.
 */
public final class BusVtdHost extends BusIommuHost<VtdHost.Irq> implements VtdHost {
    /** As {@link #BusVtdHost(Channel, String, BusPhysicalMemory, PageAllocator, Duration)} with the default deadline. */
    public BusVtdHost(Channel channel, String iommu, BusPhysicalMemory memory, PageAllocator allocator) {
        this(channel, iommu, memory, allocator, BusPhysicalMemory.DEFAULT_DEADLINE);
    }

    /**
     * Checks that the machine has the VT-d unit and subscribes to its interrupts.
     *
     * @throws IllegalArgumentException when the machine has no such instance or it is not VT-d
     * @throws BusUnavailableException when the bus fails or the server does not confirm the subscription in time
     */
    public BusVtdHost(Channel channel, String iommu, BusPhysicalMemory memory, PageAllocator allocator,
            Duration deadline) {
        super(channel, iommu, IommuKind.VTD, memory, allocator, deadline);
    }

    @Override
    protected Irq classify(Interrupt message) {
        return landedInRam(message) ? null : Irq.fromSource(message.getSource());
    }
}
