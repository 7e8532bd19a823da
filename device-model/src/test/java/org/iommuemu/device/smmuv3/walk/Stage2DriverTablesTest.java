package org.iommuemu.device.smmuv3.walk;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.FETCH_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.FETCH_USER;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.READ_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.READ_USER;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.WRITE_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.WRITE_USER;

import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtLookup;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Stage-2 walks of tables a driver built with {@link PageTable} over {@link Arm64Lpae}, including the
 * concatenated first-level tables Linux uses (4K with 40..43-bit IPAs: 2..16 tables at level 1; 16K with a
 * 48-bit IPA: 2 tables at level 1), with the SL0 and S2T0SZ the driver would program.
 */
class Stage2DriverTablesTest {

    static Stream<Arguments> geometries() {
        return Stream.of(
                Arguments.of(12, 48, 1), Arguments.of(12, 44, 1), Arguments.of(12, 43, 16), Arguments.of(12, 42, 8),
                Arguments.of(12, 40, 2), Arguments.of(12, 36, 1), Arguments.of(12, 32, 1),
                Arguments.of(14, 48, 2), Arguments.of(14, 47, 1), Arguments.of(14, 40, 1), Arguments.of(14, 36, 1),
                Arguments.of(14, 32, 1),
                Arguments.of(16, 48, 1), Arguments.of(16, 44, 1), Arguments.of(16, 42, 1), Arguments.of(16, 36, 1),
                Arguments.of(16, 32, 1));
    }

    @ParameterizedTest(name = "granule 2^{0}, {1}-bit IPA, {2} table(s) at the start level")
    @MethodSource("geometries")
    void translatesWhatTheDriverMapped(int granuleLg2, int ipaBits, int concatenated) throws Exception {
        WalkFixture f = new WalkFixture();
        Arm64Lpae fmt = Arm64Lpae.stage2(granuleLg2, ipaBits, 48);
        assertThat(fmt.concatenatedTables()).as("the driver's layout").isEqualTo(concatenated);
        PageTable pt = new PageTable(fmt, f.ram, f.alloc);
        long seed = granuleLg2 * 1000L + ipaBits;
        Random rnd = new Random(seed);
        List<long[]> mapped = DriverTables.mapRandom(pt, rnd, 60, 0, ipaBits, 0, 48, false, f.gather);
        assertThat(mapped).as("seed " + seed + " mapped ranges").hasSizeGreaterThan(20);
        Stage2Context ctx = Stage2Context.builder().vmid(5).granuleLg2(granuleLg2).t0sz(fmt.t0sz())
                .sl0(fmt.stage2Sl0()).psBits(48).iasBits(48).ttb(pt.root()).build();
        assertThat(Stage2Context.validate(ctx)).isNull();
        int startLevel = 3 - fmt.topLevel();
        assertThat(ctx.startLevel()).isEqualTo(startLevel);
        assertThat(ctx.concatenatedTables()).isEqualTo(concatenated);
        int hits = 0;
        for (long ipa : DriverTables.probes(mapped, rnd, 0, ipaBits, 200)) {
            String what = "seed " + seed + " ipa " + Bits.hex(ipa);
            PtLookup leaf = DriverTables.lookup(pt, ipa);
            int access = leaf != null && (leaf.prot() & Prot.READ) == 0 ? WRITE_PRIV : READ_PRIV;
            WalkResult out = f.walker.translateStage2(ctx, ipa, access, f.out);
            if (leaf == null) {
                assertThat(out.outcome()).as(what + ": %s", out).isEqualTo(WalkResult.Outcome.FAULT);
                assertThat(out.fault()).as(what).isEqualTo(WalkResult.Fault.TRANSLATION);
                assertThat(out.faultS2()).as(what).isTrue();
                assertThat(out.faultClass()).as(what).isEqualTo(WalkResult.CLASS_IN);
                assertThat(out.faultIpa()).as(what).isEqualTo(ipa);
                continue;
            }
            hits++;
            assertThat(out.outcome()).as(what + ": %s", out).isEqualTo(WalkResult.Outcome.OK);
            assertThat(out.outputAddress()).as(what).isEqualTo(leaf.oa() + (ipa - leaf.iova()));
            assertThat(out.ipa()).as(what).isEqualTo(ipa);
            assertThat(out.sizeLg2()).as(what).isEqualTo(leaf.sizeLg2());
            assertThat(out.inputBase()).as(what).isEqualTo(leaf.iova());
            int level = 3 - leaf.level();
            assertThat(out.s2Level()).as(what).isEqualTo(level);
            assertThat(out.level()).as(what).isEqualTo(level);
            assertThat(out.s1Level()).as(what).isEqualTo(-1);
            assertThat(out.reads()).as(what + " reads").isEqualTo(level - startLevel + 1);
            assertThat(out.stages()).as(what).isEqualTo(WalkResult.STAGE_2);
            assertThat(out.vmid()).as(what).isEqualTo(5);
            assertThat(out.global()).as(what).isTrue();
            int prot = leaf.prot();
            assertThat(WalkResult.permString(out.permissions())).as(what + " " + Prot.toString(prot))
                    .isEqualTo(WalkResult.permString(DriverTables.stage2Perms(prot)));
            int memAttr = (prot & Prot.MMIO) != 0 ? 0x1 : (prot & Prot.CACHE) != 0 ? 0xF : 0x5;
            assertThat(out.s2MemAttr()).as(what).isEqualTo(memAttr);
            for (int a : new int[] {READ_PRIV, WRITE_PRIV, FETCH_PRIV, READ_USER, WRITE_USER, FETCH_USER}) {
                boolean allowed = (DriverTables.stage2Perms(prot) & WalkResult.requiredPermission(a)) != 0;
                WalkResult r = f.walker.translateStage2(ctx, ipa, a, f.out);
                assertThat(r.isOk()).as(what + " access " + a + ": %s", r).isEqualTo(allowed);
                if (!allowed) {
                    assertThat(r.fault()).isEqualTo(WalkResult.Fault.PERMISSION);
                    assertThat(r.faultS2()).isTrue();
                    assertThat(r.faultClass()).isEqualTo(WalkResult.CLASS_IN);
                    assertThat(r.faultIpa()).isEqualTo(ipa);
                }
            }
        }
        assertThat(hits).as("seed " + seed + " translated probes").isGreaterThanOrEqualTo(3 * mapped.size());
    }
}
