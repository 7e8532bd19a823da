package org.iommuemu.core.pgtable.fmt;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.iommuemu.core.pgtable.PtFormat.EMPTY;
import static org.iommuemu.core.pgtable.PtFormat.LEAF;
import static org.iommuemu.core.pgtable.PtFormat.TABLE;

import java.lang.management.ManagementFactory;
import java.util.Random;
import org.iommuemu.core.pgtable.Prot;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Armv7s against spec PGTABLE.md §2: geometry, bit-exact small pages, large pages, sections, supersections
 * (with 40-bit output) and page-table descriptors written out by hand from the bit tables, kinds, and prot
 * round trips at every size.
 */
class Armv7sTest {
    private static final Armv7s V7S = Armv7s.create();
    private static final Armv7s V7S40 = Armv7s.create(40);
    private static final int RW_CACHE = Prot.READ | Prot.WRITE | Prot.CACHE;

    // ------------------------------------------------------------------ geometry and configuration

    @Test
    void geometry() {
        assertThat(V7S.name()).isEqualTo("armv7s oas32");
        assertThat(V7S40.toString()).isEqualTo("armv7s oas40");
        assertThat(V7S.entryLg2()).isEqualTo(2);
        assertThat(V7S.vaBits()).isEqualTo(32);
        assertThat(V7S.oaBits()).isEqualTo(32);
        assertThat(V7S40.oaBits()).isEqualTo(40);
        assertThat(V7S.topLevel()).isEqualTo(1);
        assertThat(V7S.maxTopLevel()).isEqualTo(1);
        assertThat(V7S.itemLg2(0)).isEqualTo(12);
        assertThat(V7S.itemLg2(1)).isEqualTo(20);
        assertThat(V7S.tableItemsLg2(0)).isEqualTo(8);
        assertThat(V7S.tableItemsLg2(1)).isEqualTo(12);
        assertThat(V7S.topItemsLg2(1)).isEqualTo(12);
        assertThat(V7S.tableBytes(0)).isEqualTo(1024);
        assertThat(V7S.tableBytes(1)).isEqualTo(16 * 1024);
        assertThat(V7S.leafSizes(0)).isEqualTo((1L << 12) | (1L << 16));
        assertThat(V7S.leafSizes(1)).isEqualTo((1L << 20) | (1L << 24));
        assertThat(V7S.pageSizes()).isEqualTo((1L << 12) | (1L << 16) | (1L << 20) | (1L << 24));
        assertThat(V7S.tracksDirty()).isFalse();
        assertThat(V7S.config()).isEqualTo(new Armv7s.Config(32));
    }

    @Test
    void onlySupersectionsReachBeyond32Bits() {
        assertThat(V7S40.leafOaBits(1, 24)).isEqualTo(40);
        assertThat(V7S40.leafOaBits(1, 20)).isEqualTo(32);
        assertThat(V7S40.leafOaBits(0, 16)).isEqualTo(32);
        assertThat(V7S40.leafOaBits(0, 12)).isEqualTo(32);
        assertThat(V7S40.tableOaBits(1)).isEqualTo(32);
        assertThat(V7S.leafOaBits(1, 24)).isEqualTo(32);
        assertThat(V7S.tableOaBits(1)).isEqualTo(32);
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 31, 33, 36, 48})
    void otherOutputWidthsAreRejected(int oas) {
        assertThatThrownBy(() -> Armv7s.create(oas))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("oasBits must be 32, or 40");
        assertThatThrownBy(() -> new Armv7s(null)).isInstanceOf(IllegalArgumentException.class);
    }

    // ------------------------------------------------------------------ bit-exact encodings

    @Test
    void smallPage() {
        // Attribute group at bit 4: AP0 (0x10) | AP1 (0x20) | TEX[0] (0x40) | S (0x400) | nG (0x800) = 0xC70;
        // C (0x8) | B (0x4); type 0b10.
        long e = V7S.leaf(0x1234_5000L, 0, 12, RW_CACHE);
        assertThat(e).isEqualTo(0x1234_5C7EL);
        assertThat(V7S.kind(e, 0)).isEqualTo(LEAF);
        assertThat(V7S.leafOa(e, 0)).isEqualTo(0x1234_5000L);
        assertThat(V7S.leafLg2(e, 0)).isEqualTo(12);
        assertThat(V7S.prot(e, 0)).isEqualTo(RW_CACHE);

        // Read-only, execute-never device page: AP0 | AP1 | AP2 (0x200) | S | nG = 0xE30, TEX 0, B, XN = bit 0.
        long dev = V7S.leaf(0x8000_0000L, 0, 12, Prot.READ | Prot.NOEXEC | Prot.MMIO);
        assertThat(dev).isEqualTo(0x8000_0E37L);
        assertThat(V7S.prot(dev, 0)).isEqualTo(Prot.READ | Prot.NOEXEC | Prot.MMIO);

        // Privileged, non-cacheable normal memory: AP0 | TEX[0] | S | nG = 0xC50, no B/C.
        long priv = V7S.leaf(0xFFFF_F000L, 0, 12, Prot.WRITE | Prot.PRIV);
        assertThat(priv).isEqualTo(0xFFFF_FC52L);
        assertThat(V7S.prot(priv, 0)).isEqualTo(Prot.READ | Prot.WRITE | Prot.PRIV);
    }

    @Test
    void largePageIsSixteenIdenticalEntries() {
        // Group at bit 4 without TEX: AP0 | AP1 | S | nG = 0xC30; TEX[0] moves to bit 12, XN to bit 15;
        // C | B; type 0b01; base [31:16].
        int prot = RW_CACHE | Prot.NOEXEC;
        long expected = 0x1235_0000L | 0x8000 | 0x1000 | 0xC30 | 0xC | 0x1;
        assertThat(expected).isEqualTo(0x1235_9C3DL);
        for (int i = 0; i < 16; i++) {
            long oa = 0x1235_0000L + ((long) i << 12);
            long e = V7S.leaf(oa, 0, 16, prot);
            assertThat(e).as("slot %d", i).isEqualTo(expected);
            assertThat(V7S.kind(e, 0)).isEqualTo(LEAF);
            assertThat(V7S.leafOa(e, 0)).isEqualTo(0x1235_0000L);
            assertThat(V7S.leafLg2(e, 0)).isEqualTo(16);
            assertThat(V7S.prot(e, 0)).isEqualTo(prot);
        }
        // Non-cacheable normal: TEX[0] only; device: B only, no TEX.
        assertThat(V7S.leaf(0x1_0000L, 0, 16, Prot.READ | Prot.WRITE)).isEqualTo(0x0001_1C31L);
        assertThat(V7S.leaf(0x1_0000L, 0, 16, Prot.READ | Prot.MMIO)).isEqualTo(0x0001_0E35L);
    }

    @Test
    void section() {
        // Group at bit 10: AP0 (0x400) | AP1 (0x800) | TEX[0] (0x1000) | S (0x10000) | nG (0x20000) = 0x31C00;
        // C | B; type 0b10; base [31:20].
        long e = V7S.leaf(0x4010_0000L, 1, 20, RW_CACHE);
        assertThat(e).isEqualTo(0x4013_1C0EL);
        assertThat(V7S.kind(e, 1)).isEqualTo(LEAF);
        assertThat(V7S.leafOa(e, 1)).isEqualTo(0x4010_0000L);
        assertThat(V7S.leafLg2(e, 1)).isEqualTo(20);
        assertThat(V7S.prot(e, 1)).isEqualTo(RW_CACHE);

        // Read-only (AP2 = bit 15), privileged (no AP1), execute-never (XN = bit 4), non-cacheable normal.
        long ro = V7S.leaf(0x0010_0000L, 1, 20, Prot.READ | Prot.PRIV | Prot.NOEXEC);
        assertThat(ro).isEqualTo(0x0013_9412L);
        assertThat(V7S.prot(ro, 1)).isEqualTo(Prot.READ | Prot.PRIV | Prot.NOEXEC);
    }

    @Test
    void supersectionWith40BitOutput() {
        // PA 0xAB_CD00_0000: PA[31:24] = 0xCD in [31:24], PA[35:32] = 0xB in [23:20], PA[39:36] = 0xA in [8:5];
        // bit 18 = supersection; attributes as the section above.
        long pa = 0xAB_CD00_0000L;
        long expected = 0xCD00_0000L | (0xBL << 20) | (0xAL << 5) | (1L << 18) | 0x31C00 | 0xE;
        assertThat(expected).isEqualTo(0xCDB7_1D4EL);
        for (int i = 0; i < 16; i++) {
            long e = V7S40.leaf(pa + ((long) i << 20), 1, 24, RW_CACHE);
            assertThat(e).as("slot %d", i).isEqualTo(expected);
            assertThat(V7S40.kind(e, 1)).isEqualTo(LEAF);
            assertThat(V7S40.leafOa(e, 1)).isEqualTo(pa);
            assertThat(V7S40.leafLg2(e, 1)).isEqualTo(24);
            assertThat(V7S40.prot(e, 1)).isEqualTo(RW_CACHE);
        }
        // The extended nibbles sit where a section keeps its domain and base bits; sections ignore them.
        assertThat(V7S40.leafOa(0x4013_1C0EL | (0xAL << 5), 1)).isEqualTo(0x4010_0000L);
    }

    @Test
    void supersectionWith32BitOutputHasNoExtendedAddress() {
        long e = V7S.leaf(0xCD00_0000L, 1, 24, RW_CACHE);
        assertThat(e).isEqualTo(0xCD07_1C0EL);
        assertThat(V7S.leafOa(e, 1)).isEqualTo(0xCD00_0000L);
        // Bits [23:20] and [8:5] are neither written nor read as address bits.
        assertThat(V7S.leaf(0xAB_CD00_0000L, 1, 24, RW_CACHE)).isEqualTo(e);
        assertThat(V7S.leafOa(e | (0xBL << 20) | (0xAL << 5), 1)).isEqualTo(0xCD00_0000L);
    }

    @Test
    void pageTableDescriptor() {
        long t = V7S.table(0x8765_4C00L, 1);
        assertThat(t).isEqualTo(0x8765_4C01L);
        assertThat(V7S.kind(t, 1)).isEqualTo(TABLE);
        assertThat(V7S.tableAddress(t, 1)).isEqualTo(0x8765_4C00L);
        // NS (bit 3), domain [8:5] and bit 9 are not address bits.
        assertThat(V7S.tableAddress(0x8765_4C00L | 0x3E9, 1)).isEqualTo(0x8765_4C00L);
        assertThat(V7S40.table(0x0000_0400L, 1)).isEqualTo(0x0000_0401L);
    }

    // ------------------------------------------------------------------ kinds

    @Test
    void kinds() {
        // First level: 00 fault, 01 page table, 10 section, 11 section with PXN.
        assertThat(V7S.kind(0, 1)).isEqualTo(EMPTY);
        assertThat(V7S.kind(0xFFFF_FFFCL, 1)).isEqualTo(EMPTY);
        assertThat(V7S.kind(0x8765_4C01L, 1)).isEqualTo(TABLE);
        assertThat(V7S.kind(0x4013_1C0EL, 1)).isEqualTo(LEAF);
        assertThat(V7S.kind(0xCD07_1C0EL, 1)).isEqualTo(LEAF);
        assertThat(V7S.kind(0x4013_1C0FL, 1)).isEqualTo(LEAF);
        // Second level: 00 fault, 01 large page, 1x small page (bit 0 = XN).
        assertThat(V7S.kind(0, 0)).isEqualTo(EMPTY);
        assertThat(V7S.kind(0xFFFF_FFFCL, 0)).isEqualTo(EMPTY);
        assertThat(V7S.kind(0x1235_9C3DL, 0)).isEqualTo(LEAF);
        assertThat(V7S.kind(0x1234_5C7EL, 0)).isEqualTo(LEAF);
        assertThat(V7S.kind(0x8000_0E37L, 0)).isEqualTo(LEAF);
        // Only the low 32 bits are the descriptor.
        assertThat(V7S.kind(0xFFFF_FFFF_0000_0000L, 1)).isEqualTo(EMPTY);
        assertThat(V7S.leafOa(0xFFFF_FFFF_1234_5C7EL, 0)).isEqualTo(0x1234_5000L);
    }

    @Test
    void pxnSectionIsAnExecuteNeverLeaf() {
        long pxn = 0x4013_1C0EL | 1;
        assertThat(V7S.kind(pxn, 1)).isEqualTo(LEAF);
        assertThat(V7S.leafOa(pxn, 1)).isEqualTo(0x4010_0000L);
        assertThat(V7S.leafLg2(pxn, 1)).isEqualTo(20);
        assertThat(V7S.prot(pxn, 1)).isEqualTo(RW_CACHE | Prot.NOEXEC);
        assertThat(V7S.leafLg2(0xCD07_1C0FL, 1)).isEqualTo(24);
    }

    @Test
    void decodesRemapIndexesLinuxDoesNotWrite() {
        // Index 0 (no TEX, C, B) and 5 (TEX[0] | B) are strongly-ordered under Linux's PRRR.
        assertThat(V7S.prot(0x1000_0000L | (0xC3L << 4) | 0x2, 0)).isEqualTo(Prot.READ | Prot.WRITE | Prot.MMIO);
        assertThat(V7S.prot(0x1000_0000L | (0xC7L << 4) | 0x4 | 0x2, 0))
                .isEqualTo(Prot.READ | Prot.WRITE | Prot.MMIO);
        // A small page without S still decodes the same permissions.
        assertThat(V7S.prot(0x1234_5C7EL & ~0x400L, 0)).isEqualTo(RW_CACHE);
    }

    // ------------------------------------------------------------------ prot round trips

    @ParameterizedTest
    @ValueSource(ints = {32, 40})
    void protRoundTripsAtEverySize(int oas) {
        Armv7s f = Armv7s.create(oas);
        assertThat(f.supportedProt()).isEqualTo(Prot.ALL);
        int checked = 0;
        for (int level = 0; level <= 1; level++) {
            for (int sizeLg2 : new int[] {f.itemLg2(level), f.itemLg2(level) + 4}) {
                long oa = (f.leafOaBits(level, sizeLg2) == 40 ? 0xF0_0000_0000L : 0) | 0xA500_0000L;
                oa &= -(1L << sizeLg2);
                for (int p = 0; p <= Prot.ALL; p++) {
                    if ((p & (Prot.READ | Prot.WRITE)) == 0) {
                        continue;
                    }
                    long e = f.leaf(oa, level, sizeLg2, p);
                    String what = f.name() + " level " + level + " size 2^" + sizeLg2 + " " + Prot.toString(p);
                    assertThat(e >>> 32).as(what).isZero();
                    assertThat(f.kind(e, level)).as(what).isEqualTo(LEAF);
                    assertThat(f.prot(e, level)).as(what).isEqualTo(f.canonicalProt(p));
                    assertThat(f.leafOa(e, level)).as(what).isEqualTo(oa);
                    assertThat(f.leafLg2(e, level)).as(what).isEqualTo(sizeLg2);
                    assertThat(f.leaf(oa, level, sizeLg2, f.prot(e, level))).as(what + " re-encoded").isEqualTo(e);
                    checked++;
                }
            }
        }
        assertThat(checked).isEqualTo(4 * 48);
    }

    @Test
    void canonicalProt() {
        assertThat(V7S.canonicalProt(Prot.WRITE)).isEqualTo(Prot.READ | Prot.WRITE);
        assertThat(V7S.canonicalProt(Prot.READ | Prot.MMIO | Prot.CACHE)).isEqualTo(Prot.READ | Prot.MMIO);
        assertThat(V7S.canonicalProt(Prot.READ | Prot.PRIV | 0x100)).isEqualTo(Prot.READ | Prot.PRIV);
        assertThat(V7S.leaf(0x1000, 0, 12, Prot.WRITE)).isEqualTo(V7S.leaf(0x1000, 0, 12, Prot.READ | Prot.WRITE));
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
        Armv7s f = rnd.nextBoolean() ? V7S : V7S40;
        String ctx = "seed " + seed + " (" + f.name() + ")";
        for (int i = 0; i < 50; i++) {
            long tablePa = rnd.nextLong() & 0xFFFF_FC00L;
            assertThat(f.tableAddress(f.table(tablePa, 1), 1)).as(ctx).isEqualTo(tablePa);
            int level = rnd.nextInt(2);
            int sizeLg2 = f.itemLg2(level) + (rnd.nextBoolean() ? 4 : 0);
            long oa = rnd.nextLong() & ((1L << f.leafOaBits(level, sizeLg2)) - 1);
            long base = oa & -(1L << sizeLg2);
            oa &= -(1L << f.itemLg2(level)); // one slot of the run
            int prot = rnd.nextInt(Prot.ALL + 1) | (rnd.nextBoolean() ? Prot.READ : Prot.WRITE);
            long e = f.leaf(oa, level, sizeLg2, prot);
            String what = ctx + " level " + level + " size 2^" + sizeLg2 + " oa 0x" + Long.toHexString(oa) + " "
                    + Prot.toString(prot);
            assertThat(f.kind(e, level)).as(what).isEqualTo(LEAF);
            assertThat(f.leafOa(e, level)).as(what).isEqualTo(base);
            assertThat(f.leafLg2(e, level)).as(what).isEqualTo(sizeLg2);
            assertThat(f.prot(e, level)).as(what).isEqualTo(f.canonicalProt(prot));
            assertThat(f.leaf(base, level, sizeLg2, prot)).as(what).isEqualTo(e);
        }
    }

    // ------------------------------------------------------------------ hot paths allocate nothing

    @Test
    void encodeAndDecodeAllocateNothing() {
        java.lang.management.ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        Assumptions.assumeTrue(mx instanceof com.sun.management.ThreadMXBean,
                "needs com.sun.management.ThreadMXBean to count allocated bytes");
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) mx;
        Assumptions.assumeTrue(threads.isThreadAllocatedMemorySupported() && threads.isThreadAllocatedMemoryEnabled());
        int rounds = 20_000;
        long sink = exercise(V7S40, rounds);
        long tid = Thread.currentThread().getId();
        long before = threads.getThreadAllocatedBytes(tid);
        sink += exercise(V7S40, rounds);
        long allocated = threads.getThreadAllocatedBytes(tid) - before;
        assertThat(allocated).as("bytes allocated by %d rounds (sink %d)", rounds, sink).isLessThan(rounds);
    }

    private static long exercise(Armv7s f, int rounds) {
        long sum = 0;
        for (int i = 0; i < rounds; i++) {
            int level = i & 1;
            int sizeLg2 = f.itemLg2(level) + ((i & 2) << 1);
            long oa = ((long) i << 24) & 0xFF_FF00_0000L;
            long e = f.leaf(oa, level, sizeLg2, (i & Prot.ALL) | Prot.READ);
            sum += f.kind(e, level) + f.leafOa(e, level) + f.leafLg2(e, level) + f.prot(e, level);
            sum += f.tableAddress(f.table(oa, 1), 1) + f.canonicalProt(i) + f.leafSizes(level)
                    + f.leafOaBits(level, sizeLg2);
        }
        return sum;
    }
}
