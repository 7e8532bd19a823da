package org.iommuemu.device.smmuv3.walk;

/**
 * What a walk of one translation table needs, computed once when a context is built so a walk only reads
 * fields (PGTABLE.md §1.5, §1.6). Meaningful only for a table its context validated.
 */
final class WalkGeometry {
    /** Whether the table may be walked (stage 1: EPDx = 0; stage 2: always). */
    final boolean enabled;
    /** Input address bits: {@code 64 - TxSZ}. */
    final int ia;
    final int granuleLg2;
    /** Index bits per full table level: {@code granuleLg2 - 3}. */
    final int stride;
    /** Arm level of the first lookup. */
    final int startLevel;
    /** Index bits the first lookup resolves: up to {@code stride}, or {@code stride + 4} for concatenated tables. */
    final int startBits;
    /** Table base (TTB0/TTB1/S2TTB). */
    final long ttb;
    /** Effective output address size in bits (52 only with the 64K granule). */
    final int oas;
    /** Next-level table address bits [47:G] of a table descriptor. */
    final long tableMask;
    /** {@link Vmsa#OA_HI_FIELD} when descriptors carry OA[51:48] (64K, 52-bit), else 0. */
    final long oaHi;
    /** Bit {@code L} set: a block descriptor is legal at level L. */
    final int blockLevels;
    /** Stage 1 HADx: table descriptors' hierarchical attributes are ignored. */
    final boolean hierarchicalDisabled;

    WalkGeometry(boolean enabled, int ia, int granuleLg2, int startLevel, long ttb, int oasBits, boolean lpa52Blocks,
            boolean hierarchicalDisabled) {
        this.enabled = enabled;
        this.ia = ia;
        this.granuleLg2 = granuleLg2;
        this.stride = granuleLg2 - 3;
        this.startLevel = startLevel;
        this.startBits = ia - Vmsa.levelShift(granuleLg2, startLevel);
        this.ttb = ttb;
        this.oas = Vmsa.effectiveOas(oasBits, granuleLg2);
        this.tableMask = Vmsa.OA_47_0 & -(1L << granuleLg2);
        this.oaHi = granuleLg2 == 16 && this.oas == 52 ? Vmsa.OA_HI_FIELD : 0;
        int blocks = 0;
        for (int level = 0; level <= 3; level++) {
            if (Vmsa.blockAllowed(granuleLg2, level, lpa52Blocks)) {
                blocks |= 1 << level;
            }
        }
        this.blockLevels = blocks;
        this.hierarchicalDisabled = hierarchicalDisabled;
    }

    /** log2 of the bytes of the first-level table (concatenated tables together), at least 64 bytes. */
    int topTableAlignLg2() {
        return Math.max(6, startBits + 3);
    }

    /** A geometry that is never walked (a disabled or invalid table half). */
    static final WalkGeometry NONE = new WalkGeometry(false, 48, 12, 0, 0, 48, false, false);
}
