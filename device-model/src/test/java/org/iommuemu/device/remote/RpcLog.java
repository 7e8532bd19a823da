package org.iommuemu.device.remote;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.MethodDescriptor;
import java.util.ArrayList;
import java.util.List;

/** A client interceptor that records every request sent, so a test can count RPCs and see what they asked. */
final class RpcLog implements ClientInterceptor {
    /** One request: the method's short name ("MemRead") and the message. */
    record Sent(String method, Object request) {}

    private final List<Sent> sent = new ArrayList<>();

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
        return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
            @Override
            public void sendMessage(Q message) {
                synchronized (sent) {
                    sent.add(new Sent(method.getBareMethodName(), message));
                }
                super.sendMessage(message);
            }
        };
    }

    /** The requests of {@code method} so far. */
    List<Object> of(String method) {
        synchronized (sent) {
            return sent.stream().filter(s -> s.method().equals(method)).map(Sent::request).toList();
        }
    }

    /** Requests of every method so far. */
    int count() {
        synchronized (sent) {
            return sent.size();
        }
    }

    void clear() {
        synchronized (sent) {
            sent.clear();
        }
    }
}
