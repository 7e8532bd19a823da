package org.iommuemu.device.masters;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.masters.TrafficGenerator;
import org.iommuemu.dma.masters.TrafficSpec;
import org.iommuemu.dma.masters.TrafficSpec.Pattern;
import org.iommuemu.dma.masters.TrafficStats;
import org.iommuemu.proto.v1.FaultKind;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class TrafficGeneratorTest {
    private static final int SID = 0x14;
    private MasterBus bus;
    private DmaSession session;

    @BeforeEach
    void setUp() throws Exception {
        bus = new MasterBus();
        session = bus.client.attach("tg0", MasterBus.SMMU, SID);
    }

    @AfterEach
    void tearDown() throws Exception {
        bus.close();
    }

    @Test
    void sequentialWritesInBypassLandAndAreCounted() throws Exception {
        long base = bus.ramBase() + 0x10_0000;
        TrafficSpec spec = TrafficSpec.builder().range(base, 64 * 1024).requestSize(4096).readFraction(0)
                .window(8).ops(16).build();
        TrafficGenerator gen = new TrafficGenerator(session, spec);

        TrafficStats st = gen.run();

        assertThat(st.ops()).isEqualTo(16);
        assertThat(st.writes()).isEqualTo(16);
        assertThat(st.bytes()).isEqualTo(16 * 4096);
        assertThat(st.faults()).isZero();
        assertThat(st.faultsByKind()).isEmpty();
        for (int i = 0; i < 16; i++) {
            assertThat(bus.read(base + 4096L * i, 4096)).isEqualTo(gen.payload().toByteArray());
        }
    }

    @Test
    void randomMixedTrafficIsRepeatableForASeed() throws Exception {
        long base = bus.ramBase() + 0x10_0000;
        TrafficSpec spec = TrafficSpec.builder().pattern(Pattern.RANDOM).range(base, 1 << 20).requestSize(512)
                .readFraction(0.7).seed(99).window(32).bytes(512 * 1000).build();
        TrafficStats a = new TrafficGenerator(session, spec).run();
        TrafficStats b = new TrafficGenerator(session, spec).run();
        assertThat(a.ops()).isEqualTo(1000);
        assertThat(a.reads()).isEqualTo(b.reads()).isBetween(600L, 800L);
        assertThat(a.reads() + a.writes()).isEqualTo(a.ops());
        assertThat(a.bytes()).isEqualTo(512 * 1000);
        assertThat(a.opsPerSecond()).isPositive();
        assertThat(a.megabytesPerSecond()).isPositive();
    }

    @Test
    void throughStage1UnmappedPagesAreCountedAsTranslationFaults() throws Exception {
        Stage1 smmu = bus.stage1().addStream(SID);
        long pa = smmu.alloc(4 * 4096);
        long iova = 0x4000_0000L;
        smmu.map(iova, pa, 2 * 4096); // of the 4 pages in range only the first 2 are mapped
        TrafficSpec strided = TrafficSpec.builder().pattern(Pattern.STRIDED).range(iova, 4 * 4096)
                .requestSize(2048).stride(2048).readFraction(0.5).window(4).ops(24).build();

        TrafficStats st = new TrafficGenerator(session, strided).run();

        assertThat(st.ops()).isEqualTo(24);
        assertThat(st.faults()).as("3 rounds over 8 half-pages, 4 of them unmapped").isEqualTo(12);
        assertThat(st.faultsByKind()).isEqualTo(Map.of(FaultKind.TRANSLATION, 12L));
        assertThat(st.bytes()).isEqualTo(12 * 2048);
        assertThat(st.rejected()).isZero();
    }

    @Test
    void hotSetTrafficThroughStage1() throws Exception {
        Stage1 smmu = bus.stage1().addStream(SID);
        long pa = smmu.alloc(64 * 4096);
        long iova = 0x4000_0000L;
        smmu.map(iova, pa, 64 * 4096);
        TrafficSpec spec = TrafficSpec.builder().pattern(Pattern.HOT_SET).range(iova, 64 * 4096).requestSize(256)
                .hotSet(2, 0.95).readFraction(0.5).window(16).ops(500).build();
        TrafficStats st = new TrafficGenerator(session, spec).run();
        assertThat(st.ops()).isEqualTo(500);
        assertThat(st.faults()).isZero();
        assertThat(st.bytes()).isEqualTo(500 * 256);
    }

    @Test
    void progressIsReportedWithAGrowingFractionAndNotForAShortRun() throws Exception {
        long base = bus.ramBase() + 0x10_0000;
        TrafficSpec spec = TrafficSpec.builder().range(base, 64 * 1024).requestSize(64).readFraction(0.5)
                .window(4).ops(1024).build();
        java.util.List<double[]> updates = new java.util.ArrayList<>();
        TrafficStats st = new TrafficGenerator(session, spec).run((answered, fraction, elapsed) ->
                updates.add(new double[] {answered, fraction, elapsed}), 0);
        assertThat(st.ops()).isEqualTo(1024);
        assertThat(updates).as("every 64 requests with a zero interval").hasSize(16);
        for (int i = 0; i < updates.size(); i++) {
            assertThat(updates.get(i)[1]).isEqualTo((i + 1) * 64 / 1024.0);
            assertThat(updates.get(i)[0]).isLessThanOrEqualTo((i + 1) * 64).isGreaterThanOrEqualTo((i + 1) * 64 - 4);
        }
        updates.clear();
        new TrafficGenerator(session, spec).run((a, f, e) -> updates.add(new double[] {a}), 3_600_000_000_000L);
        assertThat(updates).as("an hour-long interval: nothing to report").isEmpty();
    }
}
