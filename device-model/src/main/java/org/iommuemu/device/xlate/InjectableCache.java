package org.iommuemu.device.xlate;

/**
 * What fault injection can do to a translation cache ({@code CACHE_SHRINK}, {@code CACHE_EVICT_RANDOM}): shrink
 * it below its configured capacity, and evict entries at the moment a lookup hits them. Implemented by
 * {@link Iotlb}, {@link WalkCache} and {@link ConfigCache}.
 */
public interface InjectableCache {
    /**
     * Asked at each lookup that hits, when set: whether to evict the entry instead, so that the lookup misses.
     * Called with the cache's lock held; it may record the firing but must not touch the cache.
     */
    @FunctionalInterface
    interface HitEviction {
        /**
         * @param key what the lookup was for: the input address (IOTLB, walk cache) or the stream id
         *     (configuration caches)
         */
        boolean evict(long key);
    }

    /** The configured capacity. */
    int capacity();

    /**
     * Holds at most {@code entries} entries (1..capacity; 0 restores the configured capacity): the least recently
     * used entries beyond are evicted at once (counted as evictions), and insertions evict against the new limit.
     */
    void limit(int entries);

    /** Sets (or, with null, removes) the hook asked at each hit. */
    void hitEviction(HitEviction hook);
}
