package org.iommuemu.device.smmuv3.walk;

/**
 * VMSAv8-64 descriptor bits for hand-written tables, spelled out from spec PGTABLE.md §1.1–§1.3 independently
 * of the walker's own constants, so a wrong constant in main code shows up as a test failure.
 */
final class Desc {
    private Desc() {}

    static final long TYPE_TABLE = 0b11;
    static final long TYPE_PAGE = 0b11;
    static final long TYPE_BLOCK = 0b01;
    /** Type 0b01 at level 3: reserved. */
    static final long TYPE_RESERVED_L3 = 0b01;

    /** Stage 1 AP[1]: unprivileged access allowed. */
    static final long AP_EL0 = 1L << 6;
    /** Stage 1 AP[2]: read-only. */
    static final long AP_RO = 1L << 7;
    /** Stage 2 S2AP[0]: read. */
    static final long S2AP_R = 1L << 6;
    /** Stage 2 S2AP[1]: write. */
    static final long S2AP_W = 1L << 7;
    static final long AF = 1L << 10;
    static final long NG = 1L << 11;
    static final long DBM = 1L << 51;
    static final long CONT = 1L << 52;
    static final long PXN = 1L << 53;
    static final long UXN = 1L << 54;
    /** Stage 2 XN[0] (FEAT_XNX) and XN / XN[1]. */
    static final long S2_XN0 = 1L << 53;
    static final long S2_XN = 1L << 54;
    static final long PXN_TABLE = 1L << 59;
    static final long UXN_TABLE = 1L << 60;
    static final long AP_TABLE_NO_EL0 = 1L << 61;
    static final long AP_TABLE_RO = 1L << 62;

    static long table(long next) {
        return next | TYPE_TABLE;
    }

    static long page(long oa, long attrs) {
        return oa | attrs | TYPE_PAGE;
    }

    static long block(long oa, long attrs) {
        return oa | attrs | TYPE_BLOCK;
    }

    /** Stage 1 AttrIndx at bits [4:2]. */
    static long attrIndx(int idx) {
        return (long) idx << 2;
    }

    /** Stage 2 MemAttr at bits [5:2]. */
    static long memAttr(int memAttr) {
        return (long) memAttr << 2;
    }

    /** A stage-2 Normal write-back leaf's attributes: MemAttr 0xF, inner shareable, AF. */
    static final long S2_NORMAL = memAttr(0xF) | (3L << 8) | AF;
}
