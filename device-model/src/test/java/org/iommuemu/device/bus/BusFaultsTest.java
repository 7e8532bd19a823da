package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.iommuemu.device.bus.BusFixture.assertStatus;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.Transfer;
import org.iommuemu.proto.v1.AddressRange;
import org.iommuemu.proto.v1.ClearFaultsRequest;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.DmaOp;
import org.iommuemu.proto.v1.DmaReadRequest;
import org.iommuemu.proto.v1.FaultInjectionGrpc;
import org.iommuemu.proto.v1.FaultParams;
import org.iommuemu.proto.v1.FaultSpec;
import org.iommuemu.proto.v1.FaultTarget;
import org.iommuemu.proto.v1.FaultTrigger;
import org.iommuemu.proto.v1.IdRange;
import org.iommuemu.proto.v1.InjectRequest;
import org.iommuemu.proto.v1.InjectionKind;
import org.iommuemu.proto.v1.ListFaultsReply;
import org.iommuemu.proto.v1.ListFaultsRequest;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.TransferReply;
import org.iommuemu.proto.v1.TransferRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The bus fault kinds, observed by clients over the bus. */
class BusFaultsTest {
    private BusFixture bus;
    private FaultInjectionGrpc.FaultInjectionBlockingStub faults;

    @BeforeEach
    void setUp() throws Exception {
        bus = new BusFixture();
        faults = FaultInjectionGrpc.newBlockingStub(bus.channel());
    }

    @AfterEach
    void tearDown() {
        bus.close();
    }

    private long inject(FaultSpec.Builder spec) {
        return faults.inject(InjectRequest.newBuilder().setSpec(spec).build()).getFaultId();
    }

    private void clear(long id) {
        faults.clear(ClearFaultsRequest.newBuilder().setFaultId(id).build());
    }

    private static FaultSpec.Builder spec(InjectionKind kind, String iommu) {
        return FaultSpec.newBuilder().setKind(kind).setTarget(FaultTarget.newBuilder().setIommu(iommu));
    }

    private static FaultTarget.Builder stream(String iommu, int sid) {
        return FaultTarget.newBuilder().setIommu(iommu).setStreamIds(IdRange.newBuilder().setFirst(sid).setLast(sid));
    }

    private static byte[] pattern(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (seed + 7 * i);
        }
        return b;
    }

    private byte[] ram(long pa, int n) {
        byte[] b = new byte[n];
        try {
            bus.machine.memory().read(pa, b, 0, n);
        } catch (org.iommuemu.core.memory.MemoryAccessException e) {
            throw new AssertionError(e);
        }
        return b;
    }

    private static StatusRuntimeException statusOf(Throwable t) {
        Throwable c = t instanceof ExecutionException ? t.getCause() : t;
        while (c != null && !(c instanceof StatusRuntimeException)) {
            c = c.getCause();
        }
        assertThat(c).as("a gRPC status in " + t).isInstanceOf(StatusRuntimeException.class);
        return (StatusRuntimeException) c;
    }

    // --- BUS_STREAM_CUT

    @Test
    void aCutBusStreamReleasesTheSessionAndItsStreamIdIsReusable() throws Exception {
        cutStream(bus.machine, bus.server, bus.client(), bus.client());
    }

    @Test
    void aCutBusStreamOverNettyReleasesTheSessionAndItsStreamIdIsReusable() throws Exception {
        Machine machine = new Machine(MachineConfig.defaults());
        try (BusServer server = BusServer.netty(machine, "127.0.0.1", 0).start()) {
            ManagedChannel first = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
            ManagedChannel second = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
            try {
                faults = FaultInjectionGrpc.newBlockingStub(second);
                cutStream(machine, server, DmaClient.over(first), DmaClient.over(second));
            } finally {
                first.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
                second.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    private void cutStream(Machine machine, BusServer server, DmaClient client, DmaClient newcomer)
            throws Exception {
        long base = machine.memory().regions().get(0).base() + 0x10_0000;
        DmaSession s = client.attach("nic", "smmu0", 0x42);
        DmaSession bystander = client.attach("disk", "smmu0", 0x43);
        assertThat(server.liveSessions()).isEqualTo(2);
        long id = inject(FaultSpec.newBuilder().setKind(InjectionKind.BUS_STREAM_CUT).setTarget(stream("smmu0", 0x42))
                .setTrigger(FaultTrigger.newBuilder().setSkipFirst(2)));

        List<CompletableFuture<DmaResult>> writes = new ArrayList<>();
        Transfer t = s.openTransfer(1);
        for (int i = 0; i < 2; i++) {
            writes.add(t.write(base + 64L * i, ByteString.copyFrom(pattern(64, i + 1))));
            assertThat(writes.get(i).get(10, TimeUnit.SECONDS).isOk()).isTrue();
        }
        CompletableFuture<DmaResult> third = t.write(base + 128, ByteString.copyFrom(pattern(64, 3)));
        assertThatThrownBy(() -> third.get(10, TimeUnit.SECONDS)).satisfies(e -> {
            StatusRuntimeException st = statusOf(e);
            assertThat(st.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
            assertThat(st.getStatus().getDescription()).contains("injected fault " + id, "BUS_STREAM_CUT",
                    "request tag 3");
        });
        t.close();

        byte[] untouched = new byte[64];
        machine.memory().read(base + 128, untouched, 0, 64);
        assertThat(untouched).as("the request the stream was cut at was not performed").isEqualTo(new byte[64]);
        assertThat(server.liveSessions()).as("the connection's sessions were released, as on a vanished client")
                .isZero();
        assertThat(machine.claims().holder("smmu0", 0x42)).isNull();
        assertThat(machine.claims().holder("smmu0", 0x43)).isNull();
        assertStatus(() -> s.read(base, 8), Status.Code.NOT_FOUND, "is not a live session");
        assertStatus(() -> bystander.read(base, 8), Status.Code.NOT_FOUND, "is not a live session");

        ListFaultsReply listed = faults.list(ListFaultsRequest.getDefaultInstance());
        assertThat(listed.getFaults(0).getFires()).isEqualTo(1);
        assertThat(listed.getFaults(0).getOpportunities()).isEqualTo(3);
        assertThat(listed.getRecordsList()).singleElement().satisfies(r -> {
            assertThat(r.getKind()).isEqualTo(InjectionKind.BUS_STREAM_CUT);
            assertThat(r.getIommu()).isEqualTo("smmu0");
            assertThat(r.getDetail()).contains("Dma/Transfer", "stream 0x42", "request tag 3");
        });

        // a new client takes the same stream id and runs DMA; the fault still strikes its streams until cleared
        DmaSession again = newcomer.attach("nic-again", "smmu0", 0x42);
        assertThat(server.liveSessions()).isEqualTo(1);
        assertThat(again.write(base + 256, pattern(16, 9)).isOk()).isTrue();
        assertThat(again.read(base + 256, 16).data().toByteArray()).isEqualTo(pattern(16, 9));
        clear(id);
        try (Transfer t2 = again.openTransfer(4)) {
            List<CompletableFuture<DmaResult>> rs = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                rs.add(t2.read(base + 64L * (i % 2), 64));
            }
            for (int i = 0; i < 8; i++) {
                assertThat(rs.get(i).get(10, TimeUnit.SECONDS).data().toByteArray()).isEqualTo(pattern(64, i % 2 + 1));
            }
        }
        assertThat(server.liveSessions()).isEqualTo(1);
        assertThat(faults.list(ListFaultsRequest.getDefaultInstance()).getRecordsCount()).as("no more cuts")
                .isEqualTo(1);
    }

    @Test
    void aStreamCutStrikesOnlyItsStreamAndInstance() throws Exception {
        DmaSession other = bus.client().attach("other", "smmu0", 0x50);
        DmaSession onVtd = bus.client().attach("vtd", "dmar0", 0x42);
        inject(FaultSpec.newBuilder().setKind(InjectionKind.BUS_STREAM_CUT).setTarget(stream("smmu0", 0x42)));
        long base = bus.ramBase() + 0x20_0000;
        for (DmaSession s : List.of(other, onVtd)) {
            try (Transfer t = s.openTransfer(2)) {
                assertThat(t.write(base, ByteString.copyFrom(pattern(8, 1))).get(10, TimeUnit.SECONDS).isOk())
                        .isTrue();
            }
        }
        assertThat(bus.server.liveSessions()).isEqualTo(2);
        assertThat(faults.list(ListFaultsRequest.getDefaultInstance()).getFaults(0).getOpportunities()).isZero();
    }

    // --- BUS_RPC_UNAVAILABLE

    @Test
    void anUnavailableCallHasNoSideEffectAndStopsOnceCleared() throws Exception {
        DmaSession s = bus.client().attach("nic", "smmu0", 0x42);
        DmaSession onVtd = bus.client().attach("vtd", "dmar0", 0x42);
        long pa = bus.ramBase() + 0x30_0000;
        long id = inject(FaultSpec.newBuilder().setKind(InjectionKind.BUS_RPC_UNAVAILABLE)
                .setTarget(FaultTarget.newBuilder().setIommu("smmu0").addMethods("Dma/Write")));
        assertStatus(() -> s.write(pa, pattern(32, 5)), Status.Code.UNAVAILABLE,
                "injected fault " + id + " (BUS_RPC_UNAVAILABLE): iommuemu.v1.Dma/Write was not carried out");
        assertThat(ram(pa, 32)).as("not carried out").isEqualTo(new byte[32]);
        assertThat(s.read(pa, 4).isOk()).as("another method is not struck").isTrue();
        assertThat(onVtd.write(pa + 64, pattern(4, 1)).isOk()).as("another instance is not struck").isTrue();
        assertThat(faults.list(ListFaultsRequest.getDefaultInstance()).getFaults(0).getFires()).isEqualTo(1);

        clear(id);
        assertThat(s.write(pa, pattern(32, 5)).isOk()).isTrue();
        assertThat(ram(pa, 32)).isEqualTo(pattern(32, 5));
    }

    @Test
    void anUnavailableAttachClaimsNoStreamId() {
        DmaClient c = bus.client();
        long id = inject(FaultSpec.newBuilder().setKind(InjectionKind.BUS_RPC_UNAVAILABLE).setTarget(stream("smmu0", 7))
                .setTrigger(FaultTrigger.newBuilder().setCount(1)));
        assertStatus(() -> c.attach("a", "smmu0", 7), Status.Code.UNAVAILABLE, "injected fault " + id);
        assertThat(bus.server.liveSessions()).isZero();
        assertThat(bus.machine.claims().holder("smmu0", 7)).isNull();
        assertThat(c.attach("a", "smmu0", 7).streamId()).as("count 1: the retry goes through").isEqualTo(7);
    }

    @Test
    void callsAboutNoInstanceAreStruckOnlyByFaultsForEveryInstanceAndFaultInjectionNever() {
        MachineGrpc.MachineBlockingStub cpu = bus.cpu();
        long forSmmu = inject(FaultSpec.newBuilder().setKind(InjectionKind.BUS_RPC_UNAVAILABLE)
                .setTarget(FaultTarget.newBuilder().setIommu("smmu0").addMethods("Machine/Describe")));
        assertThat(cpu.describe(DescribeRequest.getDefaultInstance()).getIommusCount()).isEqualTo(2);
        long everywhere = inject(FaultSpec.newBuilder().setKind(InjectionKind.BUS_RPC_UNAVAILABLE));
        assertStatus(() -> cpu.describe(DescribeRequest.getDefaultInstance()), Status.Code.UNAVAILABLE,
                "injected fault " + everywhere);
        assertStatus(() -> TelemetryGrpc.newBlockingStub(bus.channel()).stats(StatsRequest.getDefaultInstance()),
                Status.Code.UNAVAILABLE, "BUS_RPC_UNAVAILABLE");
        // the FaultInjection service itself is never struck: faults can always be listed and cleared
        assertThat(faults.list(ListFaultsRequest.getDefaultInstance()).getFaultsCount()).isEqualTo(2);
        assertThat(faults.clear(ClearFaultsRequest.newBuilder().setAll(true).build()).getClearedList())
                .containsExactly(forSmmu, everywhere);
        assertThat(cpu.describe(DescribeRequest.getDefaultInstance()).getIommusCount()).isEqualTo(2);
    }

    @Test
    void anUnavailableTransferRequestFailsAloneAndIsNotPerformed() throws Exception {
        DmaSession s = bus.client().attach("nic", "smmu0", 0x42);
        long pa = bus.ramBase() + 0x31_0000;
        long id = inject(FaultSpec.newBuilder().setKind(InjectionKind.BUS_RPC_UNAVAILABLE)
                .setTarget(stream("smmu0", 0x42).addMethods("Dma/Transfer"))
                .setTrigger(FaultTrigger.newBuilder().setSkipFirst(1).setCount(1)));
        try (Transfer t = s.openTransfer(4)) {
            CompletableFuture<DmaResult> a = t.write(pa, ByteString.copyFrom(pattern(8, 1)));
            CompletableFuture<DmaResult> b = t.write(pa + 8, ByteString.copyFrom(pattern(8, 2)));
            CompletableFuture<DmaResult> c = t.write(pa + 16, ByteString.copyFrom(pattern(8, 3)));
            assertThat(a.get(10, TimeUnit.SECONDS).isOk()).isTrue();
            assertThatThrownBy(() -> b.get(10, TimeUnit.SECONDS)).satisfies(e -> {
                assertThat(statusOf(e).getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
                assertThat(statusOf(e).getStatus().getDescription()).contains("injected fault " + id);
            });
            assertThat(c.get(10, TimeUnit.SECONDS).isOk()).as("the stream goes on").isTrue();
        }
        assertThat(ram(pa + 8, 8)).as("the refused request was not performed").isEqualTo(new byte[8]);
        assertThat(ram(pa + 16, 8)).isEqualTo(pattern(8, 3));
        assertThat(bus.server.liveSessions()).isEqualTo(1);
    }

    // --- BUS_REPLY_DELAY

    @Test
    void aDelayedReplyMissesADeadlineThatItMakesOnceCleared() {
        DmaSession s = bus.client().attach("nic", "smmu0", 0x42);
        long pa = bus.ramBase() + 0x32_0000;
        ManagedChannel ch = bus.channel();
        DmaGrpc.DmaBlockingStub raw = DmaGrpc.newBlockingStub(ch);
        DmaSession mine = DmaClient.over(ch).attach("raw", "smmu0", 0x44);
        long id = inject(FaultSpec.newBuilder().setKind(InjectionKind.BUS_REPLY_DELAY)
                .setTarget(FaultTarget.newBuilder().setIommu("smmu0").addMethods("Dma/Read")
                        .setStreamIds(IdRange.newBuilder().setFirst(0x44).setLast(0x44)))
                .setParams(FaultParams.newBuilder().setWallDelayMs(4000)));
        DmaReadRequest read = DmaReadRequest.newBuilder().setSessionId(mine.id()).setIova(pa).setLength(8).build();
        assertStatus(() -> raw.withDeadlineAfter(1500, TimeUnit.MILLISECONDS).read(read),
                Status.Code.DEADLINE_EXCEEDED, "");
        assertThat(s.read(pa, 8).isOk()).as("another stream is not delayed").isTrue();
        ListFaultsReply listed = faults.list(ListFaultsRequest.getDefaultInstance());
        assertThat(listed.getFaults(0).getFires()).isEqualTo(1);
        assertThat(listed.getRecords(0).getDetail()).contains("Dma/Read", "stream 0x44");

        clear(id);
        assertThat(raw.withDeadlineAfter(1500, TimeUnit.MILLISECONDS).read(read).hasFault()).isFalse();
    }

    @Test
    void aDelayedTransferReplyHoldsTheStreamInOrderAndItsWriteIsDone() throws Exception {
        DmaSession s = bus.client().attach("nic", "smmu0", 0x42);
        long pa = bus.ramBase() + 0x33_0000;
        LinkedBlockingQueue<Object> events = new LinkedBlockingQueue<>();
        ManagedChannel ch = bus.channel();
        DmaSession mine = DmaClient.over(ch).attach("mine", "smmu0", 0x45);
        long id = inject(FaultSpec.newBuilder().setKind(InjectionKind.BUS_REPLY_DELAY)
                .setTarget(stream("smmu0", 0x45)).setParams(FaultParams.newBuilder().setWallDelayMs(4000))
                .setTrigger(FaultTrigger.newBuilder().setSkipFirst(1).setCount(1)));
        var stream = DmaGrpc.newStub(ch).withDeadlineAfter(1500, TimeUnit.MILLISECONDS)
                .transfer(new io.grpc.stub.StreamObserver<TransferReply>() {
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
        for (int i = 1; i <= 3; i++) {
            stream.onNext(TransferRequest.newBuilder().setTag(i).setSessionId(mine.id()).setOp(DmaOp.WRITE)
                    .setIova(pa + 8L * i).setData(ByteString.copyFrom(pattern(8, i))).build());
        }
        assertThat(events.poll(10, TimeUnit.SECONDS)).isInstanceOfSatisfying(TransferReply.class,
                r -> assertThat(r.getTag()).isEqualTo(1));
        assertThat(events.poll(10, TimeUnit.SECONDS)).as("replies 2 and 3 are held past the deadline")
                .isInstanceOfSatisfying(StatusRuntimeException.class,
                        e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.DEADLINE_EXCEEDED));
        for (int i = 1; i <= 3; i++) {
            assertThat(ram(pa + 8L * i, 8)).as("only the reply is held: write " + i + " was done")
                    .isEqualTo(pattern(8, i));
        }
        assertThat(s.read(pa, 8).isOk()).as("another stream is not delayed").isTrue();
        assertThat(faults.list(ListFaultsRequest.getDefaultInstance()).getRecords(0).getDetail())
                .contains("Dma/Transfer", "stream 0x45", "reply to request tag 2");

        clear(id);
        inject(FaultSpec.newBuilder().setKind(InjectionKind.BUS_REPLY_DELAY).setTarget(stream("smmu0", 0x45))
                .setParams(FaultParams.newBuilder().setWallDelayMs(300)).setTrigger(FaultTrigger.newBuilder()
                        .setCount(1)));
        try (Transfer t = mine.openTransfer(2)) {
            CompletableFuture<DmaResult> first = t.read(pa + 8, 8);
            CompletableFuture<DmaResult> second = t.read(pa + 16, 8);
            assertThat(first.get(10, TimeUnit.SECONDS).data().toByteArray()).as("a held reply arrives later")
                    .isEqualTo(pattern(8, 1));
            assertThat(second.get(10, TimeUnit.SECONDS).data().toByteArray()).isEqualTo(pattern(8, 2));
        }
    }

    // --- BUS_DMA_READ_CORRUPT

    @Test
    void corruptReadDataFlipsTheBitInTheReplyOnlyAndStopsOnceCleared() throws Exception {
        DmaSession s = bus.client().attach("nic", "smmu0", 0x42);
        long pa = bus.ramBase() + 0x34_0000;
        byte[] data = pattern(16, 0x30);
        assertThat(s.write(pa, data).isOk()).isTrue();
        long id = inject(FaultSpec.newBuilder().setKind(InjectionKind.BUS_DMA_READ_CORRUPT)
                .setTarget(stream("smmu0", 0x42).setAddresses(AddressRange.newBuilder().setStart(pa).setEnd(pa + 1)))
                .setParams(FaultParams.newBuilder().setBit(10)));
        byte[] expected = data.clone();
        expected[1] ^= 1 << 2;
        assertThat(s.read(pa, 16).data().toByteArray()).as("bit 10: bit 2 of byte 1").isEqualTo(expected);
        assertThat(ram(pa, 16)).as("guest memory is unchanged").isEqualTo(data);
        try (Transfer t = s.openTransfer(2)) {
            assertThat(t.read(pa, 16).get(10, TimeUnit.SECONDS).data().toByteArray()).as("Transfer reads too")
                    .isEqualTo(expected);
        }
        assertThat(s.read(pa + 8, 8).data().toByteArray()).as("a read starting outside target.addresses")
                .isEqualTo(java.util.Arrays.copyOfRange(data, 8, 16));
        assertThat(s.read(pa, 1).data().toByteArray()).as("a read too short to hold bit 10 is no opportunity")
                .isEqualTo(new byte[] {data[0]});
        ListFaultsReply listed = faults.list(ListFaultsRequest.getDefaultInstance());
        assertThat(listed.getFaults(0).getFires()).isEqualTo(2);
        assertThat(listed.getFaults(0).getOpportunities()).isEqualTo(2);
        assertThat(listed.getRecords(0).getAddress()).isEqualTo(pa);
        var stats = TelemetryGrpc.newBlockingStub(bus.channel()).stats(StatsRequest.getDefaultInstance());
        assertThat(stats.getIommus(0).getIommu()).isEqualTo("smmu0");
        assertThat(stats.getIommus(0).getInjectedFaultsList()).singleElement().satisfies(c -> {
            assertThat(c.getName()).isEqualTo("BUS_DMA_READ_CORRUPT");
            assertThat(c.getCount()).isEqualTo(2);
        });

        clear(id);
        assertThat(s.read(pa, 16).data().toByteArray()).isEqualTo(data);
    }

    @Test
    void busSpecsWithoutAMeaningAreRefusedNamingTheField() {
        assertStatus(() -> inject(spec(InjectionKind.BUS_DMA_READ_CORRUPT, "smmu0")
                .setParams(FaultParams.newBuilder().setBit(64))), Status.Code.INVALID_ARGUMENT, "params.bit");
        assertStatus(() -> inject(spec(InjectionKind.BUS_STREAM_CUT, "smmu0")
                .setTarget(FaultTarget.newBuilder().setIommu("smmu0").addMethods("Dma/Read"))),
                Status.Code.INVALID_ARGUMENT, "target.methods");
        assertStatus(() -> inject(spec(InjectionKind.BUS_REPLY_DELAY, "smmu0")), Status.Code.INVALID_ARGUMENT,
                "params.wall_delay_ms");
        assertStatus(() -> inject(spec(InjectionKind.BUS_REPLY_DELAY, "smmu9")
                .setParams(FaultParams.newBuilder().setWallDelayMs(10))), Status.Code.NOT_FOUND, "smmu9");
        assertThat(faults.list(ListFaultsRequest.getDefaultInstance()).getFaultsList()).isEmpty();
    }
}
