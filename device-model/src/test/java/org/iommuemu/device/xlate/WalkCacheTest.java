package org.iommuemu.device.xlate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;

class WalkCacheTest {
    /** 4 KB granule, 4 levels: table descriptors at levels 3, 2, 1 lead to tables spanning 512G, 1G, 2M. */
    private static final int SPAN_L1 = 21;
    private static final int SPAN_L2 = 30;
    private static final int SPAN_L3 = 39;
    private static final long SPANS_4K = (1L << SPAN_L1) | (1L << SPAN_L2) | (1L << SPAN_L3);

    private final WalkEntry out = new WalkEntry();

    private static void table(WalkCache cache, int vmid, int asid, int stage, int spanLg2, long va) {
        int level = spanLg2 == SPAN_L1 ? 1 : spanLg2 == SPAN_L2 ? 2 : 3;
        cache.insert(vmid, asid, stage, level, spanLg2, va, 0x8000_0003L + ((long) spanLg2 << 12));
    }

    private static List<String> keys(WalkCache cache) {
        List<String> keys = new ArrayList<>();
        for (WalkEntry e : cache.entries()) {
            keys.add(e.vmid() + "/" + e.asid() + "/" + Stage.toString(e.stage()) + "/" + Long.toHexString(e.va()) + "/"
                    + e.spanLg2());
        }
        return keys;
    }

    @Test
    void findsTheDescriptorOfTheRegionContainingTheAddress() {
        WalkCache cache = new WalkCache(8);
        cache.insert(1, 2, Stage.S1, 1, SPAN_L1, 0x4020_1234L, 0xAAAA_0003L);
        assertThat(cache.lookup(1, 2, Stage.S1, SPAN_L1, 0x403F_FFFFL, out)).isTrue();
        assertThat(out.descriptor()).isEqualTo(0xAAAA_0003L);
        assertThat(out.va()).isEqualTo(0x4020_0000L);
        assertThat(out.level()).isEqualTo(1);
        assertThat(out.spanLg2()).isEqualTo(SPAN_L1);
        assertThat(out.stage()).isEqualTo(Stage.S1);
        assertThat(cache.lookup(1, 2, Stage.S1, SPAN_L1, 0x4040_0000L, out)).as("next region").isFalse();
        assertThat(cache.lookup(1, 3, Stage.S1, SPAN_L1, 0x4020_0000L, out)).as("other ASID").isFalse();
        assertThat(cache.lookup(2, 2, Stage.S1, SPAN_L1, 0x4020_0000L, out)).as("other VMID").isFalse();
        assertThat(cache.lookup(1, 2, Stage.S2, SPAN_L1, 0x4020_0000L, out)).as("other stage").isFalse();
        assertThat(cache.lookup(1, 2, Stage.S1, SPAN_L2, 0x4020_0000L, out)).as("other span").isFalse();
        assertThat(cache.lookup(1, 2, Stage.S1, 5, 0x4020_0000L, out)).as("bad span").isFalse();
        assertThat(cache.stats().hits()).isEqualTo(1);
        assertThat(cache.stats().misses()).isEqualTo(6);
    }

    @Test
    void lookupDeepestReturnsTheDescriptorClosestToTheLeaf() {
        WalkCache cache = new WalkCache(8);
        table(cache, 1, 2, Stage.S1, SPAN_L3, 0);
        table(cache, 1, 2, Stage.S1, SPAN_L2, 0x4000_0000L);
        assertThat(cache.lookupDeepest(1, 2, Stage.S1, 0x4020_0000L, SPANS_4K, out)).isTrue();
        assertThat(out.spanLg2()).isEqualTo(SPAN_L2);
        table(cache, 1, 2, Stage.S1, SPAN_L1, 0x4020_0000L);
        assertThat(cache.lookupDeepest(1, 2, Stage.S1, 0x4020_0000L, SPANS_4K, out)).isTrue();
        assertThat(out.spanLg2()).isEqualTo(SPAN_L1);
        assertThat(out.level()).isEqualTo(1);
        assertThat(cache.lookupDeepest(1, 2, Stage.S1, 0x8000_0000L, SPANS_4K, out)).isTrue();
        assertThat(out.spanLg2()).isEqualTo(SPAN_L3);
        // spans outside the caller's geometry are not probed
        assertThat(cache.lookupDeepest(1, 2, Stage.S1, 0x4020_0000L, 1L << SPAN_L3, out)).isTrue();
        assertThat(out.spanLg2()).isEqualTo(SPAN_L3);
        assertThat(cache.lookupDeepest(1, 2, Stage.S1, 0x4020_0000L, 1L << 25, out)).isFalse();
        assertThat(cache.lookupDeepest(1, 2, Stage.S1, 0x80_0000_0000L, SPANS_4K, out)).isFalse();
    }

    @Test
    void evictsTheLeastRecentlyUsed() {
        WalkCache cache = new WalkCache(2);
        table(cache, 0, 0, Stage.S1, SPAN_L1, 0);
        table(cache, 0, 0, Stage.S1, SPAN_L1, 0x20_0000);
        assertThat(cache.lookup(0, 0, Stage.S1, SPAN_L1, 0, out)).isTrue();
        table(cache, 0, 0, Stage.S1, SPAN_L1, 0x40_0000);
        assertThat(keys(cache)).containsExactly("0/0/S1/400000/21", "0/0/S1/0/21");
        table(cache, 0, 0, Stage.S1, SPAN_L1, 0x40_0000); // replaces, no eviction
        assertThat(cache.stats().evictions()).isEqualTo(1);
        assertThat(cache.stats().inserts()).isEqualTo(4);
    }

    @Test
    void invalidationsByContext() {
        WalkCache cache = new WalkCache(16);
        table(cache, 1, 1, Stage.S1, SPAN_L1, 0);
        table(cache, 1, 2, Stage.S1, SPAN_L1, 0);
        table(cache, 1, -1, Stage.S2, SPAN_L1, 0);
        table(cache, 2, 1, Stage.S1, SPAN_L1, 0);
        assertThat(cache.invalidateAsid(1, 1)).isEqualTo(1);
        assertThat(cache.invalidateAsid(1, -1)).as("stage 2 entries are not an ASID's").isZero();
        assertThat(cache.invalidateVmid(1, Stage.S1)).isEqualTo(1);
        assertThat(keys(cache)).containsExactlyInAnyOrder("1/-1/S2/0/21", "2/1/S1/0/21");
        assertThat(cache.invalidateVmid(1, Stage.ALL)).isEqualTo(1);
        assertThat(cache.invalidateAll()).isEqualTo(1);
        assertThat(cache.size()).isZero();
        assertThat(cache.stats().invalidated()).isEqualTo(4);
        assertThat(cache.stats().invalidations()).isEqualTo(5);
    }

    @Test
    void rangeInvalidationRemovesTheRegionsThatOverlap() {
        WalkCache cache = new WalkCache(32);
        table(cache, 1, 1, Stage.S1, SPAN_L1, 0x0);
        table(cache, 1, 1, Stage.S1, SPAN_L1, 0x20_0000);
        table(cache, 1, 1, Stage.S1, SPAN_L1, 0x40_0000);
        table(cache, 1, 1, Stage.S1, SPAN_L2, 0x0);
        table(cache, 1, 1, Stage.S1, SPAN_L2, 0x4000_0000L);
        table(cache, 1, 2, Stage.S1, SPAN_L1, 0x20_0000);
        table(cache, 1, -1, Stage.S2, SPAN_L1, 0x20_0000);
        // one page in the second 2M region: that region and the 1G region above it go
        assertThat(cache.invalidateRange(1, 1, Stage.S1, 0x3F_F000, 0x1000)).isEqualTo(2);
        assertThat(keys(cache)).containsExactlyInAnyOrder("1/1/S1/0/21", "1/1/S1/400000/21", "1/1/S1/40000000/30",
                "1/2/S1/200000/21", "1/-1/S2/200000/21");
        // a range ending on the last byte of the first region leaves the next one
        assertThat(cache.invalidateRange(1, 1, Stage.S1, 0x1F_FFFF, 1)).isEqualTo(1);
        assertThat(cache.invalidateRange(1, 1, Stage.S1, 0x3F_FFFF, 1)).isZero();
        // every ASID (TLBI_NH_VAA) leaves stage 2
        assertThat(cache.invalidateRange(1, WalkCache.ANY_ASID, Stage.S1, 0x20_0000, 0x40_0000)).isEqualTo(2);
        assertThat(keys(cache)).containsExactlyInAnyOrder("1/1/S1/40000000/30", "1/-1/S2/200000/21");
        // by IPA
        assertThat(cache.invalidateRange(1, -1, Stage.S2, 0x20_0000, 0x1000)).isEqualTo(1);
        assertThat(cache.invalidateRange(1, 1, Stage.S1, 0x4000_0000L, 0)).as("empty").isZero();
        // a huge range scans
        assertThat(cache.invalidateRange(1, 1, Stage.S1, 0, -1L)).isEqualTo(1);
        assertThat(cache.size()).isZero();
    }

    @Test
    void aWalkThatRacedAnInvalidationIsNotCached() {
        WalkCache cache = new WalkCache(4);
        long epoch = cache.epoch();
        cache.invalidateAsid(0, 0);
        assertThat(cache.insert(0, 0, Stage.S1, 1, SPAN_L1, 0, 0x1003, epoch)).isFalse();
        assertThat(cache.insert(0, 0, Stage.S1, 1, SPAN_L1, 0, 0x1003, cache.epoch())).isTrue();
        assertThat(cache.stats().staleInserts()).isEqualTo(1);
        assertThat(cache.size()).isEqualTo(1);
    }

    @Test
    void rejectsMalformedEntries() {
        WalkCache cache = new WalkCache(4);
        assertThatThrownBy(() -> cache.insert(0, 0, Stage.NESTED, 1, SPAN_L1, 0, 1)).hasMessageContaining("stage");
        assertThatThrownBy(() -> cache.insert(0, 3, Stage.S2, 1, SPAN_L1, 0, 1)).hasMessageContaining("ASID");
        assertThatThrownBy(() -> cache.insert(0, -2, Stage.S1, 1, SPAN_L1, 0, 1)).hasMessageContaining("asid");
        assertThatThrownBy(() -> cache.insert(0, 0, Stage.S1, 8, SPAN_L1, 0, 1)).hasMessageContaining("level");
        assertThatThrownBy(() -> cache.insert(0, 0, Stage.S1, 1, 11, 0, 1)).hasMessageContaining("span");
        assertThat(cache.toString()).contains("0/4");
    }

    // ---- model-based ----

    private record Ref(int vmid, int asid, int stage, int level, int spanLg2, long va, long descriptor) {
        boolean sameKey(int vmid, int asid, int stage, int spanLg2, long va) {
            return this.vmid == vmid && this.asid == asid && this.stage == stage && this.spanLg2 == spanLg2
                    && this.va == (va & -(1L << spanLg2));
        }
    }

    @Test
    void agreesWithAListModelUnderRandomOperations() {
        int[] spans = {SPAN_L1, SPAN_L2, 25, 36};
        for (long seed = 200; seed < 206; seed++) {
            Random r = new Random(seed);
            int capacity = seed % 2 == 0 ? 64 : 1 + r.nextInt(20);
            WalkCache cache = new WalkCache(capacity);
            List<Ref> model = new ArrayList<>(); // most recently used first
            for (int step = 0; step < 5000; step++) {
                String where = "seed " + seed + " step " + step;
                int vmid = r.nextInt(3) - 1;
                int stage = r.nextBoolean() ? Stage.S1 : Stage.S2;
                int asid = stage == Stage.S2 ? -1 : r.nextInt(3) - 1;
                int span = spans[r.nextInt(spans.length)];
                long va = ((long) r.nextInt(64) << 21) + (r.nextInt(4) == 0 ? 0xFFFF_FF00_0000_0000L : 0)
                        + r.nextInt(1 << 21);
                int op = r.nextInt(100);
                if (op < 40) {
                    long desc = r.nextLong();
                    int level = r.nextInt(4);
                    cache.insert(vmid, asid, stage, level, span, va, desc);
                    for (int i = 0; i < model.size(); i++) {
                        if (model.get(i).sameKey(vmid, asid, stage, span, va)) {
                            model.remove(i);
                            break;
                        }
                    }
                    if (model.size() == capacity) {
                        model.remove(model.size() - 1);
                    }
                    model.add(0, new Ref(vmid, asid, stage, level, span, va & -(1L << span), desc));
                } else if (op < 75) {
                    long mask = r.nextInt(3) == 0 ? -1L : 1L << spans[r.nextInt(spans.length)];
                    Ref expected = null;
                    for (Ref x : model) {
                        boolean inMask = (mask & (1L << x.spanLg2)) != 0;
                        if (inMask && x.sameKey(vmid, asid, stage, x.spanLg2, va)
                                && (expected == null || x.spanLg2 < expected.spanLg2)) {
                            expected = x;
                        }
                    }
                    if (expected != null) {
                        model.remove(expected);
                        model.add(0, expected);
                    }
                    boolean found = cache.lookupDeepest(vmid, asid, stage, va, mask, out);
                    assertThat(found).as(where).isEqualTo(expected != null);
                    if (found) {
                        assertThat(new Ref(out.vmid(), out.asid(), out.stage(), out.level(), out.spanLg2(), out.va(),
                                out.descriptor())).as(where).isEqualTo(expected);
                    }
                } else {
                    int removed;
                    Predicate<Ref> p;
                    int stages = 1 + r.nextInt(3);
                    switch (op % 4) {
                        case 0 -> {
                            p = x -> x.vmid == vmid && (x.stage & stages) != 0;
                            removed = cache.invalidateVmid(vmid, stages);
                        }
                        case 1 -> {
                            p = x -> x.vmid == vmid && x.asid == asid && x.stage == Stage.S1;
                            removed = cache.invalidateAsid(vmid, asid);
                        }
                        default -> {
                            int a = r.nextInt(4) == 0 ? WalkCache.ANY_ASID : asid;
                            long length = r.nextBoolean() ? 1 + r.nextInt(1 << 22) : r.nextLong() >>> r.nextInt(64);
                            long last = va + length - 1;
                            long clamped = Long.compareUnsigned(last, va) < 0 ? -1L : last;
                            p = x -> length != 0 && x.vmid == vmid && (a == WalkCache.ANY_ASID || x.asid == a)
                                    && (x.stage & stages) != 0 && Long.compareUnsigned(x.va, clamped) <= 0
                                    && Long.compareUnsigned(x.va + ((1L << x.spanLg2) - 1), va) >= 0;
                            removed = cache.invalidateRange(vmid, a, stages, va, length);
                        }
                    }
                    int before = model.size();
                    model.removeIf(p);
                    assertThat(removed).as(where + " op " + op).isEqualTo(before - model.size());
                }
                if (step % 8 == 0) {
                    List<WalkEntry> actual = cache.entries();
                    assertThat(actual).as(where).hasSize(model.size());
                    for (int i = 0; i < actual.size(); i++) {
                        WalkEntry e = actual.get(i);
                        assertThat(new Ref(e.vmid(), e.asid(), e.stage(), e.level(), e.spanLg2(), e.va(),
                                e.descriptor())).as(where + " entry " + i).isEqualTo(model.get(i));
                    }
                }
            }
        }
    }
}
