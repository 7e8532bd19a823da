package org.iommuemu.device.smmuv3.walk;

/**
 * The VMSAv8-64 long-descriptor facts the walker decodes (spec PGTABLE.md §1.1–§1.6), as the hardware sees
 * them. Levels are Arm's: 0 is the top of a full 4-level walk, 3 the page level.
 */
final class Vmsa {
    private Vmsa() {}

    /** Descriptor bits [1:0]: bit 0 valid; 0b11 table (levels 0–2) or page (level 3); 0b01 block (§1.1). */
    static final int TYPE_TABLE_OR_PAGE = 0b11;

    /** Stage 1 AP[1] (EL0 access) / stage 2 S2AP[0] (read). */
    static final long AP1 = 1L << 6;
    /** Stage 1 AP[2] (read-only) / stage 2 S2AP[1] (write). */
    static final long AP2 = 1L << 7;
    static final int SH_SHIFT = 8;
    static final long AF = 1L << 10;
    static final long NG = 1L << 11;
    static final long DBM = 1L << 51;
    static final long CONTIGUOUS = 1L << 52;
    /** Stage 1 PXN / stage 2 XN[0] (only with FEAT_XNX). */
    static final long PXN = 1L << 53;
    /** Stage 1 UXN (XN) / stage 2 XN[1] (XN without FEAT_XNX). */
    static final long UXN = 1L << 54;

    /** Table descriptor bits (§1.2): PXNTable 59, UXNTable 60, APTable[0] 61 (no EL0), APTable[1] 62 (read-only). */
    static final long PXN_TABLE = 1L << 59;
    static final long UXN_TABLE = 1L << 60;
    static final long AP_TABLE_NO_EL0 = 1L << 61;
    static final long AP_TABLE_RO = 1L << 62;
    static final long HIERARCHICAL_BITS = PXN_TABLE | UXN_TABLE | AP_TABLE_NO_EL0 | AP_TABLE_RO;

    /** Output address bits [47:0] of a descriptor (§1.4); the granule or level shift clears the low part. */
    static final long OA_47_0 = (1L << 48) - 1;
    /** Descriptor bits [15:12]: OA[51:48] with the 64K granule and 52-bit output (FEAT_LPA, §1.4). */
    static final long OA_HI_FIELD = 0xFL << 12;
    /** Shift that moves {@link #OA_HI_FIELD} to OA[51:48]. */
    static final int OA_HI_SHIFT = 36;

    /** Stage 1 MAIR index AttrIndx[2:0] at bits [4:2]; stage 2 MemAttr[3:0] at bits [5:2] (§1.3). */
    static final int ATTR_SHIFT = 2;

    /** log2 of the input bytes one entry at {@code level} covers (§1.5): {@code G + (3 - level) * (G - 3)}. */
    static int levelShift(int granuleLg2, int level) {
        return granuleLg2 + (3 - level) * (granuleLg2 - 3);
    }

    /** Whether {@code granuleLg2} is a VMSAv8-64 granule: 12 (4K), 14 (16K) or 16 (64K). */
    static boolean granuleValid(int granuleLg2) {
        return granuleLg2 == 12 || granuleLg2 == 14 || granuleLg2 == 16;
    }

    /** Whether {@code bits} is an output size the IPS / PS / OAS encodings can name: 32, 36, 40, 42, 44, 48, 52. */
    static boolean oasValid(int bits) {
        return bits == 32 || bits == 36 || bits == 40 || bits == 42 || bits == 44 || bits == 48 || bits == 52;
    }

    /**
     * The output size a walk enforces: 52 bits only with the 64K granule (FEAT_LPA); the 4K and 16K granules
     * without LPA2 (not modelled) cap at 48 (§1.4, as QEMU does).
     */
    static int effectiveOas(int oasBits, int granuleLg2) {
        return oasBits == 52 && granuleLg2 != 16 ? 48 : oasBits;
    }

    /**
     * Whether a block descriptor (type 0b01) is legal at {@code level} (§1.1, without LPA2): 4K at levels 1 and 2
     * (1G, 2M); 16K at level 2 (32M); 64K at level 2 (512M) and at level 1 (4T) only with 52-bit output.
     */
    static boolean blockAllowed(int granuleLg2, int level, boolean lpa52) {
        return switch (granuleLg2) {
            case 12 -> level == 1 || level == 2;
            case 14 -> level == 2;
            default -> level == 2 || (level == 1 && lpa52);
        };
    }

    /** "4K" / "16K" / "64K" for messages. */
    static String granuleName(int granuleLg2) {
        return granuleValid(granuleLg2) ? (1 << (granuleLg2 - 10)) + "K" : "granule 2^" + granuleLg2;
    }
}
