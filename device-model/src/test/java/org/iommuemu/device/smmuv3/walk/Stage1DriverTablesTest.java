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
import org.iommuemu.device.smmuv3.walk.Stage1Context.TableHalf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Stage-1 walks of tables a driver built with {@link PageTable} over {@link Arm64Lpae}: the walker must
 * translate exactly what {@link PageTable#lookup} finds, with the permissions the driver asked for, for every
 * granule and several input sizes, through TTB0 and through TTB1.
 */
class Stage1DriverTablesTest {
    /** Linux's MAIR: 0 Normal-NC, 1 Normal-WB, 2 Device-nGnRE, 3 inner-NC outer-WB (PGTABLE.md §1.3). */
    private static final long LINUX_MAIR = 0xF4_04_FF_44L;

    static Stream<Arguments> geometries() {
        return Stream.of(
                Arguments.of(12, 48), Arguments.of(12, 44), Arguments.of(12, 39), Arguments.of(12, 36),
                Arguments.of(12, 32),
                Arguments.of(14, 48), Arguments.of(14, 47), Arguments.of(14, 40), Arguments.of(14, 36),
                Arguments.of(14, 32),
                Arguments.of(16, 48), Arguments.of(16, 44), Arguments.of(16, 42), Arguments.of(16, 36),
                Arguments.of(16, 32));
    }

    @ParameterizedTest(name = "granule 2^{0}, {1}-bit VA, TTB0")
    @MethodSource("geometries")
    void ttb0TranslatesWhatTheDriverMapped(int granuleLg2, int vaBits) throws Exception {
        check(granuleLg2, vaBits, false);
    }

    @ParameterizedTest(name = "granule 2^{0}, {1}-bit VA, TTB1")
    @MethodSource("geometries")
    void ttb1TranslatesWhatTheDriverMapped(int granuleLg2, int vaBits) throws Exception {
        check(granuleLg2, vaBits, true);
    }

    private static void check(int granuleLg2, int vaBits, boolean upper) throws Exception {
        WalkFixture f = new WalkFixture();
        Arm64Lpae fmt = Arm64Lpae.stage1(granuleLg2, vaBits, 48);
        PageTable pt = new PageTable(fmt, f.ram, f.alloc);
        long seed = granuleLg2 * 1000L + vaBits + (upper ? 500 : 0);
        Random rnd = new Random(seed);
        List<long[]> mapped = DriverTables.mapRandom(pt, rnd, 60, 0, vaBits, 0, 48, true, f.gather);
        TableHalf half = TableHalf.of(64 - vaBits, granuleLg2, pt.root());
        Stage1Context ctx = Stage1Context.builder()
                .ttb0(upper ? TableHalf.DISABLED : half)
                .ttb1(upper ? half : TableHalf.DISABLED)
                .oasBits(48).asid(7).mair(LINUX_MAIR).build();
        assertThat(Stage1Context.validate(ctx)).isNull();
        int startLevel = 3 - fmt.topLevel();
        assertThat(ctx.startLevel(upper ? 1 : 0)).as("start level").isEqualTo(startLevel);
        // The driver's tables cover [0, 2^vaBits); TTB1 covers the top 2^vaBits bytes with the same indexes.
        long upperBase = upper ? -1L << vaBits : 0;
        assertThat(mapped).as("seed " + seed + " mapped ranges").hasSizeGreaterThan(20);
        int hits = 0;
        for (long low : DriverTables.probes(mapped, rnd, 0, vaBits, 200)) {
            long va = upperBase | low;
            String what = "seed " + seed + " va " + Bits.hex(va);
            PtLookup leaf = DriverTables.lookup(pt, low);
            WalkResult out = f.walker.translateStage1(ctx, va, READ_PRIV, f.out);
            if (leaf == null) {
                assertThat(out.outcome()).as(what + ": %s", out).isEqualTo(WalkResult.Outcome.FAULT);
                assertThat(out.fault()).as(what).isEqualTo(WalkResult.Fault.TRANSLATION);
                assertThat(out.faultS2()).as(what).isFalse();
                assertThat(out.faultClass()).as(what).isEqualTo(WalkResult.CLASS_IN);
                assertThat(out.inputAddress()).as(what).isEqualTo(va);
                continue;
            }
            hits++;
            assertThat(out.outcome()).as(what + ": %s", out).isEqualTo(WalkResult.Outcome.OK);
            assertThat(out.outputAddress()).as(what).isEqualTo(leaf.oa() + (low - leaf.iova()));
            assertThat(out.sizeLg2()).as(what).isEqualTo(leaf.sizeLg2());
            assertThat(out.inputBase()).as(what).isEqualTo(upperBase | leaf.iova());
            int level = 3 - leaf.level();
            assertThat(out.level()).as(what).isEqualTo(level);
            assertThat(out.reads()).as(what + " reads").isEqualTo(level - startLevel + 1);
            assertThat(out.updates()).as(what).isZero();
            assertThat(out.stages()).as(what).isEqualTo(WalkResult.STAGE_1);
            assertThat(out.asid()).as(what).isEqualTo(7);
            assertThat(out.global()).as(what + " (Linux sets nG)").isFalse();
            int prot = leaf.prot();
            assertThat(WalkResult.permString(out.permissions())).as(what + " " + Prot.toString(prot))
                    .isEqualTo(WalkResult.permString(DriverTables.stage1Perms(prot)));
            assertThat(out.writableClean()).as(what).isFalse();
            int idx = (prot & Prot.MMIO) != 0 ? 2 : (prot & Prot.CACHE) != 0 ? 1 : 0;
            assertThat(out.s1AttrIndx()).as(what).isEqualTo(idx);
            assertThat(out.s1MemoryAttributes()).as(what).isEqualTo((int) (LINUX_MAIR >>> (8 * idx)) & 0xFF);
            checkAccesses(f, ctx, va, prot, what);
        }
        assertThat(hits).as("seed " + seed + " translated probes").isGreaterThanOrEqualTo(3 * mapped.size());
        // The other half is disabled (EPDx = 1): every address there faults at level 0.
        long other = upper ? 0x1000 : -0x1000L;
        WalkResult out = f.walker.translateStage1(ctx, other, READ_PRIV, f.out);
        assertThat(out.fault()).isEqualTo(WalkResult.Fault.TRANSLATION);
        assertThat(out.faultLevel()).isZero();
        assertThat(out.reads()).isZero();
    }

    /** Each kind of access is allowed exactly when the driver's protection says so. */
    private static void checkAccesses(WalkFixture f, Stage1Context ctx, long va, int prot, String what) {
        int perms = DriverTables.stage1Perms(prot);
        int[] accesses = {READ_PRIV, WRITE_PRIV, FETCH_PRIV, READ_USER, WRITE_USER, FETCH_USER};
        for (int access : accesses) {
            boolean allowed = (perms & WalkResult.requiredPermission(access)) != 0;
            WalkResult out = f.walker.translateStage1(ctx, va, access, f.out);
            assertThat(out.outcome()).as(what + " access " + access + ": %s", out)
                    .isEqualTo(allowed ? WalkResult.Outcome.OK : WalkResult.Outcome.FAULT);
            if (!allowed) {
                assertThat(out.fault()).as(what).isEqualTo(WalkResult.Fault.PERMISSION);
                assertThat(out.rnw()).isEqualTo(access != WRITE_PRIV && access != WRITE_USER);
                assertThat(out.pnu()).isEqualTo((access & WalkFixture.READ_PRIV) != 0);
                assertThat(out.ind()).isEqualTo(access == FETCH_PRIV || access == FETCH_USER);
            }
        }
    }
}
