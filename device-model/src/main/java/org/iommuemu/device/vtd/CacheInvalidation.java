package org.iommuemu.device.vtd;

/**
 * The invalidations software can ask of a VT-d unit's caches, by register ({@code CCMD}, the IOTLB register) or
 * by queued-invalidation descriptor. Each method removes what the architecture says the request covers and
 * returns how many entries it removed. Called under the register-file lock.
 */
interface CacheInvalidation {
    /** Context-cache invalidation, global. */
    int invalidateContextAll();

    /** Context-cache invalidation of the entries tagged with domain id {@code did}. */
    int invalidateContextDomain(int did);

    /**
     * Context-cache invalidation of source id {@code sid}, ignoring the low {@code fm} bits of its function
     * number as the function mask says (0 none, 1 bit 2, 2 bits 2:1, 3 bits 2:0).
     */
    int invalidateContextDevice(int sid, int fm);

    /** PASID-cache invalidation, global. */
    int invalidatePasidCacheAll();

    /** PASID-cache invalidation of domain id {@code did}. */
    int invalidatePasidCacheDomain(int did);

    /** PASID-cache invalidation of one PASID of domain id {@code did}. */
    int invalidatePasidCache(int did, int pasid);

    /** IOTLB invalidation, global: the IOTLB and the paging-structure caches. */
    int invalidateIotlbAll();

    /** IOTLB invalidation of every entry of domain {@code did} (all PASIDs, all stages) and its paging structures. */
    int invalidateIotlbDomain(int did);

    /**
     * Page-selective IOTLB invalidation within domain {@code did}: second-stage and nested entries whose
     * second-stage input overlaps the {@code 2^am} 4 KB pages at {@code addr} (aligned down to that span), and the
     * paging-structure entries covering it unless {@code ih}.
     */
    int invalidateIotlbPage(int did, long addr, int am, boolean ih);

    /** PASID-based IOTLB invalidation of the non-global entries of {@code pasid} in domain {@code did}. */
    int invalidatePasidIotlb(int did, int pasid);

    /** Page-selective PASID-based IOTLB invalidation (global entries included); paging structures unless {@code ih}. */
    int invalidatePasidIotlbPage(int did, int pasid, long addr, int am, boolean ih);
}
