package org.iommuemu.core.pgtable.fmt;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import java.util.Random;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;

/**
 * Format-neutral checks the VT-d second-stage, x86-64 and AMD v1 tests share: they hold for any
 * {@link PtFormat} whose run entries are identical or which has no runs.
 */
final class X86FamilyChecks {
    private X86FamilyChecks() {}

    /** Every {@link Prot} combination that allows reading or writing. */
    static int[] mappableProts() {
        int[] out = new int[Prot.ALL + 1];
        int n = 0;
        for (int p = 0; p <= Prot.ALL; p++) {
            if ((p & (Prot.READ | Prot.WRITE)) != 0) {
                out[n++] = p;
            }
        }
        return Arrays.copyOf(out, n);
    }

    /**
     * For every level, every leaf size the level holds and every mappable prot: the leaf decodes as a LEAF
     * of that size at that address with {@code canonicalProt(p)}, and is never dirty unless marked.
     */
    static void protRoundTripsAtEveryLeafSize(PtFormat f) {
        int leaves = 0;
        for (int level = 0; level <= f.maxTopLevel(); level++) {
            long sizes = f.leafSizes(level);
            for (int sizeLg2 = 0; sizeLg2 < 64; sizeLg2++) {
                if ((sizes & (1L << sizeLg2)) == 0) {
                    continue;
                }
                long oa = Bits.alignDown(0x000a_5a5a_5a5a_5000L & Bits.mask(0, f.oaBits()), sizeLg2);
                if (oa == 0 && sizeLg2 < f.oaBits()) {
                    oa = 1L << sizeLg2; // nonzero where the width allows: a zero address hides encoding slips
                }
                for (int p : mappableProts()) {
                    long e = f.leaf(oa, level, sizeLg2, p);
                    String what = f.name() + " level " + level + " size 2^" + sizeLg2 + " prot "
                            + Prot.toString(p) + " entry " + Bits.hex(e);
                    assertThat(f.kind(e, level)).as(what).isEqualTo(PtFormat.LEAF);
                    assertThat(f.leafLg2(e, level)).as(what).isEqualTo(sizeLg2);
                    assertThat(f.leafOa(e, level)).as(what).isEqualTo(oa);
                    assertThat(f.prot(e, level)).as(what).isEqualTo(f.canonicalProt(p));
                    assertThat(f.prot(e, level) & ~f.supportedProt()).as(what).isZero();
                    assertThat(f.isDirty(f.clearDirty(e, level), level)).as(what).isFalse();
                    leaves++;
                }
            }
        }
        assertThat(leaves).as("leaves checked for %s", f.name()).isPositive();
    }

    /**
     * Seeded random leaves and tables across the whole output range: every field survives, and the
     * entries classify as they should. The failure message names the seed.
     */
    static void randomEntriesRoundTrip(PtFormat f, long seed) {
        Random rnd = new Random(seed);
        int[] prots = mappableProts();
        for (int i = 0; i < 2_000; i++) {
            int level = rnd.nextInt(f.maxTopLevel() + 1);
            String what = "seed " + seed + " iteration " + i + " " + f.name() + " level " + level;
            if (level > 0) {
                long tablePa = Bits.alignDown(rnd.nextLong() & Bits.mask(0, f.oaBits()), 12);
                long t = f.table(tablePa, level);
                assertThat(f.kind(t, level)).as(what + " table " + Bits.hex(t)).isEqualTo(PtFormat.TABLE);
                assertThat(f.tableAddress(t, level)).as(what + " table " + Bits.hex(t)).isEqualTo(tablePa);
            }
            long sizes = f.leafSizes(level);
            if (sizes == 0) {
                continue;
            }
            int sizeLg2;
            do {
                sizeLg2 = rnd.nextInt(64);
            } while ((sizes & (1L << sizeLg2)) == 0);
            long oa = Bits.alignDown(rnd.nextLong() & Bits.mask(0, f.oaBits()), sizeLg2);
            int p = prots[rnd.nextInt(prots.length)];
            long e = f.leaf(oa, level, sizeLg2, p);
            what += " size 2^" + sizeLg2 + " oa " + Bits.hex(oa) + " prot " + Prot.toString(p) + " entry "
                    + Bits.hex(e);
            assertThat(f.kind(e, level)).as(what).isEqualTo(PtFormat.LEAF);
            assertThat(f.leafLg2(e, level)).as(what).isEqualTo(sizeLg2);
            assertThat(f.leafOa(e, level)).as(what).isEqualTo(oa);
            assertThat(f.prot(e, level)).as(what).isEqualTo(f.canonicalProt(p));
            if (f.tracksDirty() && (p & Prot.WRITE) != 0) {
                long dirty = f.markDirty(f.clearDirty(e, level), level);
                assertThat(f.isDirty(dirty, level)).as(what).isTrue();
                assertThat(f.kind(dirty, level)).as(what).isEqualTo(PtFormat.LEAF);
                assertThat(f.leafOa(dirty, level)).as(what).isEqualTo(oa);
                assertThat(f.leafLg2(dirty, level)).as(what).isEqualTo(sizeLg2);
                assertThat(f.prot(dirty, level)).as(what).isEqualTo(f.canonicalProt(p));
            }
        }
    }

    /** pageSizes() is the union of leafSizes() and every level's sizes are multiples of its item size. */
    static void leafSizesAreConsistent(PtFormat f) {
        long union = 0;
        for (int level = 0; level <= f.maxTopLevel(); level++) {
            long sizes = f.leafSizes(level);
            union |= sizes;
            assertThat(Long.numberOfTrailingZeros(sizes))
                    .as("%s level %d: smallest leaf vs item", f.name(), level)
                    .isGreaterThanOrEqualTo(sizes == 0 ? 64 : f.itemLg2(level));
            if (sizes != 0) {
                assertThat(63 - Long.numberOfLeadingZeros(sizes))
                        .as("%s level %d: largest leaf below the next item", f.name(), level)
                        .isLessThan(f.itemLg2(level) + f.tableItemsLg2(level));
            }
        }
        assertThat(f.pageSizes()).as(f.name()).isEqualTo(union);
    }
}
