package org.iommuemu.device.bus;

import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;

/**
 * Sends a server-streaming call's response headers as soon as its handler has returned, instead of with the first
 * message as grpc-java does. For {@code Machine.Interrupts} the handler's return is the moment the subscription is
 * in place, and nothing else tells the client so: a stream that has no interrupt to send yet is silent. A client
 * that waits for the headers (a remote driver's host, before it enables the SMMU's interrupts) then knows that
 * every interrupt raised afterwards reaches it.
 *
 * <p>The handler sends messages from device threads while the headers go out on the call's own thread, so the
 * wrapped call serialises headers, messages and close, and sends the headers once whoever comes first.
 */
final class EarlyHeaders implements ServerInterceptor {
    private final String method;

    EarlyHeaders(MethodDescriptor<?, ?> method) {
        this.method = method.getFullMethodName();
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
            ServerCallHandler<Q, R> next) {
        if (!call.getMethodDescriptor().getFullMethodName().equals(method)) {
            return next.startCall(call, headers);
        }
        HeadersOnce<Q, R> once = new HeadersOnce<>(call);
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(next.startCall(once, headers)) {
            @Override
            public void onHalfClose() {
                super.onHalfClose(); // a single-request call runs its handler here
                once.sendHeadersIfOpen();
            }
        };
    }

    private static final class HeadersOnce<Q, R> extends ForwardingServerCall.SimpleForwardingServerCall<Q, R> {
        private boolean headersSent;
        private boolean closed;

        HeadersOnce(ServerCall<Q, R> call) {
            super(call);
        }

        @Override
        public synchronized void sendHeaders(Metadata headers) {
            if (!headersSent) {
                headersSent = true;
                super.sendHeaders(headers);
            }
        }

        @Override
        public synchronized void sendMessage(R message) {
            sendHeaders(new Metadata());
            super.sendMessage(message);
        }

        @Override
        public synchronized void close(Status status, Metadata trailers) {
            closed = true;
            super.close(status, trailers);
        }

        /** After the handler: a call it already ended (a refused request, a server shutting down) stays headerless. */
        synchronized void sendHeadersIfOpen() {
            if (!closed) {
                sendHeaders(new Metadata());
            }
        }
    }
}
