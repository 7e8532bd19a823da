package org.iommuemu.device.remote;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.Limits;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.proto.v1.DescribeReply;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MemReadReply;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.MemWriteRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Guest memory over the bus: byte order, one RPC per bulk access, local RAM checks, and how failures surface. */
class BusPhysicalMemoryTest {
    private static final long RAM_BASE = 0x8000_0000L;

    // a real machine on the in-process bus, with every request recorded
    private Machine machine;
    private BusServer server;
    private ManagedChannel channel;
    private final RpcLog log = new RpcLog();
    private BusPhysicalMemory mem;

    @BeforeEach
    void setUp() throws Exception {
        // a memory access limit that is not a multiple of 8: pieces must still not split a word
        Limits limits = new Limits(1 << 20, (1 << 20) + Limits.MESSAGE_OVERHEAD, 4100, 1024, 128);
        machine = new Machine(MachineConfig.defaults()
                .withRam(List.of(new RamRegion(RAM_BASE, 1 << 24), new RamRegion(RAM_BASE + (1 << 24), 1 << 24),
                        new RamRegion(0x1_0000_0000L, 1 << 20)))
                .withLimits(limits));
        String name = "bus-memory-" + UUID.randomUUID();
        server = BusServer.inProcess(machine, name).start();
        channel = InProcessChannelBuilder.forName(name).intercept(log).build();
        mem = new BusPhysicalMemory(MachineGrpc.newBlockingStub(channel));
        log.clear();
    }

    @AfterEach
    void tearDown() throws Exception {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.close();
    }

    @Test
    void scalarsAreLittleEndianBothWaysAndOneRpcEach() throws Exception {
        long pa = RAM_BASE + 0x1001; // unaligned on purpose: the interface allows it
        mem.write64(pa, 0x0102_0304_0506_0708L);
        assertThat(machine.memory().read8(pa)).isEqualTo(0x08);
        assertThat(machine.memory().read8(pa + 7)).isEqualTo(0x01);
        mem.write32(pa + 16, 0xCAFE_F00D);
        mem.write16(pa + 24, 0xBEEF);
        mem.write8(pa + 30, 0x5A);
        assertThat(machine.memory().read32(pa + 16)).isEqualTo(0xCAFE_F00D);
        assertThat(machine.memory().read16(pa + 24)).isEqualTo(0xBEEF);
        machine.memory().write64(RAM_BASE + 0x2000, 0xF0E1_D2C3_B4A5_9687L);
        assertThat(mem.read64(RAM_BASE + 0x2000)).isEqualTo(0xF0E1_D2C3_B4A5_9687L);
        assertThat(mem.read32(RAM_BASE + 0x2004)).isEqualTo(0xF0E1_D2C3);
        assertThat(mem.read16(RAM_BASE + 0x2002)).as("zero-extended").isEqualTo(0xB4A5);
        assertThat(mem.read8(RAM_BASE + 0x2007)).isEqualTo(0xF0);
        assertThat(mem.read8(pa + 30)).isEqualTo(0x5A);
        assertThat(log.of("MemWrite")).hasSize(4);
        assertThat(log.of("MemRead")).hasSize(5);
    }

    @Test
    void runsOfWordsAreOneRpcNotOnePerWord() throws Exception {
        long pa = RAM_BASE + 0x8000;
        long[] words = new long[64];
        for (int i = 0; i < words.length; i++) {
            words[i] = 0x1111_1111_1111_1111L * (i % 15) ^ (long) i << 56;
        }
        mem.write64s(pa, words, 0, words.length);
        long[] back = new long[words.length + 2];
        mem.read64s(pa, back, 1, words.length);
        assertThat(java.util.Arrays.copyOfRange(back, 1, words.length + 1)).isEqualTo(words);
        assertThat(machine.memory().read64(pa + 8 * 63)).isEqualTo(words[63]);

        long[] small = {0xFFFF_FFFFL, 0x1234_5678L, 0x8000_0001L, 0x0000_00FFL | 0xABCD_0000_0000L};
        mem.write32s(pa + 0x1004, small, 0, small.length);
        assertThat(machine.memory().read32(pa + 0x1008)).isEqualTo(0x1234_5678);
        assertThat(machine.memory().read32(pa + 0x1010)).as("only the low 32 bits").isEqualTo(0xFF);
        long[] smallBack = new long[4];
        mem.read32s(pa + 0x1004, smallBack, 0, 4);
        assertThat(smallBack).as("unsigned").containsExactly(0xFFFF_FFFFL, 0x1234_5678L, 0x8000_0001L, 0xFFL);

        assertThat(log.of("MemWrite")).as("one RPC per run").hasSize(2);
        assertThat(log.of("MemRead")).hasSize(2);
        assertThatThrownBy(() -> mem.read64s(pa + 4, back, 0, 1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> mem.write32s(pa + 2, small, 0, 1)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void longAccessesAreCutAtWholeWordsWithinTheServersLimit() throws Exception {
        assertThat(mem.maxBytesPerRpc()).as("4100 cut to a multiple of 8").isEqualTo(4096);
        long pa = RAM_BASE + 0x10_0000;
        byte[] data = new byte[10_000];
        new Random(7).nextBytes(data);
        mem.write(pa, data, 0, data.length);
        assertThat(log.of("MemWrite")).extracting(r -> ((MemWriteRequest) r).getAddress())
                .containsExactly(pa, pa + 4096, pa + 8192);
        byte[] back = new byte[data.length];
        mem.read(pa, back, 0, back.length);
        assertThat(back).isEqualTo(data);
        assertThat(log.of("MemRead")).extracting(r -> ((MemReadRequest) r).getLength())
                .containsExactly(4096L, 4096L, 10_000L - 8192);
        log.clear();
        mem.zero(pa + 8, 9000);
        assertThat(log.of("MemWrite")).hasSize(3);
        assertThat(machine.memory().read64(pa)).isEqualTo(mem.read64(pa)).isNotZero();
        assertThat(machine.memory().read64(pa + 8)).isZero();
        assertThat(machine.memory().read64(pa + 9000)).isZero();
        assertThat(machine.memory().read8(pa + 9008)).isEqualTo(data[9008] & 0xFF);
    }

    @Test
    void anAccessOutsideRamFailsLocallyWithoutAnRpc() throws Exception {
        long end = RAM_BASE + (2 << 24); // two adjacent regions: a range across their seam is RAM
        assertThat(mem.isRam(RAM_BASE + (1 << 24) - 8, 16)).isTrue();
        assertThat(mem.isRam(end - 8, 16)).isFalse();
        assertThat(mem.isRam(0x1_0000_0000L, 1 << 20)).isTrue();
        assertThat(mem.isRam(RAM_BASE, 0)).as("length 0").isFalse();
        assertThat(mem.isRam(-8, 16)).as("wraps").isFalse();
        assertThat(mem.regions()).isEqualTo(machine.memory().regions());
        log.clear();
        assertThatThrownBy(() -> mem.read64(end - 4)).isInstanceOf(MemoryAccessException.class)
                .satisfies(e -> assertThat(((MemoryAccessException) e).reason())
                        .isEqualTo(MemoryAccessException.Reason.NOT_RAM))
                .hasMessageContaining("8 byte(s) at 0x" + Long.toHexString(end - 4));
        assertThatThrownBy(() -> mem.write(end - 4, new byte[8], 0, 8)).isInstanceOf(MemoryAccessException.class);
        assertThatThrownBy(() -> mem.zero(0x10, 4)).isInstanceOf(MemoryAccessException.class);
        assertThatThrownBy(() -> mem.read64s(end - 8, new long[2], 0, 2)).isInstanceOf(MemoryAccessException.class);
        assertThatThrownBy(() -> mem.compareAndExchange64(end, 0, 1)).isInstanceOf(MemoryAccessException.class);
        assertThat(log.count()).as("no RPC for what the RAM map already refuses").isZero();
        assertThat(machine.memory().read32(end - 4)).as("nothing written").isZero();
    }

    @Test
    void compareAndExchangeReturnsTheWitness() throws Exception {
        long pa = RAM_BASE + 0x3000;
        machine.memory().write64(pa, 5);
        assertThat(mem.compareAndExchange64(pa, 6, 7)).isEqualTo(5);
        assertThat(machine.memory().read64(pa)).isEqualTo(5);
        assertThat(mem.compareAndExchange64(pa, 5, -1L)).isEqualTo(5);
        assertThat(machine.memory().read64(pa)).isEqualTo(-1L);
        assertThat(mem.compareAndSet64(pa, -1L, 0)).isTrue();
        assertThat(log.of("MemCompareExchange")).hasSize(3);
        assertThatThrownBy(() -> mem.compareAndExchange64(pa + 4, 0, 1))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not 8-byte aligned");
    }

    /** A stand-in server that answers MemRead as told: the mapping of statuses to exceptions. */
    private static final class FakeMachine implements AutoCloseable {
        volatile BiConsumer<MemReadRequest, StreamObserver<MemReadReply>> memRead;
        final Server server;
        final ManagedChannel channel;

        FakeMachine() throws Exception {
            String name = "fake-machine-" + UUID.randomUUID();
            server = InProcessServerBuilder.forName(name).addService(new MachineGrpc.MachineImplBase() {
                @Override
                public void describe(DescribeRequest request, StreamObserver<DescribeReply> responses) {
                    responses.onNext(DescribeReply.newBuilder()
                            .addRam(org.iommuemu.proto.v1.RamRegion.newBuilder().setBase(RAM_BASE).setSize(1 << 20))
                            .setLimits(org.iommuemu.proto.v1.Limits.newBuilder().setMaxMemAccessLength(4096))
                            .build());
                    responses.onCompleted();
                }

                @Override
                public void memRead(MemReadRequest request, StreamObserver<MemReadReply> responses) {
                    memRead.accept(request, responses);
                }
            }).build().start();
            channel = InProcessChannelBuilder.forName(name).build();
        }

        BusPhysicalMemory memory(Duration deadline) {
            MachineGrpc.MachineBlockingStub cpu = MachineGrpc.newBlockingStub(channel);
            return new BusPhysicalMemory(cpu, cpu.describe(DescribeRequest.getDefaultInstance()), deadline);
        }

        void answer(Status status) {
            memRead = (req, out) -> out.onError(status.asRuntimeException());
        }

        @Override
        public void close() throws Exception {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    @Test
    void aRefusalByAddressIsAMemoryFault() throws Exception {
        try (FakeMachine f = new FakeMachine()) {
            BusPhysicalMemory m = f.memory(Duration.ofSeconds(5));
            for (Status s : new Status[] {Status.OUT_OF_RANGE.withDescription("not all RAM"),
                Status.INVALID_ARGUMENT.withDescription("bad address")}) {
                f.answer(s);
                assertThatThrownBy(() -> m.read64(RAM_BASE + 0x100)).as(s.getCode().name())
                        .isInstanceOf(MemoryAccessException.class)
                        .satisfies(e -> assertThat(((MemoryAccessException) e).address()).isEqualTo(RAM_BASE + 0x100));
            }
        }
    }

    @Test
    void anyOtherFailureIsABusErrorNamingTheRpcAndAddress() throws Exception {
        try (FakeMachine f = new FakeMachine()) {
            BusPhysicalMemory m = f.memory(Duration.ofSeconds(5));
            f.answer(Status.UNAVAILABLE.withDescription("connection refused"));
            assertThatThrownBy(() -> m.read32(RAM_BASE + 0x40)).isInstanceOf(BusUnavailableException.class)
                    .hasMessage("Machine.MemRead at 0x80000040 failed: UNAVAILABLE: connection refused")
                    .hasCauseInstanceOf(io.grpc.StatusRuntimeException.class);
            f.answer(Status.PERMISSION_DENIED);
            assertThatThrownBy(() -> m.read(RAM_BASE, new byte[16], 0, 16))
                    .isInstanceOf(BusUnavailableException.class).hasMessageContaining("PERMISSION_DENIED");
        }
    }

    @Test
    void aServerThatDoesNotAnswerFailsTheAccessAtTheDeadline() throws Exception {
        try (FakeMachine f = new FakeMachine()) {
            BusPhysicalMemory m = f.memory(Duration.ofMillis(200));
            f.memRead = (req, out) -> { }; // never answers
            assertThatThrownBy(() -> m.read64(RAM_BASE)).isInstanceOf(BusUnavailableException.class)
                    .hasMessageContaining("Machine.MemRead at 0x80000000 failed: DEADLINE_EXCEEDED");
        }
    }

    @Test
    void aReplyOfTheWrongSizeIsABusError() throws Exception {
        try (FakeMachine f = new FakeMachine()) {
            BusPhysicalMemory m = f.memory(Duration.ofSeconds(5));
            f.memRead = (req, out) -> {
                out.onNext(MemReadReply.newBuilder().setData(ByteString.copyFrom(new byte[3])).build());
                out.onCompleted();
            };
            assertThatThrownBy(() -> m.read64(RAM_BASE)).isInstanceOf(BusUnavailableException.class)
                    .hasMessage("Machine.MemRead at 0x80000000 asked for 8 bytes and got 3");
        }
    }

    @Test
    void aServerThatReportsNoAccessLengthOrABadDeadlineIsRefusedAtOnce() {
        MachineGrpc.MachineBlockingStub cpu = MachineGrpc.newBlockingStub(channel);
        assertThatThrownBy(() -> new BusPhysicalMemory(cpu, DescribeReply.getDefaultInstance()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("max_mem_access_length 0");
        DescribeReply d = cpu.describe(DescribeRequest.getDefaultInstance());
        assertThatThrownBy(() -> new BusPhysicalMemory(cpu, d, Duration.ZERO))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("deadline must be positive");
    }
}
