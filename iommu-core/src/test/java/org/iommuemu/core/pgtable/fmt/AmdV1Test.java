package org.iommuemu.core.pgtable.fmt;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.iommuemu.core.pgtable.PtFormat.EMPTY;
import static org.iommuemu.core.pgtable.PtFormat.LEAF;
import static org.iommuemu.core.pgtable.PtFormat.TABLE;

import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.Prot;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class AmdV1Test {
    private static final int RW = Prot.READ | Prot.WRITE;
    /** IR (61) | IW (62). */
    private static final long IR_IW = 0x6000_0000_0000_0000L;
    /** NextLevel = 7 in [11:9]. */
    private static final long NL7 = 0xe00L;

    private final AmdV1 f = AmdV1.create();

    // ------------------------------------------------------------------ geometry

    @Test
    void geometryOfTheDefaultTable() {
        assertThat(f.levels()).isEqualTo(3);
        assertThat(f.topLevel()).isEqualTo(2);
        assertThat(f.maxTopLevel()).isEqualTo(5);
        assertThat(f.vaBits()).as("the width the table can grow to").isEqualTo(64);
        assertThat(f.vaSignExtended()).isFalse();
        assertThat(f.oaBits()).isEqualTo(52);
        assertThat(f.entryLg2()).isEqualTo(3);
        int[] itemLg2 = {12, 21, 30, 39, 48, 57};
        for (int l = 0; l <= 5; l++) {
            assertThat(f.itemLg2(l)).as("level %d", l).isEqualTo(itemLg2[l]);
            assertThat(f.tableItemsLg2(l)).as("level %d", l).isEqualTo(l == 5 ? 7 : 9);
            assertThat(f.topItemsLg2(l)).as("level %d", l).isEqualTo(l == 5 ? 7 : 9);
        }
        assertThat(f.itemLg2(5) + f.topItemsLg2(5)).as("six levels cover [63:0]").isEqualTo(64);
        assertThat(f.itemLg2(f.topLevel()) + f.topItemsLg2(f.topLevel())).as("three levels: 39 bits").isEqualTo(39);
        assertThat(f.supportedProt()).isEqualTo(Prot.READ | Prot.WRITE | Prot.CACHE);
        assertThat(f.tracksDirty()).isTrue();
        assertThat(f.name()).isEqualTo("amd-v1 3-level (grows to 6) oa52 pages 4K..256G");
    }

    @ParameterizedTest
    @CsvSource({"1, 0", "2, 1", "3, 2", "4, 3", "5, 4", "6, 5"})
    void initialLevels(int levels, int topLevel) {
        AmdV1 g = AmdV1.levels(levels);
        assertThat(g.levels()).isEqualTo(levels);
        assertThat(g.topLevel()).isEqualTo(topLevel);
        assertThat(g.maxTopLevel()).isEqualTo(5);
        assertThat(g.vaBits()).isEqualTo(64);
        assertThat(g.pageSizes()).isEqualTo(f.pageSizes());
        X86FamilyChecks.leafSizesAreConsistent(g);
    }

    @Test
    void leafSizesAreEveryPowerOfTwoFrom4KTo256G() {
        assertThat(f.leafSizes(0)).as("4K..1M").isEqualTo(0x0000_0000_001f_f000L);
        assertThat(f.leafSizes(1)).as("2M..512M").isEqualTo(0x0000_0000_3fe0_0000L);
        assertThat(f.leafSizes(2)).as("1G..256G").isEqualTo(0x0000_007f_c000_0000L);
        for (int l = 3; l <= 5; l++) {
            assertThat(f.leafSizes(l)).as("level %d holds no leaves", l).isZero();
        }
        assertThat(f.pageSizes()).isEqualTo(Bits.maskHiLo(38, 12));
        assertThat(Bits.bit(f.pageSizes(), 39)).as("never 512G (erratum)").isFalse();
        assertThat(AmdV1.levels(6).leafSizes(5)).as("the AMD level-6 table holds no leaf").isZero();
    }

    @Test
    void configurationsCompareByValue() {
        assertThat(AmdV1.create()).isEqualTo(AmdV1.levels(3)).hasSameHashCodeAs(AmdV1.levels(3))
                .isNotEqualTo(AmdV1.levels(4)).isNotEqualTo(AmdV1.create().withOaBits(48));
        assertThat(AmdV1.levels(6).withOaBits(40)).hasToString("amd-v1 6-level (grows to 6) oa40 pages 4K..256G");
    }

    // ------------------------------------------------------------------ bit-exact encodings

    @Test
    void naturalSizeLeaves() {
        // PR | IR | IW, NextLevel 0
        assertThat(f.leaf(0x1234_5000L, 0, 12, RW)).isEqualTo(0x6000_0000_1234_5001L);
        assertThat(f.leaf(0x4020_0000L, 1, 21, Prot.WRITE)).isEqualTo(0x4000_0000_4020_0001L);
        // FC (60) for CACHE, read-only 1G
        assertThat(f.leaf(0x4000_0000L, 2, 30, Prot.READ | Prot.CACHE)).isEqualTo(0x3000_0000_4000_0001L);
        // NOEXEC, PRIV and MMIO leave no trace
        assertThat(f.leaf(0x5000L, 0, 12, Prot.READ | Prot.NOEXEC | Prot.PRIV | Prot.MMIO))
                .isEqualTo(0x2000_0000_0000_5001L);
        assertThat(f.leaf(0xf_ffff_ffff_f000L, 0, 12, RW)).isEqualTo(0x600f_ffff_ffff_f001L);
    }

    @Test
    void nextLevel7PagesAtLevel0() {
        // 8K: bit 12 = 0
        long k8 = f.leaf(0x1234_6000L, 0, 13, RW);
        assertThat(k8).isEqualTo(IR_IW | 0x1234_6000L | NL7 | 1);
        assertThat(Bits.bit(k8, 12)).isFalse();
        // 16K: bit 12 = 1, bit 13 = 0
        long k16 = f.leaf(0x1234_8000L, 0, 14, RW);
        assertThat(k16).isEqualTo(IR_IW | 0x1234_9000L | NL7 | 1);
        assertThat(Bits.bit(k16, 12)).isTrue();
        assertThat(Bits.bit(k16, 13)).isFalse();
        // 64K: bits [14:12] = 1, bit 15 = 0
        long k64 = f.leaf(0x1235_0000L, 0, 16, RW);
        assertThat(k64).isEqualTo(IR_IW | 0x1235_7000L | NL7 | 1);
        // 1M (the largest at level 0): bits [18:12] = 1, bit 19 = 0
        long m1 = f.leaf(0x1230_0000L, 0, 20, RW);
        assertThat(m1).isEqualTo(IR_IW | 0x1237_f000L | NL7 | 1);

        long[] entries = {k8, k16, k64, m1};
        long[] bases = {0x1234_6000L, 0x1234_8000L, 0x1235_0000L, 0x1230_0000L};
        int[] sizes = {13, 14, 16, 20};
        for (int i = 0; i < entries.length; i++) {
            assertThat(AmdV1.nextLevel(entries[i])).isEqualTo(7);
            assertThat(f.kind(entries[i], 0)).as("size 2^%d", sizes[i]).isEqualTo(LEAF);
            assertThat(f.leafLg2(entries[i], 0)).as("size 2^%d", sizes[i]).isEqualTo(sizes[i]);
            assertThat(f.leafOa(entries[i], 0)).as("size 2^%d", sizes[i]).isEqualTo(bases[i]);
            assertThat(f.prot(entries[i], 0)).isEqualTo(RW);
        }
    }

    @Test
    void theSpecTwoMegabyteEncoding() {
        // The size code of a 2M page: bits [19:12] = 1, bit 20 = 0. It decodes to 2^21 wherever it is found...
        long e = IR_IW | 0x4000_0000L | 0xf_f000L | NL7 | 1;
        assertThat(f.leafLg2(e, 0)).isEqualTo(21);
        assertThat(f.leafLg2(e, 1)).isEqualTo(21);
        assertThat(f.leafOa(e, 0)).isEqualTo(0x4000_0000L);
        // ...but no level holds it as a NextLevel 7 page: at level 0 it would fill the whole table (that is a
        // level-1 item), and at level 1 it is the natural size, written with NextLevel 0.
        assertThat(f.kind(e, 0)).isEqualTo(EMPTY);
        assertThat(f.kind(e, 1)).isEqualTo(EMPTY);
        assertThat(f.leaf(0x4000_0000L, 1, 21, RW)).isEqualTo(IR_IW | 0x4000_0000L | 1);
    }

    @Test
    void nextLevel7PagesAtLevels1And2() {
        // 4M at level 1: bits [20:12] = 1, bit 21 = 0
        long m4 = f.leaf(0x8040_0000L, 1, 22, RW);
        assertThat(m4).isEqualTo(0x6000_0000_805f_fe01L);
        assertThat(Bits.extract(m4, 12, 9)).isEqualTo(0x1ff);
        assertThat(Bits.bit(m4, 21)).isFalse();
        assertThat(f.kind(m4, 1)).isEqualTo(LEAF);
        assertThat(f.leafLg2(m4, 1)).isEqualTo(22);
        assertThat(f.leafOa(m4, 1)).isEqualTo(0x8040_0000L);
        // 512M at level 1: bits [27:12] = 1, bit 28 = 0
        assertThat(f.leaf(0x2_0000_0000L, 1, 29, RW)).isEqualTo(IR_IW | 0x2_0fff_f000L | NL7 | 1);
        // 256G at level 2, read-only: bits [36:12] = 1, bit 37 = 0
        long g256 = f.leaf(0x40_0000_0000L, 2, 38, Prot.READ);
        assertThat(g256).isEqualTo(0x2000_005f_ffff_fe01L);
        assertThat(f.kind(g256, 2)).isEqualTo(LEAF);
        assertThat(f.leafLg2(g256, 2)).isEqualTo(38);
        assertThat(f.leafOa(g256, 2)).isEqualTo(0x40_0000_0000L);
    }

    @Test
    void runEntriesAreIdenticalAndDecodeToTheRunBase() {
        int runs = 0;
        for (int level = 0; level <= 2; level++) {
            int item = f.itemLg2(level);
            for (int size = item + 1; size <= item + 8; size++) {
                // a base with address bits above the run, so clearing the size code is visible
                long base = Bits.alignDown(0x000a_5a5a_5a5a_5000L, size);
                long first = f.leaf(base, level, size, RW | Prot.CACHE);
                int slots = 1 << (size - item);
                for (int i = 0; i < slots; i++) {
                    long slotOa = base + ((long) i << item);
                    long e = f.leaf(slotOa, level, size, RW | Prot.CACHE);
                    String what = "level " + level + " size 2^" + size + " slot " + i;
                    assertThat(e).as(what).isEqualTo(first);
                    assertThat(f.kind(e, level)).as(what).isEqualTo(LEAF);
                    assertThat(f.leafOa(e, level)).as(what).isEqualTo(base);
                    assertThat(f.leafLg2(e, level)).as(what).isEqualTo(size);
                }
                runs++;
            }
        }
        assertThat(runs).isEqualTo(3 * 8);
    }

    @Test
    void tableEntriesNameTheNextTablesAmdLevel() {
        for (int level = 1; level <= 5; level++) {
            long t = f.table(0x7_ffff_f000L, level);
            // PR | IR | IW | NextLevel = level (the table below is AMD level `level`)
            assertThat(t).as("level %d", level).isEqualTo(IR_IW | 0x7_ffff_f000L | ((long) level << 9) | 1);
            assertThat(AmdV1.nextLevel(t)).isEqualTo(level);
            assertThat(f.kind(t, level)).as("level %d", level).isEqualTo(TABLE);
            assertThat(f.tableAddress(t, level)).as("level %d", level).isEqualTo(0x7_ffff_f000L);
        }
        assertThat(f.table(0x1000L, 1)).isEqualTo(0x6000_0000_0000_1201L);
        assertThat(f.table(0x1000L, 5)).isEqualTo(0x6000_0000_0000_1a01L);
    }

    @Test
    void growingPutsTheOldTopInEntry0OfTheNewTop() {
        // a 3-level table (top level 2) grows to 4 levels: the new level-3 table's entry 0 points to the old top
        long oldTop = 0x12_3000L;
        long entry0 = f.table(oldTop, f.topLevel() + 1);
        assertThat(entry0).isEqualTo(IR_IW | oldTop | (3L << 9) | 1);
        assertThat(f.kind(entry0, 3)).isEqualTo(TABLE);
        assertThat(f.tableAddress(entry0, 3)).isEqualTo(oldTop);
    }

    // ------------------------------------------------------------------ kind

    @Test
    void kindOfEmptyTableLeafAndReservedEntries() {
        for (int level = 0; level <= 5; level++) {
            assertThat(f.kind(0, level)).as("zero at level %d", level).isEqualTo(EMPTY);
            long notPresent = IR_IW | AmdV1.FC | AmdV1.D | NL7 | 0x1234_5000L;
            assertThat(f.kind(notPresent, level)).as("PR clear at level %d", level).isEqualTo(EMPTY);
        }
        assertThat(f.kind(1, 0)).as("PR alone: a 4K leaf with no permission").isEqualTo(LEAF);
        assertThat(f.prot(1, 0)).isZero();
        for (int nl = 1; nl <= 6; nl++) {
            assertThat(f.kind(IR_IW | ((long) nl << 9) | 0x1000L | 1, 0))
                    .as("a level-0 entry cannot point to a table (NextLevel %d)", nl)
                    .isEqualTo(EMPTY);
        }
        for (int level = 3; level <= 5; level++) {
            assertThat(f.kind(IR_IW | 0x80_0000_0000L | 1, level))
                    .as("no natural-size leaf at level %d", level)
                    .isEqualTo(EMPTY);
            assertThat(f.kind(IR_IW | NL7 | 0x7f_ffff_f000L | 1, level))
                    .as("no NextLevel 7 leaf at level %d", level)
                    .isEqualTo(EMPTY);
        }
        // level skipping and pointing upwards
        assertThat(f.kind(f.table(0x1000L, 2), 3)).as("NextLevel 2 in a level-3 entry (skip)").isEqualTo(EMPTY);
        assertThat(f.kind(f.table(0x1000L, 4), 3)).as("NextLevel 4 in a level-3 entry").isEqualTo(EMPTY);
        assertThat(f.kind(f.table(0x1000L, 1), 2)).as("NextLevel 1 in a level-2 entry (skip)").isEqualTo(EMPTY);
        // NextLevel 7 whose size code is out of the level's range
        long k8 = f.leaf(0x2000L, 0, 13, RW);
        assertThat(f.kind(k8, 1)).as("an 8K code in a level-1 entry").isEqualTo(EMPTY);
        assertThat(f.kind(IR_IW | NL7 | 0x000f_ffff_ffff_f000L | 1, 2)).as("all-ones address field").isEqualTo(EMPTY);
        assertThat(f.kind(-1L, 0)).isEqualTo(EMPTY);
    }

    @Test
    void naturalLeafAddressDropsBitsBelowThePageSize() {
        assertThat(f.leafOa(IR_IW | 0x4020_0000L | 0x1f_f000L | 1, 1)).isEqualTo(0x4020_0000L);
        assertThat(f.leafOa(IR_IW | 0x4000_0000L | 0x3fff_f000L | 1, 2)).isEqualTo(0x4000_0000L);
        assertThat(f.leafOa(IR_IW | 0x4000_1000L | 1, 0)).isEqualTo(0x4000_1000L);
    }

    // ------------------------------------------------------------------ round trips

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4, 5, 6})
    void protRoundTripsAtEveryLeafSize(int levels) {
        X86FamilyChecks.protRoundTripsAtEveryLeafSize(AmdV1.levels(levels));
        X86FamilyChecks.protRoundTripsAtEveryLeafSize(AmdV1.levels(levels).withOaBits(32));
    }

    @Test
    void everyProtDecodesAsExpected() {
        for (int p : X86FamilyChecks.mappableProts()) {
            assertThat(f.canonicalProt(p)).as(Prot.toString(p)).isEqualTo(p & (Prot.READ | Prot.WRITE | Prot.CACHE));
        }
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 0x5eed_1234L})
    void randomEntriesRoundTrip(long seed) {
        X86FamilyChecks.randomEntriesRoundTrip(f, seed);
        X86FamilyChecks.randomEntriesRoundTrip(AmdV1.levels(6).withOaBits(44), seed);
    }

    // ------------------------------------------------------------------ dirty tracking

    @Test
    void dirtyTransitions() {
        long clean = f.leaf(0x20_0000L, 1, 21, RW);
        assertThat(f.isDirty(clean, 1)).isFalse();
        long dirty = f.markDirty(clean, 1);
        // hardware sets A (bit 5) and D (bit 6)
        assertThat(dirty).isEqualTo(clean | 0x60L);
        assertThat(f.isDirty(dirty, 1)).isTrue();
        assertThat(f.kind(dirty, 1)).isEqualTo(LEAF);
        assertThat(f.leafOa(dirty, 1)).isEqualTo(0x20_0000L);
        long cleaned = f.clearDirty(dirty, 1);
        assertThat(cleaned).as("D cleared, A kept").isEqualTo(clean | 0x20L);
        assertThat(f.isDirty(cleaned, 1)).isFalse();
        assertThat(f.isDirty(f.markDirty(cleaned, 1), 1)).isTrue();
    }

    @Test
    void dirtyStateOfARunLivesInEachEntry() {
        // a 64K page: 16 identical entries; hardware dirties one of them
        long[] slots = new long[16];
        for (int i = 0; i < slots.length; i++) {
            slots[i] = f.leaf(0x10_0000L + i * 0x1000L, 0, 16, RW);
        }
        slots[5] = f.markDirty(slots[5], 0);
        boolean anyDirty = false;
        for (int i = 0; i < slots.length; i++) {
            anyDirty |= f.isDirty(slots[i], 0);
            assertThat(f.isDirty(slots[i], 0)).as("slot %d", i).isEqualTo(i == 5);
            assertThat(f.leafOa(slots[i], 0)).as("slot %d", i).isEqualTo(0x10_0000L);
            assertThat(f.leafLg2(slots[i], 0)).as("the D bit does not disturb the size code").isEqualTo(16);
        }
        assertThat(anyDirty).isTrue();
        assertThat(f.clearDirty(slots[5], 0)).isEqualTo(slots[0] | AmdV1.A);
    }

    // ------------------------------------------------------------------ validation

    @ParameterizedTest
    @ValueSource(ints = {-1, 0, 7, 8})
    void rejectsLevelCounts(int levels) {
        assertThatThrownBy(() -> AmdV1.levels(levels))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("levels")
                .hasMessageContaining(String.valueOf(levels));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 12, 31, 53, 64})
    void rejectsOutputAddressWidths(int oaBits) {
        assertThatThrownBy(() -> AmdV1.create().withOaBits(oaBits))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("oaBits")
                .hasMessageContaining(String.valueOf(oaBits));
    }
}
