package org.iommuemu.device.xlate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.management.ManagementFactory;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The hot paths allocate nothing (DESIGN.md): lookups, inserts, invalidations and charging, measured with the
 * thread allocated-bytes counter of HotSpot's ThreadMXBean after a warm-up run of the same work.
 */
class XlateAllocationTest {
    private static final int ROUNDS = 2_000;

    private com.sun.management.ThreadMXBean bean;

    @BeforeEach
    void meter() {
        java.lang.management.ThreadMXBean plain = ManagementFactory.getThreadMXBean();
        assumeTrue(plain instanceof com.sun.management.ThreadMXBean, "no com.sun.management.ThreadMXBean");
        bean = (com.sun.management.ThreadMXBean) plain;
        assumeTrue(bean.isThreadAllocatedMemorySupported(), "thread allocated-bytes counter unsupported");
        if (!bean.isThreadAllocatedMemoryEnabled()) {
            bean.setThreadAllocatedMemoryEnabled(true);
        }
    }

    /**
     * The fewest bytes one run of {@code work} allocated, over five runs after three warm-up runs (class loading,
     * lazy initialisation, JIT). The minimum, because the JVM may charge the thread for a few bytes of its own
     * during a run (a compilation switching over mid-loop); code that allocates does so in every run.
     */
    @SuppressWarnings("deprecation") // Thread.getId: threadId() arrives in Java 19
    private long allocatedBy(Runnable work) {
        long thread = Thread.currentThread().getId();
        for (int i = 0; i < 3; i++) {
            work.run();
        }
        long fewest = Long.MAX_VALUE;
        for (int i = 0; i < 5 && fewest > 0; i++) {
            long before = bean.getThreadAllocatedBytes(thread);
            work.run();
            fewest = Math.min(fewest, bean.getThreadAllocatedBytes(thread) - before);
        }
        return fewest;
    }

    @Test
    void iotlbLookupInsertAndInvalidateAllocateNothing() {
        Iotlb tlb = new Iotlb(256);
        IotlbEntry e = new IotlbEntry();
        IotlbEntry out = new IotlbEntry();
        long bytes = allocatedBy(() -> {
            for (int i = 0; i < ROUNDS; i++) {
                long va = (long) (i % 512) << 12;
                tlb.insert(e.set(1, i & 3, (i & 7) == 0, va, 12, 0, va + 0x1_0000_0000L, 0, Perm.RW, Stage.S1),
                        tlb.epoch());
                tlb.insert(e.set(1, -1, false, (long) (i % 8) << 21, 21, 1, 0, 0, Perm.RW, Stage.S2));
                tlb.lookup(1, i & 3, va | 0x123, (i & 1) == 0, out);
                tlb.lookup(2, 0, va, false, out);
                if (i % 16 == 0) {
                    tlb.invalidateVa(1, i & 3, va, 0x3000, Iotlb.ANY_LEVEL, Stage.ALL);
                    tlb.invalidateVa(1, Iotlb.ANY_ASID, va, 0x1000, 0, Stage.S1);
                    tlb.invalidatePageSelective(1, -1, va, 9, Stage.ALL);
                    tlb.invalidateIpa(1, va, 1L << 30, Iotlb.ANY_LEVEL, true);
                    tlb.invalidateAsid(1, 2);
                }
                if (i % 500 == 0) {
                    tlb.invalidateVmid(1, Stage.S1);
                    tlb.invalidateAll();
                }
            }
        });
        assertThat(bytes).isZero();
    }

    @Test
    void walkCacheLookupInsertAndInvalidateAllocateNothing() {
        WalkCache walk = new WalkCache(64);
        WalkEntry out = new WalkEntry();
        long spans = (1L << 21) | (1L << 30) | (1L << 39);
        long bytes = allocatedBy(() -> {
            for (int i = 0; i < ROUNDS; i++) {
                long va = (long) (i % 128) << 21;
                walk.insert(1, i & 3, Stage.S1, 1, 21, va, 0x1003, walk.epoch());
                walk.insert(1, i & 3, Stage.S1, 2, 30, va, 0x2003);
                walk.lookupDeepest(1, i & 3, Stage.S1, va, spans, out);
                walk.lookup(1, i & 3, Stage.S1, 30, va, out);
                if (i % 16 == 0) {
                    walk.invalidateRange(1, i & 3, Stage.S1, va, 0x1000);
                    walk.invalidateRange(1, WalkCache.ANY_ASID, Stage.S1 | Stage.S2, va, 1L << 32);
                    walk.invalidateAsid(1, 1);
                    walk.invalidateVmid(1, Stage.S2);
                }
                if (i % 500 == 0) {
                    walk.invalidateAll();
                }
            }
        });
        assertThat(bytes).isZero();
    }

    @Test
    void configCacheLookupInsertAndInvalidateAllocateNothing() {
        ConfigCache<Object> cache = new ConfigCache<>(64);
        Object[] values = new Object[16];
        for (int i = 0; i < values.length; i++) {
            values[i] = new Object();
        }
        long bytes = allocatedBy(() -> {
            for (int i = 0; i < ROUNDS; i++) {
                int sid = i % 100;
                cache.insert(sid, ConfigCache.NO_SUBSTREAM, sid & 7, values[i & 15]);
                cache.insert(sid, i & 3, sid & 7, values[(i + 1) & 15], cache.epoch());
                cache.lookup(sid, ConfigCache.NO_SUBSTREAM);
                cache.lookup(sid + 1, 2);
                if (i % 16 == 0) {
                    cache.invalidate(sid, 1);
                    cache.invalidateStream(sid);
                    cache.invalidateSubstreams(sid + 1);
                    cache.invalidateStreamRange(sid, 3);
                    cache.invalidateStreamMasked(sid, 0b111);
                    cache.invalidateTag(3);
                    cache.invalidateTagSubstream(2, 1);
                }
                if (i % 500 == 0) {
                    cache.invalidateAll();
                }
            }
        });
        assertThat(bytes).isZero();
    }

    @Test
    void chargingAllocatesNothing() {
        XlateStats stats = new XlateStats();
        TranslationCaches caches = new TranslationCaches(64, 64);
        long bytes = allocatedBy(() -> {
            for (int i = 0; i < ROUNDS; i++) {
                stats.mmioAccess();
                stats.tableRead();
                stats.tableWrite();
                stats.queueRead();
                stats.cacheHit();
                stats.cacheMiss();
                stats.command(i);
                stats.sync();
                stats.event(i);
                stats.msiWrite();
                stats.gerror();
                stats.charge(3);
                stats.clock().now();
                caches.invalidateVa(1, 1, (long) i << 12, 0x1000, Iotlb.ANY_LEVEL, (i & 1) == 0, Stage.ALL);
            }
        });
        assertThat(bytes).isZero();
    }
}
