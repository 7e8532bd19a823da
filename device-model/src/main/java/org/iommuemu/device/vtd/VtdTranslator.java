package org.iommuemu.device.vtd;

import static org.iommuemu.core.vtd.FaultReason.*;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import org.iommuemu.core.concurrent.PerThread;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.core.pgtable.fmt.X86Pt;
import org.iommuemu.core.vtd.FaultReason;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.vtd.VtdCaches.CachedContext;
import org.iommuemu.device.vtd.VtdCaches.CachedPasid;
import org.iommuemu.device.xlate.ConfigCache;
import org.iommuemu.device.xlate.Iotlb;
import org.iommuemu.device.xlate.IotlbEntry;
import org.iommuemu.device.xlate.Perm;
import org.iommuemu.device.xlate.Stage;
import org.iommuemu.device.xlate.WalkCache;
import org.iommuemu.device.xlate.XlateStats;

/**
 * DMA remapping of one VT-d unit while translation is enabled (GSTS.TES=1): what the hardware does with one
 * untranslated request (Intel VT-d architecture, "DMA Remapping"; encodings in {@code spec/VTD.md} §3, §6, §7
 * and {@code spec/PGTABLE.md} §3).
 *
 * <p><b>Legacy mode</b> (RTADDR.TTM=00): root entry (indexed by bus) → 16-byte context entry (by devfn) →
 * second-stage walk of the context's table. Context TT 00 and 01 (01 needs ECAP.DT) translate, TT 10
 * (ECAP.PT) passes the request through, TT 11 is invalid; AW must be one CAP.SAGAW reports. A request with a
 * PASID is blocked with reason 0x31 ("TTM 0 for request with PASID"), before any table is read, and always
 * reported.
 *
 * <p><b>Scalable mode</b> (TTM=01): scalable root entry (lower or upper context table by devfn &lt; 128) →
 * 32-byte context entry → PASID directory entry (PASID[19:6]) → 64-byte PASID-table entry (PASID[5:0]). A
 * request without PASID uses the context entry's RID_PASID; one with a PASID needs PASIDE and a PASID the
 * directory covers. PGTT 1 walks the first-stage (x86-64, 4 or 5 levels by FSPM) table, 2 the second-stage
 * table, 3 both nested (every first-stage table read and the final guest-physical output go through the second
 * stage), 4 passes through; a PGTT the unit does not implement (ECAP.FLTS, SLTS, NEST, PT) makes the PASID
 * entry invalid (0x5B). Privileged requests need SRE (else 0x5D), execute requests ERE (else 0x5C).
 *
 * <p><b>Requests.</b> Only requests with a PASID carry the privileged and execute attributes (PCIe puts them in
 * the PASID prefix), so for a request without PASID ({@code pasid < 0}) only {@link Access#WRITE} is kept.
 *
 * <p><b>Walks.</b> Second stage ({@code VtdSs} layout): an entry is present iff R or W; R and W are ANDed down the
 * levels; PS makes a 2 MB / 1 GB leaf where CAP.SLLPS allows and is a reserved bit elsewhere (as in SS-PML4E and
 * SS-PML5E); address bits at or above the host address width (MGAW + 1), SNP without ECAP.SC or in a non-leaf
 * entry, TM outside a leaf (or without ECAP.DT) and the low address bits of a large leaf are reserved. A (every
 * entry used) and D (the leaf, on a write) are set only with the PASID entry's SSADE (which needs ECAP.SLADS),
 * so never in legacy mode. First stage ({@code X86Pt} layout): P; R/W and U/S ANDed and XD ORed down the levels;
 * PS leaves at 2 MB and, with CAP.FL1GP, 1 GB; a user request needs U/S (0x81), a write R/W (for a supervisor
 * request only with WPE; 0x85), an execute request XD clear (0x82); A is set on every entry used and D on the
 * leaf for a write, with a 64-bit compare-and-exchange of the entry, as x86 does; the input address must be
 * canonical for the paging mode (0x80). A/D are written only for accesses that pass the checks at that entry.
 *
 * <p><b>Faults</b> become a {@link Translation#fault} with a {@link FaultType}: TRANSLATION for not-present entries,
 * PERMISSION for denied accesses, ADDRESS_SIZE for inputs beyond the address width or not canonical,
 * EXTERNAL_ABORT for a table read or A/D write outside RAM, BAD_CONFIGURATION for reserved bits and invalid
 * entries, ABORTED for requests the configuration blocks (PASID in legacy mode, PASIDE clear). Each is reported
 * to the {@link FaultReporter} unless it is a qualified fault and an FPD bit on the way is set (context entry,
 * PASID directory entry or PASID-table entry, including the FPD of the very entry found not present or
 * malformed, as QEMU does). Non-qualified faults are always reported: invalid TTM, PASID in legacy mode, and
 * every root-entry fault and error reading a root, context, PASID directory or PASID-table entry. Second-stage
 * entries with neither R nor W are reported with 0x5/0x6 in legacy mode (by the request's direction) and 0x79
 * in scalable mode; a present entry denying the access with 0x5/0x6 and 0x85/0x86.
 *
 * <p><b>Caches</b> ({@link VtdCaches}): decoded context and PASID entries, IOTLB leaves and paging-structure
 * entries, all real: nothing re-reads memory to stay coherent, so an entry changed without invalidation stays in
 * force. With CAP.CM=1 a not-present context, PASID directory, PASID-table or paging entry is cached too (see
 * {@link VtdCaches}), so making it present needs an invalidation before the unit sees it. Every insert carries
 * the epoch its lookup started with, so a walk racing an invalidation cannot put back what it removed. Each
 * thread keeps a one-entry micro-TLB and the last context and PASID entries it used, valid while the caches'
 * epochs are unchanged, so a repeated translation touches no shared cache.
 *
 * <p><b>Cost</b>: every cache lookup (micro-TLB and memo hits included) is charged to {@link XlateStats} as a hit
 * or a miss, every structure or paging-entry read from memory as a table read, every A/D compare-and-exchange
 * as a table write.
 *
 * <p><b>ATS</b> ({@link #atsRequest}, docs/ATS.md): translation and translated requests need device TLBs enabled
 * (legacy TT=01, else fault 0xD; scalable DTE=1); TT=01 behaves as TT=00 for untranslated requests.
 *
 * <p><b>Not modelled</b>: page requests, the interrupt-address range check
 * (0xE / 0x87), memory types (EMT, PAT, PWT/PCD, snoop bits), second-stage execute permission (SSEE), extended
 * accessed flags, the no-snoop A/D faults (0x7C, 0x90), marking second-stage D for first-stage A/D writes in
 * nested mode, and not-present second-stage entries met by a nested walk are not cached as negative entries.
 *
 * <p>Thread-safe; the hit and the miss path allocate nothing (a context- or PASID-cache miss allocates the one
 * decoded record it caches).
 */
public final class VtdTranslator {
    /** Attribute byte of a negative IOTLB entry: a second-stage entry with neither R nor W. */
    static final int NEGATIVE_SS = 1;
    /** Attribute byte of a negative IOTLB entry: a first-stage entry with P clear. */
    static final int NEGATIVE_FS = 2;

    private static final long SS_R = VtdSs.R;
    private static final long SS_W = VtdSs.W;
    private static final long SS_RW = SS_R | SS_W;
    private static final long SS_PS = VtdSs.PS;
    private static final long SS_A = VtdSs.A;
    private static final long SS_D = VtdSs.D;
    private static final long SS_SNP = VtdSs.SNP;
    private static final long SS_TM = 1L << 62;
    private static final long ADDR = VtdSs.ADDR; // bits 51:12, the same in both formats
    private static final long FS_P = X86Pt.P;
    private static final long FS_RW = X86Pt.RW;
    private static final long FS_US = X86Pt.US;
    private static final long FS_A = X86Pt.A;
    private static final long FS_D = X86Pt.D;
    private static final long FS_PS = X86Pt.PS;
    private static final long FS_G = X86Pt.G;
    private static final long FS_XD = X86Pt.XD;

    // per-thread counters (Scratch.counts), written by their thread with opaque stores and summed on read
    private static final int TRANSLATIONS = 0;
    private static final int FAULTS = 1;
    private static final int WALKS = 2;
    private static final int WALK_READS = 3;
    private static final int MICRO_HITS = 4;
    private static final int CONTEXT_MEMO_HITS = 5;
    private static final int PASID_MEMO_HITS = 6;
    private static final int COUNTERS = 7;
    private static final VarHandle COUNT = MethodHandles.arrayElementVarHandle(long[].class);

    private final String name;
    private final VtdConfig config;
    private final PhysicalMemory memory;
    private final VtdCaches caches;
    private final ConfigCache<CachedContext> contexts;
    private final ConfigCache<CachedPasid> pasids;
    private final Iotlb iotlb;
    private final WalkCache walkCache;
    private final XlateStats stats;
    private final FaultReporter faults;
    /** Host address width: MGAW + 1. */
    private final int haw;
    /** Pointer / address bits at or above the host address width (reserved in every entry). */
    private final long aboveHaw;
    private final boolean cm;
    private final PerThread<Scratch> scratch;
    /** WALK_READ_ABORT: every root, context, PASID and paging-entry read is an opportunity. */
    private final InstanceFaults injected;

    /** Per-thread working state: request, walk results, holders, counters, micro-TLB and memos. */
    private static final class Scratch {
        final long[] words = new long[8];
        final IotlbEntry entry = new IotlbEntry();
        // paging-structure-cache probes and fills: first-stage walks and second-stage walks apart, since a nested
        // walk runs second-stage walks in the middle of its first-stage one
        final long[] fsCached = new long[64];
        final long[] fsFetched = new long[64];
        final byte[] fsLevels = new byte[64];
        final long[] ssCached = new long[64];
        final long[] ssFetched = new long[64];
        final byte[] ssLevels = new byte[64];
        final long[] counts = new long[COUNTERS];
        /** WALK_READS when the current walk started (for the trace's walk reads). */
        long walkStart;
        // the request
        int sid;
        int pasid;
        int access;
        long iova;
        Translation out;
        /** The request attributes the PASID entry allows (PRIVILEGED with SRE, INSTRUCTION with ERE), and WRITE. */
        int allowed;
        /** An ATS translation request is being translated: translation-class faults are not reported. */
        boolean quiet;
        // a second-stage walk's result: output address, leaf size, accumulated R/W, writable but D clear
        long ssOa;
        int ssLg2;
        int ssPerm;
        boolean ssClean;
        // a first-stage walk's result
        long fsOa;
        int fsLg2;
        int fsPerms;
        boolean fsClean;
        boolean fsGlobal;
        // a failed step: the fault, and the level of a not-present entry of the walk (-1: none, or not cacheable)
        FaultType fType;
        int fReason;
        int negLevel;
        // the micro-TLB: the last translation this thread resolved, valid while no cache was invalidated since
        boolean microValid;
        int microTtm;
        int microSid;
        int microPasid;
        long microCtxEpoch;
        long microPasidEpoch;
        long microTlbEpoch;
        long microVa;
        long microVaLast;
        long microOa;
        int microPerms;
        /** The remembered IOTLB entry's tags (VMID or domain id; ASID or PASID), for provenance. */
        int microTag;
        int microSubTag;
        int microAllowed;
        // the last context and PASID entries this thread used, valid while their cache's epoch is unchanged
        int memoCtxSid = -1;
        long memoCtxEpoch;
        CachedContext memoCtx;
        int memoPeSid = -1;
        int memoPePasid = -1;
        long memoPeEpoch;
        CachedPasid memoPe;

        void count(int counter, long n) {
            COUNT.setOpaque(counts, counter, counts[counter] + n);
        }

        boolean fail(FaultType type, int reason) {
            fType = type;
            fReason = reason;
            return false;
        }
    }

    /**
     * @param name    the unit's name, for messages
     * @param config  what the unit implements (CAP/ECAP features, widths, CM)
     * @param memory  guest physical memory, where every table is read
     * @param caches  the unit's caches, shared with the invalidation paths
     * @param stats   the unit's counters and simulated clock
     * @param faults  where unsuppressed faults are recorded
     */
    public VtdTranslator(String name, VtdConfig config, PhysicalMemory memory, VtdCaches caches, XlateStats stats,
            FaultReporter faults) {
        this(name, config, memory, caches, stats, faults, InstanceFaults.none(name, stats.clock()));
    }

    /**
     * A translator whose table reads are WALK_READ_ABORT opportunities of {@code injected}.
     *
     * @param injected the unit's fault-injection hooks
     */
    public VtdTranslator(String name, VtdConfig config, PhysicalMemory memory, VtdCaches caches, XlateStats stats,
            FaultReporter faults, InstanceFaults injected) {
        this.injected = injected;
        this.name = name;
        this.config = config;
        this.memory = memory;
        this.caches = caches;
        this.contexts = caches.contexts();
        this.pasids = caches.pasids();
        this.iotlb = caches.iotlb();
        this.walkCache = caches.walkCache();
        this.stats = stats;
        this.faults = faults;
        this.haw = Math.min(config.guestAddressWidth(), 52);
        this.aboveHaw = VtdTables.PTR_MASK & -(1L << haw);
        this.cm = config.cm();
        this.scratch = new PerThread<>(Scratch::new);
    }

    // ------------------------------------------------------------------------------------ counters

    private long sum(int counter) {
        long total = 0;
        for (Scratch s : scratch.values()) {
            total += (long) COUNT.getOpaque(s.counts, counter);
        }
        return total;
    }

    /** Requests translated (with TES=1), micro-TLB hits included. */
    public long translations() {
        return sum(TRANSLATIONS);
    }

    /** Requests that faulted, reported or not. */
    public long faults() {
        return sum(FAULTS);
    }

    /** Page walks started (first-stage, second-stage or nested; the second-stage steps of a nested walk not apart). */
    public long walks() {
        return sum(WALKS);
    }

    /** Paging entries walks read from memory (paging-structure-cache hits are not reads). */
    public long walkReads() {
        return sum(WALK_READS);
    }

    /** Translations the per-thread micro-TLBs answered (IOTLB hits that did not reach the shared IOTLB). */
    public long microTlbHits() {
        return sum(MICRO_HITS);
    }

    /** Context lookups the per-thread memos answered (context-cache hits that did not reach the shared cache). */
    public long contextMemoHits() {
        return sum(CONTEXT_MEMO_HITS);
    }

    /** PASID-entry lookups the per-thread memos answered (PASID-cache hits that did not reach the shared cache). */
    public long pasidMemoHits() {
        return sum(PASID_MEMO_HITS);
    }

    // ------------------------------------------------------------------------------------ translation

    /**
     * Translates one untranslated request.
     *
     * @param rootTable the root-table address latched by SRTP
     * @param ttm       RTADDR.TTM latched by SRTP ({@link VtdRegs#TTM_LEGACY}, {@link VtdRegs#TTM_SCALABLE}; 2 and 3
     *                  are reserved and fault with reason 0x30)
     * @param sourceId  the requester id (bus 15:8, devfn 7:0)
     * @param pasid     the request's PASID, or -1 for a request without PASID
     * @param iova      the input address
     * @param access    {@link Access} flags
     * @param out       the caller's holder, filled and returned
     */
    public Translation translate(long rootTable, int ttm, int sourceId, int pasid, long iova, int access,
            Translation out) {
        Scratch s = scratch.get();
        s.count(TRANSLATIONS, 1);
        if (pasid < 0) {
            pasid = -1;
            access &= Access.WRITE;
        }
        int sid = sourceId & 0xFFFF;
        s.sid = sid;
        s.pasid = pasid;
        s.access = access;
        s.iova = iova;
        s.out = out;
        s.negLevel = -1;
        s.allowed = Access.WRITE | Access.PRIVILEGED | Access.INSTRUCTION;
        long ctxEpoch = contexts.epoch();
        long peEpoch = pasids.epoch();
        long tlbEpoch = iotlb.epoch();
        if (s.microValid && s.microSid == sid && s.microPasid == pasid && s.microTtm == ttm
                && s.microTlbEpoch == tlbEpoch && s.microCtxEpoch == ctxEpoch && s.microPasidEpoch == peEpoch
                && (access & ~s.microAllowed) == 0
                && Long.compareUnsigned(iova - s.microVa, s.microVaLast - s.microVa) <= 0) {
            int perms = s.microPerms;
            if ((perms & required(access)) != 0
                    && !(Access.isWrite(access) && (perms & Perm.DIRTY_WRITABLE) != 0)) {
                s.count(MICRO_HITS, 1);
                stats.cacheHit();
                return out.ok(s.microOa + (iova - s.microVa), s.microVaLast - iova + 1).fromIotlb(s.microTag,
                        s.microSubTag, s.microVa, 64 - Long.numberOfLeadingZeros(s.microVaLast - s.microVa));
            }
        }
        if (ttm == VtdRegs.TTM_LEGACY) {
            return legacy(s, rootTable, ttm, ctxEpoch, peEpoch, tlbEpoch);
        }
        if (ttm == VtdRegs.TTM_SCALABLE && config.smts()) {
            return scalable(s, rootTable, ttm, ctxEpoch, peEpoch, tlbEpoch);
        }
        s.fail(FaultType.BAD_CONFIGURATION, FaultReason.SM_INVALID_ROOT_TABLE);
        return report(s, false);
    }

    /**
     * An ATS request (docs/ATS.md): a translation request ({@code request}) or a translated request at physical
     * address {@code address}. Both need a context entry with device TLBs enabled (legacy TT=01, scalable DTE=1);
     * otherwise a legacy context blocks them with fault reason 0xD (reported as any fault), and a scalable one refuses
     * them as an Unsupported Request without a fault record. A translated request then passes through, unwalked; a
     * translation request is translated as an untranslated request would be, except that not-present, permission
     * and address-size faults are not reported (the completion says "no access" instead).
     */
    public Translation atsRequest(long rootTable, int ttm, int sourceId, int pasid, long address, int access,
            boolean request, Translation out) {
        Scratch s = scratch.get();
        int sid = sourceId & 0xFFFF;
        s.sid = sid;
        s.pasid = pasid < 0 ? -1 : pasid;
        s.access = pasid < 0 ? access & Access.WRITE : access;
        s.iova = address;
        s.out = out;
        s.negLevel = -1;
        CachedContext ctx;
        if (ttm == VtdRegs.TTM_LEGACY) {
            if (s.pasid >= 0) {
                s.fail(FaultType.ABORTED, SM_TTM_PASID);
                return report(s, false);
            }
            ctx = context(s, rootTable, false);
        } else if (ttm == VtdRegs.TTM_SCALABLE && config.smts()) {
            ctx = context(s, rootTable, true);
        } else {
            s.fail(FaultType.BAD_CONFIGURATION, FaultReason.SM_INVALID_ROOT_TABLE);
            return report(s, false);
        }
        if (ctx == null) {
            return out;
        }
        if (!ctx.deviceTlb()) {
            if (!ctx.scalable()) {
                s.fail(FaultType.ABORTED, CONTEXT_TT_BLOCKED);
                return report(s, ctx.fpd());
            }
            s.count(FAULTS, 1);
            return out.fault(FaultType.ABORTED, 0, "the scalable-mode context entry of source id 0x"
                    + Integer.toHexString(sid) + " has DTE=0: ATS requests are refused (Unsupported Request)");
        }
        if (!request) {
            return out.ok(address, -1L);
        }
        s.quiet = true;
        try {
            return translate(rootTable, ttm, sourceId, pasid, address, access, out);
        } finally {
            s.quiet = false;
        }
    }

    private Translation legacy(Scratch s, long rootTable, int ttm, long ctxEpoch, long peEpoch, long tlbEpoch) {
        if (s.pasid >= 0) {
            s.fail(FaultType.ABORTED, SM_TTM_PASID);
            return report(s, false);
        }
        CachedContext ctx = context(s, rootTable, false);
        if (ctx == null) {
            return s.out;
        }
        if (ctx.passThrough()) {
            return s.out.ok(s.iova, -1L);
        }
        long iova = s.iova;
        if (!fits(iova, inputBits(ctx.levels()))) {
            s.fail(FaultType.ADDRESS_SIZE, ADDRESS_BEYOND_AW);
            return report(s, ctx.fpd());
        }
        int did = ctx.did();
        IotlbEntry e = s.entry;
        boolean write = Access.isWrite(s.access);
        if (iotlb.lookup(did, -1, iova, write, e)) {
            stats.cacheHit();
            return cached(s, e, false, ctx.fpd(), ttm, ctxEpoch, peEpoch, tlbEpoch);
        }
        stats.cacheMiss();
        s.count(WALKS, 1);
        s.walkStart = s.counts[WALK_READS];
        int need = write ? (int) SS_W : (int) SS_R;
        if (!walkSs(s, did, ctx.ssptptr(), ctx.levels(), iova, false, false, need, write)) {
            if (s.negLevel >= 0) {
                negative(s, did, -1, Stage.S2, NEGATIVE_SS, tlbEpoch);
            }
            return report(s, ctx.fpd());
        }
        return insert(s, did, -1, false, s.ssLg2, s.ssOa, iova, ssPerms(s.ssPerm, s.ssClean), Stage.S2, ttm,
                ctxEpoch, peEpoch, tlbEpoch);
    }

    private Translation scalable(Scratch s, long rootTable, int ttm, long ctxEpoch, long peEpoch, long tlbEpoch) {
        CachedContext ctx = context(s, rootTable, true);
        if (ctx == null) {
            return s.out;
        }
        int pasid = s.pasid;
        if (pasid >= 0 && !ctx.pasidEnable()) {
            s.fail(FaultType.ABORTED, SM_PASIDE_CLEAR);
            return report(s, ctx.fpd());
        }
        int p = pasid >= 0 ? pasid : ctx.ridPasid();
        if (p >= ctx.pasidCount()) {
            s.fail(FaultType.BAD_CONFIGURATION, SM_PASID_TOO_LARGE);
            return report(s, ctx.fpd());
        }
        CachedPasid pe = pasidEntry(s, ctx, p);
        if (pe == null) {
            return s.out;
        }
        boolean fpd = ctx.fpd() || pe.fpd();
        int access = s.access;
        s.allowed = Access.WRITE | (pe.sre() ? Access.PRIVILEGED : 0) | (pe.ere() ? Access.INSTRUCTION : 0);
        if (Access.isPrivileged(access) && !pe.sre()) {
            s.fail(FaultType.PERMISSION, SM_SRE_CLEAR);
            return report(s, fpd);
        }
        if (Access.isInstruction(access) && !pe.ere()) {
            s.fail(FaultType.PERMISSION, FaultReason.SM_ERE_CLEAR);
            return report(s, fpd);
        }
        long iova = s.iova;
        int did = pe.did();
        boolean write = Access.isWrite(access);
        IotlbEntry e = s.entry;
        switch (pe.pgtt()) {
            case VtdTables.PGTT_PASS_THROUGH:
                return s.out.ok(iova, -1L);
            case VtdTables.PGTT_SECOND_STAGE: {
                if (!fits(iova, inputBits(pe.ssLevels()))) {
                    s.fail(FaultType.ADDRESS_SIZE, SM_ADDRESS_BEYOND_AW);
                    return report(s, fpd);
                }
                if (iotlb.lookup(did, -1, iova, write, e)) {
                    stats.cacheHit();
                    return cached(s, e, true, fpd, ttm, ctxEpoch, peEpoch, tlbEpoch);
                }
                stats.cacheMiss();
                s.count(WALKS, 1);
                s.walkStart = s.counts[WALK_READS];
                int need = write ? (int) SS_W : (int) SS_R;
                if (!walkSs(s, did, pe.ssptptr(), pe.ssLevels(), iova, true, pe.ssade(), need, write)) {
                    if (s.negLevel >= 0) {
                        negative(s, did, -1, Stage.S2, NEGATIVE_SS, tlbEpoch);
                    }
                    return report(s, fpd);
                }
                return insert(s, did, -1, false, s.ssLg2, s.ssOa, iova, ssPerms(s.ssPerm, s.ssClean), Stage.S2, ttm,
                        ctxEpoch, peEpoch, tlbEpoch);
            }
            case VtdTables.PGTT_FIRST_STAGE:
            case VtdTables.PGTT_NESTED: {
                boolean nested = pe.pgtt() == VtdTables.PGTT_NESTED;
                if (!canonical(iova, pe.fsLevels())) {
                    s.fail(FaultType.ADDRESS_SIZE, SM_FS_NOT_CANONICAL);
                    return report(s, fpd);
                }
                if (iotlb.lookup(did, p, iova, write, e)) {
                    stats.cacheHit();
                    return cached(s, e, true, fpd, ttm, ctxEpoch, peEpoch, tlbEpoch);
                }
                stats.cacheMiss();
                s.count(WALKS, 1);
                s.walkStart = s.counts[WALK_READS];
                int stage = nested ? Stage.NESTED : Stage.S1;
                if (!walkFs(s, pe, did, p, iova, nested)) {
                    if (s.negLevel >= 0) {
                        negative(s, did, p, stage, NEGATIVE_FS, tlbEpoch);
                    }
                    return report(s, fpd);
                }
                if (!nested) {
                    int perms = s.fsPerms | (s.fsClean ? Perm.DIRTY_WRITABLE : 0);
                    return insert(s, did, p, s.fsGlobal, s.fsLg2, s.fsOa, 0, perms, Stage.S1, ttm, ctxEpoch, peEpoch,
                            tlbEpoch);
                }
                long ipa = s.fsOa;
                if (!fits(ipa, inputBits(pe.ssLevels()))) {
                    s.fail(FaultType.ADDRESS_SIZE, FaultReason.SM_NESTED_ADDRESS);
                    return report(s, fpd);
                }
                int need = write ? (int) SS_W : (int) SS_R;
                if (!walkSs(s, did, pe.ssptptr(), pe.ssLevels(), ipa, true, pe.ssade(), need, write)) {
                    return report(s, fpd);
                }
                int perms = s.fsPerms & ssPerms(s.ssPerm, false);
                if ((s.fsClean || s.ssClean) && (perms & (Perm.WRITE | Perm.PRIV_WRITE)) != 0) {
                    perms |= Perm.DIRTY_WRITABLE;
                }
                perms = Perm.withFirstStage(perms, s.fsPerms);
                return insert(s, did, p, s.fsGlobal, Math.min(s.fsLg2, s.ssLg2), s.ssOa, ipa, perms, Stage.NESTED, ttm,
                        ctxEpoch, peEpoch, tlbEpoch);
            }
            default:
                throw new AssertionError("PASID entry with PGTT " + pe.pgtt() + " was cached");
        }
    }

    /**
     * A translation found in the IOTLB: the output, a permission fault, or for a negative entry the not-present
     * fault again.
     */
    private Translation cached(Scratch s, IotlbEntry e, boolean scalable, boolean fpd, int ttm, long ctxEpoch,
            long peEpoch, long tlbEpoch) {
        int perms = e.perms();
        int access = s.access;
        boolean write = Access.isWrite(access);
        if ((perms & ~Perm.ATTR_MASK) == 0) {
            int kind = Perm.attr(perms);
            if (kind == NEGATIVE_FS) {
                s.fail(FaultType.TRANSLATION, SM_FS_NOT_PRESENT);
            } else {
                s.fail(FaultType.TRANSLATION, scalable ? SM_SS_PERMISSION : write ? WRITE : READ);
            }
            return report(s, fpd);
        }
        if ((perms & required(access)) != 0) {
            remember(s, ttm, ctxEpoch, peEpoch, tlbEpoch, e);
            return s.out.ok(e.outputAddress(s.iova), e.contiguousBytes(s.iova)).fromIotlb(e.vmid(), e.asid(), e.va(),
                    64 - Long.numberOfLeadingZeros(e.vaLast() - e.va()));
        }
        int reason;
        if (e.stage() == Stage.S2) {
            reason = scalable ? (write ? SM_WRITE : SM_READ) : (write ? WRITE : READ);
        } else {
            int fs = e.stage() == Stage.S1 ? perms : Perm.firstStage(perms);
            boolean priv = Access.isPrivileged(access);
            if (!priv && (fs & Perm.READ) == 0) {
                reason = SM_FS_USER;
            } else if (write && (fs & (priv ? Perm.PRIV_WRITE : Perm.WRITE)) == 0) {
                reason = SM_WRITE;
            } else if (Access.isInstruction(access) && (fs & (priv ? Perm.PRIV_EXEC : Perm.EXEC)) == 0) {
                reason = FaultReason.SM_EXECUTE;
            } else {
                reason = write ? SM_WRITE : SM_READ; // the second stage of a nested entry denies it
            }
        }
        s.fail(FaultType.PERMISSION, reason);
        return report(s, fpd);
    }

    /** Caches a walk's leaf and answers with it. */
    private Translation insert(Scratch s, int did, int asid, boolean global, int sizeLg2, long oa, long ipa, int perms,
            int stage, int ttm, long ctxEpoch, long peEpoch, long tlbEpoch) {
        IotlbEntry e = s.entry;
        long iova = s.iova;
        int level = (sizeLg2 - 12) / 9;
        e.set(did, asid, global, iova, sizeLg2, level, oa, ipa, perms, stage);
        if (iotlb.insert(e, tlbEpoch)) {
            remember(s, ttm, ctxEpoch, peEpoch, tlbEpoch, e);
        }
        return s.out.ok(e.outputAddress(iova), e.contiguousBytes(iova)).fromWalk()
                .walkReads((int) (s.counts[WALK_READS] - s.walkStart));
    }

    /** With CM=1: caches the not-present entry the walk ended at, so the fault repeats until invalidated. */
    private void negative(Scratch s, int did, int asid, int stage, int kind, long tlbEpoch) {
        if (!cm) {
            return;
        }
        int level = s.negLevel;
        long iova = s.iova;
        IotlbEntry e = s.entry;
        e.set(did, asid, false, iova, 12 + 9 * level, level, 0, stage == Stage.S1 ? 0 : iova,
                Perm.withAttr(0, kind), stage);
        iotlb.insert(e, tlbEpoch);
    }

    private void remember(Scratch s, int ttm, long ctxEpoch, long peEpoch, long tlbEpoch, IotlbEntry e) {
        s.microValid = true;
        s.microTtm = ttm;
        s.microSid = s.sid;
        s.microPasid = s.pasid;
        s.microCtxEpoch = ctxEpoch;
        s.microPasidEpoch = peEpoch;
        s.microTlbEpoch = tlbEpoch;
        s.microVa = e.va();
        s.microVaLast = e.vaLast();
        s.microOa = e.oa();
        s.microPerms = e.perms();
        s.microTag = e.vmid();
        s.microSubTag = e.asid();
        s.microAllowed = s.allowed;
    }

    /** Ends a faulted request: counts it, reports it unless suppressed, fills the caller's holder. */
    private Translation report(Scratch s, boolean suppressed) {
        s.count(FAULTS, 1);
        int reason = s.fReason;
        boolean quiet = s.quiet && (s.fType == FaultType.TRANSLATION || s.fType == FaultType.PERMISSION
                || s.fType == FaultType.ADDRESS_SIZE);
        if ((!suppressed || !qualified(reason)) && !quiet) {
            int access = s.access;
            faults.report(s.sid, s.pasid, s.iova, reason, Access.isWrite(access), Access.isPrivileged(access),
                    Access.isInstruction(access));
        }
        return s.out.fault(s.fType, reason, describe(reason));
    }

    /**
     * Whether FPD may suppress a fault: not for faults found before any FPD is known (reserved TTM, PASID in
     * legacy mode, root entries) nor for errors reading a root, context, PASID directory or PASID-table entry.
     */
    static boolean qualified(int reason) {
        switch (reason) {
            case ROOT_NOT_PRESENT:
            case ROOT_TABLE_ACCESS:
            case CONTEXT_ACCESS:
            case ROOT_RESERVED:
            case FaultReason.SM_INVALID_ROOT_TABLE:
            case SM_TTM_PASID:
            case SM_ROOT_ACCESS:
            case SM_ROOT_NOT_PRESENT:
            case SM_ROOT_RESERVED:
            case SM_CONTEXT_ACCESS:
            case SM_PASID_DIR_ACCESS:
            case SM_PASID_ENTRY_ACCESS:
                return false;
            default:
                return true;
        }
    }

    /** A constant description of a fault reason this translator produces. */
    static String describe(int reason) {
        return switch (reason) {
            case FaultReason.SM_INVALID_ROOT_TABLE -> "RTADDR.TTM is a reserved value";
            case FaultReason.SM_ERE_CLEAR -> "execute request while the PASID entry's ERE is clear";
            case FaultReason.SM_FS_TOP_ACCESS -> "error accessing the first-stage top-level entry";
            case FaultReason.SM_NESTED_ADDRESS -> "first-stage address beyond the second stage's width (nested)";
            case FaultReason.SM_NESTED_TOP_READ -> "second stage denies reading the first-stage top-level table (nested)";
            case FaultReason.SM_NESTED_READ -> "second stage denies reading a first-stage table (nested)";
            case FaultReason.SM_NESTED_WRITE -> "second stage denies the first-stage A/D update (nested)";
            case FaultReason.SM_EXECUTE -> "execute request to a page with XD set";
            default -> FaultReason.describe(reason);
        };
    }

    // ------------------------------------------------------------------------------------ context entries

    /** The context entry of the request's source id, or null with the fault reported. */
    private CachedContext context(Scratch s, long rootTable, boolean scalable) {
        int sid = s.sid;
        long epoch = contexts.epoch();
        CachedContext memo = s.memoCtx;
        CachedContext c;
        if (memo != null && s.memoCtxSid == sid && s.memoCtxEpoch == epoch && memo.scalable() == scalable) {
            s.count(CONTEXT_MEMO_HITS, 1);
            stats.cacheHit();
            c = memo;
        } else {
            c = contexts.lookup(sid, ConfigCache.NO_SUBSTREAM);
            if (c != null && c.scalable() == scalable) {
                stats.cacheHit();
            } else {
                stats.cacheMiss();
                c = fetchContext(s, rootTable, scalable, epoch);
                if (c == null) {
                    return null;
                }
            }
            s.memoCtxSid = sid;
            s.memoCtxEpoch = epoch;
            s.memoCtx = c;
        }
        if (c.notPresent() != 0) {
            s.fail(FaultType.TRANSLATION, c.notPresent());
            report(s, c.fpd());
            return null;
        }
        return c;
    }

    /** Reads and checks the root and context entries; caches the decoded context. Null after a fault. */
    private CachedContext fetchContext(Scratch s, long rootTable, boolean scalable, long epoch) {
        int bus = VtdTables.bus(s.sid);
        int devfn = VtdTables.devfn(s.sid);
        long[] w = s.words;
        long rootPa = VtdTables.rootEntryAddress(rootTable, bus);
        if (!readWords(s, rootPa, w, 2, "root entry")) {
            return nullFault(s, FaultType.EXTERNAL_ABORT, scalable ? SM_ROOT_ACCESS : ROOT_TABLE_ACCESS, false);
        }
        long ctxPa;
        if (scalable) {
            long half = devfn < 128 ? w[0] : w[1];
            if ((half & (1L << VtdTables.ROOT_P)) == 0) {
                return nullFault(s, FaultType.TRANSLATION, SM_ROOT_NOT_PRESENT, false);
            }
            if ((half & (VtdTables.ROOT_RSVD | aboveHaw)) != 0) {
                return nullFault(s, FaultType.BAD_CONFIGURATION, SM_ROOT_RESERVED, false);
            }
            ctxPa = (half & VtdTables.PTR_MASK) + (long) VtdTables.SM_CONTEXT_ENTRY_SIZE * (devfn & 127);
        } else {
            long lo = w[0];
            if ((lo & (1L << VtdTables.ROOT_P)) == 0) {
                return nullFault(s, FaultType.TRANSLATION, ROOT_NOT_PRESENT, false);
            }
            if ((lo & (VtdTables.ROOT_RSVD | aboveHaw)) != 0 || w[1] != 0) {
                return nullFault(s, FaultType.BAD_CONFIGURATION, ROOT_RESERVED, false);
            }
            ctxPa = (lo & VtdTables.PTR_MASK) + (long) VtdTables.CONTEXT_ENTRY_SIZE * devfn;
        }
        if (!readWords(s, ctxPa, w, scalable ? 4 : 2, "context entry")) {
            return nullFault(s, FaultType.EXTERNAL_ABORT, scalable ? SM_CONTEXT_ACCESS : CONTEXT_ACCESS, false);
        }
        return scalable ? decodeScalableContext(s, w, epoch) : decodeLegacyContext(s, w, epoch);
    }

    private CachedContext decodeLegacyContext(Scratch s, long[] w, long epoch) {
        long lo = w[0];
        long hi = w[1];
        boolean fpd = bit(lo, VtdTables.CTX_FPD);
        if (!bit(lo, VtdTables.CTX_P)) {
            if (cm) {
                contexts.insert(s.sid, ConfigCache.NO_SUBSTREAM, VtdCaches.NOT_PRESENT_TAG,
                        new CachedContext(false, CONTEXT_NOT_PRESENT, fpd, false, 0, 0, 0, false, 0, 0, 0, false), epoch);
            }
            return nullFault(s, FaultType.TRANSLATION, CONTEXT_NOT_PRESENT, fpd);
        }
        int tt = (int) (lo >>> VtdTables.CTX_TT) & 3;
        boolean passThrough = tt == VtdTables.TT_PASS_THROUGH;
        if ((lo & VtdTables.CTX_RSVD0) != 0 || (hi & VtdTables.CTX_RSVD1) != 0
                || (!passThrough && (lo & aboveHaw) != 0)) {
            return nullFault(s, FaultType.BAD_CONFIGURATION, CONTEXT_RESERVED, fpd);
        }
        int aw = (int) (hi >>> VtdTables.CTX_AW) & 7;
        int levels = VtdTables.levelsOfAw(aw);
        boolean valid = switch (tt) {
            case VtdTables.TT_MULTI_LEVEL -> sagawHas(aw);
            case VtdTables.TT_DEV_IOTLB -> config.dt() && sagawHas(aw);
            case VtdTables.TT_PASS_THROUGH -> config.pt();
            default -> false;
        };
        if (!valid) {
            return nullFault(s, FaultType.BAD_CONFIGURATION, CONTEXT_INVALID, fpd);
        }
        int did = (int) (hi >>> VtdTables.CTX_DID) & 0xFFFF;
        CachedContext c = new CachedContext(false, 0, fpd, passThrough, lo & VtdTables.PTR_MASK, levels, did, false,
                0, 0, 0, tt == VtdTables.TT_DEV_IOTLB);
        contexts.insert(s.sid, ConfigCache.NO_SUBSTREAM, did, c, epoch);
        return c;
    }

    private CachedContext decodeScalableContext(Scratch s, long[] w, long epoch) {
        long qw0 = w[0];
        long qw1 = w[1];
        boolean fpd = bit(qw0, VtdTables.SMCTX_FPD);
        if (!bit(qw0, VtdTables.SMCTX_P)) {
            if (cm) {
                contexts.insert(s.sid, ConfigCache.NO_SUBSTREAM, VtdCaches.SCALABLE_CONTEXT_TAG,
                        new CachedContext(true, SM_CONTEXT_NOT_PRESENT, fpd, false, 0, 0, 0, false, 0, 0, 0, false), epoch);
            }
            return nullFault(s, FaultType.TRANSLATION, SM_CONTEXT_NOT_PRESENT, fpd);
        }
        boolean dte = bit(qw0, VtdTables.SMCTX_DTE);
        boolean pasidEnable = bit(qw0, VtdTables.SMCTX_PASIDE);
        boolean pre = bit(qw0, VtdTables.SMCTX_PRE);
        int ridPasid = (int) (qw1 >>> VtdTables.SMCTX_RID_PASID) & ((1 << VtdTables.SMCTX_RID_PASID_WIDTH) - 1);
        if ((qw0 & (VtdTables.SMCTX_RSVD0 | aboveHaw)) != 0 || (qw1 & VtdTables.SMCTX_RSVD1) != 0 || w[2] != 0
                || w[3] != 0 || (dte && !config.dt()) || (pre && !config.prs()) || (pasidEnable && !config.pasid())
                || (ridPasid != 0 && !config.rps())) {
            return nullFault(s, FaultType.BAD_CONFIGURATION, SM_CONTEXT_RESERVED, fpd);
        }
        int pdts = (int) (qw0 >>> VtdTables.SMCTX_PDTS) & 7;
        int pasidCount = VtdTables.pasidDirEntries(pdts) << VtdTables.PASIDS_PER_TABLE_LG2;
        CachedContext c = new CachedContext(true, 0, fpd, false, 0, 0, 0, pasidEnable, pasidCount,
                qw0 & VtdTables.PTR_MASK, ridPasid, dte);
        contexts.insert(s.sid, ConfigCache.NO_SUBSTREAM, VtdCaches.SCALABLE_CONTEXT_TAG, c, epoch);
        return c;
    }

    // ------------------------------------------------------------------------------------ PASID entries

    /** The PASID entry of PASID {@code p} under {@code ctx}, or null with the fault reported. */
    private CachedPasid pasidEntry(Scratch s, CachedContext ctx, int p) {
        int sid = s.sid;
        long epoch = pasids.epoch();
        CachedPasid memo = s.memoPe;
        CachedPasid pe;
        if (memo != null && s.memoPeSid == sid && s.memoPePasid == p && s.memoPeEpoch == epoch) {
            s.count(PASID_MEMO_HITS, 1);
            stats.cacheHit();
            pe = memo;
        } else {
            pe = pasids.lookup(sid, p);
            if (pe != null) {
                stats.cacheHit();
            } else {
                stats.cacheMiss();
                pe = fetchPasid(s, ctx, p, epoch);
                if (pe == null) {
                    return null;
                }
            }
            s.memoPeSid = sid;
            s.memoPePasid = p;
            s.memoPeEpoch = epoch;
            s.memoPe = pe;
        }
        if (pe.notPresent() != 0) {
            s.fail(FaultType.TRANSLATION, pe.notPresent());
            report(s, ctx.fpd() || pe.fpd());
            return null;
        }
        return pe;
    }

    private CachedPasid fetchPasid(Scratch s, CachedContext ctx, int p, long epoch) {
        long[] w = s.words;
        long dirPa = ctx.pasidDir() + (long) VtdTables.PASID_DIR_ENTRY_SIZE * (p >>> VtdTables.PASIDS_PER_TABLE_LG2);
        if (!readWords(s, dirPa, w, 1, "PASID-directory entry")) {
            return nullFault(s, FaultType.EXTERNAL_ABORT, SM_PASID_DIR_ACCESS, false);
        }
        long pde = w[0];
        boolean dirFpd = bit(pde, VtdTables.PDE_FPD);
        boolean suppress = ctx.fpd() || dirFpd;
        if (!bit(pde, VtdTables.PDE_P)) {
            if (cm) {
                pasids.insert(s.sid, p, VtdCaches.NOT_PRESENT_TAG, notPresentPasid(SM_PASID_DIR_NOT_PRESENT, dirFpd), epoch);
            }
            return nullFault(s, FaultType.TRANSLATION, SM_PASID_DIR_NOT_PRESENT, suppress);
        }
        if ((pde & (VtdTables.PDE_RSVD | aboveHaw)) != 0) {
            return nullFault(s, FaultType.BAD_CONFIGURATION, SM_PASID_DIR_RESERVED, suppress);
        }
        long pePa = (pde & VtdTables.PTR_MASK)
                + (long) VtdTables.PASID_ENTRY_SIZE * (p & ((1 << VtdTables.PASIDS_PER_TABLE_LG2) - 1));
        if (!readWords(s, pePa, w, 8, "PASID-table entry")) {
            return nullFault(s, FaultType.EXTERNAL_ABORT, SM_PASID_ENTRY_ACCESS, false);
        }
        long qw0 = w[0];
        long qw1 = w[1];
        long qw2 = w[2];
        boolean fpd = dirFpd || bit(qw0, VtdTables.PE_FPD);
        suppress = ctx.fpd() || fpd;
        if (!bit(qw0, VtdTables.PE_P)) {
            if (cm) {
                pasids.insert(s.sid, p, VtdCaches.NOT_PRESENT_TAG, notPresentPasid(SM_PASID_ENTRY_NOT_PRESENT, fpd), epoch);
            }
            return nullFault(s, FaultType.TRANSLATION, SM_PASID_ENTRY_NOT_PRESENT, suppress);
        }
        int pgtt = (int) (qw0 >>> VtdTables.PE_PGTT) & 7;
        boolean ss = pgtt == VtdTables.PGTT_SECOND_STAGE || pgtt == VtdTables.PGTT_NESTED;
        boolean fs = pgtt == VtdTables.PGTT_FIRST_STAGE || pgtt == VtdTables.PGTT_NESTED;
        boolean ssade = bit(qw0, VtdTables.PE_SSADE);
        if ((qw0 & VtdTables.PE_RSVD0) != 0 || (qw2 & VtdTables.PE_RSVD2) != 0 || (ssade && !config.slads())
                || (ss && (qw0 & aboveHaw) != 0) || (fs && (qw2 & aboveHaw) != 0)) {
            return nullFault(s, FaultType.BAD_CONFIGURATION, SM_PASID_ENTRY_RESERVED, suppress);
        }
        int aw = (int) (qw0 >>> VtdTables.PE_AW) & 7;
        int fspm = (int) (qw2 >>> VtdTables.PE_FSPM) & 3;
        boolean valid = switch (pgtt) {
            case VtdTables.PGTT_FIRST_STAGE -> config.flts() && fsModeOk(fspm);
            case VtdTables.PGTT_SECOND_STAGE -> config.slts() && sagawHas(aw);
            case VtdTables.PGTT_NESTED -> config.nest() && sagawHas(aw) && fsModeOk(fspm);
            case VtdTables.PGTT_PASS_THROUGH -> config.pt();
            default -> false;
        };
        if (!valid) {
            return nullFault(s, FaultType.BAD_CONFIGURATION, SM_PASID_ENTRY_INVALID, suppress);
        }
        int did = (int) (qw1 >>> VtdTables.PE_DID) & 0xFFFF;
        CachedPasid pe = new CachedPasid(0, fpd, pgtt, did, qw0 & VtdTables.PTR_MASK, ss ? VtdTables.levelsOfAw(aw) : 0,
                ssade, qw2 & VtdTables.PTR_MASK, fspm == 1 ? 5 : 4, bit(qw2, VtdTables.PE_SRE), bit(qw2, 1),
                bit(qw2, VtdTables.PE_WPE));
        pasids.insert(s.sid, p, did, pe, epoch);
        return pe;
    }

    private static CachedPasid notPresentPasid(int reason, boolean fpd) {
        return new CachedPasid(reason, fpd, 0, 0, 0, 0, false, 0, 0, false, false, false);
    }

    private boolean fsModeOk(int fspm) {
        return fspm == 0 || (fspm == 1 && config.fl5lp());
    }

    // ------------------------------------------------------------------------------------ second stage

    /**
     * Walks a second-stage table for {@code input}, checking that the leaf grants {@code need} (SS_R and/or SS_W;
     * 0 for nothing), and with {@code ssade} sets A on the entries used and, when {@code dirty}, D on the leaf.
     * On success fills {@code s.ssOa, ssLg2, ssPerm, ssClean}; on failure sets the fault (and {@code negLevel} for
     * a not-present entry) and returns false.
     */
    private boolean walkSs(Scratch s, int did, long root, int levels, long input, boolean scalable, boolean ssade,
            int need, boolean dirty) {
        long spans = spans(levels);
        long epoch = walkCache.epoch();
        long hits = walkCache.lookupEach(did, -1, Stage.S2, input, spans, s.ssCached);
        long perm = SS_RW;
        long table = root;
        int level = levels - 1;
        if (hits != 0) {
            stats.cacheHit();
            int span = Long.numberOfTrailingZeros(hits); // the deepest cached entry
            long d = s.ssCached[span];
            perm = d & SS_RW;
            table = d & ADDR;
            level = (span - 12) / 9 - 1;
        } else {
            stats.cacheMiss();
        }
        long fetched = 0;
        boolean ok;
        while (true) {
            long pa = table + 8L * index(input, level);
            long e;
            try {
                e = readEntry(s, pa);
            } catch (MemoryAccessException x) {
                ok = s.fail(FaultType.EXTERNAL_ABORT, scalable ? SM_SS_ACCESS : PAGING_ENTRY_ACCESS);
                break;
            }
            if ((e & SS_RW) == 0) {
                s.negLevel = level;
                ok = s.fail(FaultType.TRANSLATION,
                        scalable ? SM_SS_PERMISSION : Access.isWrite(s.access) ? WRITE : READ);
                break;
            }
            boolean leaf = level == 0 || (e & SS_PS) != 0;
            if (ssReserved(e, level, leaf)) {
                ok = s.fail(FaultType.BAD_CONFIGURATION, scalable ? SM_SS_RESERVED : PAGING_ENTRY_RESERVED);
                break;
            }
            perm &= e;
            if (!leaf) {
                if (ssade && (e & SS_A) == 0 && !setBits(s, pa, e, SS_A)) {
                    ok = s.fail(FaultType.EXTERNAL_ABORT, scalable ? SM_SS_ACCESS : PAGING_ENTRY_ACCESS);
                    break;
                }
                int span = 12 + 9 * level;
                fetched |= 1L << span;
                s.ssFetched[span] = (e & ~SS_RW) | perm;
                s.ssLevels[span] = (byte) level;
                table = e & ADDR;
                level--;
                continue;
            }
            if ((need & ~perm) != 0) {
                boolean w = (need & ~perm & SS_W) != 0;
                ok = s.fail(FaultType.PERMISSION, scalable ? (w ? SM_WRITE : SM_READ) : (w ? WRITE : READ));
                break;
            }
            int lg2 = 12 + 9 * level;
            long bits = ssade ? SS_A | (dirty ? SS_D : 0) : 0;
            if ((e & bits) != bits && !setBits(s, pa, e, bits)) {
                ok = s.fail(FaultType.EXTERNAL_ABORT, scalable ? SM_SS_ACCESS : PAGING_ENTRY_ACCESS);
                break;
            }
            s.ssOa = (e & ADDR & -(1L << lg2)) | (input & ((1L << lg2) - 1));
            s.ssLg2 = lg2;
            s.ssPerm = (int) perm;
            s.ssClean = ssade && !dirty && (perm & SS_W) != 0 && (e & SS_D) == 0;
            ok = true;
            break;
        }
        if (fetched != 0) {
            walkCache.insertEach(did, -1, Stage.S2, input, fetched, s.ssFetched, s.ssLevels, epoch);
        }
        return ok;
    }

    /** Reserved bits of a second-stage entry at {@code level} (0 = SS-PTE). */
    private boolean ssReserved(long e, int level, boolean leaf) {
        long rsvd = aboveHaw & ADDR;
        if (!leaf || !config.sc()) {
            rsvd |= SS_SNP;
        }
        if (!leaf || !config.dt()) {
            rsvd |= SS_TM;
        }
        if ((e & rsvd) != 0) {
            return true;
        }
        if ((e & SS_PS) != 0 && level > 0) {
            boolean allowed = level == 1 ? (config.sllps() & VtdSs.SLLPS_2M) != 0
                    : level == 2 && (config.sllps() & VtdSs.SLLPS_1G) != 0;
            // a large leaf's address is aligned to its size
            return !allowed || (e & ADDR & ((1L << (12 + 9 * level)) - 1)) != 0;
        }
        return false;
    }

    /** The IOTLB permissions of a second-stage translation with accumulated R/W {@code perm}. */
    private static int ssPerms(int perm, boolean clean) {
        int p = 0;
        if ((perm & SS_R) != 0) {
            p |= Perm.READ | Perm.PRIV_READ | Perm.EXEC | Perm.PRIV_EXEC;
        }
        if ((perm & SS_W) != 0) {
            p |= Perm.WRITE | Perm.PRIV_WRITE;
        }
        return clean ? p | Perm.DIRTY_WRITABLE : p;
    }

    // ------------------------------------------------------------------------------------ first stage

    /**
     * Walks the first-stage table of {@code pe} for {@code iova} (its table addresses guest-physical and translated
     * through the second stage when {@code nested}), checks the request's rights, updates A/D. On success fills
     * {@code s.fsOa} (guest-physical when nested), {@code fsLg2, fsPerms, fsClean, fsGlobal}.
     */
    private boolean walkFs(Scratch s, CachedPasid pe, int did, int pasid, long iova, boolean nested) {
        int levels = pe.fsLevels();
        int top = levels - 1;
        long spans = spans(levels);
        long epoch = walkCache.epoch();
        long hits = walkCache.lookupEach(did, pasid, Stage.S1, iova, spans, s.fsCached);
        long us = FS_US;
        long rw = FS_RW;
        long xd = 0;
        long table = pe.fsptptr();
        int level = top;
        if (hits != 0) {
            stats.cacheHit();
            int span = Long.numberOfTrailingZeros(hits);
            long d = s.fsCached[span];
            us = d & FS_US;
            rw = d & FS_RW;
            xd = d & FS_XD;
            table = d & ADDR;
            level = (span - 12) / 9 - 1;
        } else {
            stats.cacheMiss();
        }
        int access = s.access;
        boolean write = Access.isWrite(access);
        boolean priv = Access.isPrivileged(access);
        long fetched = 0;
        boolean ok;
        while (true) {
            long ipa = table + 8L * index(iova, level);
            long pa = ipa;
            boolean tableWritable = true;
            if (nested) {
                if (!fits(ipa, inputBits(pe.ssLevels()))) {
                    ok = s.fail(FaultType.ADDRESS_SIZE, FaultReason.SM_NESTED_ADDRESS);
                    break;
                }
                if (!walkSs(s, did, pe.ssptptr(), pe.ssLevels(), ipa, true, pe.ssade(), (int) SS_R, false)) {
                    s.negLevel = -1;
                    if (s.fType == FaultType.PERMISSION) {
                        s.fReason = level == top ? FaultReason.SM_NESTED_TOP_READ : FaultReason.SM_NESTED_READ;
                    }
                    ok = false;
                    break;
                }
                pa = s.ssOa;
                tableWritable = (s.ssPerm & SS_W) != 0;
            }
            long e;
            try {
                e = readEntry(s, pa);
            } catch (MemoryAccessException x) {
                ok = s.fail(FaultType.EXTERNAL_ABORT, level == top ? FaultReason.SM_FS_TOP_ACCESS : SM_FS_ACCESS);
                break;
            }
            if ((e & FS_P) == 0) {
                s.negLevel = level;
                ok = s.fail(FaultType.TRANSLATION, SM_FS_NOT_PRESENT);
                break;
            }
            boolean leaf = level == 0 || (e & FS_PS) != 0;
            if (fsReserved(e, level, leaf)) {
                ok = s.fail(FaultType.BAD_CONFIGURATION, SM_FS_RESERVED);
                break;
            }
            us &= e;
            rw &= e;
            xd |= e & FS_XD;
            if (!leaf) {
                if ((e & FS_A) == 0 && !updateFs(s, pa, e, FS_A, tableWritable)) {
                    ok = false;
                    break;
                }
                int span = 12 + 9 * level;
                fetched |= 1L << span;
                s.fsFetched[span] = (e & ~(FS_US | FS_RW | FS_XD)) | us | rw | xd;
                s.fsLevels[span] = (byte) level;
                table = e & ADDR;
                level--;
                continue;
            }
            boolean user = us != 0;
            boolean writable = rw != 0;
            boolean noExec = xd != 0;
            boolean privWritable = writable || !pe.wpe();
            if (!priv && !user) {
                ok = s.fail(FaultType.PERMISSION, SM_FS_USER);
                break;
            }
            if (write && !(priv ? privWritable : writable)) {
                ok = s.fail(FaultType.PERMISSION, SM_WRITE);
                break;
            }
            if (Access.isInstruction(access) && noExec) {
                ok = s.fail(FaultType.PERMISSION, FaultReason.SM_EXECUTE);
                break;
            }
            long bits = FS_A | (write ? FS_D : 0);
            if ((e & bits) != bits && !updateFs(s, pa, e, bits, tableWritable)) {
                ok = false;
                break;
            }
            int lg2 = 12 + 9 * level;
            int perms = Perm.PRIV_READ;
            if (user) {
                perms |= Perm.READ;
                perms |= writable ? Perm.WRITE : 0;
                perms |= noExec ? 0 : Perm.EXEC;
            }
            perms |= privWritable ? Perm.PRIV_WRITE : 0;
            perms |= noExec ? 0 : Perm.PRIV_EXEC;
            s.fsOa = (e & ADDR & -(1L << lg2)) | (iova & ((1L << lg2) - 1));
            s.fsLg2 = lg2;
            s.fsPerms = perms;
            s.fsClean = !write && (e & FS_D) == 0 && (perms & (Perm.WRITE | Perm.PRIV_WRITE)) != 0;
            s.fsGlobal = (e & FS_G) != 0;
            ok = true;
            break;
        }
        if (fetched != 0) {
            walkCache.insertEach(did, pasid, Stage.S1, iova, fetched, s.fsFetched, s.fsLevels, epoch);
        }
        return ok;
    }

    /** Sets A/D bits of a first-stage entry; in a nested walk the second stage must allow writing its table. */
    private boolean updateFs(Scratch s, long pa, long e, long bits, boolean tableWritable) {
        if (!tableWritable) {
            return s.fail(FaultType.PERMISSION, FaultReason.SM_NESTED_WRITE);
        }
        return setBits(s, pa, e, bits) || s.fail(FaultType.EXTERNAL_ABORT, SM_FS_ACCESS);
    }

    /** Reserved bits of a first-stage entry at {@code level} (0 = PTE). */
    private boolean fsReserved(long e, int level, boolean leaf) {
        if ((e & aboveHaw & ADDR) != 0) {
            return true;
        }
        if (level == 0 || (e & FS_PS) == 0) {
            return false;
        }
        boolean allowed = level == 1 || (level == 2 && config.fl1gp());
        // a large leaf's address is aligned to its size; bit 12 is PAT
        return !allowed || (e & ADDR & ((1L << (12 + 9 * level)) - 1) & ~X86Pt.PAT_LARGE) != 0;
    }

    // ------------------------------------------------------------------------------------ helpers

    /**
     * Whether an injected WALK_READ_ABORT fails this read of the request's source id at {@code pa} (as an
     * external abort would). One volatile read when no fault is active.
     */
    private boolean injectedAbort(Scratch s, long pa, String what) {
        return injected.any()
                && injected.firing(InjectionKind.WALK_READ_ABORT, 0, s.sid, true, pa, pa, what) != null;
    }

    /** One paging entry from memory: charged, counted. */
    private long readEntry(Scratch s, long pa) throws MemoryAccessException {
        stats.tableRead();
        s.count(WALK_READS, 1);
        if (injectedAbort(s, pa, "paging entry")) {
            throw new MemoryAccessException(pa, 8, MemoryAccessException.Reason.INJECTED);
        }
        return memory.read64(pa);
    }

    /** Reads {@code count} words of one structure entry (one table read); false if the read aborted. */
    private boolean readWords(Scratch s, long pa, long[] w, int count, String what) {
        stats.tableRead();
        if (injectedAbort(s, pa, what)) {
            return false;
        }
        try {
            memory.read64s(pa, w, 0, count);
            return true;
        } catch (MemoryAccessException x) {
            return false;
        }
    }

    /**
     * Sets {@code bits} in the entry at {@code pa} last read as {@code e}, atomically, as hardware's locked update
     * does: retries while the entry changes under it. False if the write aborted.
     */
    private boolean setBits(Scratch s, long pa, long e, long bits) {
        long current = e;
        try {
            while (true) {
                stats.tableWrite();
                long witness = memory.compareAndExchange64(pa, current, current | bits);
                if (witness == current || (witness & bits) == bits) {
                    return true;
                }
                current = witness;
            }
        } catch (MemoryAccessException x) {
            return false;
        }
    }

    /** Records a fault for a lookup that returns null (reporting it unless FPD suppresses it). */
    private <T> T nullFault(Scratch s, FaultType type, int reason, boolean fpd) {
        s.fail(type, reason);
        report(s, fpd);
        return null;
    }

    private boolean sagawHas(int aw) {
        return aw >= 1 && aw <= 3 && (config.sagaw() & (1 << aw)) != 0;
    }

    /**
     * The input width of a second-stage table of {@code levels} levels (39, 48 or 57 bits: its AGAW), limited by the
     * unit's maximum guest address width.
     */
    private int inputBits(int levels) {
        return Math.min(12 + 9 * levels, config.guestAddressWidth());
    }

    /** Whether {@code address} is below 2^bits. */
    private static boolean fits(long address, int bits) {
        return bits >= 64 || (address >>> bits) == 0;
    }

    /** Whether {@code va} is canonical for a first-stage table of {@code levels} (4: 48-bit, 5: 57-bit). */
    private static boolean canonical(long va, int levels) {
        int bits = 12 + 9 * levels;
        return (va >> (bits - 1)) == 0 || (va >> (bits - 1)) == -1;
    }

    /** The walk-cache spans of a table of {@code levels}: 2^(12+9L) for the entries of levels L = 1..levels-1. */
    private static long spans(int levels) {
        long spans = 0;
        for (int l = 1; l < levels; l++) {
            spans |= 1L << (12 + 9 * l);
        }
        return spans;
    }

    private static int index(long address, int level) {
        return (int) (address >>> (12 + 9 * level)) & 511;
    }

    private static boolean bit(long value, int n) {
        return (value & (1L << n)) != 0;
    }

    /** The {@link Perm} bit an access needs. */
    private static int required(int access) {
        boolean priv = Access.isPrivileged(access);
        if (Access.isWrite(access)) {
            return priv ? Perm.PRIV_WRITE : Perm.WRITE;
        }
        if (Access.isInstruction(access)) {
            return priv ? Perm.PRIV_EXEC : Perm.EXEC;
        }
        return priv ? Perm.PRIV_READ : Perm.READ;
    }

    /** The unit's caches. */
    public VtdCaches caches() {
        return caches;
    }

    @Override
    public String toString() {
        return "VtdTranslator[" + name + ", " + caches + "]";
    }
}
