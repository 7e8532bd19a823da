package org.iommuemu.device.bus;

import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import java.util.ArrayDeque;
import org.iommuemu.device.inject.BusFaults;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.proto.v1.DmaGrpc;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Carries out BUS_RPC_UNAVAILABLE and BUS_REPLY_DELAY on the calls of the services it intercepts (Machine, Dma,
 * Telemetry, Driver; never FaultInjection, health or reflection, so faults can always be listed and cleared).
 * Dma's Transfer stream is left to {@link DmaService}, which treats each of its requests as a call.
 *
 * <p>A call is about the instance and stream its request names: a request with a {@code session_id} (Dma Read,
 * Write, Detach) is about its session's instance and stream id (none if the session is not the caller's live one);
 * otherwise a request's {@code iommu} field names the instance (Dma Attach, Driver and register calls) and its
 * {@code stream_id} field the stream. Other calls (Machine.Describe, Telemetry.Stats over every instance...) are
 * about no instance: only faults with an empty {@code target.iommu} strike them.
 *
 * <p>BUS_RPC_UNAVAILABLE: each request message is an opportunity (a unary or server-streaming call has one); when
 * the fault fires the call ends with UNAVAILABLE naming the fault and the request never reaches the service (no
 * side effect). BUS_REPLY_DELAY: each reply message is an opportunity (a unary call's error status too, when it
 * has no reply message); when the fault fires that reply and everything after it on the call (later messages, the
 * final status) is held for {@code params.wall_delay_ms} and then sent, in order, by {@link BusTimer}'s thread.
 *
 * <p>Dma calls are wrapped only when a bus fault is active as they start, so DMA over the bus allocates nothing
 * for faults otherwise; the other services' calls are always wrapped (their long streams, like Interrupts, must
 * see faults injected after they started).
 */
final class BusFaultInterceptor implements ServerInterceptor {
    private static final Logger log = LoggerFactory.getLogger(BusFaultInterceptor.class);
    private static final String TRANSFER = DmaGrpc.getTransferMethod().getFullMethodName();

    private final BusFaults faults;
    private final SessionRegistry sessions;
    private final BusTimer timer;

    BusFaultInterceptor(BusFaults faults, SessionRegistry sessions, BusTimer timer) {
        this.faults = faults;
        this.sessions = sessions;
        this.timer = timer;
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
            ServerCallHandler<Q, R> next) {
        String method = call.getMethodDescriptor().getFullMethodName();
        if (DmaGrpc.SERVICE_NAME.equals(call.getMethodDescriptor().getServiceName())
                && (!faults.any() || method.equals(TRANSFER))) {
            return next.startCall(call, headers);
        }
        FaultCall<Q, R> wrapped = new FaultCall<>(call, method);
        return new FaultListener<>(next.startCall(wrapped, headers), wrapped);
    }

    /** The request side: binds the call to its instance and stream, and refuses it when UNAVAILABLE fires. */
    private final class FaultListener<Q, R> extends ForwardingServerCallListener.SimpleForwardingServerCallListener<Q> {
        private final FaultCall<Q, R> call;
        private boolean refused;

        FaultListener(ServerCall.Listener<Q> delegate, FaultCall<Q, R> call) {
            super(delegate);
            this.call = call;
        }

        @Override
        public void onMessage(Q message) {
            if (refused) {
                return;
            }
            if (faults.any()) {
                call.bind(message);
                BusFaults.Fired f = faults.firing(InjectionKind.BUS_RPC_UNAVAILABLE, call.method, call.iommu,
                        call.stream, false, 0, "request not carried out");
                if (f != null) {
                    refused = true;
                    call.close(Status.UNAVAILABLE.withDescription("injected fault " + f.faultId()
                            + " (BUS_RPC_UNAVAILABLE): " + call.method + " was not carried out"), new Metadata());
                    return;
                }
            }
            super.onMessage(message);
        }

        @Override
        public void onHalfClose() {
            if (!refused) {
                super.onHalfClose();
            }
        }

        @Override
        public void onReady() {
            if (!refused) {
                super.onReady();
            }
        }
    }

    /** The reply side: holds replies when BUS_REPLY_DELAY fires, and sends them later in order. */
    private final class FaultCall<Q, R> extends ForwardingServerCall.SimpleForwardingServerCall<Q, R> {
        final String method;
        String iommu = "";
        long stream = -1;
        private boolean bound;
        private boolean sentMessage;
        private final ArrayDeque<Runnable> held = new ArrayDeque<>();
        private boolean holding;
        private long releaseAt;

        FaultCall(ServerCall<Q, R> delegate, String method) {
            super(delegate);
            this.method = method;
        }

        /** The instance and stream the call is about, from its first request (see the class comment). */
        void bind(Object message) {
            if (bound || !(message instanceof Message m)) {
                return;
            }
            bound = true;
            var type = m.getDescriptorForType();
            FieldDescriptor session = type.findFieldByName("session_id");
            if (session != null && session.getJavaType() == FieldDescriptor.JavaType.LONG) {
                Session s = sessions.peek((Long) m.getField(session), ConnectionTracker.current());
                if (s != null) {
                    iommu = s.device.name();
                    stream = Integer.toUnsignedLong(s.streamId);
                }
                return;
            }
            FieldDescriptor name = type.findFieldByName("iommu");
            if (name != null && name.getJavaType() == FieldDescriptor.JavaType.STRING && !name.isRepeated()) {
                iommu = (String) m.getField(name);
            }
            FieldDescriptor sid = type.findFieldByName("stream_id");
            if (sid != null && sid.getJavaType() == FieldDescriptor.JavaType.INT && !sid.isRepeated()) {
                stream = Integer.toUnsignedLong((Integer) m.getField(sid));
            }
        }

        @Override
        public void sendHeaders(Metadata headers) {
            synchronized (this) {
                if (holding) {
                    held.add(() -> super.sendHeaders(headers));
                    return;
                }
            }
            super.sendHeaders(headers);
        }

        @Override
        public void sendMessage(R message) {
            synchronized (this) {
                sentMessage = true;
                opportunity("reply message");
                if (holding) {
                    held.add(() -> super.sendMessage(message));
                    return;
                }
                super.sendMessage(message);
            }
        }

        @Override
        public void close(Status status, Metadata trailers) {
            synchronized (this) {
                if (!sentMessage) {
                    opportunity("reply status");
                }
                if (holding) {
                    held.add(() -> super.close(status, trailers));
                    return;
                }
                super.close(status, trailers);
            }
        }

        /** One BUS_REPLY_DELAY opportunity; the caller holds this monitor. */
        private void opportunity(String what) {
            if (!faults.any()) {
                return;
            }
            BusFaults.Fired f = faults.firing(InjectionKind.BUS_REPLY_DELAY, method, iommu, stream, false, 0, what);
            if (f == null) {
                return;
            }
            long ms = f.params().wallDelayMs();
            long until = System.nanoTime() + ms * 1_000_000L;
            if (!holding || until - releaseAt > 0) {
                releaseAt = until;
            }
            if (!holding && timer.schedule(this::release, ms * 1_000_000L)) {
                holding = true;
            }
        }

        /** Timer thread: sends what was held once its time has come. */
        private synchronized void release() {
            long left = releaseAt - System.nanoTime();
            if (left > 0 && timer.schedule(this::release, left)) {
                return;
            }
            holding = false;
            try {
                for (Runnable r; (r = held.poll()) != null; ) {
                    r.run();
                }
            } catch (RuntimeException e) {
                // the call ended meanwhile (cancelled by the client's deadline, or the server stopping)
                log.debug("held reply of {} not sent: {}", method, e.toString());
                held.clear();
            }
        }
    }
}
