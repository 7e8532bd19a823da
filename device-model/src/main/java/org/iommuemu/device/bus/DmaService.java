package org.iommuemu.device.bus;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.ArrayDeque;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.concurrent.PerThread;
import org.iommuemu.device.bus.security.AuthInterceptor;
import org.iommuemu.device.bus.security.Principal;
import org.iommuemu.device.inject.BusFaults;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.AtcPort;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Limits;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.proto.v1.AccessAttributes;
import org.iommuemu.proto.v1.AtcInvalidation;
import org.iommuemu.proto.v1.AtcInvalidationCompletion;
import org.iommuemu.proto.v1.AtsPermissions;
import org.iommuemu.proto.v1.DmaFault;
import org.iommuemu.proto.v1.AttachReply;
import org.iommuemu.proto.v1.AttachRequest;
import org.iommuemu.proto.v1.DetachReply;
import org.iommuemu.proto.v1.DetachRequest;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.DmaOp;
import org.iommuemu.proto.v1.DmaReadReply;
import org.iommuemu.proto.v1.DmaReadRequest;
import org.iommuemu.proto.v1.DmaWriteReply;
import org.iommuemu.proto.v1.DmaWriteRequest;
import org.iommuemu.proto.v1.RequestError;
import org.iommuemu.proto.v1.TranslateReply;
import org.iommuemu.proto.v1.TranslateRequest;
import org.iommuemu.proto.v1.TransferReply;
import org.iommuemu.proto.v1.TransferRequest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The device view of the bus: DMA masters attach on a stream id and read and write through the IOMMU.
 *
 * <p>Bus faults carried out here (the unary calls' BUS_REPLY_DELAY and BUS_RPC_UNAVAILABLE are
 * {@link BusFaultInterceptor}'s): BUS_DMA_READ_CORRUPT on the data of Read and of Transfer reads, and on each
 * Transfer request BUS_STREAM_CUT, BUS_RPC_UNAVAILABLE (that request alone fails) and BUS_REPLY_DELAY (its reply
 * is held). With no bus fault active the only cost is one volatile read per request.
 */
final class DmaService extends DmaGrpc.DmaImplBase {
    private static final Logger log = LoggerFactory.getLogger(DmaService.class);
    private static final int MAX_NAME = 64;
    private static final String READ = DmaGrpc.getReadMethod().getFullMethodName();
    private static final String TRANSFER = DmaGrpc.getTransferMethod().getFullMethodName();

    private final Machine machine;
    private final SessionRegistry sessions;
    private final Limits limits;
    private final BusFaults faults;
    private final BusTimer timer;
    private final Set<TransferCall> transfers = ConcurrentHashMap.newKeySet();
    private final Set<AtcCall> atcCalls = ConcurrentHashMap.newKeySet();
    private final PerThread<DmaOutcome> outcomes = new PerThread<>(DmaOutcome::new);
    /** Per-thread staging for write data, grown on demand up to the max DMA length: no allocation per write. */
    private final ThreadLocal<byte[]> writeBuffers;
    private volatile boolean shuttingDown;

    DmaService(Machine machine, SessionRegistry sessions, BusTimer timer) {
        this.machine = machine;
        this.sessions = sessions;
        this.limits = machine.limits();
        this.faults = machine.faults().bus();
        this.timer = timer;
        this.writeBuffers = ThreadLocal.withInitial(() -> new byte[4096]);
    }

    @Override
    public void attach(AttachRequest request, StreamObserver<AttachReply> responses) {
        Calls.unary(responses, () -> {
            checkServing();
            String name = request.getName();
            if (name.isEmpty() || name.length() > MAX_NAME || name.chars().anyMatch(Character::isISOControl)) {
                throw BusError.invalidArgument("name must be 1 to " + MAX_NAME
                        + " printable characters, got '" + name + "'");
            }
            IommuDevice device = MachineService.device(machine, request.getIommu());
            int sid = request.getStreamId();
            if (!Bits.fitsUnsigned(Integer.toUnsignedLong(sid), device.streamIdBits())) {
                throw BusError.outOfRange("stream_id " + Integer.toUnsignedString(sid) + " does not fit in the "
                        + device.streamIdBits() + "-bit stream id of " + device.name());
            }
            Principal who = AuthInterceptor.current();
            if (who != null && !who.mayAttach(device.name(), sid)) {
                // as PCIe hardware, not the device, decides requester ids: a device token attaches only as its own
                throw BusError.permissionDenied(who + " may not attach on stream_id " + Integer.toUnsignedString(sid)
                        + " of " + device.name() + ": it may attach on " + who.binding() + " only");
            }
            if (request.getSubstreams() && device.substreamIdBits() == 0) {
                throw BusError.failedPrecondition("substreams requested but " + device.name()
                        + " supports no substream ids / PASIDs");
            }
            if (request.getAts() && !atsModelled(device)) {
                throw BusError.failedPrecondition("ats requested but " + device.name() + " does not implement ATS"
                        + " (SMMUv3: set ats: true in its config, IDR0.ATS; VT-d: device_tlb: true, ECAP.DT)");
            }
            Connection caller = ConnectionTracker.current();
            Session s = sessions.attach(caller, name, device, sid, request.getSubstreams(), request.getAts());
            if (Context.current().isCancelled()) {
                // The client gave up (deadline, cancel) while we attached: it will never learn the session id, so
                // do not keep its stream id claimed until the connection closes.
                sessions.detach(s.id, caller);
                throw BusError.cancelled("Attach was cancelled by the client (deadline or cancel); nothing is held");
            }
            return AttachReply.newBuilder().setSessionId(s.id).setIommu(device.name()).setStreamId(sid).build();
        });
    }

    @Override
    public void detach(DetachRequest request, StreamObserver<DetachReply> responses) {
        Calls.unary(responses, () -> {
            sessions.detach(request.getSessionId(), ConnectionTracker.current());
            return DetachReply.getDefaultInstance();
        });
    }

    @Override
    public void read(DmaReadRequest request, StreamObserver<DmaReadReply> responses) {
        Calls.unary(responses, () -> {
            checkServing();
            Session s = sessions.lookup(request.getSessionId(), ConnectionTracker.current());
            checkStreamId(s, request.hasStreamId(), request.getStreamId());
            int ssid = substreamId(s, request.hasSubstreamId(), request.getSubstreamId());
            int length = checkLength(request.getIova(), request.getLength(), "length");
            int access = access(request.getAttributes()) | translated(s, request.getTranslated());
            byte[] buffer = new byte[length];
            DmaOutcome out = machine.dma().read(s.device, s.streamId, ssid, request.getIova(), buffer, 0, length,
                    access, outcomes.get());
            checkImplemented(out);
            s.count(false, out.bytesDone(), !out.isOk());
            if (faults.any()) {
                corrupt(s, READ, request.getIova(), buffer, (int) out.bytesDone());
            }
            DmaReadReply.Builder reply = DmaReadReply.newBuilder()
                    .setData(UnsafeByteOperations.unsafeWrap(buffer, 0, (int) out.bytesDone()));
            if (!out.isOk()) {
                reply.setFault(Protos.fault(out));
            }
            return reply.build();
        });
    }

    @Override
    public void write(DmaWriteRequest request, StreamObserver<DmaWriteReply> responses) {
        Calls.unary(responses, () -> {
            checkServing();
            Session s = sessions.lookup(request.getSessionId(), ConnectionTracker.current());
            checkStreamId(s, request.hasStreamId(), request.getStreamId());
            int ssid = substreamId(s, request.hasSubstreamId(), request.getSubstreamId());
            DmaOutcome out = doWrite(s, ssid, request.getIova(), request.getData(),
                    access(request.getAttributes()) | translated(s, request.getTranslated()));
            checkImplemented(out);
            s.count(true, out.bytesDone(), !out.isOk());
            return out.isOk() ? DmaWriteReply.getDefaultInstance()
                    : DmaWriteReply.newBuilder().setFault(Protos.fault(out)).build();
        });
    }

    @Override
    public StreamObserver<TransferRequest> transfer(StreamObserver<TransferReply> responses) {
        ServerCallStreamObserver<TransferReply> out = (ServerCallStreamObserver<TransferReply>) responses;
        TransferCall call = new TransferCall(out);
        if (shuttingDown) {
            out.onError(Status.UNAVAILABLE.withDescription("the server is shutting down").asRuntimeException());
            return call;
        }
        transfers.add(call);
        return call;
    }

    /**
     * An ATS translation request: the access is translated for reading, and for writing and execution when asked,
     * each as the IOMMU would translate it for an ATS request ({@link Access#TRANSLATION_REQUEST}); the reply is the
     * smallest region every granted permission covers (the serving IOTLB entry, else the 4 KB page), or "no access"
     * when translation faults deny everything, or the fault that refused the request.
     */
    @Override
    public void translate(TranslateRequest request, StreamObserver<TranslateReply> responses) {
        Calls.unary(responses, () -> {
            checkServing();
            Session s = sessions.lookup(request.getSessionId(), ConnectionTracker.current());
            checkStreamId(s, request.hasStreamId(), request.getStreamId());
            int ssid = substreamId(s, request.hasSubstreamId(), request.getSubstreamId());
            if (!s.ats) {
                throw BusError.failedPrecondition("Translate needs a session attached with ats=true; session_id "
                        + Bits.hex(s.id) + " was attached with ats=false");
            }
            s.device.atc().countTranslationRequest();
            long iova = request.getIova();
            AccessAttributes a = request.getAttributes();
            int priv = a.getPrivileged() ? Access.PRIVILEGED : 0;
            Translation t = new Translation();
            TranslateReply.Builder reply = TranslateReply.newBuilder();
            AtsPermissions.Builder perms = AtsPermissions.newBuilder().setPrivileged(a.getPrivileged());
            int lg2 = 64;
            long pa = 0;
            boolean any = false;
            int[] accesses = {priv, request.getWrite() ? priv | Access.WRITE : -1,
                    a.getInstruction() ? priv | Access.INSTRUCTION : -1};
            for (int i = 0; i < accesses.length; i++) {
                if (accesses[i] < 0) {
                    continue;
                }
                machine.dma().translate(s.device, s.streamId, ssid, iova, accesses[i] | Access.TRANSLATION_REQUEST,
                        t);
                if (t.outcome() == Translation.Outcome.UNIMPLEMENTED) {
                    throw BusError.unimplemented(t.description());
                }
                if (!t.isOk()) {
                    if (denial(t.faultType())) {
                        continue; // "no access" for this permission: no event, no fault reply
                    }
                    return reply.setFault(DmaFault.newBuilder().setKind(Protos.faultKind(t.faultType()))
                            .setAddress(iova).setCode(t.code()).setDescription(t.description())).build();
                }
                int l = t.source() == Translation.Source.IOTLB ? Math.max(12, t.entrySizeLg2()) : 12;
                lg2 = Math.min(lg2, l);
                if (!any) {
                    pa = t.physicalAddress();
                    any = true;
                }
                switch (i) {
                    case 0 -> perms.setRead(true);
                    case 1 -> perms.setWrite(true);
                    default -> perms.setExecute(true);
                }
            }
            if (!any) {
                lg2 = 12;
                pa = iova; // unused: no permission
            }
            long size = lg2 >= 64 ? 0 : 1L << lg2;
            long base = lg2 >= 64 ? 0 : iova & -size;
            reply.setInputBase(base).setSize(size).setPermissions(perms);
            if (any) {
                reply.setTranslatedAddress(pa - (iova - base));
            }
            return reply.build();
        });
    }

    /** Faults an ATS translation request answers with "no access" rather than a refusal. */
    private static boolean denial(FaultType type) {
        return type == FaultType.TRANSLATION || type == FaultType.PERMISSION || type == FaultType.ADDRESS_SIZE
                || type == FaultType.ACCESS_FLAG;
    }

    @Override
    public StreamObserver<AtcInvalidationCompletion> atcInvalidations(StreamObserver<AtcInvalidation> responses) {
        ServerCallStreamObserver<AtcInvalidation> out = (ServerCallStreamObserver<AtcInvalidation>) responses;
        AtcCall call = new AtcCall(out);
        if (shuttingDown) {
            call.close(Status.UNAVAILABLE.withDescription("the server is shutting down"));
            return call;
        }
        atcCalls.add(call);
        return call;
    }

    /** AtcInvalidations streams open now (a test hook). */
    int openAtcStreams() {
        return atcCalls.size();
    }

    /**
     * One AtcInvalidations stream: the first message names the session; from then on the session's queued ATC
     * invalidations are sent while the transport is ready (never more than {@link AtcPort#MAX_QUEUED} wait
     * server-side), and each completion is handed to the port. The stream ending (either side) or the session ending
     * makes the invalidations the device has not completed fail at once.
     */
    private final class AtcCall implements StreamObserver<AtcInvalidationCompletion> {
        private final ServerCallStreamObserver<AtcInvalidation> out;
        private final Connection connection = ConnectionTracker.current();
        private Session session;
        private AtcPort.Endpoint endpoint;
        private boolean closed;

        AtcCall(ServerCallStreamObserver<AtcInvalidation> out) {
            this.out = out;
            out.setOnCancelHandler(this::ended);
            out.setOnReadyHandler(this::drain);
        }

        @Override
        public void onNext(AtcInvalidationCompletion message) {
            AtcPort.Endpoint e;
            synchronized (this) {
                if (closed) {
                    return;
                }
                if (session == null) {
                    try {
                        open(message);
                    } catch (BusError err) {
                        close(err.code().toStatus().withDescription(err.getMessage()));
                    }
                    return;
                }
                if (message.getSessionId() != 0 && message.getSessionId() != session.id) {
                    close(Status.INVALID_ARGUMENT.withDescription("session_id " + Bits.hex(message.getSessionId())
                            + " is not the session of this stream (" + Bits.hex(session.id) + ")"));
                    return;
                }
                if (message.getId() == 0) {
                    close(Status.INVALID_ARGUMENT.withDescription("id must name an AtcInvalidation (ids start at"
                            + " 1); only the first message carries id 0"));
                    return;
                }
                e = endpoint;
            }
            e.complete(message.getId()); // an unknown or timed-out id is ignored, as a late completion would be
        }

        /** The first message: binds the stream to its session. */
        private void open(AtcInvalidationCompletion first) {
            if (first.getId() != 0) {
                throw BusError.invalidArgument("the first message must name the session with id 0 (no completion),"
                        + " got id " + Long.toUnsignedString(first.getId()));
            }
            Session s = sessions.lookup(first.getSessionId(), connection);
            if (!s.ats || s.atc == null) {
                throw BusError.failedPrecondition("AtcInvalidations needs a session attached with ats=true; session_id "
                        + Bits.hex(s.id) + " was attached with ats=false");
            }
            if (!s.atcStream.compareAndSet(null, () -> close(Status.NOT_FOUND.withDescription(
                    "the session was detached or its connection closed; its ATC is gone")))) {
                throw BusError.alreadyExists("session_id " + Bits.hex(s.id)
                        + " already has an AtcInvalidations stream: one per session");
            }
            if (sessions.peek(s.id, connection) != s) {
                // detached between the lookup and now: its closer ran before ours was set
                s.atcStream.set(null);
                throw BusError.notFound("session_id " + Bits.hex(s.id) + " was detached");
            }
            session = s;
            endpoint = s.atc;
            endpoint.onQueued(this::drain);
            drainLocked();
        }

        /** Sends queued invalidations while the transport takes them (flow control holds the rest). */
        private synchronized void drain() {
            drainLocked();
        }

        private void drainLocked() {
            if (closed || endpoint == null) {
                return;
            }
            while (out.isReady()) {
                AtcPort.Invalidation inv = endpoint.poll();
                if (inv == null) {
                    return;
                }
                AtcInvalidation.Builder b = AtcInvalidation.newBuilder().setId(inv.id()).setGlobal(inv.global())
                        .setAddress(inv.address()).setSize(inv.sizeLg2() >= 64 ? 0 : 1L << inv.sizeLg2());
                if (!inv.global() && inv.substreamId() >= 0) {
                    b.setSubstreamId(inv.substreamId());
                }
                out.onNext(b.build());
            }
        }

        /** Ends the stream with {@code status} (an error) and lets the session's ATC go. */
        synchronized void close(Status status) {
            if (closed) {
                return;
            }
            out.onError(status.asRuntimeException());
            ended();
        }

        /** The stream is over: the device no longer hears invalidations; its outstanding ones fail. */
        private synchronized void ended() {
            closed = true;
            atcCalls.remove(this);
            if (endpoint != null) {
                endpoint.onQueued(null);
                endpoint.disconnect(false);
                session.atcStream.set(null);
                endpoint = null;
            }
        }

        @Override
        public void onError(Throwable t) {
            ended();
        }

        @Override
        public void onCompleted() {
            synchronized (this) {
                if (closed) {
                    return;
                }
                out.onCompleted();
                ended();
            }
        }
    }

    /** Serves one request of a Transfer stream: a reply with data, a fault, or a RequestError. */
    TransferReply process(TransferRequest request) {
        TransferReply.Builder reply = TransferReply.newBuilder().setTag(request.getTag());
        try {
            Session s = sessions.lookup(request.getSessionId(), ConnectionTracker.current());
            checkStreamId(s, request.hasStreamId(), request.getStreamId());
            int ssid = substreamId(s, request.hasSubstreamId(), request.getSubstreamId());
            DmaOutcome out;
            if (request.getOp() == DmaOp.READ) {
                if (!request.getData().isEmpty()) {
                    throw BusError.invalidArgument("data must be empty for a READ (tag " + request.getTag() + ")");
                }
                int length = checkLength(request.getIova(), request.getLength(), "length");
                int access = access(request.getAttributes()) | translated(s, request.getTranslated());
                byte[] buffer = new byte[length];
                out = machine.dma().read(s.device, s.streamId, ssid, request.getIova(), buffer, 0, length,
                        access, outcomes.get());
                if (faults.any() && out.status() != DmaOutcome.Status.UNIMPLEMENTED) {
                    corrupt(s, TRANSFER, request.getIova(), buffer, (int) out.bytesDone());
                }
                reply.setData(UnsafeByteOperations.unsafeWrap(buffer, 0, (int) out.bytesDone()));
            } else if (request.getOp() == DmaOp.WRITE) {
                out = doWrite(s, ssid, request.getIova(), request.getData(),
                        access(request.getAttributes()) | translated(s, request.getTranslated()));
            } else {
                throw BusError.invalidArgument("op must be READ or WRITE (tag " + request.getTag() + ")");
            }
            checkImplemented(out);
            s.count(request.getOp() == DmaOp.WRITE, out.bytesDone(), !out.isOk());
            if (!out.isOk()) {
                reply.setFault(Protos.fault(out));
            }
        } catch (BusError e) {
            reply.setError(RequestError.newBuilder().setCode(e.code().value()).setMessage(e.getMessage()));
        } catch (RuntimeException e) {
            log.error("bug while serving a Transfer request", e);
            reply.setError(RequestError.newBuilder().setCode(Status.Code.INTERNAL.value())
                    .setMessage("internal error: " + e));
        }
        return reply.build();
    }

    /**
     * BUS_DMA_READ_CORRUPT: flips the fault's bit (bit % 8 of byte bit / 8) in the {@code done} bytes read at
     * {@code iova} into {@code buffer}, the reply's own copy: guest memory is untouched.
     */
    private void corrupt(Session s, String method, long iova, byte[] buffer, int done) {
        BusFaults.Fired f = faults.firingOnData(InjectionKind.BUS_DMA_READ_CORRUPT, method, s.device.name(),
                Integer.toUnsignedLong(s.streamId), iova, done, "read data");
        if (f != null) {
            int bit = f.params().bit();
            buffer[bit >>> 3] ^= (byte) (1 << (bit & 7));
        }
    }

    private DmaOutcome doWrite(Session s, int ssid, long iova, ByteString data, int access) {
        int length = checkLength(iova, data.size(), "data length");
        byte[] buffer = writeBuffers.get();
        if (buffer.length < length) {
            buffer = new byte[Math.max(length, Math.min(2 * buffer.length, (int) limits.maxDmaLength()))];
            writeBuffers.set(buffer);
        }
        data.copyTo(buffer, 0);
        return machine.dma().write(s.device, s.streamId, ssid, iova, buffer, 0, length, access, outcomes.get());
    }

    /**
     * {@link Access#TRANSLATED} for a translated request of an ATS session (counted), 0 for an untranslated one;
     * FAILED_PRECONDITION for a translated request of a session without ATS.
     */
    private static int translated(Session s, boolean translated) {
        if (!translated) {
            return 0;
        }
        if (!s.ats) {
            throw BusError.failedPrecondition("translated is true but the session was attached with ats=false: only"
                    + " a master with an ATC issues translated requests");
        }
        s.device.atc().countTranslatedRequest();
        return Access.TRANSLATED;
    }

    /** Whether {@code device} models ATS: an ATS port and ATS advertised (SMMUv3 IDR0.ATS, VT-d ECAP.DT). */
    static boolean atsModelled(IommuDevice device) {
        if (device.atc() == null) {
            return false;
        }
        return device.features().contains("ATS") || device.features().contains("DT");
    }

    private static int access(AccessAttributes a) {
        return (a.getPrivileged() ? Access.PRIVILEGED : 0) | (a.getInstruction() ? Access.INSTRUCTION : 0);
    }

    private static void checkStreamId(Session s, boolean present, int streamId) {
        if (present && streamId != s.streamId) {
            throw BusError.permissionDenied("stream_id " + Integer.toUnsignedString(streamId)
                    + " is not the stream id of this session (" + s.streamId
                    + "): a master can only issue DMA as its own stream id");
        }
    }

    private static int substreamId(Session s, boolean present, int ssid) {
        if (!present) {
            return -1;
        }
        if (!s.substreams) {
            throw BusError.failedPrecondition("substream_id given but the session was attached with substreams=false");
        }
        if (!Bits.fitsUnsigned(Integer.toUnsignedLong(ssid), s.device.substreamIdBits())) {
            throw BusError.outOfRange("substream_id " + Integer.toUnsignedString(ssid) + " does not fit in the "
                    + s.device.substreamIdBits() + "-bit substream id of " + s.device.name());
        }
        return ssid;
    }

    private int checkLength(long iova, long length, String field) {
        if (length <= 0) {
            throw BusError.invalidArgument(field + " must be at least 1");
        }
        if (length > limits.maxDmaLength()) {
            throw BusError.resourceExhausted(field + " " + length + " exceeds the maximum DMA length of "
                    + limits.maxDmaLength() + " bytes (Machine.Describe limits.max_dma_length)");
        }
        if (Bits.rangeOverflows(iova, length)) {
            throw BusError.outOfRange("iova " + Bits.hex(iova) + " + " + field + " " + length + " wraps past 2^64");
        }
        return (int) length;
    }

    private static void checkImplemented(DmaOutcome out) {
        if (out.status() == DmaOutcome.Status.UNIMPLEMENTED) {
            throw BusError.unimplemented(out.description());
        }
    }

    private void checkServing() {
        if (shuttingDown) {
            throw BusError.unavailable("the server is shutting down");
        }
    }

    /** Transfer streams open now (a test and soak hook: every stream that ended must be gone). */
    int openTransfers() {
        return transfers.size();
    }

    /** Stops taking new DMA and ends every Transfer stream once the requests it has read are answered. */
    void beginShutdown() {
        shuttingDown = true;
        for (AtcCall c : atcCalls) {
            c.close(Status.UNAVAILABLE.withDescription("the server is shutting down"));
        }
        for (TransferCall c : transfers) {
            c.close(Status.UNAVAILABLE.withDescription(
                    "the server is shutting down; requests without a reply were not performed"));
        }
    }

    /**
     * One Transfer stream. Requests are served in order as they arrive; the server asks the transport for
     * the next request only while the client keeps reading replies, so a client that floods or stops
     * reading is held back by gRPC flow control instead of filling server memory. While a BUS_REPLY_DELAY fault
     * holds replies the server reads no further requests either, so held replies stay within the read-ahead.
     */
    private final class TransferCall implements StreamObserver<TransferRequest> {
        private final ServerCallStreamObserver<TransferReply> out;
        /** The client connection the stream arrived on: a cut releases its sessions. */
        private final Connection connection = ConnectionTracker.current();
        /** Replies held by BUS_REPLY_DELAY, in order, until {@link #releaseAt}. */
        private final ArrayDeque<TransferReply> held = new ArrayDeque<>();
        private long releaseAt;
        private boolean holding;
        private boolean completeWhenReleased;
        private int owed;
        private boolean closed;

        TransferCall(ServerCallStreamObserver<TransferReply> out) {
            this.out = out;
            out.disableAutoRequest();
            out.setOnReadyHandler(this::onReady);
            out.setOnCancelHandler(this::onCancel);
            out.request(limits.maxTransferInFlight());
        }

        @Override
        public void onNext(TransferRequest request) {
            BusFaults.Fired cut = null;
            synchronized (this) {
                if (closed) {
                    return; // not performed: the client was told the stream ended
                }
                TransferReply reply;
                if (faults.any()) {
                    Session s = sessions.peek(request.getSessionId(), connection);
                    String iommu = s == null ? "" : s.device.name();
                    long stream = s == null ? -1 : Integer.toUnsignedLong(s.streamId);
                    cut = faults.firing(InjectionKind.BUS_STREAM_CUT, TRANSFER, iommu, stream, false, 0,
                            "request tag " + request.getTag());
                    if (cut != null) {
                        close(Status.UNAVAILABLE.withDescription("injected fault " + cut.faultId()
                                + " (BUS_STREAM_CUT) cut the Transfer stream at request tag " + request.getTag()
                                + "; that request and any after it were not performed, and the connection's DMA "
                                + "sessions were released"));
                    } else {
                        BusFaults.Fired refused = faults.firing(InjectionKind.BUS_RPC_UNAVAILABLE, TRANSFER, iommu,
                                stream, false, 0, "request tag " + request.getTag());
                        reply = refused == null ? process(request) : TransferReply.newBuilder()
                                .setTag(request.getTag()).setError(RequestError.newBuilder()
                                        .setCode(Status.Code.UNAVAILABLE.value())
                                        .setMessage("injected fault " + refused.faultId()
                                                + " (BUS_RPC_UNAVAILABLE): the request was not carried out"))
                                .build();
                        BusFaults.Fired delay = faults.firing(InjectionKind.BUS_REPLY_DELAY, TRANSFER, iommu, stream,
                                false, 0, "reply to request tag " + request.getTag());
                        if (delay != null) {
                            hold(delay.params().wallDelayMs());
                        }
                        send(reply);
                    }
                } else {
                    send(process(request));
                }
            }
            if (cut != null) {
                cutConnection();
            }
        }

        /** Sends {@code reply} now, or behind the held ones; asks for the next request only when it went out. */
        private void send(TransferReply reply) {
            if (holding) {
                held.add(reply);
                owed++;
                return;
            }
            out.onNext(reply);
            if (out.isReady()) {
                out.request(1);
            } else {
                owed++;
            }
        }

        /** Holds this reply and the ones after it for {@code ms} more (after any already held). */
        private void hold(long ms) {
            long until = System.nanoTime() + ms * 1_000_000L;
            if (!holding || until - releaseAt > 0) {
                releaseAt = until;
            }
            if (!holding) {
                holding = true;
                if (!timer.schedule(this::release, ms * 1_000_000L)) {
                    holding = false; // the server is closing: nothing would release them
                }
            }
        }

        /** Timer thread: sends the held replies once their time has come. */
        private void release() {
            synchronized (this) {
                if (!holding) {
                    return;
                }
                long left = releaseAt - System.nanoTime();
                if (left > 0 && timer.schedule(this::release, left)) {
                    return;
                }
                flushHeld();
                if (closed) {
                    return;
                }
                if (completeWhenReleased) {
                    closed = true;
                    out.onCompleted();
                } else {
                    onReady();
                    return;
                }
            }
            transfers.remove(this);
        }

        private void flushHeld() {
            holding = false;
            for (TransferReply r; (r = held.poll()) != null; ) {
                out.onNext(r);
            }
        }

        /**
         * After a BUS_STREAM_CUT: the connection's sessions are released as when its transport closes (their stream
         * ids become free), and its other Transfer streams end too, as they would with the transport.
         */
        private void cutConnection() {
            if (connection == null) {
                return;
            }
            int released = sessions.releaseAll(connection);
            for (TransferCall c : transfers) {
                if (c.connection == connection) {
                    c.close(Status.UNAVAILABLE.withDescription("a BUS_STREAM_CUT fault cut another Transfer stream "
                            + "of this connection; its DMA sessions were released"));
                }
            }
            log.debug("BUS_STREAM_CUT on {}: released {} session(s)", connection, released);
        }

        private synchronized void onReady() {
            if (!closed && !holding && owed > 0 && out.isReady()) {
                out.request(owed);
                owed = 0;
            }
        }

        private synchronized void onCancel() {
            closed = true;
            holding = false;
            held.clear();
            transfers.remove(this);
        }

        @Override
        public void onError(Throwable t) {
            synchronized (this) {
                closed = true;
                holding = false;
                held.clear();
            }
            transfers.remove(this);
        }

        @Override
        public void onCompleted() {
            synchronized (this) {
                if (holding) {
                    completeWhenReleased = true;
                    return;
                }
                if (!closed) {
                    closed = true;
                    out.onCompleted();
                }
            }
            transfers.remove(this);
        }

        /** Ends the stream with {@code status}; replies already held are sent first (their requests were done). */
        synchronized void close(Status status) {
            if (!closed) {
                flushHeld();
                closed = true;
                out.onError(status.asRuntimeException());
            }
            transfers.remove(this);
        }
    }
}
