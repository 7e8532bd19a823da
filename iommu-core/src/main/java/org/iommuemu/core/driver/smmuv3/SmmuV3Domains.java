package org.iommuemu.core.driver.smmuv3;

import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.api.IommuInstanceOps;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PageAllocator;
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
 * for the streams attached to them, and the invalidations the domains ask for ({@link IommuInstanceOps}).
 *
 * <p><b>Contexts.</b> A domain gets a context on this SMMU when its first stream is attached: a stage-1 domain
 * an ASID (VMID 0 tags stage-1-only translations, as Linux does), a stage-2 domain a VMID, both from 1 up to the
 * implemented width. Its last stream's detach flushes the context, detaches the domain from this instance and
 * frees the id.
 *
 * <p><b>Attach</b> ({@link #attachStream}) writes, in the safe order: for stage 1 a one-entry CD table (CD with
 * TTB0, T0SZ, TG0, IPS, MAIR, ASID, as Linux's {@code arm_smmu_make_s1_cd}) and then the STE pointing at it
 * (S1DSS=SSID0); for stage 2 the STE's stage-2 fields (VMID, S2T0SZ, S2SL0, S2TG, S2PS, S2TTB, S2R). The STE
 * write ends with CFGI_STE and a CMD_SYNC. <b>Detach</b> ({@link #detachStream}) makes the STE abort, then frees
 * the stream's CD table.
 *
 * <p><b>Invalidation</b> ({@link #iotlbSync}): the gathered range becomes TLBI_NH_VA (stage 1) or TLBI_S2_IPA
 * (stage 2) commands planned by {@link TlbiPlanner} (range commands with RIL, one per gathered page otherwise,
 * the whole context beyond the threshold), leaf-only unless the unmap freed tables, written straight into the
 * command queue in batches of at most 64 with one CMD_SYNC each. {@link #flushIotlbAll} is TLBI_NH_ASID or
 * TLBI_S12_VMALL with a CMD_SYNC. The SMMU caches no invalid entries, so maps need no sync
 * ({@link #needsMapSync} is false).
 *
 * <p><b>Faults.</b> Every event record the driver reads for a stream attached here goes to its domain's
 * {@link FaultHandler} ({@link #setFaultHandler}); records of domains without one are counted
 * ({@link #unhandledEvents}).
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

    /** A domain's context on this SMMU. */
    private record Context(Stage stage, int vmid, int asid, int tgLg2) {}

    private final SmmuV3Driver driver;
    private final String name;
    private final TlbiPlanner planner;
    private final IdAllocator asids;
    private final IdAllocator vmids;
    private final ConcurrentHashMap<IommuDomain, Context> contexts = new ConcurrentHashMap<>();
    /** The streams attached through this object (changed under {@code this}, read by the event path). */
    private final Map<Integer, IommuDomain> streams = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<IommuDomain, FaultHandler> handlers = new ConcurrentHashMap<>();
    private final AtomicLong unhandledEvents = new AtomicLong();
    /** Guarded by {@code this}: each attached stream's CD table (0 for stage 2). */
    private final Map<Integer, Long> cdTables = new HashMap<>();
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

    private void route(EventRecord event) {
        IommuDomain domain = streams.get(event.streamId());
        FaultHandler h = domain == null ? null : handlers.get(domain);
        if (h == null) {
            if (domain != null) {
                unhandledEvents.incrementAndGet();
            }
            return;
        }
        h.onFault(domain, event.streamId(), event);
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

    /** The stage-1 ASID or stage-2 VMID {@code domain} has here, or -1 when it has no stream attached here. */
    public int contextId(IommuDomain domain) {
        Context c = contexts.get(domain);
        return c == null ? -1 : c.stage == Stage.S1 ? c.asid : c.vmid;
    }

    // ------------------------------------------------------------------ attach / detach

    /**
     * Makes stream {@code streamId} translate through {@code domain}'s page table at {@code stage}. The first
     * stream of a domain gives it a context here and attaches the domain to this instance
     * ({@link IommuDomain#attach}). A stream already attached elsewhere is moved (its old domain loses it).
     *
     * @throws IommuApiException INCOMPATIBLE_INSTANCE when the SMMU lacks the stage, the granule or the output
     *     size the domain's table needs, or the domain already has the other stage here; what
     *     {@link IommuDomain#attach} throws
     * @throws IllegalStateException when no ASID or VMID is free
     */
    public synchronized void attachStream(IommuDomain domain, Stage stage, int streamId) throws IommuApiException {
        Objects.requireNonNull(domain, "domain");
        Objects.requireNonNull(stage, "stage");
        Arm64Lpae fmt = checkFormat(domain, stage);
        if (streams.containsKey(streamId)) {
            detachStream(streamId);
        }
        Context ctx = contexts.get(domain);
        if (ctx == null) {
            ctx = newContext(stage, fmt);
            try {
                domain.attach(this);
            } catch (IommuApiException | RuntimeException e) {
                freeId(ctx);
                throw e;
            }
            contexts.put(domain, ctx);
        } else if (ctx.stage != stage) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, name + ": domain "
                    + domain.name() + " is walked at stage " + (ctx.stage == Stage.S1 ? 1 : 2) + " here already");
        }
        int ips = Encodings.oasEncoding(fmt.oaBits());
        long root = domain.pageTable().root();
        int tg = Encodings.tg0ForGranuleLg2(fmt.granuleLg2());
        long cdTable = 0;
        Ste ste;
        if (stage == Stage.S1) {
            PageAllocator alloc = driver.host().allocator();
            cdTable = alloc.allocBytes(Cd.SIZE, "smmu-cd");
            try {
                driver.host().memory().write64s(cdTable,
                        Cd.stage1(fmt.t0sz(), tg, ips, ctx.asid, root, Cd.LINUX_MAIR).encode(), 0, Cd.SIZE / 8);
            } catch (MemoryAccessException e) {
                alloc.free(cdTable);
                throw new SmmuV3DriverException(SmmuV3DriverException.Kind.MEMORY, name + ": writing the CD of stream "
                        + streamId + " failed: " + e.getMessage(), e);
            }
            ste = Ste.stage1(cdTable, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0);
        } else {
            ste = Ste.stage2(ctx.vmid, fmt.t0sz(), fmt.stage2Sl0(), tg, ips, root);
        }
        driver.writeSte(streamId, ste);
        streams.put(streamId, domain);
        cdTables.put(streamId, cdTable);
    }

    /**
     * Makes stream {@code streamId} abort its traffic and forgets its domain; the domain's last stream here
     * also ends its context (flushed, detached from this instance, id freed). Does nothing for a stream that
     * is not attached here.
     */
    public synchronized void detachStream(int streamId) throws IommuApiException {
        IommuDomain domain = streams.remove(streamId);
        if (domain == null) {
            return;
        }
        driver.abort(streamId);
        long cdTable = cdTables.remove(streamId);
        if (cdTable != 0) {
            driver.host().allocator().free(cdTable);
        }
        if (!streams.containsValue(domain)) {
            Context ctx = contexts.get(domain);
            domain.detach(this); // LAZY: flushes its queue through us first
            flushContext(ctx);
            contexts.remove(domain);
            freeId(ctx);
        }
    }

    private void freeId(Context ctx) {
        if (ctx.stage == Stage.S1) {
            asids.free(ctx.asid);
        } else {
            vmids.free(ctx.vmid);
        }
    }

    /** The domain stream {@code streamId} translates through here, or null. */
    public synchronized IommuDomain domainOf(int streamId) {
        return streams.get(streamId);
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

    private Context newContext(Stage stage, Arm64Lpae fmt) {
        return stage == Stage.S1
                ? new Context(stage, 0, asids.allocate(), fmt.granuleLg2())
                : new Context(stage, vmids.allocate(), 0, fmt.granuleLg2());
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
                n = ctx.stage == Stage.S1
                        ? planner.stage1(ctx.vmid, ctx.asid, gather.start(), size, gather.pageLg2(), ctx.tgLg2, leaf, q)
                        : planner.stage2(ctx.vmid, gather.start(), size, gather.pageLg2(), ctx.tgLg2, leaf, q);
            }
            q.closeBatch();
            count(n);
        }
    }

    @Override
    public void flushIotlbAll(IommuDomain domain) {
        flushContext(context(domain));
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
