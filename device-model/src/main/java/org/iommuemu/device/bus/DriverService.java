package org.iommuemu.device.bus;

import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Supplier;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.FlushQueueTimer;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.driver.smmuv3.NestedTables;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverException;
import org.iommuemu.core.driver.vtd.VtdDriverException;
import org.iommuemu.core.memory.GuestMemoryExhaustedException;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.pgtable.PageTableException;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;
import org.iommuemu.device.machine.DriverEventLog;
import org.iommuemu.device.machine.DriverHost;
import org.iommuemu.device.machine.DriverInstance;
import org.iommuemu.device.machine.SmmuDriverInstance;
import org.iommuemu.device.machine.VtdDriverInstance;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.sanitize.Sanitizer;
import org.iommuemu.device.sanitize.SanitizerReport;
import org.iommuemu.device.trace.DriverOp;
import org.iommuemu.device.trace.TraceKind;
import org.iommuemu.device.trace.Tracer;
import org.iommuemu.proto.v1.AllocBufferReply;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AttachDeviceReply;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CreateDomainReply;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DestroyDomainReply;
import org.iommuemu.proto.v1.DestroyDomainRequest;
import org.iommuemu.proto.v1.DetachDeviceReply;
import org.iommuemu.proto.v1.DetachDeviceRequest;
import org.iommuemu.proto.v1.DriverEvent;
import org.iommuemu.proto.v1.DriverStats;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.EventsReply;
import org.iommuemu.proto.v1.EventsRequest;
import org.iommuemu.proto.v1.FlushReply;
import org.iommuemu.proto.v1.FlushRequest;
import org.iommuemu.proto.v1.FreeBufferReply;
import org.iommuemu.proto.v1.FreeBufferRequest;
import org.iommuemu.proto.v1.IovaToPhysReply;
import org.iommuemu.proto.v1.IovaToPhysRequest;
import org.iommuemu.proto.v1.MapReply;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.MapSgReply;
import org.iommuemu.proto.v1.MapSgRequest;
import org.iommuemu.proto.v1.SanitizerReportsReply;
import org.iommuemu.proto.v1.SanitizerReportsRequest;
import org.iommuemu.proto.v1.UnmapReply;
import org.iommuemu.proto.v1.UnmapRequest;

/**
 * The in-process IOMMU API on the bus: domains of the machine's {@link DriverHost} driver, stream attachment,
 * map / mapSg / unmap / iovaToPhys, and buffers from the driver heap.
 *
 * <p><b>Locking.</b> Creating, destroying, attaching and detaching serialise on this service; each also takes the
 * write side of the domains' read-write locks it changes, so they never run under a map or unmap of those
 * domains (which {@link IommuDomain} does not allow). Map, mapSg, unmap and iovaToPhys take the read side: any
 * number run at once, on any domains.
 *
 * <p><b>Destroy</b> refuses (FAILED_PRECONDITION, naming the streams) a domain that still has streams attached:
 * a client detaches its devices first, as Linux requires before {@code iommu_domain_free}. It also refuses a
 * stage-2 domain that nested domains are built on.
 *
 * <p><b>Substreams and nesting.</b> A substream is kept under its own key ({@link #substreamKey}) beside the
 * whole stream's. A nested domain owns its {@link NestedTables} (taken from the heap and mapped in the parent when
 * it is created, given back when it is destroyed); attaching, detaching or moving a stream of a nested domain
 * also takes the parent's write lock, since the parent's context on the instance may come or go with it.
 */
final class DriverService extends DriverGrpc.DriverImplBase {
    /** Longest domain name. */
    static final int MAX_NAME = 64;

    private final Machine machine;
    private final DriverHost host;
    private final AtomicLong nextId = new AtomicLong(1);
    private final Map<Long, Domain> domains = new ConcurrentHashMap<>();
    /** Guarded by {@code this}: who each attached stream belongs to, keyed by {@link #streamKey}. */
    private final Map<String, Domain> streams = new HashMap<>();
    /** AllocBuffer blocks not freed yet (FreeBuffer frees only these, never driver structures). */
    private final Set<Long> buffers = ConcurrentHashMap.newKeySet();
    private FlushQueueTimer timer;

    /** The block of nesting tables each nested domain gets (see driver.proto, "Nesting"). */
    static final long NESTED_TABLES_BYTES = 4L << 20;

    /** A domain of the service: the IOMMU API domain, the instances it is for and its attached streams. */
    private static final class Domain {
        final long id;
        final IommuDomain api;
        final DriverInstance.Stage stage;
        final List<DriverInstance> instances;
        /** A nested domain's stage-2 parent and the tables it maps for it; null otherwise. */
        final Domain parent;
        final NestedTables tables;
        /** Guarded by the service: stream keys attached. */
        final Set<String> streams = new LinkedHashSet<>();
        /** Guarded by the service: the domains nested on this one. */
        final Set<Domain> children = new LinkedHashSet<>();
        final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();

        Domain(long id, IommuDomain api, DriverInstance.Stage stage, List<DriverInstance> instances, Domain parent,
                NestedTables tables) {
            this.id = id;
            this.api = api;
            this.stage = stage;
            this.instances = instances;
            this.parent = parent;
            this.tables = tables;
        }

        DriverInstance instance(String name) {
            for (DriverInstance o : instances) {
                if (o.name().equals(name)) {
                    return o;
                }
            }
            return null;
        }

        List<String> instanceNames() {
            List<String> names = new ArrayList<>();
            for (DriverInstance o : instances) {
                names.add(o.name());
            }
            return names;
        }
    }

    DriverService(Machine machine) {
        this.machine = machine;
        this.host = machine.driverHost();
    }

    /** Stops the LAZY flush-queue timer (at server shutdown). */
    synchronized void shutdown() {
        if (timer != null) {
            timer.close();
            timer = null;
        }
    }

    private static String streamKey(String iommu, int streamId) {
        return iommu + " stream " + Integer.toUnsignedString(streamId);
    }

    private static String substreamKey(String iommu, int streamId, int ssid) {
        return streamKey(iommu, streamId) + " substream " + Integer.toUnsignedString(ssid);
    }

    /** Write-locks the distinct domains given (nulls skipped) in id order; unlock with {@link #unlock}. */
    private static List<Lock> writeLock(Domain... ds) {
        List<Domain> sorted = new ArrayList<>();
        for (Domain d : ds) {
            if (d != null && !sorted.contains(d)) {
                sorted.add(d);
            }
        }
        sorted.sort((a, b) -> Long.compare(a.id, b.id));
        List<Lock> locks = new ArrayList<>();
        for (Domain d : sorted) {
            Lock w = d.lock.writeLock();
            w.lock();
            locks.add(w);
        }
        return locks;
    }

    private static void unlock(List<Lock> locks) {
        for (int i = locks.size() - 1; i >= 0; i--) {
            locks.get(i).unlock();
        }
    }

    /**
     * Runs {@code call} and, while tracing, records it on the driver track as {@code op} (domain, iova, bytes), with
     * result 1 when it was refused.
     */
    private <R> R traced(DriverOp op, long domain, long iova, long size, Supplier<R> call) {
        Tracer t = machine.tracer();
        if (!t.on()) {
            return call.get();
        }
        boolean ok = false;
        try {
            R r = call.get();
            ok = true;
            return r;
        } finally {
            t.record(TraceKind.DRIVER, -1, domain, -1, iova, size, op.ordinal(), ok ? 0 : 1, 0);
        }
    }

    // ------------------------------------------------------------------ domains

    @Override
    public void createDomain(CreateDomainRequest request, StreamObserver<CreateDomainReply> responses) {
        Calls.unary(responses, () -> traced(DriverOp.DOMAIN_ALLOC, 0, 0, 0, () -> create(request)));
    }

    private synchronized CreateDomainReply create(CreateDomainRequest r) {
        if (r.getIommusCount() == 0) {
            throw BusError.invalidArgument("iommus must name at least one instance (instances: "
                    + machine.iommuNames() + ")");
        }
        DriverInstance.Stage stage = switch (r.getStage()) {
            case STAGE_1 -> DriverInstance.Stage.S1;
            case STAGE_2 -> DriverInstance.Stage.S2;
            default -> throw BusError.invalidArgument("stage must be STAGE_1 or STAGE_2, got " + r.getStage());
        };
        long granule = r.getGranule();
        if (granule != 4096 && granule != 16384 && granule != 65536) {
            throw BusError.invalidArgument("granule must be 4096, 16384 or 65536 bytes, got "
                    + Long.toUnsignedString(granule));
        }
        int granuleLg2 = Bits.lg2(granule);
        FlushPolicy policy = switch (r.getFlush()) {
            case FLUSH_MODE_UNSPECIFIED, STRICT -> FlushPolicy.STRICT;
            case LAZY -> FlushPolicy.LAZY;
            default -> throw BusError.invalidArgument("flush must be STRICT or LAZY, got " + r.getFlush());
        };
        if (r.hasFlushTimeoutNs() && policy != FlushPolicy.LAZY) {
            throw BusError.invalidArgument("flush_timeout_ns applies to LAZY domains only (flush is " + r.getFlush()
                    + ")");
        }
        // 0: no time bound (the queue still flushes when full, on iova reuse and on Flush)
        boolean timed = policy == FlushPolicy.LAZY && (!r.hasFlushTimeoutNs() || r.getFlushTimeoutNs() != 0);
        if (r.getName().length() > MAX_NAME) {
            throw BusError.invalidArgument("name is longer than " + MAX_NAME + " characters");
        }
        Domain parent = nestParent(r, stage);
        // Check the names and kinds before taking any instance over.
        List<IommuDevice> devices = new ArrayList<>();
        for (String name : r.getIommusList()) {
            IommuDevice d = MachineService.device(machine, name);
            if (devices.contains(d)) {
                throw BusError.invalidArgument("iommus names " + name + " twice");
            }
            if (!devices.isEmpty() && devices.get(0).type() != d.type()) {
                throw BusError.invalidArgument("iommus: " + devices.get(0).name() + " is " + devices.get(0).type()
                        + " and " + name + " is " + d.type() + ": a domain's page table has one format, so its"
                        + " instances are of one kind");
            }
            devices.add(d);
        }
        List<DriverInstance> owned = new ArrayList<>();
        int oas = 48;
        for (IommuDevice d : devices) {
            DriverInstance o = takeOver(d);
            String refusal = o.refusal(stage, granule, parent != null);
            if (refusal != null) {
                throw BusError.failedPrecondition(refusal);
            }
            oas = Math.min(oas, o.outputBits());
            owned.add(o);
        }
        int inputBits = r.getInputBits() == 0 ? owned.get(0).defaultInputBits(stage) : r.getInputBits();
        if (parent != null) {
            oas = Math.min(oas, parent.api.format().vaBits()); // a nested domain's output is an IPA
        }
        int outputBits = r.getOutputBits() == 0 ? oas : r.getOutputBits();
        if (r.getOutputBits() != 0 && outputBits > minOas(owned)) {
            throw BusError.outOfRange("output_bits " + outputBits + " exceeds the OAS of the instances ("
                    + minOas(owned) + " bits)");
        }
        PtFormat fmt;
        try {
            fmt = owned.get(0).format(stage, granuleLg2, inputBits, outputBits);
        } catch (IllegalArgumentException e) {
            throw BusError.outOfRange("input_bits / output_bits: " + e.getMessage());
        }
        long id = nextId.getAndIncrement();
        String name = r.getName().isEmpty() ? "domain" + id : r.getName();
        NestedTables tables = parent == null ? null : nestedTables(parent);
        IommuDomain api = null;
        try {
            IommuDomain.Builder b = IommuDomain.builder(fmt, machine.memory(), tables != null ? tables : host.heap())
                    .name(name).flushPolicy(policy);
            if (r.hasFlushTimeoutNs()) {
                if (timed) {
                    b.flushQueueTimeoutNanos(r.getFlushTimeoutNs());
                } else {
                    b.clock(() -> 0L); // the oldest entry never ages, so only fullness, reuse or Flush flush it
                }
            }
            api = b.build();
        } catch (IommuApiException e) {
            throw apiError("CreateDomain", e);
        } catch (GuestMemoryExhaustedException e) {
            throw heapExhausted("the domain's page table", e);
        } finally {
            if (api == null && tables != null) {
                closeTables(parent, tables);
            }
        }
        machine.sanitizer().track(api, parent == null ? null : parent.api); // nothing while it is off
        Domain d = new Domain(id, api, stage, List.copyOf(owned), parent, tables);
        if (parent != null) {
            parent.children.add(d);
        }
        domains.put(id, d);
        if (timed) {
            if (timer == null) {
                timer = new FlushQueueTimer();
            }
            timer.add(api);
        }
        return CreateDomainReply.newBuilder().setDomain(id).setName(name).setOutputBits(outputBits)
                .setPageSizes(api.pageSizes()).build();
    }

    /** The domain {@code nest_parent} names, checked; null when it is 0. */
    private Domain nestParent(CreateDomainRequest r, DriverInstance.Stage stage) {
        if (r.getNestParent() == 0) {
            return null;
        }
        if (stage != DriverInstance.Stage.S1) {
            throw BusError.invalidArgument("nest_parent applies to STAGE_1 domains (stage is " + r.getStage() + ")");
        }
        Domain parent = domains.get(r.getNestParent());
        if (parent == null) {
            throw BusError.notFound("nest_parent: domain " + Long.toUnsignedString(r.getNestParent()) + " not found");
        }
        if (parent.stage != DriverInstance.Stage.S2) {
            throw BusError.failedPrecondition("nest_parent: domain " + parent.id + " (" + parent.api.name()
                    + ") is a STAGE_1 domain; a nest parent is a STAGE_2 domain");
        }
        for (String name : r.getIommusList()) {
            if (parent.instance(name) == null) {
                throw BusError.invalidArgument("iommus: " + name + " is not one of nest_parent " + parent.id
                        + "'s instances " + parent.instanceNames());
            }
        }
        return parent;
    }

    /** A nested domain's tables, mapped IPA == PA in the parent (under the parent's read lock, like a Map). */
    private NestedTables nestedTables(Domain parent) {
        Lock r = parent.lock.readLock();
        r.lock();
        try {
            return NestedTables.create(parent.api, machine.memory(), host.heap(), NESTED_TABLES_BYTES);
        } catch (IommuApiException e) {
            throw apiError("CreateDomain: nest_parent " + parent.id, e);
        } catch (GuestMemoryExhaustedException e) {
            throw heapExhausted("the nesting tables (" + (NESTED_TABLES_BYTES >> 20) + " MiB)", e);
        } finally {
            r.unlock();
        }
    }

    private void closeTables(Domain parent, NestedTables tables) {
        Lock r = parent.lock.readLock();
        r.lock();
        try {
            tables.close();
        } catch (IommuApiException e) {
            throw apiError("DestroyDomain: unmapping the nesting tables from domain " + parent.id, e);
        } finally {
            r.unlock();
        }
    }

    private static int minOas(List<DriverInstance> owned) {
        int oas = Integer.MAX_VALUE;
        for (DriverInstance o : owned) {
            oas = Math.min(oas, o.outputBits());
        }
        return oas;
    }

    private DriverInstance takeOver(IommuDevice d) {
        try {
            return host.takeOver(d);
        } catch (GuestMemoryExhaustedException e) {
            throw heapExhausted("the driver structures of " + d.name(), e);
        } catch (DriverInstance.Failure e) {
            throw BusError.failedPrecondition("iommus: the driver cannot take " + d.name() + " over: "
                    + e.getMessage());
        } catch (UnsupportedOperationException e) {
            throw BusError.unimplemented("iommus: " + e.getMessage());
        } catch (IllegalStateException e) {
            throw BusError.failedPrecondition("iommus: " + d.name() + ": " + e.getMessage());
        }
    }

    @Override
    public void destroyDomain(DestroyDomainRequest request, StreamObserver<DestroyDomainReply> responses) {
        Calls.unary(responses, () -> traced(DriverOp.DOMAIN_FREE, request.getDomain(), 0, 0, () -> {
            synchronized (this) {
                Domain d = domain(request.getDomain());
                if (!d.streams.isEmpty()) {
                    throw BusError.failedPrecondition("domain " + d.id + " (" + d.api.name()
                            + ") still has streams attached (" + String.join(", ", d.streams) + "); DetachDevice them first");
                }
                if (!d.children.isEmpty()) {
                    List<String> ids = new ArrayList<>();
                    for (Domain c : d.children) {
                        ids.add(Long.toUnsignedString(c.id));
                    }
                    throw BusError.failedPrecondition("domain " + d.id + " (" + d.api.name() + ") is the nest_parent of"
                            + " domains " + ids + "; destroy them first");
                }
                Lock w = d.lock.writeLock();
                w.lock();
                try {
                    if (timer != null) {
                        timer.remove(d.api);
                    }
                    d.api.destroy();
                } catch (IommuApiException e) {
                    throw apiError("DestroyDomain", e);
                } catch (SmmuV3DriverException e) {
                    throw driverError(d.instances.size() == 1 ? d.instances.get(0) : null,
                            SmmuDriverInstance.toFailure(e));
                } catch (VtdDriverException e) {
                    throw driverError(d.instances.size() == 1 ? d.instances.get(0) : null,
                            VtdDriverInstance.toFailure(e));
                } finally {
                    w.unlock();
                }
                domains.remove(d.id);
                if (d.parent != null) {
                    d.parent.children.remove(d);
                    closeTables(d.parent, d.tables);
                }
            }
            return DestroyDomainReply.getDefaultInstance();
        }));
    }

    private Domain domain(long id) {
        Domain d = domains.get(id);
        if (d == null) {
            throw BusError.notFound("domain " + Long.toUnsignedString(id) + " not found");
        }
        return d;
    }

    // ------------------------------------------------------------------ attach / detach

    @Override
    public void attachDevice(AttachDeviceRequest request, StreamObserver<AttachDeviceReply> responses) {
        Calls.unary(responses, () -> traced(DriverOp.ATTACH, request.getDomain(), request.getStreamId(), 0,
                () -> attach(request)));
    }

    private synchronized AttachDeviceReply attach(AttachDeviceRequest r) {
        Domain d = domain(r.getDomain());
        IommuDevice device = MachineService.device(machine, r.getIommu());
        DriverInstance o = d.instance(device.name());
        if (o == null) {
            throw BusError.invalidArgument("iommu " + device.name() + " is not one of domain " + d.id
                    + "'s instances " + d.instanceNames());
        }
        int sid = r.getStreamId();
        checkStreamId(device, sid);
        if (r.hasSubstreamId()) {
            if (r.getAts()) {
                throw BusError.invalidArgument("ats applies to the whole stream: attach stream_id "
                        + Integer.toUnsignedString(sid) + " with ats (without substream_id)");
            }
            return attachSubstream(d, device, o, sid, r.getSubstreamId());
        }
        String key = streamKey(device.name(), sid);
        Domain old = streams.get(key);
        if (old == d) {
            throw BusError.alreadyExists("stream_id " + Integer.toUnsignedString(sid) + " of " + device.name()
                    + " is attached to domain " + d.id + " already");
        }
        // a nested domain's parent (and an old nested domain's) may gain or lose its context on the instance
        List<Lock> locks = writeLock(d, d.parent, old, old == null ? null : old.parent);
        try {
            onDriver(d, device, () -> {
                if (d.parent != null) {
                    o.attachNested(d.api, d.tables, sid);
                } else {
                    o.attachStream(d.api, d.stage, sid); // moves the stream from its old domain, if any
                }
            });
        } finally {
            if (old != null && o.domainOf(sid) != old.api) {
                // moved, or lost on the way when the attach failed after taking it from its old domain
                old.streams.remove(key);
                streams.remove(key);
            }
            unlock(locks);
        }
        if (old != null) {
            old.streams.remove(key);
        }
        streams.put(key, d);
        d.streams.add(key);
        if (r.getAts()) {
            try {
                onDriver(d, device, () -> o.enableAts(sid));
            } catch (UnsupportedOperationException e) {
                throw BusError.unimplemented("ats: " + e.getMessage() + " (the stream stays attached without ATS)");
            }
        }
        return AttachDeviceReply.newBuilder().setContextId(o.contextId(d.api)).build();
    }

    private AttachDeviceReply attachSubstream(Domain d, IommuDevice device, DriverInstance o, int sid, int ssid) {
        checkSubstreamId(device, o, ssid);
        String where = "substream_id " + Integer.toUnsignedString(ssid) + " of stream_id "
                + Integer.toUnsignedString(sid) + " of " + device.name();
        if (ssid == 0) {
            throw BusError.invalidArgument("substream_id 0 is the stream's DMA without a substream id (CD 0): attach"
                    + " the whole stream (leave substream_id unset)");
        }
        if (d.stage != DriverInstance.Stage.S1) {
            throw BusError.failedPrecondition("substream_id: domain " + d.id + " (" + d.api.name()
                    + ") is STAGE_2; a substream takes a STAGE_1 domain");
        }
        if (d.parent != null) {
            throw BusError.unimplemented("substream_id: domain " + d.id + " (" + d.api.name() + ") is nested on domain "
                    + d.parent.id + "; substreams of nested domains are not modelled");
        }
        String key = substreamKey(device.name(), sid, ssid);
        Domain old = streams.get(key);
        if (old == d) {
            throw BusError.alreadyExists(where + " is attached to domain " + d.id + " already");
        }
        List<Lock> locks = writeLock(d, old);
        try {
            onDriver(d, device, () -> o.attachSubstream(d.api, sid, ssid));
        } finally {
            if (old != null && o.domainOf(sid, ssid) != old.api) {
                old.streams.remove(key);
                streams.remove(key);
            }
            unlock(locks);
        }
        streams.put(key, d);
        d.streams.add(key);
        return AttachDeviceReply.newBuilder().setContextId(o.contextId(d.api)).build();
    }

    @FunctionalInterface
    private interface DriverCall {
        void run() throws IommuApiException;
    }

    /** Runs an attach of {@code d} on {@code device}, mapping the driver's refusals to statuses. */
    private void onDriver(Domain d, IommuDevice device, DriverCall call) {
        try {
            call.run();
        } catch (IommuApiException e) {
            throw apiError("AttachDevice", e);
        } catch (GuestMemoryExhaustedException e) {
            throw heapExhausted("the stream's CD table", e);
        } catch (IllegalStateException e) {
            throw BusError.resourceExhausted("domain " + d.id + " on " + device.name() + ": " + e.getMessage());
        } catch (DriverInstance.Failure e) {
            throw driverError(d.instance(device.name()), e);
        }
    }

    private static void checkStreamId(IommuDevice device, int sid) {
        if (!Bits.fitsUnsigned(Integer.toUnsignedLong(sid), device.streamIdBits())) {
            throw BusError.outOfRange("stream_id " + Integer.toUnsignedString(sid) + " does not fit in the "
                    + device.streamIdBits() + " stream id bits of " + device.name());
        }
    }

    /** A substream id within the instance's substream id bits (and the driver's, when it uses fewer). */
    private static void checkSubstreamId(IommuDevice device, DriverInstance o, int ssid) {
        int bits = device.substreamIdBits();
        if (!Bits.fitsUnsigned(Integer.toUnsignedLong(ssid), bits)) {
            throw BusError.outOfRange("substream_id " + Integer.toUnsignedString(ssid) + " does not fit in the "
                    + bits + " substream id bits of " + device.name());
        }
        int driverBits = o == null ? bits : o.substreamBits();
        if (!Bits.fitsUnsigned(Integer.toUnsignedLong(ssid), driverBits)) {
            throw BusError.outOfRange("substream_id " + Integer.toUnsignedString(ssid) + " does not fit in the "
                    + driverBits + " substream id bits the driver uses on " + device.name());
        }
    }

    @Override
    public void detachDevice(DetachDeviceRequest request, StreamObserver<DetachDeviceReply> responses) {
        Calls.unary(responses, () -> traced(DriverOp.DETACH, 0, request.getStreamId(), 0, () -> {
            synchronized (this) {
                IommuDevice device = MachineService.device(machine, request.getIommu());
                int sid = request.getStreamId();
                checkStreamId(device, sid);
                boolean sub = request.hasSubstreamId();
                int ssid = request.getSubstreamId();
                if (sub) {
                    checkSubstreamId(device, host.owned(device.name()), ssid);
                }
                String key = sub ? substreamKey(device.name(), sid, ssid) : streamKey(device.name(), sid);
                Domain d = streams.get(key);
                if (d == null) {
                    throw BusError.notFound((sub ? "substream_id " + Integer.toUnsignedString(ssid) + " of " : "")
                            + "stream_id " + Integer.toUnsignedString(sid) + " of " + device.name()
                            + " is not attached to any domain");
                }
                DriverInstance o = d.instance(device.name());
                List<Lock> locks = writeLock(d, d.parent);
                try {
                    if (sub) {
                        o.detachSubstream(sid, ssid);
                    } else {
                        o.detachStream(sid);
                    }
                } catch (IommuApiException e) {
                    throw apiError("DetachDevice", e);
                } catch (DriverInstance.Failure e) {
                    throw driverError(o, e);
                } finally {
                    unlock(locks);
                }
                streams.remove(key);
                d.streams.remove(key);
            }
            return DetachDeviceReply.getDefaultInstance();
        }));
    }

    // ------------------------------------------------------------------ map / unmap / lookup

    /** Runs {@code op} on the domain under its read lock, mapping API errors to statuses. */
    private <R> R onDomain(long id, String what, ApiCall<R> op) {
        Domain d = domain(id);
        Lock r = d.lock.readLock();
        r.lock();
        try {
            if (d.api.isDestroyed()) {
                throw BusError.notFound("domain " + Long.toUnsignedString(id) + " not found");
            }
            return op.run(d.api);
        } catch (IommuApiException e) {
            throw apiError(what, e);
        } catch (DriverInstance.Failure e) {
            throw driverError(d.instances.size() == 1 ? d.instances.get(0) : null, e);
        } catch (SmmuV3DriverException e) { // from the instance ops the IOMMU API calls: invalidations
            throw driverError(d.instances.size() == 1 ? d.instances.get(0) : null, SmmuDriverInstance.toFailure(e));
        } catch (VtdDriverException e) {
            throw driverError(d.instances.size() == 1 ? d.instances.get(0) : null, VtdDriverInstance.toFailure(e));
        } finally {
            r.unlock();
        }
    }

    @FunctionalInterface
    private interface ApiCall<R> {
        R run(IommuDomain d) throws IommuApiException;
    }

    private static int prot(boolean has, org.iommuemu.proto.v1.Prot p) {
        if (!has || !(p.getRead() || p.getWrite())) {
            throw BusError.invalidArgument("prot must allow read or write (or both)");
        }
        return (p.getRead() ? Prot.READ : 0) | (p.getWrite() ? Prot.WRITE : 0) | (p.getNoexec() ? Prot.NOEXEC : 0)
                | (p.getPriv() ? Prot.PRIV : 0);
    }

    private static void nonZero(long value, String field) {
        if (value == 0) {
            throw BusError.invalidArgument(field + " must not be 0");
        }
    }

    @Override
    public void map(MapRequest request, StreamObserver<MapReply> responses) {
        Calls.unary(responses, () -> {
            nonZero(request.getSize(), "size");
            int prot = prot(request.hasProt(), request.getProt());
            long n = traced(DriverOp.MAP, request.getDomain(), request.getIova(), request.getSize(),
                    () -> onDomain(request.getDomain(), "Map",
                            d -> d.map(request.getIova(), request.getPa(), request.getSize(), prot)));
            return MapReply.newBuilder().setMapped(n).build();
        });
    }

    @Override
    public void mapSg(MapSgRequest request, StreamObserver<MapSgReply> responses) {
        Calls.unary(responses, () -> {
            if (request.getEntriesCount() == 0) {
                throw BusError.invalidArgument("entries must hold at least one entry");
            }
            List<org.iommuemu.core.api.SgEntry> sg = new ArrayList<>(request.getEntriesCount());
            for (int i = 0; i < request.getEntriesCount(); i++) {
                org.iommuemu.proto.v1.SgEntry e = request.getEntries(i);
                nonZero(e.getLength(), "entries[" + i + "].length");
                sg.add(org.iommuemu.core.api.SgEntry.of(e.getPa(), e.getLength()));
            }
            int prot = prot(request.hasProt(), request.getProt());
            long bytes = 0;
            for (org.iommuemu.core.api.SgEntry e : sg) {
                bytes += e.length();
            }
            long n = traced(DriverOp.MAP_SG, request.getDomain(), request.getIova(), bytes,
                    () -> onDomain(request.getDomain(), "MapSg", d -> d.mapSg(request.getIova(), sg, prot)));
            return MapSgReply.newBuilder().setMapped(n).build();
        });
    }

    @Override
    public void unmap(UnmapRequest request, StreamObserver<UnmapReply> responses) {
        Calls.unary(responses, () -> {
            nonZero(request.getSize(), "size");
            long n = traced(DriverOp.UNMAP, request.getDomain(), request.getIova(), request.getSize(),
                    () -> onDomain(request.getDomain(), "Unmap", d -> d.unmap(request.getIova(), request.getSize())));
            return UnmapReply.newBuilder().setUnmapped(n).build();
        });
    }

    @Override
    public void iovaToPhys(IovaToPhysRequest request, StreamObserver<IovaToPhysReply> responses) {
        Calls.unary(responses, () -> {
            long pa = onDomain(request.getDomain(), "IovaToPhys", d -> d.iovaToPhys(request.getIova()));
            IovaToPhysReply.Builder b = IovaToPhysReply.newBuilder();
            if (pa != IommuDomain.NO_MAPPING) {
                b.setMapped(true).setPa(pa);
            }
            return b.build();
        });
    }

    @Override
    public void flush(FlushRequest request, StreamObserver<FlushReply> responses) {
        Calls.unary(responses, () -> {
            boolean flushed = traced(DriverOp.FLUSH, request.getDomain(), 0, 0,
                    () -> onDomain(request.getDomain(), "Flush", IommuDomain::flushQueue));
            return FlushReply.newBuilder().setFlushed(flushed).build();
        });
    }

    // ------------------------------------------------------------------ events

    @Override
    public void events(EventsRequest request, StreamObserver<EventsReply> responses) {
        Calls.unary(responses, () -> {
            IommuDevice device = MachineService.device(machine, request.getIommu());
            DriverInstance o = host.owned(device.name());
            EventsReply.Builder b = EventsReply.newBuilder();
            if (o == null) {
                return b.setStats(DriverStats.getDefaultInstance()).build();
            }
            try {
                o.drainEvents();
            } catch (DriverInstance.Failure e) {
                throw driverError(o, e);
            }
            DriverEventLog.Snapshot snap = o.events().since(request.getAfterSequence());
            b.setStats(TelemetryService.driverStats(snap));
            for (DriverEventLog.Entry e : snap.records()) {
                DriverEventLog.Event ev = e.event();
                DriverEvent.Builder d = DriverEvent.newBuilder().setSequence(e.sequence()).setType(ev.type())
                        .setTypeName(ev.typeName()).setStreamId(ev.streamId())
                        .setInputAddress(ev.inputAddress()).setRead(ev.read()).setStage2(ev.stage2()).setIpa(ev.ipa());
                if (ev.substreamId() >= 0) {
                    d.setSubstreamId(ev.substreamId());
                }
                b.addRecords(d);
            }
            return b.build();
        });
    }

    // ------------------------------------------------------------------ sanitizer

    @Override
    public void sanitizerReports(SanitizerReportsRequest request, StreamObserver<SanitizerReportsReply> responses) {
        Calls.unary(responses, () -> {
            Sanitizer s = machine.sanitizer();
            if (request.hasEnable()) {
                s.enable(request.getEnable());
            }
            SanitizerReportsReply.Builder b = SanitizerReportsReply.newBuilder().setEnabled(s.isEnabled());
            List<SanitizerReport> reports = s.reports(request.getAfterSequence());
            b.setLastSequence(s.reportCount());
            s.counts().forEach((kind, n) -> b.addCounts(org.iommuemu.proto.v1.CodeCount.newBuilder()
                    .setCode(kind.code()).setName(kind.name()).setCount(n)));
            for (SanitizerReport r : reports) {
                org.iommuemu.proto.v1.SanitizerReport.Builder p = org.iommuemu.proto.v1.SanitizerReport.newBuilder()
                        .setSequence(r.sequence()).setKindValue(r.kind().code()).setIommu(r.iommu())
                        .setStreamId(r.streamId()).setIova(r.iova()).setPa(r.pa()).setWrite(r.write())
                        .setDomain(r.domain()).setCauseSequence(r.causeSequence()).setCauseTimeNs(r.causeNanos())
                        .setCauseFlushed(r.causeFlushed()).setServedBy(r.servedBy()).setDetail(r.detail());
                if (r.substreamId() >= 0) {
                    p.setSubstreamId(r.substreamId());
                }
                if (r.causeSequence() != 0) {
                    p.setCauseFirst(r.causeFirst()).setCauseLast(r.causeLast());
                }
                b.addReports(p);
            }
            return b.build();
        });
    }

    @Override
    public void sanitizerFeed(org.iommuemu.proto.v1.SanitizerFeedRequest request,
            StreamObserver<org.iommuemu.proto.v1.SanitizerFeedReply> responses) {
        Calls.unary(responses, () -> {
            Sanitizer s = machine.sanitizer();
            // the shadow counts 4 KiB pages: a mapping or free larger than all of RAM is refused, not counted
            long ram = 0;
            for (org.iommuemu.core.memory.RamRegion r : machine.config().ram()) {
                ram += r.size();
            }
            int applied = 0;
            for (org.iommuemu.proto.v1.SanitizerEvent e : request.getEventsList()) {
                String at = "events[" + applied + "].";
                try {
                    switch (e.getEventCase()) {
                        case DOMAIN -> {
                            var f = e.getDomain();
                            s.feedDomain(f.getDomain(), f.getName(), f.getLazy(), f.getFlushTimeoutNs(), f.getParent());
                        }
                        case MAPPED -> {
                            var r = e.getMapped();
                            nonZero(r.getSize(), at + "mapped.size");
                            if (Bits.rangeOverflows(r.getIova(), r.getSize())
                                    || Bits.rangeOverflows(r.getPa(), r.getSize())) {
                                throw BusError.invalidArgument(at + "mapped: iova or pa + size overflows 64 bits");
                            }
                            if (Long.compareUnsigned(r.getSize(), ram) > 0) {
                                throw BusError.outOfRange(at + "mapped.size " + Long.toUnsignedString(r.getSize())
                                        + " is larger than the machine's RAM (" + ram + " bytes)");
                            }
                            s.feedMapped(r.getDomain(), r.getIova(), r.getPa(), r.getSize(), r.getClockNs());
                        }
                        case UNMAPPED -> {
                            var r = e.getUnmapped();
                            nonZero(r.getSize(), at + "unmapped.size");
                            if (Bits.rangeOverflows(r.getIova(), r.getSize())) {
                                throw BusError.invalidArgument(at + "unmapped: iova + size overflows 64 bits");
                            }
                            s.feedUnmapped(r.getDomain(), r.getIova(), r.getSize(), r.getClockNs());
                        }
                        case FLUSH_STARTING -> s.feedFlush(e.getFlushStarting(), false);
                        case FLUSHED -> s.feedFlush(e.getFlushed(), true);
                        case DESTROYED -> s.feedDestroyed(e.getDestroyed());
                        case ATTACHED -> {
                            var a = e.getAttached();
                            s.feedAttached(a.getIommu(), a.getStreamId(),
                                    a.hasSubstreamId() ? a.getSubstreamId() : -1, a.getDomain());
                        }
                        case FREED -> {
                            nonZero(e.getFreed().getBytes(), at + "freed.bytes");
                            if (Bits.rangeOverflows(e.getFreed().getPa(), e.getFreed().getBytes())) {
                                throw BusError.invalidArgument(at + "freed: pa + bytes overflows 64 bits");
                            }
                            if (Long.compareUnsigned(e.getFreed().getBytes(), ram) > 0) {
                                throw BusError.outOfRange(at + "freed.bytes " + Long.toUnsignedString(e.getFreed()
                                        .getBytes()) + " is larger than the machine's RAM (" + ram + " bytes)");
                            }
                            s.freed(e.getFreed().getPa(), e.getFreed().getBytes());
                        }
                        case EVENT_NOT_SET -> throw BusError.invalidArgument(at + "event is required");
                    }
                } catch (java.util.NoSuchElementException x) {
                    throw BusError.notFound(at + x.getMessage() + " (" + applied + " event(s) applied)");
                } catch (IllegalArgumentException x) {
                    throw BusError.invalidArgument(at + x.getMessage() + " (" + applied + " event(s) applied)");
                }
                applied++;
            }
            return org.iommuemu.proto.v1.SanitizerFeedReply.newBuilder().setApplied(applied)
                    .setEnabled(s.isEnabled()).build();
        });
    }

    // ------------------------------------------------------------------ buffers

    @Override
    public void allocBuffer(AllocBufferRequest request, StreamObserver<AllocBufferReply> responses) {
        Calls.unary(responses, () -> {
            long size = request.getSize();
            long align = request.getAlignment();
            nonZero(size, "size");
            if (align != 0 && !Bits.isPowerOfTwo(align)) {
                throw BusError.invalidArgument("alignment " + Long.toUnsignedString(align)
                        + " is not a power of two");
            }
            PageAllocator heap = heap();
            long largest = PageAllocator.PAGE_SIZE << heap.maxOrder();
            long bytes = Bits.maxUnsigned(size, align);
            if (Long.compareUnsigned(bytes, largest) > 0) {
                throw BusError.outOfRange((Long.compareUnsigned(size, largest) > 0 ? "size " : "alignment ")
                        + Long.toUnsignedString(bytes) + " exceeds the largest buffer of the driver heap, "
                        + largest + " bytes");
            }
            long pa;
            try {
                pa = heap.allocBytes(bytes, "dma-buffer");
            } catch (GuestMemoryExhaustedException e) {
                throw heapExhausted("a buffer of " + Long.toUnsignedString(size) + " bytes", e);
            }
            buffers.add(pa);
            return AllocBufferReply.newBuilder().setPa(pa).setSize(heap.blockSize(pa)).build();
        });
    }

    @Override
    public void freeBuffer(FreeBufferRequest request, StreamObserver<FreeBufferReply> responses) {
        Calls.unary(responses, () -> {
            long pa = request.getPa();
            if (!buffers.remove(pa)) {
                throw BusError.notFound("pa " + Bits.hex(pa) + " is not a buffer from AllocBuffer (or was freed)");
            }
            heap().free(pa);
            return FreeBufferReply.getDefaultInstance();
        });
    }

    private PageAllocator heap() {
        try {
            return host.heap();
        } catch (IllegalStateException e) {
            throw BusError.failedPrecondition(e.getMessage());
        }
    }

    // ------------------------------------------------------------------ errors

    private BusError heapExhausted(String what, GuestMemoryExhaustedException e) {
        return BusError.resourceExhausted("the driver heap (" + Bits.hex(host.heapSize()) + " bytes at "
                + Bits.hex(host.heapBase()) + ") has no room for " + what + ": " + e.getMessage());
    }

    private static BusError driverError(DriverInstance o, DriverInstance.Failure e) {
        return e.outOfMemory()
                ? BusError.resourceExhausted(e.getMessage())
                : BusError.failedPrecondition((o == null ? "the driver" : o.driverName()) + " failed: "
                        + e.getMessage());
    }

    /** The status of an IOMMU API refusal; the message keeps the API's (which names the values). */
    static BusError apiError(String rpc, IommuApiException e) {
        String m = rpc + ": " + e.getMessage();
        return switch (e.kind()) {
            case BAD_ARGUMENT, MISALIGNED -> BusError.invalidArgument(m);
            case OUT_OF_APERTURE -> BusError.outOfRange(m);
            case ALREADY_ATTACHED -> BusError.alreadyExists(m);
            case INCOMPATIBLE_INSTANCE, NOT_ATTACHED, STILL_ATTACHED -> BusError.failedPrecondition(m);
            case DESTROYED -> BusError.notFound(m);
            case PAGE_TABLE -> pageTableError(e.pageTableKind(), m);
        };
    }

    private static BusError pageTableError(PageTableException.Kind kind, String m) {
        if (kind == null) {
            return BusError.failedPrecondition(m);
        }
        return switch (kind) {
            case MISALIGNED, NO_PAGE_SIZE, BAD_PROT, BAD_SIZE -> BusError.invalidArgument(m);
            case OA_TOO_WIDE, IOVA_OUT_OF_RANGE -> BusError.outOfRange(m);
            case ADDRESS_IN_USE -> BusError.alreadyExists(m);
            case NO_MEMORY -> BusError.resourceExhausted(m);
            case UNMAP_SPLIT, MEMORY_FAULT -> BusError.failedPrecondition(m);
        };
    }
}
