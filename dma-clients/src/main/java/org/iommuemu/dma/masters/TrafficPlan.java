package org.iommuemu.dma.masters;

import java.util.SplittableRandom;

/** The deterministic sequence of requests a {@link TrafficSpec} describes; no allocation per request. */
final class TrafficPlan {
    private final TrafficSpec spec;
    private final SplittableRandom random;
    private final long slots;
    private final long strideStarts;
    private final long[] hot;
    private long index;
    private long bytes;
    private boolean read;
    private long iova;

    TrafficPlan(TrafficSpec spec) {
        this.spec = spec;
        this.random = new SplittableRandom(spec.seed());
        this.slots = spec.range() / spec.requestSize();
        this.strideStarts = (spec.range() - spec.requestSize()) / spec.stride() + 1;
        if (spec.pattern() == TrafficSpec.Pattern.HOT_SET) {
            long pages = (spec.range() - Math.max(spec.requestSize(), spec.pageSize())) / spec.pageSize() + 1;
            int n = (int) Math.min(spec.hotPages(), pages);
            hot = new long[n];
            java.util.HashSet<Long> chosen = new java.util.HashSet<>();
            for (int i = 0; i < n; i++) {
                long p;
                do {
                    p = random.nextLong(pages);
                } while (!chosen.add(p));
                hot[i] = p * spec.pageSize();
            }
        } else {
            hot = new long[0];
        }
    }

    /** Advances to the next request; false when the spec's bound is reached. */
    boolean next() {
        if ((spec.maxOps() != 0 && index >= spec.maxOps()) || (spec.maxBytes() != 0 && bytes >= spec.maxBytes())) {
            return false;
        }
        long offset = switch (spec.pattern()) {
            case SEQUENTIAL -> (index % slots) * spec.requestSize();
            case RANDOM -> random.nextLong(slots) * spec.requestSize();
            case STRIDED -> (index % strideStarts) * spec.stride();
            case HOT_SET -> hotOffset();
        };
        read = random.nextDouble() < spec.readFraction();
        iova = spec.base() + offset;
        index++;
        bytes += spec.requestSize();
        return true;
    }

    private long hotOffset() {
        if (random.nextDouble() >= spec.hotProbability()) {
            return random.nextLong(slots) * spec.requestSize();
        }
        long page = hot[random.nextInt(hot.length)];
        long perPage = spec.pageSize() / spec.requestSize();
        return perPage > 1 ? page + random.nextLong(perPage) * spec.requestSize() : page;
    }

    boolean read() {
        return read;
    }

    long iova() {
        return iova;
    }

    int size() {
        return spec.requestSize();
    }

    /** Hot page offsets from the range's base (HOT_SET), for tests. */
    long[] hotPages() {
        return hot.clone();
    }
}
