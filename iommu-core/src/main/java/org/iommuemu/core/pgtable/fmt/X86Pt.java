package org.iommuemu.core.pgtable.fmt;

import java.util.Objects;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;

/**
 * x86-64 4-level and 5-level paging, as the VT-d first stage and the AMD v2 (guest) table use it (Intel SDM
 * vol. 3A chapter 4, "4-Level Paging and 5-Level Paging"; Intel VT-d specification, "First-Stage Paging
 * Entries"; AMD IOMMU specification, "I/O Page Tables for Guest Translations"; fact sheet
 * {@code spec/PGTABLE.md} §3 "First stage").
 *
 * <p><b>Geometry.</b> 4 KB granule, 512 eight-byte entries per table, 9 input bits per level: level 0 is the
 * PTE (4 KB items), 1 the PDE (2 MB), 2 the PDPTE (1 GB), 3 the PML4E, 4 the PML5E. A table has 4 levels
 * (48-bit input) or 5 (57-bit; VT-d PASID-entry FSPM=1, CAP.FL5LP). Input addresses are canonical:
 * bits above {@code vaBits - 1} repeat that bit ({@link #vaSignExtended()}), and the upper half indexes the
 * same top table by the low {@code vaBits} bits.
 *
 * <p><b>Entries.</b> P (bit 0) marks an entry in use. Tables are {@code P|R/W|U/S|A|address}: every
 * permission is granted on the way down and the leaf decides, as Linux writes them. Leaves are
 * {@code P|A|address}, plus R/W and D for {@link Prot#WRITE} (Linux pre-sets D on writable leaves so hardware
 * need not write the entry back on the first write), U/S unless {@link Prot#PRIV}, XD (bit 63) for
 * {@link Prot#NOEXEC}, and PS (bit 7) at levels 1 and 2. A present entry is always readable: x86 has no
 * write-only pages, so {@link #canonicalProt} adds READ to WRITE. Leaves are 4 KB, 2 MB and, when the
 * hardware reports them (VT-d CAP.FL1GP), 1 GB; there are no contiguous runs. The output address is bits
 * [51:12], at most {@link #oaBits()} wide.
 *
 * <p><b>Memory types are not encoded.</b> PWT, PCD and PAT (bit 7 of a PTE, bit 12 of a large leaf) are
 * always written as 0, which selects PAT entry 0 (write-back with the architectural reset PAT); G (bit 8) is
 * never set. So {@link Prot#CACHE} and {@link Prot#MMIO} are not expressible, and a large leaf's bit 12 is
 * not part of its address ({@link #leafOa} drops it).
 *
 * <p><b>Reserved encodings.</b> PS is reserved in a PML4E or PML5E, and PS in a PDPTE is reserved without
 * 1 GB page support. {@link #kind} classifies such entries as {@link #EMPTY}: nothing can be mapped through
 * them, the walk faults there, and the algorithms may overwrite them. The interface has no separate
 * "reserved" kind; a device model that wants the reserved-bit fault reason must test {@link #PS} itself.
 *
 * <p><b>Accessed/dirty.</b> Hardware sets A on access and D on a write through a leaf; this format
 * {@link #tracksDirty() tracks dirty state} through D (bit 6). Note that a freshly written writable leaf is
 * already dirty; dirty tracking starts with {@link #clearDirty}.
 *
 * <p>Instances are immutable: start from {@link #levels(int)} and refine with the {@code with...} methods.
 */
public final class X86Pt implements PtFormat {
    /** Bit 0: present. */
    public static final long P = 1L;
    /** Bit 1: writable. */
    public static final long RW = 1L << 1;
    /** Bit 2: user (unprivileged) accesses allowed. */
    public static final long US = 1L << 2;
    /** Bit 3: page-level write-through (memory type; never set here). */
    public static final long PWT = 1L << 3;
    /** Bit 4: page-level cache disable (memory type; never set here). */
    public static final long PCD = 1L << 4;
    /** Bit 5: accessed. */
    public static final long A = 1L << 5;
    /** Bit 6: dirty (leaves). */
    public static final long D = 1L << 6;
    /** Bit 7: page size, a leaf in a PDE (2 MB) or PDPTE (1 GB); PAT in a PTE; reserved in PML4E/PML5E. */
    public static final long PS = 1L << 7;
    /** Bit 8: global (leaves; never set here). */
    public static final long G = 1L << 8;
    /** Bit 12 of a 2 MB or 1 GB leaf: PAT (memory type; never set here). */
    public static final long PAT_LARGE = 1L << 12;
    /** Bit 63: execute disable. */
    public static final long XD = 1L << 63;
    /** Bits [51:12]: the address of the next table or of the page. */
    public static final long ADDR = Bits.maskHiLo(51, 12);

    /** The output address width when none is given. */
    public static final int DEFAULT_OA_BITS = 52;
    /** The narrowest output address width accepted. */
    public static final int MIN_OA_BITS = 32;
    /** The widest output address width the entry format can hold (address bits [51:12]). */
    public static final int MAX_OA_BITS = 52;

    private static final int GRANULE_LG2 = 12;
    private static final int STRIDE = 9;
    private static final int SUPPORTED = Prot.READ | Prot.WRITE | Prot.NOEXEC | Prot.PRIV;

    private final int levels;
    private final int oaBits;
    private final boolean pages1G;
    /** Per level: the leaf-size bitmap. */
    private final long[] leafSizes;
    /** Per level: the bits of a leaf entry that hold its output address (PAT and reserved low bits dropped). */
    private final long[] leafOaMask;
    private final String name;

    private X86Pt(int levels, int oaBits, boolean pages1G) {
        if (levels != 4 && levels != 5) {
            throw new IllegalArgumentException(
                    "levels must be 4 or 5 (a 48- or 57-bit input address), got " + levels);
        }
        if (oaBits < MIN_OA_BITS || oaBits > MAX_OA_BITS) {
            throw new IllegalArgumentException(
                    "oaBits must be " + MIN_OA_BITS + ".." + MAX_OA_BITS + ", got " + oaBits);
        }
        this.levels = levels;
        this.oaBits = oaBits;
        this.pages1G = pages1G;
        this.leafSizes = new long[levels];
        this.leafOaMask = new long[levels];
        for (int l = 0; l < levels; l++) {
            leafOaMask[l] = ADDR & ~Bits.mask(0, itemLg2(l));
        }
        leafSizes[0] = 1L << itemLg2(0);
        leafSizes[1] = 1L << itemLg2(1);
        leafSizes[2] = pages1G ? 1L << itemLg2(2) : 0;
        this.name = "x86-64 " + levels + "-level va" + vaBits() + " oa" + oaBits
                + (pages1G ? " pages 4K,2M,1G" : " pages 4K,2M");
    }

    /** An x86-64 format with {@code levels} levels (4 or 5), a 52-bit output address and 1 GB pages. */
    public static X86Pt levels(int levels) {
        return new X86Pt(levels, DEFAULT_OA_BITS, true);
    }

    /** This format with output address width {@code oaBits} (32..52). */
    public X86Pt withOaBits(int oaBits) {
        return new X86Pt(levels, oaBits, pages1G);
    }

    /** This format with or without 1 GB leaves (VT-d CAP.FL1GP). */
    public X86Pt withPages1G(boolean pages1G) {
        return new X86Pt(levels, oaBits, pages1G);
    }

    /** The number of levels: 4 or 5. */
    public int levels() {
        return levels;
    }

    /** Whether PDPTEs may hold 1 GB leaves. */
    public boolean pages1G() {
        return pages1G;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public int entryLg2() {
        return 3;
    }

    /** 48 or 57: 12 bits of page offset plus 9 per level. */
    @Override
    public int vaBits() {
        return GRANULE_LG2 + STRIDE * levels;
    }

    /** True: input addresses are canonical, sign-extended from bit {@code vaBits - 1}. */
    @Override
    public boolean vaSignExtended() {
        return true;
    }

    @Override
    public int oaBits() {
        return oaBits;
    }

    @Override
    public int topLevel() {
        return levels - 1;
    }

    @Override
    public int itemLg2(int level) {
        return GRANULE_LG2 + STRIDE * level;
    }

    @Override
    public int tableItemsLg2(int level) {
        return STRIDE;
    }

    @Override
    public long leafSizes(int level) {
        return level >= 0 && level < levels ? leafSizes[level] : 0;
    }

    /**
     * {@link #EMPTY} without P, or when PS is set where it is reserved (PML4E, PML5E, and PDPTE without 1 GB
     * pages); otherwise {@link #LEAF} at level 0 and for PS=1 at levels 1 and 2, {@link #TABLE} for the rest.
     */
    @Override
    public int kind(long entry, int level) {
        if ((entry & P) == 0) {
            return EMPTY;
        }
        if (level == 0) {
            return LEAF;
        }
        if ((entry & PS) == 0) {
            return TABLE;
        }
        return leafSizes(level) != 0 ? LEAF : EMPTY;
    }

    @Override
    public long tableAddress(long entry, int level) {
        return entry & ADDR;
    }

    /** {@code P|R/W|U/S|A|tablePa}: permissions are ANDed down the walk, so the leaf alone decides. */
    @Override
    public long table(long tablePa, int level) {
        return P | RW | US | A | (tablePa & ADDR);
    }

    /** The page's address: bits [51:12], without PAT and the reserved bits below a large page's size. */
    @Override
    public long leafOa(long entry, int level) {
        return entry & leafOaMask[level];
    }

    @Override
    public int leafLg2(long entry, int level) {
        return itemLg2(level);
    }

    @Override
    public long leaf(long oa, int level, int sizeLg2, int prot) {
        long e = P | A | (oa & ADDR);
        if ((prot & Prot.WRITE) != 0) {
            e |= RW | D;
        }
        if ((prot & Prot.PRIV) == 0) {
            e |= US;
        }
        if ((prot & Prot.NOEXEC) != 0) {
            e |= XD;
        }
        if (level != 0) {
            e |= PS;
        }
        return e;
    }

    /** READ always (a present entry is readable), WRITE for R/W, PRIV without U/S, NOEXEC for XD. */
    @Override
    public int prot(long entry, int level) {
        int p = Prot.READ;
        if ((entry & RW) != 0) {
            p |= Prot.WRITE;
        }
        if ((entry & US) == 0) {
            p |= Prot.PRIV;
        }
        if ((entry & XD) != 0) {
            p |= Prot.NOEXEC;
        }
        return p;
    }

    /** READ, WRITE, NOEXEC and PRIV; memory types (CACHE, MMIO) are not encoded. */
    @Override
    public int supportedProt() {
        return SUPPORTED;
    }

    /** The supported bits, with READ added to WRITE: x86 has no write-only pages. */
    @Override
    public int canonicalProt(int prot) {
        int p = prot & SUPPORTED;
        return (p & Prot.WRITE) != 0 ? p | Prot.READ : p;
    }

    @Override
    public boolean tracksDirty() {
        return true;
    }

    /** D (bit 6). */
    @Override
    public boolean isDirty(long entry, int level) {
        return (entry & D) != 0;
    }

    /** The entry with D cleared; R/W and A are kept. */
    @Override
    public long clearDirty(long entry, int level) {
        return entry & ~D;
    }

    /** The entry with A and D set, as hardware writes it back. */
    @Override
    public long markDirty(long entry, int level) {
        return entry | A | D;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof X86Pt x && x.levels == levels && x.oaBits == oaBits && x.pages1G == pages1G;
    }

    @Override
    public int hashCode() {
        return Objects.hash(levels, oaBits, pages1G);
    }

    @Override
    public String toString() {
        return name;
    }
}
