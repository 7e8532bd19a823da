package org.iommuemu.core.pgtable;

/**
 * One page-table format, in the generic_pt style: the geometry of each level and how one entry of a level
 * encodes "empty", "points to the next table" or "maps a leaf". The algorithms ({@link PageTable}) never
 * name a format; everything format-specific is here.
 *
 * <p>Conventions: level 0 is the leaf level of the smallest pages, levels count up towards the top table;
 * {@code lg2} values are log2 of a byte count; {@code va} is the input address, {@code oa} the output
 * address. An instance is one configured format (granule, stage, widths...), immutable and thread-safe;
 * every method is a pure function and allocates nothing.
 *
 * <p><b>Leaves and contiguous runs.</b> An entry at level {@code L} covers {@code 2^itemLg2(L)} bytes. A leaf
 * may cover more than one entry: a run of {@code 2^(sizeLg2 - itemLg2(L))} consecutive entries, aligned to
 * the run size, that together map {@code 2^sizeLg2} bytes (the arm64 contiguous hint, armv7s large pages and
 * supersections, AMD v1 NextLevel=7 pages). {@link #leafSizes(int)} lists the sizes a level can hold. Every
 * entry of a run is written with {@link #leaf} for its own slot; a format whose run entries are identical
 * (armv7s, AMD v1) ignores the low bits of {@code oa}, one whose entries each hold their own output address
 * (arm64) keeps them.
 */
public interface PtFormat {
    /** {@link #kind}: nothing mapped through this entry. */
    int EMPTY = 0;
    /** {@link #kind}: the entry points to a table of the next lower level. */
    int TABLE = 1;
    /** {@link #kind}: the entry maps a leaf (a page, a block, or one slot of a contiguous run). */
    int LEAF = 2;

    /** A short name with the configuration, e.g. {@code "arm64-lpae s1 4K ias48 oas48"}. */
    String name();

    /** log2 of the entry size in bytes: 3 for 64-bit entries, 2 for 32-bit (armv7s). */
    int entryLg2();

    /**
     * Input address width in bits. Addresses at or above {@code 2^vaBits} are out of range, except for
     * {@link #vaSignExtended() sign-extended} formats, whose upper half mirrors the lower one.
     */
    int vaBits();

    /** Whether input addresses are sign-extended from bit {@code vaBits - 1} (x86-64 canonical addresses). */
    default boolean vaSignExtended() {
        return false;
    }

    /** Output address width in bits: a leaf or table address at or above {@code 2^oaBits} cannot be encoded. */
    int oaBits();

    /**
     * Output address width a leaf of {@code 2^sizeLg2} bytes at {@code level} can encode: {@link #oaBits()}
     * unless some leaf sizes reach less far. The armv7s short-descriptor format with 40-bit output is such a
     * format: only supersections reach past 4 GiB, every other leaf holds a 32-bit address. An algorithm
     * choosing a leaf size for an output address checks this rather than {@link #oaBits()}.
     */
    default int leafOaBits(int level, int sizeLg2) {
        return oaBits();
    }

    /**
     * Width of the next-level table address an entry at {@code level} can hold: {@link #oaBits()} unless the
     * format's table descriptors are narrower (armv7s: 32 bits whatever the output width). Page-table pages
     * must be allocated below {@code 2^tableOaBits}.
     */
    default int tableOaBits(int level) {
        return oaBits();
    }

    /** The level of the top table when a table is created. */
    int topLevel();

    /**
     * The highest level the top table can grow to; equal to {@link #topLevel()} unless the format grows its
     * top on demand (AMD v1).
     */
    default int maxTopLevel() {
        return topLevel();
    }

    /** Whether the top table may hold leaves (AMD v1's may not: a table grows before its top would need one). */
    default boolean topCanHoldLeaf() {
        return true;
    }

    /** log2 of the bytes one entry at {@code level} covers. */
    int itemLg2(int level);

    /** log2 of the number of entries in a table at {@code level} that is not the top table. */
    int tableItemsLg2(int level);

    /**
     * log2 of the number of entries in the top table when it is at {@code level} (stage-2 concatenated tables
     * give more; a top table covering fewer input bits gives fewer).
     */
    default int topItemsLg2(int level) {
        return tableItemsLg2(level);
    }

    /**
     * The leaf sizes a table at {@code level} can hold, as a bitmap: bit {@code n} set means a leaf of
     * {@code 2^n} bytes (one entry when {@code n == itemLg2(level)}, a contiguous run when larger). Zero when
     * the level holds no leaves.
     */
    long leafSizes(int level);

    /**
     * Every leaf size of the format (the page-size bitmap): the union of {@link #leafSizes} over the levels a
     * table of this configuration can have.
     */
    default long pageSizes() {
        long sizes = 0;
        for (int l = 0; l <= maxTopLevel(); l++) {
            sizes |= leafSizes(l);
        }
        return sizes;
    }

    /** {@link #EMPTY}, {@link #TABLE} or {@link #LEAF} for {@code entry} found at {@code level}. */
    int kind(long entry, int level);

    /** The physical address of the next-level table an entry of kind TABLE points to. */
    long tableAddress(long entry, int level);

    /** An entry at {@code level} pointing to the next-level table at {@code tablePa}. */
    long table(long tablePa, int level);

    /**
     * The output address an entry of kind LEAF holds: for arm64 the address of this slot's item, for formats
     * with identical run entries the address of the run. Either way, aligning it down to
     * {@link #leafLg2(long, int)} gives the output address of the whole leaf.
     */
    long leafOa(long entry, int level);

    /** log2 of the bytes the leaf this entry belongs to maps: the item size, or the contiguous run's size. */
    int leafLg2(long entry, int level);

    /**
     * The entry for one slot of a leaf of {@code 2^sizeLg2} bytes at {@code level}, whose item starts at
     * output address {@code oa}, with attributes {@code prot} (see {@link Prot}). The caller guarantees that
     * {@code sizeLg2} is in {@link #leafSizes(int) leafSizes(level)}, that {@code oa} is aligned to the item
     * size and fits in {@link #oaBits()}, and that {@code prot} allows reading or writing.
     */
    long leaf(long oa, int level, int sizeLg2, int prot);

    /** The attributes of a leaf entry, decoded into {@link Prot} bits. */
    int prot(long entry, int level);

    /** The {@link Prot} bits this format can express. */
    int supportedProt();

    /**
     * What {@code prot} becomes once encoded: {@code prot(leaf(.., p)) == canonicalProt(p)} for every {@code p}
     * with READ or WRITE. The default keeps the supported bits; a format that cannot express write-only
     * (arm64 stage 1, x86-64) adds READ to WRITE, one that cannot be both cacheable and device memory drops
     * CACHE when MMIO is set.
     */
    default int canonicalProt(int prot) {
        return prot & supportedProt();
    }

    /** Whether leaves carry a dirty state that hardware sets on write (arm64 DBM, x86-64 D, AMD v1 D). */
    default boolean tracksDirty() {
        return false;
    }

    /** Whether a leaf entry has been written through since its dirty state was last cleared. */
    default boolean isDirty(long entry, int level) {
        return false;
    }

    /** The leaf entry with its dirty state cleared (still writable). */
    default long clearDirty(long entry, int level) {
        return entry;
    }

    /** The leaf entry as hardware leaves it after a write through it (dirty set); used by device models and tests. */
    default long markDirty(long entry, int level) {
        return entry;
    }
}
