package org.iommuemu.core.driver.vtd;

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
import org.iommuemu.core.driver.smmuv3.IdAllocator;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PtFormat;
import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.core.pgtable.fmt.X86Pt;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.core.vtd.VtdTables;

/**
 * The VT-d driver's side of the IOMMU API: {@link IommuDomain}s whose page tables the unit walks for the devices
 * (requester ids) and PASIDs attached to them, and the invalidations the domains ask for ({@link IommuInstanceOps}).
 *
 * <p><b>Domains.</b> A domain's table is {@code vtd-ss} ({@link VtdSs}: a legacy-mode context entry, or in scalable
 * mode a PASID entry with PGTT=2, second stage only; its level count must be in CAP.SAGAW and, in scalable mode, the
 * unit needs ECAP.SLTS) or {@code x86-64} ({@link X86Pt}: scalable mode only, a PASID entry with PGTT=1, first stage
 * only; needs ECAP.FLTS, and CAP.FL5LP for 5 levels). A domain gets a domain id (DID) at its first use on the unit,
 * the smallest free from 1 (DID 0 is reserved: the spec reserves it with CM=1, for cached not-present entries, and
 * Linux always), is attached to this instance ({@link IommuDomain#attach}), and gives both back when its last device or
 * PASID leaves.
 *
 * <p><b>Attach</b> ({@link #attachDevice}, {@link #attachPasid}). Legacy mode: the context entry of the requester id
 * (context table allocated on demand) gets the domain's table, AW and DID, P written last. Scalable mode: the device
 * gets a {@code PasidTable} (directory sized by {@link VtdDriverOptions#maxPasidBits} and ECAP.PSS, leaves on
 * demand); the domain's PASID entry is written (P last) — PASID 0, the context entry's RID_PASID, for the whole
 * device — and then, the first time, the scalable context entry (PASID directory, PDTS, PASIDE when ECAP.PASID;
 * P last). A not-present → present change is then made visible as Linux does: with CM, a new context entry is
 * followed by a device-selective context-cache invalidation with DID 0 and a domain-selective IOTLB invalidation
 * ({@code context_present_cache_flush}), a new PASID entry under a present context entry by a PASID-selective
 * PASID-cache and PASID-IOTLB invalidation ({@code pasid_flush_caches}); without CM only the write buffer is flushed
 * (CAP.RWBF). A device or PASID attached elsewhere is detached first (Linux blocks translation, then attaches).
 *
 * <p><b>Detach</b> ({@link #detachDevice}, {@link #detachPasid}). Legacy: the context entry is cleared (P first), then
 * a device-selective context-cache invalidation (G=3 with the old DID) and a domain-selective IOTLB invalidation, in
 * one batch ({@code domain_context_clear_one}). Scalable: the PASID entry is cleared (P first), then a PASID-selective
 * PASID-cache invalidation and a domain-selective IOTLB (second stage) or PASID-selective PASID-IOTLB (first stage)
 * invalidation ({@code intel_pasid_tear_down_entry}); when the device has no PASID left, its context entry is cleared
 * too (device-selective context cache, domain-selective PASID cache, domain-selective IOTLB) and its PASID table freed.
 *
 * <p><b>Invalidation</b> ({@link #iotlbSync}). The gathered range becomes one descriptor per tag, planned by
 * {@link PsiPlanner}: for a second-stage domain an IOTLB invalidation of its DID (page-selective with AM covering the
 * range, or domain-selective), for a first-stage domain a PASID-IOTLB invalidation per PASID it is attached with
 * (page-selective within the PASID, or PASID-wide). IH is set unless tables were freed; a gather of freed tables only
 * drops the domain's (PASIDs') entries. The descriptors go straight into the queue, one invalidation wait per batch.
 * With CM ({@link #needsMapSync}), {@link #iotlbSyncMap} invalidates the mapped range page-selectively, IH clear; Linux
 * does so for second-stage domains only (first-stage not-present entries are not cached), this driver for both, which
 * costs an invalidation and is never wrong. {@link #flushIotlbAll} is domain-selective (PASID-wide for first stage).
 * Nothing on these paths allocates.
 *
 * <p><b>Faults.</b> Every fault the driver reads goes to the {@link FaultHandler} ({@link #setFaultHandler}) of the
 * domain it concerns: with a PASID, the domain attached at (requester id, PASID); otherwise (or PASID 0) the device's
 * whole-device domain. Faults of domains without a handler are counted ({@link #unhandledFaults}).
 *
 * <p><b>Page sizes</b> ({@link #pageSizes}): one bitmap for the instance, so the sizes every stage this unit's domains
 * may use can walk: second stage 4K plus SLLPS's 2M/1G; in scalable mode also intersected with first stage's 4K, 2M
 * and (FL1GP) 1G when ECAP.FLTS.
 *
 * <p>Thread-safe: attach and detach serialise on this object (then take the queue's monitor, never the other way
 * round); invalidations from any number of mapping threads serialise on the queue.
 */
public final class VtdDomains implements IommuInstanceOps {
    /** Which stage walks a domain's table. */
    public enum Stage {
        /** Second-stage ({@code vtd-ss}) tables: legacy context entries or scalable PGTT=2. */
        SECOND,
        /** First-stage ({@code x86-64}) tables: scalable PGTT=1. */
        FIRST
    }

    /**
     * Told of each fault the driver reads for a device attached to a domain (Linux's {@code iommu_set_fault_handler}).
     * Called on the thread draining faults, with the driver's fault lock held: return quickly, do not call back into
     * the driver.
     */
    @FunctionalInterface
    public interface FaultHandler {
        void onFault(IommuDomain domain, int requesterId, VtdFault fault);
    }

    /** The PASID of requests without a PASID in scalable mode (the context entry's RID_PASID, Linux's IOMMU_NO_PASID). */
    public static final int RID_PASID = 0;

    private static final int[] NO_PASIDS = new int[0];

    /** A domain's context on this unit. {@link #pasids} is read (volatile) by the invalidation path. */
    private static final class Context {
        final Stage stage;
        final int did;
        final int levels;
        int uses;
        /** First stage: attachments per PASID; guarded by the enclosing object. */
        final Map<Integer, Integer> pasidUses = new HashMap<>();
        /** First stage: the distinct PASIDs attached, for PASID-IOTLB invalidations. */
        volatile int[] pasids = NO_PASIDS;

        Context(Stage stage, int did, int levels) {
            this.stage = stage;
            this.did = did;
            this.levels = levels;
        }

        void addPasid(int pasid) {
            pasidUses.merge(pasid, 1, Integer::sum);
            publish();
        }

        void removePasid(int pasid) {
            pasidUses.computeIfPresent(pasid, (k, v) -> v == 1 ? null : v - 1);
            publish();
        }

        private void publish() {
            pasids = pasidUses.keySet().stream().mapToInt(Integer::intValue).sorted().toArray();
        }
    }

    /** What one requester id is attached to; guarded by the enclosing object. */
    private static final class DeviceState {
        /** The domain of requests without a PASID (legacy context entry, or RID_PASID), or null. */
        IommuDomain whole;
        /** Scalable mode: the device's PASID table once its context entry is present. */
        PasidTable pasidTable;
        final TreeMap<Integer, IommuDomain> pasids = new TreeMap<>();

        boolean isEmpty() {
            return whole == null && pasids.isEmpty();
        }
    }

    private final VtdDriver driver;
    private final String name;
    private final VtdFeatures features;
    private final boolean scalable;
    private final PsiPlanner planner;
    private final IdAllocator dids;
    private final int pasidBits;
    private final long pageSizes;
    private final ConcurrentHashMap<IommuDomain, Context> contexts = new ConcurrentHashMap<>();
    /** Guarded by {@code this}. */
    private final Map<Integer, DeviceState> states = new HashMap<>();
    /** Whole-device domains by requester id (changed under {@code this}, read by the fault path). */
    private final Map<Integer, IommuDomain> devices = new ConcurrentHashMap<>();
    /** PASID domains by {@link #key} (changed under {@code this}, read by the fault path). */
    private final Map<Long, IommuDomain> pasidDomains = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<IommuDomain, FaultHandler> handlers = new ConcurrentHashMap<>();
    private final AtomicLong unhandledFaults = new AtomicLong();
    private final AtomicLong invalidations = new AtomicLong();

    /** Domains of {@code driver}'s unit, called {@code name}, with Linux's invalidation policy (no DSI threshold). */
    public VtdDomains(VtdDriver driver, String name) {
        this(driver, name, PsiPlanner.NO_THRESHOLD);
    }

    /**
     * @param driver            an initialised driver
     * @param name              the unit's name in messages, e.g. "dmar0"
     * @param dsiThresholdPages unmaps of more 4 KB pages than this invalidate domain- (or PASID-) wide
     */
    public VtdDomains(VtdDriver driver, String name, long dsiThresholdPages) {
        this.driver = Objects.requireNonNull(driver, "driver");
        this.name = Objects.requireNonNull(name, "name");
        driver.tables(); // initialised
        this.features = driver.features();
        this.scalable = driver.scalableMode();
        this.planner = PsiPlanner.of(features, dsiThresholdPages);
        this.dids = new IdAllocator("domain id", 1, features.domainIdBits());
        this.pasidBits = scalable && features.pasid() ? Math.min(features.pasidBits(), driver.options().maxPasidBits())
                : 0;
        long sizes = features.secondStagePageSizes();
        if (scalable) {
            sizes = features.slts() ? sizes : -1L;
            if (features.flts()) {
                sizes &= features.firstStagePageSizes();
            }
        }
        this.pageSizes = sizes;
        driver.addListener(new VtdListener() {
            @Override
            public void onFault(VtdFault fault) {
                route(fault);
            }
        });
    }

    // ------------------------------------------------------------------ faults

    /** Sends {@code domain}'s faults to {@code handler} (null: stop). */
    public void setFaultHandler(IommuDomain domain, FaultHandler handler) {
        Objects.requireNonNull(domain, "domain");
        if (handler == null) {
            handlers.remove(domain);
        } else {
            handlers.put(domain, handler);
        }
    }

    /** Faults of attached devices whose domain had no fault handler. */
    public long unhandledFaults() {
        return unhandledFaults.get();
    }

    private static long key(int requesterId, int pasid) {
        return (long) (requesterId & 0xFFFF) << 32 | Integer.toUnsignedLong(pasid);
    }

    private void route(VtdFault fault) {
        int rid = fault.sourceId();
        IommuDomain domain = null;
        if (fault.pasidPresent() && fault.pasid() != RID_PASID) {
            domain = pasidDomains.get(key(rid, fault.pasid()));
        } else {
            domain = devices.get(rid);
        }
        FaultHandler h = domain == null ? null : handlers.get(domain);
        if (h == null) {
            if (domain != null) {
                unhandledFaults.incrementAndGet();
            }
            return;
        }
        h.onFault(domain, rid, fault);
    }

    // ------------------------------------------------------------------ IommuInstanceOps basics

    @Override
    public String name() {
        return name;
    }

    @Override
    public long pageSizes() {
        return pageSizes;
    }

    /** CAP.CM: the unit may cache not-present entries, so new mappings are invalidated too. */
    @Override
    public boolean needsMapSync() {
        return features.cm();
    }

    public PsiPlanner planner() {
        return planner;
    }

    /** Invalidation descriptors issued on behalf of domains (maps, unmaps, flushes; waits not counted). */
    public long invalidations() {
        return invalidations.get();
    }

    /** PASID bits attachable in scalable mode: min(ECAP.PSS+1, the option); 0 in legacy mode or without ECAP.PASID. */
    public int pasidBits() {
        return pasidBits;
    }

    /** The domain id {@code domain} has on this unit, or -1 when nothing of it is attached here. */
    public int domainId(IommuDomain domain) {
        Context c = contexts.get(domain);
        return c == null ? -1 : c.did;
    }

    /** The stage {@code domain}'s table is walked at, from its format. */
    public static Stage stageOf(IommuDomain domain) {
        return domain.format() instanceof X86Pt ? Stage.FIRST : Stage.SECOND;
    }

    // ------------------------------------------------------------------ attach / detach

    /**
     * Makes requests of {@code requesterId} without a PASID translate through {@code domain} (see the class comment).
     * Attaching the domain the device already has does nothing; a device attached elsewhere is moved.
     *
     * @throws IommuApiException BAD_ARGUMENT for a requester id beyond 16 bits; INCOMPATIBLE_INSTANCE when the unit
     *     cannot walk the domain's table; what {@link IommuDomain#attach} throws
     * @throws IllegalStateException when no domain id is free
     */
    public synchronized void attachDevice(IommuDomain domain, int requesterId) throws IommuApiException {
        Objects.requireNonNull(domain, "domain");
        checkRequesterId(requesterId);
        Stage stage = checkFormat(domain);
        DeviceState st = states.get(requesterId);
        if (st != null && st.whole == domain) {
            return;
        }
        if (st != null && st.whole != null) {
            detachWhole(requesterId, st);
        }
        if (st == null) {
            st = new DeviceState();
        }
        Context ctx = acquire(domain, stage);
        try {
            if (scalable) {
                attachPasidEntry(requesterId, st, RID_PASID, domain, ctx);
            } else {
                ContextTables t = driver.tables();
                t.writeContext(requesterId, VtdTables.contextQw0(domain.pageTable().root(), VtdTables.TT_MULTI_LEVEL,
                        false), VtdTables.contextQw1(ctx.did, ctx.levels));
                contextPresentFlush(requesterId, ctx.did);
            }
        } catch (RuntimeException e) {
            if (!scalable) {
                driver.tables().clearContext(requesterId);
            }
            release(domain);
            forgetIfEmpty(requesterId, st);
            throw e;
        }
        st.whole = domain;
        states.put(requesterId, st);
        devices.put(requesterId, domain);
    }

    /**
     * Makes requests of {@code requesterId} without a PASID fault (context entry, or RID_PASID's PASID entry, cleared
     * and invalidated) and ends the domain's use. Does nothing for a device without a whole-device domain here.
     */
    public synchronized void detachDevice(int requesterId) throws IommuApiException {
        DeviceState st = states.get(requesterId);
        if (st == null || st.whole == null) {
            return;
        }
        detachWhole(requesterId, st);
        forgetIfEmpty(requesterId, st);
    }

    /**
     * Makes requests of {@code requesterId} with PASID {@code pasid} translate through {@code domain} (scalable mode
     * only). Attaching the domain the PASID already has does nothing; a PASID attached elsewhere is moved.
     *
     * @throws IommuApiException INCOMPATIBLE_INSTANCE in legacy mode or without ECAP.PASID, or when the unit cannot
     *     walk the domain's table; BAD_ARGUMENT for PASID 0 (use {@link #attachDevice}) or one beyond
     *     {@link #pasidBits()}; what {@link IommuDomain#attach} throws
     */
    public synchronized void attachPasid(IommuDomain domain, int requesterId, int pasid) throws IommuApiException {
        Objects.requireNonNull(domain, "domain");
        checkRequesterId(requesterId);
        if (pasidBits == 0) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot attach domain "
                    + domain.name() + " to PASID " + pasid + " of " + ContextTables.rid(requesterId) + " on " + name + ": "
                    + (!scalable ? "the driver runs the unit in legacy mode (no PASID tables)"
                            : "the unit has no PASID support (ECAP.PASID=0)"));
        }
        if (pasid <= 0 || (pasid >>> pasidBits) != 0) {
            throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, "PASID " + Integer.toUnsignedString(pasid)
                    + " of " + ContextTables.rid(requesterId) + " on " + name + " is not 1.." + ((1 << pasidBits) - 1)
                    + " (PASID 0 is RID_PASID: attach the whole device)");
        }
        Stage stage = checkFormat(domain);
        DeviceState st = states.get(requesterId);
        if (st != null && st.pasids.get(pasid) == domain) {
            return;
        }
        if (st != null && st.pasids.containsKey(pasid)) {
            detachPasidOf(requesterId, st, pasid);
        }
        if (st == null) {
            st = new DeviceState();
        }
        Context ctx = acquire(domain, stage);
        try {
            attachPasidEntry(requesterId, st, pasid, domain, ctx);
        } catch (RuntimeException e) {
            release(domain);
            forgetIfEmpty(requesterId, st);
            throw e;
        }
        st.pasids.put(pasid, domain);
        states.put(requesterId, st);
        pasidDomains.put(key(requesterId, pasid), domain);
    }

    /**
     * Tears PASID {@code pasid} of {@code requesterId} down (PASID entry cleared and invalidated) and ends its
     * domain's use; a device left with nothing loses its context entry and PASID table. Does nothing for a PASID not
     * attached here.
     */
    public synchronized void detachPasid(int requesterId, int pasid) throws IommuApiException {
        DeviceState st = states.get(requesterId);
        if (st == null || !st.pasids.containsKey(pasid)) {
            return;
        }
        int did = contexts.get(st.pasids.get(pasid)).did;
        detachPasidOf(requesterId, st, pasid);
        releaseDeviceIfEmpty(requesterId, st, did);
        forgetIfEmpty(requesterId, st);
    }

    /** The whole-device domain of {@code requesterId} here, or null. */
    public synchronized IommuDomain domainOf(int requesterId) {
        DeviceState st = states.get(requesterId);
        return st == null ? null : st.whole;
    }

    /** The domain of PASID {@code pasid} of {@code requesterId} here, or null. */
    public synchronized IommuDomain domainOf(int requesterId, int pasid) {
        DeviceState st = states.get(requesterId);
        return st == null ? null : st.pasids.get(pasid);
    }

    /** The PASIDs attached on {@code requesterId} here, in order. */
    public synchronized List<Integer> pasidsOf(int requesterId) {
        DeviceState st = states.get(requesterId);
        return st == null ? List.of() : List.copyOf(st.pasids.keySet());
    }

    private void detachWhole(int requesterId, DeviceState st) throws IommuApiException {
        IommuDomain domain = st.whole;
        Context ctx = contexts.get(domain);
        if (scalable) {
            tearDownPasidEntry(st, RID_PASID, ctx);
            st.whole = null;
            releaseDeviceIfEmpty(requesterId, st, ctx.did);
        } else {
            long qw1 = driver.tables().clearContext(requesterId);
            int oldDid = (int) Bits.extract(qw1, VtdTables.CTX_DID, 16);
            InvalidationQueue q = driver.queue();
            synchronized (q) {
                q.openBatch();
                q.descriptor(InvDesc.contextCache(VtdRegs.CC_DEVICE, oldDid, requesterId, 0), 0);
                planner.iotlbDomain(oldDid, q);
                q.closeBatch();
            }
            count(2);
            st.whole = null;
        }
        devices.remove(requesterId);
        release(domain);
    }

    private void detachPasidOf(int requesterId, DeviceState st, int pasid) throws IommuApiException {
        IommuDomain domain = st.pasids.remove(pasid);
        pasidDomains.remove(key(requesterId, pasid));
        tearDownPasidEntry(st, pasid, contexts.get(domain));
        release(domain);
    }

    /**
     * Scalable mode: writes the PASID entry of {@code pasid} for {@code domain} and makes it reachable — the context
     * entry written the first time, with the matching caching-mode invalidations.
     */
    private void attachPasidEntry(int requesterId, DeviceState st, int pasid, IommuDomain domain, Context ctx) {
        boolean newTable = st.pasidTable == null;
        if (newTable) {
            st.pasidTable = new PasidTable(driver.host().memory(), driver.host().allocator(),
                    Math.max(7, pasidBits == 0 ? 7 : pasidBits));
        }
        if (ctx.stage == Stage.FIRST) {
            ctx.addPasid(pasid); // before the entry exists: an unmap meanwhile invalidates it too, never too little
        }
        try {
            writePasidEntry(st.pasidTable, pasid, domain, ctx);
            if (newTable) {
                ContextTables t = driver.tables();
                t.writeContext(requesterId, VtdTables.smContextQw0(st.pasidTable.directory(), st.pasidTable.pdts(),
                        features.pasid(), false), (long) RID_PASID << VtdTables.SMCTX_RID_PASID);
                contextPresentFlush(requesterId, ctx.did);
            } else if (features.cm()) {
                InvalidationQueue q = driver.queue();
                synchronized (q) {
                    q.openBatch();
                    q.descriptor(InvDesc.pasidCache(InvDesc.PC_PASID, ctx.did, pasid), 0);
                    planner.pasidIotlbAll(ctx.did, pasid, q);
                    q.closeBatch();
                }
                count(2);
            } else {
                driver.flushWriteBuffer();
            }
        } catch (RuntimeException e) {
            if (newTable) {
                driver.tables().clearContext(requesterId); // it may point at the table already
                st.pasidTable.free();
                st.pasidTable = null;
            } else {
                st.pasidTable.clear(pasid);
            }
            if (ctx.stage == Stage.FIRST) {
                ctx.removePasid(pasid);
            }
            throw e;
        }
    }

    private void writePasidEntry(PasidTable table, int pasid, IommuDomain domain, Context ctx) {
        long root = domain.pageTable().root();
        long qw1 = VtdTables.pasidQw1(ctx.did, features.smpwc());
        if (ctx.stage == Stage.SECOND) {
            table.write(pasid, VtdTables.pasidQw0(VtdTables.PGTT_SECOND_STAGE, root, ctx.levels, false), qw1, 0);
        } else {
            table.write(pasid, VtdTables.pasidQw0(VtdTables.PGTT_FIRST_STAGE, 0, 0, false), qw1,
                    VtdTables.pasidQw2(root, ctx.levels, false, false));
        }
    }

    /** Clears the PASID entry (P first), then PASID cache and IOTLB / PASID-IOTLB for it, as Linux's tear-down. */
    private void tearDownPasidEntry(DeviceState st, int pasid, Context ctx) {
        st.pasidTable.clear(pasid);
        InvalidationQueue q = driver.queue();
        synchronized (q) {
            q.openBatch();
            q.descriptor(InvDesc.pasidCache(InvDesc.PC_PASID, ctx.did, pasid), 0);
            if (ctx.stage == Stage.FIRST) {
                planner.pasidIotlbAll(ctx.did, pasid, q);
            } else {
                planner.iotlbDomain(ctx.did, q);
            }
            q.closeBatch();
        }
        count(2);
        if (ctx.stage == Stage.FIRST) {
            ctx.removePasid(pasid);
        }
    }

    /**
     * Scalable mode: a device with neither a whole-device domain nor PASIDs loses its context entry (cleared, then
     * device-selective context cache, domain-selective PASID cache and IOTLB invalidated with the DID of the last
     * domain) and its PASID table.
     */
    private void releaseDeviceIfEmpty(int requesterId, DeviceState st, int did) {
        if (!scalable || !st.isEmpty() || st.pasidTable == null) {
            return;
        }
        driver.tables().clearContext(requesterId);
        InvalidationQueue q = driver.queue();
        synchronized (q) {
            q.openBatch();
            q.descriptor(InvDesc.contextCache(VtdRegs.CC_DEVICE, did, requesterId, 0), 0);
            q.descriptor(InvDesc.pasidCache(InvDesc.PC_DOMAIN, did, 0), 0);
            planner.iotlbDomain(did, q);
            q.closeBatch();
        }
        count(3);
        st.pasidTable.free();
        st.pasidTable = null;
    }

    /**
     * A context entry went from not present to present: with CM a device-selective context-cache invalidation with
     * DID 0 (the DID not-present entries are cached under) and a domain-selective IOTLB invalidation of the new DID;
     * otherwise a write-buffer flush (Linux's {@code context_present_cache_flush}).
     */
    private void contextPresentFlush(int requesterId, int did) {
        if (!features.cm()) {
            driver.flushWriteBuffer();
            return;
        }
        InvalidationQueue q = driver.queue();
        synchronized (q) {
            q.openBatch();
            q.descriptor(InvDesc.contextCache(VtdRegs.CC_DEVICE, 0, requesterId, 0), 0);
            planner.iotlbDomain(did, q);
            q.closeBatch();
        }
        count(2);
    }

    private void forgetIfEmpty(int requesterId, DeviceState st) {
        if (st.isEmpty() && st.pasidTable == null && states.get(requesterId) == st) {
            states.remove(requesterId);
        }
    }

    private void checkRequesterId(int requesterId) throws IommuApiException {
        if ((requesterId >>> 16) != 0) {
            throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, "requester id 0x"
                    + Integer.toHexString(requesterId) + " on " + name + " is not a 16-bit bus:devfn");
        }
    }

    // ------------------------------------------------------------------ contexts

    /** One more use of {@code domain}'s context here, made (DID allocated, domain attached) at the first. */
    private Context acquire(IommuDomain domain, Stage stage) throws IommuApiException {
        Context ctx = contexts.get(domain);
        if (ctx == null) {
            int levels = stage == Stage.FIRST ? ((X86Pt) domain.format()).levels() : ((VtdSs) domain.format()).levels();
            ctx = new Context(stage, dids.allocate(), levels);
            try {
                domain.attach(this);
            } catch (IommuApiException | RuntimeException e) {
                dids.free(ctx.did);
                throw e;
            }
            contexts.put(domain, ctx);
        }
        ctx.uses++;
        return ctx;
    }

    /**
     * Ends one use of {@code domain}'s context; the last detaches the domain (a LAZY domain flushes its queue through
     * this instance first) and frees the DID. The entries are gone already: the device's or PASID's tear-down
     * invalidated the DID.
     */
    private void release(IommuDomain domain) throws IommuApiException {
        Context ctx = contexts.get(domain);
        if (--ctx.uses > 0) {
            return;
        }
        try {
            domain.detach(this);
        } finally {
            contexts.remove(domain);
            dids.free(ctx.did);
        }
    }

    private Stage checkFormat(IommuDomain domain) throws IommuApiException {
        PtFormat f = domain.format();
        String why = null;
        Stage stage;
        if (f instanceof VtdSs ss) {
            stage = Stage.SECOND;
            if (scalable && !features.slts()) {
                why = "the unit runs in scalable mode without second-stage translation (ECAP.SLTS=0)";
            } else if (!features.secondStageLevels(ss.levels())) {
                why = "its table has " + ss.levels() + " levels but CAP.SAGAW=0x" + Integer.toHexString(features.sagaw())
                        + " does not offer them (bit 1: 3, bit 2: 4, bit 3: 5 levels)";
            } else if (ss.snoop() && !features.sc()) {
                why = "its table sets SNP but the unit has no snoop control (ECAP.SC=0)";
            } else if (ss.accessDirty()) {
                why = "second-stage accessed/dirty tracking (SSADE) is not set up by this driver";
            } else if (features.mgawBits() < 64 && (domain.apertureLast() >>> features.mgawBits()) != 0) {
                why = "its aperture ends at " + Bits.hex(domain.apertureLast()) + ", beyond the unit's "
                        + features.mgawBits() + "-bit guest address width (CAP.MGAW); narrow the aperture";
            }
        } else if (f instanceof X86Pt fs) {
            stage = Stage.FIRST;
            if (!scalable) {
                why = "first-stage (x86-64) tables need scalable mode, and the driver runs the unit in legacy mode"
                        + (features.smts() ? " (option scalableMode off)" : " (no ECAP.SMTS)");
            } else if (!features.flts()) {
                why = "the unit has no first-stage translation (ECAP.FLTS=0)";
            } else if (fs.levels() == 5 && !features.fl5lp()) {
                why = "its table has 5 levels but the unit has no 5-level first-stage paging (CAP.FL5LP=0)";
            }
        } else {
            stage = null;
            why = "its page table is " + f.name() + ", not a VT-d second-stage (vtd-ss) or first-stage (x86-64) table";
        }
        if (why != null) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot attach domain "
                    + domain.name() + " to " + name + ": " + why);
        }
        return stage;
    }

    // ------------------------------------------------------------------ invalidation

    @Override
    public void iotlbSyncMap(IommuDomain domain, long iova, long size) {
        Context ctx = context(domain);
        long last = iova + size - 1;
        InvalidationQueue q = driver.queue();
        synchronized (q) {
            q.openBatch();
            int n = 0;
            if (ctx.stage == Stage.SECOND) {
                n += planner.iotlb(ctx.did, iova, last, false, q);
            } else {
                for (int pasid : ctx.pasids) {
                    n += planner.pasidIotlb(ctx.did, pasid, iova, last, false, q);
                }
            }
            q.closeBatch();
            count(n);
        }
    }

    @Override
    public void iotlbSync(IommuDomain domain, IotlbGather gather) {
        Context ctx = context(domain);
        InvalidationQueue q = driver.queue();
        synchronized (q) {
            q.openBatch();
            int n = 0;
            boolean range = gather.hasRange();
            boolean leafOnly = !gather.freedTables();
            if (ctx.stage == Stage.SECOND) {
                n += range ? planner.iotlb(ctx.did, gather.start(), gather.last(), leafOnly, q)
                        : planner.iotlbDomain(ctx.did, q);
            } else {
                for (int pasid : ctx.pasids) {
                    n += range ? planner.pasidIotlb(ctx.did, pasid, gather.start(), gather.last(), leafOnly, q)
                            : planner.pasidIotlbAll(ctx.did, pasid, q);
                }
            }
            q.closeBatch();
            count(n);
        }
    }

    @Override
    public void flushIotlbAll(IommuDomain domain) {
        Context ctx = context(domain);
        InvalidationQueue q = driver.queue();
        synchronized (q) {
            q.openBatch();
            int n = 0;
            if (ctx.stage == Stage.SECOND) {
                n += planner.iotlbDomain(ctx.did, q);
            } else {
                for (int pasid : ctx.pasids) {
                    n += planner.pasidIotlbAll(ctx.did, pasid, q);
                }
            }
            q.closeBatch();
            count(n);
        }
    }

    private void count(int n) {
        invalidations.addAndGet(n);
    }

    private Context context(IommuDomain domain) {
        Context ctx = contexts.get(domain);
        if (ctx == null) {
            throw new IllegalStateException(name + ": domain " + domain.name() + " has no device attached here");
        }
        return ctx;
    }

    @Override
    public String toString() {
        return "VtdDomains[" + name + ", " + (scalable ? "scalable" : "legacy") + ", " + contexts.size() + " domains, "
                + planner + "]";
    }
}
