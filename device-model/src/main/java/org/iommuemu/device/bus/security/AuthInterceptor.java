package org.iommuemu.device.bus.security;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.grpc.health.v1.HealthGrpc;
import java.util.Objects;

/**
 * Authenticates every call to the bus's own services by its {@code authorization: Bearer TOKEN} metadata and checks
 * the caller's {@link Role} against the service. A missing, malformed or unknown token ends the call with
 * UNAUTHENTICATED; a known token whose role may not call the service ends it with PERMISSION_DENIED. Either way the
 * call never reaches the service, and the message names the service, never the token. An accepted call runs with
 * its {@link Principal} in the gRPC {@link Context} ({@link #current()}), where the Dma service checks a device's
 * stream binding at Attach and the session registry checks who owns a session.
 *
 * <p>The check runs once per call: a Transfer stream is authenticated when it opens, not per message. The health
 * service and server reflection are open (clients probe them before they have credentials; they reveal nothing
 * beyond the service names).
 */
public final class AuthInterceptor implements ServerInterceptor {
    /** The metadata key clients put their bearer token under. */
    public static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    private static final Context.Key<Principal> PRINCIPAL = Context.key("iommuemu.principal");
    private static final String REFLECTION_PREFIX = "grpc.reflection.";

    private final TokenStore tokens;

    /** An interceptor that accepts the tokens of {@code tokens}. */
    public AuthInterceptor(TokenStore tokens) {
        this.tokens = Objects.requireNonNull(tokens, "tokens");
    }

    /** Whether calls to {@code service} (a full service name) need no token. */
    public static boolean isOpen(String service) {
        return HealthGrpc.SERVICE_NAME.equals(service) || service.startsWith(REFLECTION_PREFIX);
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
            ServerCallHandler<Q, R> next) {
        String service = call.getMethodDescriptor().getServiceName();
        if (service == null || isOpen(service)) {
            return next.startCall(call, headers);
        }
        String header = headers.get(AUTHORIZATION);
        Principal p = tokens.resolve(header);
        if (p == null) {
            String why = header == null ? "no bearer token"
                    : header.regionMatches(true, 0, "Bearer ", 0, 7) ? "the bearer token is not valid on this server"
                    : "the authorization metadata is not 'Bearer TOKEN'";
            return refuse(call, Status.UNAUTHENTICATED.withDescription(why + ": " + service
                    + " needs 'authorization: Bearer TOKEN' metadata with a token of this server"));
        }
        if (!p.role().allows(service)) {
            return refuse(call, Status.PERMISSION_DENIED.withDescription(p + " may not call " + service
                    + ": the " + p.role().id() + " role may call iommuemu.v1.Dma only"));
        }
        return Contexts.interceptCall(Context.current().withValue(PRINCIPAL, p), call, headers, next);
    }

    private static <Q, R> ServerCall.Listener<Q> refuse(ServerCall<Q, R> call, Status status) {
        call.close(status, new Metadata());
        return new ServerCall.Listener<>() {};
    }

    /** The principal of the call being served; null when authentication is off or outside a call. */
    public static Principal current() {
        return PRINCIPAL.get();
    }
}
