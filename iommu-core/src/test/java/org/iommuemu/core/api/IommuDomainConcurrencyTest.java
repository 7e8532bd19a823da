package org.iommuemu.core.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Several threads map and unmap disjoint ranges of one domain, under shared upper tables, with random sizes
 * and alignments (so leaves of every size come and go, and emptied tables are replaced). Each thread keeps a
 * model of its own slots; afterwards every mapping must be there, the byte count must agree, and destroy must
 * return every table page. Seeded; a failure names the seed.
 */
class IommuDomainConcurrencyTest extends Fixture {
    private static final int THREADS = 4;
    private static final int SLOTS = 24;
    private static final int OPS = 300;

    @ParameterizedTest
    @EnumSource(FlushPolicy.class)
    void threadsMappingAndUnmappingDisjointRangesLoseNothingAndLeakNothing(FlushPolicy policy) throws Exception {
        long seed = System.nanoTime();
        try {
            run(policy, seed);
        } catch (Throwable t) {
            throw new AssertionError(policy + " failed with seed " + seed + " (rerun with run(policy, seed))", t);
        }
    }

    /** Slot {@code s} of thread {@code t}: 2M of iova; the threads' slots interleave in the same tables. */
    private static long slotIova(int t, int s) {
        return ((long) s * THREADS + t) * M2 + (s % 3) * G1;
    }

    private void run(FlushPolicy policy, long seed) throws Exception {
        IommuDomain d = domain().name("shared").flushPolicy(policy).flushQueueCapacity(16).build();
        FakeInstance a = new FakeInstance("smmu0", ALL_4K_SIZES, true);
        FakeInstance b = new FakeInstance("smmu1", ALL_4K_SIZES, false);
        d.attach(a);
        d.attach(b);
        CyclicBarrier start = new CyclicBarrier(THREADS);
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        long[][] pa = new long[THREADS][SLOTS];
        long[][] len = new long[THREADS][SLOTS];
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int id = t;
                SplittableRandom rnd = new SplittableRandom(seed + t);
                done.add(pool.submit(() -> {
                    start.await();
                    for (int op = 0; op < OPS; op++) {
                        int s = rnd.nextInt(SLOTS);
                        long iova = slotIova(id, s);
                        if (len[id][s] != 0) {
                            assertThat(d.iovaToPhys(iova + len[id][s] - 1)).isEqualTo(pa[id][s] + len[id][s] - 1);
                            assertThat(d.unmap(iova, len[id][s])).as("slot %d", s).isEqualTo(len[id][s]);
                            len[id][s] = 0;
                            continue;
                        }
                        int shape = rnd.nextInt(4);
                        long pages = shape == 0 ? 512 : 1 + rnd.nextInt(shape == 1 ? 16 : 512);
                        long size = pages * K4;
                        // random 4K alignment; 1 in 4 is 2M-aligned so that large leaves appear
                        long base = rnd.nextInt(4) == 0 ? (long) rnd.nextInt(64) * M2 : rnd.nextLong(1L << 20) * K4;
                        long phys = 0x1_0000_0000L + base;
                        if (rnd.nextBoolean()) {
                            d.map(iova, phys, size, RW);
                        } else {
                            d.mapSg(iova, List.of(SgEntry.of(phys, size)), RW);
                        }
                        pa[id][s] = phys;
                        len[id][s] = size;
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(120, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        long total = 0;
        for (int t = 0; t < THREADS; t++) {
            for (int s = 0; s < SLOTS; s++) {
                long iova = slotIova(t, s);
                if (len[t][s] == 0) {
                    assertThat(d.iovaToPhys(iova)).as("thread %d slot %d unmapped", t, s)
                            .isEqualTo(IommuDomain.NO_MAPPING);
                    continue;
                }
                total += len[t][s];
                for (long off = 0; off < len[t][s]; off += 13 * K4) {
                    assertThat(d.iovaToPhys(iova + off)).as("thread %d slot %d +%x", t, s, off)
                            .isEqualTo(pa[t][s] + off);
                }
                assertThat(d.iovaToPhys(iova + len[t][s] - 1)).isEqualTo(pa[t][s] + len[t][s] - 1);
                if (len[t][s] < M2) {
                    assertThat(d.iovaToPhys(iova + len[t][s])).isEqualTo(IommuDomain.NO_MAPPING);
                }
            }
        }
        assertThat(d.mappedBytes()).isEqualTo(total);
        assertThat(d.tablePagesFreed()).as("whole-slot unmaps and 2M leaves freed tables").isPositive();
        assertThat(a.syncs()).hasSize((int) d.unmapSyncs());
        assertThat(b.syncs()).hasSize((int) d.unmapSyncs());
        assertThat(a.syncMaps()).hasSize((int) d.mapSyncs());
        if (policy == FlushPolicy.LAZY) {
            assertThat(d.queueFlushes()).as("the capacity of 16 was reached").isPositive();
            assertThat(a.flushAlls()).isEqualTo((int) d.fullFlushes());
        }
        d.detach(a);
        d.detach(b);
        d.destroy();
        assertThat(tablePages()).as("no table page leaked").isZero();
    }
}
