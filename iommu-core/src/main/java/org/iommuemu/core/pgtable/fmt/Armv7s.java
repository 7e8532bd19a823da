package org.iommuemu.core.pgtable.fmt;

import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;

/**
 * The Armv7 short-descriptor translation table format (VMSAv7 / VMSAv8-32 "short descriptors"), as Linux's
 * io-pgtable-arm-v7s uses it: 32-bit input, 32-bit entries, two levels (spec PGTABLE.md §2).
 *
 * <p><b>Levels.</b> Level 1 is Arm's first level: 4096 entries of 1 MiB (a 16 KiB table). Level 0 is Arm's
 * second level: 256 entries of 4 KiB (a 1 KiB table). Leaves: level 0 holds 4K small pages and 64K large
 * pages, level 1 holds 1M sections and 16M supersections. A large page or supersection is one entry
 * replicated in 16 consecutive slots; {@link #leaf} ignores the output address bits below the run size and
 * {@link #leafOa} returns the run's base.
 *
 * <p><b>Entries.</b> An entry is the 32-bit descriptor zero-extended into a {@code long}; decoding ignores
 * the upper 32 bits. Level 1 type bits [1:0]: {@code 00} fault, {@code 01} page table (L2 base [31:10]),
 * {@code 1x} section or supersection (bit 18), where bit 0 is PXN. A {@code 0b11} first-level entry is
 * therefore a leaf with PXN set (execute-never for privileged accesses), as the architecture reads it with
 * the PXN extension, and decodes with {@link Prot#NOEXEC}; Linux never writes one (and its own walker
 * would misread one as a table). Level 0 type bits: {@code 00} fault, {@code 01} large page, {@code 1x}
 * small page (bit 0 is then XN). Page-table descriptors are plain (no NS, PXN or domain).
 *
 * <p><b>Attributes</b>, with the simplified access model (SCTLR.AFE=1) and TEX remap (TRE=1), as Linux writes
 * them. One attribute group sits at bit 10 (sections) or bit 4 (pages): AP[0] = access flag, always set;
 * AP[1] = unprivileged access, set unless {@link Prot#PRIV}; TEX[2:0]; AP[2] = read-only, set without
 * {@link Prot#WRITE}; S (shareable), always set; nG, always set. The memory type is the remap index
 * {TEX[0], C, B}: 1 (B) for {@link Prot#MMIO}, 7 (TEX[0]|C|B) for {@link Prot#CACHE}, 4 (TEX[0]) otherwise.
 * XN is bit 4 in sections, bit 0 in small pages; large pages move XN to bit 15 and TEX to [14:12].
 *
 * <p><b>Output addresses.</b> Everything but supersections holds a 32-bit address. With
 * {@code oasBits == 40}, a supersection also holds PA[35:32] in bits [23:20] and PA[39:36] in [8:5]; with
 * 32, those bits are written as zero and ignored on decode. See {@link #leafOaBits} and {@link #tableOaBits}.
 *
 * <p>Immutable and thread-safe; every {@link PtFormat} method is a table lookup plus shifts and allocates
 * nothing. Levels other than 0 and 1 are out of range.
 */
public final class Armv7s implements PtFormat {

    /**
     * One configuration of the format.
     *
     * @param oasBits output address bits: 32, or 40 for supersections beyond 4 GiB
     */
    public record Config(int oasBits) {
        /** Validates the output width; throws {@link IllegalArgumentException} with the reason. */
        public Config {
            if (oasBits != 32 && oasBits != 40) {
                throw new IllegalArgumentException("oasBits must be 32, or 40 (supersections only), not " + oasBits);
            }
        }
    }

    // ---------------------------------------------------------------- descriptor bits (§2)

    private static final long U32 = 0xFFFF_FFFFL;
    private static final long TYPE_TABLE = 0b01L;
    /** Section, supersection and small page: type bit 1 (bit 0 is PXN / XN, clear). */
    private static final long TYPE_SECTION_OR_SMALL = 0b10L;
    private static final long TYPE_LARGE = 0b01L;
    private static final long B = 1L << 2;
    private static final long C = 1L << 3;
    private static final long SUPERSECTION = 1L << 18;
    private static final long TABLE_ADDR_MASK = 0xFFFF_FC00L;

    /** The attribute group, relative to its shift (§2: AP0 +0, AP1 +1, TEX +2..+4, AP2 +5, S +6, nG +7). */
    private static final int ATTR_AP0 = 1;
    private static final int ATTR_AP1 = 1 << 1;
    private static final int ATTR_TEX0 = 1 << 2;
    private static final int ATTR_AP2 = 1 << 5;
    private static final int ATTR_S = 1 << 6;
    private static final int ATTR_NG = 1 << 7;
    private static final int ATTR_SHIFT_SECTION = 10;
    private static final int ATTR_SHIFT_PAGE = 4;
    /** Large pages: TEX at [14:12] instead of [8:6], XN at bit 15 instead of bit 0. */
    private static final int LARGE_TEX0_BIT = 12;
    private static final int LARGE_XN_BIT = 15;

    /**
     * Memory type per TEX-remap index {TEX[0], C, B} under Linux's PRRR/NMRR: 1 device, 4 normal non-cacheable,
     * 7 normal write-back (CACHE); every other index is left as strongly-ordered by that PRRR (MMIO).
     */
    private static final int[] REMAP_INDEX_PROT = {Prot.MMIO, Prot.MMIO, Prot.MMIO, Prot.MMIO, 0, Prot.MMIO,
        Prot.MMIO, Prot.CACHE};

    /** Leaf kinds, indexing the per-kind tables below. */
    private static final int SMALL = 0;
    private static final int LARGE = 1;
    private static final int SECTION = 2;
    private static final int SUPER = 3;

    private static final int[] ITEM_LG2 = {12, 20};
    private static final int[] TABLE_ITEMS_LG2 = {8, 12};
    private static final long[] LEAF_SIZES = {(1L << 12) | (1L << 16), (1L << 20) | (1L << 24)};
    /** {@link #kind} per {@code level * 4 + type bits}. */
    private static final byte[] KINDS = {
        EMPTY, LEAF, LEAF, LEAF, // level 0: fault, large page, small page (XN clear / set)
        EMPTY, TABLE, LEAF, LEAF, // level 1: fault, page table, section (PXN clear / set)
    };
    private static final int[] KIND_LG2 = {12, 16, 20, 24};
    private static final long[] KIND_OA_MASK = {0xFFFF_F000L, 0xFFFF_0000L, 0xFFF0_0000L, 0xFF00_0000L};
    private static final int[] KIND_XN_BIT = {0, LARGE_XN_BIT, 4, 4};
    private static final int[] KIND_TEX0_BIT = {ATTR_SHIFT_PAGE + 2, LARGE_TEX0_BIT, ATTR_SHIFT_SECTION + 2,
        ATTR_SHIFT_SECTION + 2};
    private static final int[] KIND_ATTR_SHIFT = {ATTR_SHIFT_PAGE, ATTR_SHIFT_PAGE, ATTR_SHIFT_SECTION,
        ATTR_SHIFT_SECTION};
    /** Bit 0 of a first-level leaf is PXN; of a small page it is XN (already covered); of a large page, type. */
    private static final long[] KIND_PXN = {0, 0, 1, 1};
    private static final int PROT_COMBOS = Prot.ALL + 1;
    private static final int SUPPORTED = Prot.ALL;

    private final Config config;
    private final String name;
    /** Leaf bits (type, attributes, XN, B/C, supersection bit) per {@code kind * 64 + prot}. */
    private final long[] leafBits = new long[4 * PROT_COMBOS];
    private final int[] canonical = new int[PROT_COMBOS];
    /** 0xF for supersections with 40-bit output (the extended address nibbles), else 0, per leaf kind. */
    private final long[] kindExtMask = new long[4];

    /** The format for {@code config}. */
    public Armv7s(Config config) {
        if (config == null) {
            throw new IllegalArgumentException("config must not be null");
        }
        this.config = config;
        this.name = "armv7s oas" + config.oasBits();
        kindExtMask[SUPER] = config.oasBits() == 40 ? 0xF : 0;
        for (int p = 0; p < PROT_COMBOS; p++) {
            int c = canonicalize(p);
            canonical[p] = c;
            for (int k = SMALL; k <= SUPER; k++) {
                leafBits[k * PROT_COMBOS + p] = encodeAttrs(k, c);
            }
        }
    }

    /** The format with 32-bit output, as Linux configures it. */
    public static Armv7s create() {
        return new Armv7s(new Config(32));
    }

    /** The format with 32- or 40-bit output. */
    public static Armv7s create(int oasBits) {
        return new Armv7s(new Config(oasBits));
    }

    public Config config() {
        return config;
    }

    // ---------------------------------------------------------------- PtFormat: geometry

    @Override
    public String name() {
        return name;
    }

    @Override
    public int entryLg2() {
        return 2;
    }

    @Override
    public int vaBits() {
        return 32;
    }

    @Override
    public int oaBits() {
        return config.oasBits();
    }

    /** Supersections reach {@link #oaBits()}; every other leaf holds a 32-bit address. */
    @Override
    public int leafOaBits(int level, int sizeLg2) {
        return sizeLg2 == KIND_LG2[SUPER] ? config.oasBits() : 32;
    }

    /** Page-table descriptors hold a 32-bit address. */
    @Override
    public int tableOaBits(int level) {
        return 32;
    }

    @Override
    public int topLevel() {
        return 1;
    }

    @Override
    public int itemLg2(int level) {
        return ITEM_LG2[level];
    }

    @Override
    public int tableItemsLg2(int level) {
        return TABLE_ITEMS_LG2[level];
    }

    @Override
    public long leafSizes(int level) {
        return LEAF_SIZES[level];
    }

    /** Bytes of a table at {@code level}: 1 KiB for a second-level table, 16 KiB for the first level. */
    public long tableBytes(int level) {
        return 1L << (TABLE_ITEMS_LG2[level] + 2);
    }

    // ---------------------------------------------------------------- PtFormat: entries

    @Override
    public int kind(long entry, int level) {
        return KINDS[(level << 2) | (int) (entry & 3)];
    }

    @Override
    public long tableAddress(long entry, int level) {
        return entry & TABLE_ADDR_MASK;
    }

    @Override
    public long table(long tablePa, int level) {
        return (tablePa & TABLE_ADDR_MASK) | TYPE_TABLE;
    }

    @Override
    public long leafOa(long entry, int level) {
        int k = leafKind(entry, level);
        long ext = kindExtMask[k];
        return (entry & KIND_OA_MASK[k]) | (((entry >>> 20) & ext) << 32) | (((entry >>> 5) & ext) << 36);
    }

    @Override
    public int leafLg2(long entry, int level) {
        return KIND_LG2[leafKind(entry, level)];
    }

    @Override
    public long leaf(long oa, int level, int sizeLg2, int prot) {
        int k = (level << 1) | (sizeLg2 == ITEM_LG2[level] ? 0 : 1);
        long ext = kindExtMask[k];
        return leafBits[k * PROT_COMBOS + (prot & Prot.ALL)] | (oa & KIND_OA_MASK[k])
                | (((oa >>> 32) & ext) << 20) | (((oa >>> 36) & ext) << 5);
    }

    // ---------------------------------------------------------------- PtFormat: attributes

    /**
     * Decodes a leaf's attributes: always READ; WRITE when AP[2] is clear; PRIV when AP[1] is clear; NOEXEC
     * when XN (or, first level, PXN) is set; the memory type from the remap index {TEX[0], C, B}.
     */
    @Override
    public int prot(long entry, int level) {
        int k = leafKind(entry, level);
        int attrs = (int) (entry >>> KIND_ATTR_SHIFT[k]);
        int index = (int) ((entry >>> KIND_TEX0_BIT[k]) & 1) << 2 | (int) ((entry >>> 2) & 3);
        int p = Prot.READ | REMAP_INDEX_PROT[index];
        if ((attrs & ATTR_AP2) == 0) {
            p |= Prot.WRITE;
        }
        if ((attrs & ATTR_AP1) == 0) {
            p |= Prot.PRIV;
        }
        if (((entry >>> KIND_XN_BIT[k]) & 1) != 0 || (entry & KIND_PXN[k]) != 0) {
            p |= Prot.NOEXEC;
        }
        return p;
    }

    @Override
    public int supportedProt() {
        return SUPPORTED;
    }

    /** The format cannot express write-only, so WRITE brings READ; MMIO wins over CACHE. */
    @Override
    public int canonicalProt(int prot) {
        return canonical[prot & Prot.ALL];
    }

    @Override
    public String toString() {
        return name;
    }

    // ---------------------------------------------------------------- helpers

    /**
     * The leaf kind of a leaf entry: small (type 1x) or large (type 01) page at level 0, section or
     * supersection (bit 18) at level 1.
     */
    private static int leafKind(long entry, int level) {
        return level == 0 ? SMALL + (int) (~entry >>> 1 & 1) : SECTION + (int) ((entry >>> 18) & 1);
    }

    private static int canonicalize(int prot) {
        int p = prot & SUPPORTED;
        if ((p & Prot.WRITE) != 0) {
            p |= Prot.READ;
        }
        if ((p & Prot.MMIO) != 0) {
            p &= ~Prot.CACHE;
        }
        return p;
    }

    /** The leaf bits for one kind of leaf and one canonical prot (§2 and Linux's attribute choices). */
    private static long encodeAttrs(int kind, int p) {
        long group = ATTR_AP0 | ATTR_S | ATTR_NG;
        if ((p & Prot.PRIV) == 0) {
            group |= ATTR_AP1;
        }
        if ((p & Prot.WRITE) == 0) {
            group |= ATTR_AP2;
        }
        boolean tex0 = (p & Prot.MMIO) == 0;
        long bc = (p & Prot.MMIO) != 0 ? B : (p & Prot.CACHE) != 0 ? B | C : 0;
        boolean xn = (p & Prot.NOEXEC) != 0;
        long e = (group << KIND_ATTR_SHIFT[kind]) | bc;
        if (kind == LARGE) {
            e |= TYPE_LARGE;
            if (tex0) {
                e |= 1L << LARGE_TEX0_BIT;
            }
        } else {
            e |= TYPE_SECTION_OR_SMALL;
            if (tex0) {
                e |= (long) ATTR_TEX0 << KIND_ATTR_SHIFT[kind];
            }
            if (kind == SUPER) {
                e |= SUPERSECTION;
            }
        }
        if (xn) {
            e |= 1L << KIND_XN_BIT[kind];
        }
        return e & U32;
    }
}
