package org.iommuemu.core.api;

import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;

/**
 * A made-up page-table format for the API tests (real formats come from the format packages). 64-bit entries:
 * bit 0 valid, bit 1 leaf, bits 2-3 read/write, bits 4-9 log2 of the leaf size, output address in bits
 * [51:12]. Every slot of a contiguous run holds its own output address.
 */
final class TestFormat implements PtFormat {
    private final String name;
    private final int granuleLg2;
    private final int bitsPerLevel;
    private final int levels;
    private final long[] leafSizes;

    private TestFormat(String name, int granuleLg2, int bitsPerLevel, int levels, long[] leafSizes) {
        this.name = name;
        this.granuleLg2 = granuleLg2;
        this.bitsPerLevel = bitsPerLevel;
        this.levels = levels;
        this.leafSizes = leafSizes;
    }

    /** 4K granule, 4 levels (48-bit iova): 4K and 64K (16-entry runs) at level 0, 2M at level 1, 1G at level 2. */
    static TestFormat fourK() {
        return new TestFormat("test 4K", 12, 9, 4,
                new long[] {(1L << 12) | (1L << 16), 1L << 21, 1L << 30, 0});
    }

    /** 64K granule, 2 levels (42-bit iova): 64K at level 0, 512M at level 1; tables of 8192 entries (64 KiB). */
    static TestFormat sixtyFourK() {
        return new TestFormat("test 64K", 16, 13, 2, new long[] {1L << 16, 1L << 29});
    }

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
        return granuleLg2 + bitsPerLevel * levels;
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
    public int itemLg2(int level) {
        return granuleLg2 + bitsPerLevel * level;
    }

    @Override
    public int tableItemsLg2(int level) {
        return bitsPerLevel;
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
        return oa | 3 | ((long) (prot & 3) << 2) | ((long) sizeLg2 << 4);
    }

    @Override
    public int prot(long entry, int level) {
        return (int) (entry >>> 2) & 3;
    }

    @Override
    public int supportedProt() {
        return Prot.READ | Prot.WRITE;
    }
}
