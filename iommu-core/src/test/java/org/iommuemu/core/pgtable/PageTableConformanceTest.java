package org.iommuemu.core.pgtable;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.SparseRam;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * One suite, every format configuration ({@link FormatCases}): the Linux io-pgtable selftest cases, the
 * generic_pt cases, a model-based random test against a simple reference, and concurrent mapping. Every case
 * ends by destroying the table and checking that no table page leaked.
 */
class PageTableConformanceTest {
    private static final long G1 = 1L << 30;
    private static final int RW = Prot.READ | Prot.WRITE;

    private final SparseRam ram = SparseRam.withDefaultRam();
    private final BuddyPageAllocator alloc = new BuddyPageAllocator(ram, SparseRam.DEFAULT_RAM_BASE, 1L << 30);
    private final IotlbGather gather = new IotlbGather(g -> { }, alloc);
    private PageTable pt;

    static java.util.stream.Stream<org.junit.jupiter.api.Named<PtFormat>> formats() {
        return FormatCases.named();
    }

    private PageTable open(PtFormat fmt) throws PageTableException {
        pt = new PageTable(fmt, ram, alloc);
        return pt;
    }

    @AfterEach
    void noTablePageLeaks() throws PageTableException {
        if (pt != null) {
            gather.sync();
            pt.destroy();
            assertThat(alloc.allocatedPages(PageTable.TAG)).as("table pages left after destroy").isZero();
        }
    }

    // ------------------------------------------------------------------ geometry helpers

    /** The highest input address + 1 usable from 0 (the lower half for sign-extended formats), capped at 2^62. */
    private static long vaLimit(PtFormat fmt) {
        int bits = fmt.vaSignExtended() ? fmt.vaBits() - 1 : fmt.vaBits();
        return bits >= 62 ? 1L << 62 : 1L << bits;
    }

    private static long oaLimit(PtFormat fmt) {
        return fmt.oaBits() >= 62 ? 1L << 62 : 1L << fmt.oaBits();
    }

    /** The output limit a leaf of 2^lg2 bytes can reach (armv7s: only supersections go past 4 GiB). */
    private static long leafOaLimit(PtFormat fmt, int lg2) {
        for (int level = 0; level <= fmt.maxTopLevel(); level++) {
            if ((fmt.leafSizes(level) & (1L << lg2)) != 0) {
                int bits = fmt.leafOaBits(level, lg2);
                return bits >= 62 ? 1L << 62 : 1L << bits;
            }
        }
        throw new IllegalArgumentException("no level holds 2^" + lg2);
    }

    private static List<Integer> sizes(PtFormat fmt) {
        List<Integer> out = new ArrayList<>();
        long s = fmt.pageSizes();
        for (int i = 0; i < 64; i++) {
            if ((s & (1L << i)) != 0) {
                out.add(i);
            }
        }
        return out;
    }

    private static int minLg2(PtFormat fmt) {
        return Long.numberOfTrailingZeros(fmt.pageSizes());
    }

    /** The leaves covering [iova, iova + size), as "size@va->oa" strings, by walking with lookup. */
    private List<String> leaves(long iova, long size) throws PageTableException {
        List<String> out = new ArrayList<>();
        PtLookup l = new PtLookup();
        long at = iova;
        while (Long.compareUnsigned(at - iova, size) < 0) {
            assertThat(pt.lookup(at, l)).as("mapped at %s", Bits.hex(at)).isTrue();
            assertThat(l.iova()).as("a leaf starts at %s", Bits.hex(at)).isEqualTo(at);
            out.add(l.sizeLg2() + "@" + Long.toHexString(l.iova()) + "->" + Long.toHexString(l.oa()));
            at += l.size();
        }
        return out;
    }

    /** What the leaves of map(va, oa, length) must be, from the reference page-size rule. */
    private static List<String> expectedLeaves(long sizes, long va, long oa, long length) {
        List<String> out = new ArrayList<>();
        long done = 0;
        while (done < length) {
            long r = PageSizesTest.reference(sizes, va + done, oa + done, length - done);
            int lg2 = PageSizes.lg2(r);
            for (long i = 0; i < PageSizes.count(r); i++) {
                out.add(lg2 + "@" + Long.toHexString(va + done) + "->" + Long.toHexString(oa + done));
                done += 1L << lg2;
            }
        }
        return out;
    }

    // ------------------------------------------------------------------ Linux io-pgtable selftests

    @ParameterizedTest
    @MethodSource("formats")
    void anEmptyTableTranslatesNothing(PtFormat fmt) throws Exception {
        open(fmt);
        for (long iova : new long[] {0, 42, 0x1000, G1 + 42, vaLimit(fmt) - 1}) {
            assertThat(pt.iovaToPhys(iova)).as("iova %s", Bits.hex(iova)).isEqualTo(PageTable.NO_MAPPING);
        }
    }

    @ParameterizedTest
    @MethodSource("formats")
    void everyPageSizeAtALargeStrideThenFullUnmapAndWriteOnlyRemap(PtFormat fmt) throws Exception {
        open(fmt);
        List<long[]> mapped = new ArrayList<>();
        long iova = 0;
        for (int lg2 : sizes(fmt)) {
            long size = 1L << lg2;
            iova = Bits.alignUp(iova, lg2);
            if (Long.compareUnsigned(iova + size, Math.min(vaLimit(fmt), oaLimit(fmt))) > 0) {
                break;
            }
            pt.map(iova, iova, size, Prot.READ | Prot.WRITE | Prot.NOEXEC | Prot.CACHE, gather);
            long at = iova;
            assertThatThrownBy(() -> pt.map(at, at + size, size, Prot.READ | Prot.NOEXEC, gather))
                    .as("overlapping map of 2^%d", lg2).isInstanceOf(PageTableException.class)
                    .satisfies(e -> assertThat(((PageTableException) e).kind())
                            .isEqualTo(PageTableException.Kind.ADDRESS_IN_USE));
            assertThat(pt.iovaToPhys(iova + 42)).as("2^%d page", lg2).isEqualTo(iova + 42);
            mapped.add(new long[] {iova, size});
            iova += Math.max(size, G1);
        }
        assertThat(mapped).as("at least the smallest size fits").isNotEmpty();
        for (long[] m : mapped) {
            assertThat(pt.unmap(m[0], m[1], gather)).isEqualTo(m[1]);
            assertThat(pt.iovaToPhys(m[0] + 42)).isEqualTo(PageTable.NO_MAPPING);
            pt.map(m[0], m[0], m[1], Prot.WRITE, gather);
            assertThat(pt.iovaToPhys(m[0] + 42)).isEqualTo(m[0] + 42);
            PtLookup l = new PtLookup();
            assertThat(pt.lookup(m[0], l)).isTrue();
            assertThat(l.prot()).isEqualTo(fmt.canonicalProt(Prot.WRITE));
        }
    }

    @ParameterizedTest
    @MethodSource("formats")
    void theLargestPageAtTheTopOfTheInputRange(PtFormat fmt) throws Exception {
        open(fmt);
        List<Integer> sizes = sizes(fmt);
        int lg2 = sizes.get(sizes.size() - 1);
        long size = 1L << lg2;
        long topVa = fmt.vaBits() >= 64 ? -size : (fmt.vaSignExtended() ? (1L << (fmt.vaBits() - 1)) : 1L << fmt.vaBits())
                - size;
        long oa = Math.max(size, Math.min(leafOaLimit(fmt, lg2), 1L << 44)) - size;
        pt.map(topVa, oa, size, RW, gather);
        assertThat(pt.iovaToPhys(topVa + size - 1)).isEqualTo(oa + size - 1);
        assertThat(pt.iovaToPhys(topVa - 1)).isEqualTo(PageTable.NO_MAPPING);
        assertThat(pt.unmap(topVa, size, gather)).isEqualTo(size);
        assertThat(pt.iovaToPhys(topVa)).isEqualTo(PageTable.NO_MAPPING);
        if (fmt.vaSignExtended()) {
            pt.map(-size, oa, size, RW, gather); // the top of the upper (canonical) half
            assertThat(pt.iovaToPhys(-1L)).isEqualTo(oa + size - 1);
            assertThat(pt.unmap(-size, size, gather)).isEqualTo(size);
        }
    }

    // ------------------------------------------------------------------ generic_pt cases

    @ParameterizedTest
    @MethodSource("formats")
    void leavesFollowTheBestPageSizeRule(PtFormat fmt) throws Exception {
        open(fmt);
        List<Integer> sizes = sizes(fmt);
        int min = minLg2(fmt);
        Random rnd = new Random(fmt.name().hashCode());
        long window = Math.min(vaLimit(fmt), oaLimit(fmt)) / 2;
        for (int i = 0; i < 150; i++) {
            int unitLg2 = sizes.get(rnd.nextInt(sizes.size()));
            if ((1L << unitLg2) > window / 8) {
                continue;
            }
            long base = Bits.alignDown(Math.floorMod(rnd.nextLong(), window / 2), unitLg2) + (1L << unitLg2);
            long head = (long) rnd.nextInt(32) << min;
            boolean aligned = rnd.nextInt(4) != 0;
            long oaBase = Bits.alignDown(Math.floorMod(rnd.nextLong(), window / 2), unitLg2) + (1L << unitLg2);
            long va = base - head;
            long oa = oaBase - head + (aligned ? 0 : (long) (1 + rnd.nextInt(7)) << min);
            long units = aligned ? 1 + rnd.nextInt(3) : 0;
            long length = head + (units << unitLg2) + ((long) rnd.nextInt(32) << min);
            if (length == 0 || (!aligned && length > (4096L << min))) {
                continue;
            }
            List<String> expected = expectedLeaves(fmt.pageSizes(), va, oa, length);
            if (expected.size() > 20_000) {
                continue;
            }
            pt.map(va, oa, length, RW, gather);
            assertThat(leaves(va, length)).as("case %d: map %s -> %s, %s bytes", i, Bits.hex(va), Bits.hex(oa),
                    Bits.hex(length)).isEqualTo(expected);
            assertThat(pt.unmap(va, length, gather)).isEqualTo(length);
            assertThat(pt.iovaToPhys(va)).isEqualTo(PageTable.NO_MAPPING);
        }
    }

    @ParameterizedTest
    @MethodSource("formats")
    void everyLeafSizeAtTheBoundaryOutputAddresses(PtFormat fmt) throws Exception {
        open(fmt);
        long iova = 0;
        for (int lg2 : sizes(fmt)) {
            long size = 1L << lg2;
            iova = Bits.alignUp(iova, lg2);
            if (Long.compareUnsigned(iova + size, vaLimit(fmt)) > 0 || size > leafOaLimit(fmt, lg2) / 2) {
                break;
            }
            for (long oa : new long[] {0, size, leafOaLimit(fmt, lg2) - size}) {
                pt.map(iova, oa, size, RW, gather);
                PtLookup l = new PtLookup();
                assertThat(pt.lookup(iova + size / 2, l)).isTrue();
                assertThat(l.sizeLg2()).as("size 2^%d at oa %s", lg2, Bits.hex(oa)).isEqualTo(lg2);
                assertThat(l.oa()).isEqualTo(oa);
                assertThat(pt.iovaToPhys(iova + size - 1)).isEqualTo(oa + size - 1);
                assertThat(pt.unmap(iova, size, gather)).isEqualTo(size);
            }
            iova += size;
        }
    }

    @ParameterizedTest
    @MethodSource("formats")
    void attributesSurviveEncodeAndDecodeForEveryProtAndSize(PtFormat fmt) throws Exception {
        open(fmt);
        long iova = 0;
        for (int lg2 : sizes(fmt)) {
            long size = 1L << lg2;
            iova = Bits.alignUp(iova, lg2);
            if (Long.compareUnsigned(iova + size, vaLimit(fmt)) > 0) {
                break;
            }
            for (int prot = 0; prot <= Prot.ALL; prot++) {
                if ((prot & RW) == 0) {
                    continue;
                }
                pt.map(iova, 0, size, prot, gather);
                PtLookup l = new PtLookup();
                assertThat(pt.lookup(iova, l)).isTrue();
                assertThat(l.prot()).as("prot %s at size 2^%d", Prot.toString(prot), lg2)
                        .isEqualTo(fmt.canonicalProt(prot));
                pt.unmap(iova, size, gather);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("formats")
    void smallPagesThenOneLargePageOverTheEmptiedTable(PtFormat fmt) throws Exception {
        open(fmt);
        int min = minLg2(fmt);
        int big = fmt.itemLg2(1);
        if ((fmt.leafSizes(1) & (1L << big)) == 0 || (fmt.topLevel() == 1 && !fmt.topCanHoldLeaf())) {
            return; // no leaf of a whole level-1 item: nothing to replace the table with
        }
        long base = Bits.alignUp(Math.min(vaLimit(fmt), oaLimit(fmt)) / 4, big);
        int n = 1 << (big - min);
        for (int i = 0; i < n; i++) {
            pt.map(base + ((long) i << min), base + ((long) i << min), 1L << min, RW, gather);
        }
        for (int i = 0; i < n; i++) {
            assertThat(pt.unmap(base + ((long) i << min), 1L << min, gather)).isEqualTo(1L << min);
        }
        gather.sync();
        long before = alloc.allocatedPages(PageTable.TAG);
        pt.map(base, base, 1L << big, RW, gather);
        assertThat(leaves(base, 1L << big)).containsExactly(big + "@" + Long.toHexString(base) + "->"
                + Long.toHexString(base));
        gather.sync();
        assertThat(alloc.allocatedPages(PageTable.TAG)).as("the emptied table was freed")
                .isLessThan(before);
    }

    @ParameterizedTest
    @MethodSource("formats")
    void unmapRemovesWholeLeavesAndRefusesToSplitThem(PtFormat fmt) throws Exception {
        open(fmt);
        List<Integer> sizes = sizes(fmt);
        int min = sizes.get(0);
        int big = sizes.get(Math.min(sizes.size() - 1, 2));
        long iova = Bits.alignUp(Math.min(vaLimit(fmt), oaLimit(fmt)) / 4, big);
        pt.map(iova, iova, 1L << big, RW, gather);
        assertThatThrownBy(() -> pt.unmap(iova + (1L << min), 1L << min, gather))
                .isInstanceOf(PageTableException.class)
                .satisfies(e -> assertThat(((PageTableException) e).kind())
                        .isEqualTo(PageTableException.Kind.UNMAP_SPLIT));
        assertThat(pt.iovaToPhys(iova + (1L << min))).isEqualTo(iova + (1L << min));
        assertThat(pt.unmap(iova, 1L << min, gather)).as("from its start: all of it").isEqualTo(1L << big);
        assertThat(pt.iovaToPhys(iova + (1L << big) - 1)).isEqualTo(PageTable.NO_MAPPING);
    }

    @ParameterizedTest
    @MethodSource("formats")
    void theFef80000CaseGetsTheEntriesItsAlignmentImplies(PtFormat fmt) throws Exception {
        open(fmt);
        if (minLg2(fmt) != 12 || leafOaLimit(fmt, 12) < (1L << 38)) {
            return; // needs 4K pages and an output address above 2^37
        }
        long va = 0xfef80000L;
        long oa = 0x208b95d000L;
        pt.map(va, oa, 0x20000, RW, gather);
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < 32; i++) {
            expected.add("12@" + Long.toHexString(va + i * 0x1000L) + "->" + Long.toHexString(oa + i * 0x1000L));
        }
        assertThat(leaves(va, 0x20000)).as("oa is only 4K-aligned: 32 4K entries").isEqualTo(expected);
        assertThat(pt.iovaToPhys(0xfef9ffffL)).isEqualTo(0x208b97cfffL);
        assertThat(pt.iovaToPhys(0xfefa0000L)).isEqualTo(PageTable.NO_MAPPING);
    }

    @ParameterizedTest
    @MethodSource("formats")
    void aMixedRangeCountedEntryByEntry(PtFormat fmt) throws Exception {
        open(fmt);
        long m2 = 1L << 21;
        long start = 4 * G1 - 14 * m2;
        long size = 14 * m2 + 3 * G1 + 3 * m2;
        if (Long.compareUnsigned(start + size, Math.min(vaLimit(fmt), oaLimit(fmt))) > 0) {
            return;
        }
        pt.map(start, start, size, RW, gather);
        List<String> got = leaves(start, size);
        assertThat(got).isEqualTo(expectedLeaves(fmt.pageSizes(), start, start, size));
        long between = fmt.pageSizes() & Bits.maskHiLo(30, 21);
        if (between == ((1L << 21) | (1L << 30))) {
            // exactly 2M and 1G between: 14 x 2M, 3 x 1G, 3 x 2M
            Map<String, Integer> counts = new TreeMap<>();
            List<String> order = new ArrayList<>();
            for (String leaf : got) {
                String lg2 = leaf.substring(0, leaf.indexOf('@'));
                if (order.isEmpty() || !order.get(order.size() - 1).startsWith(lg2 + "x")) {
                    order.add(lg2 + "x1");
                } else {
                    String last = order.remove(order.size() - 1);
                    order.add(lg2 + "x" + (Integer.parseInt(last.substring(last.indexOf('x') + 1)) + 1));
                }
                counts.merge(lg2, 1, Integer::sum);
            }
            assertThat(order).containsExactly("21x14", "30x3", "21x3");
        }
        // entries written: each leaf counts its run of entries
        long entries = 0;
        PtLookup l = new PtLookup();
        for (long at = start; at - start < size; at += l.size()) {
            pt.lookup(at, l);
            entries += l.size() >>> fmt.itemLg2(l.level());
        }
        assertThat(entries).as("entries written").isPositive();
        assertThat(pt.unmap(start, size, gather)).isEqualTo(size);
    }

    @ParameterizedTest
    @MethodSource("formats")
    void aGrowableTopGrowsLevelByLevel(PtFormat fmt) throws Exception {
        open(fmt);
        if (fmt.maxTopLevel() == fmt.topLevel()) {
            return;
        }
        List<long[]> mapped = new ArrayList<>();
        long previousRoot = pt.root();
        int previousTop = pt.topLevel();
        for (int k = 20; k < 64; k += 3) {
            long iova = 1L << k;
            pt.map(iova, 0x1000L * mapped.size(), 0x1000, RW, gather);
            mapped.add(new long[] {iova, 0x1000L * mapped.size()});
            int needed = fmt.topLevel();
            while (fmt.itemLg2(needed) + fmt.topItemsLg2(needed) <= k) {
                needed++;
            }
            assertThat(pt.topLevel()).as("top level after mapping at 2^%d", k).isEqualTo(Math.max(needed, previousTop));
            if (pt.topLevel() != previousTop) {
                assertThat(pt.root()).isNotEqualTo(previousRoot);
            }
            previousTop = pt.topLevel();
            previousRoot = pt.root();
            for (long[] m : mapped) {
                assertThat(pt.iovaToPhys(m[0] + 7)).isEqualTo(m[1] + 7);
            }
        }
        assertThat(pt.topLevel()).isEqualTo(fmt.maxTopLevel());
    }

    // ------------------------------------------------------------------ model-based random test

    /** A leaf of the reference model. */
    private record Leaf(long start, long size, long oa) {}

    @ParameterizedTest
    @MethodSource("formats")
    void randomOperationsAgreeWithAReferenceModel(PtFormat fmt) throws Exception {
        for (long seed = 1; seed <= 3; seed++) {
            runModel(fmt, seed, 3400);
        }
    }

    private void runModel(PtFormat fmt, long seed, int ops) throws Exception {
        if (pt != null) {
            gather.sync();
            pt.destroy();
        }
        open(fmt);
        Random rnd = new Random(seed * 31 + fmt.name().hashCode());
        List<Integer> sizes = sizes(fmt);
        int min = minLg2(fmt);
        // a window that holds several of the larger pages, so operations collide
        int windowLg2 = Math.min(Math.min(63 - Long.numberOfLeadingZeros(vaLimit(fmt)), fmt.oaBits()) - 1,
                Math.max(min + 12, Math.min(sizes.get(sizes.size() - 1), 31) + 3));
        long window = 1L << windowLg2;
        TreeMap<Long, Leaf> model = new TreeMap<>(Long::compareUnsigned);
        List<String> log = new ArrayList<>();
        for (int op = 0; op < ops; op++) {
            int what = rnd.nextInt(10);
            int unit = sizes.get(rnd.nextInt(sizes.size()));
            if (unit >= windowLg2) {
                unit = min;
            }
            long va = Bits.alignDown(Math.floorMod(rnd.nextLong(), window), unit);
            String step;
            try {
                if (what < 5) {
                    long wanted = ((long) (1 + rnd.nextInt(4)) << unit)
                            + (rnd.nextBoolean() ? (long) rnd.nextInt(8) << min : 0);
                    boolean sameAlignment = rnd.nextInt(3) != 0;
                    // an output address aligned unlike the iova forces small pages: keep such maps short
                    long len = Math.min(sameAlignment ? wanted : (long) (1 + rnd.nextInt(16)) << min, window - va);
                    long oaPick = sameAlignment ? va ^ (long) rnd.nextInt(4) << 32 & (window - 1)
                            : Bits.alignDown(Math.floorMod(rnd.nextLong(), window), min);
                    long oa = Bits.alignDown(Math.min(oaPick, oaLimit(fmt) - len), min);
                    if (len <= 0) {
                        continue;
                    }
                    step = "map " + Bits.hex(va) + " -> " + Bits.hex(oa) + " +" + Bits.hex(len);
                    log.add(step);
                    boolean overlaps = false;
                    Map.Entry<Long, Leaf> below = model.floorEntry(va + len - 1);
                    while (below != null && Long.compareUnsigned(below.getValue().start + below.getValue().size, va) > 0) {
                        overlaps = true;
                        break;
                    }
                    if (overlaps) {
                        assertThatThrownBy(() -> pt.map(va, oa, len, RW, gather)).as(step)
                                .isInstanceOf(PageTableException.class)
                                .satisfies(e -> assertThat(((PageTableException) e).kind())
                                        .isEqualTo(PageTableException.Kind.ADDRESS_IN_USE));
                    } else {
                        pt.map(va, oa, len, RW, gather);
                        long done = 0;
                        for (String leaf : expectedLeaves(fmt.pageSizes(), va, oa, len)) {
                            int lg2 = Integer.parseInt(leaf.substring(0, leaf.indexOf('@')));
                            model.put(va + done, new Leaf(va + done, 1L << lg2, oa + done));
                            done += 1L << lg2;
                        }
                    }
                } else if (what < 8) {
                    long len = Math.min((long) (1 + rnd.nextInt(4)) << unit, window - va);
                    step = "unmap " + Bits.hex(va) + " +" + Bits.hex(len);
                    log.add(step);
                    Map.Entry<Long, Leaf> covering = model.floorEntry(va);
                    boolean split = covering != null && covering.getValue().start != va
                            && Long.compareUnsigned(covering.getValue().start + covering.getValue().size, va) > 0;
                    if (split) {
                        assertThatThrownBy(() -> pt.unmap(va, len, gather)).as(step)
                                .isInstanceOf(PageTableException.class)
                                .satisfies(e -> assertThat(((PageTableException) e).kind())
                                        .isEqualTo(PageTableException.Kind.UNMAP_SPLIT));
                    } else {
                        long expected = 0;
                        for (Leaf l : new ArrayList<>(model.subMap(va, true, va + len - 1, true).values())) {
                            expected += l.size;
                            model.remove(l.start);
                        }
                        assertThat(pt.unmap(va, len, gather)).as(step).isEqualTo(expected);
                    }
                } else {
                    long probe = va + (Math.floorMod(rnd.nextLong(), 1L << unit) & -8L);
                    step = "translate " + Bits.hex(probe);
                    Map.Entry<Long, Leaf> e = model.floorEntry(probe);
                    long expected = e != null && Long.compareUnsigned(probe - e.getValue().start, e.getValue().size) < 0
                            ? e.getValue().oa + (probe - e.getValue().start) : PageTable.NO_MAPPING;
                    assertThat(pt.iovaToPhys(probe)).as(step).isEqualTo(expected);
                }
            } catch (AssertionError | PageTableException e) {
                throw new AssertionError(fmt.name() + " seed " + seed + " op " + op + " after "
                        + log.subList(Math.max(0, log.size() - 12), log.size()) + ": " + e.getMessage(), e);
            }
        }
        for (Leaf l : model.values()) {
            assertThat(pt.iovaToPhys(l.start + l.size - 1)).as("%s seed %d: final check", fmt.name(), seed)
                    .isEqualTo(l.oa + l.size - 1);
        }
    }

    // ------------------------------------------------------------------ concurrency

    @ParameterizedTest
    @MethodSource("formats")
    void eightThreadsMappingDisjointRangesUnderSharedTables(PtFormat fmt) throws Exception {
        int threads = 8;
        int min = minLg2(fmt);
        for (int round = 0; round < 8; round++) {
            if (pt != null) {
                gather.sync();
                pt.destroy();
                assertThat(alloc.allocatedPages(PageTable.TAG)).isZero();
            }
            open(fmt);
            long spread = Math.min(vaLimit(fmt), oaLimit(fmt)) / 8;
            CyclicBarrier start = new CyclicBarrier(threads);
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<?>> done = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int id = t;
                    done.add(pool.submit(() -> {
                        IotlbGather g = new IotlbGather(x -> { }, alloc);
                        start.await();
                        for (int i = 0; i < 48; i++) {
                            long iova = (((long) i * threads + id) << min) + (i % 3) * Bits.alignDown(spread, min);
                            pt.map(iova, iova, 1L << min, RW, g);
                        }
                        g.sync();
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
                for (int i = 0; i < 48; i++) {
                    long iova = (((long) i * threads + t) << min) + (i % 3) * Bits.alignDown(spread, min);
                    assertThat(pt.iovaToPhys(iova)).as("round %d thread %d page %d", round, t, i).isEqualTo(iova);
                }
            }
        }
    }
}
