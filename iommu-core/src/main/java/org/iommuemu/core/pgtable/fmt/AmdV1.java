package org.iommuemu.core.pgtable.fmt;

import java.util.Objects;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;

/**
 * The AMD IOMMU v1 host page table (AMD I/O Virtualization Technology (IOMMU) specification, "I/O Page
 * Tables for Host Translations"; fact sheet {@code spec/PGTABLE.md} §4).
 *
 * <p><b>Levels.</b> Our level {@code n} is AMD level {@code n + 1}: level 0 holds 4 KB items (AMD level 1),
 * level 1 2 MB items, and so on. Tables have 512 eight-byte entries (9 index bits), except a level-5 table
 * (AMD level 6), whose 128 meaningful entries index input bits [63:57]. A table starts with
 * {@link #topLevel()} + 1 levels (3 unless configured, i.e. DTE Mode 3, a 39-bit space) and may grow on
 * demand up to 6 levels ({@link #maxTopLevel()} = 5), which covers the whole 64-bit input space; hence
 * {@link #vaBits()} is 64 whatever the current top. The growing itself is the page-table algorithms' job
 * (the top table's address and level are the page table's state, not the format's): to grow from top level
 * {@code t} to {@code t + 1} they put the old top table in entry 0 of a new table at level {@code t + 1},
 * as {@code table(oldTopPa, t + 1)}, and program DTE Mode {@code t + 2}.
 *
 * <p><b>Entries.</b> PR (bit 0) marks an entry in use; NextLevel [11:9]; address [51:12]; FC (bit 60)
 * force-coherent; IR (bit 61) and IW (bit 62) read and write permission. A table entry (PDE) at our level
 * {@code L} points to a table of our level {@code L - 1}, which is AMD level {@code L}: its NextLevel is
 * {@code L}. IR and IW are ANDed down the walk, so PDEs carry both and the leaf decides (as Linux does). A
 * leaf of its level's natural size has NextLevel 0.
 *
 * <p><b>Larger pages (NextLevel 7).</b> A leaf of {@code 2^s} bytes at a level with {@code 2^k}-byte items,
 * {@code k < s <= k + 8}, has NextLevel 7 and encodes its size in the address field: bits [s-2:12] are ones
 * and bit s-1 is zero, so the size is {@code 2^(1 + index of the lowest zero bit of (entry | 0xFFF))} (8 KB:
 * bit 12 clear; 16 KB: bit 12 set, bit 13 clear; 2 MB: bits [19:12] set, bit 20 clear). The run base is the
 * address with those bits cleared. The same entry is written to each of the {@code 2^(s - k)} slots the page
 * covers ({@link #leaf} ignores the low bits of {@code oa}).
 *
 * <p><b>Leaf sizes.</b> Every power of two from 4 KB to 256 GB: 2^12..2^20 at level 0, 2^21..2^29 at level 1,
 * 2^30..2^38 at level 2. Levels 3 and up hold no leaves: Linux never creates 512 GB or larger pages (a
 * hardware erratum affects 512 GB pages), and the top level (AMD level 6) cannot hold a leaf at all.
 *
 * <p><b>Malformed encodings.</b> {@link #kind} reports {@link #EMPTY} for an entry the walk cannot use: a
 * leaf (NextLevel 0 or 7) at a level that holds no leaves, a NextLevel 7 leaf whose encoded size is not one of
 * the level's run sizes, and a PDE whose NextLevel is not exactly {@code L} (level skipping, or a next level
 * at or above the current one; skipping is legal on hardware but the generic algorithms do not follow it).
 * The interface has no separate "reserved" kind; a device model wanting the exact fault reason must decode
 * {@link #nextLevel(long)} itself.
 *
 * <p><b>Dirty tracking.</b> With DTE HAD enabled, hardware sets A (bit 5) on access and D (bit 6) on a write.
 * For a NextLevel 7 page hardware may set D in any one of the replicated entries, so a caller must OR
 * {@link #isDirty} over the run's slots and clear each of them.
 *
 * <p>Instances are immutable: start from {@link #create()} or {@link #levels(int)}.
 */
public final class AmdV1 implements PtFormat {
    /** Bit 0: present. */
    public static final long PR = 1L;
    /** Bit 5: accessed (set by hardware with DTE HAD). */
    public static final long A = 1L << 5;
    /** Bit 6: dirty (set by hardware with DTE HAD). */
    public static final long D = 1L << 6;
    /** Bits [11:9]: NextLevel. */
    public static final long NEXT_LEVEL = Bits.maskHiLo(11, 9);
    /** NextLevel of a leaf of its level's natural size. */
    public static final int NL_DEFAULT = 0;
    /** NextLevel of a leaf whose size is encoded in the address field. */
    public static final int NL_SIZE = 7;
    /** Bits [51:12]: the output address, or the next table's address. */
    public static final long OA = Bits.maskHiLo(51, 12);
    /** Bit 59: U (never written here). */
    public static final long U = 1L << 59;
    /** Bit 60: FC, force coherent (snooped) accesses. */
    public static final long FC = 1L << 60;
    /** Bit 61: IR, read permission. */
    public static final long IR = 1L << 61;
    /** Bit 62: IW, write permission. */
    public static final long IW = 1L << 62;

    /** The number of levels of a new table when none is given (DTE Mode 3, a 39-bit space). */
    public static final int DEFAULT_LEVELS = 3;
    /** The most levels a table can have (DTE Mode 6). */
    public static final int MAX_LEVELS = 6;
    /** The output address width when none is given. */
    public static final int DEFAULT_OA_BITS = 52;
    /** The narrowest output address width accepted. */
    public static final int MIN_OA_BITS = 32;
    /** The widest output address width the entry format can hold (address bits [51:12]). */
    public static final int MAX_OA_BITS = 52;

    private static final int GRANULE_LG2 = 12;
    private static final int STRIDE = 9;
    /** Index bits of a level-5 (AMD level 6) table: input bits [63:57]. */
    private static final int TOP_STRIDE = 64 - (GRANULE_LG2 + STRIDE * (MAX_LEVELS - 1));
    private static final int NL_SHIFT = 9;
    /** The largest leaf: 256 GB. */
    private static final int MAX_LEAF_LG2 = 38;
    private static final int SUPPORTED = Prot.READ | Prot.WRITE | Prot.CACHE;

    private final int levels;
    private final int oaBits;
    /** Per level 0..5: the leaf-size bitmap. */
    private final long[] leafSizes;
    /** Per level 0..5: the NextLevel 7 sizes (the leaf sizes above the item size). */
    private final long[] runSizes;
    /** Per level 0..5: the address bits of a natural-size leaf. */
    private final long[] leafOaMask;
    private final String name;

    private AmdV1(int levels, int oaBits) {
        if (levels < 1 || levels > MAX_LEVELS) {
            throw new IllegalArgumentException(
                    "levels (DTE Mode of a new table) must be 1.." + MAX_LEVELS + ", got " + levels);
        }
        if (oaBits < MIN_OA_BITS || oaBits > MAX_OA_BITS) {
            throw new IllegalArgumentException(
                    "oaBits must be " + MIN_OA_BITS + ".." + MAX_OA_BITS + ", got " + oaBits);
        }
        this.levels = levels;
        this.oaBits = oaBits;
        this.leafSizes = new long[MAX_LEVELS];
        this.runSizes = new long[MAX_LEVELS];
        this.leafOaMask = new long[MAX_LEVELS];
        for (int l = 0; l < MAX_LEVELS; l++) {
            int item = itemLg2(l);
            leafOaMask[l] = OA & ~Bits.mask(0, item);
            if (item <= MAX_LEAF_LG2) {
                // item .. item + 8: a run of the whole table would be the next level's item
                int last = Math.min(item + STRIDE - 1, MAX_LEAF_LG2);
                leafSizes[l] = Bits.maskHiLo(last, item);
                runSizes[l] = leafSizes[l] & ~(1L << item);
            }
        }
        this.name = "amd-v1 " + levels + "-level (grows to " + MAX_LEVELS + ") oa" + oaBits + " pages 4K..256G";
    }

    /** An AMD v1 format whose tables start with 3 levels, with a 52-bit output address. */
    public static AmdV1 create() {
        return new AmdV1(DEFAULT_LEVELS, DEFAULT_OA_BITS);
    }

    /** An AMD v1 format whose tables start with {@code levels} levels (1..6, the DTE Mode), 52-bit output. */
    public static AmdV1 levels(int levels) {
        return new AmdV1(levels, DEFAULT_OA_BITS);
    }

    /** This format with output address width {@code oaBits} (32..52). */
    public AmdV1 withOaBits(int oaBits) {
        return new AmdV1(levels, oaBits);
    }

    /** The number of levels a new table starts with: 1..6. */
    public int levels() {
        return levels;
    }

    /** The NextLevel field [11:9] of an entry. */
    public static int nextLevel(long entry) {
        return (int) ((entry & NEXT_LEVEL) >>> NL_SHIFT);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public int entryLg2() {
        return 3;
    }

    /** 64: the width a table can grow to; the current top covers {@code itemLg2(top) + topItemsLg2(top)}. */
    @Override
    public int vaBits() {
        return 64;
    }

    @Override
    public int oaBits() {
        return oaBits;
    }

    @Override
    public int topLevel() {
        return levels - 1;
    }

    /** 5: a six-level table (AMD level 6) covers the whole 64-bit input space. */
    @Override
    public int maxTopLevel() {
        return MAX_LEVELS - 1;
    }

    /** The top table never holds a leaf (spec section 4): a table grows one level before its top would need one. */
    @Override
    public boolean topCanHoldLeaf() {
        return false;
    }

    @Override
    public int itemLg2(int level) {
        return GRANULE_LG2 + STRIDE * level;
    }

    /** 9, except 7 for level 5 (AMD level 6), whose index is input bits [63:57]. */
    @Override
    public int tableItemsLg2(int level) {
        return level == MAX_LEVELS - 1 ? TOP_STRIDE : STRIDE;
    }

    @Override
    public long leafSizes(int level) {
        return level >= 0 && level < MAX_LEVELS ? leafSizes[level] : 0;
    }

    /**
     * {@link #EMPTY} without PR or for a malformed entry (see the class comment); {@link #LEAF} for NextLevel
     * 0 or 7 at a level holding leaves; {@link #TABLE} for NextLevel {@code level}.
     */
    @Override
    public int kind(long entry, int level) {
        if ((entry & PR) == 0) {
            return EMPTY;
        }
        int nl = nextLevel(entry);
        if (nl == NL_DEFAULT) {
            return leafSizes(level) != 0 ? LEAF : EMPTY;
        }
        if (nl == NL_SIZE) {
            int sizeLg2 = encodedSizeLg2(entry);
            return sizeLg2 < 64 && level < MAX_LEVELS && (runSizes[level] & (1L << sizeLg2)) != 0 ? LEAF : EMPTY;
        }
        return nl == level ? TABLE : EMPTY;
    }

    @Override
    public long tableAddress(long entry, int level) {
        return entry & OA;
    }

    /** {@code PR|IR|IW|NextLevel=level|tablePa}: the next table is AMD level {@code level}. */
    @Override
    public long table(long tablePa, int level) {
        return PR | IR | IW | ((long) level << NL_SHIFT) | (tablePa & OA);
    }

    /** The page's address; for a NextLevel 7 entry the run base, with the size-encoding bits cleared. */
    @Override
    public long leafOa(long entry, int level) {
        if (nextLevel(entry) == NL_SIZE) {
            return Bits.alignDown(entry & OA, encodedSizeLg2(entry));
        }
        return entry & leafOaMask[level];
    }

    /** The level's item size for NextLevel 0; the size encoded in the address field for NextLevel 7. */
    @Override
    public int leafLg2(long entry, int level) {
        return nextLevel(entry) == NL_SIZE ? encodedSizeLg2(entry) : itemLg2(level);
    }

    /**
     * A natural-size leaf (NextLevel 0), or one of the identical entries of a larger page (NextLevel 7, the
     * run base taken from {@code oa} aligned down to {@code 2^sizeLg2}).
     */
    @Override
    public long leaf(long oa, int level, int sizeLg2, int prot) {
        long e = PR;
        if ((prot & Prot.READ) != 0) {
            e |= IR;
        }
        if ((prot & Prot.WRITE) != 0) {
            e |= IW;
        }
        if ((prot & Prot.CACHE) != 0) {
            e |= FC;
        }
        if (sizeLg2 == itemLg2(level)) {
            return e | (oa & OA);
        }
        // ones in [sizeLg2-2:12], zero at sizeLg2-1
        return e | ((long) NL_SIZE << NL_SHIFT) | (Bits.alignDown(oa, sizeLg2) & OA)
                | Bits.mask(GRANULE_LG2, sizeLg2 - 1 - GRANULE_LG2);
    }

    /** READ for IR, WRITE for IW, CACHE for FC. */
    @Override
    public int prot(long entry, int level) {
        int p = 0;
        if ((entry & IR) != 0) {
            p |= Prot.READ;
        }
        if ((entry & IW) != 0) {
            p |= Prot.WRITE;
        }
        if ((entry & FC) != 0) {
            p |= Prot.CACHE;
        }
        return p;
    }

    /** READ, WRITE and CACHE (FC). */
    @Override
    public int supportedProt() {
        return SUPPORTED;
    }

    @Override
    public boolean tracksDirty() {
        return true;
    }

    /** D (bit 6) of this one entry; see the class comment for NextLevel 7 runs. */
    @Override
    public boolean isDirty(long entry, int level) {
        return (entry & D) != 0;
    }

    /** The entry with D cleared; A is left alone. */
    @Override
    public long clearDirty(long entry, int level) {
        return entry & ~D;
    }

    /** The entry with A and D set, as hardware writes it back. */
    @Override
    public long markDirty(long entry, int level) {
        return entry | A | D;
    }

    /** log2 of a NextLevel 7 page: one more than the index of the lowest zero bit at or above bit 12. */
    private static int encodedSizeLg2(long entry) {
        return Long.numberOfTrailingZeros(~(entry | Bits.mask(0, GRANULE_LG2))) + 1;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AmdV1 a && a.levels == levels && a.oaBits == oaBits;
    }

    @Override
    public int hashCode() {
        return Objects.hash(levels, oaBits);
    }

    @Override
    public String toString() {
        return name;
    }
}
