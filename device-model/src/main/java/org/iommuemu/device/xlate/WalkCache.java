package org.iommuemu.device.xlate;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The walk cache (Arm "intermediate table walk cache", VT-d "paging-structure caches"): non-leaf table
 * descriptors read by earlier walks, so that a walk can resume close to the leaf. Like every cache here it
 * is real: an entry stays until invalidated or evicted, and nothing re-reads memory to stay coherent.
 *
 * <p><b>Keys.</b> A context tag (VMID / domain id, ASID / PASID or -1, {@link Stage#S1} or {@link Stage#S2})
 * plus the input region the descriptor covers: {@code spanLg2} and the region base (the input address
 * aligned down to {@code 2^spanLg2}). The region is the reach of the next-level table the descriptor points
 * to, so one context's levels have distinct spans; the level is stored with the entry and returned. Stage 2
 * entries (including the stage 2 walks of a nested translation, keyed by IPA) have ASID -1. Spans are
 * 2^12..2^63.
 *
 * <p><b>Lookup.</b> {@link #lookup} probes one (context, span, address); {@link #lookupDeepest} probes the
 * spans the caller's table geometry uses, smallest (deepest) first, and returns the deepest cached
 * descriptor: one hash probe per span, no scan. Hits make the entry most recently used.
 *
 * <p><b>Storage</b> as {@link Iotlb}: primitive arrays, open addressing with backward-shift deletion, an
 * intrusive LRU list; full inserts evict the least recently used entry; nothing on the lookup, insert or
 * invalidation paths allocates.
 *
 * <p><b>Invalidation</b> (each returns and counts the entries removed):
 * <ul>
 *   <li>{@link #invalidateAll()}: TLBI_NSNH_ALL; VT-d global IOTLB invalidation.
 *   <li>{@link #invalidateVmid(int, int)}: TLBI_S12_VMALL ({@link Stage#ALL}), TLBI_NH_ALL ({@link Stage#S1});
 *       VT-d domain-selective.
 *   <li>{@link #invalidateAsid(int, int)}: TLBI_NH_ASID; VT-d PASID-selective.
 *   <li>{@link #invalidateRange}: entries of a context whose region overlaps a range: TLBI_NH_VA/VAA and
 *       TLBI_S2_IPA with Leaf=0 (spec SMMUV3.md §7: Leaf=1 promises that only leaf entries changed, so the
 *       walk cache keeps its entries); VT-d page-selective with IH=0. The TTL level hint names the level of
 *       the leaf, so it does not restrict which table descriptors above it go.
 * </ul>
 *
 * <p><b>Thread-safety</b> as {@link Iotlb}: one monitor per cache; an invalidation that returned hides its
 * entries from every later lookup; walks insert with the {@link #epoch()} they started with.
 */
public final class WalkCache extends LruCache {
    /** The ASID argument of {@link #invalidateRange} that matches every ASID (TLBI_NH_VAA). */
    public static final int ANY_ASID = -2;
    /** The smallest span. */
    public static final int MIN_SPAN_LG2 = 12;

    private static final int NONE = LruIndex.NONE;

    private final long[] descriptor;
    private final byte[] level;
    private final int[] spanCount = new int[64];
    private long spanMask;

    /** A cache of {@code capacity} entries (1..2^28). */
    public WalkCache(int capacity) {
        super(capacity);
        descriptor = new long[capacity];
        level = new byte[capacity];
    }

    public int size() {
        synchronized (lock) {
            return index.size();
        }
    }

    /** Changes whenever an invalidation runs; see {@link #insert(int, int, int, int, int, long, long, long)}. */
    public long epoch() {
        return epoch;
    }

    /**
     * The descriptor cached for the region of {@code 2^spanLg2} containing {@code va} in a context.
     *
     * @return whether one was found (then copied into {@code out})
     */
    public boolean lookup(int vmid, int asid, int stage, int spanLg2, long va, WalkEntry out) {
        synchronized (lock) {
            if (spanLg2 < MIN_SPAN_LG2 || spanLg2 > 63 || (spanMask & (1L << spanLg2)) == 0) {
                misses++;
                return false;
            }
            int slot = index.find(key0(stage, spanLg2, va), key1(vmid, asid));
            return hit(slot, va, out);
        }
    }

    /**
     * The deepest cached descriptor for {@code va} in a context: probes the spans in {@code spans} (bit n set:
     * span 2^n, the spans the context's table geometry uses) from the smallest up.
     *
     * @return whether one was found (then copied into {@code out})
     */
    public boolean lookupDeepest(int vmid, int asid, int stage, long va, long spans, WalkEntry out) {
        synchronized (lock) {
            long k1 = key1(vmid, asid);
            for (long m = spanMask & spans; m != 0; m &= m - 1) {
                int s = Long.numberOfTrailingZeros(m);
                int slot = index.find(key0(stage, s, va), k1);
                if (slot != NONE) {
                    return hit(slot, va, out);
                }
            }
            misses++;
            return false;
        }
    }

    /**
     * Every level of one walk at once: probes each span in {@code spans} (bit n set: span 2^n) for {@code va} in
     * a context, under one acquisition of the monitor, and copies each hit's descriptor to
     * {@code descriptors[span]}. Each probe counts as a hit or a miss, as {@link #lookup} would.
     *
     * @param descriptors 64 entries, indexed by span; entries for spans that missed are left alone
     * @return the spans that hit (bit n: span 2^n)
     */
    public long lookupEach(int vmid, int asid, int stage, long va, long spans, long[] descriptors) {
        synchronized (lock) {
            long probe = spans & -(1L << MIN_SPAN_LG2);
            long hitMask = 0;
            long k1 = key1(vmid, asid);
            for (long m = probe & spanMask; m != 0; m &= m - 1) {
                int s = Long.numberOfTrailingZeros(m);
                int slot = index.find(key0(stage, s, va), k1);
                HitEviction ev = slot == NONE ? null : hitEviction;
                if (ev != null && ev.evict(va)) {
                    evictAtHit(slot);
                    misses--; // counted with the other misses below
                } else if (slot != NONE) {
                    index.touch(slot);
                    descriptors[s] = descriptor[slot];
                    hitMask |= 1L << s;
                }
            }
            int h = Long.bitCount(hitMask);
            hits += h;
            misses += Long.bitCount(probe) - h;
            return hitMask;
        }
    }

    /**
     * Several levels of one walk at once, under one acquisition of the monitor, unless an invalidation ran since
     * {@link #epoch()} returned {@code epoch}: for each span in {@code spans}, caches {@code descriptors[span]}
     * at level {@code levels[span]}, as {@link #insert(int, int, int, int, int, long, long, long)} would.
     *
     * @return whether the entries were cached
     * @throws IllegalArgumentException as {@link #insert(int, int, int, int, int, long, long)}
     */
    public boolean insertEach(int vmid, int asid, int stage, long va, long spans, long[] descriptors,
            byte[] levels, long epoch) {
        for (long m = spans; m != 0; m &= m - 1) {
            int s = Long.numberOfTrailingZeros(m);
            check(vmid, asid, stage, levels[s], s);
        }
        synchronized (lock) {
            if (this.epoch != epoch) {
                staleInserts += Long.bitCount(spans);
                return false;
            }
            for (long m = spans; m != 0; m &= m - 1) {
                int s = Long.numberOfTrailingZeros(m);
                store(vmid, asid, stage, levels[s], s, va, descriptors[s]);
            }
            return true;
        }
    }

    /**
     * Caches a table descriptor, replacing one with the same key, else evicting the least recently used entry
     * when full.
     *
     * @param level      the level of the table holding the descriptor (0..7)
     * @param spanLg2    log2 of the region its next-level table translates (12..63)
     * @param va         an input address in the region (aligned down here)
     * @throws IllegalArgumentException for a stage other than S1 / S2, a stage 2 entry with an ASID, VMID or
     *     ASID below -1, a level or span out of range
     */
    public void insert(int vmid, int asid, int stage, int level, int spanLg2, long va, long descriptor) {
        check(vmid, asid, stage, level, spanLg2);
        synchronized (lock) {
            store(vmid, asid, stage, level, spanLg2, va, descriptor);
        }
    }

    /**
     * As {@link #insert(int, int, int, int, int, long, long)}, unless an invalidation ran since
     * {@link #epoch()} returned {@code epoch}.
     *
     * @return whether the entry was cached
     */
    public boolean insert(int vmid, int asid, int stage, int level, int spanLg2, long va, long descriptor,
            long epoch) {
        check(vmid, asid, stage, level, spanLg2);
        synchronized (lock) {
            if (this.epoch != epoch) {
                staleInserts++;
                return false;
            }
            store(vmid, asid, stage, level, spanLg2, va, descriptor);
            return true;
        }
    }

    /** Removes every entry. */
    public int invalidateAll() {
        synchronized (lock) {
            int n = index.size();
            index.clear();
            Arrays.fill(spanCount, 0);
            spanMask = 0;
            return invalidated(n);
        }
    }

    /** Removes the entries of {@code vmid} whose stage is in {@code stages} ({@link Stage} bits). */
    public int invalidateVmid(int vmid, int stages) {
        synchronized (lock) {
            int removed = 0;
            for (int slot = 0, n = index.capacity(); slot < n; slot++) {
                if (index.inUse(slot) && vmidOf(slot) == vmid && (stageOf(slot) & stages) != 0) {
                    removeSlot(slot);
                    removed++;
                }
            }
            return invalidated(removed);
        }
    }

    /** Removes the stage 1 entries of one ASID / PASID of {@code vmid}. */
    public int invalidateAsid(int vmid, int asid) {
        synchronized (lock) {
            int removed = 0;
            for (int slot = 0, n = index.capacity(); slot < n; slot++) {
                if (index.inUse(slot) && index.key1(slot) == key1(vmid, asid) && stageOf(slot) == Stage.S1) {
                    removeSlot(slot);
                    removed++;
                }
            }
            return invalidated(removed);
        }
    }

    /**
     * Removes the entries of {@code vmid} whose region overlaps {@code [start, start + length)} (unsigned,
     * clamped at the top of the address space; length 0 removes nothing).
     *
     * @param asid   one ASID / PASID, -1 for the stage 2 entries, or {@link #ANY_ASID}
     * @param stages {@link Stage} bits: {@link Stage#S1} for TLBI by VA, {@link Stage#S2} for TLBI by IPA
     */
    public int invalidateRange(int vmid, int asid, int stages, long start, long length) {
        synchronized (lock) {
            if (length == 0 || index.size() == 0) {
                return invalidated(0);
            }
            long last = start + length - 1;
            if (Long.compareUnsigned(last, start) < 0) {
                last = -1L;
            }
            return invalidated(asid == ANY_ASID ? scanRange(vmid, asid, stages, start, last)
                    : probeOrScanRange(vmid, asid, stages, start, last));
        }
    }

    /** The counters, consistent with each other. */
    public CacheStats stats() {
        synchronized (lock) {
            return new CacheStats(index.limit(), index.size(), hits, misses, inserts, staleInserts, evictions,
                    invalidated, invalidations);
        }
    }

    /** A copy of every entry, most recently used first. Allocates; for diagnostics and tests. */
    public List<WalkEntry> entries() {
        synchronized (lock) {
            List<WalkEntry> list = new ArrayList<>(index.size());
            for (int s = index.mostRecent(); s != NONE; s = index.older(s)) {
                WalkEntry e = new WalkEntry();
                copy(s, e);
                list.add(e);
            }
            return list;
        }
    }

    @Override
    public String toString() {
        CacheStats st = stats();
        return "WalkCache[" + st.entries() + "/" + st.capacity() + " hits=" + st.hits() + " misses=" + st.misses()
                + "]";
    }

    // ---- internals; called under the lock ----

    private static void check(int vmid, int asid, int stage, int level, int spanLg2) {
        if (stage != Stage.S1 && stage != Stage.S2) {
            throw new IllegalArgumentException("walk-cache stage must be S1 or S2: " + stage);
        }
        if (vmid < -1 || asid < -1) {
            throw new IllegalArgumentException("vmid and asid must be >= -1: " + vmid + ", " + asid);
        }
        if (stage == Stage.S2 && asid != -1) {
            throw new IllegalArgumentException("a stage 2 walk-cache entry has no ASID: " + asid);
        }
        if (level < 0 || level > Iotlb.MAX_LEVEL) {
            throw new IllegalArgumentException("level must be 0.." + Iotlb.MAX_LEVEL + ": " + level);
        }
        if (spanLg2 < MIN_SPAN_LG2 || spanLg2 > 63) {
            throw new IllegalArgumentException("span must be 2^12..2^63: 2^" + spanLg2);
        }
    }

    private boolean hit(int slot, long va, WalkEntry out) {
        if (slot == NONE) {
            misses++;
            return false;
        }
        HitEviction ev = hitEviction;
        if (ev != null && ev.evict(va)) {
            evictAtHit(slot);
            return false;
        }
        index.touch(slot);
        hits++;
        copy(slot, out);
        return true;
    }

    private void store(int vmid, int asid, int stage, int lvl, int spanLg2, long va, long desc) {
        long k0 = key0(stage, spanLg2, va);
        long k1 = key1(vmid, asid);
        int slot = index.find(k0, k1);
        if (slot == NONE) {
            if (index.isFull()) {
                removeSlot(index.leastRecent());
                evictions++;
            }
            slot = index.add(k0, k1);
            if (spanCount[spanLg2]++ == 0) {
                spanMask |= 1L << spanLg2;
            }
        } else {
            index.touch(slot);
        }
        descriptor[slot] = desc;
        level[slot] = (byte) lvl;
        inserts++;
    }

    private void copy(int slot, WalkEntry out) {
        long k0 = index.key0(slot);
        long k1 = index.key1(slot);
        out.set((int) (k1 >> 32), (int) k1, stageOf(slot), level[slot], (int) (k0 & 63), k0 & ~0xFFFL,
                descriptor[slot]);
    }

    @Override
    void removeSlot(int slot) {
        int s = (int) (index.key0(slot) & 63);
        if (--spanCount[s] == 0) {
            spanMask &= ~(1L << s);
        }
        index.remove(slot);
    }

    private int invalidated(int n) {
        invalidated += n;
        invalidations++;
        epoch++; // volatile write: single writer under the lock
        return n;
    }

    /** Probes each (stage, span, region) key that meets the range when that is cheaper than a scan. */
    private int probeOrScanRange(int vmid, int asid, int stages, long first, long last) {
        long budget = index.capacity() / 8 + 8;
        long probes = 0;
        int stageKinds = Integer.bitCount(stages & (Stage.S1 | Stage.S2));
        for (long m = spanMask; m != 0 && probes <= budget; m &= m - 1) {
            int s = Long.numberOfTrailingZeros(m);
            probes += ((last >>> s) - (first >>> s) + 1) * stageKinds;
        }
        if (probes > budget) {
            return scanRange(vmid, asid, stages, first, last);
        }
        long k1 = key1(vmid, asid);
        int removed = 0;
        for (int stage = Stage.S1; stage <= Stage.S2; stage <<= 1) {
            if ((stages & stage) == 0) {
                continue;
            }
            for (long m = spanMask; m != 0; m &= m - 1) {
                int s = Long.numberOfTrailingZeros(m);
                long lastRegion = last >>> s;
                for (long region = first >>> s; ; region++) {
                    int slot = index.find(key0(stage, s, region << s), k1);
                    if (slot != NONE) {
                        removeSlot(slot);
                        removed++;
                    }
                    if (region == lastRegion) {
                        break;
                    }
                }
            }
        }
        return removed;
    }

    private int scanRange(int vmid, int asid, int stages, long first, long last) {
        int removed = 0;
        for (int slot = 0, n = index.capacity(); slot < n; slot++) {
            if (!index.inUse(slot)) {
                continue;
            }
            long k0 = index.key0(slot);
            long k1 = index.key1(slot);
            if ((int) (k1 >> 32) != vmid || (asid != ANY_ASID && (int) k1 != asid)
                    || (stageOf(slot) & stages) == 0) {
                continue;
            }
            long base = k0 & ~0xFFFL;
            int s = (int) (k0 & 63);
            long baseLast = base | (s == 63 ? Long.MAX_VALUE : (1L << s) - 1);
            if (Long.compareUnsigned(base, last) <= 0 && Long.compareUnsigned(baseLast, first) >= 0) {
                removeSlot(slot);
                removed++;
            }
        }
        return removed;
    }

    private int vmidOf(int slot) {
        return (int) (index.key1(slot) >> 32);
    }

    private int stageOf(int slot) {
        return (int) (index.key0(slot) >>> 6) & 3;
    }

    /** Region base | stage in bits 7:6 | span lg2 in bits 5:0 (the base is 4 KB aligned at least). */
    private static long key0(int stage, int spanLg2, long va) {
        return (va & -(1L << spanLg2)) | ((long) stage << 6) | spanLg2;
    }

    private static long key1(int vmid, int asid) {
        return ((long) vmid << 32) | (asid & 0xFFFF_FFFFL);
    }
}
