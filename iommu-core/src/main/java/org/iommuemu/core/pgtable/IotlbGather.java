package org.iommuemu.core.pgtable;

import java.util.Arrays;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.PageAllocator;

/**
 * What an unmap must invalidate, gathered so that one flush covers many pages (Linux's
 * {@code iommu_iotlb_gather}).
 *
 * <p>Ranges merge while they are adjacent or overlap and have the same page size; a range that is
 * disjoint from the gathered one, or of another page size, first makes the gather {@link #sync() sync}
 * what it holds. Table pages freed by the page table ride along and are returned to the allocator only
 * after the sync, so no walk can reach a page that has been handed out again.
 *
 * <p>Not thread-safe: one gather per operation (or per thread).
 */
public final class IotlbGather {
    /** Flushes what a gather holds from the IOMMU's caches and waits for completion. */
    @FunctionalInterface
    public interface Flusher {
        /**
         * Invalidates {@code [gather.start(), gather.last()]} at {@code gather.pageLg2()} granularity (and the
         * walk caches when {@link IotlbGather#freedTables()} says tables went away), then waits.
         */
        void flush(IotlbGather gather);
    }

    private final Flusher flusher;
    private final PageAllocator allocator;
    private long start;
    private long last;
    private int pageLg2 = -1;
    private boolean tablesFreed;
    private long[] freed = new long[16];
    private int freedCount;
    private long syncs;

    /**
     * @param flusher performs the invalidation (called by {@link #sync()} when there is something to flush)
     * @param allocator where freed table pages go after the flush
     */
    public IotlbGather(Flusher flusher, PageAllocator allocator) {
        this.flusher = flusher;
        this.allocator = allocator;
    }

    /** Adds an unmapped range of pages of 2^{@code pageLg2} bytes, syncing first if it cannot be merged. */
    public void addRange(long va, long size, int pageLg2) {
        long newLast = va + size - 1;
        if (this.pageLg2 >= 0) {
            boolean below = Long.compareUnsigned(newLast, start) < 0 && newLast + 1 != start;
            boolean above = Long.compareUnsigned(va, last) > 0 && last + 1 != va;
            if (this.pageLg2 != pageLg2 || below || above) {
                sync();
            }
        }
        if (this.pageLg2 < 0) {
            start = va;
            last = newLast;
            this.pageLg2 = pageLg2;
        } else {
            if (Long.compareUnsigned(va, start) < 0) {
                start = va;
            }
            if (Long.compareUnsigned(newLast, last) > 0) {
                last = newLast;
            }
        }
    }

    /** Queues a freed table page for release after the next sync. */
    public void addFreedTable(long pa) {
        if (freedCount == freed.length) {
            freed = Arrays.copyOf(freed, freed.length * 2);
        }
        freed[freedCount++] = pa;
        tablesFreed = true;
    }

    /** Flushes the gathered range (if any), releases the freed table pages, and empties the gather. */
    public void sync() {
        if (pageLg2 >= 0 || freedCount > 0) {
            flusher.flush(this);
            syncs++;
        }
        for (int i = 0; i < freedCount; i++) {
            allocator.free(freed[i]);
        }
        freedCount = 0;
        pageLg2 = -1;
        tablesFreed = false;
    }

    /** Whether nothing is gathered. */
    public boolean isEmpty() {
        return pageLg2 < 0 && freedCount == 0;
    }

    /** Whether a range is gathered (a gather may hold only freed tables). */
    public boolean hasRange() {
        return pageLg2 >= 0;
    }

    public long start() {
        return start;
    }

    /** The last byte of the gathered range, inclusive. */
    public long last() {
        return last;
    }

    /** The page size of the gathered range, log2; -1 when empty. */
    public int pageLg2() {
        return pageLg2;
    }

    /** Whether tables were freed since the last sync (walk caches must be invalidated, not only leaves). */
    public boolean freedTables() {
        return tablesFreed;
    }

    /** Table pages waiting for the sync. */
    public int pendingFreedPages() {
        return freedCount;
    }

    /** Syncs done so far (flushes actually issued). */
    public long syncs() {
        return syncs;
    }

    @Override
    public String toString() {
        return pageLg2 < 0 ? "IotlbGather[empty, " + freedCount + " freed]"
                : "IotlbGather[" + Bits.hex(start) + ".." + Bits.hex(last) + " pages 2^" + pageLg2 + ", "
                        + freedCount + " freed]";
    }
}
