package org.iommuemu.device.smmuv3;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.concurrent.PerThread;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.L1CdDescriptor;
import org.iommuemu.core.smmuv3.L1StreamDescriptor;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.core.smmuv3.StreamTableBase;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.regs.RegisterFile;
import org.iommuemu.device.smmuv3.walk.DescriptorReader;
import org.iommuemu.device.smmuv3.walk.Stage1Context;
import org.iommuemu.device.smmuv3.walk.Stage2Context;
import org.iommuemu.device.smmuv3.walk.TableWalker;
import org.iommuemu.device.smmuv3.walk.WalkResult;
import org.iommuemu.device.xlate.ConfigCache;
import org.iommuemu.device.xlate.Iotlb;
import org.iommuemu.device.xlate.IotlbEntry;
import org.iommuemu.device.xlate.Perm;
import org.iommuemu.device.xlate.Stage;
import org.iommuemu.device.xlate.TranslationCaches;
import org.iommuemu.device.xlate.WalkCache;

/**
 * What the SMMU does with one incoming transaction while translation is enabled (spec §5, §6, §8):
 * <ol>
 * <li>the stream's STE, from the configuration cache or fetched from the linear or 2-level stream table and
 *     checked (C_BAD_STREAMID, F_STE_FETCH, C_BAD_STE); STE.Config abort terminates silently, bypass passes the
 *     address through;</li>
 * <li>with stage 1, the substream's CD (C_BAD_SUBSTREAMID, S1DSS for transactions without a substream,
 *     F_CD_FETCH, C_BAD_CD), fetched through stage 2 when nested;</li>
 * <li>the IOTLB, tagged by VMID and ASID; on a miss, the table walk (stage 1, stage 2 or nested), whose table
 *     descriptors the walk cache keeps by context and input block; the result is cached;</li>
 * <li>faults become event records: translation-class faults (F_TRANSLATION, F_ADDR_SIZE, F_ACCESS,
 *     F_PERMISSION) only when CD.R (stage 1) or STE.S2R (stage 2, and stage 1 of a stream without a CD) asks
 *     for them, the others always.</li>
 * </ol>
 * Nothing is re-read to stay coherent: a configuration or translation stays cached, stale if software changed
 * memory without invalidating, until a CFGI_* or TLBI_* command or capacity evicts it.
 *
 * <p>Thread-safe without the device lock: caches have their own; event writes take the device lock. The hit path
 * allocates nothing; misses allocate the decoded STE/CD they cache.
 */
final class Translator {
    private final String name;
    private final SmmuV3Config config;
    private final PhysicalMemory memory;
    private final TranslationCaches caches;
    private final Iotlb iotlb;
    private final WalkCache walkCache;
    private final ConfigCache<SmmuConfig> configs;
    private final EventQueue events;
    /** WALK_READ_ABORT: every STE, CD and descriptor read is an opportunity (one volatile read when none). */
    private final InstanceFaults faults;
    private final Register strtabBase;
    private final Register strtabCfg;
    private final int ias;
    private final PerThread<Scratch> scratch;
    private final long hitCost;
    private final long missCost;
    private final long readCost;
    private final long writeCost;

    // per-thread counters (Scratch.counts), written by their thread with opaque stores and summed on read
    private static final int TRANSLATIONS = 0;
    private static final int FAULTS = 1;
    private static final int WALKS = 2;
    private static final int WALK_READS = 3;
    private static final int MICRO_HITS = 4;
    private static final int SIM_NANOS = 5;
    private static final int CONFIG_HITS = 6;
    private static final int COUNTERS = 7;
    private static final VarHandle COUNT = MethodHandles.arrayElementVarHandle(long[].class);

    /**
     * Per-thread working state: the walker with its caching reader, the result holders, the counters, and a
     * one-entry micro-TLB: the last translation this thread resolved (configuration and IOTLB entry together),
     * valid while neither the configuration cache nor the IOTLB has been invalidated since (their epochs), so it
     * never serves anything the caches behind it would not.
     */
    private final class Scratch {
        final CachingReader reader = new CachingReader(this);
        final TableWalker walker = new TableWalker(reader);
        final WalkResult walk = new WalkResult();
        final IotlbEntry entry = new IotlbEntry();
        final long[] words = new long[8];
        final long[] counts = new long[COUNTERS];
        /** The stream being translated: what WALK_READ_ABORT's target.stream_ids compares. */
        int sid;
        /** An ATS translation request is being translated: translation-class faults are not recorded. */
        boolean quiet;
        // the micro-TLB
        boolean microValid;
        int microSid;
        int microSsid;
        long microConfigEpoch;
        long microTlbEpoch;
        long microVa;
        long microVaLast;
        long microOa;
        int microPerms;
        /** The remembered IOTLB entry's tags (VMID or domain id; ASID or PASID), for provenance. */
        int microTag;
        int microSubTag;
        // the last configurations this thread used, valid while the configuration cache's epoch is unchanged
        long memoEpoch = -1;
        int memoSid = -1;
        SmmuConfig memoStream;
        int memoCdSid = -1;
        int memoCdIndex = -1;
        SmmuConfig.Context memoContext;

        void count(int counter, long n) {
            COUNT.setOpaque(counts, counter, counts[counter] + n);
        }

        /** Charges simulated time for work the shared counters do not see. */
        void charge(long ns) {
            count(SIM_NANOS, ns);
        }

        void configHit() {
            count(CONFIG_HITS, 1);
            charge(hitCost);
        }

        void remember(int sid, int ssid, long configEpoch, long tlbEpoch, IotlbEntry e) {
            microValid = true;
            microSid = sid;
            microSsid = ssid;
            microConfigEpoch = configEpoch;
            microTlbEpoch = tlbEpoch;
            microVa = e.va();
            microVaLast = e.vaLast();
            microOa = e.oa();
            microPerms = e.perms();
            microTag = e.vmid();
            microSubTag = e.asid();
        }
    }

    Translator(String name, SmmuV3Config config, PhysicalMemory memory, TranslationCaches caches,
            ConfigCache<SmmuConfig> configs, EventQueue events, RegisterFile f, InstanceFaults faults) {
        this.faults = faults;
        this.name = name;
        this.config = config;
        this.memory = memory;
        this.caches = caches;
        this.iotlb = caches.iotlb();
        this.walkCache = caches.walkCache();
        this.configs = configs;
        this.events = events;
        this.strtabBase = f.register("STRTAB_BASE");
        this.strtabCfg = f.register("STRTAB_BASE_CFG");
        this.ias = config.oasBits(); // this SMMU's input address size: IAS = OAS (no 52-bit VA, no AArch32)
        this.hitCost = config.cost().cacheHitNs();
        this.missCost = config.cost().cacheMissNs();
        this.readCost = config.cost().tableReadNs();
        this.writeCost = config.cost().tableWriteNs();
        this.scratch = new PerThread<>(Scratch::new);
    }

    private long sum(int counter) {
        long total = 0;
        for (Scratch s : scratch.values()) {
            total += (long) COUNT.getOpaque(s.counts, counter);
        }
        return total;
    }

    long translations() {
        return sum(TRANSLATIONS);
    }

    long faults() {
        return sum(FAULTS);
    }

    long walks() {
        return sum(WALKS);
    }

    /** Descriptor reads walks made from guest memory; walk-cache hits are not reads. */
    long walkReads() {
        return sum(WALK_READS);
    }

    /** Translations served by the per-thread micro-TLBs (IOTLB hits that did not reach the shared IOTLB). */
    long microTlbHits() {
        return sum(MICRO_HITS);
    }

    /** Configuration lookups served by the per-thread memo of the last STE and CD (configuration cache hits). */
    long configMemoHits() {
        return sum(CONFIG_HITS);
    }

    /**
     * Simulated nanoseconds the translation path charged (cache lookups, table reads and writes), kept per
     * thread and added to the device's clock when read.
     */
    long translationNanos() {
        return sum(SIM_NANOS);
    }

    /** Translates one access of stream {@code sid} (substream {@code ssid}, or -1) with SMMUEN=1. */
    Translation translate(int sid, int ssid, long iova, int access, Translation out) {
        Scratch s = scratch.get();
        s.count(TRANSLATIONS, 1);
        s.sid = sid;
        long configEpoch = configs.epoch();
        long tlbEpoch = iotlb.epoch();
        if (s.microValid && s.microSid == sid && s.microSsid == ssid && s.microConfigEpoch == configEpoch
                && s.microTlbEpoch == tlbEpoch && Long.compareUnsigned(iova - s.microVa, s.microVaLast - s.microVa) <= 0) {
            int perms = s.microPerms;
            boolean dirtying = Access.isWrite(access) && (perms & Perm.DIRTY_WRITABLE) != 0;
            if ((perms & required(access)) != 0 && !dirtying) {
                s.count(MICRO_HITS, 1);
                s.count(SIM_NANOS, hitCost);
                long offset = iova - s.microVa;
                return out.ok(s.microOa + offset, s.microVaLast - iova + 1).fromIotlb(s.microTag, s.microSubTag,
                        s.microVa, 64 - Long.numberOfLeadingZeros(s.microVaLast - s.microVa));
            }
        }
        SmmuConfig c = stream(sid, ssid, iova, access, s, out);
        if (c == null) {
            return out;
        }
        SmmuConfig.Stream stream = (SmmuConfig.Stream) c;
        Ste ste = stream.ste();
        if (ste.isAbort()) {
            s.count(FAULTS, 1);
            return out.fault(FaultType.ABORTED, 0, "STE.Config is abort for stream " + sid);
        }
        if (ste.isBypass()) {
            return out.ok(iova, -1L);
        }
        boolean s1 = ste.stage1();
        boolean s2 = ste.stage2();
        Stage1Context c1 = null;
        // Without a CD there is no CD.R: the one stage-1 fault such a stream can take (an input above the IAS with
        // stage 1 bypassed, SMMUv3 §3.4) is recorded as STE.S2R says, as QEMU does.
        boolean recordS1 = ste.s2R();
        int asid = -1;
        if (s1) {
            int cdIndex;
            if (ssid >= 0) {
                if (ste.s1CdMax() == 0 || (ssid >>> ste.s1CdMax()) != 0) {
                    return bad(EventRecord.badSubstreamId(sid, ssid), out, "substream " + ssid
                            + " is beyond the CD table of stream " + sid + " (S1CDMax " + ste.s1CdMax() + ")");
                }
                cdIndex = ssid;
            } else if (ste.s1CdMax() == 0) {
                cdIndex = 0;
            } else {
                switch (ste.s1Dss()) {
                    case Ste.S1DSS_BYPASS -> cdIndex = -1;
                    case Ste.S1DSS_SSID0 -> cdIndex = 0;
                    default -> {
                        s.count(FAULTS, 1);
                        events.write(EventRecord.streamDisabled(sid));
                        return out.fault(FaultType.ABORTED, EventType.F_STREAM_DISABLED, "stream " + sid
                                + ": a transaction without a substream and STE.S1DSS=terminate");
                    }
                }
            }
            if (cdIndex >= 0) {
                SmmuConfig.Context ctx = context(sid, ssid, cdIndex, stream, iova, access, s, out);
                if (ctx == null) {
                    return out;
                }
                c1 = ctx.stage1();
                asid = c1.asid();
                recordS1 = ctx.cd().r();
            } else {
                s1 = false; // S1DSS bypass: stage 1 is skipped for transactions without a substream
            }
        }
        if (!s1 && !s2) {
            return out.ok(iova, -1L);
        }
        int vmid = stream.vmid();
        boolean write = Access.isWrite(access);
        IotlbEntry e = s.entry;
        if (iotlb.lookup(vmid, asid, iova, write, e)) {
            s.charge(hitCost);
            if ((e.perms() & required(access)) != 0) {
                s.remember(sid, ssid, configEpoch, tlbEpoch, e);
                return out.ok(e.outputAddress(iova), e.contiguousBytes(iova)).fromIotlb(e.vmid(), e.asid(), e.va(),
                        64 - Long.numberOfLeadingZeros(e.vaLast() - e.va()));
            }
            // the cached translation forbids the access: a permission fault, without walking. A nested entry
            // remembers what stage 1 alone allowed, so the record names the stage that denied the access.
            int need = required(access);
            boolean s2Fault = e.stage() == Stage.S2
                    || (e.stage() == Stage.NESTED && (Perm.firstStage(e.perms()) & need) != 0);
            long faultIpa = e.stage() == Stage.S2 ? iova : e.ipa() + (iova - e.va());
            s.count(FAULTS, 1);
            if ((s2Fault ? ste.s2R() : recordS1) && !s.quiet) {
                events.write(EventRecord.translationFault(EventType.F_PERMISSION, sid, ssid >= 0, Math.max(ssid, 0),
                        iova, !write, Access.isPrivileged(access), Access.isInstruction(access), s2Fault,
                        WalkResult.CLASS_IN, s2Fault ? ipaField(faultIpa) : 0));
            }
            return out.fault(FaultType.PERMISSION, EventType.F_PERMISSION, "the cached translation of "
                    + Bits.hex(iova) + " does not allow this access (" + Perm.toString(e.perms()) + ")");
        }
        s.charge(missCost);
        CachingReader reader = s.reader;
        long readsBefore = s.counts[WALK_READS];
        reader.begin(vmid, asid, iova, c1 == null ? 0 : granuleFor(c1, iova), s2 ? stream.stage2().granuleLg2() : 0,
                s1 && s2, walkCache.epoch());
        WalkResult w;
        if (s1 && s2) {
            w = s.walker.translateNested(c1, stream.stage2(), iova, access, s.walk);
        } else if (s1) {
            w = s.walker.translateStage1(c1, iova, access, s.walk);
        } else {
            w = s.walker.translateStage2(stream.stage2(), iova, access, s.walk);
        }
        reader.finish();
        s.count(WALKS, 1);
        switch (w.outcome()) {
            case OK -> {
                int stage = s1 && s2 ? Stage.NESTED : s1 ? Stage.S1 : Stage.S2;
                int perms = perms(w.permissions()) | (w.writableClean() ? Perm.DIRTY_WRITABLE : 0);
                if (stage == Stage.NESTED) {
                    perms = Perm.withFirstStage(perms, perms(w.stage1Permissions()));
                }
                boolean global = s1 && w.global();
                e.set(vmid, stage == Stage.S2 ? -1 : asid, global, w.inputBase(), w.sizeLg2(), 3 - w.level(),
                        w.outputBase(), stage == Stage.NESTED ? w.ipa() & -(1L << w.sizeLg2()) : 0, perms, stage);
                if (iotlb.insert(e, tlbEpoch)) {
                    s.remember(sid, ssid, configEpoch, tlbEpoch, e);
                }
                return out.ok(w.outputAddress(), w.contiguousBytes()).fromWalk()
                        .walkReads((int) (s.counts[WALK_READS] - readsBefore));
            }
            case FAULT -> {
                s.count(FAULTS, 1);
                WalkResult.Fault f = w.fault();
                boolean translationClass = f != WalkResult.Fault.WALK_EABT;
                boolean record = translationClass ? !s.quiet && (w.faultS2() ? ste.s2R() : recordS1) : true;
                if (record) {
                    events.write(walkEvent(w, sid, ssid, iova));
                }
                return out.fault(f.faultType(), f.eventType(), EventType.name(f.eventType()) + " at " + Bits.hex(iova)
                        + " (stage " + (w.faultS2() ? 2 : 1) + ", level " + w.faultLevel() + ")")
                        .walkReads((int) (s.counts[WALK_READS] - readsBefore));
            }
            default -> {
                boolean s2Bad = w.badConfigStage() == WalkResult.STAGE_2;
                return bad(s2Bad ? EventRecord.badSte(sid, ssid >= 0, Math.max(ssid, 0))
                        : EventRecord.badCd(sid, ssid >= 0, Math.max(ssid, 0)), out, w.badConfigReason());
            }
        }
    }

    /**
     * An ATS translation request of stream {@code sid} with SMMUEN=1 (docs/ATS.md): allowed when the STE says
     * EATS=1 (full ATS), then translated as an untranslated access with the same access, except that
     * translation-class faults are not recorded (the completion reports no access instead). EATS=0 refuses it with
     * F_BAD_ATS_TREQ; an abort or bypass STE refuses it without an event; EATS=2 (split-stage) is not modelled.
     */
    Translation translationRequest(int sid, int ssid, long iova, int access, Translation out) {
        Scratch s = scratch.get();
        s.sid = sid;
        SmmuConfig c = stream(sid, ssid, iova, access, s, out);
        if (c == null) {
            return out;
        }
        Ste ste = ((SmmuConfig.Stream) c).ste();
        if (ste.isAbort() || ste.isBypass()) {
            s.count(FAULTS, 1);
            return out.fault(FaultType.ABORTED, 0, "STE.Config of stream " + sid + " is " + (ste.isAbort() ? "abort"
                    : "bypass") + ": ATS translation requests are refused (Unsupported Request)");
        }
        switch (ste.eats()) {
            case Ste.EATS_TRANS -> { }
            case Ste.EATS_ABT -> {
                s.count(FAULTS, 1);
                events.write(EventRecord.badAtsTranslationRequest(sid, ssid >= 0, Math.max(ssid, 0), iova,
                        !Access.isWrite(access)));
                return out.fault(FaultType.ABORTED, EventType.F_BAD_ATS_TREQ, "F_BAD_ATS_TREQ: STE.EATS=0 for stream "
                        + sid + ": ATS is not enabled for it (Unsupported Request)");
            }
            default -> {
                return out.unimplemented("STE.EATS=" + ste.eats() + " (split-stage ATS) of stream " + sid
                        + " is not modelled");
            }
        }
        s.quiet = true;
        try {
            return translate(sid, ssid, iova, access & ~Access.TRANSLATION_REQUEST, out);
        } finally {
            s.quiet = false;
        }
    }

    /**
     * A translated request of stream {@code sid} at physical address {@code pa} with SMMUEN=1, checked as with
     * CR0.ATSCHK=1: the STE must say EATS=1 (it then passes through, unwalked) or bypass; EATS=0 aborts it with
     * F_TRANSL_FORBIDDEN; an abort STE aborts it; EATS=2 (split-stage) is not modelled.
     */
    Translation translatedRequest(int sid, int ssid, long pa, int access, Translation out) {
        Scratch s = scratch.get();
        s.sid = sid;
        SmmuConfig c = stream(sid, ssid, pa, access, s, out);
        if (c == null) {
            return out;
        }
        Ste ste = ((SmmuConfig.Stream) c).ste();
        if (ste.isAbort()) {
            s.count(FAULTS, 1);
            return out.fault(FaultType.ABORTED, 0, "STE.Config is abort for stream " + sid);
        }
        if (ste.isBypass() || ste.eats() == Ste.EATS_TRANS) {
            return out.ok(pa, -1L);
        }
        if (ste.eats() == Ste.EATS_ABT) {
            s.count(FAULTS, 1);
            events.write(EventRecord.translationForbidden(sid, pa, !Access.isWrite(access)));
            return out.fault(FaultType.ABORTED, EventType.F_TRANSL_FORBIDDEN, "F_TRANSL_FORBIDDEN: a translated "
                    + "request of stream " + sid + " whose STE.EATS is 0");
        }
        return out.unimplemented("STE.EATS=" + ste.eats() + " (split-stage ATS) of stream " + sid
                + " is not modelled");
    }

    private static int granuleFor(Stage1Context c1, long iova) {
        return ((iova >>> 55) & 1) != 0 ? c1.ttb1().granuleLg2() : c1.ttb0().granuleLg2();
    }

    private static EventRecord walkEvent(WalkResult w, int sid, int ssid, long iova) {
        boolean ssv = ssid >= 0;
        int ss = Math.max(ssid, 0);
        boolean read = !Access.isWrite(w.access());
        if (w.fault() == WalkResult.Fault.WALK_EABT) {
            return EventRecord.walkExternalAbort(sid, ssv, ss, iova, read, w.pnu(), w.ind(), w.faultS2(),
                    w.faultClass(), w.fetchAddress());
        }
        return EventRecord.translationFault(w.fault().eventType(), sid, ssv, ss, iova, read, w.pnu(), w.ind(),
                w.faultS2(), w.faultClass(), ipaField(w.faultIpa()));
    }

    /** The IPA field of an event record, bits [51:12], for a stage-2 fault on {@code ipa}. */
    private static long ipaField(long ipa) {
        return ipa & EventRecord.IPA.mask();
    }

    /** The Perm bit an access needs. */
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

    /** The walker's permission bits in the cache's encoding. */
    private static int perms(int walk) {
        int p = 0;
        p |= (walk & WalkResult.PRIV_READ) != 0 ? Perm.PRIV_READ : 0;
        p |= (walk & WalkResult.PRIV_WRITE) != 0 ? Perm.PRIV_WRITE : 0;
        p |= (walk & WalkResult.PRIV_EXEC) != 0 ? Perm.PRIV_EXEC : 0;
        p |= (walk & WalkResult.UNPRIV_READ) != 0 ? Perm.READ : 0;
        p |= (walk & WalkResult.UNPRIV_WRITE) != 0 ? Perm.WRITE : 0;
        p |= (walk & WalkResult.UNPRIV_EXEC) != 0 ? Perm.EXEC : 0;
        return p;
    }

    private Translation bad(EventRecord event, Translation out, String reason) {
        scratch.get().count(FAULTS, 1);
        events.write(event);
        FaultType type = event.type() == EventType.F_STE_FETCH || event.type() == EventType.F_CD_FETCH
                ? FaultType.EXTERNAL_ABORT : FaultType.BAD_CONFIGURATION;
        return out.fault(type, event.type(), EventType.name(event.type()) + ": " + reason);
    }

    // ------------------------------------------------------------------ configuration and table reads

    /**
     * An injected WALK_READ_ABORT: when one fires for this read of stream {@code sid} at physical address
     * {@code pa}, the read fails as an external abort would. One volatile read when no fault is active.
     */
    private void injectAbort(int sid, long pa, String what) throws MemoryAccessException {
        if (faults.any() && faults.firing(InjectionKind.WALK_READ_ABORT, 0, sid & 0xFFFF_FFFFL, true, pa, pa, what)
                != null) {
            throw new MemoryAccessException(pa, 8, MemoryAccessException.Reason.INJECTED);
        }
    }

    private long read64(int sid, long pa, String what) throws MemoryAccessException {
        injectAbort(sid, pa, what);
        return memory.read64(pa);
    }

    /** One 64-byte STE or CD, as one read. */
    private void readEntry(int sid, long pa, long[] into, String what) throws MemoryAccessException {
        injectAbort(sid, pa, what);
        memory.read64s(pa, into, 0, 8);
    }

    // ------------------------------------------------------------------ STE

    /** The stream's configuration, or null with {@code out} set to the fault. */
    private SmmuConfig stream(int sid, int ssid, long iova, int access, Scratch s, Translation out) {
        long epoch = configs.epoch();
        if (s.memoSid == sid && s.memoEpoch == epoch) {
            s.configHit();
            return s.memoStream;
        }
        SmmuConfig cached = configs.lookup(sid, ConfigCache.NO_SUBSTREAM);
        if (cached != null) {
            s.charge(hitCost);
            return memoStream(s, sid, cached, epoch);
        }
        s.charge(missCost);
        boolean ssv = ssid >= 0;
        int ss = Math.max(ssid, 0);
        long base = StreamTableBase.address(strtabBase.value());
        int cfg = (int) strtabCfg.value();
        int log2 = StreamTableBase.log2Size(cfg);
        if (!StreamTableBase.inRange(sid, log2, config.sidBits())) {
            bad(EventRecord.badStreamId(sid, ssv, ss), out, "stream " + sid + " is beyond the stream table (2^"
                    + Math.min(log2, config.sidBits()) + " entries)");
            return null;
        }
        long steAddress;
        int fmt = StreamTableBase.fmt(cfg);
        if (fmt == StreamTableBase.FMT_LINEAR) {
            steAddress = StreamTableBase.linearSteAddress(base, sid);
        } else if (fmt == StreamTableBase.FMT_2LVL && config.twoLevelStreamTable()) {
            int split = StreamTableBase.split(cfg);
            if (split != 6 && split != 8 && split != 10) {
                bad(EventRecord.badStreamId(sid, ssv, ss), out, "STRTAB_BASE_CFG.SPLIT " + split
                        + " is not 6, 8 or 10");
                return null;
            }
            long l1Address = StreamTableBase.l1DescriptorAddress(base, sid, split);
            long l1;
            try {
                l1 = read64(sid, l1Address, "L1 stream descriptor");
                s.charge(readCost);
            } catch (MemoryAccessException e) {
                bad(EventRecord.steFetch(sid, ssv, ss, l1Address), out, "reading the L1 stream descriptor at "
                        + Bits.hex(l1Address) + " aborted");
                return null;
            }
            int span = L1StreamDescriptor.span(l1);
            long index = StreamTableBase.l2Index(sid, split);
            if (span == 0 || span > split + 1 || index >= 1L << (span - 1)) {
                bad(EventRecord.badSte(sid, ssv, ss), out, "the L1 stream descriptor for stream " + sid
                        + " has SPAN " + span + ": no STE for it");
                return null;
            }
            steAddress = L1StreamDescriptor.l2Ptr(l1) + index * Ste.SIZE;
        } else {
            bad(EventRecord.badStreamId(sid, ssv, ss), out, "STRTAB_BASE_CFG.FMT " + fmt + " is not implemented");
            return null;
        }
        try {
            readEntry(sid, steAddress, s.words, "STE");
            s.charge(readCost);
        } catch (MemoryAccessException e) {
            bad(EventRecord.steFetch(sid, ssv, ss, steAddress), out, "reading the STE at " + Bits.hex(steAddress)
                    + " aborted");
            return null;
        }
        Ste ste;
        try {
            ste = Ste.decode(s.words);
        } catch (RuntimeException e) {
            bad(EventRecord.badSte(sid, ssv, ss), out, "undecodable STE: " + e.getMessage());
            return null;
        }
        String why = checkSte(ste);
        Stage2Context s2 = null;
        if (why == null && ste.stage2()) {
            s2 = stage2(ste);
            why = Stage2Context.validate(s2);
        }
        if (why != null) {
            bad(EventRecord.badSte(sid, ssv, ss), out, "stream " + sid + ": " + why);
            return null;
        }
        SmmuConfig.Stream stream = new SmmuConfig.Stream(ste, s2, config.stage2() ? ste.s2Vmid() : 0);
        if (configs.insert(sid, ConfigCache.NO_SUBSTREAM, ConfigCache.NO_TAG, stream, epoch)) {
            memoStream(s, sid, stream, epoch);
        }
        return stream;
    }

    /**
     * Remembers the stream's configuration for this thread while the configuration cache's epoch stays
     * {@code epoch}: a CFGI_* changes it, so the memo never serves what the cache would not have.
     */
    private static SmmuConfig memoStream(Scratch s, int sid, SmmuConfig stream, long epoch) {
        if (s.memoEpoch != epoch) {
            s.memoCdSid = -1;
        }
        s.memoEpoch = epoch;
        s.memoSid = sid;
        s.memoStream = stream;
        return stream;
    }

    private static SmmuConfig.Context memoContext(Scratch s, int sid, int cdIndex, SmmuConfig.Context ctx,
            long epoch) {
        if (s.memoEpoch != epoch) {
            s.memoSid = -1;
        }
        s.memoEpoch = epoch;
        s.memoCdSid = sid;
        s.memoCdIndex = cdIndex;
        s.memoContext = ctx;
        return ctx;
    }

    /** Why an STE is unusable on this SMMU (C_BAD_STE), or null. */
    private String checkSte(Ste ste) {
        if (!ste.valid()) {
            return "STE.V is 0";
        }
        if (ste.isAbort() || ste.isBypass()) {
            return null;
        }
        if (ste.stage1() && !config.stage1()) {
            return "STE.Config asks for stage 1, which this SMMU does not implement";
        }
        if (ste.stage2() && !config.stage2()) {
            return "STE.Config asks for stage 2, which this SMMU does not implement";
        }
        if (ste.stage1()) {
            if (ste.s1Fmt() != Ste.S1FMT_LINEAR && (!config.twoLevelCd() || Ste.cdLeafLg2(ste.s1Fmt()) < 0)) {
                return "S1Fmt " + ste.s1Fmt() + " (2-level CD tables) is not implemented";
            }
            if (ste.s1CdMax() > config.ssidBits()) {
                return "S1CDMax " + ste.s1CdMax() + " exceeds the " + config.ssidBits() + "-bit SubstreamID";
            }
        }
        if (ste.stage2()) {
            if (!ste.s2Aa64()) {
                return "S2AA64 is 0: AArch32 stage-2 tables are not implemented";
            }
            if (ste.s2Endi()) {
                return "S2ENDI is 1: big-endian tables are not implemented";
            }
            if (ste.s2S()) {
                return "S2S is 1: stalling is not implemented (IDR0.STALL_MODEL)";
            }
            // SMMUv3 STE.S2HA/S2HD: ILLEGAL to set S2HA if IDR0.HTTU == 0b00, S2HD if IDR0.HTTU == 0b0x
            if (ste.s2Ha() && !config.httuAccess()) {
                return "S2HA is 1 but this SMMU has no hardware access-flag update (IDR0.HTTU 0)";
            }
            if (ste.s2Hd() && !config.httuDirty()) {
                return "S2HD is 1 but this SMMU has no hardware dirty-state update (IDR0.HTTU " + config.httu() + ")";
            }
            int g = Ste.granuleLg2ForS2Tg(ste.s2Tg());
            if (g < 0 || !granuleImplemented(g)) {
                return "S2TG " + ste.s2Tg() + " names a granule this SMMU does not implement";
            }
            if (Encodings.oasBits(ste.s2Ps()) < 0) {
                return "S2PS " + ste.s2Ps() + " is reserved";
            }
        }
        return null;
    }

    private Stage2Context stage2(Ste ste) {
        return Stage2Context.builder()
                .vmid(ste.s2Vmid())
                .t0sz(ste.s2T0sz())
                .sl0(ste.s2Sl0())
                .granuleLg2(Ste.granuleLg2ForS2Tg(ste.s2Tg()))
                .psBits(Math.min(Encodings.oasBits(ste.s2Ps()), config.oasBits()))
                .ttb(ste.s2Ttb())
                .affd(ste.s2Affd())
                .ha(ste.s2Ha() && config.httuAccess())
                .hd(ste.s2Hd() && config.httuDirty())
                .ptw(ste.s2Ptw())
                .fwb(false)
                .iasBits(ias)
                .build();
    }

    private boolean granuleImplemented(int g) {
        return g == 12 ? config.granule4k() : g == 14 ? config.granule16k() : g == 16 && config.granule64k();
    }

    // ------------------------------------------------------------------ CD

    /** The substream's CD (index {@code cdIndex}), or null with {@code out} set to the fault. */
    private SmmuConfig.Context context(int sid, int ssid, int cdIndex, SmmuConfig.Stream stream, long iova,
            int access, Scratch s, Translation out) {
        long epoch = configs.epoch();
        if (s.memoCdSid == sid && s.memoCdIndex == cdIndex && s.memoEpoch == epoch) {
            s.configHit();
            return s.memoContext;
        }
        SmmuConfig cached = configs.lookup(sid, cdIndex);
        if (cached != null) {
            s.charge(hitCost);
            return memoContext(s, sid, cdIndex, (SmmuConfig.Context) cached, epoch);
        }
        s.charge(missCost);
        boolean ssv = ssid >= 0;
        int ss = Math.max(ssid, 0);
        Ste ste = stream.ste();
        Stage2Context s2 = stream.stage2();
        long cdAddress;
        long ptr = ste.s1ContextPtr();
        if (ste.s1CdMax() == 0 || ste.s1Fmt() == Ste.S1FMT_LINEAR) {
            cdAddress = ptr + (long) cdIndex * Cd.SIZE;
        } else {
            int leafLg2 = Ste.cdLeafLg2(ste.s1Fmt());
            long l1Address = ptr + ((long) (cdIndex >>> leafLg2)) * L1CdDescriptor.SIZE;
            long l1Pa = ipaToPa(s2, l1Address, sid, ssid, iova, access, s, out);
            if (l1Pa == -1) {
                return null;
            }
            long l1;
            try {
                l1 = read64(sid, l1Pa, "L1 CD descriptor");
                s.charge(readCost);
            } catch (MemoryAccessException e) {
                bad(EventRecord.cdFetch(sid, ssv, ss, l1Address), out, "reading the L1 CD descriptor at "
                        + Bits.hex(l1Address) + " aborted");
                return null;
            }
            if (!L1CdDescriptor.valid(l1)) {
                bad(EventRecord.badSubstreamId(sid, ss), out, "the L1 CD descriptor for substream " + cdIndex
                        + " of stream " + sid + " is not valid");
                return null;
            }
            cdAddress = L1CdDescriptor.l2Ptr(l1) + ((long) cdIndex & ((1L << leafLg2) - 1)) * Cd.SIZE;
        }
        long cdPa = ipaToPa(s2, cdAddress, sid, ssid, iova, access, s, out);
        if (cdPa == -1) {
            return null;
        }
        try {
            readEntry(sid, cdPa, s.words, "CD");
            s.charge(readCost);
        } catch (MemoryAccessException e) {
            bad(EventRecord.cdFetch(sid, ssv, ss, cdAddress), out, "reading the CD at " + Bits.hex(cdAddress)
                    + " aborted");
            return null;
        }
        Cd cd;
        try {
            cd = Cd.decode(s.words);
        } catch (RuntimeException e) {
            bad(EventRecord.badCd(sid, ssv, ss), out, "undecodable CD: " + e.getMessage());
            return null;
        }
        String why = checkCd(cd);
        Stage1Context c1 = null;
        if (why == null) {
            c1 = stage1(cd, s2 != null);
            why = Stage1Context.validate(c1);
        }
        if (why != null) {
            bad(EventRecord.badCd(sid, ssv, ss), out, "stream " + sid + " substream " + cdIndex + ": " + why);
            return null;
        }
        SmmuConfig.Context ctx = new SmmuConfig.Context(cd, c1);
        if (configs.insert(sid, cdIndex, ConfigCache.NO_TAG, ctx, epoch)) {
            memoContext(s, sid, cdIndex, ctx, epoch);
        }
        return ctx;
    }

    /**
     * An IPA of a CD structure translated through stage 2 (nested), or {@code ipa} itself; -1 after a fault. A fault
     * record describes the transaction ({@code iova}, {@code access}) whose CD fetch faulted.
     */
    private long ipaToPa(Stage2Context s2, long ipa, int sid, int ssid, long iova, int access, Scratch s,
            Translation out) {
        if (s2 == null) {
            return ipa;
        }
        s.reader.disable();
        WalkResult w = s.walker.translateStage2(s2, ipa, 0, s.walk);
        if (w.isOk()) {
            return w.outputAddress();
        }
        s.count(FAULTS, 1);
        boolean ssv = ssid >= 0;
        int ss = Math.max(ssid, 0);
        if (w.outcome() == WalkResult.Outcome.FAULT) {
            // a stage-2 fault while fetching configuration: reported with CLASS=CD (spec §8)
            boolean read = !Access.isWrite(access);
            boolean priv = Access.isPrivileged(access);
            boolean instr = Access.isInstruction(access);
            EventRecord event = w.fault() == WalkResult.Fault.WALK_EABT
                    ? EventRecord.walkExternalAbort(sid, ssv, ss, iova, read, priv, instr, true, WalkResult.CLASS_CD,
                            w.fetchAddress())
                    : EventRecord.translationFault(w.fault().eventType(), sid, ssv, ss, iova, read, priv, instr, true,
                            WalkResult.CLASS_CD, ipaField(ipa));
            events.write(event);
            out.fault(w.fault().faultType(), w.fault().eventType(), EventType.name(w.fault().eventType())
                    + " in stage 2 while fetching the CD at IPA " + Bits.hex(ipa));
        } else {
            bad(EventRecord.badSte(sid, ssv, ss), out, w.badConfigReason());
        }
        return -1;
    }

    /** Why a CD is unusable on this SMMU (C_BAD_CD), or null. */
    private String checkCd(Cd cd) {
        if (!cd.valid()) {
            return "CD.V is 0";
        }
        if (!cd.aa64()) {
            return "CD.AA64 is 0: AArch32 stage-1 tables are not implemented";
        }
        if (cd.endi()) {
            return "CD.ENDI is 1: big-endian tables are not implemented";
        }
        if (cd.s()) {
            return "CD.S is 1: stalling is not implemented (IDR0.STALL_MODEL)";
        }
        // SMMUv3 CD.HA/HD: ILLEGAL to set HA if IDR0.HTTU == 0b00, HD if IDR0.HTTU == 0b0x
        if (cd.ha() && !config.httuAccess()) {
            return "CD.HA is 1 but this SMMU has no hardware access-flag update (IDR0.HTTU 0)";
        }
        if (cd.hd() && !config.httuDirty()) {
            return "CD.HD is 1 but this SMMU has no hardware dirty-state update (IDR0.HTTU " + config.httu() + ")";
        }
        if (!config.asid16() && (cd.asid() >>> 8) != 0) {
            return "ASID " + cd.asid() + " needs 16-bit ASIDs, which this SMMU does not implement";
        }
        if (!cd.epd0()) {
            int g = Encodings.granuleLg2ForTg0(cd.tg0());
            if (g < 0 || !granuleImplemented(g)) {
                return "TG0 " + cd.tg0() + " names a granule this SMMU does not implement";
            }
        }
        if (!cd.epd1()) {
            int g = Encodings.granuleLg2ForTg1(cd.tg1());
            if (g < 0 || !granuleImplemented(g)) {
                return "TG1 " + cd.tg1() + " names a granule this SMMU does not implement";
            }
        }
        if (Encodings.oasBits(cd.ips()) < 0) {
            return "IPS " + cd.ips() + " is reserved";
        }
        return null;
    }

    private Stage1Context stage1(Cd cd, boolean nested) {
        Stage1Context.TableHalf t0 = cd.epd0() ? Stage1Context.TableHalf.DISABLED
                : Stage1Context.TableHalf.of(cd.t0sz(), Encodings.granuleLg2ForTg0(cd.tg0()), cd.ttb0());
        Stage1Context.TableHalf t1 = cd.epd1() ? Stage1Context.TableHalf.DISABLED
                : Stage1Context.TableHalf.of(cd.t1sz(), Encodings.granuleLg2ForTg1(cd.tg1()), cd.ttb1());
        int oas = Math.min(Encodings.oasBits(cd.ips()), nested ? ias : config.oasBits());
        return Stage1Context.builder()
                .ttb0(t0)
                .ttb1(t1)
                .oasBits(oas)
                .affd(cd.affd())
                .ha(cd.ha() && config.httuAccess())
                .hd(cd.hd() && config.httuDirty())
                .wxn(cd.wxn())
                .asid(cd.asid())
                .tbi0(cd.tbi0())
                .tbi1(cd.tbi1())
                .mair(cd.mair())
                .build();
    }

    // ------------------------------------------------------------------ the walk cache

    /**
     * The walker's view of guest memory: every descriptor read is charged to the cost model, and table
     * descriptors (not leaves) of the walk in progress are kept in the walk cache, tagged by the walk's VMID and
     * ASID and keyed by the input block the descriptor covers (so TLBI by address drops exactly what it should).
     * The cache is consulted once per walk, for every level together (the first cacheable read probes each span
     * the table geometry uses), and the descriptors the walk read are stored together when it ends
     * ({@link #finish}): two acquisitions of the cache's monitor per walk, not two per level. Stage-2 lookups of
     * table and output addresses inside a nested walk are not cached (their input is an IPA the reader is not
     * told).
     */
    private final class CachingReader implements DescriptorReader {
        private final Scratch s;
        private final long[] cached = new long[64];
        private final long[] fetched = new long[64];
        private final byte[] levels = new byte[64];
        private boolean enabled;
        private boolean probed;
        private long hitSpans;
        private long fetchedSpans;
        private int vmid;
        private int asid;
        private int stage;
        private long va;
        private int s1Granule;
        private int s2Granule;
        private boolean nested;
        private long epoch;

        CachingReader(Scratch s) {
            this.s = s;
        }

        void begin(int vmid, int asid, long va, int s1Granule, int s2Granule, boolean nested, long epoch) {
            this.enabled = true;
            this.probed = false;
            this.hitSpans = 0;
            this.fetchedSpans = 0;
            this.vmid = vmid;
            this.asid = asid;
            this.va = va;
            this.s1Granule = s1Granule;
            this.s2Granule = s2Granule;
            this.nested = nested;
            this.epoch = epoch;
        }

        /** Stores the table descriptors the walk read from memory; ends the walk's use of the cache. */
        void finish() {
            if (enabled && fetchedSpans != 0) {
                walkCache.insertEach(vmid, stage == Stage.S1 ? asid : -1, stage, va, fetchedSpans, fetched, levels,
                        epoch);
            }
            enabled = false;
        }

        void disable() {
            enabled = false;
        }

        /** One descriptor read from guest memory: charged, and counted as a walk read (walk-cache hits are not). */
        private long fromMemory(long pa) throws MemoryAccessException {
            s.charge(readCost);
            s.count(WALK_READS, 1);
            injectAbort(s.sid, pa, "table descriptor");
            return memory.read64(pa);
        }

        @Override
        public long read(long pa, int stage, int level) throws MemoryAccessException {
            if (!enabled || level >= 3 || (nested && stage == 2)) {
                return fromMemory(pa);
            }
            int g = stage == 1 ? s1Granule : s2Granule;
            int span = g + (3 - level) * (g - 3);
            if (span >= 63) {
                return fromMemory(pa);
            }
            if (!probed) {
                probed = true;
                this.stage = stage == 1 ? Stage.S1 : Stage.S2;
                // the spans of levels 0..2 for this granule: the blocks their next-level tables translate
                long spans = 0;
                for (int l = level; l < 3; l++) {
                    int sp = g + (3 - l) * (g - 3);
                    if (sp < 63) {
                        spans |= 1L << sp;
                    }
                }
                hitSpans = walkCache.lookupEach(vmid, stage == 1 ? asid : -1, this.stage, va, spans, cached);
            }
            if ((hitSpans & (1L << span)) != 0) {
                s.charge(hitCost);
                return cached[span];
            }
            long d = fromMemory(pa);
            if ((d & 3) == 3) {
                fetched[span] = d;
                levels[span] = (byte) (3 - level);
                fetchedSpans |= 1L << span;
            }
            return d;
        }

        @Override
        public long compareAndExchange(long pa, long expected, long update, int stage, int level)
                throws MemoryAccessException {
            s.charge(writeCost);
            return memory.compareAndExchange64(pa, expected, update);
        }
    }

    @Override
    public String toString() {
        return "Translator[" + name + ", " + caches + "]";
    }
}
