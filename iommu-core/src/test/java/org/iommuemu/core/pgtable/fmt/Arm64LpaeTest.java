package org.iommuemu.core.pgtable.fmt;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.iommuemu.core.pgtable.PtFormat.EMPTY;
import static org.iommuemu.core.pgtable.PtFormat.LEAF;
import static org.iommuemu.core.pgtable.PtFormat.TABLE;

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae.Config;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae.Stage;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Arm64Lpae against spec PGTABLE.md §1: geometry (§1.5, §1.6), leaf sizes (§1.3, §1.4), bit-exact encodings
 * written out by hand from the bit tables (§1.2-§1.4), kinds (§1.1), prot round trips, contiguous runs and
 * HTTU dirty state.
 */
class Arm64LpaeTest {
    private static final long K = 1L << 10;
    private static final long M = 1L << 20;
    private static final long G = 1L << 30;
    private static final long T = 1L << 40;

    private static final long CONT = 1L << 52;
    private static final long DBM = 1L << 51;

    // ------------------------------------------------------------------ geometry (§1.5, §1.6)

    /**
     * Every granule x input width x stage. Columns: granule, ias, stage, Arm start level, entries in the top
     * table, concatenated tables, SL0 (stage 2 only; -1 for stage 1). Stage-1 rows are spec §1.5's table;
     * stage-2 rows apply Linux's §1.6 rule (a walk that would start at Arm L0 with at most 16 entries starts at
     * L1 with that many concatenated tables; 16K with a 48-bit input has to).
     */
    @ParameterizedTest(name = "{0}-bit granule ias{1} {2}: L{3}, {4} entries, {5} tables, SL0 {6}")
    @CsvSource({
        // 4K stage 1 (§1.5 row "4 KB")
        "12, 48, S1, 0, 512, 1, -1",
        "12, 44, S1, 0, 32, 1, -1",
        "12, 42, S1, 0, 8, 1, -1",
        "12, 40, S1, 0, 2, 1, -1",
        "12, 39, S1, 1, 512, 1, -1",
        "12, 36, S1, 1, 64, 1, -1",
        "12, 32, S1, 1, 4, 1, -1",
        // 16K stage 1 (§1.5 row "16 KB")
        "14, 48, S1, 0, 2, 1, -1",
        "14, 44, S1, 1, 256, 1, -1",
        "14, 42, S1, 1, 64, 1, -1",
        "14, 40, S1, 1, 16, 1, -1",
        "14, 39, S1, 1, 8, 1, -1",
        "14, 36, S1, 2, 2048, 1, -1",
        "14, 32, S1, 2, 128, 1, -1",
        // 64K stage 1 (§1.5 row "64 KB")
        "16, 48, S1, 1, 64, 1, -1",
        "16, 44, S1, 1, 4, 1, -1",
        "16, 42, S1, 2, 8192, 1, -1",
        "16, 40, S1, 2, 2048, 1, -1",
        "16, 39, S1, 2, 1024, 1, -1",
        "16, 36, S1, 2, 128, 1, -1",
        "16, 32, S1, 2, 8, 1, -1",
        // 4K stage 2: SL0 = 2 - Arm level. IA 40 at L1 with 2 tables and IA 42 with 8 are §1.6's examples;
        // IA 44 stays at L0 (32 tables at L1 would be illegal).
        "12, 48, S2, 0, 512, 1, 2",
        "12, 44, S2, 0, 32, 1, 2",
        "12, 42, S2, 1, 4096, 8, 1",
        "12, 40, S2, 1, 1024, 2, 1",
        "12, 39, S2, 1, 512, 1, 1",
        "12, 36, S2, 1, 64, 1, 1",
        "12, 32, S2, 1, 4, 1, 1",
        // 16K stage 2: SL0 = 3 - Arm level. IA 48 must concatenate (SL0 cannot start a 16K walk at L0).
        "14, 48, S2, 1, 4096, 2, 2",
        "14, 44, S2, 1, 256, 1, 2",
        "14, 42, S2, 1, 64, 1, 2",
        "14, 40, S2, 1, 16, 1, 2",
        "14, 39, S2, 1, 8, 1, 2",
        "14, 36, S2, 2, 2048, 1, 1",
        "14, 32, S2, 2, 128, 1, 1",
        // 64K stage 2: IA 48 must start at L1 with 64 entries, not at L2 with 64 concatenated tables (§1.6).
        "16, 48, S2, 1, 64, 1, 2",
        "16, 44, S2, 1, 4, 1, 2",
        "16, 42, S2, 2, 8192, 1, 1",
        "16, 40, S2, 2, 2048, 1, 1",
        "16, 39, S2, 2, 1024, 1, 1",
        "16, 36, S2, 2, 128, 1, 1",
        "16, 32, S2, 2, 8, 1, 1",
    })
    void geometryMatchesTheSpecTables(int granuleLg2, int ias, Stage stage, int armStartLevel, long topEntries,
            int tables, int sl0) {
        Arm64Lpae f = new Arm64Lpae(new Config(stage, granuleLg2, ias, 48, false, false));
        int top = 3 - armStartLevel;
        assertThat(f.topLevel()).as("top level").isEqualTo(top);
        assertThat(f.maxTopLevel()).isEqualTo(top);
        assertThat(1L << f.topItemsLg2(top)).as("top entries").isEqualTo(topEntries);
        assertThat(f.concatenatedTables()).as("concatenated tables").isEqualTo(tables);
        assertThat(f.t0sz()).isEqualTo(64 - ias);
        // The top table and the levels below it resolve exactly the input bits.
        assertThat(f.itemLg2(top) + f.topItemsLg2(top)).isEqualTo(ias);
        assertThat(f.tableBytes(top, true)).isEqualTo(topEntries * 8);
        assertThat(f.tableBytes(0, false)).isEqualTo(1L << granuleLg2);
        if (top > 0) {
            assertThat(f.tableBytes(top - 1, false)).isEqualTo(1L << granuleLg2);
        }
        if (stage == Stage.S2) {
            assertThat(f.stage2Sl0()).as("SL0").isEqualTo(sl0);
        } else {
            assertThatThrownBy(f::stage2Sl0).isInstanceOf(IllegalStateException.class).hasMessageContaining("stage 1");
        }
    }

    @Test
    void levelGeometryFollowsTheStride() {
        for (int g : new int[] {12, 14, 16}) {
            Arm64Lpae f = Arm64Lpae.stage1(g, 48, 48);
            for (int l = 0; l < 4; l++) {
                assertThat(f.itemLg2(l)).isEqualTo(g + (g - 3) * l);
                assertThat(f.tableItemsLg2(l)).isEqualTo(g - 3);
            }
            assertThat(f.entryLg2()).isEqualTo(3);
            assertThat(f.vaBits()).isEqualTo(48);
            assertThat(f.oaBits()).isEqualTo(48);
            assertThat(f.vaSignExtended()).isFalse();
        }
        assertThat(Arm64Lpae.stage1(12, 48, 48).itemLg2(0)).isEqualTo(12);
        assertThat(Arm64Lpae.stage1(12, 48, 48).itemLg2(3)).isEqualTo(39);
    }

    @Test
    void stage2With64KGranuleMayUseA52BitInput() {
        Arm64Lpae f = Arm64Lpae.stage2(16, 52, 52);
        assertThat(f.topLevel()).isEqualTo(2);
        assertThat(f.topItemsLg2(2)).isEqualTo(10);
        assertThat(f.stage2Sl0()).isEqualTo(2);
        assertThat(f.concatenatedTables()).isEqualTo(1);
    }

    // ------------------------------------------------------------------ configuration

    @Test
    void invalidConfigurationsAreRejectedWithTheReason() {
        assertThatThrownBy(() -> Arm64Lpae.stage1(13, 48, 48))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("granuleLg2");
        assertThatThrownBy(() -> Arm64Lpae.stage1(12, 31, 48))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("iasBits must be 32..48");
        assertThatThrownBy(() -> Arm64Lpae.stage1(12, 49, 48))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("iasBits");
        assertThatThrownBy(() -> Arm64Lpae.stage1(16, 52, 52))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("iasBits must be 32..48");
        assertThatThrownBy(() -> Arm64Lpae.stage2(12, 52, 48))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("iasBits must be 32..48");
        assertThatThrownBy(() -> Arm64Lpae.stage2(16, 53, 52))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("iasBits must be 32..52");
        assertThatThrownBy(() -> Arm64Lpae.stage1(12, 48, 52))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("needs the 64K granule");
        assertThatThrownBy(() -> Arm64Lpae.stage1(14, 48, 52))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("needs the 64K granule");
        assertThatThrownBy(() -> Arm64Lpae.stage1(16, 48, 50))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("oasBits must be 32..48 or 52");
        assertThatThrownBy(() -> Arm64Lpae.stage1(16, 48, 31))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("oasBits");
        assertThatThrownBy(() -> new Config(null, 12, 48, 48, false, false))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("stage");
        assertThatThrownBy(() -> new Arm64Lpae(null)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void nameAndWithersDescribeTheConfiguration() {
        assertThat(Arm64Lpae.stage1(12, 48, 48).name()).isEqualTo("arm64-lpae s1 4K ias48 oas48");
        assertThat(Arm64Lpae.stage1(12, 48, 48).withContiguous(true).name())
                .isEqualTo("arm64-lpae s1 4K ias48 oas48 contig");
        assertThat(Arm64Lpae.stage2(16, 42, 52).withContiguous(true).withHd(true).name())
                .isEqualTo("arm64-lpae s2 64K ias42 oas52 contig hd");
        assertThat(Arm64Lpae.stage2(14, 40, 44).toString()).isEqualTo("arm64-lpae s2 16K ias40 oas44");
        Arm64Lpae f = Arm64Lpae.stage1(14, 40, 40).withHd(true);
        assertThat(f.config()).isEqualTo(new Config(Stage.S1, 14, 40, 40, false, true));
        assertThat(f.stage()).isEqualTo(Stage.S1);
        assertThat(f.granuleLg2()).isEqualTo(14);
        assertThat(f.withHd(false).tracksDirty()).isFalse();
        assertThat(f.config().withContiguous(true).contiguous()).isTrue();
    }

    // ------------------------------------------------------------------ leaf sizes (§1.3, §1.4)

    @Test
    void leafSizesPerGranuleWithoutContiguous() {
        Arm64Lpae k4 = Arm64Lpae.stage1(12, 48, 48);
        assertThat(k4.leafSizes(0)).isEqualTo(4 * K);
        assertThat(k4.leafSizes(1)).isEqualTo(2 * M);
        assertThat(k4.leafSizes(2)).isEqualTo(G);
        assertThat(k4.leafSizes(3)).isZero();
        assertThat(k4.pageSizes()).isEqualTo(4 * K | 2 * M | G);

        Arm64Lpae k16 = Arm64Lpae.stage1(14, 48, 48);
        assertThat(k16.leafSizes(0)).isEqualTo(16 * K);
        assertThat(k16.leafSizes(1)).isEqualTo(32 * M);
        assertThat(k16.leafSizes(2)).isZero();
        assertThat(k16.leafSizes(3)).isZero();
        assertThat(k16.pageSizes()).isEqualTo(16 * K | 32 * M);

        Arm64Lpae k64 = Arm64Lpae.stage1(16, 48, 48);
        assertThat(k64.leafSizes(0)).isEqualTo(64 * K);
        assertThat(k64.leafSizes(1)).isEqualTo(512 * M);
        assertThat(k64.leafSizes(2)).isZero();
        assertThat(k64.pageSizes()).isEqualTo(64 * K | 512 * M);

        Arm64Lpae k64lpa = Arm64Lpae.stage1(16, 48, 52);
        assertThat(k64lpa.leafSizes(2)).isEqualTo(4 * T);
        assertThat(k64lpa.pageSizes()).isEqualTo(64 * K | 512 * M | 4 * T);
    }

    @Test
    void leafSizesPerGranuleWithContiguous() {
        Arm64Lpae k4 = Arm64Lpae.stage1(12, 48, 48).withContiguous(true);
        assertThat(k4.leafSizes(0)).isEqualTo(4 * K | 64 * K);
        assertThat(k4.leafSizes(1)).isEqualTo(2 * M | 32 * M);
        assertThat(k4.leafSizes(2)).isEqualTo(G | 16 * G);
        assertThat(k4.leafSizes(3)).isZero();

        Arm64Lpae k16 = Arm64Lpae.stage1(14, 48, 48).withContiguous(true);
        assertThat(k16.leafSizes(0)).isEqualTo(16 * K | 2 * M);
        assertThat(k16.leafSizes(1)).isEqualTo(32 * M | G);
        assertThat(k16.leafSizes(2)).isZero();

        Arm64Lpae k64 = Arm64Lpae.stage2(16, 48, 52).withContiguous(true);
        assertThat(k64.leafSizes(0)).isEqualTo(64 * K | 2 * M);
        assertThat(k64.leafSizes(1)).isEqualTo(512 * M | 16 * G);
        assertThat(k64.leafSizes(2)).as("no contiguous run of 4T blocks").isEqualTo(4 * T);
    }

    @Test
    void noLeavesAboveTheTopAndNoRunLargerThanTheTopTable() {
        // 4K, 32-bit input: the top table is Arm L1 with 4 entries of 1G, too few for a 16G run.
        Arm64Lpae small = Arm64Lpae.stage1(12, 32, 48).withContiguous(true);
        assertThat(small.topLevel()).isEqualTo(2);
        assertThat(small.leafSizes(2)).isEqualTo(G);
        assertThat(small.leafSizes(3)).isZero();
        // 64 entries of 1G hold a 16G run.
        assertThat(Arm64Lpae.stage1(12, 36, 48).withContiguous(true).leafSizes(2)).isEqualTo(G | 16 * G);
        // 64K with 52-bit output but a 42-bit input: the top is level 1, so no 4T blocks.
        assertThat(Arm64Lpae.stage1(16, 42, 52).pageSizes()).isEqualTo(64 * K | 512 * M);
        // Stage 2, 4K, 32-bit input: starts at L1 with 4 entries (no concatenation), so 1G blocks stay.
        assertThat(Arm64Lpae.stage2(12, 32, 48).pageSizes()).isEqualTo(4 * K | 2 * M | G);
    }

    // ------------------------------------------------------------------ bit-exact encodings (§1.2-§1.4)

    @Test
    void stage1PageReadWriteCacheable() {
        Arm64Lpae f = Arm64Lpae.stage1(12, 48, 48);
        // type 0b11 | AttrIndx 1 (bit 2) | AP[1] unpriv (bit 6) | SH inner (0x300) | AF (bit 10) | nG (bit 11)
        long expected = 0x0000_0000_1234_5000L | 0x3 | 0x4 | 0x40 | 0x300 | 0x400 | 0x800;
        assertThat(expected).isEqualTo(0x0000_0000_1234_5F47L);
        long e = f.leaf(0x1234_5000L, 0, 12, Prot.READ | Prot.WRITE | Prot.CACHE);
        assertThat(e).isEqualTo(0x0000_0000_1234_5F47L);
        assertThat(f.kind(e, 0)).isEqualTo(LEAF);
        assertThat(f.leafOa(e, 0)).isEqualTo(0x1234_5000L);
        assertThat(f.leafLg2(e, 0)).isEqualTo(12);
        assertThat(f.prot(e, 0)).isEqualTo(Prot.READ | Prot.WRITE | Prot.CACHE);
    }

    @Test
    void stage1ReadOnlyNoExecBlock() {
        Arm64Lpae f = Arm64Lpae.stage1(12, 48, 48);
        // type 0b01 | AttrIndx 0 | AP[1] (0x40) | AP[2] read-only (0x80) | SH outer (0x200) | AF | nG
        // | PXN (bit 53) | UXN (bit 54)
        long e = f.leaf(0x4020_0000L, 1, 21, Prot.READ | Prot.NOEXEC);
        assertThat(e).isEqualTo(0x0060_0000_4020_0EC1L);
        assertThat(f.kind(e, 1)).isEqualTo(LEAF);
        assertThat(f.leafLg2(e, 1)).isEqualTo(21);
        assertThat(f.prot(e, 1)).isEqualTo(Prot.READ | Prot.NOEXEC);
    }

    @Test
    void stage1PrivilegedDevicePage() {
        Arm64Lpae f = Arm64Lpae.stage1(12, 48, 48);
        // type 0b11 | AttrIndx 2 (0x8) | AP[2:1] = 00 | SH outer | AF | nG
        long e = f.leaf(0xFEDC_B000L, 0, 12, Prot.READ | Prot.WRITE | Prot.PRIV | Prot.MMIO);
        assertThat(e).isEqualTo(0x0000_0000_FEDC_BE0BL);
        assertThat(f.prot(e, 0)).isEqualTo(Prot.READ | Prot.WRITE | Prot.PRIV | Prot.MMIO);
        // MMIO wins over CACHE: same bits as MMIO alone (SH outer, AttrIndx 2).
        assertThat(f.leaf(0xFEDC_B000L, 0, 12, Prot.READ | Prot.WRITE | Prot.PRIV | Prot.MMIO | Prot.CACHE))
                .isEqualTo(e);
    }

    @Test
    void stage1WriteOnlyBecomesReadWrite() {
        Arm64Lpae f = Arm64Lpae.stage1(12, 48, 48);
        assertThat(f.canonicalProt(Prot.WRITE)).isEqualTo(Prot.READ | Prot.WRITE);
        assertThat(f.leaf(0x1000, 0, 12, Prot.WRITE)).isEqualTo(f.leaf(0x1000, 0, 12, Prot.READ | Prot.WRITE));
        // type | AP[1] | SH outer | AF | nG, AttrIndx 0
        assertThat(f.leaf(0x1000, 0, 12, Prot.WRITE)).isEqualTo(0x1000L | 0x3 | 0x40 | 0x200 | 0x400 | 0x800);
    }

    @Test
    void stage2WriteOnlyPage() {
        Arm64Lpae f = Arm64Lpae.stage2(12, 48, 48);
        // type 0b11 | MemAttr 0x5 (<< 2 = 0x14) | S2AP 0b10 (0x80) | SH outer (0x200) | AF (0x400); no nG
        long e = f.leaf(0x8000_1000L, 0, 12, Prot.WRITE);
        assertThat(e).isEqualTo(0x0000_0000_8000_1697L);
        assertThat(f.canonicalProt(Prot.WRITE)).isEqualTo(Prot.WRITE);
        assertThat(f.prot(e, 0)).isEqualTo(Prot.WRITE);
    }

    @Test
    void stage2ReadWriteCacheableGigabyteBlock() {
        Arm64Lpae f = Arm64Lpae.stage2(12, 40, 48);
        // type 0b01 | MemAttr 0xF (0x3C) | S2AP 0b11 (0xC0) | SH inner (0x300) | AF (0x400)
        long e = f.leaf(0x40_4000_0000L, 2, 30, Prot.READ | Prot.WRITE | Prot.CACHE);
        assertThat(e).isEqualTo(0x0000_0040_4000_07FDL);
        assertThat(f.prot(e, 2)).isEqualTo(Prot.READ | Prot.WRITE | Prot.CACHE);
    }

    @Test
    void stage2ReadOnlyNoExecDevicePage() {
        Arm64Lpae f = Arm64Lpae.stage2(12, 48, 48);
        // type 0b11 | MemAttr 0x1 (0x4) | S2AP 0b01 (0x40) | SH outer | AF | XN (bit 54 only)
        long e = f.leaf(0x2000, 0, 12, Prot.READ | Prot.NOEXEC | Prot.MMIO);
        assertThat(e).isEqualTo(0x0040_0000_0000_2647L);
        assertThat(f.prot(e, 0)).isEqualTo(Prot.READ | Prot.NOEXEC | Prot.MMIO);
        // PRIV is not a stage-2 attribute.
        assertThat(f.supportedProt()).isEqualTo(Prot.ALL & ~Prot.PRIV);
        assertThat(f.leaf(0x2000, 0, 12, Prot.READ | Prot.NOEXEC | Prot.MMIO | Prot.PRIV)).isEqualTo(e);
    }

    @Test
    void granule64KWith52BitOutputPacksOaBits51To48IntoBits15To12() {
        Arm64Lpae f = Arm64Lpae.stage1(16, 48, 52);
        long pa = 0x000A_BCDE_F012_0000L;
        long e = f.leaf(pa, 0, 16, Prot.READ | Prot.WRITE | Prot.CACHE);
        // [47:16] = 0xBCDE_F012, [15:12] = OA[51:48] = 0xA, attributes 0xF47 as the 4K page above.
        assertThat(e).isEqualTo(0x0000_BCDE_F012_AF47L);
        assertThat(f.leafOa(e, 0)).isEqualTo(pa);
        // A 512M block and a 4T block at the top of the 52-bit space.
        long block = f.leaf(0x000F_FFFF_E000_0000L, 1, 29, Prot.READ);
        assertThat(block & 0xFFFF_FFFF_FFFF_F000L).isEqualTo(0x0000_FFFF_E000_F000L);
        assertThat(f.leafOa(block, 1)).isEqualTo(0x000F_FFFF_E000_0000L);
        long huge = f.leaf(0x000F_FC00_0000_0000L, 2, 42, Prot.READ);
        assertThat(f.kind(huge, 2)).isEqualTo(LEAF);
        assertThat(huge & 0xFFFF_FFFF_FFFF_F003L).isEqualTo(0x0000_FC00_0000_F001L);
        assertThat(f.leafOa(huge, 2)).isEqualTo(0x000F_FC00_0000_0000L);
        // Tables too.
        long t = f.table(0x000B_0000_0001_0000L, 1);
        assertThat(t).isEqualTo(0x0000_0000_0001_B003L);
        assertThat(f.tableAddress(t, 1)).isEqualTo(0x000B_0000_0001_0000L);
    }

    @Test
    void without52BitOutputBits15To12AreNotAddressBits() {
        Arm64Lpae f = Arm64Lpae.stage1(16, 48, 48);
        assertThat(f.leafOa(0x0000_1234_0001_F003L | 0x400, 0)).isEqualTo(0x0000_1234_0001_0000L);
        assertThat(f.tableAddress(0x0000_1234_0001_F003L, 1)).isEqualTo(0x0000_1234_0001_0000L);
        // With the 4K granule bits [15:12] are ordinary address bits.
        Arm64Lpae k4 = Arm64Lpae.stage1(12, 48, 48);
        assertThat(k4.tableAddress(0x0000_1234_0001_F003L, 1)).isEqualTo(0x0000_1234_0001_F000L);
    }

    @Test
    void tableDescriptorsCarryOnlyTypeAndAddress() {
        Arm64Lpae k4 = Arm64Lpae.stage1(12, 48, 48);
        assertThat(k4.table(0x8765_4000L, 2)).isEqualTo(0x8765_4003L);
        assertThat(k4.table(0xFFFF_FFFF_F000L, 3)).isEqualTo(0xFFFF_FFFF_F003L);
        assertThat(Arm64Lpae.stage2(12, 48, 48).table(0x8765_4000L, 1)).isEqualTo(0x8765_4003L);
        Arm64Lpae k16 = Arm64Lpae.stage1(14, 48, 48);
        assertThat(k16.table(0x1_0000_4000L, 1)).isEqualTo(0x1_0000_4003L);
        for (int l = 1; l <= 3; l++) {
            long t = k4.table(0x8765_4000L, l);
            assertThat(k4.kind(t, l)).isEqualTo(TABLE);
            assertThat(k4.tableAddress(t, l)).isEqualTo(0x8765_4000L);
        }
        // Hierarchical attributes and ignored bits do not disturb the address.
        long withApTable = 0x8765_4003L | (3L << 61) | (3L << 59) | (1L << 63) | (0xFFL << 51);
        assertThat(k4.tableAddress(withApTable, 2)).isEqualTo(0x8765_4000L);
        assertThat(k4.kind(withApTable, 2)).isEqualTo(TABLE);
        // 16K: bits [13:12] are not part of a table address.
        assertThat(k16.tableAddress(0x1_0000_7003L, 1)).isEqualTo(0x1_0000_4000L);
    }

    // ------------------------------------------------------------------ kinds (§1.1)

    @Test
    void kindsOfEmptyTableBlockPageAndReserved() {
        Arm64Lpae k4 = Arm64Lpae.stage1(12, 48, 48);
        for (int l = 0; l <= 3; l++) {
            assertThat(k4.kind(0, l)).as("zero at %d", l).isEqualTo(EMPTY);
            assertThat(k4.kind(0xFFFF_FFFF_FFFF_FFFEL, l)).as("bit 0 clear at %d", l).isEqualTo(EMPTY);
            assertThat(k4.kind(0x8765_4002L, l)).as("type 0b10 at %d", l).isEqualTo(EMPTY);
        }
        assertThat(k4.kind(0x1000_0003L, 0)).as("page").isEqualTo(LEAF);
        assertThat(k4.kind(0x1000_0001L, 0)).as("type 0b01 at level 0 is reserved").isEqualTo(EMPTY);
        assertThat(k4.kind(0x1000_0003L, 1)).isEqualTo(TABLE);
        assertThat(k4.kind(0x1000_0001L, 1)).as("2M block").isEqualTo(LEAF);
        assertThat(k4.kind(0x4000_0001L, 2)).as("1G block").isEqualTo(LEAF);
        assertThat(k4.kind(0x1000_0003L, 3)).isEqualTo(TABLE);
        assertThat(k4.kind(0x80_0000_0001L, 3)).as("no L0 blocks without LPA2").isEqualTo(EMPTY);

        Arm64Lpae k16 = Arm64Lpae.stage1(14, 48, 48);
        assertThat(k16.kind(0x1_0000_0001L, 1)).as("32M block").isEqualTo(LEAF);
        assertThat(k16.kind(0x10_0000_0001L, 2)).as("no 64G blocks without LPA2").isEqualTo(EMPTY);
        assertThat(k16.kind(0x10_0000_0003L, 2)).isEqualTo(TABLE);

        assertThat(Arm64Lpae.stage1(16, 48, 48).kind(0x400_0000_0001L, 2)).as("4T needs 52-bit output")
                .isEqualTo(EMPTY);
        assertThat(Arm64Lpae.stage1(16, 48, 52).kind(0x400_0000_0001L, 2)).isEqualTo(LEAF);
    }

    // ------------------------------------------------------------------ prot round trips

    static Stream<Arguments> variants() {
        List<Arguments> out = new ArrayList<>();
        for (Stage stage : Stage.values()) {
            for (int g : new int[] {12, 14, 16}) {
                for (boolean contig : new boolean[] {false, true}) {
                    for (boolean hd : new boolean[] {false, true}) {
                        out.add(Arguments.of(new Arm64Lpae(new Config(stage, g, 48, g == 16 ? 52 : 48, contig, hd))));
                    }
                }
            }
        }
        return out.stream();
    }

    /** Every prot with READ or WRITE, at every leaf level and size, survives leaf() then prot(). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void protRoundTripsAtEveryLevelAndSize(Arm64Lpae f) {
        int checked = 0;
        for (int level = 0; level <= f.topLevel(); level++) {
            long sizes = f.leafSizes(level);
            for (int sizeLg2 = 0; sizeLg2 < 64; sizeLg2++) {
                if ((sizes & (1L << sizeLg2)) == 0) {
                    continue;
                }
                long oa = (1L << (f.oaBits() - 1)) | (1L << sizeLg2) | (3L << f.itemLg2(level));
                oa &= ~((1L << f.itemLg2(level)) - 1);
                for (int p = 0; p <= Prot.ALL; p++) {
                    if ((p & (Prot.READ | Prot.WRITE)) == 0) {
                        continue;
                    }
                    long e = f.leaf(oa, level, sizeLg2, p);
                    String what = f.name() + " level " + level + " size 2^" + sizeLg2 + " " + Prot.toString(p);
                    assertThat(f.kind(e, level)).as(what).isEqualTo(LEAF);
                    assertThat(f.prot(e, level)).as(what).isEqualTo(f.canonicalProt(p));
                    assertThat(f.leafOa(e, level)).as(what).isEqualTo(oa);
                    assertThat(f.leafLg2(e, level)).as(what).isEqualTo(sizeLg2);
                    assertThat(f.leaf(oa, level, sizeLg2, f.prot(e, level))).as(what + " re-encoded").isEqualTo(e);
                    assertThat(f.isDirty(e, level)).as(what).isFalse();
                    checked++;
                }
            }
        }
        assertThat(checked).isGreaterThan(0);
    }

    @Test
    void canonicalProtPerStage() {
        Arm64Lpae s1 = Arm64Lpae.stage1(12, 48, 48);
        Arm64Lpae s2 = Arm64Lpae.stage2(12, 48, 48);
        assertThat(s1.supportedProt()).isEqualTo(Prot.ALL);
        assertThat(s1.canonicalProt(Prot.READ)).isEqualTo(Prot.READ);
        assertThat(s1.canonicalProt(Prot.WRITE | Prot.NOEXEC)).isEqualTo(Prot.READ | Prot.WRITE | Prot.NOEXEC);
        assertThat(s1.canonicalProt(Prot.READ | Prot.CACHE | Prot.MMIO)).isEqualTo(Prot.READ | Prot.MMIO);
        assertThat(s1.canonicalProt(Prot.READ | 0x400)).isEqualTo(Prot.READ);
        assertThat(s2.canonicalProt(Prot.WRITE | Prot.PRIV)).isEqualTo(Prot.WRITE);
        assertThat(s2.canonicalProt(Prot.READ | Prot.CACHE | Prot.MMIO)).isEqualTo(Prot.READ | Prot.MMIO);
    }

    @Test
    void decodesAttributesLinuxDoesNotWrite() {
        Arm64Lpae s1 = Arm64Lpae.stage1(12, 48, 48);
        long page = 0x1000L | 0x3 | 0x400;
        // AttrIndx 3 (inner NC, outer WB): neither CACHE nor MMIO; 4..7 are Device-nGnRnE in Linux's MAIR.
        assertThat(s1.prot(page | (3 << 2) | 0x40, 0)).isEqualTo(Prot.READ | Prot.WRITE);
        assertThat(s1.prot(page | (5 << 2) | 0x40, 0)).isEqualTo(Prot.READ | Prot.WRITE | Prot.MMIO);
        // Only one of PXN / UXN still forbids some instruction fetches.
        assertThat(s1.prot(page | 0x40 | (1L << 53), 0)).isEqualTo(Prot.READ | Prot.WRITE | Prot.NOEXEC);
        // DBM without hd does not grant write.
        assertThat(s1.prot(page | 0x40 | 0x80 | DBM, 0)).isEqualTo(Prot.READ);
        Arm64Lpae s2 = Arm64Lpae.stage2(12, 48, 48);
        // MemAttr 0b0000 is Device-nGnRnE.
        assertThat(s2.prot(page | 0xC0, 0)).isEqualTo(Prot.READ | Prot.WRITE | Prot.MMIO);
        assertThat(s2.prot(page | (0xA << 2) | 0x40, 0)).isEqualTo(Prot.READ);
        // Linux writes both bits 53 and 54 for a stage-2 NOEXEC.
        assertThat(s2.prot(page | (0x5 << 2) | 0x40 | (3L << 53), 0)).isEqualTo(Prot.READ | Prot.NOEXEC);
    }

    // ------------------------------------------------------------------ contiguous runs (§1.3)

    @Test
    void contiguousRunEntriesEachHoldTheirOwnAddress() {
        for (int g : new int[] {12, 14, 16}) {
            Arm64Lpae f = Arm64Lpae.stage1(g, 48, 48).withContiguous(true);
            for (int level = 0; level <= f.topLevel(); level++) {
                int item = f.itemLg2(level);
                long runSizes = f.leafSizes(level) & ~(1L << item);
                if (runSizes == 0) {
                    continue;
                }
                int run = Long.numberOfTrailingZeros(runSizes);
                long base = 1L << 40; // aligned to every run size
                int prot = Prot.READ | Prot.WRITE | Prot.CACHE;
                long single = f.leaf(base, level, item, prot);
                assertThat(single & CONT).isZero();
                assertThat(f.leafLg2(single, level)).isEqualTo(item);
                for (long i = 0; i < 1L << (run - item); i++) {
                    long oa = base + (i << item);
                    long e = f.leaf(oa, level, run, prot);
                    String what = f.name() + " level " + level + " slot " + i;
                    assertThat(e).as(what).isEqualTo(f.leaf(oa, level, item, prot) | CONT);
                    assertThat(f.leafOa(e, level)).as(what).isEqualTo(oa);
                    assertThat(f.leafLg2(e, level)).as(what).isEqualTo(run);
                    assertThat(f.prot(e, level)).as(what).isEqualTo(prot);
                }
            }
        }
    }

    @Test
    void contiguousRunSizesAndExactEntry() {
        Arm64Lpae f = Arm64Lpae.stage1(12, 48, 48).withContiguous(true);
        // Slot 5 of a 64K run at 0x10000: bit 52 | own OA 0x15000 | 0xF47.
        assertThat(f.leaf(0x15000L, 0, 16, Prot.READ | Prot.WRITE | Prot.CACHE)).isEqualTo(0x0010_0000_0001_5F47L);
        assertThat(Arm64Lpae.stage1(14, 48, 48).withContiguous(true).leafLg2(0x0010_0000_0000_4003L, 0))
                .isEqualTo(21);
        assertThat(Arm64Lpae.stage1(14, 48, 48).withContiguous(true).leafLg2(0x0010_0000_0200_0001L, 1))
                .isEqualTo(30);
        assertThat(Arm64Lpae.stage1(16, 48, 48).withContiguous(true).leafLg2(0x0010_0000_0001_0003L, 0))
                .isEqualTo(21);
        assertThat(Arm64Lpae.stage1(16, 48, 48).withContiguous(true).leafLg2(0x0010_0000_2000_0001L, 1))
                .isEqualTo(34);
        // Without the contiguous configuration the hint is ignored.
        assertThat(Arm64Lpae.stage1(12, 48, 48).leafLg2(0x0010_0000_0001_5F47L, 0)).isEqualTo(12);
    }

    // ------------------------------------------------------------------ dirty state (§1.3 HTTU)

    @Test
    void stage1DirtyCycleWithHd() {
        Arm64Lpae f = Arm64Lpae.stage1(12, 48, 48).withHd(true);
        assertThat(f.tracksDirty()).isTrue();
        long clean = f.leaf(0x1234_5000L, 0, 12, Prot.READ | Prot.WRITE | Prot.CACHE);
        // Writable-clean: DBM and AP[2] set on top of the plain encoding.
        assertThat(clean).isEqualTo(0x0008_0000_1234_5FC7L);
        assertThat(f.isDirty(clean, 0)).isFalse();
        assertThat(f.prot(clean, 0)).isEqualTo(Prot.READ | Prot.WRITE | Prot.CACHE);
        long dirty = f.markDirty(clean, 0);
        assertThat(dirty).isEqualTo(0x0008_0000_1234_5F47L);
        assertThat(f.isDirty(dirty, 0)).isTrue();
        assertThat(f.prot(dirty, 0)).isEqualTo(Prot.READ | Prot.WRITE | Prot.CACHE);
        assertThat(f.markDirty(dirty, 0)).isEqualTo(dirty);
        assertThat(f.clearDirty(dirty, 0)).isEqualTo(clean);
        assertThat(f.clearDirty(clean, 0)).isEqualTo(clean);

        long readOnly = f.leaf(0x1000, 0, 12, Prot.READ);
        assertThat(readOnly & DBM).isZero();
        assertThat(f.markDirty(readOnly, 0)).isEqualTo(readOnly);
        assertThat(f.clearDirty(readOnly, 0)).isEqualTo(readOnly);
        assertThat(f.isDirty(readOnly, 0)).isFalse();
        // A writable entry without DBM is not tracked.
        long untracked = 0x1000L | 0x3 | 0x40 | 0x400 | 0x800;
        assertThat(f.isDirty(untracked, 0)).isFalse();
        assertThat(f.clearDirty(untracked, 0)).isEqualTo(untracked);
    }

    @Test
    void stage2DirtyCycleWithHd() {
        Arm64Lpae f = Arm64Lpae.stage2(12, 48, 48).withHd(true);
        long clean = f.leaf(0x8000_1000L, 0, 12, Prot.READ | Prot.WRITE);
        // Writable-clean: DBM set, S2AP = 0b01 (W clear): 0x3 | 0x14 | 0x40 | 0x200 | 0x400.
        assertThat(clean).isEqualTo(0x0008_0000_8000_1657L);
        assertThat(f.isDirty(clean, 0)).isFalse();
        assertThat(f.prot(clean, 0)).isEqualTo(Prot.READ | Prot.WRITE);
        long dirty = f.markDirty(clean, 0);
        assertThat(dirty).isEqualTo(clean | 0x80);
        assertThat(f.isDirty(dirty, 0)).isTrue();
        assertThat(f.prot(dirty, 0)).isEqualTo(Prot.READ | Prot.WRITE);
        assertThat(f.clearDirty(dirty, 0)).isEqualTo(clean);
        // Write-only stays expressible.
        long writeOnly = f.leaf(0x2000, 0, 12, Prot.WRITE);
        assertThat(f.prot(writeOnly, 0)).isEqualTo(Prot.WRITE);
        assertThat(f.prot(f.markDirty(writeOnly, 0), 0)).isEqualTo(Prot.WRITE);
    }

    @Test
    void withoutHdNothingIsTracked() {
        for (Arm64Lpae f : new Arm64Lpae[] {Arm64Lpae.stage1(12, 48, 48), Arm64Lpae.stage2(12, 48, 48)}) {
            assertThat(f.tracksDirty()).isFalse();
            long e = f.leaf(0x1000, 0, 12, Prot.READ | Prot.WRITE);
            assertThat(e & DBM).isZero();
            assertThat(f.isDirty(e, 0)).isFalse();
            assertThat(f.isDirty(e | DBM, 0)).isFalse();
            assertThat(f.markDirty(e, 0)).isEqualTo(e);
            assertThat(f.clearDirty(e, 0)).isEqualTo(e);
        }
    }

    // ------------------------------------------------------------------ randomised round trips

    @Test
    void randomLeavesAndTablesRoundTrip() {
        for (long seed = 0; seed < 200; seed++) {
            checkSeed(seed);
        }
    }

    private static void checkSeed(long seed) {
        Random rnd = new Random(seed);
        int g = new int[] {12, 14, 16}[rnd.nextInt(3)];
        Stage stage = rnd.nextBoolean() ? Stage.S1 : Stage.S2;
        int maxIas = stage == Stage.S2 && g == 16 ? 52 : 48;
        int ias = 32 + rnd.nextInt(maxIas - 31);
        int oas = g == 16 && rnd.nextBoolean() ? 52 : 32 + rnd.nextInt(17);
        Arm64Lpae f = new Arm64Lpae(new Config(stage, g, ias, oas, rnd.nextBoolean(), rnd.nextBoolean()));
        String ctx = "seed " + seed + " (" + f.name() + ")";
        for (int i = 0; i < 50; i++) {
            int level = rnd.nextInt(f.topLevel() + 1);
            long sizes = f.leafSizes(level);
            long oaLimitMask = oas == 64 ? -1L : (1L << oas) - 1;
            if (level > 0) {
                long tablePa = rnd.nextLong() & oaLimitMask & -(1L << g);
                long t = f.table(tablePa, level);
                assertThat(f.kind(t, level)).as(ctx).isEqualTo(TABLE);
                assertThat(f.tableAddress(t, level)).as(ctx).isEqualTo(tablePa);
            }
            if (sizes == 0) {
                continue;
            }
            int sizeLg2 = pick(rnd, sizes);
            int item = f.itemLg2(level);
            long oa = rnd.nextLong() & oaLimitMask & -(1L << item);
            int prot = rnd.nextInt(Prot.ALL + 1) | (rnd.nextBoolean() ? Prot.READ : Prot.WRITE);
            long e = f.leaf(oa, level, sizeLg2, prot);
            String what = ctx + " level " + level + " size 2^" + sizeLg2 + " oa 0x" + Long.toHexString(oa) + " "
                    + Prot.toString(prot);
            assertThat(f.kind(e, level)).as(what).isEqualTo(LEAF);
            assertThat(f.leafOa(e, level)).as(what).isEqualTo(oa);
            assertThat(f.leafLg2(e, level)).as(what).isEqualTo(sizeLg2);
            assertThat(f.prot(e, level)).as(what).isEqualTo(f.canonicalProt(prot));
            if (f.tracksDirty() && Prot.canWrite(prot)) {
                long d = f.markDirty(e, level);
                assertThat(f.isDirty(d, level)).as(what).isTrue();
                assertThat(f.prot(d, level)).as(what).isEqualTo(f.canonicalProt(prot));
                assertThat(f.leafOa(d, level)).as(what).isEqualTo(oa);
                assertThat(f.clearDirty(d, level)).as(what).isEqualTo(e);
            }
        }
    }

    private static int pick(Random rnd, long bitmap) {
        int n = rnd.nextInt(Long.bitCount(bitmap));
        long b = bitmap;
        for (int i = 0; i < n; i++) {
            b &= b - 1;
        }
        return Long.numberOfTrailingZeros(b);
    }

    // ------------------------------------------------------------------ hot paths allocate nothing

    @Test
    void encodeAndDecodeAllocateNothing() {
        java.lang.management.ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        Assumptions.assumeTrue(mx instanceof com.sun.management.ThreadMXBean,
                "needs com.sun.management.ThreadMXBean to count allocated bytes");
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) mx;
        Assumptions.assumeTrue(threads.isThreadAllocatedMemorySupported() && threads.isThreadAllocatedMemoryEnabled());
        Arm64Lpae f = Arm64Lpae.stage1(16, 48, 52).withContiguous(true).withHd(true);
        int rounds = 20_000;
        long sink = exercise(f, rounds);
        long tid = Thread.currentThread().getId();
        long before = threads.getThreadAllocatedBytes(tid);
        sink += exercise(f, rounds);
        long allocated = threads.getThreadAllocatedBytes(tid) - before;
        assertThat(allocated).as("bytes allocated by %d rounds (sink %d)", rounds, sink).isLessThan(rounds);
    }

    private static long exercise(Arm64Lpae f, int rounds) {
        long sum = 0;
        for (int i = 0; i < rounds; i++) {
            long oa = (long) i << 16;
            int level = i & 1;
            long e = f.leaf(oa, level, f.itemLg2(level), (i & Prot.ALL) | Prot.READ);
            sum += f.kind(e, level) + f.leafOa(e, level) + f.leafLg2(e, level) + f.prot(e, level);
            sum += f.markDirty(e, level) + f.clearDirty(e, level) + (f.isDirty(e, level) ? 1 : 0);
            sum += f.tableAddress(f.table(oa, 1), 1) + f.canonicalProt(i) + f.leafSizes(level) + f.topItemsLg2(2);
        }
        return sum;
    }
}
