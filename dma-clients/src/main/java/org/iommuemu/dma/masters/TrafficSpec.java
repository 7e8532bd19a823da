package org.iommuemu.dma.masters;

/**
 * What a {@link TrafficGenerator} issues. Build with {@link #builder()}; every value is checked when built.
 *
 * <p>Requests are {@code requestSize} bytes inside {@code [base, base + range)}; the address of request
 * {@code i} follows {@code pattern}:
 * <ul>
 * <li>{@link Pattern#SEQUENTIAL}: {@code base + (i mod n) * requestSize}, {@code n = range / requestSize};</li>
 * <li>{@link Pattern#RANDOM}: {@code base + k * requestSize}, {@code k} uniform in {@code [0, n)};</li>
 * <li>{@link Pattern#STRIDED}: {@code base + (i mod m) * stride}, {@code m} the number of starts whose request
 *     still ends inside the range, {@code (range - requestSize) / stride + 1};</li>
 * <li>{@link Pattern#HOT_SET}: {@code hotPages} distinct pages of {@code pageSize} bytes are drawn from the
 *     range once; with probability {@code hotProbability} a request goes to a uniformly chosen hot page (at a
 *     uniform {@code requestSize}-aligned offset inside it when the request is smaller than a page, else at its
 *     start), otherwise it is placed as for RANDOM.</li>
 * </ul>
 * Each request is a read with probability {@code readFraction}, else a write. All choices come from one
 * {@link java.util.SplittableRandom} seeded with {@code seed}, so a spec always yields the same requests. The
 * run stops after {@code maxOps} requests or once {@code maxBytes} have been requested (the last request is not
 * shortened), whichever comes first; 0 means no bound, and at least one bound must be set.
 *
 * @param pattern the address pattern
 * @param base iova of the range's first byte
 * @param range the range's length in bytes, at least {@code requestSize}
 * @param requestSize bytes per request, 1 .. 64 MiB
 * @param stride STRIDED: distance between consecutive requests, at least 1
 * @param pageSize HOT_SET: page size, a power of two from 512 to 1 GiB, at most {@code range}
 * @param hotPages HOT_SET: hot pages, 1 .. the pages in the range (and at most 65536)
 * @param hotProbability HOT_SET: chance a request hits the hot set, 0 .. 1
 * @param readFraction chance a request is a read, 0 .. 1
 * @param seed the random seed
 * @param window requests kept in flight on the Transfer stream, 1 .. 65536
 * @param maxOps stop after this many requests (0: unbounded)
 * @param maxBytes stop once this many bytes were requested (0: unbounded)
 */
public record TrafficSpec(Pattern pattern, long base, long range, int requestSize, long stride, long pageSize,
        int hotPages, double hotProbability, double readFraction, long seed, int window, long maxOps,
        long maxBytes) {
    /** How request addresses are chosen. */
    public enum Pattern {
        SEQUENTIAL, RANDOM, STRIDED, HOT_SET
    }

    public TrafficSpec {
        Args.notNull("pattern", pattern);
        Args.range("requestSize", requestSize, 1, 64 << 20);
        Args.range("range", range, requestSize, Long.MAX_VALUE);
        if (Long.compareUnsigned(base + range - 1, base) < 0) {
            throw new IllegalArgumentException("range " + range + " from base 0x" + Long.toHexString(base)
                    + " wraps past the top of the address space");
        }
        Args.range("stride", stride, 1, Long.MAX_VALUE);
        Args.range("pageSize", pageSize, 512, 1L << 30);
        if (Long.bitCount(pageSize) != 1) {
            throw new IllegalArgumentException("pageSize " + pageSize + " is not a power of two");
        }
        if (pattern == Pattern.HOT_SET) {
            Args.range("pageSize", pageSize, 512, range);
            Args.range("hotPages", hotPages, 1, (int) Math.min(65536, range / pageSize));
        }
        probability("hotProbability", hotProbability);
        probability("readFraction", readFraction);
        Args.range("window", window, 1, 65536);
        Args.range("maxOps", maxOps, 0, Long.MAX_VALUE);
        Args.range("maxBytes", maxBytes, 0, Long.MAX_VALUE);
        if (maxOps == 0 && maxBytes == 0) {
            throw new IllegalArgumentException("maxOps and maxBytes are both 0: set at least one bound");
        }
    }

    private static void probability(String name, double p) {
        if (!(p >= 0 && p <= 1)) {
            throw new IllegalArgumentException(name + " " + p + " is outside [0, 1]");
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Defaults: sequential 4 KiB reads over 1 MiB from iova 0, stride 4 KiB, 4 KiB pages, 8 hot pages hit 90%
     * of the time, seed 1, window 32, 1000 requests. */
    public static final class Builder {
        private Pattern pattern = Pattern.SEQUENTIAL;
        private long base;
        private long range = 1 << 20;
        private int requestSize = 4096;
        private long stride = 4096;
        private long pageSize = 4096;
        private int hotPages = 8;
        private double hotProbability = 0.9;
        private double readFraction = 1.0;
        private long seed = 1;
        private int window = 32;
        private long maxOps = 1000;
        private long maxBytes;

        public Builder pattern(Pattern value) {
            pattern = value;
            return this;
        }

        /** The iova range {@code [base, base + length)}. */
        public Builder range(long baseIova, long length) {
            base = baseIova;
            range = length;
            return this;
        }

        public Builder requestSize(int value) {
            requestSize = value;
            return this;
        }

        public Builder stride(long value) {
            stride = value;
            return this;
        }

        public Builder pageSize(long value) {
            pageSize = value;
            return this;
        }

        /** HOT_SET: {@code pages} hot pages, hit with probability {@code probability}. */
        public Builder hotSet(int pages, double probability) {
            hotPages = pages;
            hotProbability = probability;
            return this;
        }

        public Builder readFraction(double value) {
            readFraction = value;
            return this;
        }

        public Builder seed(long value) {
            seed = value;
            return this;
        }

        public Builder window(int value) {
            window = value;
            return this;
        }

        /** Stop after {@code ops} requests (no byte bound). */
        public Builder ops(long ops) {
            maxOps = ops;
            maxBytes = 0;
            return this;
        }

        /** Stop once {@code bytes} have been requested (no request bound). */
        public Builder bytes(long bytes) {
            maxBytes = bytes;
            maxOps = 0;
            return this;
        }

        public TrafficSpec build() {
            return new TrafficSpec(pattern, base, range, requestSize, stride, pageSize, hotPages, hotProbability,
                    readFraction, seed, window, maxOps, maxBytes);
        }
    }
}
