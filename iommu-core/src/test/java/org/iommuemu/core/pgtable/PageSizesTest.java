package org.iommuemu.core.pgtable;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class PageSizesTest {
    private static final long SIZES_4K = (1L << 12) | (1L << 21) | (1L << 30);

    /** An independent, slow statement of the rule: try every size, then walk page by page. */
    static long reference(long sizes, long va, long oa, long length) {
        int chosen = -1;
        for (int s = 63; s >= 0; s--) {
            long size = 1L << s;
            if ((sizes & size) != 0 && Long.compareUnsigned(size, length) <= 0
                    && va % size == 0 && oa % size == 0) {
                chosen = s;
                break;
            }
        }
        if (chosen < 0) {
            return PageSizes.NONE;
        }
        long page = 1L << chosen;
        int next = -1;
        for (int s = chosen + 1; s < 64; s++) {
            if ((sizes & (1L << s)) != 0) {
                next = s;
                break;
            }
        }
        long count = 0;
        long pos = 0;
        while (Long.compareUnsigned(pos + page, length) <= 0) {
            if (count > 0 && next >= 0) {
                long at = va + pos;
                long nextSize = 1L << next;
                boolean boundary = Long.remainderUnsigned(at, nextSize) == 0;
                boolean bothAlign = Long.remainderUnsigned(va ^ oa, nextSize) == 0;
                if (boundary && bothAlign) {
                    break; // stop here: a larger page can start at this address
                }
            }
            count++;
            pos += page;
        }
        return ((long) chosen << 57) | count;
    }

    @Test
    void chosesTheLargestAlignedSizeAndStopsAtTheNextBoundary() {
        // 2M-aligned, 4M long: two 2M pages
        long r = PageSizes.best(SIZES_4K, 0x4000_0000L, 0x8000_0000L, 4 << 20);
        assertThat(PageSizes.lg2(r)).isEqualTo(21);
        assertThat(PageSizes.count(r)).isEqualTo(2);
        // 4K pages up to the next 2M boundary, because the rest can use 2M
        r = PageSizes.best(SIZES_4K, 0x1F_F000L, 0x3F_F000L, 4 << 20);
        assertThat(PageSizes.lg2(r)).isEqualTo(12);
        assertThat(PageSizes.count(r)).isEqualTo(1);
        // iova and oa can never align to 2M together: 4K all the way
        r = PageSizes.best(SIZES_4K, 0x1F_F000L, 0x3F_E000L, 4 << 20);
        assertThat(PageSizes.lg2(r)).isEqualTo(12);
        assertThat(PageSizes.count(r)).isEqualTo(1024);
        assertThat(PageSizes.best(SIZES_4K, 0x800, 0, 4096)).isEqualTo(PageSizes.NONE);
        assertThat(PageSizes.best(SIZES_4K, 0, 0, 2048)).isEqualTo(PageSizes.NONE);
        assertThat(PageSizes.lg2(PageSizes.best(SIZES_4K, 0, 0, -1L))).as("a length of 2^64 - 1").isEqualTo(30);
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3, 4, 5})
    void agreesWithTheBruteForceReference(long seed) {
        Random rnd = new Random(seed);
        long[] bitmaps = {SIZES_4K, SIZES_4K | (1L << 16) | (1L << 25), (1L << 14) | (1L << 25),
            (1L << 16) | (1L << 29) | (1L << 42), 0x7FFFF000L /* every size 4K..1G */, (1L << 12) | (1L << 20) | (1L << 24)};
        for (int i = 0; i < 8_000; i++) {
            long sizes = bitmaps[rnd.nextInt(bitmaps.length)];
            int align = 12 + rnd.nextInt(20);
            long va = (rnd.nextLong() & 0x0000_FFFF_FFFF_FFFFL) & -(1L << align);
            long oa = (rnd.nextBoolean() ? va + ((long) rnd.nextInt(64) << 21) : rnd.nextLong() & 0x000F_FFFF_FFFF_F000L)
                    & -(1L << (12 + rnd.nextInt(20)));
            long length = ((long) (1 + rnd.nextInt(2048)) << (12 + rnd.nextInt(10)));
            long expected = reference(sizes, va, oa, length);
            long actual = PageSizes.best(sizes, va, oa, length);
            assertThat(actual).as("seed %d case %d: sizes %x va %x oa %x length %x", seed, i, sizes, va, oa, length)
                    .isEqualTo(expected);
        }
    }
}
