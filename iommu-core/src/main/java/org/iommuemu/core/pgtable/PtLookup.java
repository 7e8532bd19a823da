package org.iommuemu.core.pgtable;

import org.iommuemu.core.bits.Bits;

/** The leaf that translates an address, as {@link PageTable#lookup} finds it. A reusable holder. */
public final class PtLookup {
    private long iova;
    private long oa;
    private int lg2;
    private int level;
    private int prot;
    private long entry;
    private long slot;

    void set(long iova, long oa, int lg2, int level, int prot, long entry, long slot) {
        this.iova = iova;
        this.oa = oa;
        this.lg2 = lg2;
        this.level = level;
        this.prot = prot;
        this.entry = entry;
        this.slot = slot;
    }

    /** First input address of the leaf. */
    public long iova() {
        return iova;
    }

    /** First output address of the leaf. */
    public long oa() {
        return oa;
    }

    /** log2 of the leaf's size (a contiguous run counts whole). */
    public int sizeLg2() {
        return lg2;
    }

    public long size() {
        return 1L << lg2;
    }

    /** The level of the table holding the leaf. */
    public int level() {
        return level;
    }

    /** Decoded {@link Prot} bits. */
    public int prot() {
        return prot;
    }

    /** The raw entry. */
    public long entry() {
        return entry;
    }

    /** Physical address of the entry that translated the address. */
    public long slot() {
        return slot;
    }

    @Override
    public String toString() {
        return Bits.hex(iova) + " -> " + Bits.hex(oa) + " size 2^" + lg2 + " level " + level + " "
                + Prot.toString(prot);
    }
}
