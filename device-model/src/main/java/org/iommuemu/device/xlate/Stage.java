package org.iommuemu.device.xlate;

/**
 * Which translation stages produced a cached translation, as bit flags so that an invalidation can name a
 * set of them ({@code Stage.S1 | Stage.NESTED}).
 *
 * <p>SMMUv3 (spec SMMUV3.md §5, STE.Config): stage 1 only, stage 2 only, or nested, where one IOTLB entry
 * combines both stages (VA to PA). VT-d: first-stage ({@link #S1}), second-stage ({@link #S2}, also every
 * legacy-mode translation) or nested (PASID entry PGTT=3). Walk-cache entries are always {@link #S1} or
 * {@link #S2}: a nested walk caches each stage's table descriptors under its own stage.
 */
public final class Stage {
    private Stage() {}

    /** Stage 1 only (SMMUv3 STE.Config 0b101; VT-d first-stage). */
    public static final int S1 = 1;
    /** Stage 2 only (SMMUv3 STE.Config 0b110; VT-d second-stage and legacy mode). */
    public static final int S2 = 2;
    /** Both stages combined in one entry (SMMUv3 STE.Config 0b111; VT-d PGTT nested). */
    public static final int NESTED = 4;
    /** Every stage: the mask for invalidations that do not care. */
    public static final int ALL = S1 | S2 | NESTED;

    /** Whether {@code stage} is exactly one of {@link #S1}, {@link #S2}, {@link #NESTED}. */
    public static boolean isSingle(int stage) {
        return stage == S1 || stage == S2 || stage == NESTED;
    }

    /** "S1", "S2", "NESTED" or, for a mask, the names joined by '|'. */
    public static String toString(int stages) {
        StringBuilder b = new StringBuilder();
        if ((stages & S1) != 0) {
            b.append("S1");
        }
        if ((stages & S2) != 0) {
            b.append(b.length() > 0 ? "|" : "").append("S2");
        }
        if ((stages & NESTED) != 0) {
            b.append(b.length() > 0 ? "|" : "").append("NESTED");
        }
        return b.length() == 0 ? "none" : b.toString();
    }
}
