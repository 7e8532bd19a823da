package org.iommuemu.device.masters;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import java.util.Random;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.masters.CompletionCode;
import org.iommuemu.dma.masters.CopyDescriptor;
import org.iommuemu.dma.masters.CopyEngine;
import org.iommuemu.proto.v1.FaultKind;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class CopyEngineTest {
    private static final int SID = 0x11;
    private MasterBus bus;
    private DmaSession session;

    @BeforeEach
    void setUp() throws Exception {
        bus = new MasterBus();
        session = bus.client.attach("copy0", MasterBus.SMMU, SID);
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

    private CopyDescriptor descriptor(CopyEngine e, int index) {
        return CopyDescriptor.decode(bus.read(e.descriptorAddress(index), CopyDescriptor.SIZE));
    }

    @Test
    void copiesInBypassInChunksAndWritesBackStatus() {
        long ram = bus.ramBase();
        long ring = ram + 0x1_0000;
        long src = ram + 0x2_0000 + 3; // unaligned, spans pages
        long dst = ram + 0x4_0000 + 5;
        byte[] data = random(10_000, 1);
        bus.write(src, data);
        CopyEngine engine = new CopyEngine(session, ring, 8, 4096, DmaOptions.DEFAULT);
        bus.write(ring, CopyDescriptor.post(src, dst, data.length).encode());
        bus.write(ring + 32, CopyDescriptor.post(src, dst + 20_000, 0).encode());
        bus.write(ring + 64, CopyDescriptor.post(src + 100, dst + 30_000, 17).encode());

        assertThat(engine.doorbell(3)).isEqualTo(3);

        assertThat(bus.read(dst, data.length)).isEqualTo(data);
        assertThat(bus.read(dst + 30_000, 17)).isEqualTo(Arrays.copyOfRange(data, 100, 117));
        assertThat(descriptor(engine, 0)).isEqualTo(new CopyDescriptor(src, dst, data.length, CompletionCode.OK,
                FaultKind.FAULT_KIND_UNSPECIFIED, data.length));
        assertThat(descriptor(engine, 1).code()).isEqualTo(CompletionCode.OK);
        assertThat(descriptor(engine, 2).copied()).isEqualTo(17);
        assertThat(engine.head()).isEqualTo(3);
        assertThat(engine.halted()).isFalse();
        assertThat(engine.counters()).isEqualTo(new CopyEngine.Counters(3, data.length + 17, 0, 0));
    }

    @Test
    void ringWrapsAround() {
        long ram = bus.ramBase();
        long ring = ram + 0x1_0000;
        CopyEngine engine = new CopyEngine(session, ring, 4);
        byte[] data = random(64, 2);
        bus.write(ram + 0x2_0000, data);
        int tail = 0;
        for (int i = 0; i < 10; i++) {
            bus.write(engine.descriptorAddress(tail), CopyDescriptor.post(ram + 0x2_0000, ram + 0x3_0000 + 64L * i,
                    64).encode());
            tail = (tail + 1) % 4;
            assertThat(engine.doorbell(tail)).isEqualTo(1);
        }
        assertThat(engine.head()).isEqualTo(tail).isEqualTo(2);
        for (int i = 0; i < 10; i++) {
            assertThat(bus.read(ram + 0x3_0000 + 64L * i, 64)).isEqualTo(data);
        }
    }

    @Test
    void sourceOutsideRamHaltsWithTheFaultRecordedInTheDescriptor() {
        long ram = bus.ramBase();
        long ring = ram + 0x1_0000;
        CopyEngine engine = new CopyEngine(session, ring, 8);
        long hole = ram - 0x1000; // not RAM: an external abort in bypass
        bus.write(ring, CopyDescriptor.post(ram + 0x2_0000, ram + 0x3_0000, 16).encode());
        bus.write(ring + 32, CopyDescriptor.post(hole, ram + 0x3_1000, 16).encode());
        bus.write(ring + 64, CopyDescriptor.post(ram + 0x2_0000, ram + 0x3_2000, 16).encode());

        assertThat(engine.doorbell(3)).isEqualTo(2);

        CopyDescriptor bad = descriptor(engine, 1);
        assertThat(bad.code()).isEqualTo(CompletionCode.READ_FAULT);
        assertThat(bad.faultKind()).isEqualTo(FaultKind.EXTERNAL_ABORT);
        assertThat(bad.copied()).isZero();
        assertThat(descriptor(engine, 2).code()).isEqualTo(CompletionCode.PENDING);
        assertThat(engine.head()).isEqualTo(2);
        assertThat(engine.error().phase()).isEqualTo(CopyEngine.Phase.SOURCE_READ);
        assertThat(engine.error().index()).isEqualTo(1);
        assertThat(engine.error().fault().getAddress()).isEqualTo(hole);
        assertThat(engine.doorbell(3)).as("halted: doorbells are ignored").isZero();

        engine.resume();
        assertThat(engine.doorbell(3)).isEqualTo(1);
        assertThat(descriptor(engine, 2).code()).isEqualTo(CompletionCode.OK);
        assertThat(engine.counters().faults()).isEqualTo(1);
    }

    @Test
    void reservedLengthBitsCompleteWithBadDescriptor() {
        long ram = bus.ramBase();
        long ring = ram + 0x1_0000;
        CopyEngine engine = new CopyEngine(session, ring, 8);
        bus.write64(ring, ram + 0x2_0000, ram + 0x3_0000, (1L << 40) | 16, 0);
        assertThat(engine.doorbell(1)).isEqualTo(1);
        assertThat(descriptor(engine, 0).code()).isEqualTo(CompletionCode.BAD_DESCRIPTOR);
        assertThat(engine.error().phase()).isEqualTo(CopyEngine.Phase.BAD_DESCRIPTOR);
        assertThat(engine.counters().badDescriptors()).isEqualTo(1);
    }

    @Test
    void copiesThroughStage1Translation() {
        Stage1 smmu = bus.stage1().addStream(SID);
        long ringPa = smmu.alloc(4096);
        long srcPa = smmu.alloc(8192);
        long dstPa = smmu.alloc(8192);
        long ringIova = 0x10_0000L;
        long srcIova = 0x20_0000L;
        long dstIova = 0x40_0000L;
        smmu.map(ringIova, ringPa, 4096).map(srcIova, srcPa, 8192).map(dstIova, dstPa, 8192);
        byte[] data = random(6000, 3);
        bus.write(srcPa + 1000, data);
        bus.write(ringPa, CopyDescriptor.post(srcIova + 1000, dstIova + 2000, data.length).encode());
        CopyEngine engine = new CopyEngine(session, ringIova, 16);

        assertThat(engine.doorbell(1)).isEqualTo(1);

        assertThat(bus.read(dstPa + 2000, data.length)).as("landed at the translated address").isEqualTo(data);
        CopyDescriptor d = CopyDescriptor.decode(bus.read(ringPa, CopyDescriptor.SIZE));
        assertThat(d.code()).isEqualTo(CompletionCode.OK);
        assertThat(d.copied()).isEqualTo(data.length);
    }

    @Test
    void unmappedDestinationPageStopsTheCopyWithTheBytesBeforeIt() {
        Stage1 smmu = bus.stage1().addStream(SID);
        long ringPa = smmu.alloc(4096);
        long srcPa = smmu.alloc(8192);
        long dstPa = smmu.alloc(8192);
        long ringIova = 0x10_0000L;
        long srcIova = 0x20_0000L;
        long dstIova = 0x40_0000L;
        smmu.map(ringIova, ringPa, 4096).map(srcIova, srcPa, 8192).map(dstIova, dstPa, 4096); // 2nd page unmapped
        byte[] data = random(8192, 4);
        bus.write(srcPa, data);
        bus.write(ringPa, CopyDescriptor.post(srcIova, dstIova + 96, 8192).encode());
        CopyEngine engine = new CopyEngine(session, ringIova, 16);

        assertThat(engine.doorbell(1)).isEqualTo(1);

        CopyDescriptor d = CopyDescriptor.decode(bus.read(ringPa, CopyDescriptor.SIZE));
        assertThat(d.code()).isEqualTo(CompletionCode.WRITE_FAULT);
        assertThat(d.faultKind()).isEqualTo(FaultKind.TRANSLATION);
        assertThat(d.copied()).isEqualTo(4096 - 96);
        assertThat(engine.error().fault().getAddress()).isEqualTo(d.destination() + d.copied()).isEqualTo(dstIova + 4096);
        assertThat(bus.read(dstPa + 96, 4000)).isEqualTo(Arrays.copyOf(data, 4000));
        assertThat(engine.halted()).isTrue();
    }

    @Test
    void unmappedRingHaltsBeforeTheFirstDescriptor() {
        bus.stage1().addStream(SID);
        CopyEngine engine = new CopyEngine(session, 0x7000_0000L, 16);
        assertThat(engine.doorbell(2)).isZero();
        assertThat(engine.head()).isZero();
        assertThat(engine.error().phase()).isEqualTo(CopyEngine.Phase.DESCRIPTOR_READ);
        assertThat(engine.error().fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
        assertThat(engine.counters().faults()).isEqualTo(1);
    }

    @Test
    void badParametersAreNamed() {
        long ring = bus.ramBase();
        assertThatThrownBy(() -> new CopyEngine(session, ring + 8, 4)).hasMessageContaining("ringBase 0x")
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new CopyEngine(session, ring, 1)).hasMessageContaining("entries 1");
        assertThatThrownBy(() -> new CopyEngine(session, ring, 4, 0, DmaOptions.DEFAULT))
                .hasMessageContaining("maxTransfer 0");
        CopyEngine engine = new CopyEngine(session, ring, 4);
        assertThatThrownBy(() -> engine.doorbell(4)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("newTail 4 is outside [0, 3]");
    }
}
