package org.iommuemu.device.bus.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import com.google.protobuf.ByteString;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.assertj.core.api.ThrowableAssert;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.bus.StreamRecorder;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.ClientSecurity;
import org.iommuemu.proto.v1.AttachReply;
import org.iommuemu.proto.v1.AttachRequest;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.DetachRequest;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.DmaOp;
import org.iommuemu.proto.v1.DmaReadRequest;
import org.iommuemu.proto.v1.DmaWriteRequest;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.FaultInjectionGrpc;
import org.iommuemu.proto.v1.FaultSpec;
import org.iommuemu.proto.v1.FaultTarget;
import org.iommuemu.proto.v1.InjectRequest;
import org.iommuemu.proto.v1.InjectionKind;
import org.iommuemu.proto.v1.ListFaultsRequest;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MemWriteRequest;
import org.iommuemu.proto.v1.MmioReadRequest;
import org.iommuemu.proto.v1.MmioWriteRequest;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.TransferReply;
import org.iommuemu.proto.v1.TransferRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

/**
 * Roles and bearer tokens on the in-process bus: every service refuses calls without a valid token
 * (UNAUTHENTICATED) and device tokens on host services or outside their stream binding (PERMISSION_DENIED), with
 * nothing done; a host token works everywhere; a token never shows up in a status message or a log line.
 */
class BusAuthenticationTest {
    static final String HOST = "host-token-0123456789abcdefXYZ";
    static final String DEV_A = "device-a-token-0123456789abcdef";
    static final String DEV_B = "device-b-token-0123456789abcdef";
    static final String UNKNOWN = "not-a-token-of-this-server-0000";
    static final String TOKENS = "# roles\n"
            + "host " + HOST + " name=harness\n"
            + "device " + DEV_A + " name=nic-a iommu=smmu0 streams=16-31\n"
            + "device " + DEV_B + " name=nic-b iommu=smmu0 streams=0x20-0x2f\n";

    private Machine machine;
    private BusServer server;
    private final String name = "auth-test-" + UUID.randomUUID();
    private final List<ManagedChannel> channels = new ArrayList<>();
    private long ram;

    @BeforeEach
    void setUp() throws Exception {
        machine = new Machine(MachineConfig.defaults());
        ram = machine.memory().regions().get(0).base();
        server = BusServer.inProcess(machine, name, Runnable::run,
                BusSecurity.none().withTokens(TokenStore.parse(TOKENS, "tokens.txt"))).start();
    }

    @AfterEach
    void tearDown() throws Exception {
        for (ManagedChannel c : channels) {
            c.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
        server.close();
    }

    /** A new connection that sends {@code token} on every call (null: no authorization metadata). */
    private Channel as(String token) {
        ManagedChannel c = InProcessChannelBuilder.forName(name).directExecutor().build();
        channels.add(c);
        return token == null ? c : ClientInterceptors.intercept(c, ClientSecurity.NONE.withToken(token)
                .tokenInterceptor());
    }

    /** One call of each service, each with a side effect if it were carried out. */
    private static List<Consumer<Channel>> callOfEachService(long ram) {
        return List.of(
                ch -> MachineGrpc.newBlockingStub(ch).memWrite(MemWriteRequest.newBuilder().setAddress(ram)
                        .setData(ByteString.copyFromUtf8("written")).build()),
                ch -> MachineGrpc.newBlockingStub(ch).mmioWrite(MmioWriteRequest.newBuilder().setIommu("smmu0")
                        .setOffset(0x20).setWidth(4).setValue(1).build()),
                ch -> DriverGrpc.newBlockingStub(ch).createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                        .setStage(DomainStage.STAGE_1).setGranule(4096).build()),
                ch -> FaultInjectionGrpc.newBlockingStub(ch).inject(InjectRequest.newBuilder().setSpec(
                        FaultSpec.newBuilder().setKind(InjectionKind.SYNC_NEVER_COMPLETES)
                                .setTarget(FaultTarget.newBuilder().setIommu("smmu0"))).build()),
                ch -> TelemetryGrpc.newBlockingStub(ch).stats(StatsRequest.getDefaultInstance()),
                ch -> DmaGrpc.newBlockingStub(ch).attach(AttachRequest.newBuilder().setName("nic").setIommu("smmu0")
                        .setStreamId(16).build()));
    }

    private static final String[] SERVICES = {"iommuemu.v1.Machine", "iommuemu.v1.Machine", "iommuemu.v1.Driver",
        "iommuemu.v1.FaultInjection", "iommuemu.v1.Telemetry", "iommuemu.v1.Dma"};

    private static void assertRefused(ThrowableAssert.ThrowingCallable call, Status.Code code, String... texts) {
        assertThatThrownBy(call).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(code);
            assertThat(e.getStatus().getDescription()).contains(texts)
                    .doesNotContain(HOST, DEV_A, DEV_B, UNKNOWN);
        });
    }

    /** Nothing any refused call could have done happened. */
    private void assertNothingDone() throws Exception {
        assertThat(machine.memory().read64(ram)).as("no memory written").isZero();
        Channel host = as(HOST);
        assertThat(MachineGrpc.newBlockingStub(host).mmioRead(MmioReadRequest.newBuilder().setIommu("smmu0")
                .setOffset(0x20).setWidth(4).build()).getValue()).as("SMMU_CR0 untouched").isZero();
        assertThat(FaultInjectionGrpc.newBlockingStub(host).list(ListFaultsRequest.getDefaultInstance())
                .getFaultsList()).as("no fault injected").isEmpty();
        assertThat(server.liveSessions()).as("nothing attached").isZero();
        assertThat(DriverGrpc.newBlockingStub(host).createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                .setStage(DomainStage.STAGE_1).setGranule(4096).build()).getDomain())
                .as("the first domain the host creates is the first one created at all").isEqualTo(1);
    }

    @Test
    void everyServiceRefusesACallWithoutAToken() throws Exception {
        List<Consumer<Channel>> calls = callOfEachService(ram);
        for (int i = 0; i < calls.size(); i++) {
            Consumer<Channel> call = calls.get(i);
            assertRefused(() -> call.accept(as(null)), Status.Code.UNAUTHENTICATED, "no bearer token", SERVICES[i]);
        }
        assertNothingDone();
    }

    @Test
    void everyServiceRefusesAWrongOrMalformedToken() throws Exception {
        List<Consumer<Channel>> calls = callOfEachService(ram);
        for (int i = 0; i < calls.size(); i++) {
            Consumer<Channel> call = calls.get(i);
            assertRefused(() -> call.accept(as(UNKNOWN)), Status.Code.UNAUTHENTICATED, "not valid", SERVICES[i]);
            // a prefix of a real token, and the real token with one character changed
            assertRefused(() -> call.accept(as(HOST.substring(0, HOST.length() - 1))),
                    Status.Code.UNAUTHENTICATED, "not valid");
            assertRefused(() -> call.accept(as(HOST.substring(0, HOST.length() - 1) + "Q")),
                    Status.Code.UNAUTHENTICATED, "not valid");
            Channel basic = ClientInterceptors.intercept(as(null), io.grpc.stub.MetadataUtils
                    .newAttachHeadersInterceptor(authorization("Basic " + HOST)));
            assertRefused(() -> call.accept(basic), Status.Code.UNAUTHENTICATED, "not 'Bearer TOKEN'");
        }
        assertNothingDone();
    }

    private static io.grpc.Metadata authorization(String value) {
        io.grpc.Metadata m = new io.grpc.Metadata();
        m.put(AuthInterceptor.AUTHORIZATION, value);
        return m;
    }

    @Test
    void aDeviceTokenIsRefusedOnEveryHostService() throws Exception {
        List<Consumer<Channel>> calls = callOfEachService(ram);
        for (int i = 0; i < calls.size() - 1; i++) { // all but Dma.Attach
            Consumer<Channel> call = calls.get(i);
            assertRefused(() -> call.accept(as(DEV_A)), Status.Code.PERMISSION_DENIED,
                    "device token 'nic-a' may not call " + SERVICES[i]);
        }
        assertRefused(() -> MachineGrpc.newBlockingStub(as(DEV_A)).describe(DescribeRequest.getDefaultInstance()),
                Status.Code.PERMISSION_DENIED, "iommuemu.v1.Machine");
        assertNothingDone();
    }

    @Test
    void aDeviceTokenCannotAttachOutsideItsStreamsOrInstance() {
        DmaGrpc.DmaBlockingStub dev = DmaGrpc.newBlockingStub(as(DEV_A));
        assertRefused(() -> dev.attach(AttachRequest.newBuilder().setName("nic").setIommu("smmu0").setStreamId(32)
                .build()), Status.Code.PERMISSION_DENIED, "device token 'nic-a' may not attach on stream_id 32 of smmu0",
                "smmu0 stream ids 16-31");
        assertRefused(() -> dev.attach(AttachRequest.newBuilder().setName("nic").setIommu("dmar0").setStreamId(16)
                .build()), Status.Code.PERMISSION_DENIED, "stream_id 16 of dmar0");
        assertThat(server.liveSessions()).isZero();
        // the stream id it was refused stays free for the token it belongs to
        AttachReply b = DmaGrpc.newBlockingStub(as(DEV_B)).attach(AttachRequest.newBuilder().setName("nic-b")
                .setIommu("smmu0").setStreamId(32).build());
        assertThat(b.getStreamId()).isEqualTo(32);
        AttachReply a = dev.attach(AttachRequest.newBuilder().setName("nic").setIommu("smmu0").setStreamId(31)
                .build());
        assertThat(a.getStreamId()).isEqualTo(31);
        assertThat(server.liveSessions()).isEqualTo(2);
    }

    @Test
    void aBoundDeviceDoesDmaAsItsOwnStream() {
        DmaGrpc.DmaBlockingStub dev = DmaGrpc.newBlockingStub(as(DEV_A));
        long session = dev.attach(AttachRequest.newBuilder().setName("nic").setIommu("smmu0").setStreamId(16)
                .build()).getSessionId();
        dev.write(DmaWriteRequest.newBuilder().setSessionId(session).setIova(ram + 0x1000)
                .setData(ByteString.copyFromUtf8("hello")).build());
        assertThat(dev.read(DmaReadRequest.newBuilder().setSessionId(session).setIova(ram + 0x1000).setLength(5)
                .build()).getData().toStringUtf8()).isEqualTo("hello");
    }

    @Test
    void aSessionCannotBeUsedWithAnotherToken() throws Exception {
        ManagedChannel shared = InProcessChannelBuilder.forName(name).directExecutor().build();
        channels.add(shared);
        Channel asA = ClientInterceptors.intercept(shared, ClientSecurity.NONE.withToken(DEV_A).tokenInterceptor());
        Channel asB = ClientInterceptors.intercept(shared, ClientSecurity.NONE.withToken(DEV_B).tokenInterceptor());
        long session = DmaGrpc.newBlockingStub(asA).attach(AttachRequest.newBuilder().setName("nic-a")
                .setIommu("smmu0").setStreamId(20).build()).getSessionId();
        DmaGrpc.DmaBlockingStub b = DmaGrpc.newBlockingStub(asB);
        // same connection, other token
        assertRefused(() -> b.write(DmaWriteRequest.newBuilder().setSessionId(session).setIova(ram)
                .setData(ByteString.copyFromUtf8("x")).build()), Status.Code.PERMISSION_DENIED, "another token");
        assertRefused(() -> b.detach(DetachRequest.newBuilder().setSessionId(session).build()),
                Status.Code.PERMISSION_DENIED, "another token");
        // other connection, even with the same token
        assertRefused(() -> DmaGrpc.newBlockingStub(as(DEV_A)).read(DmaReadRequest.newBuilder().setSessionId(session)
                .setIova(ram).setLength(1).build()), Status.Code.PERMISSION_DENIED, "another client connection");
        assertThat(machine.memory().read64(ram)).isZero();
        assertThat(server.liveSessions()).as("the session survived").isEqualTo(1);
        DmaGrpc.newBlockingStub(asA).detach(DetachRequest.newBuilder().setSessionId(session).build());
        assertThat(server.liveSessions()).isZero();
    }

    @Test
    void aTransferStreamIsAuthenticatedWhenItOpens() throws Exception {
        StreamRecorder<TransferReply> refused = new StreamRecorder<>();
        StreamObserver<TransferRequest> req = DmaGrpc.newStub(as(null)).transfer(refused);
        req.onNext(TransferRequest.newBuilder().setTag(1).setSessionId(1).setOp(DmaOp.READ).setIova(ram).setLength(8)
                .build());
        assertThat(refused.end(5).getCode())
                .isEqualTo(Status.Code.UNAUTHENTICATED);

        Channel ch = as(DEV_A);
        long session = DmaGrpc.newBlockingStub(ch).attach(AttachRequest.newBuilder().setName("nic")
                .setIommu("smmu0").setStreamId(17).build()).getSessionId();
        StreamRecorder<TransferReply> replies = new StreamRecorder<>();
        StreamObserver<TransferRequest> ok = DmaGrpc.newStub(ch).transfer(replies);
        for (int i = 0; i < 3; i++) {
            ok.onNext(TransferRequest.newBuilder().setTag(i).setSessionId(session).setOp(DmaOp.READ)
                    .setIova(ram + 64L * i).setLength(8).build());
        }
        ok.onCompleted();
        assertThat(replies.end(5)).isEqualTo(Status.OK);
        assertThat(replies.messages()).hasSize(3).allSatisfy(r -> assertThat(r.hasError()).isFalse());
    }

    @Test
    void aHostTokenWorksOnEveryService() throws Exception {
        List<Consumer<Channel>> calls = callOfEachService(ram);
        for (Consumer<Channel> call : calls) {
            call.accept(as(HOST));
        }
        assertThat(machine.memory().read64(ram) & 0xff).isEqualTo('w');
        assertThat(FaultInjectionGrpc.newBlockingStub(as(HOST)).list(ListFaultsRequest.getDefaultInstance())
                .getFaultsCount()).isEqualTo(1);
        assertThat(server.liveSessions()).isEqualTo(1);
        assertThat(MachineGrpc.newBlockingStub(as(HOST)).describe(DescribeRequest.getDefaultInstance())
                .getIommusCount()).isEqualTo(2);
    }

    @Test
    void healthIsOpenWithoutAToken() {
        assertThat(HealthGrpc.newBlockingStub(as(null)).check(HealthCheckRequest.newBuilder()
                .setService("iommuemu.v1.Dma").build()).getStatus())
                .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
    }

    @Test
    void noTokenAppearsInTheLogEvenAtDebug() {
        Logger root = (Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
        Logger ours = (Logger) LoggerFactory.getLogger("org.iommuemu");
        Logger grpc = (Logger) LoggerFactory.getLogger("io.grpc");
        Level rootWas = root.getLevel();
        Level oursWas = ours.getLevel();
        Level grpcWas = grpc.getLevel();
        ListAppender<ILoggingEvent> captured = new ListAppender<>();
        captured.start();
        root.addAppender(captured);
        root.setLevel(Level.TRACE);
        ours.setLevel(Level.TRACE);
        grpc.setLevel(Level.TRACE);
        try {
            List<Consumer<Channel>> calls = callOfEachService(ram);
            for (String token : new String[] {null, UNKNOWN, DEV_A, DEV_B, HOST}) {
                for (Consumer<Channel> call : calls) {
                    try {
                        call.accept(as(token));
                    } catch (StatusRuntimeException expected) {
                        // refusals are what this test provokes
                    }
                }
            }
        } finally {
            root.detachAppender(captured);
            root.setLevel(rootWas);
            ours.setLevel(oursWas);
            grpc.setLevel(grpcWas);
        }
        assertThat(captured.list).as("the bus logged its work at debug").isNotEmpty();
        for (ILoggingEvent e : captured.list) {
            String text = e.getFormattedMessage() + (e.getThrowableProxy() == null ? ""
                    : e.getThrowableProxy().getMessage());
            assertThat(text).doesNotContain(HOST, DEV_A, DEV_B, UNKNOWN);
        }
    }
}
