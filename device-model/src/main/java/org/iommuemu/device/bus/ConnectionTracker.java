package org.iommuemu.device.bus;

import io.grpc.Attributes;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerTransportFilter;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Gives every client transport a {@link Connection} and every call the connection it arrived on, and
 * releases a connection's DMA sessions when the transport goes away (a client that exits, crashes or
 * is killed mid-stream frees its stream ids).
 */
final class ConnectionTracker extends ServerTransportFilter implements ServerInterceptor {
    private static final Logger log = LoggerFactory.getLogger(ConnectionTracker.class);
    private static final Attributes.Key<Connection> ATTR = Attributes.Key.create("iommuemu.connection");
    static final Context.Key<Connection> CONTEXT = Context.key("iommuemu.connection");

    private final AtomicLong ids = new AtomicLong();
    private final AtomicLong live = new AtomicLong();
    private final SessionRegistry sessions;

    ConnectionTracker(SessionRegistry sessions) {
        this.sessions = sessions;
    }

    @Override
    public Attributes transportReady(Attributes attrs) {
        Connection c = new Connection(ids.incrementAndGet(), attrs.get(Grpc.TRANSPORT_ATTR_REMOTE_ADDR));
        live.incrementAndGet();
        log.debug("{} ready", c);
        return attrs.toBuilder().set(ATTR, c).build();
    }

    @Override
    public void transportTerminated(Attributes attrs) {
        // null when the transport never became ready (e.g. a TLS handshake that failed): nothing to release
        Connection c = attrs == null ? null : attrs.get(ATTR);
        if (c != null) {
            live.decrementAndGet();
            c.markClosed();
            int released = sessions.releaseAll(c);
            log.debug("{} terminated; released {} session(s)", c, released);
        }
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
            ServerCallHandler<Q, R> next) {
        Connection c = call.getAttributes().get(ATTR);
        return Contexts.interceptCall(Context.current().withValue(CONTEXT, c), call, headers, next);
    }

    /** Client transports ready and not terminated yet. */
    long live() {
        return live.get();
    }

    /** The connection of the call being served; null outside a call. */
    static Connection current() {
        return CONTEXT.get();
    }
}
