package org.iommuemu.device.xlate;

/**
 * A snapshot of one cache's counters, taken under the cache's lock (so the numbers agree with each other).
 *
 * @param capacity    entries the cache can hold
 * @param entries     entries it holds now
 * @param hits        lookups that found an entry
 * @param misses      lookups that found none (including writes that met a {@link Perm#DIRTY_WRITABLE} entry)
 * @param inserts     entries stored (new or replacing one with the same key)
 * @param staleInserts inserts dropped because an invalidation ran after the caller read the cache's epoch
 * @param evictions   entries removed to make room (least recently used first)
 * @param invalidated entries removed by invalidations
 * @param invalidations invalidation operations performed (including those that removed nothing)
 */
public record CacheStats(
        int capacity,
        int entries,
        long hits,
        long misses,
        long inserts,
        long staleInserts,
        long evictions,
        long invalidated,
        long invalidations) {

    /** Hits over lookups, 0 when there were none. */
    public double hitRate() {
        long lookups = hits + misses;
        return lookups == 0 ? 0 : (double) hits / lookups;
    }
}
