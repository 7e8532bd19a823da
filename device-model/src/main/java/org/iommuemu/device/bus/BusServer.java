package org.iommuemu.device.bus;

import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerBuilder;
import io.grpc.ServerCall;
import io.grpc.ServerCallExecutorSupplier;
import io.grpc.ServerInterceptors;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import org.iommuemu.device.BuildInfo;
import org.iommuemu.device.bus.security.AuthInterceptor;
import org.iommuemu.device.bus.security.BusSecurity;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The gRPC bus in front of a {@link Machine}: the {@code Machine}, {@code Dma}, {@code Telemetry} and
 * {@code Driver} services, the standard
 * health service and server reflection, over Netty (TCP, loopback by default) or grpc's in-process
 * transport (the embedded default).
 *
 * <p>Limits come from the machine's {@link org.iommuemu.device.machine.Limits}: the inbound message size
 * is enforced by gRPC (RESOURCE_EXHAUSTED), the rest by the services. A client whose transport closes
 * (exit, crash, kill) loses its DMA sessions and their stream ids become free.
 */
public final class BusServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(BusServer.class);
    private static final Executor DIRECT = Runnable::run;

    /** How long {@link #close()} lets in-flight calls finish. */
    public static final Duration DEFAULT_GRACE = Duration.ofSeconds(5);

    private final Machine machine;
    private final Server server;
    private final SessionRegistry sessions;
    private final MachineService machineService;
    private final DmaService dmaService;
    private final DriverService driverService;
    private final ConnectionTracker tracker;
    private final HealthStatusManager health = new HealthStatusManager();
    private final BusTimer timer = new BusTimer();
    private final String target;
    private volatile boolean shutdown;

    private BusServer(Machine machine, ServerBuilder<?> builder, String target, Executor executor,
            BusSecurity security) {
        this.machine = machine;
        this.sessions = new SessionRegistry(machine.claims(), machine.limits().maxSessions(),
                machine.limits().maxSessionsPerConnection());
        this.machineService = new MachineService(machine, BuildInfo.version(), sessions);
        this.dmaService = new DmaService(machine, sessions, timer);
        this.driverService = new DriverService(machine);
        this.tracker = new ConnectionTracker(sessions);
        // Bus faults strike these services only: FaultInjection, health and reflection always answer
        BusFaultInterceptor faults = new BusFaultInterceptor(machine.faults().bus(), sessions, timer);
        // Interrupts answers with its headers once the subscription is in place (EarlyHeaders)
        builder.addService(ServerInterceptors.intercept(machineService,
                        new EarlyHeaders(MachineGrpc.getInterruptsMethod()), faults))
                .addService(ServerInterceptors.intercept(dmaService, faults))
                .addService(ServerInterceptors.intercept(new TelemetryService(machine), faults))
                .addService(ServerInterceptors.intercept(driverService, faults))
                .addService(new FaultInjectionService(machine))
                .addService(health.getHealthService())
                .addService(ProtoReflectionServiceV1.newInstance())
                .addTransportFilter(tracker)
                .intercept(tracker)
                .maxInboundMessageSize((int) machine.limits().maxMessageBytes());
        if (security.authenticates()) {
            // added last, so it runs first: a refused call reaches neither the tracker's context nor bus faults
            builder.intercept(new AuthInterceptor(security.tokens()));
        }
        if (executor != null) {
            builder.executor(executor);
        } else {
            // DMA requests never block (at most one bounded memory copy): serve them where they arrive, on the
            // transport's thread, instead of handing every request and stream message to the pool. On loopback
            // this about doubles pipelined DMA throughput. Everything else runs on gRPC's default executor.
            builder.callExecutor(new ServerCallExecutorSupplier() {
                @Override
                public <ReqT, RespT> Executor getExecutor(ServerCall<ReqT, RespT> call, Metadata headers) {
                    return DmaGrpc.SERVICE_NAME.equals(call.getMethodDescriptor().getServiceName()) ? DIRECT : null;
                }
            });
        }
        this.server = builder.build();
        this.target = target;
    }

    /** A server on TCP {@code host:port} (port 0 picks a free one; see {@link #port()}). */
    public static BusServer netty(Machine machine, String host, int port) {
        return netty(machine, host, port, null);
    }

    /**
     * As {@link #netty(Machine, String, int)}, serving every call on {@code executor}; null keeps the default
     * dispatch (DMA on the transport's threads, the rest on gRPC's default executor).
     */
    public static BusServer netty(Machine machine, String host, int port, Executor executor) {
        return netty(machine, host, port, executor, BusSecurity.none());
    }

    /**
     * As {@link #netty(Machine, String, int, Executor)}, with {@code security}'s transport credentials (TLS) and,
     * when it has tokens, bearer-token authentication and roles on every call (see {@link AuthInterceptor}).
     */
    public static BusServer netty(Machine machine, String host, int port, Executor executor, BusSecurity security) {
        NettyServerBuilder b = NettyServerBuilder.forAddress(new InetSocketAddress(host, port),
                        security.credentials())
                .permitKeepAliveTime(10, TimeUnit.SECONDS)
                .permitKeepAliveWithoutCalls(true)
                .keepAliveTime(30, TimeUnit.SECONDS)
                .keepAliveTimeout(10, TimeUnit.SECONDS);
        return new BusServer(machine, b, host, executor, security);
    }

    /** A server on grpc's in-process transport under {@code name}. */
    public static BusServer inProcess(Machine machine, String name) {
        return new BusServer(machine, InProcessServerBuilder.forName(name), name, null, BusSecurity.none());
    }

    /** As {@link #inProcess(Machine, String)}, serving calls on {@code executor} (e.g. a direct executor in tests). */
    public static BusServer inProcess(Machine machine, String name, Executor executor) {
        return new BusServer(machine, InProcessServerBuilder.forName(name), name, executor, BusSecurity.none());
    }

    /** As {@link #inProcess(Machine, String, Executor)}, authenticating calls with {@code security}'s tokens. */
    public static BusServer inProcess(Machine machine, String name, Executor executor, BusSecurity security) {
        return new BusServer(machine, InProcessServerBuilder.forName(name), name, executor, security);
    }

    public BusServer start() throws IOException {
        server.start();
        for (String service : new String[] {"", MachineGrpc.SERVICE_NAME, DmaGrpc.SERVICE_NAME,
            TelemetryGrpc.SERVICE_NAME, DriverGrpc.SERVICE_NAME}) {
            health.setStatus(service, io.grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING);
        }
        log.debug("bus serving on {}", server.getListenSockets());
        return this;
    }

    /** The TCP port (Netty servers), or -1. */
    public int port() {
        return server.getPort();
    }

    /** "host:port" for Netty servers, the in-process name otherwise. */
    public String target() {
        int port = server.getPort();
        if (port < 0) {
            return target;
        }
        return (target.contains(":") ? "[" + target + "]" : target) + ":" + port;
    }

    public Machine machine() {
        return machine;
    }

    /** Live DMA sessions. */
    public int liveSessions() {
        return sessions.live();
    }

    /**
     * What the server holds for its clients now, for leak checks (the churn test, the soak run): live DMA
     * sessions, stream ids claimed, open Transfer and Interrupts streams, interrupt subscribers and client
     * connections. Once every client has gone, all of them are zero.
     *
     * @param sessions live DMA sessions
     * @param streamIds stream ids claimed on all instances
     * @param transfers open Transfer streams
     * @param interruptStreams open Interrupts streams
     * @param interruptSubscribers subscribers of the machine's interrupt hub
     * @param connections client transports not terminated yet
     */
    public record Holdings(int sessions, int streamIds, int transfers, int interruptStreams, int interruptSubscribers,
            long connections) {
        /** Whether nothing is held. */
        public boolean isEmpty() {
            return sessions == 0 && streamIds == 0 && transfers == 0 && interruptStreams == 0
                    && interruptSubscribers == 0 && connections == 0;
        }
    }

    /** A snapshot of what the server holds for its clients. */
    public Holdings holdings() {
        return new Holdings(sessions.live(), machine.claims().size(), dmaService.openTransfers(),
                machineService.openInterruptStreams(), machine.interrupts().subscribers(), tracker.live());
    }

    /**
     * Graceful shutdown: new calls are refused, Interrupts streams complete, Transfer streams end with
     * UNAVAILABLE after answering the requests they have read, unary calls in flight finish; whatever is
     * still running after {@code grace} is cancelled.
     */
    public void shutdown(Duration grace) {
        if (shutdown) {
            return;
        }
        shutdown = true;
        health.enterTerminalState();
        server.shutdown();
        machineService.beginShutdown();
        dmaService.beginShutdown();
        driverService.shutdown();
        try {
            if (!server.awaitTermination(grace.toMillis(), TimeUnit.MILLISECONDS)) {
                log.warn("calls still running after {} ms; cancelling them", grace.toMillis());
                server.shutdownNow();
                server.awaitTermination(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            server.shutdownNow();
        } finally {
            timer.close();
        }
    }

    /** Blocks until the server has terminated. */
    public void awaitTermination() throws InterruptedException {
        server.awaitTermination();
    }

    @Override
    public void close() {
        shutdown(DEFAULT_GRACE);
    }
}
