package org.iommuemu.device.bus;

import com.google.protobuf.UnsafeByteOperations;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.ArrayDeque;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.InterruptRecord;
import org.iommuemu.device.machine.Limits;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.proto.v1.DescribeReply;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.DmaSessionInfo;
import org.iommuemu.proto.v1.Interrupt;
import org.iommuemu.proto.v1.InterruptsRequest;
import org.iommuemu.proto.v1.IommuInstance;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MemCompareExchangeReply;
import org.iommuemu.proto.v1.MemCompareExchangeRequest;
import org.iommuemu.proto.v1.MemReadReply;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.MemWriteReply;
import org.iommuemu.proto.v1.MemWriteRequest;
import org.iommuemu.proto.v1.MmioReadReply;
import org.iommuemu.proto.v1.MmioReadRequest;
import org.iommuemu.proto.v1.MmioWriteReply;
import org.iommuemu.proto.v1.MmioWriteRequest;
import org.iommuemu.proto.v1.SessionsReply;
import org.iommuemu.proto.v1.SessionsRequest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The CPU view of the bus: describe the machine, MMIO to the IOMMUs, physical memory, interrupts. */
final class MachineService extends MachineGrpc.MachineImplBase {
    private static final Logger log = LoggerFactory.getLogger(MachineService.class);
    /** Interrupts buffered per subscriber before further ones are counted as dropped. */
    static final int INTERRUPT_BUFFER = 4096;

    private final Machine machine;
    private final DescribeReply description;
    /** The bus's DMA sessions, for {@code Sessions}; null when the service runs without them (tests). */
    private final SessionRegistry sessions;
    private final Set<InterruptStream> streams = ConcurrentHashMap.newKeySet();
    private volatile boolean shuttingDown;

    MachineService(Machine machine, String serverVersion) {
        this(machine, serverVersion, null);
    }

    MachineService(Machine machine, String serverVersion, SessionRegistry sessions) {
        this.machine = machine;
        this.description = describe(machine, serverVersion);
        this.sessions = sessions;
    }

    @Override
    public void sessions(SessionsRequest request, StreamObserver<SessionsReply> responses) {
        Calls.unary(responses, () -> {
            Set<String> only = new HashSet<>();
            for (String name : request.getIommusList()) {
                only.add(device(machine, name).name()); // NOT_FOUND naming an unknown instance
            }
            SessionsReply.Builder reply = SessionsReply.newBuilder();
            if (sessions == null) {
                return reply.build();
            }
            SessionRegistry.Snapshot snap = sessions.snapshot();
            long after = request.getAfterSequence();
            for (Session s : snap.live()) {
                if (wanted(s, only, after)) {
                    reply.addLive(info(s, true));
                }
            }
            for (Session s : snap.ended()) {
                if (wanted(s, only, after)) {
                    reply.addEnded(info(s, false));
                }
            }
            return reply.setLastSequence(snap.last()).build();
        });
    }

    private static boolean wanted(Session s, Set<String> only, long after) {
        return Long.compareUnsigned(s.sequence, after) > 0 && (only.isEmpty() || only.contains(s.device.name()));
    }

    private static DmaSessionInfo info(Session s, boolean live) {
        DmaSessionInfo.Builder b = DmaSessionInfo.newBuilder().setSequence(s.sequence).setName(s.name)
                .setIommu(s.device.name()).setStreamId(s.streamId).setSubstreams(s.substreams).setLive(live)
                .setReads(s.reads()).setWrites(s.writes()).setBytes(s.bytes()).setFaults(s.faults());
        if (s.connection != null && s.connection.remote() != null) {
            b.setPeer(s.connection.remote().toString());
        }
        if (!live && s.endReason() != null) {
            b.setEndReason(s.endReason());
        }
        return b.build();
    }

    private static DescribeReply describe(Machine machine, String serverVersion) {
        DescribeReply.Builder b = DescribeReply.newBuilder().setApiVersion("v1").setServerVersion(serverVersion);
        for (IommuDevice d : machine.iommus()) {
            b.addIommus(IommuInstance.newBuilder()
                    .setName(d.name())
                    .setKind(Protos.kind(d.type()))
                    .setMmioSize(d.mmioSize())
                    .setStreamIdBits(d.streamIdBits())
                    .setSubstreamIdBits(d.substreamIdBits())
                    .addAllFeatures(d.features())
                    .setTranslationModelled(d.translationModelled()));
        }
        for (RamRegion r : machine.memory().regions()) {
            b.addRam(org.iommuemu.proto.v1.RamRegion.newBuilder().setBase(r.base()).setSize(r.size()));
        }
        Limits l = machine.limits();
        b.setLimits(org.iommuemu.proto.v1.Limits.newBuilder()
                .setMaxDmaLength(l.maxDmaLength())
                .setMaxMessageBytes(l.maxMessageBytes())
                .setMaxMemAccessLength(l.maxMemAccessLength())
                .setMaxSessions(l.maxSessions())
                .setMaxTransferInFlight(l.maxTransferInFlight())
                .setMaxRamBytes(l.maxRamBytes())
                .setMaxSessionsPerConnection(l.maxSessionsPerConnection()));
        b.setMsiDoorbellBase(machine.interrupts().doorbellBase()).setMsiDoorbellSize(machine.interrupts().doorbellSize());
        b.setDriverHeapBase(machine.driverHost().heapBase()).setDriverHeapSize(machine.driverHost().heapSize());
        return b.build();
    }

    /** The instance named {@code name}; INVALID_ARGUMENT when empty, NOT_FOUND when unknown. */
    static IommuDevice device(Machine machine, String name) {
        if (name.isEmpty()) {
            throw BusError.invalidArgument("iommu is required (instances: " + machine.iommuNames() + ")");
        }
        IommuDevice d = machine.iommu(name);
        if (d == null) {
            throw BusError.notFound("iommu '" + name + "' not found (instances: " + machine.iommuNames() + ")");
        }
        return d;
    }

    @Override
    public void describe(DescribeRequest request, StreamObserver<DescribeReply> responses) {
        Calls.unary(responses, () -> description);
    }

    @Override
    public void mmioRead(MmioReadRequest request, StreamObserver<MmioReadReply> responses) {
        Calls.unary(responses, () -> {
            IommuDevice d = device(machine, request.getIommu());
            checkMmio(d, request.getOffset(), request.getWidth());
            long value = d.mmioRead(request.getOffset(), request.getWidth());
            return MmioReadReply.newBuilder().setValue(value).build();
        });
    }

    @Override
    public void mmioWrite(MmioWriteRequest request, StreamObserver<MmioWriteReply> responses) {
        Calls.unary(responses, () -> {
            IommuDevice d = device(machine, request.getIommu());
            checkMmio(d, request.getOffset(), request.getWidth());
            if (machine.driverHost().owns(d.name())) {
                throw BusError.failedPrecondition("iommu " + d.name() + " belongs to the Driver service (taken over"
                        + " by Driver.CreateDomain); its registers can be read but not written");
            }
            if (request.getWidth() == 4 && !Bits.fitsUnsigned(request.getValue(), 32)) {
                throw BusError.invalidArgument("value " + Bits.hex(request.getValue())
                        + " does not fit in a 4-byte write (width 4)");
            }
            d.mmioWrite(request.getOffset(), request.getWidth(), request.getValue());
            return MmioWriteReply.getDefaultInstance();
        });
    }

    private static void checkMmio(IommuDevice d, long offset, int width) {
        if (width != 4 && width != 8) {
            throw BusError.invalidArgument("width must be 4 or 8, got " + Integer.toUnsignedString(width));
        }
        if ((offset & (width - 1)) != 0) {
            throw BusError.invalidArgument("offset " + Bits.hex(offset) + " is not a multiple of width " + width);
        }
        if (Long.compareUnsigned(offset, d.mmioSize() - width) > 0) {
            throw BusError.outOfRange("offset " + Bits.hex(offset) + " (width " + width + ") is outside the "
                    + Bits.hex(d.mmioSize()) + "-byte register window of " + d.name());
        }
    }

    @Override
    public void memRead(MemReadRequest request, StreamObserver<MemReadReply> responses) {
        Calls.unary(responses, () -> {
            int length = checkMem(request.getAddress(), request.getLength(), "length");
            byte[] data = new byte[length];
            try {
                CpuAccess.load(machine.memory(), request.getAddress(), data); // aligned words atomic
            } catch (MemoryAccessException e) {
                throw notRam(request.getAddress(), length);
            }
            return MemReadReply.newBuilder().setData(UnsafeByteOperations.unsafeWrap(data)).build();
        });
    }

    @Override
    public void memWrite(MemWriteRequest request, StreamObserver<MemWriteReply> responses) {
        Calls.unary(responses, () -> {
            int length = checkMem(request.getAddress(), request.getData().size(), "data length");
            byte[] data = request.getData().toByteArray();
            try {
                CpuAccess.store(machine.memory(), request.getAddress(), data); // aligned words atomic
            } catch (MemoryAccessException e) {
                throw notRam(request.getAddress(), length);
            }
            return MemWriteReply.getDefaultInstance();
        });
    }

    @Override
    public void memCompareExchange(MemCompareExchangeRequest request,
            StreamObserver<MemCompareExchangeReply> responses) {
        Calls.unary(responses, () -> {
            long address = request.getAddress();
            if ((address & 7) != 0) {
                throw BusError.invalidArgument("address " + Bits.hex(address) + " is not 8-byte aligned");
            }
            checkMem(address, 8, "length");
            long witness;
            try {
                witness = machine.memory().compareAndExchange64(address, request.getExpected(),
                        request.getDesired());
            } catch (MemoryAccessException e) {
                throw notRam(address, 8);
            }
            return MemCompareExchangeReply.newBuilder().setWitness(witness).build();
        });
    }

    private int checkMem(long address, long length, String field) {
        long max = machine.limits().maxMemAccessLength();
        if (length <= 0) {
            throw BusError.invalidArgument(field + " must be at least 1");
        }
        if (length > max) {
            throw BusError.resourceExhausted(field + " " + length + " exceeds the maximum of " + max
                    + " bytes (Machine.Describe limits.max_mem_access_length)");
        }
        if (Bits.rangeOverflows(address, length)) {
            throw BusError.outOfRange("address " + Bits.hex(address) + " + " + field + " wraps past 2^64");
        }
        return (int) length;
    }

    private BusError notRam(long address, long length) {
        return BusError.outOfRange("address range [" + Bits.hex(address) + ", " + Bits.hex(address + length - 1)
                + "] is not all RAM (RAM: " + machine.memory().regions() + ")");
    }

    @Override
    public void interrupts(InterruptsRequest request, StreamObserver<Interrupt> responses) {
        Set<String> filter = new HashSet<>();
        try {
            for (String name : request.getIommusList()) {
                filter.add(device(machine, name).name());
            }
        } catch (BusError e) {
            responses.onError(e.toStatus());
            return;
        }
        if (shuttingDown) {
            responses.onCompleted();
            return;
        }
        InterruptStream s = new InterruptStream((ServerCallStreamObserver<Interrupt>) responses, filter);
        streams.add(s);
        s.subscription = machine.interrupts().subscribe(s);
        if (s.isClosed()) {
            s.unsubscribe(); // cancelled or shut down before the subscription was in place
        }
    }

    /** Interrupts streams open now. */
    int openInterruptStreams() {
        return streams.size();
    }

    /** Completes every Interrupts stream (they are endless otherwise). */
    void beginShutdown() {
        shuttingDown = true;
        for (InterruptStream s : streams) {
            s.complete();
        }
    }

    /** An interrupt waiting for a slow client, with the count of those that found the buffer full after it. */
    private static final class Pending {
        final InterruptRecord record;
        long droppedAfter;

        Pending(InterruptRecord record) {
            this.record = record;
        }
    }

    /**
     * One subscriber: a bounded buffer between the devices (which never wait) and the client (which may be
     * slow). When the buffer is full, further interrupts are counted on the newest buffered one, so the client
     * learns of every gap, at the place where it happened.
     */
    private final class InterruptStream implements Consumer<InterruptRecord> {
        private final ServerCallStreamObserver<Interrupt> out;
        private final Set<String> filter;
        private final ArrayDeque<Pending> buffer = new ArrayDeque<>();
        private boolean completing;
        private boolean closed;
        volatile AutoCloseable subscription;

        InterruptStream(ServerCallStreamObserver<Interrupt> out, Set<String> filter) {
            this.out = out;
            this.filter = filter;
            out.setOnReadyHandler(this::drain);
            out.setOnCancelHandler(this::cancelled);
        }

        @Override
        public void accept(InterruptRecord r) {
            if (!filter.isEmpty() && !filter.contains(r.iommu())) {
                return;
            }
            synchronized (this) {
                if (closed || completing) {
                    return;
                }
                if (buffer.size() >= INTERRUPT_BUFFER) {
                    buffer.peekLast().droppedAfter++; // still unsent: the client learns of the gap with it
                    return;
                }
                buffer.add(new Pending(r));
                drain();
            }
        }

        private synchronized void drain() {
            while (!closed && !buffer.isEmpty() && out.isReady()) {
                Pending p = buffer.poll();
                InterruptRecord r = p.record;
                out.onNext(Interrupt.newBuilder()
                        .setIommu(r.iommu())
                        .setSource(r.source())
                        .setMsi(r.msi())
                        .setMsiAddress(r.msiAddress())
                        .setMsiData(r.msiData())
                        .setSequence(r.sequence())
                        .setDropped(p.droppedAfter)
                        .build());
            }
            if (completing && !closed && buffer.isEmpty()) {
                closed = true;
                out.onCompleted();
                unsubscribe();
            }
        }

        private synchronized void cancelled() {
            closed = true;
            unsubscribe();
        }

        /** Ends the stream once the client has taken what is buffered (the server's grace period bounds the wait). */
        synchronized void complete() {
            completing = true;
            drain();
        }

        synchronized boolean isClosed() {
            return closed;
        }

        void unsubscribe() {
            streams.remove(this);
            AutoCloseable s = subscription;
            if (s != null) {
                try {
                    s.close();
                } catch (Exception e) {
                    log.debug("unsubscribe failed", e);
                }
            }
        }
    }
}
