package org.iommuemu.device.vtd;

import org.iommuemu.device.xlate.CacheStats;
import org.iommuemu.device.xlate.ConfigCache;
import org.iommuemu.device.xlate.Iotlb;
import org.iommuemu.device.xlate.Stage;
import org.iommuemu.device.xlate.TranslationCaches;
import org.iommuemu.device.xlate.WalkCache;

/**
 * The four translation caches of one VT-d remapping unit and the invalidations software can ask of them
 * (Intel VT-d architecture, "Translation Caching" and "Invalidation of Translation Caches"; {@code spec/VTD.md}
 * §1 CCMD / IOTLB registers and §5 descriptors). Every method that removes entries returns how many it removed.
 *
 * <ul>
 *   <li><b>Context cache</b>: decoded context entries, legacy or scalable-mode, keyed by source id
 *       ({@link ConfigCache#NO_SUBSTREAM} as the substream half). Tags: a legacy entry carries its domain id; a
 *       legacy not-present entry (cached only with CAP.CM=1) carries domain id 0, the domain the architecture
 *       reserves for that when CM=1; a scalable-mode entry, which has no domain id, carries
 *       {@link #SCALABLE_CONTEXT_TAG}, and every domain-selective invalidation removes those too (invalidating
 *       more than asked is always allowed, and a scalable context entry cannot be matched to a domain).
 *   <li><b>PASID cache</b>: decoded PASID-table entries keyed by (source id, PASID), tagged with the entry's
 *       domain id; a not-present PASID directory or table entry (cached only with CM=1) is tagged 0, and a
 *       PASID-selective invalidation of any domain removes the not-present entries of that PASID as well, since
 *       that is what software issues after making a PASID entry present (Linux: PASID-selective with the new
 *       entry's domain id).
 *   <li><b>IOTLB</b> ({@link Iotlb}): leaves, VMID = domain id; ASID = the PASID for first-stage and nested
 *       translations (for requests without PASID, the context entry's RID_PASID), -1 for second-stage-only and
 *       legacy translations; {@link Stage#S1} / {@link Stage#S2} / {@link Stage#NESTED}. With CM=1 a walk that
 *       ends at a not-present entry leaves a <em>negative</em> entry: permissions 0, the fault class in the
 *       attribute byte (see {@link VtdTranslator}), covering the input region the not-present entry stands for,
 *       so the fault repeats from the cache until an invalidation covering it. Negative entries live in the
 *       IOTLB itself (it accepts entries without permissions), so every IOTLB invalidation below clears them.
 *   <li><b>Paging-structure cache</b> ({@link WalkCache}): non-leaf entries, VMID = domain id, first-stage
 *       entries ({@link Stage#S1}) with ASID = PASID, second-stage entries ({@link Stage#S2}, also those read
 *       for nested translations, keyed by guest-physical address) with ASID -1. Each cached entry holds the
 *       permissions accumulated down to it (R/W for the second stage; R/W and U/S ANDed, XD ORed for the first),
 *       as the architecture's paging-structure caches do, so a walk resuming there checks the same rights.
 * </ul>
 *
 * <p>Thread-safe: each cache has its own monitor; see {@link TranslationCaches} for what a concurrent lookup
 * may see while an invalidation of both IOTLB and paging-structure cache runs.
 */
public final class VtdCaches implements CacheInvalidation {
    /** The context-cache tag of scalable-mode context entries, which carry no domain id. */
    public static final int SCALABLE_CONTEXT_TAG = -2;
    /** The tag of cached not-present context and PASID entries (CM=1): the reserved domain id 0. */
    public static final int NOT_PRESENT_TAG = 0;

    private final ConfigCache<CachedContext> contexts;
    private final ConfigCache<CachedPasid> pasids;
    private final TranslationCaches tlb;
    private final Iotlb iotlb;
    private final WalkCache walkCache;

    /** Caches of the sizes {@code config} asks for. */
    public VtdCaches(VtdConfig config) {
        this(config.contextCacheCapacity(), config.pasidCacheCapacity(), config.iotlbCapacity(),
                config.walkCacheCapacity());
    }

    /** Caches of the given capacities (each 1..2^20). */
    public VtdCaches(int contextCapacity, int pasidCapacity, int iotlbCapacity, int walkCapacity) {
        contexts = new ConfigCache<>(contextCapacity);
        pasids = new ConfigCache<>(pasidCapacity);
        tlb = new TranslationCaches(iotlbCapacity, walkCapacity);
        iotlb = tlb.iotlb();
        walkCache = tlb.walkCache();
    }

    // ------------------------------------------------------------------------------------ context cache

    /** Global context-cache invalidation (CCMD CIRG=1, descriptor G=1). */
    public int invalidateContextAll() {
        return contexts.invalidateAll();
    }

    /**
     * Domain-selective context-cache invalidation (CIRG=2 / G=2): the legacy entries of domain {@code did}, and
     * every scalable-mode entry (they carry no domain id).
     */
    public int invalidateContextDomain(int did) {
        return contexts.invalidateTag(did) + contexts.invalidateTag(SCALABLE_CONTEXT_TAG);
    }

    /**
     * Device-selective context-cache invalidation (CIRG=3 / G=3): the entries of source id {@code sid}, with
     * the function mask {@code fm} ignoring low devfn bits: 0 none, 1 bit 2, 2 bits 2:1, 3 bits 2:0.
     */
    public int invalidateContextDevice(int sid, int fm) {
        return contexts.invalidateStreamMasked(sid & 0xFFFF, functionMask(fm));
    }

    /** The source-id bits a function mask ignores. */
    static int functionMask(int fm) {
        return switch (fm & 3) {
            case 0 -> 0;
            case 1 -> 0b100;
            case 2 -> 0b110;
            default -> 0b111;
        };
    }

    // ------------------------------------------------------------------------------------ PASID cache

    /** Global PASID-cache invalidation (PASID-cache descriptor G=3). */
    public int invalidatePasidCacheAll() {
        return pasids.invalidateAll();
    }

    /** Domain-selective PASID-cache invalidation (G=0): every PASID entry of domain {@code did}. */
    public int invalidatePasidCacheDomain(int did) {
        return pasids.invalidateTag(did);
    }

    /**
     * PASID-selective PASID-cache invalidation (G=1): the entries of PASID {@code pasid} in domain {@code did},
     * in every source id, and the cached not-present entries of that PASID.
     */
    public int invalidatePasidCache(int did, int pasid) {
        int removed = pasids.invalidateTagSubstream(did, pasid);
        if (did != NOT_PRESENT_TAG) {
            removed += pasids.invalidateTagSubstream(NOT_PRESENT_TAG, pasid);
        }
        return removed;
    }

    // ------------------------------------------------------------------------------------ IOTLB

    /** Global IOTLB invalidation: the IOTLB and the paging-structure cache. */
    public int invalidateIotlbAll() {
        return tlb.invalidateAll();
    }

    /**
     * Domain-selective IOTLB invalidation: every IOTLB entry of the domain (all PASIDs and stages, global and
     * negative entries included) and all of its paging-structure entries.
     */
    public int invalidateIotlbDomain(int did) {
        return tlb.invalidateVmid(did, Stage.ALL);
    }

    /**
     * Page-selective-within-domain IOTLB invalidation: the second-stage and nested IOTLB entries of the domain
     * whose second-stage input (guest-physical) range overlaps the {@code 2^am} 4 KB pages at {@code addr}
     * aligned down to that span (nested entries by the IPA their first stage produced), and unless {@code ih},
     * the second-stage paging-structure entries overlapping it.
     *
     * @param am the address mask, 0 and up (52 and above: the whole address space)
     */
    public int invalidateIotlbPage(int did, long addr, int am, boolean ih) {
        long first = spanFirst(addr, am);
        long length = spanLength(am);
        return tlb.invalidateIpa(did, first, length, Iotlb.ANY_LEVEL, ih, true);
    }

    /**
     * PASID-based IOTLB invalidation, PASID-selective (G=2): the non-global first-stage and nested entries of
     * {@code pasid} in the domain, and its first-stage paging-structure entries.
     */
    public int invalidatePasidIotlb(int did, int pasid) {
        return tlb.invalidateAsid(did, pasid);
    }

    /**
     * PASID-based IOTLB invalidation, page-selective within PASID (G=3): the first-stage and nested entries of
     * {@code pasid} in the domain overlapping the {@code 2^am} pages at {@code addr} aligned down, global ones
     * included, and unless {@code ih} the PASID's first-stage paging-structure entries overlapping them.
     */
    public int invalidatePasidIotlbPage(int did, int pasid, long addr, int am, boolean ih) {
        return tlb.invalidatePageSelective(did, pasid, addr, am, ih, Stage.S1 | Stage.NESTED);
    }

    private static long spanFirst(long addr, int am) {
        int spanLg2 = spanLg2(am);
        return spanLg2 == 64 ? 0 : addr & -(1L << spanLg2);
    }

    /** 2^(12+am) bytes, or 2^64 - 1 for the whole space (every entry is 4 KB aligned, none lies in the last byte). */
    private static long spanLength(int am) {
        int spanLg2 = spanLg2(am);
        return spanLg2 == 64 ? -1L : 1L << spanLg2;
    }

    private static int spanLg2(int am) {
        if (am < 0) {
            throw new IllegalArgumentException("address mask must be >= 0: " + am);
        }
        return Math.min(Iotlb.MIN_SIZE_LG2 + am, 64);
    }

    // ------------------------------------------------------------------------------------ statistics

    public CacheStats contextStats() {
        return contexts.stats();
    }

    public CacheStats pasidStats() {
        return pasids.stats();
    }

    public CacheStats iotlbStats() {
        return iotlb.stats();
    }

    public CacheStats walkStats() {
        return walkCache.stats();
    }

    // ------------------------------------------------------------------------------------ for the translator

    ConfigCache<CachedContext> contexts() {
        return contexts;
    }

    ConfigCache<CachedPasid> pasids() {
        return pasids;
    }

    Iotlb iotlb() {
        return iotlb;
    }

    WalkCache walkCache() {
        return walkCache;
    }

    /**
     * A decoded context entry as the context cache keeps it. {@code notPresent} is the fault reason to repeat
     * when the entry was cached not present (CM=1), else 0.
     *
     * @param scalable      decoded from a scalable-mode (TTM=01) root table
     * @param notPresent    0, or the reason of a cached not-present entry (0x2 / 0x41)
     * @param fpd           fault processing disable
     * @param passThrough   legacy TT=2: requests pass untranslated
     * @param ssptptr       legacy: the second-stage table
     * @param levels        legacy: its levels (3..5)
     * @param did           legacy: the domain id
     * @param pasidEnable   scalable: PASIDE, requests with PASID allowed
     * @param pasidCount    scalable: PASIDs the PASID directory covers, 2^(PDTS+7) × 64
     * @param pasidDir      scalable: the PASID directory
     * @param ridPasid      scalable: the PASID of requests without one
     * @param deviceTlb     device TLBs enabled: legacy TT=01, scalable DTE=1 (ATS requests allowed)
     */
    record CachedContext(boolean scalable, int notPresent, boolean fpd, boolean passThrough, long ssptptr, int levels,
            int did, boolean pasidEnable, int pasidCount, long pasidDir, int ridPasid, boolean deviceTlb) {}

    /**
     * A decoded PASID-table entry as the PASID cache keeps it (with the FPD of the directory entry folded in).
     *
     * @param notPresent 0, or the reason of a cached not-present directory or table entry (0x51 / 0x59)
     * @param fpd        FPD of the directory entry or of the PASID entry
     * @param pgtt       PASID-granular translation type, {@code VtdTables.PGTT_*}
     * @param did        domain id
     * @param ssptptr    second-stage table (PGTT 2 and 3)
     * @param ssLevels   its levels (3..5)
     * @param ssade      second-stage accessed/dirty updates
     * @param fsptptr    first-stage table (PGTT 1 and 3; a guest-physical address when nested)
     * @param fsLevels   4 or 5
     * @param sre        supervisor requests enabled
     * @param ere        execute requests enabled
     * @param wpe        write protect: supervisor writes obey R/W
     */
    record CachedPasid(int notPresent, boolean fpd, int pgtt, int did, long ssptptr, int ssLevels, boolean ssade,
            long fsptptr, int fsLevels, boolean sre, boolean ere, boolean wpe) {}

    @Override
    public String toString() {
        return "VtdCaches[context " + contexts + ", pasid " + pasids + ", " + iotlb + ", " + walkCache + "]";
    }
}
