package org.iommuemu.device.xlate;

/**
 * What the translation caches ({@link Iotlb}, {@link WalkCache}, {@link ConfigCache}) share: the lock every change
 * holds, the LRU index of their slots, the epoch that front-end memos check, their counters, and what fault
 * injection does to them ({@link InjectableCache}: a smaller limit, evictions at a hit). A subclass keeps its
 * payload in arrays by slot and says how a slot is emptied ({@link #removeSlot}).
 */
abstract class LruCache implements InjectableCache {
    final Object lock = new Object();
    final LruIndex index;
    /** Moves at every invalidation (and shrink): a memo taken at another epoch is not used. Written under lock. */
    volatile long epoch;
    volatile HitEviction hitEviction;

    long hits;
    long misses;
    long inserts;
    long staleInserts;
    long evictions;
    long invalidated;
    long invalidations;

    /** A cache of {@code capacity} slots (1..2^28). */
    LruCache(int capacity) {
        index = new LruIndex(capacity);
    }

    /** Empties {@code slot} (payload and index); the lock is held. */
    abstract void removeSlot(int slot);

    @Override
    public int capacity() {
        return index.capacity();
    }

    @Override
    public void limit(int entries) {
        synchronized (lock) {
            index.limit(entries);
            int evicted = 0;
            while (index.size() > index.limit()) {
                removeSlot(index.leastRecent());
                evictions++;
                evicted++;
            }
            if (evicted > 0) {
                epoch++; // front-end memos of evicted entries must go too
            }
        }
    }

    @Override
    public void hitEviction(HitEviction hook) {
        hitEviction = hook;
    }

    /**
     * An injected eviction at a hit: the entry goes and the lookup counts as a miss. The epoch stays (this is a
     * capacity-like eviction, not an invalidation): the walk that follows may cache its result. The lock is held.
     */
    final void evictAtHit(int slot) {
        removeSlot(slot);
        evictions++;
        misses++;
    }
}
