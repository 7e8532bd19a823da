package org.iommuemu.device.masters;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import java.util.List;
import java.util.Random;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.masters.CompletionCode;
import org.iommuemu.dma.masters.Nic;
import org.iommuemu.dma.masters.NicDescriptor;
import org.iommuemu.proto.v1.FaultKind;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class NicTest {
    private static final int SID = 0x12;
    private MasterBus bus;
    private DmaSession session;

    @BeforeEach
    void setUp() throws Exception {
        bus = new MasterBus();
        session = bus.client.attach("nic0", MasterBus.SMMU, SID);
    }

    @AfterEach
    void tearDown() throws Exception {
        bus.close();
    }

    private static byte[] packet(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    private NicDescriptor descriptorAt(long pa) {
        return NicDescriptor.decode(bus.read(pa, NicDescriptor.SIZE));
    }

    @Test
    void receivesIntoPostedBuffersInBypassAndDropsWithoutThem() {
        long ram = bus.ramBase();
        long rxRing = ram + 0x1_0000;
        long txRing = ram + 0x1_1000;
        long bufs = ram + 0x2_0000;
        Nic nic = new Nic(session, rxRing, 4, txRing, 4, 9000, 1024, DmaOptions.DEFAULT); // chunked writes
        for (int i = 0; i < 3; i++) {
            bus.write(rxRing + 16L * i, NicDescriptor.post(bufs + 0x1000L * i, 2048).encode());
        }
        nic.rxDoorbell(3);
        byte[] p0 = packet(1500, 1);
        byte[] p1 = packet(60, 2);
        byte[] big = packet(3000, 3);

        assertThat(nic.receive(p0)).isEqualTo(Nic.RxOutcome.DELIVERED);
        assertThat(nic.receive(big)).isEqualTo(Nic.RxOutcome.DROPPED_TOO_SMALL);
        assertThat(nic.receive(p1)).isEqualTo(Nic.RxOutcome.DELIVERED);
        assertThat(nic.receive(p1)).isEqualTo(Nic.RxOutcome.DROPPED_NO_DESCRIPTOR);

        assertThat(bus.read(bufs, p0.length)).isEqualTo(p0);
        assertThat(bus.read(bufs + 0x1000, 16)).as("nothing written for a packet that does not fit")
                .isEqualTo(new byte[16]);
        assertThat(bus.read(bufs + 0x2000, p1.length)).isEqualTo(p1);
        assertThat(descriptorAt(rxRing)).isEqualTo(new NicDescriptor(bufs, 1500, CompletionCode.OK,
                FaultKind.FAULT_KIND_UNSPECIFIED));
        assertThat(descriptorAt(rxRing + 16)).isEqualTo(new NicDescriptor(bufs + 0x1000, 3000,
                CompletionCode.BUFFER_TOO_SMALL, FaultKind.FAULT_KIND_UNSPECIFIED));
        assertThat(descriptorAt(rxRing + 32).length()).isEqualTo(60);
        assertThat(nic.rxHead()).isEqualTo(3);
        assertThat(nic.counters()).isEqualTo(new Nic.Counters(2, 1560, 1, 1, 0, 0, 0, 0));
    }

    @Test
    void transmitsPostedPacketsInBypassAcrossTheRingEnd() {
        long ram = bus.ramBase();
        long txRing = ram + 0x1_1000;
        long bufs = ram + 0x2_0000;
        Nic nic = new Nic(session, ram + 0x1_0000, 4, txRing, 4, 9000, 4096, DmaOptions.DEFAULT);
        byte[][] packets = {packet(100, 1), packet(9000, 2), packet(1, 3), packet(700, 4), packet(64, 5)};
        int tail = 0;
        int sent = 0;
        for (int i = 0; i < packets.length; i++) {
            long buf = bufs + 0x4000L * i;
            bus.write(buf, packets[i]);
            bus.write(nic.txDescriptorAddress(tail), NicDescriptor.post(buf, packets[i].length).encode());
            tail = (tail + 1) % 4;
            if (i == 2 || i == 4) {
                List<ByteString> out = nic.transmit(tail);
                for (ByteString p : out) {
                    assertThat(p.toByteArray()).isEqualTo(packets[sent++]);
                }
            }
        }
        assertThat(sent).isEqualTo(5);
        assertThat(nic.txHead()).isEqualTo(tail);
        assertThat(descriptorAt(txRing + 16).code()).isEqualTo(CompletionCode.OK);
        assertThat(nic.counters().txPackets()).isEqualTo(5);
        assertThat(nic.counters().txBytes()).isEqualTo(100 + 9000 + 1 + 700 + 64);
    }

    @Test
    void throughStage1AnUnmappedBufferFaultsAndIsCounted() {
        Stage1 smmu = bus.stage1().addStream(SID);
        long ringsPa = smmu.alloc(4096);
        long bufPa = smmu.alloc(4096);
        long rxIova = 0x10_0000L;
        long txIova = 0x10_0800L;
        long bufIova = 0x30_0000L;
        long unmapped = 0x50_0000L;
        smmu.map(rxIova, ringsPa, 4096).map(bufIova, bufPa, 4096);
        Nic nic = new Nic(session, rxIova, 8, txIova, 8);
        bus.write(ringsPa, NicDescriptor.post(bufIova, 2048).encode());
        bus.write(ringsPa + 16, NicDescriptor.post(unmapped, 2048).encode());
        nic.rxDoorbell(2);
        byte[] p = packet(1000, 9);

        assertThat(nic.receive(p)).isEqualTo(Nic.RxOutcome.DELIVERED);
        assertThat(nic.receive(p)).isEqualTo(Nic.RxOutcome.DROPPED_FAULT);

        assertThat(bus.read(bufPa, p.length)).isEqualTo(p);
        NicDescriptor bad = descriptorAt(ringsPa + 16);
        assertThat(bad.code()).isEqualTo(CompletionCode.WRITE_FAULT);
        assertThat(bad.faultKind()).isEqualTo(FaultKind.TRANSLATION);
        assertThat(nic.lastFault().getAddress()).isEqualTo(unmapped);

        long txPa = ringsPa + 0x800;
        bus.write(txPa, NicDescriptor.post(unmapped, 64).encode());
        bus.write(txPa + 16, NicDescriptor.post(bufIova, 1000).encode());
        List<ByteString> sent = nic.transmit(2);
        assertThat(sent).hasSize(1);
        assertThat(sent.get(0).toByteArray()).as("the good packet after the faulting one still goes").isEqualTo(p);
        assertThat(descriptorAt(txPa).code()).isEqualTo(CompletionCode.READ_FAULT);
        assertThat(descriptorAt(txPa).faultKind()).isEqualTo(FaultKind.TRANSLATION);
        assertThat(nic.counters()).isEqualTo(new Nic.Counters(1, 1000, 0, 0, 1, 1, 1000, 1));
    }

    @Test
    void unmappedRxRingDropsAndKeepsTheHead() {
        bus.stage1().addStream(SID);
        Nic nic = new Nic(session, 0x6000_0000L, 4, 0x6001_0000L, 4);
        nic.rxDoorbell(1);
        assertThat(nic.receive(new byte[64])).isEqualTo(Nic.RxOutcome.DROPPED_FAULT);
        assertThat(nic.rxHead()).isZero();
        assertThat(nic.counters().rxFaults()).isEqualTo(1);
        assertThat(nic.lastFault().getKind()).isEqualTo(FaultKind.TRANSLATION);
        assertThat(nic.transmit(1)).isEmpty();
        assertThat(nic.counters().txFaults()).isEqualTo(1);
    }

    @Test
    void badParametersAreNamed() {
        long ram = bus.ramBase();
        assertThatThrownBy(() -> new Nic(session, ram + 4, 4, ram + 0x1000, 4))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("rxRingBase 0x");
        Nic nic = new Nic(session, ram, 4, ram + 0x1000, 4, 1500, 4096, DmaOptions.DEFAULT);
        assertThatThrownBy(() -> nic.receive(new byte[1501])).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("packet length 1501 is outside [1, 1500]");
        assertThatThrownBy(() -> nic.rxDoorbell(-1)).hasMessageContaining("newTail -1");
        assertThatThrownBy(() -> nic.transmit(9)).hasMessageContaining("newTail 9");
    }
}
