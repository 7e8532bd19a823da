package org.iommuemu.device.sanitize;

import java.util.Arrays;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuDomain;

/**
 * What the driver means one domain to map, kept from the IOMMU API ({@link IommuDomain.MappingObserver}): the live
 * mappings (iova ranges sorted by start, each with its output address and the sanitizer sequence of its map), a
 * count per physical 4 KiB page the live mappings reach, and the recently unmapped ranges (a ring of
 * {@link #RECENT}) with their unmap sequence, time on the domain's clock and whether their invalidation has
 * completed. Every method runs under the {@link Sanitizer}'s lock; lookups allocate nothing.
 */
final class DomainShadow implements IommuDomain.MappingObserver {
    /** Unmapped ranges remembered per domain (older ones are forgotten: their DMA is judged as unknown iova). */
    static final int RECENT = 256;
    private static final int PAGE_SHIFT = 12;

    final Sanitizer owner;
    final IommuDomain domain;
    /** A nested domain's stage-2 parent (whose outputs are physical); null otherwise. */
    final DomainShadow parent;
    final int index;

    private long[] liveIova = new long[16];
    private long[] liveLast = new long[16];
    private long[] livePa = new long[16];
    private long[] liveSeq = new long[16];
    private int live;
    private final LongLongMap pages = new LongLongMap();

    private final long[] rFirst = new long[RECENT];
    private final long[] rLast = new long[RECENT];
    private final long[] rPa = new long[RECENT];
    private final long[] rSeq = new long[RECENT];
    private final long[] rNanos = new long[RECENT];
    private final boolean[] rFlushed = new boolean[RECENT];
    private int rCount;
    private int rNext;
    /** The last sequence a starting full flush covers. */
    private long flushMark;

    DomainShadow(Sanitizer owner, IommuDomain domain, DomainShadow parent, int index) {
        this.owner = owner;
        this.domain = domain;
        this.parent = parent;
        this.index = index;
    }

    // ------------------------------------------------------------------ observer

    @Override
    public void mapped(IommuDomain d, long iova, long pa, long size, int prot) {
        synchronized (owner.lock) {
            long last = iova + size - 1;
            removeLive(iova, last, false, 0, 0, false); // normally nothing: the page table refuses overlaps
            insertLive(iova, last, pa, owner.nextSequence());
            countPages(pa, size, 1);
        }
    }

    private void insertLive(long iova, long last, long pa, long seq) {
        {
            int at = insertionPoint(iova);
            if (live == liveIova.length) {
                int n = live * 2;
                liveIova = Arrays.copyOf(liveIova, n);
                liveLast = Arrays.copyOf(liveLast, n);
                livePa = Arrays.copyOf(livePa, n);
                liveSeq = Arrays.copyOf(liveSeq, n);
            }
            int move = live - at;
            System.arraycopy(liveIova, at, liveIova, at + 1, move);
            System.arraycopy(liveLast, at, liveLast, at + 1, move);
            System.arraycopy(livePa, at, livePa, at + 1, move);
            System.arraycopy(liveSeq, at, liveSeq, at + 1, move);
            liveIova[at] = iova;
            liveLast[at] = last;
            livePa[at] = pa;
            liveSeq[at] = seq;
            live++;
        }
    }

    @Override
    public void unmapped(IommuDomain d, long iova, long size) {
        synchronized (owner.lock) {
            long seq = owner.nextSequence();
            long now = domain.clockNanos();
            boolean strict = domain.flushPolicy() == FlushPolicy.STRICT;
            // a strict unmap has been invalidated when this is called; a lazy one waits for a flush
            if (removeLive(iova, iova + size - 1, true, seq, now, strict) == 0) {
                remember(iova, iova + size - 1, -1, seq, now, strict);
            }
        }
    }

    @Override
    public void flushStarting(IommuDomain d) {
        synchronized (owner.lock) {
            flushMark = owner.lastSequence();
        }
    }

    @Override
    public void flushed(IommuDomain d) {
        synchronized (owner.lock) {
            for (int k = 0; k < rCount; k++) {
                if (!rFlushed[k] && rSeq[k] <= flushMark) {
                    rFlushed[k] = true;
                }
            }
        }
    }

    @Override
    public void destroyed(IommuDomain d) {
        owner.forget(this);
    }

    // ------------------------------------------------------------------ bookkeeping

    private int insertionPoint(long iova) {
        int lo = 0;
        int hi = live;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(liveIova[mid], iova) < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    /** The live mapping containing {@code iova}, or -1. */
    int findLive(long iova) {
        int i = insertionPoint(iova);
        if (i < live && liveIova[i] == iova) {
            return i;
        }
        i--;
        return i >= 0 && Long.compareUnsigned(iova, liveLast[i]) <= 0 ? i : -1;
    }

    /**
     * Removes {@code [first, last]} from the live mappings, splitting those that straddle it; with
     * {@code remember}, each removed piece goes to the recent ring under {@code seq}. Returns the pieces removed.
     */
    private int removeLive(long first, long last, boolean remember, long seq, long nanos, boolean flushed) {
        int removed = 0;
        int i = findLive(first);
        if (i < 0) {
            i = insertionPoint(first);
        }
        while (i < live && Long.compareUnsigned(liveIova[i], last) <= 0) {
            long mFirst = liveIova[i];
            long mLast = liveLast[i];
            long pa = livePa[i];
            long cutFirst = Long.compareUnsigned(mFirst, first) < 0 ? first : mFirst;
            long cutLast = Long.compareUnsigned(mLast, last) > 0 ? last : mLast;
            long cutPa = pa + (cutFirst - mFirst);
            countPages(cutPa, cutLast - cutFirst + 1, -1);
            if (remember) {
                remember(cutFirst, cutLast, cutPa, seq, nanos, flushed);
            }
            removed++;
            boolean keepLeft = cutFirst != mFirst;
            boolean keepRight = cutLast != mLast;
            long mSeq = liveSeq[i];
            if (keepLeft && keepRight) {
                liveLast[i] = cutFirst - 1;
                insertLive(cutLast + 1, mLast, pa + (cutLast + 1 - mFirst), mSeq); // keeps its map's sequence
                return removed;
            } else if (keepLeft) {
                liveLast[i] = cutFirst - 1;
                i++;
            } else if (keepRight) {
                liveIova[i] = cutLast + 1;
                livePa[i] = pa + (cutLast + 1 - mFirst);
                i++;
            } else {
                int move = live - i - 1;
                System.arraycopy(liveIova, i + 1, liveIova, i, move);
                System.arraycopy(liveLast, i + 1, liveLast, i, move);
                System.arraycopy(livePa, i + 1, livePa, i, move);
                System.arraycopy(liveSeq, i + 1, liveSeq, i, move);
                live--;
            }
        }
        return removed;
    }

    private void countPages(long pa, long size, int delta) {
        long firstPage = pa >>> PAGE_SHIFT;
        long lastPage = (pa + size - 1) >>> PAGE_SHIFT;
        for (long p = firstPage; p <= lastPage; p++) {
            pages.add(p, delta);
        }
    }

    private void remember(long first, long last, long pa, long seq, long nanos, boolean flushed) {
        int k = rNext;
        rFirst[k] = first;
        rLast[k] = last;
        rPa[k] = pa;
        rSeq[k] = seq;
        rNanos[k] = nanos;
        rFlushed[k] = flushed;
        rNext = (k + 1) % RECENT;
        rCount = Math.min(rCount + 1, RECENT);
    }

    /** The most recent remembered unmap containing {@code iova}, or -1. */
    private int findRecent(long iova) {
        for (int n = 0; n < rCount; n++) {
            int k = (rNext - 1 - n + RECENT) % RECENT;
            if (Long.compareUnsigned(iova, rFirst[k]) >= 0 && Long.compareUnsigned(iova, rLast[k]) <= 0) {
                return k;
            }
        }
        return -1;
    }

    /** Whether every 4 KiB page of {@code [pa, pa + len)} is reached by a live mapping (of physical outputs). */
    private boolean reaches(long pa, long len) {
        DomainShadow out = parent != null ? parent : this;
        long lastPage = (pa + len - 1) >>> PAGE_SHIFT;
        for (long p = pa >>> PAGE_SHIFT; p <= lastPage; p++) {
            if (out.pages.get(p) == LongLongMap.MISSING) {
                return false;
            }
        }
        return true;
    }

    /** The physical address the live shadow gives {@code iova} (through the parent when nested), or -1. */
    private long expectedPa(int i, long iova) {
        long out = livePa[i] + (iova - liveIova[i]);
        if (parent == null) {
            return out;
        }
        int j = parent.findLive(out);
        return j < 0 ? -1 : parent.livePa[j] + (out - parent.liveIova[j]);
    }

    // ------------------------------------------------------------------ the check

    /** Checks one translated chunk of a DMA; called by the Sanitizer under its lock. */
    void check(int inst, int sid, int ssid, long iova, long pa, long len, boolean write) {
        int i = findLive(iova);
        if (i < 0) {
            int r = findRecent(iova);
            if (r >= 0) {
                if (rFlushed[r]) {
                    owner.report(SanitizerReport.Kind.STALE_TRANSLATION, inst, sid, ssid, iova, pa, write, this,
                            rSeq[r], rFirst[r], rLast[r], rNanos[r], true, rPa[r]);
                    return;
                }
                long age = domain.clockNanos() - rNanos[r];
                long bound = domain.flushQueueTimeoutNanos();
                if (domain.flushPolicy() == FlushPolicy.LAZY && age > bound) {
                    owner.report(SanitizerReport.Kind.LAZY_BOUND_EXCEEDED, inst, sid, ssid, iova, pa, write, this,
                            rSeq[r], rFirst[r], rLast[r], rNanos[r], false, rPa[r]);
                }
                return; // within the lazy window
            }
            if (!reaches(pa, len)) {
                owner.report(SanitizerReport.Kind.UNMAPPED_MEMORY, inst, sid, ssid, iova, pa, write, this,
                        0, -1, -1, 0, false, -1);
            }
            return;
        }
        if (expectedPa(i, iova) != pa && !reaches(pa, len)) {
            owner.report(SanitizerReport.Kind.UNMAPPED_MEMORY, inst, sid, ssid, iova, pa, write, this,
                    0, -1, -1, 0, false, expectedPa(i, iova));
            return;
        }
        owner.checkFreed(inst, sid, ssid, iova, pa, len, write, this, liveSeq[i]);
    }
}
