package org.iommuemu.core.pgtable.fmt;

import java.util.Objects;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;

/**
 * Intel VT-d second-stage paging (Intel VT-d specification, "Second-Stage Paging Entries"; fact sheet
 * {@code spec/PGTABLE.md} §3 "Second stage", {@code spec/VTD.md} "Paging entries").
 *
 * <p><b>Geometry.</b> 4 KB granule, 512 eight-byte entries per table, 9 input bits per level: level 0 is the
 * SS-PTE (4 KB items), 1 the SS-PDE (2 MB), 2 the SS-PDPE (1 GB), 3 the SS-PML4E, 4 the SS-PML5E. A table
 * has 3, 4 or 5 levels (context/PASID entry AW 1, 2, 3; CAP.SAGAW bits 1..3), that is a 39-, 48- or
 * 57-bit input address; input addresses are zero-extended.
 *
 * <p><b>Entries.</b> There is no present bit: an entry is in use iff R (bit 0) or W (bit 1) is set. A table
 * entry is {@code R|W|address} (the walk ANDs permissions down the levels, so tables grant everything and
 * the leaf decides, as Linux does). A leaf is {@code address | R/W | PS} with PS (bit 7) at levels 1 and 2,
 * plus SNP (bit 11) for {@link Prot#CACHE} when snoop control is supported (ECAP.SC). Leaves are 4 KB at
 * level 0, 2 MB at level 1 and 1 GB at level 2, the last two only when CAP.SLLPS reports them; there are no
 * contiguous runs. The output address is bits [51:12]; bits at or above the host address width
 * ({@link #oaBits()}) are reserved.
 *
 * <p><b>Reserved encodings.</b> PS is reserved in SS-PML4E and SS-PML5E entries, and a PS=1 entry at a
 * level whose page size CAP.SLLPS does not report is equally malformed. {@link #kind} classifies both as
 * {@link #EMPTY}: nothing can be mapped through them, the walk faults there, and the algorithms may
 * overwrite them. The interface has no separate "reserved" kind; a device model that wants the
 * reserved-bit fault reason must test {@link #PS} itself.
 *
 * <p><b>Accessed/dirty.</b> With second-stage A/D support enabled (ECAP.SSADS, context/PASID SSADE) hardware
 * sets A (bit 8) on access and D (bit 9) on a write through a leaf; {@link #tracksDirty()} is then true.
 * Memory types (EMT, IPAT), execute (X) and TM are never written: {@link Prot#NOEXEC}, {@link Prot#PRIV} and
 * {@link Prot#MMIO} are not expressible.
 *
 * <p>Instances are immutable: start from {@link #levels(int)} and refine with the {@code with...} methods.
 */
public final class VtdSs implements PtFormat {
    /** Bit 0: read permission (also "present" together with W). */
    public static final long R = 1L;
    /** Bit 1: write permission. */
    public static final long W = 1L << 1;
    /** Bit 7: page size, a leaf in an SS-PDE (2 MB) or SS-PDPE (1 GB); reserved above. */
    public static final long PS = 1L << 7;
    /** Bit 8: accessed, set by hardware with SSADE. */
    public static final long A = 1L << 8;
    /** Bit 9: dirty (leaves), set by hardware with SSADE. */
    public static final long D = 1L << 9;
    /** Bit 11: snoop, forces snooped (coherent) accesses; reserved without ECAP.SC. */
    public static final long SNP = 1L << 11;
    /** Bits [51:12]: the address of the next table or of the page. */
    public static final long ADDR = Bits.maskHiLo(51, 12);

    /** {@link #withLargePages(int)} bit, as in CAP.SLLPS bit 0 (CAP bit 34): 2 MB leaves at level 1. */
    public static final int SLLPS_2M = 1;
    /** {@link #withLargePages(int)} bit, as in CAP.SLLPS bit 1 (CAP bit 35): 1 GB leaves at level 2. */
    public static final int SLLPS_1G = 2;

    /** The host address width when none is given. */
    public static final int DEFAULT_OA_BITS = 48;
    /** The narrowest host address width accepted. */
    public static final int MIN_OA_BITS = 32;
    /** The widest host address width the entry format can hold (address bits [51:12]). */
    public static final int MAX_OA_BITS = 52;

    private static final int GRANULE_LG2 = 12;
    private static final int STRIDE = 9;

    private final int levels;
    private final int oaBits;
    private final int largePages;
    private final boolean snoop;
    private final boolean accessDirty;
    private final int supportedProt;
    /** Per level: the leaf-size bitmap. */
    private final long[] leafSizes;
    /** Per level: the bits of a leaf entry that hold its output address (bits below the page size dropped). */
    private final long[] leafOaMask;
    private final String name;

    private VtdSs(int levels, int oaBits, int largePages, boolean snoop, boolean accessDirty) {
        if (levels < 3 || levels > 5) {
            throw new IllegalArgumentException(
                    "levels must be 3, 4 or 5 (a 39-, 48- or 57-bit input address), got " + levels);
        }
        if (oaBits < MIN_OA_BITS || oaBits > MAX_OA_BITS) {
            throw new IllegalArgumentException(
                    "oaBits (host address width) must be " + MIN_OA_BITS + ".." + MAX_OA_BITS + ", got " + oaBits);
        }
        if ((largePages & ~(SLLPS_2M | SLLPS_1G)) != 0) {
            throw new IllegalArgumentException(
                    "largePages takes CAP.SLLPS bits 0 (2 MB) and 1 (1 GB) only, got 0x" + Integer.toHexString(largePages));
        }
        this.levels = levels;
        this.oaBits = oaBits;
        this.largePages = largePages;
        this.snoop = snoop;
        this.accessDirty = accessDirty;
        this.supportedProt = Prot.READ | Prot.WRITE | (snoop ? Prot.CACHE : 0);
        this.leafSizes = new long[levels];
        this.leafOaMask = new long[levels];
        for (int l = 0; l < levels; l++) {
            leafOaMask[l] = ADDR & ~Bits.mask(0, itemLg2(l));
        }
        leafSizes[0] = 1L << itemLg2(0);
        leafSizes[1] = (largePages & SLLPS_2M) != 0 ? 1L << itemLg2(1) : 0;
        leafSizes[2] = (largePages & SLLPS_1G) != 0 ? 1L << itemLg2(2) : 0;
        StringBuilder b = new StringBuilder("vtd-ss ").append(levels).append("-level va").append(vaBits())
                .append(" oa").append(oaBits).append(" pages 4K");
        if ((largePages & SLLPS_2M) != 0) {
            b.append(",2M");
        }
        if ((largePages & SLLPS_1G) != 0) {
            b.append(",1G");
        }
        if (snoop) {
            b.append(" snp");
        }
        if (accessDirty) {
            b.append(" ad");
        }
        this.name = b.toString();
    }

    /**
     * A second-stage format with {@code levels} levels (3, 4 or 5), a 48-bit host address width, 2 MB and 1 GB
     * pages, no snoop control and no A/D tracking.
     */
    public static VtdSs levels(int levels) {
        return new VtdSs(levels, DEFAULT_OA_BITS, SLLPS_2M | SLLPS_1G, false, false);
    }

    /** This format with host address width {@code oaBits} (32..52). */
    public VtdSs withOaBits(int oaBits) {
        return new VtdSs(levels, oaBits, largePages, snoop, accessDirty);
    }

    /** This format with the large pages CAP.SLLPS reports: a combination of {@link #SLLPS_2M} and {@link #SLLPS_1G}. */
    public VtdSs withLargePages(int sllps) {
        return new VtdSs(levels, oaBits, sllps, snoop, accessDirty);
    }

    /** This format with or without snoop control (ECAP.SC): {@link Prot#CACHE} becomes SNP when enabled. */
    public VtdSs withSnoop(boolean snoop) {
        return new VtdSs(levels, oaBits, largePages, snoop, accessDirty);
    }

    /** This format with or without second-stage accessed/dirty tracking (ECAP.SSADS with SSADE set). */
    public VtdSs withAccessDirty(boolean accessDirty) {
        return new VtdSs(levels, oaBits, largePages, snoop, accessDirty);
    }

    /** The number of levels: 3, 4 or 5. */
    public int levels() {
        return levels;
    }

    /** The CAP.SLLPS-style large-page bitmap: {@link #SLLPS_2M}, {@link #SLLPS_1G}. */
    public int largePages() {
        return largePages;
    }

    /** Whether snoop control (SNP for {@link Prot#CACHE}) is enabled. */
    public boolean snoop() {
        return snoop;
    }

    /** Whether A/D tracking is enabled. */
    public boolean accessDirty() {
        return accessDirty;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public int entryLg2() {
        return 3;
    }

    /** 39, 48 or 57: 12 bits of page offset plus 9 per level. */
    @Override
    public int vaBits() {
        return GRANULE_LG2 + STRIDE * levels;
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
     * {@link #EMPTY} when neither R nor W is set, or when the entry is malformed (PS in an SS-PML4E/PML5E, or
     * PS for a page size CAP.SLLPS does not report); otherwise {@link #LEAF} at level 0 and for PS=1 at levels
     * 1 and 2, {@link #TABLE} for the rest.
     */
    @Override
    public int kind(long entry, int level) {
        if ((entry & (R | W)) == 0) {
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

    /** {@code R|W|tablePa}: the walk ANDs R and W down the levels, so the leaf alone decides. */
    @Override
    public long table(long tablePa, int level) {
        return R | W | (tablePa & ADDR);
    }

    /** The page's address: bits [51:12], without the bits below the page size (reserved in 2 MB/1 GB leaves). */
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
        long e = oa & ADDR;
        if ((prot & Prot.READ) != 0) {
            e |= R;
        }
        if ((prot & Prot.WRITE) != 0) {
            e |= W;
        }
        if (level != 0) {
            e |= PS;
        }
        if (snoop && (prot & Prot.CACHE) != 0) {
            e |= SNP;
        }
        return e;
    }

    @Override
    public int prot(long entry, int level) {
        int p = 0;
        if ((entry & R) != 0) {
            p |= Prot.READ;
        }
        if ((entry & W) != 0) {
            p |= Prot.WRITE;
        }
        if (snoop && (entry & SNP) != 0) {
            p |= Prot.CACHE;
        }
        return p;
    }

    /** READ and WRITE, plus CACHE with snoop control. */
    @Override
    public int supportedProt() {
        return supportedProt;
    }

    @Override
    public boolean tracksDirty() {
        return accessDirty;
    }

    /** D (bit 9), when A/D tracking is enabled; always false otherwise. */
    @Override
    public boolean isDirty(long entry, int level) {
        return accessDirty && (entry & D) != 0;
    }

    /** The entry with D cleared (A is left alone, as Linux does); unchanged without A/D tracking. */
    @Override
    public long clearDirty(long entry, int level) {
        return accessDirty ? entry & ~D : entry;
    }

    /** The entry with A and D set, as hardware writes it back; unchanged without A/D tracking. */
    @Override
    public long markDirty(long entry, int level) {
        return accessDirty ? entry | A | D : entry;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof VtdSs v && v.levels == levels && v.oaBits == oaBits && v.largePages == largePages
                && v.snoop == snoop && v.accessDirty == accessDirty;
    }

    @Override
    public int hashCode() {
        return Objects.hash(levels, oaBits, largePages, snoop, accessDirty);
    }

    @Override
    public String toString() {
        return name;
    }
}
