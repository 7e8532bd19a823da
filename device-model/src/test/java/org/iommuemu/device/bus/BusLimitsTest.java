package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.bus.BusFixture.assertStatus;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.iommuemu.device.machine.Limits;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.DmaOp;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.MemWriteRequest;
import org.iommuemu.proto.v1.TransferReply;
import org.iommuemu.proto.v1.TransferRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Every bound of {@link Limits} over the bus: reported by Describe, and exceeding it is RESOURCE_EXHAUSTED naming the
 * limit (the Transfer read-ahead is held back by flow control instead) with nothing else affected. The global session
 * bound is {@code DmaServiceTest.theSessionLimitIsResourceExhausted}, the message size {@code NettyBusIT}, max RAM
 * {@code MachineConfigTest} and {@code IommuEmuTest}.
 */
class BusLimitsTest {
    private static final Limits SMALL = new Limits(8192, 8192 + Limits.MESSAGE_OVERHEAD, 4096, 16, 4,
            8L << 30, 2);

    private BusFixture bus;

    @AfterEach
    void tearDown() {
        if (bus != null) {
            bus.close();
        }
    }

    private void start(Limits limits) throws Exception {
        bus = new BusFixture(MachineConfig.defaults().withLimits(limits));
    }

    @Test
    void describeReportsEveryBound() throws Exception {
        start(SMALL);
        var l = bus.cpu().describe(DescribeRequest.getDefaultInstance()).getLimits();
        assertThat(l.getMaxDmaLength()).isEqualTo(8192);
        assertThat(l.getMaxMessageBytes()).isEqualTo(8192 + Limits.MESSAGE_OVERHEAD);
        assertThat(l.getMaxMemAccessLength()).isEqualTo(4096);
        assertThat(l.getMaxSessions()).isEqualTo(16);
        assertThat(l.getMaxTransferInFlight()).isEqualTo(4);
        assertThat(l.getMaxRamBytes()).isEqualTo(8L << 30);
        assertThat(l.getMaxSessionsPerConnection()).isEqualTo(2);
    }

    @Test
    void theDefaultsAreReportedToo() throws Exception {
        start(Limits.DEFAULTS);
        var l = bus.cpu().describe(DescribeRequest.getDefaultInstance()).getLimits();
        assertThat(l.getMaxRamBytes()).isEqualTo(64L << 30);
        assertThat(l.getMaxSessionsPerConnection()).isEqualTo(256);
    }

    @Test
    void oneConnectionCannotTakeMoreThanItsShareOfSessions() throws Exception {
        start(SMALL);
        DmaClient greedy = bus.client();
        DmaSession a = greedy.attach("a", "smmu0", 1);
        greedy.attach("b", "smmu0", 2);
        assertStatus(() -> greedy.attach("c", "smmu0", 3), Status.Code.RESOURCE_EXHAUSTED,
                "the limit is 2 (Machine.Describe limits.max_sessions_per_connection)");
        assertThat(bus.server.holdings().streamIds()).as("the refused attach claimed nothing").isEqualTo(2);

        DmaClient other = bus.client();
        assertThat(other.attach("c", "smmu0", 3).streamId()).as("other connections are not affected").isEqualTo(3);
        assertThat(a.write(bus.ramBase(), new byte[] {1, 2}).isOk()).as("nor the greedy one's sessions").isTrue();
        a.close();
        assertThat(greedy.attach("d", "smmu0", 4).streamId()).as("a detach frees a place").isEqualTo(4);
    }

    @Test
    void oversizeMemoryAccessesAreResourceExhaustedAndWriteNothing() throws Exception {
        start(SMALL);
        var cpu = bus.cpu();
        byte[] ones = new byte[4097];
        java.util.Arrays.fill(ones, (byte) 1);
        assertStatus(() -> cpu.memWrite(MemWriteRequest.newBuilder().setAddress(bus.ramBase())
                .setData(ByteString.copyFrom(ones)).build()), Status.Code.RESOURCE_EXHAUSTED,
                "data length 4097 exceeds the maximum of 4096 bytes (Machine.Describe limits.max_mem_access_length)");
        assertStatus(() -> cpu.memRead(MemReadRequest.newBuilder().setAddress(bus.ramBase()).setLength(4097)
                .build()), Status.Code.RESOURCE_EXHAUSTED, "limits.max_mem_access_length");
        assertThat(cpu.memRead(MemReadRequest.newBuilder().setAddress(bus.ramBase()).setLength(4096).build())
                .getData().toByteArray()).as("nothing was written").containsOnly(0);
    }

    @Test
    void anOversizeTransferOpFailsAloneWithResourceExhausted() throws Exception {
        start(SMALL);
        ManagedChannel ch = bus.channel();
        DmaSession s = DmaClient.over(ch).attach("engine", "smmu0", 7);
        StreamRecorder<TransferReply> replies = new StreamRecorder<>();
        StreamObserver<TransferRequest> req = DmaGrpc.newStub(ch).transfer(replies);
        req.onNext(TransferRequest.newBuilder().setTag(1).setSessionId(s.id()).setOp(DmaOp.READ)
                .setIova(bus.ramBase()).setLength(8193).build());
        req.onNext(TransferRequest.newBuilder().setTag(2).setSessionId(s.id()).setOp(DmaOp.WRITE)
                .setIova(bus.ramBase()).setData(ByteString.copyFrom(new byte[8193])).build());
        req.onNext(TransferRequest.newBuilder().setTag(3).setSessionId(s.id()).setOp(DmaOp.READ)
                .setIova(bus.ramBase()).setLength(8192).build());
        req.onCompleted();
        assertThat(replies.end(10).getCode()).isEqualTo(Status.Code.OK);
        TransferReply r1 = replies.next(0);
        TransferReply r2 = replies.next(0);
        TransferReply r3 = replies.next(0);
        assertThat(r1.getError().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED.value());
        assertThat(r1.getError().getMessage()).contains("length 8193 exceeds the maximum DMA length of 8192",
                "limits.max_dma_length");
        assertThat(r2.getError().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED.value());
        assertThat(r3.hasError()).isFalse();
        assertThat(r3.getData().size()).as("the stream goes on").isEqualTo(8192);
    }

    @Test
    void aTransferClientThatStopsReadingIsReadAheadAtMostMaxInFlightRequests() throws Exception {
        start(SMALL); // max_transfer_in_flight 4
        ManagedChannel ch = bus.channel();
        DmaSession s = DmaClient.over(ch).attach("flood", "smmu0", 9);
        AtomicReference<ClientCallStreamObserver<TransferRequest>> stream = new AtomicReference<>();
        LinkedBlockingQueue<TransferReply> replies = new LinkedBlockingQueue<>();
        DmaGrpc.newStub(ch).transfer(new ClientResponseObserver<TransferRequest, TransferReply>() {
            @Override
            public void beforeStart(ClientCallStreamObserver<TransferRequest> r) {
                r.disableAutoRequestWithInitial(0); // takes no reply until told
                stream.set(r);
            }

            @Override
            public void onNext(TransferReply r) {
                replies.add(r);
            }

            @Override
            public void onError(Throwable t) {
            }

            @Override
            public void onCompleted() {
            }
        });
        int n = 100;
        long base = bus.ramBase() + 0x10_0000;
        for (int i = 0; i < n; i++) {
            stream.get().onNext(TransferRequest.newBuilder().setTag(i).setSessionId(s.id()).setOp(DmaOp.WRITE)
                    .setIova(base + 8L * i).setData(ByteString.copyFrom(new byte[] {1, 1, 1, 1, 1, 1, 1, 1}))
                    .build());
        }
        awaitWritten(base, n, 4);
        Thread.sleep(200); // give a server that reads too far the chance to show it
        assertThat(written(base, n)).as("requests carried out while the client reads no reply").isEqualTo(4);

        stream.get().request(n);
        awaitWritten(base, n, n);
        assertThat(written(base, n)).isEqualTo(n);
        for (int i = 0; i < n; i++) {
            assertThat(replies.poll(10, TimeUnit.SECONDS).getTag()).isEqualTo(i);
        }
        stream.get().onCompleted();
    }

    private int written(long base, int n) throws org.iommuemu.core.memory.MemoryAccessException {
        int count = 0;
        for (int i = 0; i < n; i++) {
            if (bus.machine.memory().read64(base + 8L * i) != 0) {
                count++;
            }
        }
        return count;
    }

    private void awaitWritten(long base, int n, int wanted) throws Exception {
        for (int i = 0; i < 500 && written(base, n) < wanted; i++) {
            Thread.sleep(10);
        }
    }
}
