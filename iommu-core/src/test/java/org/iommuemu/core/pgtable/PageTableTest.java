package org.iommuemu.core.pgtable;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.SparseRam;
import org.junit.jupiter.api.Test;

/** The algorithms on a made-up format; the real formats run the conformance suite. */
class PageTableTest {
    private static final long K4 = 1L << 12;
    private static final long K64 = 1L << 16;
    private static final long M2 = 1L << 21;
    private static final long G1 = 1L << 30;
    private static final int RW = Prot.READ | Prot.WRITE;

    private final SparseRam ram = SparseRam.withDefaultRam();
    private final BuddyPageAllocator alloc = new BuddyPageAllocator(ram, SparseRam.DEFAULT_RAM_BASE, 1L << 30);
    private final List<Long> flushedStarts = new ArrayList<>();
    private final IotlbGather gather = new IotlbGather(g -> flushedStarts.add(g.start()), alloc);

    private PageTable table(PtFormat fmt) throws PageTableException {
        return new PageTable(fmt, ram, alloc);
    }

    private long tables() {
        return alloc.allocatedPages(PageTable.TAG);
    }

    @Test
    void anEmptyTableTranslatesNothing() throws Exception {
        PageTable pt = table(ToyFormat.standard());
        assertThat(pt.iovaToPhys(0)).isEqualTo(PageTable.NO_MAPPING);
        assertThat(pt.iovaToPhys(0x1234_5678L)).isEqualTo(PageTable.NO_MAPPING);
        assertThat(pt.iovaToPhys(-1L)).as("outside the input range").isEqualTo(PageTable.NO_MAPPING);
        assertThat(tables()).isEqualTo(1);
    }

    @Test
    void mapTranslateUnmap() throws Exception {
        PageTable pt = table(ToyFormat.standard());
        pt.map(0x1000_0000L, 0x2_0000_0000L, K4, RW, gather);
        assertThat(pt.iovaToPhys(0x1000_0000L + 42)).isEqualTo(0x2_0000_0000L + 42);
        assertThat(pt.unmap(0x1000_0000L, K4, gather)).isEqualTo(K4);
        assertThat(pt.iovaToPhys(0x1000_0000L)).isEqualTo(PageTable.NO_MAPPING);
        assertThat(pt.unmap(0x1000_0000L, K4, gather)).as("a hole unmaps nothing").isZero();
    }

    @Test
    void aMappingIsSplitIntoTheLargestPagesItsAlignmentAllows() throws Exception {
        PageTable pt = table(ToyFormat.standard());
        // 4K..64K..2M..1G.. with iova and oa aligned alike
        long iova = G1 - M2 - K64 - K4;
        long oa = 0x40_0000_0000L + iova;
        long size = K4 + K64 + M2 + G1 + M2 + K64 + K4;
        pt.map(iova, oa, size, RW, gather);
        PtLookup l = new PtLookup();
        long at = iova;
        List<Long> leaves = new ArrayList<>();
        while (at < iova + size) {
            assertThat(pt.lookup(at, l)).isTrue();
            assertThat(l.iova()).isEqualTo(at);
            assertThat(l.oa()).isEqualTo(oa + (at - iova));
            leaves.add(l.size());
            at += l.size();
        }
        assertThat(leaves).containsExactly(K4, K64, M2, G1, M2, K64, K4);
    }

    @Test
    void mappingOverAMappedAddressFailsAndChangesNothing() throws Exception {
        PageTable pt = table(ToyFormat.standard());
        pt.map(0x20_0000L + 5 * K4, 0x9000_0000L, K4, RW, gather);
        assertThatThrownBy(() -> pt.map(0x20_0000L, 0x8000_0000L, 16 * K4, RW, gather))
                .isInstanceOf(PageTableException.class)
                .satisfies(e -> assertThat(((PageTableException) e).kind())
                        .isEqualTo(PageTableException.Kind.ADDRESS_IN_USE))
                .hasMessageContaining("0x205000 is already mapped");
        for (int i = 0; i < 16; i++) {
            long expected = i == 5 ? 0x9000_0000L : PageTable.NO_MAPPING;
            assertThat(pt.iovaToPhys(0x20_0000L + i * K4)).as("page %d", i).isEqualTo(expected);
        }
        assertThatThrownBy(() -> pt.map(M2, 0, M2, RW, gather)).as("a 2M leaf over a table that maps a page")
                .hasMessageContaining("already mapped");
    }

    @Test
    void unmapFromTheStartOfALargeLeafRemovesItWholeAndInsideItIsRefused() throws Exception {
        PageTable pt = table(ToyFormat.standard());
        pt.map(4 * M2, 8 * M2, M2, RW, gather);
        assertThatThrownBy(() -> pt.unmap(4 * M2 + K4, K4, gather))
                .satisfies(e -> assertThat(((PageTableException) e).kind())
                        .isEqualTo(PageTableException.Kind.UNMAP_SPLIT))
                .hasMessageContaining("starts inside the 0x200000-byte mapping at 0x800000");
        assertThat(pt.iovaToPhys(4 * M2 + K4)).as("still mapped").isEqualTo(8 * M2 + K4);
        assertThat(pt.unmap(4 * M2, K4, gather)).as("the whole 2M goes").isEqualTo(M2);
        assertThat(pt.iovaToPhys(4 * M2 + K4)).isEqualTo(PageTable.NO_MAPPING);
    }

    @Test
    void contiguousRunsHoldEachSlotsOwnAddressOrTheRunBase() throws Exception {
        for (PtFormat fmt : new PtFormat[] {ToyFormat.standard(), ToyFormat.growable()}) {
            PageTable pt = table(fmt);
            pt.map(K64 * 3, 0x7000_0000L + K64, K64, Prot.READ, gather);
            PtLookup l = new PtLookup();
            assertThat(pt.lookup(K64 * 3 + 5 * K4 + 7, l)).isTrue();
            assertThat(l.size()).isEqualTo(K64);
            assertThat(pt.iovaToPhys(K64 * 3 + 5 * K4 + 7)).isEqualTo(0x7000_0000L + K64 + 5 * K4 + 7);
            assertThatThrownBy(() -> pt.unmap(K64 * 3 + K4, K4, gather)).hasMessageContaining("starts inside");
            assertThat(pt.unmap(K64 * 3, K64, gather)).isEqualTo(K64);
            pt.destroy();
        }
    }

    @Test
    void aLargePageReplacesAnEmptiedTableAndFreesItAfterTheFlush() throws Exception {
        PageTable pt = table(ToyFormat.standard());
        long base = 3 * G1;
        for (int i = 0; i < 512; i++) {
            pt.map(base + i * K4, 0x100_0000_0000L + i * K4, K4, RW, gather);
        }
        long withLeafTable = tables();
        for (int i = 0; i < 512; i++) {
            assertThat(pt.unmap(base + i * K4, K4, gather)).isEqualTo(K4);
        }
        gather.sync();
        assertThat(tables()).as("piecewise unmaps leave the emptied table in place").isEqualTo(withLeafTable);
        pt.map(base, 0x200_0000_0000L, M2, RW, gather);
        assertThat(pt.iovaToPhys(base + 12345)).isEqualTo(0x200_0000_0000L + 12345);
        assertThat(tables()).as("freed only after the flush").isEqualTo(withLeafTable);
        gather.sync();
        assertThat(tables()).isEqualTo(withLeafTable - 1);
    }

    @Test
    void aLargePageOverANonEmptyTableIsRefused() throws Exception {
        PageTable pt = table(ToyFormat.standard());
        pt.map(M2 + 100 * K4, 0x5000_0000L, K4, RW, gather);
        assertThatThrownBy(() -> pt.map(M2, 0x6000_0000L, M2, RW, gather))
                .hasMessageContaining("is already mapped");
        assertThat(pt.iovaToPhys(M2 + 100 * K4)).isEqualTo(0x5000_0000L);
    }

    @Test
    void unmapCoveringAWholeTableFreesIt() throws Exception {
        PageTable pt = table(ToyFormat.standard());
        long start = tables();
        pt.map(5 * G1, 0, 8 * K4, RW, gather);
        assertThat(tables()).isEqualTo(start + 3);
        assertThat(pt.unmap(5 * G1, G1, gather)).isEqualTo(8 * K4);
        assertThat(tables()).as("held until the flush").isEqualTo(start + 3);
        gather.sync();
        assertThat(tables()).as("the level-1 and level-0 tables under that 1G are gone").isEqualTo(start + 1);
    }

    @Test
    void aFailedMapRemovesWhatItHadInstalled() throws Exception {
        PageTable pt = table(ToyFormat.standard());
        pt.map(0x4000_0000L + 40 * K4, 0x9000_0000L, K4, RW, gather);
        assertThatThrownBy(() -> pt.map(0x4000_0000L, 0x8000_0000L, 64 * K4, RW, gather))
                .hasMessageContaining("already mapped");
        for (int i = 0; i < 64; i++) {
            if (i != 40) {
                assertThat(pt.iovaToPhys(0x4000_0000L + i * K4)).as("page %d rolled back", i)
                        .isEqualTo(PageTable.NO_MAPPING);
            }
        }
    }

    @Test
    void badRequestsAreRefusedWithTheirKind() throws Exception {
        PageTable pt = table(ToyFormat.standard());
        assertKind(() -> pt.map(0x800, 0, K4, RW, gather), PageTableException.Kind.MISALIGNED, "multiples of");
        assertKind(() -> pt.map(0, 0x800, K4, RW, gather), PageTableException.Kind.MISALIGNED, "multiples of");
        assertKind(() -> pt.map(0, 0, 0x1800, RW, gather), PageTableException.Kind.MISALIGNED, "multiples of");
        assertKind(() -> pt.map(0, 0, K4, Prot.NOEXEC, gather), PageTableException.Kind.BAD_PROT, "reading or writing");
        assertKind(() -> pt.map(1L << 48, 0, K4, RW, gather), PageTableException.Kind.IOVA_OUT_OF_RANGE, "48-bit");
        assertKind(() -> pt.map((1L << 48) - K4, 0, 2 * K4, RW, gather), PageTableException.Kind.IOVA_OUT_OF_RANGE,
                "outside");
        assertKind(() -> pt.map(0, 1L << 52, K4, RW, gather), PageTableException.Kind.OA_TOO_WIDE, "52-bit output");
        assertKind(() -> pt.map(0, 0, 0, RW, gather), PageTableException.Kind.BAD_SIZE, "zero");
        assertKind(() -> pt.unmap(-K4, 2 * K4, gather), PageTableException.Kind.BAD_SIZE, "wraps");
        assertKind(() -> pt.unmap(0x800, K4, gather), PageTableException.Kind.MISALIGNED, "multiples of");
    }

    private static void assertKind(org.assertj.core.api.ThrowableAssert.ThrowingCallable call,
            PageTableException.Kind kind, String text) {
        assertThatThrownBy(call).isInstanceOf(PageTableException.class)
                .satisfies(e -> assertThat(((PageTableException) e).kind()).isEqualTo(kind))
                .hasMessageContaining(text);
    }

    @Test
    void aGrowableTableGrowsLevelByLevelAndNeverPutsALeafInItsTop() throws Exception {
        PageTable pt = table(ToyFormat.growable());
        assertThat(pt.topLevel()).isEqualTo(1);
        assertThat(pt.coveredLg2()).isEqualTo(30);
        pt.map(0x1000, 0x5000, K4, RW, gather);
        long firstRoot = pt.root();
        pt.map(M2, 0x4000_0000L, M2, RW, gather);
        assertThat(pt.topLevel()).as("a 2M leaf would sit in the level-1 top: grow").isEqualTo(2);
        pt.map(1L << 38, 0x7000_0000L, K4, RW, gather);
        assertThat(pt.topLevel()).as("a level-2 top covers 39 bits").isEqualTo(2);
        pt.map(1L << 40, 0x8000_0000L, K4, RW, gather);
        assertThat(pt.topLevel()).isEqualTo(3);
        assertThat(pt.coveredLg2()).isEqualTo(48);
        assertThat(pt.root()).isNotEqualTo(firstRoot);
        assertThat(pt.iovaToPhys(0x1000 + 9)).as("old mappings survive growth").isEqualTo(0x5009);
        assertThat(pt.iovaToPhys(M2 + 77)).isEqualTo(0x4000_0000L + 77);
        assertThat(pt.iovaToPhys((1L << 38) + 3)).isEqualTo(0x7000_0003L);
        assertThat(pt.iovaToPhys((1L << 40) + 3)).isEqualTo(0x8000_0003L);
        assertKind(() -> pt.map(1L << 48, 0, K4, RW, gather), PageTableException.Kind.IOVA_OUT_OF_RANGE, "beyond");
        pt.destroy();
        assertThat(tables()).isZero();
    }

    @Test
    void destroyReturnsEveryTablePage() throws Exception {
        PageTable pt = table(ToyFormat.standard());
        for (int i = 0; i < 50; i++) {
            pt.map((long) i * 3 * G1 + i * M2 + i * K4, (long) i << 30, K4 * (i + 1), RW, gather);
        }
        assertThat(tables()).isGreaterThan(50);
        pt.destroy();
        assertThat(tables()).isZero();
        assertThatThrownBy(() -> pt.iovaToPhys(0)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void dirtyLeavesAreReportedOnceAndCleared() throws Exception {
        PageTable pt = table(ToyFormat.standard());
        pt.map(0, 0x1000_0000L, K64 + K4, RW, gather); // a 64K run, then a 4K page
        PtLookup l = new PtLookup();
        pt.lookup(3 * K4, l); // a slot inside the run
        ram.write64(l.slot(), pt.format().markDirty(l.entry(), l.level()));
        pt.lookup(K64, l);
        ram.write64(l.slot(), pt.format().markDirty(l.entry(), l.level()));
        List<String> seen = new ArrayList<>();
        long bytes = pt.readAndClearDirty(0, M2, true, (va, size) -> seen.add(va + "+" + size));
        assertThat(seen).containsExactly("0+65536", "65536+4096");
        assertThat(bytes).isEqualTo(K64 + K4);
        pt.readAndClearDirty(0, M2, false, (va, size) -> { });
        seen.clear();
        assertThat(pt.readAndClearDirty(0, M2, false, (va, size) -> seen.add(va + "+" + size))).isZero();
        assertThat(seen).isEmpty();
    }

    @Test
    void threadsMappingDisjointRangesUnderSharedTablesLoseNothing() throws Exception {
        int threads = 8;
        for (int round = 0; round < 20; round++) {
            PageTable pt = table(ToyFormat.standard());
            CyclicBarrier start = new CyclicBarrier(threads);
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<?>> done = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int id = t;
                    done.add(pool.submit(() -> {
                        IotlbGather g = new IotlbGather(x -> { }, alloc);
                        start.await();
                        for (int i = 0; i < 64; i++) {
                            // interleaved 4K pages: every thread writes into the same tables at every level
                            long iova = ((long) i * threads + id) * K4 + (long) (i % 4) * G1;
                            pt.map(iova, 0x100_0000_0000L + iova, K4, RW, g);
                        }
                        return null;
                    }));
                }
                for (Future<?> f : done) {
                    f.get(60, TimeUnit.SECONDS);
                }
            } finally {
                pool.shutdownNow();
            }
            for (int t = 0; t < threads; t++) {
                for (int i = 0; i < 64; i++) {
                    long iova = ((long) i * threads + t) * K4 + (long) (i % 4) * G1;
                    assertThat(pt.iovaToPhys(iova)).as("round %d thread %d page %d", round, t, i)
                            .isEqualTo(0x100_0000_0000L + iova);
                }
            }
            pt.destroy();
            assertThat(tables()).as("round %d: no table leaked by lost install races", round).isZero();
        }
    }
}
