package org.iommuemu.core.driver.vtd;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
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
    private static final long[] NO_TARGETS = new long[0];

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
        /**
         * The device TLBs to invalidate after the domain's IOTLB entries: {@code requesterId << 32 | pasid} per
         * attachment of an ATS device (pasid {@link #RID_PASID}: the whole device, a device-TLB invalidation; else a
         * PASID-based one). Written under the enclosing object, read (volatile) by the invalidation path.
         */
        volatile long[] atsTargets = NO_TARGETS;

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
        /** Device TLBs enabled ({@link #enableAts}): TT=01 (legacy) or DTE (scalable) in the context entry. */
        boolean ats;
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
    private final AtomicLong deviceTlbInvalidations = new AtomicLong();
    /** Devices with device TLBs enabled; guarded by {@code this}. */
    private int atsDevices;

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
        if (st.ats) {
            refreshAts(domain);
        }
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

    /**
     * Enables device TLBs (ATS) for {@code requesterId}, whose whole-device domain is attached here, as Linux does for
     * a device with ATS: legacy mode sets the context entry's TT to 01 (translated and translation requests allowed),
     * scalable mode its DTE bit — qw0 rewritten in one store, P unchanged — and the changed entry is invalidated as
     * the spec's guidance for a present context entry asks (Linux's {@code intel_context_flush_present}): a
     * device-selective context-cache invalidation, then, legacy, a domain-selective IOTLB invalidation of its DID;
     * scalable, a domain-selective PASID-cache and IOTLB invalidation of the DID of each domain attached to the
     * device. From then on every invalidation of a domain of the device — the whole-device domain and the domains of
     * its PASIDs — is followed, in the same batch before its wait, by a device-TLB invalidation of the same range
     * (PASID-based for a PASID's domain). Detaching (or moving) the whole device disables device TLBs again and
     * invalidates the device's whole device TLB. Enabling it twice does nothing.
     *
     * @throws IommuApiException BAD_ARGUMENT for a requester id beyond 16 bits; INCOMPATIBLE_INSTANCE without
     *     ECAP.DT; NOT_ATTACHED when no domain is attached to the whole device
     */
    public synchronized void enableAts(int requesterId) throws IommuApiException {
        checkRequesterId(requesterId);
        if (!features.dt()) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot enable ATS (device TLBs)"
                    + " for " + ContextTables.rid(requesterId) + " on " + name + ": the unit has no device-TLB support"
                    + " (ECAP.DT=0)");
        }
        DeviceState st = states.get(requesterId);
        if (st == null || st.whole == null) {
            throw new IommuApiException(IommuApiException.Kind.NOT_ATTACHED, "cannot enable ATS (device TLBs) for "
                    + ContextTables.rid(requesterId) + " on " + name + ": no domain is attached to the whole device");
        }
        if (st.ats) {
            return;
        }
        ContextTables t = driver.tables();
        long qw0 = t.readContextQw0(requesterId);
        // under the queue's monitor, targets published first: an unmap's batch either completed before the device
        // could use ATS, or follows and invalidates its device TLB too
        synchronized (driver.queue()) {
            st.ats = true;
            atsDevices++;
            refreshAts(st);
            try {
                if (scalable) {
                    t.updateContextQw0(requesterId, qw0 | 1L << VtdTables.SMCTX_DTE);
                } else {
                    t.updateContextQw0(requesterId, (qw0 & ~(3L << VtdTables.CTX_TT))
                            | (long) VtdTables.TT_DEV_IOTLB << VtdTables.CTX_TT);
                }
                contextChangedFlush(requesterId, st, false);
            } catch (RuntimeException e) {
                // the entry may or may not say so: put the old one back and count the device as without ATS
                st.ats = false;
                atsDevices--;
                refreshAts(st);
                try {
                    t.updateContextQw0(requesterId, qw0);
                } catch (RuntimeException again) {
                    e.addSuppressed(again);
                }
                throw e;
            }
        }
    }

    /** Whether device TLBs (ATS) are enabled for {@code requesterId} ({@link #enableAts}). */
    public synchronized boolean atsEnabled(int requesterId) {
        DeviceState st = states.get(requesterId);
        return st != null && st.ats;
    }

    /** Device-TLB and PASID-based device-TLB invalidation descriptors issued (attach, detach and unmap paths). */
    public long deviceTlbInvalidations() {
        return deviceTlbInvalidations.get();
    }

    /**
     * After a change to the present context entry of {@code requesterId} (device TLBs switched on or off), as the
     * spec's guidance and Linux's {@code intel_context_flush_present}: a device-selective context-cache invalidation;
     * legacy, a domain-selective IOTLB invalidation; scalable, a domain-selective PASID-cache and IOTLB invalidation
     * for each DID attached to the device; then, when device TLBs were on ({@code hadAts}), the whole device TLB
     * (and, scalable, every PASID's: a PASID-based invalidation with G=1). One batch, one wait.
     */
    private void contextChangedFlush(int requesterId, DeviceState st, boolean hadAts) {
        int[] dids = st.pasids.values().stream().mapToInt(d -> contexts.get(d).did).toArray();
        int wholeDid = st.whole == null ? -1 : contexts.get(st.whole).did;
        InvalidationQueue q = driver.queue();
        int n = 0;
        int devTlbs = 0;
        synchronized (q) {
            q.openBatch();
            q.descriptor(InvDesc.contextCache(VtdRegs.CC_DEVICE, Math.max(wholeDid, 0), requesterId, 0), 0);
            n++;
            if (!scalable) {
                n += planner.iotlbDomain(wholeDid, q);
            } else {
                BitSet seen = new BitSet();
                for (int did : wholeDid < 0 ? dids : append(dids, wholeDid)) {
                    if (!seen.get(did)) {
                        seen.set(did);
                        q.descriptor(InvDesc.pasidCache(InvDesc.PC_DOMAIN, did, 0), 0);
                        n += 1 + planner.iotlbDomain(did, q);
                    }
                }
            }
            if (hadAts) {
                q.descriptor(InvDesc.deviceTlb(requesterId), InvDesc.deviceTlbAddr(0, 64));
                devTlbs++;
                if (scalable && !st.pasids.isEmpty()) {
                    q.descriptor(InvDesc.pasidDeviceTlb(requesterId, 0), InvDesc.pasidDeviceTlbAddr(0, 64, true));
                    devTlbs++;
                }
            }
            q.closeBatch();
        }
        count(n + devTlbs);
        deviceTlbInvalidations.addAndGet(devTlbs);
    }

    private static int[] append(int[] a, int v) {
        int[] r = Arrays.copyOf(a, a.length + 1);
        r[a.length] = v;
        return r;
    }

    /** Recomputes the device-TLB targets of every domain attached to the device of {@code st}. */
    private void refreshAts(DeviceState st) {
        if (st.whole != null) {
            refreshAts(st.whole);
        }
        for (IommuDomain d : st.pasids.values()) {
            refreshAts(d);
        }
    }

    /**
     * Recomputes {@code domain}'s device-TLB targets from the devices with ATS attached to it (whole device or PASID).
     * Called under this object's monitor after every change of ATS or of an ATS device's attachments.
     */
    private void refreshAts(IommuDomain domain) {
        Context ctx = contexts.get(domain);
        if (ctx == null) {
            return;
        }
        if (atsDevices == 0) {
            ctx.atsTargets = NO_TARGETS;
            return;
        }
        List<Long> targets = new ArrayList<>();
        for (Map.Entry<Integer, DeviceState> e : states.entrySet()) {
            DeviceState st = e.getValue();
            if (!st.ats) {
                continue;
            }
            long rid = (long) (e.getKey() & 0xFFFF) << 32;
            if (st.whole == domain) {
                targets.add(rid | RID_PASID);
            }
            for (Map.Entry<Integer, IommuDomain> p : st.pasids.entrySet()) {
                if (p.getValue() == domain) {
                    targets.add(rid | p.getKey());
                }
            }
        }
        ctx.atsTargets = targets.isEmpty() ? NO_TARGETS : targets.stream().mapToLong(Long::longValue).toArray();
    }

    /** The PASIDs attached on {@code requesterId} here, in order. */
    public synchronized List<Integer> pasidsOf(int requesterId) {
        DeviceState st = states.get(requesterId);
        return st == null ? List.of() : List.copyOf(st.pasids.keySet());
    }

    private void detachWhole(int requesterId, DeviceState st) throws IommuApiException {
        IommuDomain domain = st.whole;
        Context ctx = contexts.get(domain);
        boolean ats = st.ats;
        if (scalable) {
            tearDownPasidEntry(requesterId, st, RID_PASID, ctx); // with the whole device TLB when ATS was on
            st.whole = null;
            if (ats) {
                disableAts(requesterId, st);
            }
            releaseDeviceIfEmpty(requesterId, st, ctx.did);
        } else {
            long qw1 = driver.tables().clearContext(requesterId);
            int oldDid = (int) Bits.extract(qw1, VtdTables.CTX_DID, 16);
            InvalidationQueue q = driver.queue();
            synchronized (q) {
                q.openBatch();
                q.descriptor(InvDesc.contextCache(VtdRegs.CC_DEVICE, oldDid, requesterId, 0), 0);
                planner.iotlbDomain(oldDid, q);
                if (ats) {
                    // the device TLB may hold translations of the cleared entry (Linux's __context_flush_dev_iotlb)
                    q.descriptor(InvDesc.deviceTlb(requesterId), InvDesc.deviceTlbAddr(0, 64));
                }
                q.closeBatch();
            }
            count(ats ? 3 : 2);
            st.whole = null;
            if (ats) {
                deviceTlbInvalidations.incrementAndGet();
                st.ats = false;
                atsDevices--;
            }
        }
        devices.remove(requesterId);
        refreshAts(domain);
        release(domain);
    }

    /**
     * Scalable mode, the whole-device domain just torn down: device TLBs are switched off. A context entry kept for
     * the device's PASIDs loses DTE and is invalidated (with every PASID's device-TLB entries); the PASID domains stop
     * invalidating the device's TLB.
     */
    private void disableAts(int requesterId, DeviceState st) {
        st.ats = false;
        atsDevices--;
        if (st.pasidTable != null && !st.pasids.isEmpty()) {
            ContextTables t = driver.tables();
            t.updateContextQw0(requesterId, t.readContextQw0(requesterId) & ~(1L << VtdTables.SMCTX_DTE));
            contextChangedFlush(requesterId, st, true);
        }
        refreshAts(st);
    }

    private void detachPasidOf(int requesterId, DeviceState st, int pasid) throws IommuApiException {
        IommuDomain domain = st.pasids.remove(pasid);
        pasidDomains.remove(key(requesterId, pasid));
        tearDownPasidEntry(requesterId, st, pasid, contexts.get(domain));
        if (st.ats) {
            refreshAts(domain);
        }
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

    /**
     * Clears the PASID entry (P first), then PASID cache and IOTLB / PASID-IOTLB for it and, when the device has
     * device TLBs, its device-TLB entries of that PASID (RID_PASID: a device-TLB invalidation of everything; another
     * PASID: a PASID-based one), as Linux's {@code intel_pasid_tear_down_entry}.
     */
    private void tearDownPasidEntry(int requesterId, DeviceState st, int pasid, Context ctx) {
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
            if (st.ats) {
                deviceTlb(q, (long) requesterId << 32 | pasid, 0, 64);
            }
            q.closeBatch();
        }
        if (st.ats) {
            count(1);
            deviceTlbInvalidations.incrementAndGet();
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
            long[] ats = ctx.atsTargets; // read under the queue's monitor: see enableAts
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
            if (ats.length != 0) {
                n += range ? deviceTlbs(ats, gather.start(), gather.last(), q) : deviceTlbs(ats, 0, -1L, q);
            }
            q.closeBatch();
            count(n);
        }
    }

    /**
     * After a domain's IOTLB invalidation, in the same batch (recent Linux's {@code qi_batch}: IOTLB descriptors
     * first, then device-TLB ones, one wait): one device-TLB invalidation per ATS attachment of the domain covering
     * {@code [start, last]} with the smallest aligned power-of-two span ({@code 0, -1}: everything), as Linux's
     * {@code calculate_psi_aligned_address}. Allocates nothing. Returns the descriptors written.
     */
    private int deviceTlbs(long[] targets, long start, long last, DescriptorSink q) {
        int spanLg2 = start == 0 && last == -1L ? 64 : Math.max(12, 64 - Long.numberOfLeadingZeros(start ^ last));
        long address = spanLg2 >= 64 ? 0 : start & -(1L << spanLg2);
        for (long t : targets) {
            deviceTlb(q, t, address, spanLg2);
        }
        deviceTlbInvalidations.addAndGet(targets.length);
        return targets.length;
    }

    /** One device-TLB invalidation of target {@code t} ({@code rid << 32 | pasid}) for 2^spanLg2 bytes at address. */
    private static void deviceTlb(DescriptorSink q, long t, long address, int spanLg2) {
        int sid = (int) (t >>> 32);
        int pasid = (int) t;
        if (pasid == RID_PASID) {
            q.descriptor(InvDesc.deviceTlb(sid), InvDesc.deviceTlbAddr(address, spanLg2));
        } else {
            q.descriptor(InvDesc.pasidDeviceTlb(sid, pasid), InvDesc.pasidDeviceTlbAddr(address, spanLg2, false));
        }
    }

    @Override
    public void flushIotlbAll(IommuDomain domain) {
        Context ctx = context(domain);
        InvalidationQueue q = driver.queue();
        synchronized (q) {
            long[] ats = ctx.atsTargets; // read under the queue's monitor: see enableAts
            q.openBatch();
            int n = 0;
            if (ctx.stage == Stage.SECOND) {
                n += planner.iotlbDomain(ctx.did, q);
            } else {
                for (int pasid : ctx.pasids) {
                    n += planner.pasidIotlbAll(ctx.did, pasid, q);
                }
            }
            if (ats.length != 0) {
                n += deviceTlbs(ats, 0, -1L, q);
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
