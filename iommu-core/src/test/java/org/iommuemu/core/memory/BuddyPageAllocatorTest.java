package org.iommuemu.core.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class BuddyPageAllocatorTest {
    private static final long BASE = SparseRam.DEFAULT_RAM_BASE;
    private static final long PAGE = PageAllocator.PAGE_SIZE;

    private final SparseRam ram = SparseRam.withDefaultRam();

    private BuddyPageAllocator pool(long base, long pages) {
        return new BuddyPageAllocator(ram, base, pages * PAGE);
    }

    // ------------------------------------------------------------------ construction

    @Test
    void maxOrderIsTheLargestBlockThePoolHoldsCappedAt1GiB() {
        assertThat(pool(BASE, 2048).maxOrder()).isEqualTo(11);
        assertThat(pool(BASE, 3000).maxOrder()).isEqualTo(11);
        assertThat(pool(BASE, 1).maxOrder()).isZero();
        assertThat(pool(BASE + 3 * PAGE, 64).maxOrder()).as("base only 4 KiB-aligned").isEqualTo(5);
        assertThat(pool(BASE + (2L << 20), 1024).maxOrder()).as("4 MiB at 2 MiB").isEqualTo(9);
        assertThat(pool(BASE + (2L << 20), 1L << 18).maxOrder()).as("1 GiB at 2 MiB").isEqualTo(17);
        BuddyPageAllocator big = new BuddyPageAllocator(ram, BASE, 2L << 30);
        assertThat(big.maxOrder()).isEqualTo(BuddyPageAllocator.MAX_ORDER_CAP).isEqualTo(18);
        assertThat(big.freePages()).isEqualTo(1L << 19);
        assertThat(big.allocPages(18, "huge")).isEqualTo(BASE);
        assertThat(big.allocPages(18, "huge")).isEqualTo(BASE + (1L << 30));
    }

    @Test
    void constructionValidatesThePool() {
        assertThatThrownBy(() -> new BuddyPageAllocator(ram, BASE + 1, 16 * PAGE))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("multiples of 4 KiB");
        assertThatThrownBy(() -> new BuddyPageAllocator(ram, BASE, 16 * PAGE + 8))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("multiples of 4 KiB");
        assertThatThrownBy(() -> new BuddyPageAllocator(ram, BASE, 0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("empty");
        assertThatThrownBy(() -> new BuddyPageAllocator(ram, BASE - PAGE, 16 * PAGE))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not all RAM");
        assertThatThrownBy(() -> new BuddyPageAllocator(ram, BASE + (4L << 30) - PAGE, 2 * PAGE))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not all RAM");
        assertThatThrownBy(() -> new BuddyPageAllocator(ram, BASE, (1L << 36) + PAGE))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("64 GiB");
        assertThatThrownBy(() -> new BuddyPageAllocator(ram, -PAGE, 2 * PAGE))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("wraps");
        assertThatThrownBy(() -> new BuddyPageAllocator(null, BASE, PAGE)).isInstanceOf(NullPointerException.class);
    }

    @Test
    void aPoolAtTheTopOfTheAddressSpaceWorks() {
        SparseRam top = SparseRam.of(new RamRegion(-(1L << 20), 1L << 20));
        BuddyPageAllocator a = new BuddyPageAllocator(top, -(1L << 20), 1L << 20);
        assertThat(a.maxOrder()).isEqualTo(8);
        long[] blocks = new long[256];
        for (int i = 0; i < blocks.length; i++) {
            blocks[i] = a.allocPages(0, "t");
        }
        assertThat(blocks).doesNotHaveDuplicates().contains(-PAGE);
        for (long pa : blocks) {
            a.free(pa);
        }
        assertThat(a.allocPages(8, "t")).isEqualTo(-(1L << 20));
    }

    // ------------------------------------------------------------------ blocks

    @Test
    void everyOrderIsAlignedToItsOwnSizeAndReportsItsSize() {
        for (long poolBase : new long[] {BASE, BASE + 5 * PAGE}) {
            BuddyPageAllocator a = pool(poolBase, 4096);
            List<Long> held = new ArrayList<>();
            for (int round = 0; round < 2; round++) {
                for (int order = 0; order <= a.maxOrder(); order++) {
                    long pa;
                    try {
                        pa = a.allocPages(order, "align");
                    } catch (GuestMemoryExhaustedException e) {
                        continue; // the blocks held so far fragment the pool
                    }
                    long size = PAGE << order;
                    assertThat(pa % size).as("order %d at %x", order, pa).isZero();
                    assertThat(pa).isBetween(poolBase, poolBase + 4096 * PAGE - size);
                    assertThat(a.blockSize(pa)).isEqualTo(size);
                    held.add(pa);
                }
            }
            assertThat(held).hasSizeGreaterThan(a.maxOrder());
            held.forEach(a::free);
            long whole = a.allocPages(a.maxOrder(), "align");
            assertThat(whole % (PAGE << a.maxOrder())).isZero();
        }
    }

    @Test
    void blocksFromAPoolWithAnUnalignedBaseAreAlignedInPhysicalAddresses() {
        BuddyPageAllocator a = pool(BASE + 3 * PAGE, 100);
        List<Long> blocks = new ArrayList<>();
        for (int order = a.maxOrder(); order >= 0; order--) {
            while (true) {
                long pa;
                try {
                    pa = a.allocPages(order, "x");
                } catch (GuestMemoryExhaustedException e) {
                    break;
                }
                assertThat(pa % (PAGE << order)).isZero();
                blocks.add(pa);
            }
        }
        assertThat(a.freePages()).isZero();
        assertThat(a.allocatedPages()).isEqualTo(100);
        blocks.forEach(a::free);
        assertThat(a.freePages()).isEqualTo(100);
    }

    @Test
    void blocksAreZeroFilledEvenAfterGarbageWasWrittenAndFreed() throws Exception {
        BuddyPageAllocator a = pool(BASE + (1L << 30), 16);
        byte[] garbage = new byte[(int) (16 * PAGE)];
        Arrays.fill(garbage, (byte) 0xa5);
        List<Long> blocks = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            long pa = a.allocPages(0, "dirty");
            ram.write(pa, garbage, 0, (int) PAGE);
            blocks.add(pa);
        }
        blocks.forEach(a::free);
        long whole = a.allocPages(4, "clean");
        byte[] back = new byte[garbage.length];
        Arrays.fill(back, (byte) 1);
        ram.read(whole, back, 0, back.length);
        assertThat(back).containsOnly(0);
        assertThat(ram.backedPages()).as("zero-fill dropped the dirty pages").isZero();
    }

    @Test
    void splitAllThenFreeAllMergesBackToMaxOrderBlocks() {
        BuddyPageAllocator a = pool(BASE, 1024);
        int max = a.maxOrder();
        List<Long> pages = new ArrayList<>();
        for (int i = 0; i < 1024; i++) {
            pages.add(a.allocPages(0, "page"));
        }
        assertThat(pages).doesNotHaveDuplicates();
        assertThat(a.freePages()).isZero();
        assertThatThrownBy(() -> a.allocPages(0, "page")).isInstanceOf(GuestMemoryExhaustedException.class);
        Collections.shuffle(pages, new Random(3));
        pages.forEach(a::free);
        assertThat(a.freePages()).isEqualTo(1024);
        assertThat(a.allocatedPages()).isZero();
        assertThat(a.allocPages(max, "whole")).isEqualTo(BASE);
    }

    @Test
    void splittingHandsOutTheLowerHalfAndKeepsTheRestAllocatable() {
        BuddyPageAllocator a = pool(BASE, 8);
        long first = a.allocPages(0, "t");
        assertThat(first).isEqualTo(BASE);
        assertThat(a.allocPages(2, "t")).isEqualTo(BASE + 4 * PAGE);
        assertThat(a.allocPages(1, "t")).isEqualTo(BASE + 2 * PAGE);
        assertThat(a.allocPages(0, "t")).isEqualTo(BASE + PAGE);
        assertThat(a.freePages()).isZero();
    }

    @Test
    void exhaustionNamesTheOrderAndTheFreePagesLeft() {
        BuddyPageAllocator a = pool(BASE, 16);
        a.allocPages(0, "t"); // splits the only order-4 block: 15 pages left, largest order 3
        assertThatThrownBy(() -> a.allocPages(4, "pgtable"))
                .isInstanceOf(GuestMemoryExhaustedException.class)
                .hasMessageContaining("order 4")
                .hasMessageContaining("64 KiB")
                .hasMessageContaining("'pgtable'")
                .hasMessageContaining("15 page(s) free")
                .hasMessageContaining("largest free block has order 3");
    }

    @Test
    void badOrdersAndNullTagsAreRejected() {
        BuddyPageAllocator a = pool(BASE, 16);
        assertThatThrownBy(() -> a.allocPages(-1, "t")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> a.allocPages(5, "t"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("0..4");
        assertThatThrownBy(() -> a.allocPages(0, null)).isInstanceOf(NullPointerException.class);
        assertThat(a.freePages()).isEqualTo(16);
    }

    @Test
    void allocBytesRoundsUpToAPowerOfTwoOfPages() {
        BuddyPageAllocator a = pool(BASE, 64);
        assertThat(a.blockSize(a.allocBytes(1, "b"))).isEqualTo(PAGE);
        assertThat(a.blockSize(a.allocBytes(PAGE, "b"))).isEqualTo(PAGE);
        assertThat(a.blockSize(a.allocBytes(PAGE + 1, "b"))).isEqualTo(2 * PAGE);
        assertThat(a.blockSize(a.allocBytes(5 * PAGE, "b"))).isEqualTo(8 * PAGE);
        assertThatThrownBy(() -> a.allocBytes(0, "b")).isInstanceOf(IllegalArgumentException.class);
    }

    // ------------------------------------------------------------------ bad frees

    @Test
    void freeingWhatIsNotTheStartOfAnAllocatedBlockIsAnIllegalState() {
        BuddyPageAllocator a = pool(BASE, 64);
        long block = a.allocPages(2, "pgtable");
        long other = a.allocPages(0, "cmdq");
        a.free(other);

        assertThatThrownBy(() -> a.free(other))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("double free")
                .hasMessageContaining(Long.toHexString(other));
        assertThatThrownBy(() -> a.free(block + PAGE))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("not the start of a block")
                .hasMessageContaining(Long.toHexString(block + PAGE))
                .hasMessageContaining(Long.toHexString(block))
                .hasMessageContaining("pgtable");
        assertThatThrownBy(() -> a.free(block + 8))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("not the start of a block");
        assertThatThrownBy(() -> a.free(BASE + 40 * PAGE))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("not allocated")
                .hasMessageContaining(Long.toHexString(BASE + 40 * PAGE));
        assertThatThrownBy(() -> a.free(BASE + 40 * PAGE + 4))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("not allocated");
        assertThatThrownBy(() -> a.free(BASE + 64 * PAGE))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("outside the page pool");
        assertThatThrownBy(() -> a.free(0))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("outside the page pool");

        // None of that changed the books.
        assertThat(a.allocatedPages()).isEqualTo(4);
        assertThat(a.outstandingByTag()).containsExactly(Map.entry("pgtable", 4L));
        a.free(block);
        assertThat(a.freePages()).isEqualTo(64);
    }

    @Test
    void aFreedBlockMergedIntoItsBuddyIsStillReportedAsADoubleFree() {
        BuddyPageAllocator a = pool(BASE, 2);
        long lo = a.allocPages(0, "t");
        long hi = a.allocPages(0, "t");
        a.free(hi);
        a.free(lo); // merges: hi is now inside a free order-1 block
        assertThatThrownBy(() -> a.free(hi)).hasMessageContaining("double free");
        long whole = a.allocPages(1, "t"); // covers hi again: no longer "freed"
        assertThatThrownBy(() -> a.free(hi)).hasMessageContaining("not the start of a block");
        a.free(whole);
        assertThatThrownBy(() -> a.free(hi)).hasMessageContaining("not allocated").hasMessageNotContaining("double");
    }

    @Test
    void blockSizeValidatesLikeFree() {
        BuddyPageAllocator a = pool(BASE, 16);
        long block = a.allocPages(1, "t");
        long freed = a.allocPages(0, "t");
        a.free(freed);
        assertThat(a.blockSize(block)).isEqualTo(2 * PAGE);
        assertThatThrownBy(() -> a.blockSize(block + PAGE))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("not the start of a block");
        assertThatThrownBy(() -> a.blockSize(freed))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("already freed");
        assertThatThrownBy(() -> a.blockSize(BASE + 8 * PAGE))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("not allocated");
    }

    // ------------------------------------------------------------------ tags

    @Test
    void pagesAreCountedPerTag() {
        BuddyPageAllocator a = pool(BASE, 64);
        long t1 = a.allocPages(0, "pgtable");
        long t2 = a.allocPages(0, "pgtable");
        long t3 = a.allocPages(0, "pgtable");
        long q = a.allocPages(2, "cmdq");
        long d = a.allocBytes(3 * PAGE, "dma-buffer");
        assertThat(a.allocatedPages("pgtable")).isEqualTo(3);
        assertThat(a.allocatedPages("cmdq")).isEqualTo(4);
        assertThat(a.allocatedPages("dma-buffer")).isEqualTo(4);
        assertThat(a.allocatedPages("never-used")).isZero();
        assertThat(a.allocatedPages()).isEqualTo(11);
        assertThat(a.freePages()).isEqualTo(53);
        assertThat(a.outstandingByTag())
                .containsExactly(Map.entry("cmdq", 4L), Map.entry("dma-buffer", 4L), Map.entry("pgtable", 3L));

        a.free(t2);
        a.free(q);
        Map<String, Long> snapshot = a.outstandingByTag();
        assertThat(snapshot).containsExactly(Map.entry("dma-buffer", 4L), Map.entry("pgtable", 2L));
        assertThatThrownBy(() -> snapshot.put("x", 1L)).isInstanceOf(UnsupportedOperationException.class);

        a.free(t1);
        a.free(t3);
        a.free(d);
        assertThat(a.outstandingByTag()).isEmpty();
        assertThat(snapshot).as("a snapshot does not change").hasSize(2);
        assertThat(a.allocatedPages("pgtable")).isZero();
        assertThat(a.allocatedPages()).isZero();
    }

    @Test
    void manyDistinctTagsAreFine() {
        BuddyPageAllocator a = pool(BASE, 64);
        List<Long> blocks = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            blocks.add(a.allocPages(0, "tag-" + i));
        }
        assertThat(a.outstandingByTag()).hasSize(40).containsEntry("tag-39", 1L);
        blocks.forEach(a::free);
        assertThat(a.outstandingByTag()).isEmpty();
    }

    // ------------------------------------------------------------------ model

    /**
     * Random allocations and frees against a model (a sorted map of live blocks): blocks never overlap, are
     * aligned, lie in the pool, and the counters always agree; freeing everything restores the pool.
     */
    @Test
    void randomAllocAndFreeAgreeWithAModel() {
        for (long seed = 0; seed < 40; seed++) {
            Random rnd = new Random(seed);
            long poolBase = BASE + (rnd.nextInt(64) << 12);
            int pages = 1 + rnd.nextInt(300);
            BuddyPageAllocator a = pool(poolBase, pages);
            TreeMap<Long, Long> live = new TreeMap<>(); // start -> size
            TreeMap<String, Long> byTag = new TreeMap<>();
            List<Long> starts = new ArrayList<>();
            for (int step = 0; step < 400; step++) {
                if (!starts.isEmpty() && rnd.nextInt(5) < 2) {
                    long pa = starts.remove(rnd.nextInt(starts.size()));
                    long size = live.remove(pa);
                    assertThat(a.blockSize(pa)).isEqualTo(size);
                    a.free(pa);
                    byTag.merge(tagFor(size), -(size / PAGE), Long::sum);
                    byTag.values().removeIf(v -> v == 0);
                } else {
                    int order = rnd.nextInt(a.maxOrder() + 1);
                    long pa;
                    try {
                        pa = a.allocPages(order, "o" + order);
                    } catch (GuestMemoryExhaustedException e) {
                        continue;
                    }
                    long size = PAGE << order;
                    assertThat(pa % size).isZero();
                    assertThat(pa).isBetween(poolBase, poolBase + pages * PAGE - size);
                    Map.Entry<Long, Long> below = live.floorEntry(pa);
                    assertThat(below == null || below.getKey() + below.getValue() <= pa).as("seed %d", seed).isTrue();
                    Long above = live.ceilingKey(pa);
                    assertThat(above == null || pa + size <= above).as("seed %d", seed).isTrue();
                    live.put(pa, size);
                    starts.add(pa);
                    byTag.merge("o" + order, size / PAGE, Long::sum);
                }
                long allocated = live.values().stream().mapToLong(s -> s / PAGE).sum();
                assertThat(a.allocatedPages()).isEqualTo(allocated);
                assertThat(a.freePages()).isEqualTo(pages - allocated);
                assertThat(a.outstandingByTag()).isEqualTo(byTag);
            }
            starts.forEach(a::free);
            assertThat(a.freePages()).isEqualTo(pages);
            assertThat(a.allocPages(a.maxOrder(), "again") % (PAGE << a.maxOrder())).isZero();
        }
    }

    private static String tagFor(long size) {
        return "o" + Long.numberOfTrailingZeros(size / PAGE);
    }

    @Test
    void allocAndFreeDoNotAllocateObjects() {
        java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();
        org.junit.jupiter.api.Assumptions.assumeTrue(mx instanceof com.sun.management.ThreadMXBean,
                "needs com.sun.management.ThreadMXBean to count allocated bytes");
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) mx;
        org.junit.jupiter.api.Assumptions.assumeTrue(
                threads.isThreadAllocatedMemorySupported() && threads.isThreadAllocatedMemoryEnabled());
        BuddyPageAllocator a = pool(BASE, 1024);
        int rounds = 20_000;
        long sink = churn(a, rounds); // warm up; also registers the tags
        long tid = Thread.currentThread().getId();
        long before = threads.getThreadAllocatedBytes(tid);
        sink += churn(a, rounds);
        long allocated = threads.getThreadAllocatedBytes(tid) - before;
        assertThat(allocated).as("bytes allocated by %d rounds (sink %d)", rounds, sink).isLessThan(rounds);
    }

    private static long churn(BuddyPageAllocator a, int rounds) {
        long sum = 0;
        for (int i = 0; i < rounds; i++) {
            long x = a.allocPages(i & 3, "pgtable");
            long y = a.allocPages(0, "cmdq");
            sum += a.blockSize(x) + a.allocatedPages("pgtable");
            a.free(x);
            a.free(y);
        }
        return sum;
    }

    // ------------------------------------------------------------------ concurrency

    @Test
    void concurrentAllocAndFreeNeverOverlapAndKeepTheBooks() throws Exception {
        int pages = 512;
        int threads = 4;
        int iterations = 5_000;
        BuddyPageAllocator a = pool(BASE, pages);
        AtomicIntegerArray owner = new AtomicIntegerArray(pages);
        ExecutorService executor = Executors.newFixedThreadPool(threads);
        try {
            CountDownLatch go = new CountDownLatch(1);
            List<Future<Void>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int me = t + 1;
                Callable<Void> worker = () -> {
                    go.await();
                    Random rnd = new Random(me);
                    List<Long> held = new ArrayList<>();
                    String tag = "thread-" + me;
                    for (int i = 0; i < iterations; i++) {
                        if (held.size() >= 8 || (!held.isEmpty() && rnd.nextBoolean())) {
                            long pa = held.remove(rnd.nextInt(held.size()));
                            int first = (int) ((pa - BASE) / PAGE);
                            int n = (int) (a.blockSize(pa) / PAGE);
                            assertThat(ram.read64(pa)).isEqualTo(me); // nobody else wrote into my block
                            for (int p = first; p < first + n; p++) {
                                assertThat(owner.compareAndSet(p, me, 0)).isTrue();
                            }
                            a.free(pa);
                        } else {
                            long pa;
                            try {
                                pa = a.allocPages(rnd.nextInt(4), tag);
                            } catch (GuestMemoryExhaustedException e) {
                                continue;
                            }
                            int first = (int) ((pa - BASE) / PAGE);
                            int n = (int) (a.blockSize(pa) / PAGE);
                            for (int p = first; p < first + n; p++) {
                                assertThat(owner.compareAndSet(p, 0, me)).as("page %d is already owned", p).isTrue();
                            }
                            assertThat(ram.read64(pa)).isZero();
                            assertThat(ram.read64(pa + n * PAGE - 8)).isZero();
                            ram.write64(pa, me);
                            ram.write64(pa + n * PAGE - 8, -1L);
                            held.add(pa);
                        }
                    }
                    assertThat(a.allocatedPages(tag)).isEqualTo(
                            held.stream().mapToLong(pa -> a.blockSize(pa) / PAGE).sum());
                    for (long pa : held) {
                        int first = (int) ((pa - BASE) / PAGE);
                        int n = (int) (a.blockSize(pa) / PAGE);
                        for (int p = first; p < first + n; p++) {
                            owner.set(p, 0);
                        }
                        a.free(pa);
                    }
                    return null;
                };
                done.add(executor.submit(worker));
            }
            go.countDown();
            for (Future<Void> f : done) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            executor.shutdownNow();
        }
        assertThat(a.allocatedPages()).isZero();
        assertThat(a.freePages()).isEqualTo(pages);
        assertThat(a.outstandingByTag()).isEmpty();
        assertThat(a.allocPages(a.maxOrder(), "whole")).isEqualTo(BASE);
    }
}
