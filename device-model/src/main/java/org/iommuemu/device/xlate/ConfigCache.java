package org.iommuemu.device.xlate;

import java.util.Arrays;

/**
 * A cache of decoded configuration structures: SMMUv3 STEs (per stream id) and CDs (per stream id and
 * substream id); VT-d context entries (per source id) and PASID entries (per source id and PASID). A decoded
 * value stays cached until the driver invalidates it or capacity evicts it; the device never re-reads the
 * table to stay coherent, so a driver that edits an STE and forgets CFGI_STE keeps the old configuration,
 * as on hardware.
 *
 * <p><b>Keys.</b> (stream id, substream id), both ints; the substream id is {@link #NO_SUBSTREAM} (-1) for the
 * per-stream structure (STE, context entry). Stream ids are compared as unsigned 32-bit values. Each entry
 * also carries an int tag that invalidations can select on: the VT-d domain id (context- and PASID-cache
 * invalidations are domain-selective), or {@link #NO_TAG}. Values are the caller's objects (immutable
 * decoded records); a lookup returns the cached reference, so it allocates nothing and boxes nothing: keys
 * live in an open-addressing table of primitive slots.
 *
 * <p><b>Eviction</b>: least recently used first, through an intrusive LRU list; a hit makes its entry the
 * most recently used.
 *
 * <p><b>Invalidation</b> (each returns and counts the entries removed):
 * <ul>
 *   <li>{@link #invalidate(int, int)}: one entry: CMD_CFGI_CD (SID, SSID); with {@link #NO_SUBSTREAM}, the
 *       per-stream entry only.
 *   <li>{@link #invalidateStream(int)}: a stream's entries, substreams included: CMD_CFGI_STE. The STE is
 *       the root of its CDs, and a cached CD was found through the STE, so an STE invalidation drops the
 *       CDs cached under it (as QEMU's smmuv3, which caches one configuration per device).
 *   <li>{@link #invalidateSubstreams(int)}: every substream entry of a stream, not the stream entry:
 *       CMD_CFGI_CD_ALL.
 *   <li>{@link #invalidateStreamRange(int, int)}: the streams of an aligned block of {@code 2^lg2} ids:
 *       CMD_CFGI_STE_RANGE invalidates {@code 2^(Range+1)} stream ids aligned down ({@code lg2 = Range + 1},
 *       see {@link #steRangeLg2}); {@code lg2 >= 32} is every stream (CFGI_ALL, Range=31). Substreams go too.
 *   <li>{@link #invalidateStreamMasked(int, int)}: the streams equal to {@code sid} outside a mask: VT-d
 *       device-selective context-cache invalidation with a function mask (CCMD.FM / descriptor FM: FM=1
 *       ignores source-id bit 2, FM=2 bits 2:1, FM=3 bits 2:0).
 *   <li>{@link #invalidateTag(int)}: VT-d domain-selective context-cache or PASID-cache invalidation.
 *   <li>{@link #invalidateTagSubstream(int, int)}: VT-d PASID-selective PASID-cache invalidation (DID and
 *       PASID).
 *   <li>{@link #invalidateAll()}: CFGI_ALL; VT-d global context-/PASID-cache invalidation.
 * </ul>
 * Everything but the single-entry form scans the slots (O(capacity); configuration caches are small and
 * these commands rare next to lookups). A VT-d model that wants a context invalidation to leave PASID
 * entries cached (the architecture asks software for separate PASID-cache invalidation) keeps them in a
 * second instance.
 *
 * <p><b>Thread-safety</b> as {@link Iotlb}: one monitor per cache, short critical sections; an invalidation
 * that returned hides its entries from every later lookup; a fetch that raced with an invalidation inserts
 * with the {@link #epoch()} it started with and is dropped.
 *
 * @param <V> the decoded configuration type
 */
public final class ConfigCache<V> extends LruCache {
    /** The substream id of the per-stream entry (STE, context entry). */
    public static final int NO_SUBSTREAM = -1;
    /** The tag of an entry that no tag-selective invalidation selects by. */
    public static final int NO_TAG = -1;

    private static final int NONE = LruIndex.NONE;

    private final Object[] values;
    private final int[] tags;

    /** A cache of {@code capacity} entries (1..2^28). */
    public ConfigCache(int capacity) {
        super(capacity);
        values = new Object[capacity];
        tags = new int[capacity];
    }

    /** The {@code lg2} of {@link #invalidateStreamRange} for the Range field of CMD_CFGI_STE_RANGE. */
    public static int steRangeLg2(int range) {
        return (range & 31) + 1;
    }

    public int size() {
        synchronized (lock) {
            return index.size();
        }
    }

    /** Changes whenever an invalidation runs; see {@link #insert(int, int, int, Object, long)}. */
    public long epoch() {
        return epoch;
    }

    /**
     * The cached value for (sid, ssid), made most recently used, or null.
     *
     * @param ssid a substream id / PASID, or {@link #NO_SUBSTREAM}
     */
    public V lookup(int sid, int ssid) {
        synchronized (lock) {
            int slot = index.find(key0(sid), ssid);
            if (slot == NONE) {
                misses++;
                return null;
            }
            HitEviction ev = hitEviction;
            if (ev != null && ev.evict(sid & 0xFFFF_FFFFL)) {
                evictAtHit(slot);
                return null;
            }
            index.touch(slot);
            hits++;
            @SuppressWarnings("unchecked")
            V v = (V) values[slot];
            return v;
        }
    }

    /**
     * Caches {@code value} for (sid, ssid), replacing an entry with that key, else evicting the least recently
     * used entry when full.
     *
     * @param ssid  a substream id / PASID ({@code >= 0}), or {@link #NO_SUBSTREAM}
     * @param tag   what tag-selective invalidations select by (VT-d domain id), or {@link #NO_TAG}
     * @throws IllegalArgumentException if {@code ssid < -1}
     * @throws NullPointerException if {@code value} is null
     */
    public void insert(int sid, int ssid, int tag, V value) {
        check(ssid, value);
        synchronized (lock) {
            store(sid, ssid, tag, value);
        }
    }

    /**
     * As {@link #insert(int, int, int, Object)}, unless an invalidation ran since {@link #epoch()} returned
     * {@code epoch}: the fetch may have read a structure that invalidation was about.
     *
     * @return whether the value was cached
     */
    public boolean insert(int sid, int ssid, int tag, V value, long epoch) {
        check(ssid, value);
        synchronized (lock) {
            if (this.epoch != epoch) {
                staleInserts++;
                return false;
            }
            store(sid, ssid, tag, value);
            return true;
        }
    }

    /** Removes the entry (sid, ssid); {@code ssid} {@link #NO_SUBSTREAM} is the per-stream entry. */
    public int invalidate(int sid, int ssid) {
        synchronized (lock) {
            int slot = index.find(key0(sid), ssid);
            if (slot == NONE) {
                return invalidated(0);
            }
            removeSlot(slot);
            return invalidated(1);
        }
    }

    /** Removes every entry of stream {@code sid}, the per-stream one and its substreams (CMD_CFGI_STE). */
    public int invalidateStream(int sid) {
        return invalidateStreamMasked(sid, 0);
    }

    /** Removes the substream entries of stream {@code sid}, keeping the per-stream one (CMD_CFGI_CD_ALL). */
    public int invalidateSubstreams(int sid) {
        synchronized (lock) {
            int removed = 0;
            long k0 = key0(sid);
            for (int slot = 0, n = index.capacity(); slot < n; slot++) {
                if (index.inUse(slot) && index.key0(slot) == k0 && index.key1(slot) != NO_SUBSTREAM) {
                    removeSlot(slot);
                    removed++;
                }
            }
            return invalidated(removed);
        }
    }

    /**
     * Removes every entry (substreams included) of the streams in the block of {@code 2^lg2} stream ids that
     * contains {@code sid}, aligned down (CMD_CFGI_STE_RANGE with {@code lg2 = Range + 1}).
     *
     * @param lg2 0..32 and above (32 and above: every stream)
     */
    public int invalidateStreamRange(int sid, int lg2) {
        if (lg2 < 0) {
            throw new IllegalArgumentException("range lg2 must be >= 0: " + lg2);
        }
        return invalidateStreamMasked(sid, (int) ((1L << Math.min(lg2, 32)) - 1));
    }

    /**
     * Removes every entry (substreams included) of the streams whose id equals {@code sid} in the bits outside
     * {@code ignoredBits} (VT-d function mask: FM=1 is 0b100, FM=2 0b110, FM=3 0b111).
     */
    public int invalidateStreamMasked(int sid, int ignoredBits) {
        synchronized (lock) {
            int keep = ~ignoredBits;
            int removed = 0;
            for (int slot = 0, n = index.capacity(); slot < n; slot++) {
                if (index.inUse(slot) && (((int) index.key0(slot) ^ sid) & keep) == 0) {
                    removeSlot(slot);
                    removed++;
                }
            }
            return invalidated(removed);
        }
    }

    /** Removes every entry carrying {@code tag} (VT-d domain-selective context / PASID cache invalidation). */
    public int invalidateTag(int tag) {
        synchronized (lock) {
            int removed = 0;
            for (int slot = 0, n = index.capacity(); slot < n; slot++) {
                if (index.inUse(slot) && tags[slot] == tag) {
                    removeSlot(slot);
                    removed++;
                }
            }
            return invalidated(removed);
        }
    }

    /** Removes the entries of substream {@code ssid} that carry {@code tag}, in every stream (VT-d PASID-selective). */
    public int invalidateTagSubstream(int tag, int ssid) {
        synchronized (lock) {
            int removed = 0;
            for (int slot = 0, n = index.capacity(); slot < n; slot++) {
                if (index.inUse(slot) && tags[slot] == tag && index.key1(slot) == ssid) {
                    removeSlot(slot);
                    removed++;
                }
            }
            return invalidated(removed);
        }
    }

    /** Removes every entry. */
    public int invalidateAll() {
        synchronized (lock) {
            int n = index.size();
            index.clear();
            Arrays.fill(values, null);
            return invalidated(n);
        }
    }

    /** The counters, consistent with each other. */
    public CacheStats stats() {
        synchronized (lock) {
            return new CacheStats(index.limit(), index.size(), hits, misses, inserts, staleInserts, evictions,
                    invalidated, invalidations);
        }
    }

    /**
     * The cached keys, most recently used first, as {@code {sid, ssid, tag}} triples. Allocates; for
     * diagnostics and tests. Does not change the LRU order or the counters.
     */
    public int[][] keys() {
        synchronized (lock) {
            int[][] keys = new int[index.size()][];
            int i = 0;
            for (int s = index.mostRecent(); s != NONE; s = index.older(s)) {
                keys[i++] = new int[] {(int) index.key0(s), (int) index.key1(s), tags[s]};
            }
            return keys;
        }
    }

    @Override
    public String toString() {
        CacheStats st = stats();
        return "ConfigCache[" + st.entries() + "/" + st.capacity() + " hits=" + st.hits() + " misses="
                + st.misses() + "]";
    }

    private static void check(int ssid, Object value) {
        if (ssid < NO_SUBSTREAM) {
            throw new IllegalArgumentException("substream id must be >= -1: " + ssid);
        }
        if (value == null) {
            throw new NullPointerException("value");
        }
    }

    private void store(int sid, int ssid, int tag, V value) {
        long k0 = key0(sid);
        int slot = index.find(k0, ssid);
        if (slot == NONE) {
            if (index.isFull()) {
                removeSlot(index.leastRecent());
                evictions++;
            }
            slot = index.add(k0, ssid);
        } else {
            index.touch(slot);
        }
        values[slot] = value;
        tags[slot] = tag;
        inserts++;
    }

    @Override
    void removeSlot(int slot) {
        values[slot] = null;
        index.remove(slot);
    }

    private int invalidated(int n) {
        invalidated += n;
        invalidations++;
        epoch++; // volatile write: single writer under the lock
        return n;
    }

    private static long key0(int sid) {
        return sid & 0xFFFF_FFFFL;
    }
}
