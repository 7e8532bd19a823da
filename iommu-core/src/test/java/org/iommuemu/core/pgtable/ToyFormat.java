package org.iommuemu.core.pgtable;

/**
 * A small made-up format for testing the algorithms apart from any real encoding: 64-bit entries, 4K
 * items at level 0, 512 entries per table; bit 0 = present, bit 1 = leaf, bits 2-3 = R/W, bits [9:4] = log2
 * of the leaf size, bit 10 = dirty, output address in [51:12]. Contiguous runs either hold each slot's own
 * address (arm64 style) or the run base (replicated, AMD/armv7s style).
 */
final class ToyFormat implements PtFormat {
    private final int levels;
    private final long[] leafSizes;
    private final boolean replicated;
    private final int maxTop;
    private final boolean topLeaves;

    ToyFormat(int levels, long[] leafSizes, boolean replicated, int maxTopLevel, boolean topLeaves) {
        this.levels = levels;
        this.leafSizes = leafSizes;
        this.replicated = replicated;
        this.maxTop = maxTopLevel;
        this.topLeaves = topLeaves;
    }

    /** 4 levels (48 bits), 4K/2M/1G leaves, plus 64K runs at level 0 (16 entries of each slot's own address). */
    static ToyFormat standard() {
        return new ToyFormat(4, new long[] {(1L << 12) | (1L << 16), 1L << 21, 1L << 30, 0, 0, 0}, false, 3, true);
    }

    /** 2 levels growing to 4, leaves of every power of two from 4K to 1M at level 0 (replicated runs), no top leaves. */
    static ToyFormat growable() {
        long level0 = 0;
        for (int s = 12; s <= 20; s++) {
            level0 |= 1L << s;
        }
        long level1 = 0;
        for (int s = 21; s <= 29; s++) {
            level1 |= 1L << s;
        }
        return new ToyFormat(2, new long[] {level0, level1, 0, 0, 0, 0}, true, 3, false);
    }

    @Override
    public String name() {
        return "toy " + levels + "-level" + (maxTop + 1 > levels ? " growable" : "");
    }

    @Override
    public int entryLg2() {
        return 3;
    }

    @Override
    public int vaBits() {
        return maxTop + 1 == levels ? 12 + 9 * levels : 64;
    }

    @Override
    public int oaBits() {
        return 52;
    }

    @Override
    public int topLevel() {
        return levels - 1;
    }

    @Override
    public int maxTopLevel() {
        return maxTop;
    }

    @Override
    public boolean topCanHoldLeaf() {
        return topLeaves;
    }

    @Override
    public int itemLg2(int level) {
        return 12 + 9 * level;
    }

    @Override
    public int tableItemsLg2(int level) {
        return 9;
    }

    @Override
    public long leafSizes(int level) {
        return leafSizes[level];
    }

    @Override
    public int kind(long entry, int level) {
        if ((entry & 1) == 0) {
            return EMPTY;
        }
        return (entry & 2) != 0 ? LEAF : TABLE;
    }

    @Override
    public long tableAddress(long entry, int level) {
        return entry & 0x000F_FFFF_FFFF_F000L;
    }

    @Override
    public long table(long tablePa, int level) {
        return tablePa | 1;
    }

    @Override
    public long leafOa(long entry, int level) {
        return entry & 0x000F_FFFF_FFFF_F000L;
    }

    @Override
    public int leafLg2(long entry, int level) {
        return (int) ((entry >>> 4) & 0x3F);
    }

    @Override
    public long leaf(long oa, int level, int sizeLg2, int prot) {
        long a = replicated ? oa & -(1L << sizeLg2) : oa;
        return a | 3 | ((long) (prot & 3) << 2) | ((long) sizeLg2 << 4);
    }

    @Override
    public int prot(long entry, int level) {
        return (int) (entry >>> 2) & 3;
    }

    @Override
    public int supportedProt() {
        return Prot.READ | Prot.WRITE;
    }

    @Override
    public boolean tracksDirty() {
        return true;
    }

    @Override
    public boolean isDirty(long entry, int level) {
        return (entry & (1L << 10)) != 0;
    }

    @Override
    public long clearDirty(long entry, int level) {
        return entry & ~(1L << 10);
    }

    @Override
    public long markDirty(long entry, int level) {
        return entry | (1L << 10);
    }
}
