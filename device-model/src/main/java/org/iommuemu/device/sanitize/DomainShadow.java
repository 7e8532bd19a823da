package org.iommuemu.device.sanitize;

import java.util.Arrays;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuDomain;

/**
 * What the driver means one domain to map, kept from the IOMMU API ({@link IommuDomain.MappingObserver}): the live
 * mappings (iova ranges sorted by start, each with its output address and the sanitizer sequence of its map), a
 * count per physical 4 KiB page the live mappings reach, and the unmapped ranges: for every iova unmapped and not
 * mapped again since, its last unmap (sequence, time on the domain's clock, whether its invalidation has completed,
 * the output it had), in disjoint ranges sorted by start. That set is bounded by the iova space the domain has
 * used, not by the number of unmaps, so a stale access is traced to its unmap however long ago it was. Every method
 * runs under the {@link Sanitizer}'s lock; lookups allocate nothing.
 */
final class DomainShadow implements IommuDomain.MappingObserver {
    private static final int PAGE_SHIFT = 12;

    /** What the shadow needs to know of its domain: a local {@link IommuDomain}, or one an outside driver feeds. */
    interface View {
        String name();

        boolean lazy();

        /** The domain's flush-queue clock now. */
        long clockNanos();

        long flushQueueTimeoutNanos();
    }

    /** The view of a domain in this process. */
    static View of(IommuDomain d) {
        return new View() {
            @Override
            public String name() {
                return d.name();
            }

            @Override
            public boolean lazy() {
                return d.flushPolicy() == FlushPolicy.LAZY;
            }

            @Override
            public long clockNanos() {
                return d.clockNanos();
            }

            @Override
            public long flushQueueTimeoutNanos() {
                return d.flushQueueTimeoutNanos();
            }
        };
    }

    /** A domain an outside driver feeds ({@code Driver.SanitizerFeed}): its clock is the last one it reported. */
    static final class Fed implements View {
        private final String name;
        private final boolean lazy;
        private final long timeout;
        long clock;

        Fed(String name, boolean lazy, long timeout) {
            this.name = name;
            this.lazy = lazy;
            this.timeout = timeout;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public boolean lazy() {
            return lazy;
        }

        @Override
        public long clockNanos() {
            return clock;
        }

        @Override
        public long flushQueueTimeoutNanos() {
            return timeout == 0 ? Long.MAX_VALUE : timeout;
        }
    }

    final Sanitizer owner;
    /** The local domain, or null for a fed one. */
    final IommuDomain domain;
    final View view;
    /** A nested domain's stage-2 parent (whose outputs are physical); null otherwise. */
    final DomainShadow parent;
    final int index;

    private long[] liveIova = new long[16];
    private long[] liveLast = new long[16];
    private long[] livePa = new long[16];
    private long[] liveSeq = new long[16];
    private int live;
    private final LongLongMap pages = new LongLongMap();

    // unmapped ranges, disjoint, sorted by start
    private long[] gFirst = new long[16];
    private long[] gLast = new long[16];
    private long[] gPa = new long[16];
    private long[] gSeq = new long[16];
    private long[] gNanos = new long[16];
    private boolean[] gFlushed = new boolean[16];
    private int gone;
    /** Unmapped ranges whose invalidation has not completed yet. */
    private int unflushed;
    /** The last sequence a starting full flush covers. */
    private long flushMark;

    DomainShadow(Sanitizer owner, IommuDomain domain, DomainShadow parent, int index) {
        this(owner, domain, of(domain), parent, index);
    }

    DomainShadow(Sanitizer owner, IommuDomain domain, View view, DomainShadow parent, int index) {
        this.owner = owner;
        this.domain = domain;
        this.view = view;
        this.parent = parent;
        this.index = index;
    }

    // ------------------------------------------------------------------ observer

    @Override
    public void mapped(IommuDomain d, long iova, long pa, long size, int prot) {
        synchronized (owner.lock) {
            long last = iova + size - 1;
            removeLive(iova, last, false, 0, 0, false); // normally nothing: the page table refuses overlaps
            cutGone(iova, last); // live again
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
            long now = view.clockNanos();
            boolean strict = !view.lazy();
            // a strict unmap has been invalidated when this is called; a lazy one waits for a flush
            if (removeLive(iova, iova + size - 1, true, seq, now, strict) == 0) {
                addGone(iova, iova + size - 1, -1, seq, now, strict);
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
            for (int k = 0; k < gone && unflushed > 0; k++) {
                if (!gFlushed[k] && gSeq[k] <= flushMark) {
                    gFlushed[k] = true;
                    unflushed--;
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
                addGone(cutFirst, cutLast, cutPa, seq, nanos, flushed);
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

    /** Index of the first unmapped range starting at or above {@code iova} (unsigned). */
    private int goneInsertionPoint(long iova) {
        int lo = 0;
        int hi = gone;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(gFirst[mid], iova) < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    /** The unmapped range containing {@code iova}, or -1. */
    int findGone(long iova) {
        int i = goneInsertionPoint(iova);
        if (i < gone && gFirst[i] == iova) {
            return i;
        }
        i--;
        return i >= 0 && Long.compareUnsigned(iova, gLast[i]) <= 0 ? i : -1;
    }

    /** Unmapped ranges kept (tests). */
    int goneRanges() {
        return gone;
    }

    /** Forgets the unmaps of {@code [first, last]}, splitting ranges that straddle it. */
    private void cutGone(long first, long last) {
        int i = findGone(first);
        if (i < 0) {
            i = goneInsertionPoint(first);
        }
        while (i < gone && Long.compareUnsigned(gFirst[i], last) <= 0) {
            long f = gFirst[i];
            long l = gLast[i];
            boolean keepLeft = Long.compareUnsigned(f, first) < 0;
            boolean keepRight = Long.compareUnsigned(l, last) > 0;
            if (keepLeft && keepRight) {
                gLast[i] = first - 1;
                insertGone(i + 1, last + 1, l, gPa[i] < 0 ? -1 : gPa[i] + (last + 1 - f), gSeq[i], gNanos[i],
                        gFlushed[i]);
                return;
            } else if (keepLeft) {
                gLast[i] = first - 1;
                i++;
            } else if (keepRight) {
                gPa[i] = gPa[i] < 0 ? -1 : gPa[i] + (last + 1 - f);
                gFirst[i] = last + 1;
                i++;
            } else {
                unflushed -= gFlushed[i] ? 0 : 1;
                int move = gone - i - 1;
                System.arraycopy(gFirst, i + 1, gFirst, i, move);
                System.arraycopy(gLast, i + 1, gLast, i, move);
                System.arraycopy(gPa, i + 1, gPa, i, move);
                System.arraycopy(gSeq, i + 1, gSeq, i, move);
                System.arraycopy(gNanos, i + 1, gNanos, i, move);
                System.arraycopy(gFlushed, i + 1, gFlushed, i, move);
                gone--;
            }
        }
    }

    /** Records the unmap of {@code [first, last]} (output {@code pa}, -1 if none), replacing older ones there. */
    private void addGone(long first, long last, long pa, long seq, long nanos, boolean flushed) {
        cutGone(first, last);
        insertGone(goneInsertionPoint(first), first, last, pa, seq, nanos, flushed);
    }

    private void insertGone(int at, long first, long last, long pa, long seq, long nanos, boolean flushed) {
        if (gone == gFirst.length) {
            int n = gone * 2;
            gFirst = Arrays.copyOf(gFirst, n);
            gLast = Arrays.copyOf(gLast, n);
            gPa = Arrays.copyOf(gPa, n);
            gSeq = Arrays.copyOf(gSeq, n);
            gNanos = Arrays.copyOf(gNanos, n);
            gFlushed = Arrays.copyOf(gFlushed, n);
        }
        int move = gone - at;
        System.arraycopy(gFirst, at, gFirst, at + 1, move);
        System.arraycopy(gLast, at, gLast, at + 1, move);
        System.arraycopy(gPa, at, gPa, at + 1, move);
        System.arraycopy(gSeq, at, gSeq, at + 1, move);
        System.arraycopy(gNanos, at, gNanos, at + 1, move);
        System.arraycopy(gFlushed, at, gFlushed, at + 1, move);
        gFirst[at] = first;
        gLast[at] = last;
        gPa[at] = pa;
        gSeq[at] = seq;
        gNanos[at] = nanos;
        gFlushed[at] = flushed;
        unflushed += flushed ? 0 : 1;
        gone++;
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

    /**
     * Whether a live mapping reaches physical page {@code page} (a page number: the address shifted by 12), through
     * the stage-2 parent when nested: the reverse lookup a translated (ATS) request is judged by. One hash lookup.
     */
    boolean reachesPage(long page) {
        return (parent != null ? parent : this).pages.get(page) != LongLongMap.MISSING;
    }

    /**
     * The unmapped range (of the stage-2 parent when nested, whose outputs are physical) whose output had covered
     * part of physical page {@code page}, the newest such unmap; -1 when none is known. A scan of the unmapped
     * ranges: only run for a translated access to a page no live mapping reaches.
     */
    int findGoneByPage(long page) {
        DomainShadow out = parent != null ? parent : this;
        long first = page << PAGE_SHIFT;
        long last = first + (1L << PAGE_SHIFT) - 1;
        int best = -1;
        for (int k = 0; k < out.gone; k++) {
            long pa = out.gPa[k];
            if (pa < 0) {
                continue;
            }
            long paLast = pa + (out.gLast[k] - out.gFirst[k]);
            if (Long.compareUnsigned(pa, last) <= 0 && Long.compareUnsigned(first, paLast) <= 0
                    && (best < 0 || out.gSeq[k] > out.gSeq[best])) {
                best = k;
            }
        }
        return best;
    }

    /** The shadow whose unmapped ranges {@link #findGoneByPage} searched: the parent when nested, else this. */
    DomainShadow physical() {
        return parent != null ? parent : this;
    }

    long goneFirst(int k) {
        return gFirst[k];
    }

    long goneLast(int k) {
        return gLast[k];
    }

    long gonePa(int k) {
        return gPa[k];
    }

    long goneSeq(int k) {
        return gSeq[k];
    }

    long goneNanos(int k) {
        return gNanos[k];
    }

    boolean goneFlushed(int k) {
        return gFlushed[k];
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

    private static long umin(long a, long b) {
        return Long.compareUnsigned(a, b) <= 0 ? a : b;
    }

    /**
     * Checks one translated chunk of a DMA, {@code [iova, iova + len)} to {@code [pa, pa + len)}; called by the
     * Sanitizer under its lock. The chunk is judged piece by piece (a live mapping, an unmapped range, an unknown
     * gap), so a stale translation that covers more than the driver still maps (a block entry, a contiguous
     * entry) is caught wherever in the chunk the unmapped part is; the first bad piece is reported, at its own
     * iova and output address.
     */
    void check(int inst, int sid, int ssid, long iova, long pa, long len, boolean write) {
        long end = iova + len - 1;
        long cur = iova;
        while (true) {
            long curPa = pa + (cur - iova);
            long pieceLast;
            int i = findLive(cur);
            if (i >= 0) {
                pieceLast = umin(liveLast[i], end);
                long pieceLen = pieceLast - cur + 1;
                long expected = expectedPa(i, cur);
                if (expected != curPa && !reaches(curPa, pieceLen)) {
                    owner.report(SanitizerReport.Kind.UNMAPPED_MEMORY, inst, sid, ssid, cur, curPa, write, this,
                            0, -1, -1, 0, false, expected);
                    return;
                }
                if (owner.checkFreed(inst, sid, ssid, cur, curPa, pieceLen, write, this, liveSeq[i])) {
                    return;
                }
            } else {
                int next = insertionPoint(cur); // the first live mapping above cur
                long gapLast = next < live ? umin(liveIova[next] - 1, end) : end;
                int r = findGone(cur);
                if (r >= 0) {
                    pieceLast = umin(gLast[r], gapLast);
                    if (gFlushed[r]) {
                        owner.report(SanitizerReport.Kind.STALE_TRANSLATION, inst, sid, ssid, cur, curPa, write,
                                this, gSeq[r], gFirst[r], gLast[r], gNanos[r], true, gPa[r]);
                        return;
                    }
                    long age = view.clockNanos() - gNanos[r];
                    if (view.lazy() && age > view.flushQueueTimeoutNanos()) {
                        owner.report(SanitizerReport.Kind.LAZY_BOUND_EXCEEDED, inst, sid, ssid, cur, curPa, write,
                                this, gSeq[r], gFirst[r], gLast[r], gNanos[r], false, gPa[r]);
                        return;
                    }
                    // within the lazy window: this piece is allowed
                } else {
                    int g = goneInsertionPoint(cur);
                    pieceLast = g < gone ? umin(gFirst[g] - 1, gapLast) : gapLast;
                    if (!reaches(curPa, pieceLast - cur + 1)) {
                        owner.report(SanitizerReport.Kind.UNMAPPED_MEMORY, inst, sid, ssid, cur, curPa, write, this,
                                0, -1, -1, 0, false, -1);
                        return;
                    }
                }
            }
            if (pieceLast == end) {
                return;
            }
            cur = pieceLast + 1;
        }
    }
}
