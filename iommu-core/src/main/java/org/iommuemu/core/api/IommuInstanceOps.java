package org.iommuemu.core.api;

import org.iommuemu.core.pgtable.IotlbGather;

/**
 * What the driver of one IOMMU instance provides to the {@link IommuDomain domains} attached to it: its
 * page sizes, and the invalidations of its caches (Linux's {@code iommu_domain_ops} for one instance). The
 * SMMUv3 and VT-d drivers implement it by writing invalidation commands into their queues and waiting for
 * completion (CMD_SYNC, VT-d invalidation wait).
 *
 * <p>Map-side and unmap-side synchronisation are two methods, as in Linux: {@link #iotlbSyncMap} makes new
 * entries visible to hardware that may have cached their absence; {@link #iotlbSync} removes entries that
 * are gone. Every method returns only once the hardware has completed the invalidation.
 *
 * <p><b>Threads.</b> A domain calls these methods from whichever thread maps or unmaps, possibly from several
 * threads at once (one domain, or several domains on the same instance): implementations are thread-safe.
 * They must not call back into the domain's map, unmap or flush methods. A {@code RuntimeException} thrown
 * here reaches the caller of the domain operation (see {@link IommuDomain} for what then happens to freed
 * table pages).
 */
public interface IommuInstanceOps {
    /** A short name of the instance for messages, e.g. {@code "smmu0"}. */
    String name();

    /**
     * The page sizes the hardware can walk, as a bitmap (bit n = pages of 2^n bytes). A domain maps with the
     * sizes of its page-table format that every attached instance supports; an instance must support at
     * least the domain's minimum page size to be attached. Read once, at attach.
     */
    long pageSizes();

    /**
     * Whether the hardware may cache invalid (not-present) entries, so that a new mapping must be followed by
     * an invalidation before a device can use it (VT-d caching mode, some virtual IOMMUs). Read once, at
     * attach: when false, {@link #iotlbSyncMap} is never called.
     */
    boolean needsMapSync();

    /**
     * Map side: invalidates whatever the hardware may have cached for {@code [iova, iova + size)} of
     * {@code domain} (entries cached as invalid), and waits. Called once at the end of each map call that
     * succeeded, with the whole range of the call.
     */
    void iotlbSyncMap(IommuDomain domain, long iova, long size);

    /**
     * Unmap side: invalidates {@code [gather.start(), gather.last()]} of {@code domain} at
     * {@code gather.pageLg2()} granularity, leaf entries only unless {@link IotlbGather#freedTables()} says
     * tables were freed (then the walk caches too), and waits. The freed table pages are returned to the
     * allocator right after this method returns, so the invalidation must be complete by then. The gather is
     * valid only during the call (do not keep it). When {@link IotlbGather#hasRange()} is false only table
     * pages are being freed: invalidate the walk caches of the domain.
     */
    void iotlbSync(IommuDomain domain, IotlbGather gather);

    /** Invalidates every cached translation and walk of {@code domain}, and waits. */
    void flushIotlbAll(IommuDomain domain);
}
