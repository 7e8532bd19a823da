package org.iommuemu.device.xlate;

/**
 * The two translation caches of one IOMMU, the {@link Iotlb} (leaves) and the {@link WalkCache} (table
 * descriptors), with the TLB invalidations that concern both expressed once for both device models. Each
 * method returns the number of entries removed from the two caches together.
 *
 * <p>The leaf-only flag (SMMUv3 TLBI Leaf=1, VT-d IH=1) promises that only leaf entries changed: the IOTLB
 * entries for the range go, the walk cache keeps its table descriptors. Without it, the walk-cache entries
 * whose region overlaps the range go too (spec SMMUV3.md §7, VTD.md §1 "IH = only leaf entries changed"). A
 * level hint restricts only the IOTLB: it names the level of the leaf, not of the tables above it.
 *
 * <p>Stage masks are {@link Stage} bits of IOTLB entries; the walk-cache part follows from them: stage 1 or
 * nested translations walk stage 1 tables ({@link Stage#S1} walk entries), stage 2 or nested translations walk
 * stage 2 tables. A nested translation's stage 2 walk entries are shared with every context of the VMID, so
 * stage 1 invalidations leave them and only VMID-wide or IPA invalidations drop them.
 *
 * <p>Thread-safety: each cache has its own lock; a method invalidates the IOTLB first, then the walk cache,
 * and when it returns neither holds what it removed. A concurrent lookup may see the IOTLB part done and the
 * walk-cache part not yet: it then walks from a stale table descriptor, which is what hardware may do until
 * the invalidation completes (CMD_SYNC / invalidation wait).
 */
public final class TranslationCaches {
    private final Iotlb iotlb;
    private final WalkCache walkCache;

    /** New caches of the given capacities. */
    public TranslationCaches(int iotlbCapacity, int walkCacheCapacity) {
        this(new Iotlb(iotlbCapacity), new WalkCache(walkCacheCapacity));
    }

    public TranslationCaches(Iotlb iotlb, WalkCache walkCache) {
        this.iotlb = iotlb;
        this.walkCache = walkCache;
    }

    public Iotlb iotlb() {
        return iotlb;
    }

    public WalkCache walkCache() {
        return walkCache;
    }

    /** Everything: TLBI_NSNH_ALL; VT-d global IOTLB invalidation. */
    public int invalidateAll() {
        return iotlb.invalidateAll() + walkCache.invalidateAll();
    }

    /**
     * Every entry of a VMID / domain of the given stages: TLBI_S12_VMALL ({@link Stage#ALL}), TLBI_NH_ALL
     * ({@code S1 | NESTED}, keeping the stage 2 walk entries); VT-d domain-selective.
     */
    public int invalidateVmid(int vmid, int stages) {
        return iotlb.invalidateVmid(vmid, stages) + walkCache.invalidateVmid(vmid, walkStagesOfVa(stages));
    }

    /** The non-global entries of one ASID / PASID: TLBI_NH_ASID; VT-d PASID-selective. */
    public int invalidateAsid(int vmid, int asid) {
        return iotlb.invalidateAsid(vmid, asid) + walkCache.invalidateAsid(vmid, asid);
    }

    /**
     * Entries for an input-address range: TLBI_NH_VA ({@code asid >= 0}) / TLBI_NH_VAA
     * ({@link Iotlb#ANY_ASID}), single or range form; VT-d PASID-based page-selective. See
     * {@link Iotlb#invalidateVa} for the IOTLB part; the walk cache loses the stage 1 entries (or, for
     * {@link Stage#S2}-only masks, the stage 2 entries) of the context overlapping the range unless
     * {@code leafOnly}.
     */
    public int invalidateVa(int vmid, int asid, long start, long length, int level, boolean leafOnly, int stages) {
        int removed = iotlb.invalidateVa(vmid, asid, start, length, level, stages);
        if (!leafOnly) {
            removed += walkCache.invalidateRange(vmid, asid, walkStagesOfVa(stages), start, length);
        }
        return removed;
    }

    /**
     * TLBI_S2_IPA: stage 2 entries (and with {@code nested}, nested IOTLB entries) for an IPA range, see
     * {@link Iotlb#invalidateIpa}; unless {@code leafOnly}, the stage 2 walk entries overlapping it too.
     */
    public int invalidateIpa(int vmid, long start, long length, int level, boolean leafOnly, boolean nested) {
        int removed = iotlb.invalidateIpa(vmid, start, length, level, nested);
        if (!leafOnly) {
            removed += walkCache.invalidateRange(vmid, -1, Stage.S2, start, length);
        }
        return removed;
    }

    /**
     * VT-d page-selective invalidation: {@code 2^am} 4 KB pages at {@code addr} aligned down to the span,
     * keeping the paging-structure cache when {@code ih} (invalidation hint: only leaves changed).
     *
     * @param pasid a PASID, -1 for second-stage / legacy entries, or {@link Iotlb#ANY_ASID}
     */
    public int invalidatePageSelective(int domainId, int pasid, long addr, int am, boolean ih, int stages) {
        int removed = iotlb.invalidatePageSelective(domainId, pasid, addr, am, stages);
        if (!ih) {
            int spanLg2 = Math.min(Iotlb.MIN_SIZE_LG2 + am, 64);
            long first = spanLg2 == 64 ? 0 : addr & -(1L << spanLg2);
            // 2^64 - 1 bytes for the whole space: every entry is 4 KB aligned, so none lies in the missing byte
            long length = spanLg2 == 64 ? -1L : 1L << spanLg2;
            removed += walkCache.invalidateRange(domainId, pasid, walkStagesOfVa(stages), first, length);
        }
        return removed;
    }

    /** The walk-cache stages behind IOTLB stages: the tables walked to produce such translations. */
    private static int walkStagesOfVa(int stages) {
        int walk = 0;
        if ((stages & (Stage.S1 | Stage.NESTED)) != 0) {
            walk |= Stage.S1;
        }
        if ((stages & Stage.S2) != 0) {
            walk |= Stage.S2;
        }
        return walk;
    }
}
