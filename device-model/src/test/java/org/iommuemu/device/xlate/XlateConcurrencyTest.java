package org.iommuemu.device.xlate;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * Translations on several threads while another thread invalidates: once an invalidation has returned, no
 * lookup may return what it removed, and a walk that raced with it may not put it back.
 *
 * <p>The "driver" publishes generation {@code g} of a mapping: it changes the mapping (in "memory", a volatile
 * field), invalidates it, then publishes {@code g} as done. Walkers translate by reading the epoch, then the
 * mapping, and inserting with that epoch; readers check that whatever they hit is at least as new as the last
 * generation whose invalidation had returned before their lookup. Iteration counts, not time, bound the test.
 */
class XlateConcurrencyTest {
    private static final int GENERATIONS = 4_000;
    private static final long[] ADDRESSES = {0x1000, 0x2000, 0x20_0000, 0x7FFF_F000L};

    private volatile long mapping;
    private volatile long published;
    private volatile boolean done;
    private final AtomicReference<String> violation = new AtomicReference<>();

    @Test
    void noLookupSeesAnEntryAfterItsInvalidationReturned() throws InterruptedException {
        Iotlb tlb = new Iotlb(16);
        List<Thread> threads = new ArrayList<>();
        for (int w = 0; w < 2; w++) {
            threads.add(new Thread(() -> walker(tlb), "walker-" + w));
        }
        for (int r = 0; r < 2; r++) {
            threads.add(new Thread(() -> reader(tlb), "reader-" + r));
        }
        threads.forEach(Thread::start);
        try {
            for (long g = 1; g <= GENERATIONS && violation.get() == null; g++) {
                mapping = g;
                invalidate(tlb, (int) (g % 6));
                published = g;
                if ((g & 63) == 0) {
                    Thread.yield();
                }
            }
        } finally {
            done = true;
            for (Thread t : threads) {
                t.join();
            }
        }
        assertThat(violation.get()).isNull();
        CacheStats st = tlb.stats();
        assertThat(st.invalidations()).isGreaterThanOrEqualTo(GENERATIONS);
        assertThat(st.hits() + st.misses()).isPositive();
    }

    /** Each form removes every entry at {@link #ADDRESSES} for VMID 1, ASID 3. */
    private static void invalidate(Iotlb tlb, int form) {
        switch (form) {
            case 0 -> tlb.invalidateAll();
            case 1 -> tlb.invalidateVmid(1, Stage.ALL);
            case 2 -> tlb.invalidateAsid(1, 3);
            case 3 -> tlb.invalidateVa(1, 3, 0, 0x8000_0000L, Iotlb.ANY_LEVEL, Stage.ALL);
            case 4 -> tlb.invalidateVa(1, Iotlb.ANY_ASID, 0, 0x8000_0000L, Iotlb.ANY_LEVEL, Stage.S1);
            default -> {
                for (long va : ADDRESSES) {
                    tlb.invalidatePageSelective(1, 3, va, 0, Stage.ALL);
                }
            }
        }
    }

    private void walker(Iotlb tlb) {
        IotlbEntry e = new IotlbEntry();
        int i = 0;
        while (!done && violation.get() == null) {
            long va = ADDRESSES[i++ & 3];
            long epoch = tlb.epoch();
            long generation = mapping; // the "descriptor" read by the walk
            tlb.insert(e.set(1, 3, false, va, 12, 0, generation << 12, 0, Perm.RW, Stage.S1), epoch);
        }
    }

    private void reader(Iotlb tlb) {
        IotlbEntry out = new IotlbEntry();
        int i = 0;
        while (!done && violation.get() == null) {
            long va = ADDRESSES[i++ & 3];
            long invalidatedUpTo = published;
            if (tlb.lookup(1, 3, va, false, out)) {
                long generation = out.oa() >>> 12;
                if (generation < invalidatedUpTo) {
                    violation.compareAndSet(null, "va " + Long.toHexString(va) + ": hit generation " + generation
                            + " after generation " + invalidatedUpTo + " was invalidated");
                }
            }
        }
    }

    @Test
    void configCacheInvalidationsAreNotLostEither() throws InterruptedException {
        ConfigCache<Long> cache = new ConfigCache<>(8);
        List<Thread> threads = new ArrayList<>();
        threads.add(new Thread(() -> {
            while (!done && violation.get() == null) {
                long epoch = cache.epoch();
                Long generation = mapping;
                cache.insert(7, ConfigCache.NO_SUBSTREAM, 0, generation, epoch);
            }
        }, "fetcher"));
        threads.add(new Thread(() -> {
            while (!done && violation.get() == null) {
                long invalidatedUpTo = published;
                Long v = cache.lookup(7, ConfigCache.NO_SUBSTREAM);
                if (v != null && v < invalidatedUpTo) {
                    violation.compareAndSet(null, "config generation " + v + " after " + invalidatedUpTo);
                }
            }
        }, "reader"));
        threads.forEach(Thread::start);
        try {
            for (long g = 1; g <= GENERATIONS && violation.get() == null; g++) {
                mapping = g;
                if ((g & 1) == 0) {
                    cache.invalidateStream(7);
                } else {
                    cache.invalidateStreamRange(6, 1);
                }
                published = g;
            }
        } finally {
            done = true;
            for (Thread t : threads) {
                t.join();
            }
        }
        assertThat(violation.get()).isNull();
    }
}
