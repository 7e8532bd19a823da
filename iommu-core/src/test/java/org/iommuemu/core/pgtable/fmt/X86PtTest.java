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

class X86PtTest {
    private static final long K4 = 1L << 12;
    private static final long M2 = 1L << 21;
    private static final long G1 = 1L << 30;
    private static final int RW = Prot.READ | Prot.WRITE;

    // ------------------------------------------------------------------ geometry

    @ParameterizedTest
    @CsvSource({"4, 48", "5, 57"})
    void geometryPerLevelCount(int levels, int vaBits) {
        X86Pt f = X86Pt.levels(levels);
        assertThat(f.levels()).isEqualTo(levels);
        assertThat(f.vaBits()).isEqualTo(vaBits);
        assertThat(f.vaSignExtended()).isTrue();
        assertThat(f.oaBits()).isEqualTo(52);
        assertThat(f.entryLg2()).isEqualTo(3);
        assertThat(f.topLevel()).isEqualTo(levels - 1);
        assertThat(f.maxTopLevel()).isEqualTo(levels - 1);
        int[] itemLg2 = {12, 21, 30, 39, 48};
        for (int l = 0; l < levels; l++) {
            assertThat(f.itemLg2(l)).as("level %d", l).isEqualTo(itemLg2[l]);
            assertThat(f.tableItemsLg2(l)).as("level %d", l).isEqualTo(9);
            assertThat(f.topItemsLg2(l)).as("level %d", l).isEqualTo(9);
        }
        assertThat(f.itemLg2(f.topLevel()) + f.topItemsLg2(f.topLevel()))
                .as("the top table indexes the low vaBits of a canonical address")
                .isEqualTo(vaBits);
        assertThat(f.leafSizes(0)).isEqualTo(K4);
        assertThat(f.leafSizes(1)).isEqualTo(M2);
        assertThat(f.leafSizes(2)).isEqualTo(G1);
        for (int l = 3; l < levels; l++) {
            assertThat(f.leafSizes(l)).as("level %d holds no leaves", l).isZero();
        }
        assertThat(f.pageSizes()).isEqualTo(K4 | M2 | G1);
        assertThat(f.supportedProt()).isEqualTo(Prot.READ | Prot.WRITE | Prot.NOEXEC | Prot.PRIV);
        assertThat(f.tracksDirty()).isTrue();
        X86FamilyChecks.leafSizesAreConsistent(f);
    }

    @Test
    void oneGigabytePagesAreOptional() {
        X86Pt f = X86Pt.levels(4).withPages1G(false);
        assertThat(f.pages1G()).isFalse();
        assertThat(f.pageSizes()).isEqualTo(K4 | M2);
        assertThat(f.leafSizes(2)).isZero();
        assertThat(X86Pt.levels(4).pages1G()).isTrue();
    }

    @Test
    void namesTheConfiguration() {
        assertThat(X86Pt.levels(4).name()).isEqualTo("x86-64 4-level va48 oa52 pages 4K,2M,1G");
        assertThat(X86Pt.levels(5).withOaBits(46).withPages1G(false))
                .hasToString("x86-64 5-level va57 oa46 pages 4K,2M");
        assertThat(X86Pt.levels(5)).isEqualTo(X86Pt.levels(5)).hasSameHashCodeAs(X86Pt.levels(5))
                .isNotEqualTo(X86Pt.levels(4)).isNotEqualTo(X86Pt.levels(5).withPages1G(false));
    }

    // ------------------------------------------------------------------ bit-exact encodings

    @Test
    void oneGigabyteReadOnlyNoexecSupervisorLeaf() {
        X86Pt f = X86Pt.levels(4);
        // P (0) | A (5) | PS (7) | XD (63); no R/W, no U/S, no D; address 0x80_4000_0000 (513 GB)
        long e = f.leaf(0x80_4000_0000L, 2, 30, Prot.READ | Prot.NOEXEC | Prot.PRIV);
        assertThat(e).isEqualTo(0x8000_0080_4000_00a1L);
        assertThat(f.kind(e, 2)).isEqualTo(LEAF);
        assertThat(f.leafOa(e, 2)).isEqualTo(0x80_4000_0000L);
        assertThat(f.leafLg2(e, 2)).isEqualTo(30);
        assertThat(f.prot(e, 2)).isEqualTo(Prot.READ | Prot.NOEXEC | Prot.PRIV);
        assertThat(f.isDirty(e, 2)).isFalse();
    }

    @Test
    void knownLeaves() {
        X86Pt f = X86Pt.levels(4);
        // 4 KB read/write user: P | R/W | U/S | A | D = 0x67, no PS at level 0
        assertThat(f.leaf(0x1234_5000L, 0, 12, RW)).isEqualTo(0x1234_5067L);
        // 4 KB read-only user: P | U/S | A
        assertThat(f.leaf(0x1234_5000L, 0, 12, Prot.READ)).isEqualTo(0x1234_5025L);
        // write-only cannot be expressed: same as read/write
        assertThat(f.leaf(0x1234_5000L, 0, 12, Prot.WRITE)).isEqualTo(0x1234_5067L);
        assertThat(f.canonicalProt(Prot.WRITE)).isEqualTo(RW);
        // 2 MB read/write user with PS
        assertThat(f.leaf(0x4020_0000L, 1, 21, RW)).isEqualTo(0x4020_00e7L);
        // 2 MB read/write supervisor, no-execute
        assertThat(f.leaf(0x4020_0000L, 1, 21, RW | Prot.PRIV | Prot.NOEXEC)).isEqualTo(0x8000_0000_4020_00e3L);
        // memory types are not encoded: PWT, PCD, PAT and G stay clear
        assertThat(f.leaf(0x1000L, 0, 12, Prot.READ | Prot.CACHE | Prot.MMIO)).isEqualTo(0x1025L);
        assertThat(f.canonicalProt(Prot.READ | Prot.CACHE | Prot.MMIO)).isEqualTo(Prot.READ);
        // the top of a 52-bit output address space
        assertThat(f.leaf(0xf_ffff_ffff_f000L, 0, 12, RW)).isEqualTo(0x000f_ffff_ffff_f067L);
    }

    @Test
    void tablesArePresentWritableUserAccessed() {
        X86Pt f = X86Pt.levels(5);
        for (int level = 1; level <= 4; level++) {
            long t = f.table(0x7_ffff_f000L, level);
            // P | R/W | U/S | A = 0x27
            assertThat(t).as("level %d", level).isEqualTo(0x0000_0007_ffff_f027L);
            assertThat(f.kind(t, level)).as("level %d", level).isEqualTo(TABLE);
            assertThat(f.tableAddress(t, level)).as("level %d", level).isEqualTo(0x7_ffff_f000L);
        }
        long withIgnored = f.table(0x2000L, 3) | (0x7L << 9) | (1L << 52) | X86Pt.XD;
        assertThat(f.tableAddress(withIgnored, 3)).isEqualTo(0x2000L);
        assertThat(f.kind(withIgnored, 3)).isEqualTo(TABLE);
    }

    // ------------------------------------------------------------------ kind

    @Test
    void kindOfEmptyTableLeafAndReservedEntries() {
        X86Pt f = X86Pt.levels(5);
        for (int level = 0; level <= 4; level++) {
            assertThat(f.kind(0, level)).as("zero at level %d", level).isEqualTo(EMPTY);
            long notPresent = 0x1234_5000L | X86Pt.RW | X86Pt.US | X86Pt.A | X86Pt.D | X86Pt.PS | X86Pt.XD;
            assertThat(f.kind(notPresent, level)).as("P clear at level %d", level).isEqualTo(EMPTY);
        }
        assertThat(f.kind(X86Pt.P, 0)).isEqualTo(LEAF);
        assertThat(f.kind(X86Pt.P | X86Pt.PS | 0x5000L, 0)).as("bit 7 of a PTE is PAT").isEqualTo(LEAF);
        for (int level = 1; level <= 4; level++) {
            assertThat(f.kind(X86Pt.P | 0x20_0000L, level)).as("level %d", level).isEqualTo(TABLE);
        }
        assertThat(f.kind(X86Pt.P | X86Pt.PS | 0x20_0000L, 1)).isEqualTo(LEAF);
        assertThat(f.kind(X86Pt.P | X86Pt.PS | 0x4000_0000L, 2)).isEqualTo(LEAF);
        assertThat(f.kind(X86Pt.P | X86Pt.PS | 0x80_0000_0000L, 3)).as("PS reserved in a PML4E").isEqualTo(EMPTY);
        assertThat(f.kind(X86Pt.P | X86Pt.PS | 0x1000L, 4)).as("PS reserved in a PML5E").isEqualTo(EMPTY);
        X86Pt no1g = f.withPages1G(false);
        assertThat(no1g.kind(X86Pt.P | X86Pt.PS | 0x4000_0000L, 2))
                .as("PS in a PDPTE without 1 GB pages")
                .isEqualTo(EMPTY);
        assertThat(no1g.kind(X86Pt.P | X86Pt.PS | 0x20_0000L, 1)).isEqualTo(LEAF);
    }

    @Test
    void largeLeafAddressDropsPatAndReservedLowBits() {
        X86Pt f = X86Pt.levels(4);
        long leaf2m = f.leaf(0x4020_0000L, 1, 21, RW) | X86Pt.PAT_LARGE;
        assertThat(f.leafOa(leaf2m, 1)).isEqualTo(0x4020_0000L);
        long leaf1g = f.leaf(0x4000_0000L, 2, 30, RW) | X86Pt.PAT_LARGE | 0x3ffe_0000L;
        assertThat(f.leafOa(leaf1g, 2)).isEqualTo(0x4000_0000L);
        assertThat(f.leafOa(f.leaf(0x4000_1000L, 0, 12, RW), 0)).as("bit 12 is an address bit in a PTE")
                .isEqualTo(0x4000_1000L);
        assertThat(f.leafOa(-1L, 0)).isEqualTo(0x000f_ffff_ffff_f000L);
    }

    // ------------------------------------------------------------------ round trips

    @ParameterizedTest
    @ValueSource(ints = {4, 5})
    void protRoundTripsAtEveryLeafSize(int levels) {
        X86FamilyChecks.protRoundTripsAtEveryLeafSize(X86Pt.levels(levels));
        X86FamilyChecks.protRoundTripsAtEveryLeafSize(X86Pt.levels(levels).withOaBits(32).withPages1G(false));
        X86FamilyChecks.protRoundTripsAtEveryLeafSize(X86Pt.levels(levels).withOaBits(46));
    }

    @Test
    void everyProtDecodesAsExpected() {
        X86Pt f = X86Pt.levels(4);
        for (int p : X86FamilyChecks.mappableProts()) {
            int expected = Prot.READ | (p & (Prot.WRITE | Prot.NOEXEC | Prot.PRIV));
            assertThat(f.canonicalProt(p)).as(Prot.toString(p)).isEqualTo(expected);
        }
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 0x5eed_1234L})
    void randomEntriesRoundTrip(long seed) {
        X86FamilyChecks.randomEntriesRoundTrip(X86Pt.levels(4), seed);
        X86FamilyChecks.randomEntriesRoundTrip(X86Pt.levels(5).withOaBits(39).withPages1G(false), seed);
    }

    // ------------------------------------------------------------------ dirty tracking

    @Test
    void dirtyTransitions() {
        X86Pt f = X86Pt.levels(4);
        long fresh = f.leaf(0x20_0000L, 1, 21, RW);
        assertThat(f.isDirty(fresh, 1)).as("Linux pre-sets D on writable leaves").isTrue();
        long clean = f.clearDirty(fresh, 1);
        assertThat(clean).as("only D (bit 6) cleared").isEqualTo(fresh & ~0x40L).isEqualTo(0x20_00a7L);
        assertThat(f.isDirty(clean, 1)).isFalse();
        assertThat(f.prot(clean, 1)).as("still writable").isEqualTo(RW);
        assertThat(f.kind(clean, 1)).isEqualTo(LEAF);
        long dirty = f.markDirty(clean, 1);
        assertThat(dirty).isEqualTo(fresh);
        assertThat(f.isDirty(dirty, 1)).isTrue();
        assertThat(f.isDirty(f.clearDirty(dirty, 1), 1)).isFalse();

        long readOnly = f.leaf(0x5000L, 0, 12, Prot.READ);
        assertThat(f.isDirty(readOnly, 0)).isFalse();
        // hardware also sets A when it sets D
        assertThat(f.markDirty(readOnly & ~X86Pt.A, 0)).isEqualTo(readOnly | X86Pt.D);
    }

    // ------------------------------------------------------------------ validation

    @ParameterizedTest
    @ValueSource(ints = {-1, 0, 1, 2, 3, 6})
    void rejectsLevelCounts(int levels) {
        assertThatThrownBy(() -> X86Pt.levels(levels))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("levels")
                .hasMessageContaining(String.valueOf(levels));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 12, 31, 53, 64})
    void rejectsOutputAddressWidths(int oaBits) {
        assertThatThrownBy(() -> X86Pt.levels(4).withOaBits(oaBits))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("oaBits")
                .hasMessageContaining(String.valueOf(oaBits));
    }
}
