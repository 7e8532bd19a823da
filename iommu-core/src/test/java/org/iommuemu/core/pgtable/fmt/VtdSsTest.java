package org.iommuemu.core.pgtable.fmt;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.iommuemu.core.pgtable.PtFormat.EMPTY;
import static org.iommuemu.core.pgtable.PtFormat.LEAF;
import static org.iommuemu.core.pgtable.PtFormat.TABLE;

import org.iommuemu.core.pgtable.Prot;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class VtdSsTest {
    private static final long K4 = 1L << 12;
    private static final long M2 = 1L << 21;
    private static final long G1 = 1L << 30;

    // ------------------------------------------------------------------ geometry

    @ParameterizedTest
    @CsvSource({"3, 39", "4, 48", "5, 57"})
    void geometryPerLevelCount(int levels, int vaBits) {
        VtdSs f = VtdSs.levels(levels);
        assertThat(f.levels()).isEqualTo(levels);
        assertThat(f.vaBits()).isEqualTo(vaBits);
        assertThat(f.vaSignExtended()).isFalse();
        assertThat(f.oaBits()).isEqualTo(48);
        assertThat(f.entryLg2()).isEqualTo(3);
        assertThat(f.topLevel()).isEqualTo(levels - 1);
        assertThat(f.maxTopLevel()).isEqualTo(levels - 1);
        int[] itemLg2 = {12, 21, 30, 39, 48};
        for (int l = 0; l < levels; l++) {
            assertThat(f.itemLg2(l)).as("level %d", l).isEqualTo(itemLg2[l]);
            assertThat(f.tableItemsLg2(l)).as("level %d", l).isEqualTo(9);
            assertThat(f.topItemsLg2(l)).as("level %d", l).isEqualTo(9);
        }
        assertThat(f.itemLg2(f.topLevel()) + f.topItemsLg2(f.topLevel())).isEqualTo(vaBits);
        assertThat(f.leafSizes(0)).isEqualTo(K4);
        assertThat(f.leafSizes(1)).isEqualTo(M2);
        assertThat(f.leafSizes(2)).isEqualTo(G1);
        for (int l = 3; l < levels; l++) {
            assertThat(f.leafSizes(l)).as("level %d holds no leaves", l).isZero();
        }
        assertThat(f.pageSizes()).isEqualTo(K4 | M2 | G1);
        assertThat(f.supportedProt()).isEqualTo(Prot.READ | Prot.WRITE);
        assertThat(f.tracksDirty()).isFalse();
        X86FamilyChecks.leafSizesAreConsistent(f);
    }

    @Test
    void largePagesFollowSllps() {
        VtdSs f = VtdSs.levels(4);
        assertThat(f.largePages()).isEqualTo(VtdSs.SLLPS_2M | VtdSs.SLLPS_1G);
        assertThat(f.withLargePages(0).pageSizes()).isEqualTo(K4);
        assertThat(f.withLargePages(VtdSs.SLLPS_2M).pageSizes()).isEqualTo(K4 | M2);
        assertThat(f.withLargePages(VtdSs.SLLPS_1G).pageSizes()).isEqualTo(K4 | G1);
        assertThat(f.withLargePages(VtdSs.SLLPS_1G).leafSizes(1)).isZero();
        assertThat(VtdSs.levels(3).withLargePages(VtdSs.SLLPS_1G).leafSizes(2))
                .as("a 3-level table may hold 1 GB leaves in its top table")
                .isEqualTo(G1);
    }

    @Test
    void namesTheConfiguration() {
        assertThat(VtdSs.levels(4).name()).isEqualTo("vtd-ss 4-level va48 oa48 pages 4K,2M,1G");
        assertThat(VtdSs.levels(5).withOaBits(52).withLargePages(VtdSs.SLLPS_2M).withSnoop(true)
                        .withAccessDirty(true).name())
                .isEqualTo("vtd-ss 5-level va57 oa52 pages 4K,2M snp ad");
        assertThat(VtdSs.levels(3).withLargePages(0)).hasToString("vtd-ss 3-level va39 oa48 pages 4K");
    }

    @Test
    void configurationsCompareByValue() {
        assertThat(VtdSs.levels(4).withSnoop(true)).isEqualTo(VtdSs.levels(4).withSnoop(true))
                .hasSameHashCodeAs(VtdSs.levels(4).withSnoop(true))
                .isNotEqualTo(VtdSs.levels(4));
        assertThat(VtdSs.levels(4).withOaBits(46)).isNotEqualTo(VtdSs.levels(4));
    }

    // ------------------------------------------------------------------ bit-exact encodings

    @Test
    void twoMegabyteReadWriteLeafSetsPs() {
        VtdSs f = VtdSs.levels(4);
        // bits 0 (R), 1 (W), 7 (PS); address 0x2_0000_0000 in [51:12]
        long e = f.leaf(0x2_0000_0000L, 1, 21, Prot.READ | Prot.WRITE);
        assertThat(e).isEqualTo(0x0000_0002_0000_0083L);
        assertThat(f.kind(e, 1)).isEqualTo(LEAF);
        assertThat(f.leafOa(e, 1)).isEqualTo(0x2_0000_0000L);
        assertThat(f.leafLg2(e, 1)).isEqualTo(21);
        assertThat(f.prot(e, 1)).isEqualTo(Prot.READ | Prot.WRITE);
    }

    @Test
    void knownLeaves() {
        VtdSs f = VtdSs.levels(4);
        // 4 KB read-only: R only, no PS at level 0
        assertThat(f.leaf(0x1234_5000L, 0, 12, Prot.READ)).isEqualTo(0x1234_5001L);
        // 4 KB write-only: second stage can express it (W without R)
        assertThat(f.leaf(0x1234_5000L, 0, 12, Prot.WRITE)).isEqualTo(0x1234_5002L);
        // 1 GB write-only at 256 GB: W | PS
        assertThat(f.leaf(0x40_0000_0000L, 2, 30, Prot.WRITE)).isEqualTo(0x0000_0040_0000_0082L);
        // attributes the format cannot express leave no trace
        assertThat(f.leaf(0x1000L, 0, 12, Prot.ALL)).isEqualTo(0x1003L);
        // the top of a 52-bit host address space
        assertThat(f.withOaBits(52).leaf(0xf_ffff_ffff_f000L, 0, 12, Prot.READ | Prot.WRITE))
                .isEqualTo(0x000f_ffff_ffff_f003L);
    }

    @Test
    void snoopControlTurnsCacheIntoSnp() {
        VtdSs plain = VtdSs.levels(4);
        VtdSs snoop = plain.withSnoop(true);
        assertThat(snoop.supportedProt()).isEqualTo(Prot.READ | Prot.WRITE | Prot.CACHE);
        // SNP is bit 11
        assertThat(snoop.leaf(0xabc000L, 0, 12, Prot.READ | Prot.WRITE | Prot.CACHE)).isEqualTo(0xabc803L);
        assertThat(snoop.leaf(0x4000_0000L, 2, 30, Prot.READ | Prot.CACHE)).isEqualTo(0x4000_0881L);
        assertThat(snoop.prot(0xabc803L, 0)).isEqualTo(Prot.READ | Prot.WRITE | Prot.CACHE);
        // without ECAP.SC the bit is never written, and CACHE is not part of the canonical prot
        assertThat(plain.leaf(0xabc000L, 0, 12, Prot.READ | Prot.WRITE | Prot.CACHE)).isEqualTo(0xabc003L);
        assertThat(plain.canonicalProt(Prot.READ | Prot.CACHE)).isEqualTo(Prot.READ);
    }

    @Test
    void tablesAreReadWriteAndAddress() {
        VtdSs f = VtdSs.levels(5);
        for (int level = 1; level <= 4; level++) {
            long t = f.table(0x7_ffff_f000L, level);
            assertThat(t).as("level %d", level).isEqualTo(0x0000_0007_ffff_f003L);
            assertThat(f.kind(t, level)).as("level %d", level).isEqualTo(TABLE);
            assertThat(f.tableAddress(t, level)).as("level %d", level).isEqualTo(0x7_ffff_f000L);
        }
        // hardware-set A and ignored/software bits do not disturb the address
        long withA = f.table(0x1000L, 1) | VtdSs.A | (1L << 10) | (1L << 52) | (1L << 63);
        assertThat(f.kind(withA, 1)).isEqualTo(TABLE);
        assertThat(f.tableAddress(withA, 1)).isEqualTo(0x1000L);
    }

    // ------------------------------------------------------------------ kind

    @Test
    void kindOfEmptyTableLeafAndReservedEntries() {
        VtdSs f = VtdSs.levels(5);
        for (int level = 0; level <= 4; level++) {
            assertThat(f.kind(0, level)).as("zero at level %d", level).isEqualTo(EMPTY);
            // no present bit: an address, PS, A, D and SNP without R or W is still nothing
            long noRw = 0x1234_5000L | VtdSs.PS | VtdSs.A | VtdSs.D | VtdSs.SNP;
            assertThat(f.kind(noRw, level)).as("no R/W at level %d", level).isEqualTo(EMPTY);
        }
        assertThat(f.kind(VtdSs.R, 0)).isEqualTo(LEAF);
        assertThat(f.kind(VtdSs.W | 0x5000L, 0)).isEqualTo(LEAF);
        assertThat(f.kind(VtdSs.R | VtdSs.PS | 0x5000L, 0)).as("bit 7 means nothing in an SS-PTE").isEqualTo(LEAF);
        for (int level = 1; level <= 2; level++) {
            assertThat(f.kind(VtdSs.R | VtdSs.W | 0x20_0000L, level)).as("level %d", level).isEqualTo(TABLE);
            assertThat(f.kind(VtdSs.W | VtdSs.PS | 0x4000_0000L, level)).as("level %d", level).isEqualTo(LEAF);
        }
        for (int level = 3; level <= 4; level++) {
            assertThat(f.kind(VtdSs.R | VtdSs.W | 0x1000L, level)).as("level %d", level).isEqualTo(TABLE);
            assertThat(f.kind(VtdSs.R | VtdSs.W | VtdSs.PS | 0x1000L, level))
                    .as("PS is reserved at level %d", level)
                    .isEqualTo(EMPTY);
        }
    }

    @Test
    void psForAPageSizeSllpsLacksIsReserved() {
        VtdSs only4k = VtdSs.levels(4).withLargePages(0);
        assertThat(only4k.kind(VtdSs.R | VtdSs.PS | 0x20_0000L, 1)).isEqualTo(EMPTY);
        assertThat(only4k.kind(VtdSs.R | VtdSs.PS | 0x4000_0000L, 2)).isEqualTo(EMPTY);
        assertThat(only4k.kind(VtdSs.R | 0x20_0000L, 1)).isEqualTo(TABLE);
        VtdSs no1g = VtdSs.levels(4).withLargePages(VtdSs.SLLPS_2M);
        assertThat(no1g.kind(VtdSs.R | VtdSs.PS | 0x20_0000L, 1)).isEqualTo(LEAF);
        assertThat(no1g.kind(VtdSs.R | VtdSs.PS | 0x4000_0000L, 2)).isEqualTo(EMPTY);
    }

    @Test
    void largeLeafAddressDropsTheReservedLowBits() {
        VtdSs f = VtdSs.levels(4);
        // ADDR[20:12] of a 2 MB leaf and ADDR[29:12] of a 1 GB leaf are reserved
        assertThat(f.leafOa(0x2_0000_0000L | 0x1f_f000L | VtdSs.PS | VtdSs.R, 1)).isEqualTo(0x2_0000_0000L);
        assertThat(f.leafOa(0x2_0000_0000L | 0x3fff_f000L | VtdSs.PS | VtdSs.R, 2)).isEqualTo(0x2_0000_0000L);
        assertThat(f.leafOa(0x2_0000_1000L | VtdSs.R, 0)).isEqualTo(0x2_0000_1000L);
        // bits above [51:12] are not address bits
        assertThat(f.leafOa(-1L, 0)).isEqualTo(0x000f_ffff_ffff_f000L);
    }

    // ------------------------------------------------------------------ round trips

    @ParameterizedTest
    @ValueSource(ints = {3, 4, 5})
    void protRoundTripsAtEveryLeafSize(int levels) {
        X86FamilyChecks.protRoundTripsAtEveryLeafSize(VtdSs.levels(levels));
        X86FamilyChecks.protRoundTripsAtEveryLeafSize(VtdSs.levels(levels).withSnoop(true).withOaBits(52));
        X86FamilyChecks.protRoundTripsAtEveryLeafSize(VtdSs.levels(levels).withAccessDirty(true).withOaBits(32));
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 0x5eed_1234L})
    void randomEntriesRoundTrip(long seed) {
        X86FamilyChecks.randomEntriesRoundTrip(VtdSs.levels(4), seed);
        X86FamilyChecks.randomEntriesRoundTrip(VtdSs.levels(5).withOaBits(52).withSnoop(true), seed);
        X86FamilyChecks.randomEntriesRoundTrip(VtdSs.levels(3).withAccessDirty(true).withOaBits(39), seed);
    }

    // ------------------------------------------------------------------ dirty tracking

    @Test
    void dirtyTransitionsWithAccessDirty() {
        VtdSs f = VtdSs.levels(4).withAccessDirty(true);
        assertThat(f.tracksDirty()).isTrue();
        long clean = f.leaf(0x20_0000L, 1, 21, Prot.READ | Prot.WRITE);
        assertThat(clean).isEqualTo(0x20_0083L);
        assertThat(f.isDirty(clean, 1)).isFalse();
        long dirty = f.markDirty(clean, 1);
        // hardware sets A (bit 8) and D (bit 9)
        assertThat(dirty).isEqualTo(0x20_0383L);
        assertThat(f.isDirty(dirty, 1)).isTrue();
        long cleaned = f.clearDirty(dirty, 1);
        assertThat(cleaned).as("D cleared, A kept").isEqualTo(0x20_0183L);
        assertThat(f.isDirty(cleaned, 1)).isFalse();
        assertThat(f.kind(cleaned, 1)).isEqualTo(LEAF);
        assertThat(f.prot(cleaned, 1)).isEqualTo(Prot.READ | Prot.WRITE);
        assertThat(f.isDirty(f.markDirty(cleaned, 1), 1)).isTrue();
    }

    @Test
    void withoutAccessDirtyNothingIsTracked() {
        VtdSs f = VtdSs.levels(4);
        long e = f.leaf(0x5000L, 0, 12, Prot.WRITE);
        assertThat(f.tracksDirty()).isFalse();
        assertThat(f.markDirty(e, 0)).isEqualTo(e);
        assertThat(f.clearDirty(e | VtdSs.D, 0)).isEqualTo(e | VtdSs.D);
        assertThat(f.isDirty(e | VtdSs.D, 0)).as("bit 9 is ignored without SSADE").isFalse();
    }

    // ------------------------------------------------------------------ validation

    @ParameterizedTest
    @ValueSource(ints = {-1, 0, 1, 2, 6, 7})
    void rejectsLevelCounts(int levels) {
        assertThatThrownBy(() -> VtdSs.levels(levels))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("levels")
                .hasMessageContaining(String.valueOf(levels));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 12, 31, 53, 64})
    void rejectsHostAddressWidths(int oaBits) {
        assertThatThrownBy(() -> VtdSs.levels(4).withOaBits(oaBits))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("oaBits")
                .hasMessageContaining(String.valueOf(oaBits));
    }

    @ParameterizedTest
    @ValueSource(ints = {4, 8, 0xf, -1})
    void rejectsUnknownLargePageBits(int sllps) {
        assertThatThrownBy(() -> VtdSs.levels(4).withLargePages(sllps))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("largePages");
    }

    @Test
    void acceptsTheWholeWidthRange() {
        assertThat(VtdSs.levels(4).withOaBits(32).oaBits()).isEqualTo(32);
        assertThat(VtdSs.levels(4).withOaBits(52).oaBits()).isEqualTo(52);
    }
}
