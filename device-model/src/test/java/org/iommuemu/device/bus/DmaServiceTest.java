package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.iommuemu.device.bus.BusFixture.assertStatus;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.iommuemu.device.machine.Limits;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.Transfer;
import org.iommuemu.proto.v1.AttachReply;
import org.iommuemu.proto.v1.AttachRequest;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.DmaOp;
import org.iommuemu.proto.v1.DmaReadReply;
import org.iommuemu.proto.v1.DmaReadRequest;
import org.iommuemu.proto.v1.DmaWriteRequest;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.TransferReply;
import org.iommuemu.proto.v1.TransferRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class DmaServiceTest {
    private BusFixture bus;
    private DmaClient client;

    @BeforeEach
    void setUp() throws Exception {
        bus = new BusFixture();
        client = bus.client();
    }

    @AfterEach
    void tearDown() throws Exception {
        bus.close();
    }

    private static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void attachThenWriteAndReadInBypass() throws Exception {
        DmaSession s = client.attach("nic", "smmu0", 0x42);
        assertThat(s.streamId()).isEqualTo(0x42);
        long iova = bus.ramBase() + 0x3000 - 7; // unaligned, crossing pages
        byte[] data = random(10_000, 1);
        assertThat(s.write(iova, data).isOk()).isTrue();
        byte[] inRam = new byte[data.length];
        bus.machine.memory().read(iova, inRam, 0, inRam.length);
        assertThat(inRam).as("bypass: the DMA landed at pa = iova").isEqualTo(data);
        DmaResult r = s.read(iova, data.length);
        assertThat(r.isOk()).isTrue();
        assertThat(r.data().toByteArray()).isEqualTo(data);
    }

    @Test
    void vtdWithTranslationDisabledPassesDmaThrough() {
        DmaSession s = client.attach("disk", "dmar0", 0x0108);
        long iova = bus.ramBase() + 0x8000;
        assertThat(s.write(iova, "untranslated".getBytes()).isOk()).isTrue();
        assertThat(s.read(iova, 12).data().toStringUtf8()).isEqualTo("untranslated");
    }

    @Test
    void aSecondAttachToAHeldStreamIdIsRefused() {
        DmaSession first = client.attach("a", "smmu0", 7);
        DmaClient other = bus.client();
        assertStatus(() -> other.attach("b", "smmu0", 7), Status.Code.ALREADY_EXISTS,
                "stream_id 7 on smmu0 is already held");
        assertStatus(() -> client.attach("c", "smmu0", 7), Status.Code.ALREADY_EXISTS, "already held");
        assertThat(other.attach("d", "dmar0", 7).streamId()).as("the same id on another instance is free").isEqualTo(7);
        first.close();
        assertThat(other.attach("b", "smmu0", 7).streamId()).as("free again after Detach").isEqualTo(7);
    }

    @Test
    void aSessionCannotIssueDmaAsAnotherStreamId() {
        DmaSession s = client.attach("nic", "smmu0", 3);
        DmaGrpc.DmaBlockingStub raw = DmaGrpc.newBlockingStub(client.channel());
        assertStatus(() -> raw.read(DmaReadRequest.newBuilder().setSessionId(s.id()).setStreamId(4)
                .setIova(bus.ramBase()).setLength(4).build()), Status.Code.PERMISSION_DENIED,
                "stream_id 4 is not the stream id of this session (3)");
        assertStatus(() -> raw.write(DmaWriteRequest.newBuilder().setSessionId(s.id()).setStreamId(4)
                .setIova(bus.ramBase()).setData(ByteString.copyFromUtf8("x")).build()),
                Status.Code.PERMISSION_DENIED, "own stream id");
        DmaReadReply ok = raw.read(DmaReadRequest.newBuilder().setSessionId(s.id()).setStreamId(3)
                .setIova(bus.ramBase()).setLength(4).build());
        assertThat(ok.hasFault()).as("naming its own stream id is fine").isFalse();
    }

    @Test
    void aSessionIsOnlyUsableOnTheConnectionThatAttachedIt() {
        DmaSession s = client.attach("nic", "smmu0", 3);
        DmaGrpc.DmaBlockingStub stranger = DmaGrpc.newBlockingStub(bus.channel());
        assertStatus(() -> stranger.read(DmaReadRequest.newBuilder().setSessionId(s.id()).setIova(bus.ramBase())
                .setLength(4).build()), Status.Code.PERMISSION_DENIED, "belongs to another client connection");
        assertStatus(() -> stranger.read(DmaReadRequest.newBuilder().setSessionId(s.id() ^ (1L << 40))
                .setIova(bus.ramBase()).setLength(4).build()), Status.Code.NOT_FOUND, "is not a live session");
    }

    @Test
    void oversizeDmaIsResourceExhaustedWithTheLimitInTheMessage() {
        DmaSession s = client.attach("nic", "smmu0", 1);
        assertStatus(() -> s.read(bus.ramBase(), (1 << 20) + 1), Status.Code.RESOURCE_EXHAUSTED,
                "exceeds the maximum DMA length of 1048576 bytes");
        assertStatus(() -> s.write(bus.ramBase(), new byte[(1 << 20) + 1]), Status.Code.RESOURCE_EXHAUSTED,
                "data length 1048577 exceeds");
        assertThat(s.read(bus.ramBase(), 1 << 20).isOk()).as("exactly the limit is fine").isTrue();
    }

    @Test
    void malformedRequestsAreInvalidArgumentNamingTheField() {
        DmaGrpc.DmaBlockingStub raw = DmaGrpc.newBlockingStub(client.channel());
        assertStatus(() -> raw.attach(AttachRequest.newBuilder().setIommu("smmu0").build()),
                Status.Code.INVALID_ARGUMENT, "name must be 1 to 64 printable characters");
        assertStatus(() -> raw.attach(AttachRequest.newBuilder().setName("x\n").setIommu("smmu0").build()),
                Status.Code.INVALID_ARGUMENT, "name must be");
        assertStatus(() -> raw.attach(AttachRequest.newBuilder().setName("x").build()),
                Status.Code.INVALID_ARGUMENT, "iommu is required");
        assertStatus(() -> raw.attach(AttachRequest.newBuilder().setName("x").setIommu("smmu9").build()),
                Status.Code.NOT_FOUND, "iommu 'smmu9' not found (instances: [smmu0, dmar0])");
        assertStatus(() -> raw.attach(AttachRequest.newBuilder().setName("x").setIommu("smmu0")
                .setStreamId(1 << 16).build()), Status.Code.OUT_OF_RANGE, "does not fit in the 16-bit stream id");
        AttachReply a = raw.attach(AttachRequest.newBuilder().setName("x").setIommu("smmu0").setStreamId(9).build());
        assertStatus(() -> raw.read(DmaReadRequest.newBuilder().setSessionId(a.getSessionId()).setIova(bus.ramBase())
                .build()), Status.Code.INVALID_ARGUMENT, "length must be at least 1");
        assertStatus(() -> raw.write(DmaWriteRequest.newBuilder().setSessionId(a.getSessionId())
                .setIova(bus.ramBase()).build()), Status.Code.INVALID_ARGUMENT, "data length must be at least 1");
        assertStatus(() -> raw.read(DmaReadRequest.newBuilder().setSessionId(a.getSessionId()).setIova(-16)
                .setLength(32).build()), Status.Code.OUT_OF_RANGE, "wraps past 2^64");
        assertStatus(() -> raw.read(DmaReadRequest.newBuilder().setSessionId(a.getSessionId()).setSubstreamId(1)
                .setIova(bus.ramBase()).setLength(4).build()), Status.Code.FAILED_PRECONDITION, "substreams=false");
        assertStatus(() -> raw.read(DmaReadRequest.newBuilder().setSessionId(0).setIova(bus.ramBase())
                .setLength(4).build()), Status.Code.NOT_FOUND, "session_id 0x0");
    }

    @Test
    void substreamIdsMustFitTheInstance() {
        DmaSession s = client.attach("pasid-user", "dmar0", 0x200, true);
        long iova = bus.ramBase();
        assertThat(s.read(iova, 8, DmaOptions.DEFAULT.withSubstream(5)).isOk()).isTrue();
        assertStatus(() -> s.read(iova, 8, DmaOptions.DEFAULT.withSubstream(1 << 20)), Status.Code.OUT_OF_RANGE,
                "substream_id 1048576 does not fit");
    }

    @Test
    void gbpaAbortIsAFaultReplyNotAnRpcError() {
        DmaSession s = client.attach("nic", "smmu0", 1);
        bus.machine.iommu("smmu0").mmioWrite(0x44, 4, (1L << 31) | (1L << 20) | 0x1000);
        DmaResult r = s.read(bus.ramBase(), 64);
        assertThat(r.faulted()).isTrue();
        assertThat(r.fault().getKind()).isEqualTo(FaultKind.ABORTED);
        assertThat(r.fault().getAddress()).isEqualTo(bus.ramBase());
        assertThat(r.fault().getBytesDone()).isZero();
        assertThat(r.fault().getDescription()).contains("GBPA");
        assertThat(s.write(bus.ramBase(), new byte[8]).fault().getKind()).isEqualTo(FaultKind.ABORTED);
    }

    @Test
    void dmaRunningOffTheEndOfRamStopsAtTheFirstByteThatIsNotRam() throws Exception {
        DmaSession s = client.attach("nic", "smmu0", 1);
        long end = bus.ramEnd();
        byte[] data = random(200, 2);
        DmaResult w = s.write(end - 100, data);
        assertThat(w.faulted()).isTrue();
        assertThat(w.fault().getKind()).isEqualTo(FaultKind.EXTERNAL_ABORT);
        assertThat(w.fault().getAddress()).isEqualTo(end);
        assertThat(w.fault().getBytesDone()).isEqualTo(100);
        byte[] written = new byte[100];
        bus.machine.memory().read(end - 100, written, 0, 100);
        assertThat(written).as("the bytes before the abort were written")
                .isEqualTo(java.util.Arrays.copyOf(data, 100));
        DmaResult r = s.read(end - 100, 200);
        assertThat(r.fault().getBytesDone()).isEqualTo(100);
        assertThat(r.data().toByteArray()).isEqualTo(written);
    }

    @Test
    void enabledSmmuWithoutAStreamTableGivesAnArchitectedFault() {
        DmaSession s = client.attach("nic", "smmu0", 1);
        bus.machine.iommu("smmu0").mmioWrite(0x20, 4, 1); // CR0.SMMUEN with STRTAB_BASE_CFG.LOG2SIZE = 0
        DmaResult r = s.read(bus.ramBase(), 8);
        assertThat(r.fault().getKind()).isEqualTo(FaultKind.BAD_CONFIGURATION);
        assertThat(r.fault().getCode()).as("C_BAD_STREAMID").isEqualTo(0x02);
        assertThat(r.fault().getDescription()).contains("C_BAD_STREAMID");
    }

    @Test
    void enabledVtdTranslationWithoutARootTableFaults() {
        DmaSession s = client.attach("disk", "dmar0", 1);
        bus.machine.iommu("dmar0").mmioWrite(0x18, 4, 1L << 31); // GCMD.TE, no root table was ever set (address 0)
        DmaResult r = s.read(bus.ramBase(), 8);
        assertThat(r.faulted()).as("a fault is a result, not an RPC error").isTrue();
        assertThat(r.fault().getKind()).isEqualTo(FaultKind.EXTERNAL_ABORT);
        assertThat(r.fault().getCode()).as("error accessing the root entry").isEqualTo(0x8);
    }

    @Test
    void closingAClientConnectionReleasesItsSessions() throws Exception {
        ManagedChannel ch = bus.channel();
        DmaClient.over(ch).attach("gone", "smmu0", 5);
        assertThat(bus.server.liveSessions()).isEqualTo(1);
        ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        awaitLiveSessions(0);
        assertThat(client.attach("again", "smmu0", 5).streamId()).isEqualTo(5);
    }

    @Test
    void theSessionLimitIsResourceExhausted() throws Exception {
        bus.close();
        bus = new BusFixture(MachineConfig.defaults().withLimits(new Limits(1 << 20, (1 << 20) + Limits.MESSAGE_OVERHEAD,
                1 << 20, 2, 16)));
        client = bus.client();
        client.attach("a", "smmu0", 1);
        DmaSession b = client.attach("b", "smmu0", 2);
        assertStatus(() -> client.attach("c", "smmu0", 3), Status.Code.RESOURCE_EXHAUSTED, "the limit is 2");
        b.close();
        assertThat(client.attach("c", "smmu0", 3).streamId()).isEqualTo(3);
    }

    @Test
    void pipelinedTransferMatchesEveryReplyToItsRequest() throws Exception {
        DmaSession s = client.attach("engine", "smmu0", 2);
        long base = bus.ramBase() + 0x40_0000;
        int n = 2000;
        List<CompletableFuture<DmaResult>> writes = new ArrayList<>();
        List<CompletableFuture<DmaResult>> reads = new ArrayList<>();
        try (Transfer t = s.openTransfer(32)) {
            for (int i = 0; i < n; i++) {
                writes.add(t.write(base + 64L * i, ByteString.copyFrom(random(64, i))));
            }
            for (int i = 0; i < n; i++) {
                reads.add(t.read(base + 64L * i, 64));
            }
            assertThat(t.inFlight()).isLessThanOrEqualTo(32);
        }
        for (int i = 0; i < n; i++) {
            assertThat(writes.get(i).get().isOk()).isTrue();
            assertThat(reads.get(i).get().data().toByteArray()).isEqualTo(random(64, i));
        }
    }

    @Test
    void aBadRequestInATransferFailsOnlyThatRequest() throws Exception {
        DmaSession s = client.attach("engine", "smmu0", 2);
        StreamRecorder<TransferReply> recorder = new StreamRecorder<>();
        StreamObserver<TransferRequest> req = DmaGrpc.newStub(client.channel()).transfer(recorder);
        long iova = bus.ramBase();
        req.onNext(TransferRequest.newBuilder().setTag(10).setSessionId(s.id()).setOp(DmaOp.READ).setIova(iova)
                .setLength(8).build());
        req.onNext(TransferRequest.newBuilder().setTag(11).setSessionId(s.id()).setIova(iova).setLength(8).build());
        req.onNext(TransferRequest.newBuilder().setTag(12).setSessionId(s.id()).setOp(DmaOp.READ).setIova(iova)
                .setLength(8).setData(ByteString.copyFromUtf8("no")).build());
        req.onNext(TransferRequest.newBuilder().setTag(13).setSessionId(s.id()).setOp(DmaOp.READ).setStreamId(9)
                .setIova(iova).setLength(8).build());
        req.onNext(TransferRequest.newBuilder().setTag(14).setSessionId(12345).setOp(DmaOp.READ).setIova(iova)
                .setLength(8).build());
        req.onNext(TransferRequest.newBuilder().setTag(15).setSessionId(s.id()).setOp(DmaOp.WRITE).setIova(iova)
                .setData(ByteString.copyFromUtf8("fine")).build());
        req.onCompleted();
        assertThat(recorder.end(10)).isEqualTo(Status.OK);
        List<TransferReply> replies = recorder.messages();
        assertThat(replies).extracting(TransferReply::getTag).containsExactly(10L, 11L, 12L, 13L, 14L, 15L);
        assertThat(replies.get(0).hasError()).isFalse();
        assertThat(replies.get(0).getData().size()).isEqualTo(8);
        assertThat(replies.get(1).getError().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT.value());
        assertThat(replies.get(1).getError().getMessage()).contains("op must be READ or WRITE (tag 11)");
        assertThat(replies.get(2).getError().getMessage()).contains("data must be empty for a READ");
        assertThat(replies.get(3).getError().getCode()).isEqualTo(Status.Code.PERMISSION_DENIED.value());
        assertThat(replies.get(4).getError().getCode()).isEqualTo(Status.Code.NOT_FOUND.value());
        assertThat(replies.get(5).hasError()).isFalse();
    }

    @Test
    void transferErrorsSurfaceAsTheStatusAUnaryCallWouldGive() throws Exception {
        DmaSession s = client.attach("engine", "smmu0", 2);
        try (Transfer t = s.openTransfer(4)) {
            CompletableFuture<DmaResult> bad = t.read(bus.ramBase(), 0);
            CompletableFuture<DmaResult> good = t.read(bus.ramBase(), 4);
            assertThatThrownBy(bad::get).isInstanceOf(ExecutionException.class)
                    .cause().isInstanceOf(StatusRuntimeException.class)
                    .hasMessageContaining("INVALID_ARGUMENT").hasMessageContaining("length must be at least 1");
            assertThat(good.get().isOk()).isTrue();
        }
    }

    @Test
    void shutdownEndsTransferStreamsAndRefusesNewDma() throws Exception {
        DmaSession s = client.attach("engine", "smmu0", 2);
        LinkedBlockingQueue<Object> events = new LinkedBlockingQueue<>();
        StreamObserver<TransferRequest> req = DmaGrpc.newStub(client.channel()).transfer(new StreamObserver<>() {
            @Override
            public void onNext(TransferReply r) {
                events.add(r);
            }

            @Override
            public void onError(Throwable t) {
                events.add(t);
            }

            @Override
            public void onCompleted() {
                events.add("completed");
            }
        });
        req.onNext(TransferRequest.newBuilder().setTag(1).setSessionId(s.id()).setOp(DmaOp.READ)
                .setIova(bus.ramBase()).setLength(8).build());
        assertThat(events.poll(10, TimeUnit.SECONDS)).isInstanceOf(TransferReply.class);
        bus.server.shutdown(Duration.ofSeconds(5));
        Object end = events.poll(10, TimeUnit.SECONDS);
        assertThat(end).isInstanceOf(StatusRuntimeException.class);
        assertThat(((StatusRuntimeException) end).getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(((StatusRuntimeException) end).getStatus().getDescription()).contains("shutting down");
    }

    private void awaitLiveSessions(int n) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (bus.server.liveSessions() != n) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("live sessions stayed at " + bus.server.liveSessions() + ", expected " + n);
            }
            Thread.sleep(5);
        }
    }
}
