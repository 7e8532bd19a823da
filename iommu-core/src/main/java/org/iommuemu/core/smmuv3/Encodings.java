package org.iommuemu.core.smmuv3;

/**
 * Value encodings shared by several SMMUv3 structures ({@code spec/SMMUV3.md} §1, §2, §5, §6): memory
 * attributes of table walks and fetches, shareability, output-address sizes and translation granules.
 */
public final class Encodings {
    private Encodings() {}

    /** Cacheability (CD IR0/OR0/IR1/OR1, STE S1CIR/S1COR, S2IR0/S2OR0; §5, §6): non-cacheable. */
    public static final int CACHE_NC = 0;
    /** Cacheability: write-back, read- and write-allocate (STE S1CIR/S1COR call it WBRA). */
    public static final int CACHE_WBWA = 1;
    /** Cacheability: write-through. */
    public static final int CACHE_WT = 2;
    /** Cacheability: write-back, no write-allocate. */
    public static final int CACHE_WB = 3;

    /** Shareability (SH0/SH1, S1CSH, S2SH0; §1): non-shareable. */
    public static final int SH_NSH = 0;
    /** Shareability: outer shareable. */
    public static final int SH_OSH = 2;
    /** Shareability: inner shareable. */
    public static final int SH_ISH = 3;

    private static final int[] OAS_BITS = {32, 36, 40, 42, 44, 48, 52};

    /**
     * Bits of an output-address-size encoding (IDR5.OAS, CD.IPS, STE.S2PS; §2): 0→32, 1→36, 2→40, 3→42,
     * 4→44, 5→48, 6→52; {@code -1} for the reserved encodings.
     */
    public static int oasBits(int encoding) {
        return encoding >= 0 && encoding < OAS_BITS.length ? OAS_BITS[encoding] : -1;
    }

    /** The encoding of an output-address size in bits (inverse of {@link #oasBits}); {@code -1} if none has it. */
    public static int oasEncoding(int bits) {
        for (int i = 0; i < OAS_BITS.length; i++) {
            if (OAS_BITS[i] == bits) {
                return i;
            }
        }
        return -1;
    }

    /**
     * log2 of the granule of a TG0-style encoding, the one of CD.TG0 and STE.S2TG (§5, §6): 0→12 (4 KB),
     * 1→16 (64 KB), 2→14 (16 KB); {@code -1} for the reserved 3.
     */
    public static int granuleLg2ForTg0(int tg0) {
        switch (tg0) {
            case 0:
                return 12;
            case 1:
                return 16;
            case 2:
                return 14;
            default:
                return -1;
        }
    }

    /** The TG0-style encoding of a granule (inverse of {@link #granuleLg2ForTg0}); {@code -1} for other sizes. */
    public static int tg0ForGranuleLg2(int granuleLg2) {
        switch (granuleLg2) {
            case 12:
                return 0;
            case 16:
                return 1;
            case 14:
                return 2;
            default:
                return -1;
        }
    }

    /**
     * log2 of the granule of a CD.TG1 encoding (§6; TG1 is encoded differently from TG0): 1→14 (16 KB),
     * 2→12 (4 KB), 3→16 (64 KB); {@code -1} for the reserved 0.
     */
    public static int granuleLg2ForTg1(int tg1) {
        switch (tg1) {
            case 1:
                return 14;
            case 2:
                return 12;
            case 3:
                return 16;
            default:
                return -1;
        }
    }

    /** The CD.TG1 encoding of a granule (inverse of {@link #granuleLg2ForTg1}); {@code -1} for other sizes. */
    public static int tg1ForGranuleLg2(int granuleLg2) {
        switch (granuleLg2) {
            case 14:
                return 1;
            case 12:
                return 2;
            case 16:
                return 3;
            default:
                return -1;
        }
    }

    /**
     * log2 of the granule of a range-invalidation TG (§7, commands' dw1[11:10]): 1→12, 2→14, 3→16;
     * {@code -1} for 0, which is not a granule but "not a range invalidation".
     */
    public static int granuleLg2ForRangeTg(int tg) {
        return tg >= 1 && tg <= 3 ? 10 + 2 * tg : -1;
    }

    /** The range-invalidation TG of a granule (inverse of {@link #granuleLg2ForRangeTg}); {@code -1} for others. */
    public static int rangeTgForGranuleLg2(int granuleLg2) {
        return granuleLg2 == 12 || granuleLg2 == 14 || granuleLg2 == 16 ? (granuleLg2 - 10) / 2 : -1;
    }
}
