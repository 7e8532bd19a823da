package org.iommuemu.core.api;

/**
 * When an {@link IommuDomain} invalidates the IOTLBs after an unmap (Linux's strict and lazy DMA domains,
 * {@code iommu.strict=1} / {@code iommu.strict=0}).
 */
public enum FlushPolicy {
    /**
     * Every unmap invalidates what it removed, and waits, before it returns: once {@code unmap} has returned,
     * no attached IOMMU can translate through the old entries. One invalidation per unmap call.
     */
    STRICT,
    /**
     * Unmapped ranges wait in a flush queue and are invalidated later, all together, by one full flush per
     * attached instance (Linux's IOVA flush queue). Until that flush a device may still reach the memory that
     * was unmapped: the window is bounded by the queue's capacity and timeout. Freed table pages wait too.
     */
    LAZY
}
