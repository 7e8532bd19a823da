package org.iommuemu.core.driver.smmuv3;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.api.IommuInstanceOps;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PtFormat;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.Ste;

/**
 * The SMMUv3 driver's side of the IOMMU API: {@link IommuDomain}s whose arm64 LPAE page tables the SMMU walks
 * for the streams and substreams attached to them, and the invalidations the domains ask for
 * ({@link IommuInstanceOps}).
 *
 * <p><b>Contexts.</b> A domain gets a context on this SMMU at its first use here: a stage-1 domain an ASID (VMID 0
 * tags stage-1-only translations, as Linux does), a stage-2 domain a VMID, both from 1 up to the implemented width;
 * a stage-1 domain nested on a stage-2 domain an ASID under its parent's VMID. Uses are whole streams, substreams
 * and (for a stage-2 parent) nested streams. The last use's end flushes the context (TLBI_NH_ASID or
 * TLBI_S12_VMALL), detaches the domain from this instance and frees the id.
 *
 * <p><b>Whole streams</b> ({@link #attachStream}): for stage 1 a one-entry CD table (CD with TTB0, T0SZ, TG0, IPS,
 * MAIR, ASID, as Linux's {@code arm_smmu_make_s1_cd}) and then the STE pointing at it (S1DSS=SSID0); for stage 2
 * the STE's stage-2 fields (VMID, S2T0SZ, S2SL0, S2TG, S2PS, S2TTB, S2R). {@link #detachStream} makes the STE
 * abort and frees the CD table. Every STE write ends with CFGI_STE and a CMD_SYNC ({@link SmmuV3Driver#writeSte}).
 *
 * <p><b>Substreams</b> ({@link #attachSubstream}): a stage-1 domain for one SubstreamID (PASID) of a stream. The
 * first substream gives the stream a CD table with room for substreams ({@link CdTable}: S1CDMax =
 * {@link #substreamBits()}, linear while it fits in one leaf table, else 2-level with 64 KB leaves as Linux, or
 * 4 KB ones by option, allocated on demand), filled (CD 0 of the whole-stream domain, if any, and the new CD)
 * before the STE is pointed at it; later substreams only write their CD (V=1 last) followed by CFGI_CD and
 * CMD_SYNC. Traffic without a SubstreamID uses CD 0 when a stage-1 domain is attached to the whole stream
 * (S1DSS=SSID0), and is terminated otherwise (S1DSS=TERMINATE: F_STREAM_DISABLED), as Linux. SubstreamID 0 is that
 * CD, so it cannot be attached on its own. {@link #detachSubstream} clears CD.V (CFGI_CD, CMD_SYNC) and then ends
 * the domain's use; a stream left with neither substreams nor a whole-stream domain aborts again and its CD table
 * is freed. Detaching the whole stream while substreams remain switches S1DSS to TERMINATE and then clears CD 0.
 * A stream with substreams cannot take a stage-2 or a nested domain, and a stream with one of those cannot take
 * substreams (INCOMPATIBLE_INSTANCE).
 *
 * <p><b>Nesting</b> ({@link #attachNested}): a stage-1 domain on top of a stage-2 parent: STE.Config = stage 1 +
 * stage 2, the stage-2 fields from the parent (its VMID and table), a one-entry CD table whose CD points at the
 * stage-1 table. The SMMU reads S1ContextPtr, TTB0 and every stage-1 table descriptor as IPAs through stage 2, so
 * the stage-1 domain's page table and the CD table come from a {@link NestedTables} block the parent maps at
 * IPA == PA; the stage-1 domain's leaves map iovas to IPAs, which the parent maps to PAs. The stage-1 domain's
 * context is an ASID under the parent's VMID, so its unmaps are TLBI_NH_VA with that VMID; the parent's unmaps are
 * TLBI_S2_IPA followed by TLBI_NH_ALL of its VMID while nested streams use it (combined stage 1 + 2 entries are
 * tagged by the stage-1 address, so only a stage-1 invalidation removes them; Linux does the same for a nesting
 * parent).
 *
 * <p><b>Invalidation</b> ({@link #iotlbSync}): the gathered range becomes TLBI_NH_VA (stage 1) or TLBI_S2_IPA
 * (stage 2) commands planned by {@link TlbiPlanner} (range commands with RIL, one per gathered page otherwise,
 * the whole context beyond the threshold), leaf-only unless the unmap freed tables, written straight into the
 * command queue in batches of at most 64 with one CMD_SYNC each. {@link #flushIotlbAll} is TLBI_NH_ASID or
 * TLBI_S12_VMALL with a CMD_SYNC. The SMMU caches no invalid entries, so maps need no sync
 * ({@link #needsMapSync} is false).
 *
 * <p><b>Faults.</b> Every event record the driver reads goes to the {@link FaultHandler} ({@link #setFaultHandler})
 * of the domain it concerns: the domain at (StreamID, SubstreamID) for a record that carries a SubstreamID other
 * than 0; for a nested stream, the stage-2 parent for a stage-2 fault (S2 = 1) and the stage-1 domain otherwise
 * (as Linux hands stage-1 faults of a nested master to its owner and keeps stage-2 ones); otherwise the
 * whole-stream domain. Records of domains without a handler are counted ({@link #unhandledEvents}).
 *
 * <p>Thread-safe: attach and detach serialise on this object (and then take the command queue's monitor, never
 * the other way round); invalidations from any number of mapping threads serialise on the command queue and
 * allocate nothing.
 */
public final class SmmuV3Domains implements IommuInstanceOps {
    /** Which stage a domain's table is walked at. */
    public enum Stage {
        S1,
        S2
    }

    /**
     * Told of each event record the driver reads for a stream attached to a domain (Linux's
     * {@code iommu_set_fault_handler}). Called on the thread draining the event queue, with the driver's queue
     * lock held: return quickly, do not call back into the driver.
     */
    @FunctionalInterface
    public interface FaultHandler {
        void onFault(IommuDomain domain, int streamId, EventRecord event);
    }

    /** The CD tables' allocation tag. */
    static final String CD_TAG = "smmu-cd";

    /**
     * A domain's context on this SMMU. The ids never change; {@link #uses} is guarded by the enclosing object,
     * {@link #nestedUses} is also read (volatile) by the invalidation path.
     */
    private static final class Context {
        final Stage stage;
        final int vmid;
        final int asid;
        final int tgLg2;
        /** Nested stage 1: the stage-2 parent; else null. */
        final IommuDomain parent;
        int uses;
        /** Stage 2: nested streams using this context as their parent. */
        volatile int nestedUses;
        /**
         * The ATCs an invalidation of this context must reach, one {@link #atcTarget} per (ATS stream, substream)
         * translating through it; rebuilt under the enclosing object by {@link #refreshAtcTargets}, read without a
         * lock by the invalidation path.
         */
        volatile long[] atcTargets = NO_TARGETS;

        Context(Stage stage, int vmid, int asid, int tgLg2, IommuDomain parent) {
            this.stage = stage;
            this.vmid = vmid;
            this.asid = asid;
            this.tgLg2 = tgLg2;
            this.parent = parent;
        }
    }

    private static final long[] NO_TARGETS = new long[0];
    /** {@link #atcTarget}: the SSV bit (the target is a substream). */
    private static final long TARGET_SSV = 1L << 31;

    /** Streams with ATS enabled on this instance (written under this object's monitor). */
    private volatile int atsStreams;
    /** Whether some context has ATC targets (guarded by this object): {@link #refreshAtcTargets} must clear them. */
    private boolean atcTargetsSet;

    /** What one stream is attached to; guarded by the enclosing object. */
    private static final class StreamState {
        /** The domain of traffic without a SubstreamID (the whole stream), or null. */
        IommuDomain whole;
        Stage wholeStage;
        /** Nested: the stage-2 parent of {@link #whole}. */
        IommuDomain parent;
        /** Stage 1 and nested: the stream's CD table, else null. */
        CdTable cds;
        /**
         * ATS enabled for the stream ({@link #enableAts}): its STE says EATS=1 and unmaps in its whole-stream domain
         * and its substreams' domains invalidate its ATC.
         */
        boolean ats;
        final TreeMap<Integer, IommuDomain> substreams = new TreeMap<>();

        boolean isEmpty() {
            return whole == null && substreams.isEmpty();
        }
    }

    private final SmmuV3Driver driver;
    private final String name;
    private final TlbiPlanner planner;
    private final IdAllocator asids;
    private final IdAllocator vmids;
    private final int substreamBits;
    private final ConcurrentHashMap<IommuDomain, Context> contexts = new ConcurrentHashMap<>();
    /** Guarded by {@code this}: every stream attached through this object. */
    private final Map<Integer, StreamState> states = new HashMap<>();
    /** The whole-stream domains (changed under {@code this}, read by the event path). */
    private final Map<Integer, IommuDomain> streams = new ConcurrentHashMap<>();
    /** The domains of attached substreams by {@link #key} (changed under {@code this}, read by the event path). */
    private final Map<Long, IommuDomain> substreams = new ConcurrentHashMap<>();
    /** Nested streams' stage-2 parents (changed under {@code this}, read by the event path). */
    private final Map<Integer, IommuDomain> parents = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<IommuDomain, FaultHandler> handlers = new ConcurrentHashMap<>();
    private final AtomicLong unhandledEvents = new AtomicLong();
    private final AtomicLong invalidations = new AtomicLong();

    /**
     * @param driver           an initialised driver
     * @param name             the instance's name in messages, e.g. "smmu0"
     * @param contextThreshold without range invalidation, the most per-page TLBIs before one context-wide TLBI
     *                         replaces them ({@link TlbiPlanner#DEFAULT_CONTEXT_THRESHOLD} as Linux)
     */
    public SmmuV3Domains(SmmuV3Driver driver, String name, int contextThreshold) {
        this.driver = Objects.requireNonNull(driver, "driver");
        this.name = Objects.requireNonNull(name, "name");
        SmmuV3Features f = driver.features();
        this.planner = new TlbiPlanner(f.rangeInvalidation(), contextThreshold);
        this.asids = f.stage1() ? new IdAllocator("ASID", 1, f.asidBits()) : null;
        this.vmids = f.stage2() ? new IdAllocator("VMID", 1, f.vmidBits()) : null;
        this.substreamBits = f.stage1() ? Math.min(f.ssidBits(), driver.options().maxSsidBits()) : 0;
        driver.addListener(new SmmuV3Listener() {
            @Override
            public void onEvent(EventRecord event) {
                route(event);
            }
        });
    }

    /** Sends {@code domain}'s event records to {@code handler} (null: stop). */
    public void setFaultHandler(IommuDomain domain, FaultHandler handler) {
        Objects.requireNonNull(domain, "domain");
        if (handler == null) {
            handlers.remove(domain);
        } else {
            handlers.put(domain, handler);
        }
    }

    /** Event records of attached streams whose domain had no fault handler. */
    public long unhandledEvents() {
        return unhandledEvents.get();
    }

    private static long key(int streamId, int ssid) {
        return Integer.toUnsignedLong(streamId) << 32 | Integer.toUnsignedLong(ssid);
    }

    private void route(EventRecord event) {
        int sid = event.streamId();
        IommuDomain domain = null;
        if (event.ssv() && event.substreamId() != 0) {
            domain = substreams.get(key(sid, event.substreamId()));
        } else {
            if (event.s2()) {
                domain = parents.get(sid);
            }
            if (domain == null) {
                domain = streams.get(sid);
            }
        }
        FaultHandler h = domain == null ? null : handlers.get(domain);
        if (h == null) {
            if (domain != null) {
                unhandledEvents.incrementAndGet();
            }
            return;
        }
        h.onFault(domain, sid, event);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long pageSizes() {
        return driver.features().pageSizes();
    }

    @Override
    public boolean needsMapSync() {
        return false;
    }

    public TlbiPlanner planner() {
        return planner;
    }

    /** TLBI commands issued on behalf of domains so far (CMD_SYNCs not counted). */
    public long invalidations() {
        return invalidations.get();
    }

    /**
     * SubstreamID bits a stream's CD table covers once a substream is attached: min(IDR1.SSIDSIZE, the driver's
     * {@link SmmuV3DriverOptions#maxSsidBits}); 0 when this SMMU (or the driver) has no substreams.
     */
    public int substreamBits() {
        return substreamBits;
    }

    /** The stage-1 ASID or stage-2 VMID {@code domain} has here, or -1 when it has no stream attached here. */
    public int contextId(IommuDomain domain) {
        Context c = contexts.get(domain);
        return c == null ? -1 : c.stage == Stage.S1 ? c.asid : c.vmid;
    }

    // ------------------------------------------------------------------ whole streams

    /**
     * Makes stream {@code streamId} translate through {@code domain}'s page table at {@code stage}. The first
     * use of a domain gives it a context here and attaches the domain to this instance
     * ({@link IommuDomain#attach}). A stream already attached elsewhere is moved (its old domain loses it); its
     * substreams stay.
     *
     * @throws IommuApiException INCOMPATIBLE_INSTANCE when the SMMU lacks the stage, the granule or the output
     *     size the domain's table needs, the domain already has the other stage (or is nested) here, or a stage-2
     *     domain meets a stream with substreams; what {@link IommuDomain#attach} throws
     * @throws IllegalStateException when no ASID or VMID is free
     */
    public synchronized void attachStream(IommuDomain domain, Stage stage, int streamId) throws IommuApiException {
        Objects.requireNonNull(domain, "domain");
        Objects.requireNonNull(stage, "stage");
        Arm64Lpae fmt = checkFormat(domain, stage);
        checkContext(domain, stage, null);
        StreamState st = states.get(streamId);
        if (stage == Stage.S2 && st != null && !st.substreams.isEmpty()) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot attach stage-2 domain "
                    + domain.name() + " to stream " + Integer.toUnsignedString(streamId) + " of " + name
                    + ": substreams " + st.substreams.keySet() + " are attached to it; detach them first");
        }
        if (st != null && st.whole != null) {
            detachWhole(streamId, st);
        }
        if (st == null) {
            st = new StreamState();
        }
        Context ctx = acquire(domain, stage, fmt, null);
        try {
            if (stage == Stage.S1) {
                Cd cd = stage1Cd(fmt, ctx.asid, domain.pageTable().root());
                if (st.cds == null) {
                    CdTable t = CdTable.single(driver.host().memory(), driver.host().allocator(), CD_TAG);
                    try {
                        t.fill(0, cd);
                        driver.writeSte(streamId, Ste.stage1(t.pointer(), t.s1Fmt(), 0, Ste.S1DSS_SSID0));
                    } catch (RuntimeException e) {
                        t.free();
                        throw e;
                    }
                    st.cds = t;
                } else {
                    // substreams use the table: CD 0 first, then let traffic without a SubstreamID reach it
                    st.cds.write(driver.commandQueue(), streamId, 0, cd);
                    driver.writeSte(streamId, cdTableSte(st.cds, Ste.S1DSS_SSID0));
                }
            } else {
                driver.writeSte(streamId, stage2Ste(ctx, fmt, domain));
            }
        } catch (RuntimeException e) {
            release(domain);
            forgetIfEmpty(streamId, st);
            throw e;
        }
        st.whole = domain;
        st.wholeStage = stage;
        states.put(streamId, st);
        streams.put(streamId, domain);
    }

    /**
     * Makes traffic of stream {@code streamId} without a SubstreamID abort and forgets its domain, whose use ends
     * (the last use ends its context: flushed, detached from this instance, id freed). When substreams remain, the
     * STE's S1DSS becomes TERMINATE and then CD 0 is cleared, and the substreams go on translating; otherwise the
     * STE aborts and the CD table is freed. Does nothing for a stream whose whole-stream domain is not attached
     * here.
     */
    public synchronized void detachStream(int streamId) throws IommuApiException {
        StreamState st = states.get(streamId);
        if (st == null || st.whole == null) {
            return;
        }
        detachWhole(streamId, st);
        forgetIfEmpty(streamId, st);
    }

    /**
     * Enables ATS for stream {@code streamId}, whose whole-stream domain is attached here: its STE gets EATS=1 (full
     * ATS; the driver's safe STE update invalidates the cached copy), so the device may translate and issue
     * translated requests, and from now on every invalidation of its whole-stream domain is followed by an ATC_INV
     * of the range without a SubstreamID (SSV=0, which drops the device's entries in the range whatever substream
     * they were requested with), and every invalidation of a substream's domain by an ATC_INV with SSV=1 and that
     * SubstreamID, one CMD_SYNC after them, as Linux's {@code arm_smmu_atc_inv_domain} after the TLBI. Substreams
     * attached before or after keep EATS in the STE; detaching or moving one invalidates the device's entries of
     * that SubstreamID. Detaching the whole stream (or moving it) disables ATS again and invalidates the device's
     * whole ATC.
     *
     * @throws IommuApiException INCOMPATIBLE_INSTANCE without IDR0.ATS; NOT_ATTACHED when no domain is attached to
     *     the whole stream
     */
    public synchronized void enableAts(int streamId) throws IommuApiException {
        if (!driver.features().ats()) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot enable ATS for stream "
                    + Integer.toUnsignedString(streamId) + " of " + name + ": the SMMU does not implement ATS"
                    + " (IDR0.ATS is 0)");
        }
        StreamState st = states.get(streamId);
        if (st == null || st.whole == null) {
            throw new IommuApiException(IommuApiException.Kind.NOT_ATTACHED, "cannot enable ATS for stream "
                    + Integer.toUnsignedString(streamId) + " of " + name + ": no domain is attached to it");
        }
        if (st.ats) {
            return;
        }
        Ste ste = driver.readSte(streamId);
        driver.writeSte(streamId, ste.toBuilder().eats(Ste.EATS_TRANS).build());
        st.ats = true;
        atsStreams++;
        refreshAtcTargets();
    }

    /** Whether ATS is enabled for stream {@code streamId} ({@link #enableAts}). */
    public synchronized boolean atsEnabled(int streamId) {
        StreamState st = states.get(streamId);
        return st != null && st.ats;
    }

    private void detachWhole(int streamId, StreamState st) throws IommuApiException {
        IommuDomain domain = st.whole;
        IommuDomain parent = st.parent;
        boolean ats = st.ats;
        if (ats) {
            st.ats = false;
            atsStreams--;
        }
        if (!st.substreams.isEmpty()) {
            driver.writeSte(streamId, cdTableSte(st.cds, Ste.S1DSS_TERMINATE));
            st.cds.clear(driver.commandQueue(), streamId, 0);
        } else {
            driver.abort(streamId);
            if (st.cds != null) {
                st.cds.free();
                st.cds = null;
            }
        }
        st.whole = null;
        st.wholeStage = null;
        st.parent = null;
        streams.remove(streamId);
        parents.remove(streamId);
        if (ats) {
            refreshAtcTargets();
            // the STE no longer allows ATS: drop whatever the device's ATC still holds (Linux arm_smmu_disable_ats)
            CommandQueue q = driver.commandQueue();
            synchronized (q) {
                q.openBatch();
                long[] w = Command.atcInvAll(streamId).encode();
                q.command(w[0], w[1]);
                q.closeBatch();
            }
            count(1);
        }
        release(domain);
        if (parent != null) {
            Context p = contexts.get(parent);
            p.nestedUses--;
            release(parent);
        }
    }

    private void forgetIfEmpty(int streamId, StreamState st) {
        if (st.isEmpty() && states.get(streamId) == st) {
            states.remove(streamId);
        }
    }

    /** The domain stream {@code streamId}'s traffic without a SubstreamID translates through here, or null. */
    public synchronized IommuDomain domainOf(int streamId) {
        StreamState st = states.get(streamId);
        return st == null ? null : st.whole;
    }

    // ------------------------------------------------------------------ substreams

    /**
     * Makes SubstreamID {@code ssid} of stream {@code streamId} translate through stage-1 {@code domain} (see the
     * class comment for the CD table and the order of the writes). A substream attached to another domain is
     * moved; re-attaching the same domain rewrites its CD.
     *
     * @throws IommuApiException BAD_ARGUMENT for SubstreamID 0 (the whole stream's CD) or one beyond
     *     {@link #substreamBits()}; INCOMPATIBLE_INSTANCE when this SMMU has no substreams, the domain is not a
     *     stage-1 domain this SMMU can walk (or is nested here), or the stream's whole-stream domain is stage 2 or
     *     nested; what {@link IommuDomain#attach} throws
     * @throws IllegalStateException when no ASID is free
     */
    public synchronized void attachSubstream(IommuDomain domain, int streamId, int ssid) throws IommuApiException {
        Objects.requireNonNull(domain, "domain");
        if (substreamBits == 0) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot attach domain "
                    + domain.name() + " to a substream of stream " + Integer.toUnsignedString(streamId) + " of " + name
                    + ": " + (driver.features().ssidBits() == 0 ? "the SMMU has no SubstreamIDs (IDR1.SSIDSIZE 0)"
                            : "the driver allows no SubstreamIDs (maxSsidBits 0)"));
        }
        if (ssid <= 0 || (ssid >>> substreamBits) != 0) {
            throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, "SubstreamID "
                    + Integer.toUnsignedString(ssid) + " of stream " + Integer.toUnsignedString(streamId) + " of "
                    + name + " is not 1.." + ((1 << substreamBits) - 1) + " (SubstreamID 0 is the whole stream's CD)");
        }
        Arm64Lpae fmt = checkFormat(domain, Stage.S1);
        checkContext(domain, Stage.S1, null);
        StreamState st = states.get(streamId);
        if (st != null && st.whole != null && (st.wholeStage != Stage.S1 || st.parent != null)) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot attach domain "
                    + domain.name() + " to substream " + ssid + " of stream " + Integer.toUnsignedString(streamId)
                    + " of " + name + ": the stream is attached to " + (st.parent != null ? "nested" : "stage-2")
                    + " domain " + st.whole.name() + "; substreams need a stage-1 CD table");
        }
        if (st != null && st.substreams.containsKey(ssid)) {
            detachSubstreamOf(streamId, st, ssid);
        }
        if (st == null) {
            st = new StreamState();
        }
        Context ctx = acquire(domain, Stage.S1, fmt, null);
        Cd cd = stage1Cd(fmt, ctx.asid, domain.pageTable().root());
        try {
            if (st.cds == null || st.cds.s1CdMax() == 0) {
                growCdTable(streamId, st, ssid, cd);
            } else {
                st.cds.write(driver.commandQueue(), streamId, ssid, cd);
            }
        } catch (RuntimeException e) {
            release(domain);
            forgetIfEmpty(streamId, st);
            throw e;
        }
        st.substreams.put(ssid, domain);
        states.put(streamId, st);
        substreams.put(key(streamId, ssid), domain);
        if (st.ats) {
            refreshAtcTargets();
        }
    }

    /**
     * The stream's first substream: a CD table with room for substreams, filled before the SMMU is pointed at it
     * (CD 0 of the whole-stream domain, if any, and the new CD), then the STE, then the old one-entry table freed.
     */
    private void growCdTable(int streamId, StreamState st, int ssid, Cd cd) {
        CdTable t = CdTable.forSubstreams(driver.host().memory(), driver.host().allocator(), CD_TAG, substreamBits,
                driver.features().twoLevelCd(),
                driver.options().cdLeaf64k() ? CdTable.LEAF_64K_LG2 : CdTable.LEAF_4K_LG2);
        try {
            if (st.whole != null) {
                Context w = contexts.get(st.whole);
                t.fill(0, stage1Cd((Arm64Lpae) st.whole.format(), w.asid, st.whole.pageTable().root()));
            }
            t.fill(ssid, cd);
            Ste ste = cdTableSte(t, st.whole != null ? Ste.S1DSS_SSID0 : Ste.S1DSS_TERMINATE);
            // an ATS stream keeps EATS: the device goes on using its ATC through the new table
            driver.writeSte(streamId, st.ats ? ste.toBuilder().eats(Ste.EATS_TRANS).build() : ste);
        } catch (RuntimeException e) {
            t.free();
            throw e;
        }
        if (st.cds != null) {
            st.cds.free(); // the STE no longer points at it, and CFGI_STE dropped its cached CD
        }
        st.cds = t;
    }

    /**
     * Ends substream {@code ssid} of stream {@code streamId}: its CD is made invalid (CFGI_CD, CMD_SYNC), then its
     * domain's use ends (the last use flushes the context by ASID and frees it). A stream left with nothing
     * attached aborts and loses its CD table. Does nothing for a substream not attached here.
     */
    public synchronized void detachSubstream(int streamId, int ssid) throws IommuApiException {
        StreamState st = states.get(streamId);
        if (st == null || !st.substreams.containsKey(ssid)) {
            return;
        }
        detachSubstreamOf(streamId, st, ssid);
        if (st.isEmpty()) {
            driver.abort(streamId);
            st.cds.free();
            st.cds = null;
            forgetIfEmpty(streamId, st);
        }
    }

    private void detachSubstreamOf(int streamId, StreamState st, int ssid) throws IommuApiException {
        IommuDomain domain = st.substreams.remove(ssid);
        substreams.remove(key(streamId, ssid));
        st.cds.clear(driver.commandQueue(), streamId, ssid);
        if (st.ats) {
            // the CD is gone: drop what the device cached for this SubstreamID (Linux arm_smmu_atc_inv_master(ssid))
            refreshAtcTargets();
            CommandQueue q = driver.commandQueue();
            synchronized (q) {
                q.openBatch();
                q.command(Command.atcInvWord0(streamId, true, ssid, false),
                        Command.atcInvWord1(0, Command.ATC_INV_SIZE_ALL));
                q.closeBatch();
            }
            count(1);
        }
        release(domain);
    }

    /** The domain substream {@code ssid} of stream {@code streamId} translates through here, or null. */
    public synchronized IommuDomain domainOf(int streamId, int ssid) {
        StreamState st = states.get(streamId);
        return st == null ? null : st.substreams.get(ssid);
    }

    /** The SubstreamIDs attached on stream {@code streamId} here, in order. */
    public synchronized List<Integer> substreamsOf(int streamId) {
        StreamState st = states.get(streamId);
        return st == null ? List.of() : List.copyOf(st.substreams.keySet());
    }

    // ------------------------------------------------------------------ nesting

    /**
     * Makes stream {@code streamId} translate through stage-1 {@code domain} nested on {@code tables.parent()}
     * (see the class comment): {@code domain}'s page table must have been built over {@code tables}, which also
     * gives the stream's CD table. The parent gets a context here (a VMID) if it has none; the stream counts as a
     * use of both. A stream attached elsewhere is moved.
     *
     * @throws IommuApiException INCOMPATIBLE_INSTANCE when the SMMU cannot nest (it lacks a stage), a table does not
     *     suit it, {@code domain}'s table is not in {@code tables}, {@code domain} already has a context here that
     *     is not nested on this parent (or the parent one that is not stage 2), or the stream has substreams
     * @throws IllegalStateException when no ASID or VMID is free, or {@code tables} is closed
     */
    public synchronized void attachNested(IommuDomain domain, NestedTables tables, int streamId)
            throws IommuApiException {
        Objects.requireNonNull(domain, "domain");
        Objects.requireNonNull(tables, "tables");
        IommuDomain parent = tables.parent();
        if (!driver.features().nested()) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot nest domain "
                    + domain.name() + " on " + parent.name() + " at " + name
                    + ": the SMMU does not implement both stages (IDR0.S1P and S2P)");
        }
        if (tables.isClosed()) {
            throw new IllegalStateException("cannot nest domain " + domain.name() + ": " + tables + " is closed");
        }
        Arm64Lpae fmt = checkFormat(domain, Stage.S1);
        Arm64Lpae parentFmt = checkFormat(parent, Stage.S2);
        if (!tables.contains(domain.pageTable().root())) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot nest domain "
                    + domain.name() + " on " + parent.name() + " at " + name + ": its page table (root "
                    + Bits.hex(domain.pageTable().root()) + ") is not in " + tables
                    + "; build the domain over those tables so stage 2 reaches them at IPA == PA");
        }
        checkContext(parent, Stage.S2, null);
        checkContext(domain, Stage.S1, parent);
        StreamState st = states.get(streamId);
        if (st != null && !st.substreams.isEmpty()) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot nest domain "
                    + domain.name() + " on stream " + Integer.toUnsignedString(streamId) + " of " + name
                    + ": substreams " + st.substreams.keySet() + " are attached to it (substreams of nested streams"
                    + " are not modelled); detach them first");
        }
        if (st != null && st.whole != null) {
            detachWhole(streamId, st);
        }
        if (st == null) {
            st = new StreamState();
        }
        Context p = acquire(parent, Stage.S2, parentFmt, null);
        Context ctx;
        try {
            ctx = acquire(domain, Stage.S1, fmt, parent);
        } catch (IommuApiException | RuntimeException e) {
            release(parent);
            forgetIfEmpty(streamId, st);
            throw e;
        }
        p.nestedUses++;
        CdTable t = null;
        try {
            t = CdTable.single(driver.host().memory(), tables, CD_TAG);
            t.fill(0, stage1Cd(fmt, ctx.asid, domain.pageTable().root()));
            Ste s2 = stage2Ste(p, parentFmt, parent);
            Ste ste = s2.toBuilder()
                    .config(Ste.CONFIG_NESTED)
                    .s1Fmt(t.s1Fmt())
                    .s1ContextPtr(t.pointer())
                    .s1CdMax(0)
                    .s1Dss(Ste.S1DSS_SSID0)
                    .s1Cir(Encodings.CACHE_WBWA)
                    .s1Cor(Encodings.CACHE_WBWA)
                    .s1Csh(Encodings.SH_ISH)
                    .strw(Ste.STRW_NSEL1)
                    .build();
            driver.writeSte(streamId, ste);
        } catch (RuntimeException e) {
            if (t != null) {
                t.free();
            }
            p.nestedUses--;
            release(domain);
            release(parent);
            forgetIfEmpty(streamId, st);
            throw e;
        }
        st.cds = t;
        st.whole = domain;
        st.wholeStage = Stage.S1;
        st.parent = parent;
        states.put(streamId, st);
        streams.put(streamId, domain);
        parents.put(streamId, parent);
    }

    /** The stage-2 parent of nested stream {@code streamId} here, or null when it is not nested. */
    public synchronized IommuDomain parentOf(int streamId) {
        StreamState st = states.get(streamId);
        return st == null ? null : st.parent;
    }

    // ------------------------------------------------------------------ contexts and encodings

    /**
     * Refuses, before anything changes, a domain whose context here is of another kind: another stage, nested
     * when {@code parent} is null, or nested on another parent.
     */
    private void checkContext(IommuDomain domain, Stage stage, IommuDomain parent) throws IommuApiException {
        Context c = contexts.get(domain);
        if (c == null) {
            return;
        }
        String why = null;
        if (c.stage != stage) {
            why = "it is walked at stage " + (c.stage == Stage.S1 ? 1 : 2) + " here already";
        } else if (c.parent != parent) {
            why = c.parent == null ? "it is attached here as a plain stage-1 domain already"
                    : "it is nested on " + c.parent.name() + " here already";
        }
        if (why != null) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, name + ": domain "
                    + domain.name() + " cannot be used " + (parent == null ? "at stage " + (stage == Stage.S1 ? 1 : 2)
                            : "nested on " + parent.name()) + ": " + why);
        }
    }

    /** One more use of {@code domain}'s context here, made (id allocated, domain attached) at the first. */
    private Context acquire(IommuDomain domain, Stage stage, Arm64Lpae fmt, IommuDomain parent)
            throws IommuApiException {
        Context ctx = contexts.get(domain);
        if (ctx == null) {
            int vmid = parent == null ? 0 : contexts.get(parent).vmid;
            ctx = stage == Stage.S1
                    ? new Context(stage, vmid, asids.allocate(), fmt.granuleLg2(), parent)
                    : new Context(stage, vmids.allocate(), 0, fmt.granuleLg2(), null);
            try {
                domain.attach(this);
            } catch (IommuApiException | RuntimeException e) {
                freeId(ctx);
                throw e;
            }
            contexts.put(domain, ctx);
        }
        ctx.uses++;
        return ctx;
    }

    /** Ends one use of {@code domain}'s context; the last flushes it, detaches the domain and frees the id. */
    private void release(IommuDomain domain) throws IommuApiException {
        Context ctx = contexts.get(domain);
        if (--ctx.uses > 0) {
            return;
        }
        domain.detach(this); // LAZY: flushes its queue through us first
        flushContext(ctx);
        contexts.remove(domain);
        freeId(ctx);
    }

    private void freeId(Context ctx) {
        if (ctx.stage == Stage.S1) {
            asids.free(ctx.asid);
        } else {
            vmids.free(ctx.vmid);
        }
    }

    private static Cd stage1Cd(Arm64Lpae fmt, int asid, long root) {
        return Cd.stage1(fmt.t0sz(), Encodings.tg0ForGranuleLg2(fmt.granuleLg2()), Encodings.oasEncoding(fmt.oaBits()),
                asid, root, Cd.LINUX_MAIR);
    }

    private static Ste cdTableSte(CdTable t, int s1Dss) {
        return Ste.stage1(t.pointer(), t.s1Fmt(), t.s1CdMax(), s1Dss);
    }

    private static Ste stage2Ste(Context ctx, Arm64Lpae fmt, IommuDomain domain) {
        return Ste.stage2(ctx.vmid, fmt.t0sz(), fmt.stage2Sl0(), Encodings.tg0ForGranuleLg2(fmt.granuleLg2()),
                Encodings.oasEncoding(fmt.oaBits()), domain.pageTable().root());
    }

    private Arm64Lpae checkFormat(IommuDomain domain, Stage stage) throws IommuApiException {
        PtFormat f = domain.format();
        SmmuV3Features hw = driver.features();
        String why = null;
        Arm64Lpae fmt = f instanceof Arm64Lpae a ? a : null;
        if (fmt == null) {
            why = "its page table is " + f.name() + ", not an arm64 LPAE table";
        } else if ((fmt.stage() == Arm64Lpae.Stage.S1) != (stage == Stage.S1)) {
            why = "its table is a " + fmt.name() + " table, not one for stage " + (stage == Stage.S1 ? 1 : 2);
        } else if (stage == Stage.S1 ? !hw.stage1() : !hw.stage2()) {
            why = "the SMMU does not implement stage " + (stage == Stage.S1 ? 1 : 2);
        } else if ((hw.pageSizes() & (1L << fmt.granuleLg2())) == 0) {
            why = "the SMMU does not implement the " + (1 << (fmt.granuleLg2() - 10)) + " KB granule";
        } else if (fmt.oaBits() > hw.oasBits()) {
            why = "its table outputs " + fmt.oaBits() + "-bit addresses but the SMMU's OAS is " + hw.oasBits();
        }
        if (why != null) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot attach domain "
                    + domain.name() + " to " + name + ": " + why);
        }
        return fmt;
    }

    // ------------------------------------------------------------------ invalidation

    @Override
    public void iotlbSyncMap(IommuDomain domain, long iova, long size) {
        // never called (needsMapSync is false): the SMMU does not cache invalid entries
    }

    @Override
    public void iotlbSync(IommuDomain domain, IotlbGather gather) {
        Context ctx = context(domain);
        CommandQueue q = driver.commandQueue();
        synchronized (q) {
            q.openBatch();
            int n;
            if (!gather.hasRange()) {
                n = contextWide(ctx, q); // only table pages were freed: drop the walk caches of the context
            } else {
                long size = gather.last() - gather.start() + 1;
                boolean leaf = !gather.freedTables();
                if (ctx.stage == Stage.S1) {
                    n = planner.stage1(ctx.vmid, ctx.asid, gather.start(), size, gather.pageLg2(), ctx.tgLg2, leaf, q);
                } else {
                    n = planner.stage2(ctx.vmid, gather.start(), size, gather.pageLg2(), ctx.tgLg2, leaf, q);
                    if (ctx.nestedUses > 0) {
                        // combined stage 1 + 2 entries built on the old IPA mapping: only a stage-1 invalidation of
                        // the VMID removes them (Linux: TLBI_NH_ALL after TLBI_S2_IPA for a nesting parent)
                        q.command(Command.VMID.put(Command.OPCODE.put(0, CommandOp.TLBI_NH_ALL), ctx.vmid), 0);
                        n++;
                    }
                }
            }
            q.closeBatch();
            count(n);
        }
        if (gather.hasRange()) {
            invalidateAtcs(ctx, gather.start(), gather.last());
        } else {
            invalidateAtcs(ctx, 0, -1L);
        }
    }

    /**
     * After the TLB invalidation of {@code [start, last]} in {@code ctx}: one ATC_INV per (ATS stream, substream)
     * translating through it ({@link Context#atcTargets}; SSV=0 for a whole stream, SSV=1 with the SubstreamID for
     * a substream), covering the range with the smallest aligned power-of-two span (Linux's
     * {@code arm_smmu_atc_inv_to_cmd}), then one CMD_SYNC; a sync that fails with CERROR_ATC_INV_SYNC (a device that
     * did not answer in time) is recovered by the command queue as Linux's {@code arm_smmu_cmdq_skip_err} does, and
     * counted there. Allocates nothing.
     */
    private void invalidateAtcs(Context ctx, long start, long last) {
        if (atsStreams == 0) {
            return; // the common case: no ATS anywhere on this instance
        }
        long[] targets = ctx.atcTargets;
        if (targets.length == 0) {
            return;
        }
        int spanLg2 = start == 0 && last == -1L ? 64 : Math.max(Command.ATC_PAGE_LG2,
                64 - Long.numberOfLeadingZeros(start ^ last));
        int size = spanLg2 >= 64 ? Command.ATC_INV_SIZE_ALL : spanLg2 - Command.ATC_PAGE_LG2;
        long address = spanLg2 >= 64 ? 0 : start & -(1L << spanLg2);
        long dw1 = Command.atcInvWord1(address, size);
        CommandQueue q = driver.commandQueue();
        synchronized (q) {
            q.openBatch();
            for (long t : targets) {
                q.command(Command.atcInvWord0((int) (t >>> 32), (t & TARGET_SSV) != 0, (int) (t & (TARGET_SSV - 1)),
                        false), dw1);
            }
            q.closeBatch();
        }
        count(targets.length);
    }

    /** An {@link Context#atcTargets} entry: stream {@code streamId}, substream {@code ssid} (-1: the whole stream). */
    private static long atcTarget(int streamId, int ssid) {
        return Integer.toUnsignedLong(streamId) << 32 | (ssid < 0 ? 0 : TARGET_SSV | ssid);
    }

    /**
     * Recomputes every context's {@link Context#atcTargets} from the ATS streams (under this object's monitor,
     * after any change of ATS, of a whole stream or of a substream): the whole-stream domain of each ATS stream (and
     * a nested stream's stage-2 parent, whose unmaps change the combined translations the device cached) gets the
     * stream, each substream's domain the stream and SubstreamID. Each context's array is replaced once, never
     * emptied on the way, so a concurrent unmap sees the old or the new set.
     */
    private void refreshAtcTargets() {
        if (atsStreams == 0 && !atcTargetsSet) {
            return;
        }
        Map<Context, List<Long>> built = new HashMap<>();
        for (Map.Entry<Integer, StreamState> e : states.entrySet()) {
            StreamState st = e.getValue();
            if (!st.ats) {
                continue;
            }
            int sid = e.getKey();
            if (st.whole != null) {
                addTarget(built, st.whole, atcTarget(sid, -1));
            }
            if (st.parent != null) {
                addTarget(built, st.parent, atcTarget(sid, -1));
            }
            for (Map.Entry<Integer, IommuDomain> ss : st.substreams.entrySet()) {
                addTarget(built, ss.getValue(), atcTarget(sid, ss.getKey()));
            }
        }
        for (Context c : contexts.values()) {
            List<Long> l = built.get(c);
            c.atcTargets = l == null ? NO_TARGETS : l.stream().mapToLong(Long::longValue).toArray();
        }
        atcTargetsSet = !built.isEmpty();
    }

    private void addTarget(Map<Context, List<Long>> built, IommuDomain domain, long target) {
        Context c = contexts.get(domain);
        if (c != null) {
            built.computeIfAbsent(c, k -> new ArrayList<>()).add(target);
        }
    }

    @Override
    public void flushIotlbAll(IommuDomain domain) {
        Context ctx = context(domain);
        flushContext(ctx);
        invalidateAtcs(ctx, 0, -1L); // a LAZY domain's queue flush: the ATCs drop what the queued unmaps left
    }

    private void flushContext(Context ctx) {
        CommandQueue q = driver.commandQueue();
        synchronized (q) {
            q.openBatch();
            count(contextWide(ctx, q));
            q.closeBatch();
        }
    }

    private static int contextWide(Context ctx, TlbiPlanner.Sink sink) {
        if (ctx.stage == Stage.S1) {
            long dw0 = Command.ASID.put(Command.VMID.put(Command.OPCODE.put(0, CommandOp.TLBI_NH_ASID), ctx.vmid),
                    ctx.asid);
            sink.command(dw0, 0);
        } else {
            sink.command(Command.VMID.put(Command.OPCODE.put(0, CommandOp.TLBI_S12_VMALL), ctx.vmid), 0);
        }
        return 1;
    }

    private void count(int n) {
        invalidations.addAndGet(n);
    }

    private Context context(IommuDomain domain) {
        Context ctx = contexts.get(domain);
        if (ctx == null) {
            throw new IllegalStateException(name + ": domain " + domain.name() + " has no stream attached here");
        }
        return ctx;
    }

    @Override
    public String toString() {
        return "SmmuV3Domains[" + name + ", " + contexts.size() + " domains, " + planner + "]";
    }
}
