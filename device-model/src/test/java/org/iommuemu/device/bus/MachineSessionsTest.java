package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.bus.BusFixture.assertStatus;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.util.concurrent.TimeUnit;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.Transfer;
import org.iommuemu.proto.v1.DmaSessionInfo;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.SessionsReply;
import org.iommuemu.proto.v1.SessionsRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** {@code Machine.Sessions}: the host's view of the DMA sessions and what each did. */
class MachineSessionsTest {
    private BusFixture bus;
    private MachineGrpc.MachineBlockingStub cpu;

    @BeforeEach
    void setUp() throws Exception {
        bus = new BusFixture();
        cpu = bus.cpu();
    }

    @AfterEach
    void tearDown() {
        bus.close();
    }

    private SessionsReply sessions() {
        return cpu.sessions(SessionsRequest.getDefaultInstance());
    }

    @Test
    void aSessionIsListedWithItsCountersWhileLiveAndAfterItDetached() throws Exception {
        assertThat(sessions().getLiveList()).isEmpty();
        assertThat(sessions().getLastSequence()).isZero();
        long base = bus.ramBase();
        try (DmaClient client = bus.client()) {
            DmaSession s = client.attach("copy0", "smmu0", 0x21);
            assertThat(s.write(base + 0x1000, new byte[100]).isOk()).isTrue();
            assertThat(s.read(base + 0x1000, 60).isOk()).isTrue();
            DmaResult fault = s.read(bus.ramEnd() + 0x1000, 16); // not RAM: an external abort, a normal reply
            assertThat(fault.faulted()).isTrue();
            try (Transfer t = s.openTransfer(4)) {
                t.write(base + 0x2000, ByteString.copyFrom(new byte[8])).get(5, TimeUnit.SECONDS);
                t.read(base + 0x2000, 8).get(5, TimeUnit.SECONDS);
            }
            SessionsReply live = sessions();
            assertThat(live.getLiveList()).hasSize(1);
            DmaSessionInfo i = live.getLive(0);
            assertThat(i.getName()).isEqualTo("copy0");
            assertThat(i.getIommu()).isEqualTo("smmu0");
            assertThat(i.getStreamId()).isEqualTo(0x21);
            assertThat(i.getLive()).isTrue();
            assertThat(i.getEndReason()).isEmpty();
            assertThat(i.getSequence()).isEqualTo(1);
            assertThat(live.getLastSequence()).isEqualTo(1);
            assertThat(i.getWrites()).isEqualTo(2);
            assertThat(i.getReads()).isEqualTo(3);
            assertThat(i.getBytes()).isEqualTo(100 + 60 + 8 + 8);
            assertThat(i.getFaults()).isEqualTo(1);
            s.close();
            SessionsReply after = sessions();
            assertThat(after.getLiveList()).isEmpty();
            assertThat(after.getEndedList()).hasSize(1);
            DmaSessionInfo e = after.getEnded(0);
            assertThat(e.getLive()).isFalse();
            assertThat(e.getEndReason()).isEqualTo("detached");
            assertThat(e.getBytes()).isEqualTo(176);
            assertThat(e.getReads() + e.getWrites()).isEqualTo(5);
        }
    }

    @Test
    void aClosedConnectionEndsItsSessionsAndFiltersSelectByInstanceAndSequence() throws Exception {
        ManagedChannel ch = bus.channel();
        DmaClient client = DmaClient.over(ch);
        client.attach("a", "smmu0", 1);
        client.attach("b", "dmar0", 2);
        assertThat(sessions().getLiveList()).extracting(DmaSessionInfo::getName).containsExactly("a", "b");
        assertThat(cpu.sessions(SessionsRequest.newBuilder().addIommus("dmar0").build()).getLiveList())
                .extracting(DmaSessionInfo::getName).containsExactly("b");
        assertThat(cpu.sessions(SessionsRequest.newBuilder().setAfterSequence(1).build()).getLiveList())
                .extracting(DmaSessionInfo::getName).containsExactly("b");
        ch.shutdownNow();
        ch.awaitTermination(5, TimeUnit.SECONDS);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!sessions().getLiveList().isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        SessionsReply r = sessions();
        assertThat(r.getLiveList()).isEmpty();
        assertThat(r.getEndedList()).extracting(DmaSessionInfo::getEndReason)
                .containsOnly("connection closed").hasSize(2);
        assertStatus(() -> cpu.sessions(SessionsRequest.newBuilder().addIommus("nope").build()),
                Status.Code.NOT_FOUND, "iommu 'nope' not found");
    }

    @Test
    void onlyTheMostRecentEndedSessionsAreKept() throws Exception {
        try (DmaClient client = bus.client()) {
            for (int i = 0; i < SessionRegistry.ENDED_KEPT + 10; i++) {
                client.attach("s" + i, "smmu0", 7).close();
            }
        }
        SessionsReply r = sessions();
        assertThat(r.getEndedList()).hasSize(SessionRegistry.ENDED_KEPT);
        assertThat(r.getEnded(0).getName()).isEqualTo("s10");
        assertThat(r.getLastSequence()).isEqualTo(SessionRegistry.ENDED_KEPT + 10);
    }
}
