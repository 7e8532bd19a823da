package org.iommuemu.device.xlate;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Simulated time of one IOMMU instance, in nanoseconds since creation: the sum of the costs charged to it
 * ({@link CostModel}, {@link XlateStats}). Work done in parallel on several bus threads adds up, so this is
 * the IOMMU's busy time rather than a wall clock.
 *
 * <p>Thread-safe and allocation-free: one {@link AtomicLong} ({@code LOCK XADD} on x86, no retry loop).
 * Atomic rather than a {@code LongAdder}: {@link #now()} is exact and every {@link #advance} returns the time
 * its charge ended, and a {@code LongAdder} allocates cells the first time it meets contention.
 */
public final class SimClock {
    private final AtomicLong nanos = new AtomicLong();

    /**
     * Adds {@code ns} to simulated time.
     *
     * @return the time after this charge
     * @throws IllegalArgumentException if {@code ns} is negative
     */
    public long advance(long ns) {
        if (ns < 0) {
            throw new IllegalArgumentException("time does not run backwards: " + ns);
        }
        return nanos.addAndGet(ns);
    }

    /** Simulated nanoseconds so far. */
    public long now() {
        return nanos.get();
    }

    @Override
    public String toString() {
        return "SimClock[" + now() + " ns]";
    }
}
