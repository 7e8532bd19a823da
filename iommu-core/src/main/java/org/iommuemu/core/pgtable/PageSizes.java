package org.iommuemu.core.pgtable;

/**
 * Choosing the page size of the next step of a mapping, as Linux's {@code iommu_pgsize} does: the largest
 * supported size that the alignment of both the input and the output address and the remaining length
 * allow; and how many pages of that size to map before a larger size could take over (a run of small pages
 * stops at the next larger-page boundary when both addresses could be aligned to it there).
 *
 * <p>The result is packed in one {@code long} so the map path allocates nothing: {@link #lg2(long)} and
 * {@link #count(long)} unpack it; {@link #NONE} means no size fits.
 */
public final class PageSizes {
    private PageSizes() {}

    /** No supported page size fits the alignment and length. */
    public static final long NONE = -1L;

    private static final int COUNT_BITS = 57;
    private static final long COUNT_MASK = (1L << COUNT_BITS) - 1;

    /**
     * The best page size for mapping {@code length} bytes at {@code va} to {@code oa}.
     *
     * @param sizes page-size bitmap (bit n = pages of 2^n bytes)
     * @param length bytes left to map, unsigned, greater than zero
     * @return packed (lg2, count), or {@link #NONE}
     */
    public static long best(long sizes, long va, long oa, long length) {
        // sizes no larger than the length left (an unsigned length at or above 2^63 allows every size)
        long fit = length < 0 ? sizes : sizes & (-1L >>> Long.numberOfLeadingZeros(length));
        long merged = va | oa;
        if (merged != 0) {
            // sizes that both addresses are aligned to
            fit &= (Long.lowestOneBit(merged) << 1) - 1;
        }
        if (fit == 0) {
            return NONE;
        }
        int lg2 = 63 - Long.numberOfLeadingZeros(fit);
        long span = length;
        long larger = sizes & (-1L << lg2 << 1);
        if (lg2 < 63 && larger != 0) {
            int next = Long.numberOfTrailingZeros(larger);
            long nextMask = (1L << next) - 1;
            // only worth stopping if va and oa can be aligned to the next size at the same place
            if (((va ^ oa) & nextMask) == 0) {
                long toBoundary = (1L << next) - (va & nextMask);
                if (Long.compareUnsigned(toBoundary + (1L << lg2), length) <= 0) {
                    span = toBoundary;
                }
            }
        }
        long count = span >>> lg2;
        return ((long) lg2 << COUNT_BITS) | (count & COUNT_MASK);
    }

    /** log2 of the chosen page size. */
    public static int lg2(long packed) {
        return (int) (packed >>> COUNT_BITS);
    }

    /** How many pages of that size to map in this step (at least one). */
    public static long count(long packed) {
        return packed & COUNT_MASK;
    }

    /** The smallest page size of a bitmap, as log2; -1 for an empty bitmap. */
    public static int minLg2(long sizes) {
        return sizes == 0 ? -1 : Long.numberOfTrailingZeros(sizes);
    }
}
