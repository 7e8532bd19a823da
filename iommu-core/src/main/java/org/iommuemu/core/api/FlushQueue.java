package org.iommuemu.core.api;

import java.util.Arrays;
import java.util.function.LongSupplier;

/**
 * The waiting room of a {@link FlushPolicy#LAZY} domain: unmapped iova ranges and the table pages freed with
 * them, in arrival order, until a full flush lets them go. Only the queue's bookkeeping lives here; the
 * domain performs the flush and releases the pages ({@link #drain}).
 *
 * <p>One FIFO ring of primitive arrays holds both kinds of entry (a range {@code [first, last]}, or a page
 * whose address is in {@code first}); it grows by doubling and never shrinks, so a warmed-up queue allocates
 * nothing. The number of ranges is bounded by the capacity; pages are not counted against it. The time bound
 * runs from the moment the queue stops being empty ({@link #oldestNanos}).
 *
 * <p>Thread-safe: every method holds the queue's monitor, except the lock-free emptiness checks through the
 * volatile {@link #pending} count. {@link #drain} and the array it fills are for one flusher at a time (the
 * domain serialises flushes).
 */
final class FlushQueue {
    private static final byte RANGE = 0;
    private static final byte PAGE = 1;

    private final int capacity;
    private final long timeoutNanos;
    private final LongSupplier clock;

    private long[] first = new long[64];
    private long[] last = new long[64];
    private byte[] kind = new byte[64];
    private int head;
    private int size;
    private int ranges;
    private int pages;
    /** Bounding box of the queued ranges, valid while ranges > 0. */
    private long lo;
    private long hi;
    private long oldestNanos;
    /** Entries queued (ranges and pages), readable without the lock. */
    private volatile int pending;

    /** Pages taken out by the last {@link #drain}; owned by the (single) flusher. */
    private long[] drained = new long[16];

    FlushQueue(int capacity, long timeoutNanos, LongSupplier clock) {
        this.capacity = capacity;
        this.timeoutNanos = timeoutNanos;
        this.clock = clock;
    }

    int capacity() {
        return capacity;
    }

    long timeoutNanos() {
        return timeoutNanos;
    }

    /** Whether anything waits (no lock; a hint that is exact for whatever happened before the call). */
    boolean isEmpty() {
        return pending == 0;
    }

    /** Queues {@code [start, end]} unless {@link #capacity} ranges wait already; returns whether it was queued. */
    synchronized boolean tryAddRange(long start, long end) {
        if (ranges >= capacity) {
            return false;
        }
        if (ranges == 0) {
            lo = start;
            hi = end;
        } else {
            lo = Long.compareUnsigned(start, lo) < 0 ? start : lo;
            hi = Long.compareUnsigned(end, hi) > 0 ? end : hi;
        }
        push(RANGE, start, end);
        ranges++;
        return true;
    }

    /** Queues a freed table page; it is released by the next flush that starts after this call. */
    synchronized void addPage(long pa) {
        push(PAGE, pa, 0);
        pages++;
    }

    private void push(byte k, long a, long b) {
        if (size == first.length) {
            grow();
        }
        if (size == 0) {
            oldestNanos = clock.getAsLong();
        }
        int i = (head + size) & (first.length - 1);
        first[i] = a;
        last[i] = b;
        kind[i] = k;
        size++;
        pending = size;
    }

    private void grow() {
        int n = first.length;
        long[] f = new long[n * 2];
        long[] l = new long[n * 2];
        byte[] k = new byte[n * 2];
        for (int j = 0; j < size; j++) {
            int i = (head + j) & (n - 1);
            f[j] = first[i];
            l[j] = last[i];
            k[j] = kind[i];
        }
        first = f;
        last = l;
        kind = k;
        head = 0;
    }

    /** Whether the range bound is reached: the next range cannot be queued without a flush. */
    synchronized boolean isFull() {
        return ranges >= capacity;
    }

    /** Whether the oldest waiting entry has waited {@link #timeoutNanos} or longer. */
    boolean expired() {
        if (pending == 0) {
            return false;
        }
        long now = clock.getAsLong();
        synchronized (this) {
            return size > 0 && now - oldestNanos >= timeoutNanos;
        }
    }

    /** Whether a queued range overlaps {@code [start, end]}. */
    boolean overlaps(long start, long end) {
        if (pending == 0) {
            return false;
        }
        synchronized (this) {
            if (ranges == 0 || Long.compareUnsigned(end, lo) < 0 || Long.compareUnsigned(start, hi) > 0) {
                return false;
            }
            int mask = first.length - 1;
            for (int j = 0; j < size; j++) {
                int i = (head + j) & mask;
                if (kind[i] == RANGE && Long.compareUnsigned(start, last[i]) <= 0
                        && Long.compareUnsigned(end, first[i]) >= 0) {
                    return true;
                }
            }
            return false;
        }
    }

    /** Entries waiting now: a flush that starts after this call covers exactly the first {@code size()} entries. */
    synchronized int size() {
        return size;
    }

    synchronized int rangeCount() {
        return ranges;
    }

    synchronized int pageCount() {
        return pages;
    }

    /**
     * Removes the first {@code n} entries (those queued before a flush began; the flush has completed) and
     * returns how many of them were pages, now in {@link #drained(int)}. Entries still waiting are timed
     * from {@code flushStartNanos} (they came during the flush, so this never lets them wait longer).
     */
    synchronized int drain(int n, long flushStartNanos) {
        int mask = first.length - 1;
        int out = 0;
        int rangesOut = 0;
        for (int j = 0; j < n; j++) {
            int i = (head + j) & mask;
            if (kind[i] == PAGE) {
                if (out == drained.length) {
                    drained = Arrays.copyOf(drained, out * 2);
                }
                drained[out++] = first[i];
            } else {
                rangesOut++;
            }
        }
        head = (head + n) & mask;
        size -= n;
        ranges -= rangesOut;
        pages -= out;
        pending = size;
        if (size > 0) {
            oldestNanos = flushStartNanos;
        }
        if (ranges > 0) {
            boolean firstRange = true;
            for (int j = 0; j < size; j++) {
                int i = (head + j) & mask;
                if (kind[i] != RANGE) {
                    continue;
                }
                if (firstRange) {
                    lo = first[i];
                    hi = last[i];
                    firstRange = false;
                } else {
                    lo = Long.compareUnsigned(first[i], lo) < 0 ? first[i] : lo;
                    hi = Long.compareUnsigned(last[i], hi) > 0 ? last[i] : hi;
                }
            }
        }
        return out;
    }

    /** The {@code i}-th page taken out by the last {@link #drain}. */
    long drained(int i) {
        return drained[i];
    }
}
