package org.iommuemu.core.pgtable.fmt;

import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;

/**
 * The Arm VMSAv8-64 long-descriptor (LPAE) translation table format, stage 1 or stage 2, with a 4K, 16K or
 * 64K granule: the format of SMMUv3 context descriptors and stream table entries (spec PGTABLE.md §1).
 *
 * <p><b>Levels.</b> Level 0 is the leaf level of the smallest pages (Arm's L3); Arm level = 3 − our level.
 * With stride {@code s = granuleLg2 - 3}, an entry at level {@code l} covers {@code 2^(granuleLg2 + s*l)}
 * bytes and a table holds {@code 2^s} entries. The top table covers the rest of the input address
 * ({@link #topItemsLg2}); a stage-2 table whose walk would start at Arm L0 with 16 entries or fewer starts at
 * L1 with that many concatenated tables instead, as Linux does (§1.5, §1.6).
 *
 * <p><b>Entries</b> (§1.1–§1.4). Bit 0 clear is empty. Type {@code 0b11} is a table above level 0 and a page
 * at level 0; type {@code 0b01} is a block above level 0. Type {@code 0b01} at level 0 is reserved (the walk
 * faults), and a block at a level that holds no leaves in this configuration (4K L0 / 16K L1 without LPA2,
 * 64K L1 without 52-bit output) is invalid too: {@link #kind} reports both as {@link #EMPTY}, which is what a
 * walker needs (a translation fault). Table descriptors carry only the next-table address: no hierarchical
 * attributes in stage 1, none exist in stage 2.
 *
 * <p><b>Leaf attributes</b> as Linux's io-pgtable-arm writes them. Stage 1: nG and AF always; AP[1]
 * (unprivileged access) unless {@link Prot#PRIV}; AP[2] (read-only) without {@link Prot#WRITE}; AttrIndx 2
 * for {@link Prot#MMIO}, 1 for {@link Prot#CACHE}, 0 otherwise (Linux's MAIR: 0 Normal-NC, 1 Normal-WB,
 * 2 Device-nGnRE); SH inner-shareable for CACHE, outer-shareable otherwise; PXN and UXN for
 * {@link Prot#NOEXEC}. Stage 2: S2AP read/write bits, MemAttr 0x1 device / 0xF Normal-WB / 0x5 Normal-NC,
 * SH as stage 1, AF, XN (bit 54) for NOEXEC. Attributes are encoded from {@link #canonicalProt}, so
 * re-encoding a decoded leaf gives back the same bits.
 *
 * <p><b>Contiguous hint</b> (§1.3, with {@link Config#contiguous()}): runs of 16 entries at every leaf level
 * for 4K; 128 at level 0 and 32 at level 1 for 16K; 32 at levels 0 and 1 for 64K. Each entry of a run holds
 * its own output address and sets bit 52.
 *
 * <p><b>Dirty tracking</b> (§1.3 HTTU, with {@link Config#hd()}): writable leaves are written writable-clean
 * (DBM set, and AP[2] set in stage 1 / S2AP[1] clear in stage 2); the first write through one makes it
 * writable-dirty (AP[2] cleared / S2AP[1] set).
 *
 * <p><b>52-bit output</b> (64K granule with {@code oasBits == 52}): OA[51:48] sits in descriptor bits
 * [15:12], for tables and leaves alike.
 *
 * <p>Immutable and thread-safe. Every {@link PtFormat} method reads precomputed per-level and per-prot
 * tables and allocates nothing. Levels outside {@code 0..3} are out of range.
 */
public final class Arm64Lpae implements PtFormat {

    /** Translation stage. */
    public enum Stage {
        /** Stage 1: VA to IPA/PA, AP[2:1] permissions and MAIR attribute indexes. */
        S1,
        /** Stage 2: IPA to PA, S2AP permissions and MemAttr, concatenated initial tables. */
        S2
    }

    /**
     * One configuration of the format.
     *
     * @param stage      stage 1 or stage 2
     * @param granuleLg2 translation granule: 12 (4K), 14 (16K) or 16 (64K)
     * @param iasBits    input address bits: 32..48 (stage 2 with the 64K granule: up to 52)
     * @param oasBits    output address bits: 32..48, or 52 with the 64K granule (FEAT_LPA)
     * @param contiguous whether leaves may use the contiguous hint (bit 52) for runs
     * @param hd         whether writable leaves are written for hardware dirty-state updates (DBM)
     */
    public record Config(Stage stage, int granuleLg2, int iasBits, int oasBits, boolean contiguous, boolean hd) {
        /** Validates the widths against the granule; throws {@link IllegalArgumentException} with the reason. */
        public Config {
            if (stage == null) {
                throw new IllegalArgumentException("stage must be S1 or S2, not null");
            }
            if (granuleLg2 != 12 && granuleLg2 != 14 && granuleLg2 != 16) {
                throw new IllegalArgumentException(
                        "granuleLg2 must be 12 (4K), 14 (16K) or 16 (64K), not " + granuleLg2);
            }
            int maxIas = stage == Stage.S2 && granuleLg2 == 16 ? 52 : 48;
            if (iasBits < 32 || iasBits > maxIas) {
                throw new IllegalArgumentException("iasBits must be 32.." + maxIas + " for " + stage + " with the "
                        + granuleName(granuleLg2) + " granule, not " + iasBits);
            }
            if (oasBits == 52 && granuleLg2 != 16) {
                throw new IllegalArgumentException("oasBits 52 needs the 64K granule (FEAT_LPA), not the "
                        + granuleName(granuleLg2) + " granule");
            }
            if ((oasBits < 32 || oasBits > 48) && oasBits != 52) {
                throw new IllegalArgumentException("oasBits must be 32..48 or 52, not " + oasBits);
            }
        }

        /** This configuration with the contiguous hint switched on or off. */
        public Config withContiguous(boolean on) {
            return new Config(stage, granuleLg2, iasBits, oasBits, on, hd);
        }

        /** This configuration with hardware dirty-state tracking switched on or off. */
        public Config withHd(boolean on) {
            return new Config(stage, granuleLg2, iasBits, oasBits, contiguous, on);
        }
    }

    // ---------------------------------------------------------------- descriptor bits (§1.1-§1.4)

    private static final long VALID = 1L;
    private static final long TYPE_TABLE = 0b11L;
    private static final long TYPE_PAGE = 0b11L;
    private static final long TYPE_BLOCK = 0b01L;
    private static final int ATTR_INDX_SHIFT = 2;
    private static final int MEM_ATTR_SHIFT = 2;
    /** Stage 1 AP[1]: unprivileged (EL0) access allowed. */
    private static final long AP_UNPRIV = 1L << 6;
    /** Stage 1 AP[2]: read-only. */
    private static final long AP_RDONLY = 1L << 7;
    /** Stage 2 S2AP[0]: read allowed. */
    private static final long S2AP_READ = 1L << 6;
    /** Stage 2 S2AP[1]: write allowed. */
    private static final long S2AP_WRITE = 1L << 7;
    /** The write-permission bit the dirty state lives in: AP[2] in stage 1, S2AP[1] in stage 2. */
    private static final long W_BIT = 1L << 7;
    private static final int SH_SHIFT = 8;
    private static final long SH_OUTER = 2L << SH_SHIFT;
    private static final long SH_INNER = 3L << SH_SHIFT;
    private static final long AF = 1L << 10;
    private static final long NG = 1L << 11;
    private static final long DBM = 1L << 51;
    private static final long CONT = 1L << 52;
    private static final long PXN = 1L << 53;
    private static final long UXN = 1L << 54;
    /** Distance from DBM (bit 51) down to AP[2] / S2AP[1] (bit 7). */
    private static final int DBM_TO_W = 51 - 7;
    /** Descriptor bits [15:12] hold OA[51:48] with 52-bit output and the 64K granule. */
    private static final long OA_HI_FIELD = Bits.maskHiLo(15, 12);
    private static final int OA_HI_SHIFT = 48 - 12;

    /** Linux's MAIR indexes. */
    private static final int MAIR_IDX_NC = 0;
    private static final int MAIR_IDX_CACHE = 1;
    private static final int MAIR_IDX_DEV = 2;
    /** Stage-2 MemAttr values (non-FWB). */
    private static final int MEMATTR_DEV = 0x1;
    private static final int MEMATTR_NC = 0x5;
    private static final int MEMATTR_WB = 0xF;

    private static final int MAX_LEVELS = 4;
    private static final int PROT_COMBOS = Prot.ALL + 1;

    /**
     * Decoding of stage-1 AttrIndx against Linux's MAIR: 0 Normal-NC, 1 Normal-WB (CACHE), 2 Device, 3 inner-NC
     * outer-WB (not coherent, so no CACHE), 4..7 zero bytes of MAIR = Device-nGnRnE (MMIO).
     */
    private static final int[] S1_ATTR_INDX_PROT = {0, Prot.CACHE, Prot.MMIO, 0, Prot.MMIO, Prot.MMIO, Prot.MMIO,
        Prot.MMIO};

    /**
     * Decoding of stage-2 MemAttr[3:0] (non-FWB): 0b00xx is Device memory (MMIO); 0xF is Normal inner and outer
     * write-back (CACHE); any other Normal combination is neither.
     */
    private static final int[] S2_MEM_ATTR_PROT = {Prot.MMIO, Prot.MMIO, Prot.MMIO, Prot.MMIO, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, Prot.CACHE};

    // ---------------------------------------------------------------- configuration and precomputed tables

    private final Config config;
    private final boolean s1;
    private final int stride;
    private final int topLevel;
    private final int topItemsLg2;
    private final int concatenatedTables;
    private final String name;

    /** log2 of the bytes an entry covers, per level. */
    private final int[] itemLg2 = new int[MAX_LEVELS];
    /** Leaf-size bitmap per level (item size and contiguous run). */
    private final long[] leafSizes = new long[MAX_LEVELS];
    /** {@link #kind} per {@code level * 4 + type bits}. */
    private final byte[] kinds = new byte[MAX_LEVELS * 4];
    /** {@link #leafLg2} per {@code level * 2 + contiguous bit}. */
    private final int[] leafLg2ByCont = new int[MAX_LEVELS * 2];
    /** Descriptor bits [47:itemLg2]: a leaf's output address field, per level. */
    private final long[] leafOaMask = new long[MAX_LEVELS];
    /** Descriptor bits [47:granuleLg2]: a table address field. */
    private final long tableOaMask;
    /** {@link #OA_HI_FIELD} with 52-bit output and the 64K granule, else 0 (no packing). */
    private final long oaHiField;
    /** Type bits of a single-entry leaf, per level: page at level 0, block above. */
    private final long[] leafType = new long[MAX_LEVELS];
    /** Leaf attribute bits (everything but type, OA and contiguous bit) per prot. */
    private final long[] leafAttrs = new long[PROT_COMBOS];
    private final int[] canonical = new int[PROT_COMBOS];
    /** DBM when {@code hd}, else 0: the DBM bit only grants write permission when hardware updates it. */
    private final long dbmWritable;
    /** DBM and the write-permission bit when {@code hd}, else 0 (then nothing is ever dirty). */
    private final long dirtyMask;
    /** The dirty state under {@link #dirtyMask}: DBM with AP[2] clear (stage 1), DBM with S2AP[1] set (stage 2). */
    private final long dirtyValue;
    private final int supportedProt;

    /** The format for {@code config}; throws {@link IllegalArgumentException} for an impossible geometry. */
    public Arm64Lpae(Config config) {
        if (config == null) {
            throw new IllegalArgumentException("config must not be null");
        }
        this.config = config;
        this.s1 = config.stage() == Stage.S1;
        int g = config.granuleLg2();
        int ias = config.iasBits();
        this.stride = g - 3;
        for (int l = 0; l < MAX_LEVELS; l++) {
            itemLg2[l] = g + stride * l;
        }

        // §1.5: the natural start level resolves whatever input bits remain above the lower levels.
        int levels = (ias - g + stride - 1) / stride;
        if (levels > MAX_LEVELS) {
            throw new IllegalArgumentException("iasBits " + ias + " needs more than four levels");
        }
        int top = levels - 1;
        int topItems = ias - itemLg2[top];
        int concat = 1;
        // §1.6, as Linux does it: a stage-2 walk that would start at Arm L0 with at most 16 entries starts at L1
        // with that many concatenated tables instead (one level fewer, and the only way to express 16K with a
        // 48-bit input, whose L0 start SL0 cannot encode). Elsewhere the natural start keeps its large blocks.
        if (!s1 && top == 3 && topItems <= 4) {
            top--;
            topItems = ias - itemLg2[top];
            concat = 1 << (topItems - stride);
        }
        this.topLevel = top;
        this.topItemsLg2 = topItems;
        this.concatenatedTables = concat;
        if (!s1) {
            int sl0 = sl0For(g, top);
            if (sl0 < 0 || sl0 > 2) {
                throw new IllegalArgumentException("stage-2 start at Arm level " + (3 - top)
                        + " has no legal SL0 for the " + granuleName(g) + " granule (iasBits " + ias + ")");
            }
        }

        this.oaHiField = g == 16 && config.oasBits() == 52 ? OA_HI_FIELD : 0;
        this.tableOaMask = Bits.maskHiLo(47, g);
        this.dbmWritable = config.hd() ? DBM : 0;
        this.dirtyMask = config.hd() ? DBM | W_BIT : 0;
        this.dirtyValue = s1 ? DBM : DBM | W_BIT;
        this.supportedProt = s1 ? Prot.ALL : Prot.ALL & ~Prot.PRIV;

        for (int l = 0; l < MAX_LEVELS; l++) {
            leafOaMask[l] = itemLg2[l] <= 47 ? Bits.maskHiLo(47, itemLg2[l]) : 0;
            leafType[l] = l == 0 ? TYPE_PAGE : TYPE_BLOCK;
            long sizes = 0;
            int runLg2 = itemLg2[l];
            if (l <= top && blockAllowed(g, l, config.oasBits())) {
                sizes = 1L << itemLg2[l];
                int contLg2 = itemLg2[l] + contiguousEntriesLg2(g, l);
                // A run must fit in the table that holds it (the top table may be small).
                int tableLg2 = itemLg2[l] + (l == top ? topItems : stride);
                if (config.contiguous() && contLg2 > itemLg2[l] && contLg2 <= tableLg2) {
                    sizes |= 1L << contLg2;
                    runLg2 = contLg2;
                }
            }
            leafSizes[l] = sizes;
            leafLg2ByCont[l * 2] = itemLg2[l];
            leafLg2ByCont[l * 2 + 1] = runLg2;
            boolean holdsLeaves = sizes != 0;
            kinds[l * 4] = EMPTY;
            kinds[l * 4 + 2] = EMPTY;
            // Type 0b01: a block where blocks are allowed; reserved at level 0 and invalid elsewhere.
            kinds[l * 4 + 1] = (byte) (l > 0 && holdsLeaves ? LEAF : EMPTY);
            // Type 0b11: a page at level 0 (when the level holds leaves, which it always does), a table above.
            kinds[l * 4 + 3] = (byte) (l == 0 ? (holdsLeaves ? LEAF : EMPTY) : TABLE);
        }

        for (int p = 0; p < PROT_COMBOS; p++) {
            canonical[p] = canonicalize(p);
            leafAttrs[p] = s1 ? stage1Attrs(canonical[p]) : stage2Attrs(canonical[p]);
        }

        this.name = "arm64-lpae " + (s1 ? "s1 " : "s2 ") + granuleName(g) + " ias" + ias + " oas" + config.oasBits()
                + (config.contiguous() ? " contig" : "") + (config.hd() ? " hd" : "");
    }

    /** A stage-1 format without the contiguous hint or dirty tracking. */
    public static Arm64Lpae stage1(int granuleLg2, int iasBits, int oasBits) {
        return new Arm64Lpae(new Config(Stage.S1, granuleLg2, iasBits, oasBits, false, false));
    }

    /** A stage-2 format without the contiguous hint or dirty tracking. */
    public static Arm64Lpae stage2(int granuleLg2, int iasBits, int oasBits) {
        return new Arm64Lpae(new Config(Stage.S2, granuleLg2, iasBits, oasBits, false, false));
    }

    /** This format with the contiguous hint switched on or off. */
    public Arm64Lpae withContiguous(boolean on) {
        return new Arm64Lpae(config.withContiguous(on));
    }

    /** This format with hardware dirty-state tracking (DBM) switched on or off. */
    public Arm64Lpae withHd(boolean on) {
        return new Arm64Lpae(config.withHd(on));
    }

    public Config config() {
        return config;
    }

    public Stage stage() {
        return config.stage();
    }

    public int granuleLg2() {
        return config.granuleLg2();
    }

    // ---------------------------------------------------------------- what the driver programs (§1.5, §1.6)

    /** TnSZ / S2T0SZ: {@code 64 - iasBits}. */
    public int t0sz() {
        return 64 - config.iasBits();
    }

    /**
     * The stage-2 SL0 field for the start level (§1.6): {@code 2 - armLevel} with the 4K granule,
     * {@code 3 - armLevel} with 16K and 64K, where {@code armLevel = 3 - topLevel()}.
     *
     * @throws IllegalStateException for a stage-1 format, which has no SL0
     */
    public int stage2Sl0() {
        if (s1) {
            throw new IllegalStateException("SL0 is a stage-2 field; " + name + " is stage 1");
        }
        return sl0For(config.granuleLg2(), topLevel);
    }

    /** How many physically contiguous tables make up the top table: 2..16 for a concatenated stage-2 start, else 1. */
    public int concatenatedTables() {
        return concatenatedTables;
    }

    /**
     * Bytes of a table at {@code level}: a granule for every table but the top one, whose size follows
     * {@link #topItemsLg2} (smaller than a granule when it resolves fewer bits, several granules when
     * concatenated). The top table must be aligned to its size, and to at least 64 bytes.
     */
    public long tableBytes(int level, boolean top) {
        return 1L << ((top ? topItemsLg2(level) : tableItemsLg2(level)) + 3);
    }

    // ---------------------------------------------------------------- PtFormat: geometry

    @Override
    public String name() {
        return name;
    }

    @Override
    public int entryLg2() {
        return 3;
    }

    @Override
    public int vaBits() {
        return config.iasBits();
    }

    @Override
    public int oaBits() {
        return config.oasBits();
    }

    @Override
    public int topLevel() {
        return topLevel;
    }

    @Override
    public int itemLg2(int level) {
        return itemLg2[level];
    }

    @Override
    public int tableItemsLg2(int level) {
        return stride;
    }

    /** The top table's entry count at {@link #topLevel()}; a full table at any other level. */
    @Override
    public int topItemsLg2(int level) {
        return level == topLevel ? topItemsLg2 : stride;
    }

    @Override
    public long leafSizes(int level) {
        return leafSizes[level];
    }

    // ---------------------------------------------------------------- PtFormat: entries

    @Override
    public int kind(long entry, int level) {
        return kinds[(level << 2) | (int) (entry & 3)];
    }

    @Override
    public long tableAddress(long entry, int level) {
        return (entry & tableOaMask) | ((entry & oaHiField) << OA_HI_SHIFT);
    }

    @Override
    public long table(long tablePa, int level) {
        return (tablePa & tableOaMask) | ((tablePa >>> OA_HI_SHIFT) & oaHiField) | TYPE_TABLE;
    }

    @Override
    public long leafOa(long entry, int level) {
        return (entry & leafOaMask[level]) | ((entry & oaHiField) << OA_HI_SHIFT);
    }

    @Override
    public int leafLg2(long entry, int level) {
        return leafLg2ByCont[(level << 1) | (int) ((entry >>> 52) & 1)];
    }

    @Override
    public long leaf(long oa, int level, int sizeLg2, int prot) {
        long cont = sizeLg2 == itemLg2[level] ? 0 : CONT;
        return (oa & leafOaMask[level]) | ((oa >>> OA_HI_SHIFT) & oaHiField) | leafType[level] | cont
                | leafAttrs[prot & Prot.ALL];
    }

    // ---------------------------------------------------------------- PtFormat: attributes

    /**
     * Decodes a leaf's attributes. Stage 1: always READ; WRITE when AP[2] is clear or, with {@code hd}, when DBM
     * is set (writable-clean); PRIV when AP[1] is clear. Stage 2: READ and WRITE from S2AP (WRITE also from DBM
     * with {@code hd}). Both: NOEXEC when PXN or UXN (stage 2: XN[1:0]) is set, the memory type from AttrIndx
     * against Linux's MAIR or from MemAttr.
     */
    @Override
    public int prot(long entry, int level) {
        int p;
        if (s1) {
            p = Prot.READ | S1_ATTR_INDX_PROT[(int) (entry >>> ATTR_INDX_SHIFT) & 7];
            if ((entry & AP_RDONLY) == 0 || (entry & dbmWritable) != 0) {
                p |= Prot.WRITE;
            }
            if ((entry & AP_UNPRIV) == 0) {
                p |= Prot.PRIV;
            }
        } else {
            p = S2_MEM_ATTR_PROT[(int) (entry >>> MEM_ATTR_SHIFT) & 0xF];
            if ((entry & S2AP_READ) != 0) {
                p |= Prot.READ;
            }
            if ((entry & S2AP_WRITE) != 0 || (entry & dbmWritable) != 0) {
                p |= Prot.WRITE;
            }
        }
        if ((entry & (PXN | UXN)) != 0) {
            p |= Prot.NOEXEC;
        }
        return p;
    }

    @Override
    public int supportedProt() {
        return supportedProt;
    }

    /** Stage 1 cannot express write-only, so WRITE brings READ; in both stages MMIO wins over CACHE. */
    @Override
    public int canonicalProt(int prot) {
        return canonical[prot & Prot.ALL];
    }

    // ---------------------------------------------------------------- PtFormat: dirty state (§1.3 HTTU)

    @Override
    public boolean tracksDirty() {
        return config.hd();
    }

    /** With {@code hd}: DBM set and the write permission bit granted (AP[2] clear / S2AP[1] set). */
    @Override
    public boolean isDirty(long entry, int level) {
        return (entry & dirtyMask) == dirtyValue;
    }

    /** With {@code hd}, a DBM leaf becomes writable-clean again; a leaf without DBM is left alone. */
    @Override
    public long clearDirty(long entry, int level) {
        if (!config.hd()) {
            return entry;
        }
        long w = (entry & DBM) >>> DBM_TO_W;
        return s1 ? entry | w : entry & ~w;
    }

    /** With {@code hd}, what the SMMU writes on the first write through a writable-clean (DBM) leaf. */
    @Override
    public long markDirty(long entry, int level) {
        if (!config.hd()) {
            return entry;
        }
        long w = (entry & DBM) >>> DBM_TO_W;
        return s1 ? entry & ~w : entry | w;
    }

    @Override
    public String toString() {
        return name;
    }

    // ---------------------------------------------------------------- construction helpers

    private int canonicalize(int prot) {
        int p = prot & supportedProt;
        if (s1 && (p & Prot.WRITE) != 0) {
            p |= Prot.READ;
        }
        if ((p & Prot.MMIO) != 0) {
            p &= ~Prot.CACHE;
        }
        return p;
    }

    private long stage1Attrs(int p) {
        long a = NG | AF;
        if ((p & Prot.PRIV) == 0) {
            a |= AP_UNPRIV;
        }
        if ((p & Prot.WRITE) == 0) {
            a |= AP_RDONLY;
        } else if (config.hd()) {
            a |= AP_RDONLY | DBM; // writable-clean
        }
        int idx = (p & Prot.MMIO) != 0 ? MAIR_IDX_DEV : (p & Prot.CACHE) != 0 ? MAIR_IDX_CACHE : MAIR_IDX_NC;
        a |= (long) idx << ATTR_INDX_SHIFT;
        a |= (p & Prot.CACHE) != 0 ? SH_INNER : SH_OUTER;
        if ((p & Prot.NOEXEC) != 0) {
            a |= PXN | UXN;
        }
        return a;
    }

    private long stage2Attrs(int p) {
        long a = AF;
        if ((p & Prot.READ) != 0) {
            a |= S2AP_READ;
        }
        if ((p & Prot.WRITE) != 0) {
            a |= config.hd() ? DBM : S2AP_WRITE; // with hd: writable-clean
        }
        int memAttr = (p & Prot.MMIO) != 0 ? MEMATTR_DEV : (p & Prot.CACHE) != 0 ? MEMATTR_WB : MEMATTR_NC;
        a |= (long) memAttr << MEM_ATTR_SHIFT;
        a |= (p & Prot.CACHE) != 0 ? SH_INNER : SH_OUTER;
        if ((p & Prot.NOEXEC) != 0) {
            a |= UXN;
        }
        return a;
    }

    /**
     * Whether a leaf may sit at {@code level} (§1.1, §1.4, without LPA2): pages at level 0 always; 4K blocks at
     * levels 1 and 2 (2M, 1G); 16K at level 1 (32M); 64K at level 1 (512M) and, with 52-bit output, level 2 (4T).
     */
    private static boolean blockAllowed(int granuleLg2, int level, int oasBits) {
        return switch (granuleLg2) {
            case 12 -> level <= 2;
            case 14 -> level <= 1;
            default -> level <= 1 || (level == 2 && oasBits == 52);
        };
    }

    /** log2 of the entries in a contiguous run at {@code level} (§1.3), 0 where the level has none. */
    private static int contiguousEntriesLg2(int granuleLg2, int level) {
        return switch (granuleLg2) {
            case 12 -> level <= 2 ? 4 : 0; // 16 entries: 64K, 32M, 16G
            case 14 -> level == 0 ? 7 : level == 1 ? 5 : 0; // 128 x 16K = 2M, 32 x 32M = 1G
            default -> level <= 1 ? 5 : 0; // 32 x 64K = 2M, 32 x 512M = 16G
        };
    }

    private static int sl0For(int granuleLg2, int topLevel) {
        int armLevel = 3 - topLevel;
        return (granuleLg2 == 12 ? 2 : 3) - armLevel;
    }

    private static String granuleName(int granuleLg2) {
        return (1 << (granuleLg2 - 10)) + "K";
    }
}
