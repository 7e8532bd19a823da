package org.iommuemu.device.smmuv3.walk;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.device.smmuv3.walk.Stage1Context.TableHalf;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link Stage1Context#validate} (C_BAD_CD) and {@link Stage2Context#validate} (C_BAD_STE): the geometry
 * rules of PGTABLE.md §1.5 and §1.6, and agreement with the layouts the driver-side {@link Arm64Lpae} chooses.
 */
class ContextValidationTest {
    static final long TTB = 0x8000_0000L;

    // ---------------------------------------------------------------- stage 1

    @ParameterizedTest(name = "TxSZ {0}, granule 2^{1}, TTB {2}: {3}")
    @CsvSource({
        "16, 12, 0x80000000, ",
        "39, 12, 0x80000000, ",
        "15, 12, 0x80000000, T0SZ 15 is outside 16..39",
        "40, 12, 0x80000000, T0SZ 40 is outside 16..39",
        "16, 13, 0x80000000, granule 2^13",
        "16, 12, 0x80000800, not aligned to its 4096-byte level-0 table",
        "16, 14, 0x80000040, ", // 16K, 48-bit: a 2-entry level-0 table needs 64-byte alignment only
        "16, 14, 0x80000020, not aligned to its 64-byte level-0 table",
        "16, 16, 0x80000200, ", // 64K, 48-bit: 64 entries, 512 bytes
        "16, 16, 0x80000100, not aligned to its 512-byte level-1 table",
        "22, 16, 0x80010000, ", // 64K, 42-bit: a full level-2 table
        "22, 16, 0x80008000, not aligned to its 65536-byte level-2 table",
    })
    void stage1Halves(int tsz, int granuleLg2, String ttb, String reason) {
        Stage1Context c = Stage1Context.builder().ttb0(TableHalf.of(tsz, granuleLg2, Long.decode(ttb))).build();
        if (reason == null) {
            assertThat(Stage1Context.validate(c)).isNull();
        } else {
            assertThat(Stage1Context.validate(c)).startsWith("TTB0").contains(reason);
        }
        // The same half as TTB1 is judged the same way.
        Stage1Context c1 = Stage1Context.builder().ttb1(TableHalf.of(tsz, granuleLg2, Long.decode(ttb))).build();
        assertThat(Stage1Context.validate(c1) == null).isEqualTo(reason == null);
    }

    @Test
    void stage1DisabledHalvesAreNotChecked() {
        TableHalf garbage = new TableHalf(false, 3, 7, 0x123, true);
        Stage1Context c = Stage1Context.builder().ttb0(garbage).ttb1(garbage).build();
        assertThat(Stage1Context.validate(c)).isNull();
        assertThat(c.toString()).contains("disabled");
    }

    @Test
    void stage1OutputSizesAreTheIpsEncodings() {
        for (int bits : new int[] {32, 36, 40, 42, 44, 48, 52}) {
            assertThat(Stage1Context.validate(Stage1Context.builder().oasBits(bits).build())).isNull();
        }
        assertThat(Stage1Context.validate(Stage1Context.builder().oasBits(47).build())).contains("IPS of 47 bits");
        for (int ips = 0; ips <= 6; ips++) {
            assertThat(Stage1Context.oasBitsFromEncoding(ips)).isEqualTo(new int[] {32, 36, 40, 42, 44, 48, 52}[ips]);
        }
        assertThat(Stage1Context.oasBitsFromEncoding(7)).isEqualTo(-1);
    }

    @Test
    void granuleEncodingsDifferBetweenTg0AndTg1() {
        assertThat(Stage1Context.granuleLg2FromTg0(0)).isEqualTo(12);
        assertThat(Stage1Context.granuleLg2FromTg0(1)).isEqualTo(16);
        assertThat(Stage1Context.granuleLg2FromTg0(2)).isEqualTo(14);
        assertThat(Stage1Context.granuleLg2FromTg0(3)).isEqualTo(-1);
        assertThat(Stage1Context.granuleLg2FromTg1(0)).isEqualTo(-1);
        assertThat(Stage1Context.granuleLg2FromTg1(1)).isEqualTo(14);
        assertThat(Stage1Context.granuleLg2FromTg1(2)).isEqualTo(12);
        assertThat(Stage1Context.granuleLg2FromTg1(3)).isEqualTo(16);
        assertThat(Stage2Context.granuleLg2FromTg(1)).isEqualTo(16);
    }

    @Test
    void stage1StartLevelsMatchTheDriverFormat() {
        for (int g : new int[] {12, 14, 16}) {
            for (int ias = 32; ias <= 48; ias++) {
                Arm64Lpae fmt = Arm64Lpae.stage1(g, ias, 48);
                Stage1Context c = Stage1Context.builder().ttb0(TableHalf.of(64 - ias, g, 0)).build();
                assertThat(c.startLevel(0)).as("granule 2^%d, %d-bit VA", g, ias).isEqualTo(3 - fmt.topLevel());
            }
        }
    }

    @Test
    void stage1ContextsHaveValueEquality() {
        Stage1Context a = Stage1Context.builder().ttb0(TableHalf.of(16, 12, TTB)).asid(3).ha(true).build();
        Stage1Context b = a.toBuilder().build();
        assertThat(b).isEqualTo(a).hasSameHashCodeAs(a);
        assertThat(a.toBuilder().asid(4).build()).isNotEqualTo(a);
    }

    // ---------------------------------------------------------------- stage 2

    @ParameterizedTest(name = "granule 2^{0}, S2T0SZ {1}, SL0 {2}, IAS {3}, TTB {4}: {5}")
    @CsvSource({
        "12, 24, 1, 48, 0x80000000, ", // 40-bit at level 1: 2 tables
        "12, 21, 1, 48, 0x80000000, ", // 43-bit at level 1: 16 tables
        "12, 20, 1, 48, 0x80000000, would need 32 concatenated tables",
        "12, 20, 2, 48, 0x80000000, ", // 44-bit at level 0
        "12, 24, 3, 48, 0x80000000, S2SL0 3 is reserved",
        "12, 16, 2, 40, 0x80000000, 48-bit IPA space",
        "12, 24, 2, 40, 0x80000000, S2SL0 2 (level 0) is reserved",
        "12, 40, 0, 48, 0x80000000, 24-bit IPA space",
        "12, 24, 1, 48, 0x80001000, not aligned to its 8192-byte level-1 table",
        "14, 16, 2, 48, 0x80000000, ", // 16K 48-bit at level 1: 2 tables
        "14, 24, 2, 42, 0x80000000, ", // 16K SL0 2 needs IAS >= 42
        "14, 24, 2, 40, 0x80000000, S2SL0 2 (level 1) is reserved",
        "14, 24, 1, 48, 0x80000000, ", // 16K 40-bit at level 2: 16 tables
        "14, 24, 3, 48, 0x80000000, S2SL0 3 is reserved",
        "16, 16, 2, 48, 0x80000000, ", // 64K 48-bit at level 1: 64 entries
        "16, 16, 1, 48, 0x80000000, would need 64 concatenated tables",
        "16, 12, 2, 52, 0x80000000, ", // 64K 52-bit IPA
        "16, 12, 2, 48, 0x80000000, 52-bit IPA space",
        "16, 33, 0, 48, 0x80040000, ", // 64K 31-bit at level 3: 4 tables
        "16, 33, 0, 48, 0x80020000, not aligned to its 262144-byte level-3 table",
        "16, 31, 0, 48, 0x80000000, ", // 64K 33-bit at level 3: 16 tables, the most
        "16, 30, 0, 48, 0x80000000, would need 32 concatenated tables",
    })
    void stage2Geometry(int granuleLg2, int t0sz, int sl0, int ias, String ttb, String reason) {
        Stage2Context c = Stage2Context.builder().granuleLg2(granuleLg2).t0sz(t0sz).sl0(sl0).iasBits(ias)
                .psBits(ias).ttb(Long.decode(ttb)).build();
        if (reason == null) {
            assertThat(Stage2Context.validate(c)).as("%s", c).isNull();
        } else {
            assertThat(Stage2Context.validate(c)).as("%s", c).contains(reason);
        }
    }

    @Test
    void stage2ResolvesAtLeastOneBitAtTheStartLevel() {
        // 4K, 30-bit IPA starting at level 1 resolves 0 bits there.
        Stage2Context c = Stage2Context.builder().granuleLg2(12).t0sz(34).sl0(1).ttb(TTB).build();
        assertThat(Stage2Context.validate(c)).contains("resolves no bit");
    }

    @Test
    void stage2GranulesAndOutputSizes() {
        assertThat(Stage2Context.validate(Stage2Context.builder().granuleLg2(15).build())).contains("S2TG");
        assertThat(Stage2Context.validate(Stage2Context.builder().psBits(50).build())).contains("S2PS of 50 bits");
        assertThat(Stage2Context.validate(Stage2Context.builder().iasBits(46).build())).contains("IAS of 46 bits");
        assertThat(Stage2Context.validate(Stage2Context.builder().sl0(-1).build())).contains("S2SL0 -1");
    }

    @Test
    void stage2LayoutsMatchTheDriverFormat() {
        for (int g : new int[] {12, 14, 16}) {
            for (int ias = 32; ias <= 48; ias++) {
                Arm64Lpae fmt = Arm64Lpae.stage2(g, ias, 48);
                Stage2Context c = Stage2Context.builder().granuleLg2(g).t0sz(fmt.t0sz()).sl0(fmt.stage2Sl0())
                        .ttb(0).build();
                String what = "granule 2^" + g + ", " + ias + "-bit IPA";
                assertThat(Stage2Context.validate(c)).as(what).isNull();
                assertThat(c.startLevel()).as(what).isEqualTo(3 - fmt.topLevel());
                assertThat(c.concatenatedTables()).as(what).isEqualTo(fmt.concatenatedTables());
            }
        }
    }

    @Test
    void stage2ContextsHaveValueEquality() {
        Stage2Context a = Stage2Context.builder().vmid(3).ttb(TTB).ptw(true).build();
        assertThat(a.toBuilder().build()).isEqualTo(a).hasSameHashCodeAs(a);
        assertThat(a.toBuilder().vmid(4).build()).isNotEqualTo(a);
        assertThat(a.toString()).contains("PTW");
    }
}
