package org.iommuemu.core.pgtable;

import java.util.Arrays;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.concurrent.PerThread;
import org.iommuemu.core.memory.GuestMemoryExhaustedException;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;

/**
 * An I/O page table in guest memory, and the algorithms that change it: map, unmap, lookup, dirty tracking,
 * growth and teardown. Everything format-specific comes from a {@link PtFormat}; nothing here names a
 * format.
 *
 * <h2>Map</h2>
 * A mapping is split into leaves by {@link PageSizes#best}: the largest supported size that the alignment of
 * iova and output address and the remaining length allow, with runs of small pages stopped at the next
 * larger-page boundary. A run of same-size leaves in one table is checked and written together. Installing a
 * leaf over a lower table that exists but maps nothing replaces the table and frees it (after the next
 * flush, through the {@link IotlbGather}). A map is all or nothing: on any error what the call installed is
 * removed again and the exception says why; mapping over a mapped address fails with
 * {@link PageTableException.Kind#ADDRESS_IN_USE}.
 *
 * <h2>Unmap</h2>
 * Unmap removes every leaf that starts inside the range, whole: unmapping from the start of a large or
 * contiguous leaf removes all of it and counts its full size; starting inside one is refused
 * ({@link PageTableException.Kind#UNMAP_SPLIT}) before anything changes. Holes are skipped. A lower table
 * whose whole span lies inside the range is freed through the gather. A table emptied by unmaps that did not
 * cover its whole span stays allocated (as in Linux): it is reused by later maps, replaced when a larger leaf
 * is mapped over it, and freed by {@link #destroy()}.
 *
 * <h2>Concurrency</h2>
 * Threads may map and unmap disjoint ranges at once without a lock. A new table is published with a 64-bit
 * compare-and-swap in guest memory; the loser of a race frees its table and uses the winner's. Leaves are
 * written with release stores (no one else may touch a range being mapped). A growable format (AMD v1) grows
 * its top under a lock and publishes the new top address and level together in one volatile value.
 *
 * <h2>Performance</h2>
 * No allocation on map, unmap or lookup beyond new table pages: per-thread scratch holds the entry buffer and
 * the walk cursor. Mapping one page of the smallest size into existing tables takes a fast path (one walk,
 * one store).
 */
public final class PageTable {
    /** {@link #iovaToPhys} of an unmapped address. */
    public static final long NO_MAPPING = -1L;
    /** The allocation tag of table pages. */
    public static final String TAG = "pgtable";

    private static final int BATCH = 512;
    private static final int MAX_LEVELS = 8;

    /** The top table and its level, published together. */
    private record Top(long pa, int level) {}

    /** Receives the dirty leaves found by {@link #readAndClearDirty}. */
    @FunctionalInterface
    public interface DirtyConsumer {
        void dirty(long iova, long size);
    }

    /** Per-thread working memory: entry buffer, walk cursor, freed-table list. */
    private static final class Scratch {
        final long[] entries = new long[BATCH];
        /** One entry buffer per level, so a walk down the levels keeps each level's batch. */
        final long[][] levelEntries = new long[MAX_LEVELS][BATCH];
        final long[] cursorTable = new long[MAX_LEVELS];
        final long[] cursorVa = new long[MAX_LEVELS];
        final int[] cursorEpoch = new int[MAX_LEVELS];
        int epoch;
        long[] freed = new long[16];
        int freedCount;
        // extent of what an unmap removed
        long extentStart;
        long extentLast;
        int extentLg2;
        boolean extentEmpty;

        void addFreed(long pa) {
            if (freedCount == freed.length) {
                freed = Arrays.copyOf(freed, freed.length * 2);
            }
            freed[freedCount++] = pa;
        }

        void resetExtent() {
            extentEmpty = true;
            extentLg2 = 64;
        }

        void extend(long start, long last, int lg2) {
            if (extentEmpty || Long.compareUnsigned(start, extentStart) < 0) {
                extentStart = start;
            }
            if (extentEmpty || Long.compareUnsigned(last, extentLast) > 0) {
                extentLast = last;
            }
            extentLg2 = Math.min(extentLg2, lg2);
            extentEmpty = false;
        }
    }

    private final PtFormat fmt;
    private final PhysicalMemory mem;
    private final PageAllocator alloc;
    private final String tag;
    private final int entryLg2;
    private final int maxTop;
    private final long pageSizes;
    private final int minPageLg2;
    private final boolean fastPath;
    private final int fastLeafOaBits;
    private final int[] itemLg2 = new int[MAX_LEVELS];
    private final int[] tableItemsLg2 = new int[MAX_LEVELS];
    private final int[] topItemsLg2 = new int[MAX_LEVELS];
    private final byte[] levelOfSize = new byte[64];
    private final PerThread<Scratch> scratch = new PerThread<>(Scratch::new);
    private final Object growLock = new Object();
    private volatile Top top;

    /**
     * Creates an empty table: allocates and zeroes the top table.
     *
     * @throws PageTableException NO_MEMORY when the top table cannot be allocated
     */
    public PageTable(PtFormat fmt, PhysicalMemory mem, PageAllocator alloc) throws PageTableException {
        this(fmt, mem, alloc, TAG);
    }

    /** As {@link #PageTable(PtFormat, PhysicalMemory, PageAllocator)}, allocating table pages under {@code tag}. */
    public PageTable(PtFormat fmt, PhysicalMemory mem, PageAllocator alloc, String tag) throws PageTableException {
        this(fmt, mem, alloc, tag, true);
    }

    /**
     * As {@link #PageTable(PtFormat, PhysicalMemory, PageAllocator, String)}; {@code fastPath} false sends single
     * small pages through the general path too (for benchmarks that measure what the fast path saves).
     */
    public PageTable(PtFormat fmt, PhysicalMemory mem, PageAllocator alloc, String tag, boolean fastPath)
            throws PageTableException {
        this.fmt = fmt;
        this.mem = mem;
        this.alloc = alloc;
        this.tag = tag;
        this.entryLg2 = fmt.entryLg2();
        this.maxTop = fmt.maxTopLevel();
        if (maxTop >= MAX_LEVELS || fmt.topLevel() > maxTop || fmt.topLevel() < 0) {
            throw new IllegalArgumentException(fmt.name() + ": unsupported level range " + fmt.topLevel() + ".." + maxTop);
        }
        Arrays.fill(levelOfSize, (byte) -1);
        for (int l = 0; l <= maxTop; l++) {
            itemLg2[l] = fmt.itemLg2(l);
            tableItemsLg2[l] = fmt.tableItemsLg2(l);
            topItemsLg2[l] = fmt.topItemsLg2(l);
            long sizes = fmt.leafSizes(l);
            for (int s = 0; s < 64; s++) {
                if ((sizes & (1L << s)) != 0) {
                    levelOfSize[s] = (byte) l;
                }
            }
        }
        this.pageSizes = fmt.pageSizes();
        this.minPageLg2 = PageSizes.minLg2(pageSizes);
        if (minPageLg2 < 0) {
            throw new IllegalArgumentException(fmt.name() + " has no page sizes");
        }
        this.fastPath = fastPath && levelOfSize[minPageLg2] == 0 && itemLg2[0] == minPageLg2;
        this.fastLeafOaBits = fmt.leafOaBits(0, minPageLg2);
        int level = fmt.topLevel();
        this.top = new Top(allocTable(level, true), level);
    }

    // ------------------------------------------------------------------ accessors

    public PtFormat format() {
        return fmt;
    }

    /** Physical address of the top table. */
    public long root() {
        return checkedTop().pa;
    }

    /** Level of the top table (grows for growable formats). */
    public int topLevel() {
        return checkedTop().level;
    }

    /** Page-size bitmap (bit n = pages of 2^n bytes). */
    public long pageSizes() {
        return pageSizes;
    }

    /** The smallest page size, log2. */
    public int minPageLg2() {
        return minPageLg2;
    }

    /** The input range the table covers now, as log2 of its size (growable formats cover more after growing). */
    public int coveredLg2() {
        Top t = checkedTop();
        return Math.min(64, itemLg2[t.level] + topItemsLg2[t.level]);
    }

    // ------------------------------------------------------------------ map

    /**
     * Maps {@code [iova, iova + size)} to {@code [oa, oa + size)} with {@code prot}.
     *
     * @param gather receives tables replaced by larger leaves (freed after its next sync), and any rollback
     * @throws PageTableException if the request is invalid or part of the range is mapped; nothing changed
     */
    public void map(long iova, long oa, long size, int prot, IotlbGather gather) throws PageTableException {
        map(iova, oa, size, prot, pageSizes, gather);
    }

    /**
     * As {@link #map(long, long, long, int, IotlbGather)}, using only the page sizes in {@code allowedSizes}
     * (those of the format that every IOMMU walking this table supports). The smallest page size of the format
     * must be allowed.
     */
    public void map(long iova, long oa, long size, int prot, long allowedSizes, IotlbGather gather)
            throws PageTableException {
        Top t = checkedTop();
        long sizes = pageSizes & allowedSizes;
        if ((sizes & (1L << minPageLg2)) == 0) {
            throw new IllegalArgumentException("the allowed page sizes " + Long.toHexString(allowedSizes)
                    + " leave out the smallest page size of " + fmt.name());
        }
        if (fastPath && size == (1L << minPageLg2) && prot != 0 && fastMap(t, iova, oa, prot)) {
            return;
        }
        checkMap(iova, oa, size, prot);
        t = ensureCovers(t, iova + size - 1);
        Scratch s = scratch.get();
        s.epoch++;
        s.freedCount = 0;
        long done = 0;
        try {
            while (Long.compareUnsigned(done, size) < 0) {
                long va = iova + done;
                long pa = oa + done;
                long best = PageSizes.best(sizes, va, pa, size - done);
                if (best == PageSizes.NONE) {
                    throw new PageTableException(PageTableException.Kind.NO_PAGE_SIZE, "no supported page size fits "
                            + Bits.hex(va) + " -> " + Bits.hex(pa) + " with " + Bits.hex(size - done) + " bytes left");
                }
                int lg2 = PageSizes.lg2(best);
                long count = PageSizes.count(best);
                int level = levelOfSize[lg2];
                int leafOaBits = fmt.leafOaBits(level, lg2);
                if (leafOaBits < fmt.oaBits()) {
                    // a format whose leaf sizes reach different widths: check where this run ends
                    long runLast = pa + (count << lg2) - 1;
                    if (!Bits.fitsUnsigned(runLast, leafOaBits)) {
                        throw new PageTableException(PageTableException.Kind.OA_TOO_WIDE, "a " + Bits.hex(1L << lg2)
                                + "-byte leaf of " + fmt.name() + " holds only a " + leafOaBits
                                + "-bit output address; " + Bits.hex(pa) + " (from iova " + Bits.hex(va)
                                + ") needs a larger page that its alignment does not allow");
                    }
                }
                if (level == t.level && !fmt.topCanHoldLeaf()) {
                    t = grow(t, t.level + 1);
                }
                long table = descend(s, t, va, level, gather);
                int items = level == t.level ? topItemsLg2[level] : tableItemsLg2[level];
                int idx = index(va, level, items);
                long left = (1L << items) - idx;
                long wanted = count << (lg2 - itemLg2[level]);
                int n = (int) Math.min(wanted, left);
                installLeaves(s, table, level, idx, n, va, pa, lg2, prot);
                done += (long) n << itemLg2[level];
            }
        } catch (PageTableException | RuntimeException e) {
            releaseFreed(s, gather, iova, size); // before the rollback's unmap reuses the scratch list
            rollback(iova, done, gather);
            throw e;
        }
        releaseFreed(s, gather, iova, size);
    }

    /** Single smallest page into existing tables; false when the general path must run. */
    private boolean fastMap(Top t, long iova, long oa, int prot) throws PageTableException {
        if (((iova | oa) & ((1L << minPageLg2) - 1)) != 0 || !vaInRange(iova, iova, t)
                || !Bits.fitsUnsigned(oa + (1L << minPageLg2) - 1, fastLeafOaBits)
                || (prot & (Prot.READ | Prot.WRITE)) == 0) {
            return false;
        }
        try {
            long table = t.pa;
            for (int level = t.level; level > 0; level--) {
                int items = level == t.level ? topItemsLg2[level] : tableItemsLg2[level];
                long e = load(table + ((long) index(iova, level, items) << entryLg2));
                if (fmt.kind(e, level) != PtFormat.TABLE) {
                    return false;
                }
                table = fmt.tableAddress(e, level);
            }
            int items = t.level == 0 ? topItemsLg2[0] : tableItemsLg2[0];
            long slot = table + ((long) index(iova, 0, items) << entryLg2);
            if (fmt.kind(load(slot), 0) != PtFormat.EMPTY) {
                return false; // the general path reports what is there
            }
            store(slot, fmt.leaf(oa, 0, minPageLg2, prot));
            return true;
        } catch (MemoryAccessException e) {
            throw memoryFault(e);
        }
    }

    private void checkMap(long iova, long oa, long size, int prot) throws PageTableException {
        if (size == 0 || Bits.rangeOverflows(iova, size) || Bits.rangeOverflows(oa, size)) {
            throw new PageTableException(PageTableException.Kind.BAD_SIZE, "map of " + Bits.hex(size) + " bytes at "
                    + Bits.hex(iova) + " -> " + Bits.hex(oa) + ": the size is zero or the range wraps past 2^64");
        }
        if ((prot & (Prot.READ | Prot.WRITE)) == 0) {
            throw new PageTableException(PageTableException.Kind.BAD_PROT, "map at " + Bits.hex(iova)
                    + " with prot " + Prot.toString(prot) + ": a mapping must allow reading or writing");
        }
        long mask = (1L << minPageLg2) - 1;
        if (((iova | oa | size) & mask) != 0) {
            throw new PageTableException(PageTableException.Kind.MISALIGNED, "map of " + Bits.hex(size) + " bytes at "
                    + Bits.hex(iova) + " -> " + Bits.hex(oa) + ": iova, output address and size must be multiples of "
                    + "the smallest page size " + Bits.hex(1L << minPageLg2) + " (" + fmt.name() + ")");
        }
        if (!oaFits(oa, oa + size - 1)) {
            throw new PageTableException(PageTableException.Kind.OA_TOO_WIDE, "output range [" + Bits.hex(oa) + ", "
                    + Bits.hex(oa + size - 1) + "] does not fit the " + fmt.oaBits() + "-bit output of " + fmt.name());
        }
        checkVa(iova, iova + size - 1);
    }

    private boolean oaFits(long oa, long oaLast) {
        return Bits.fitsUnsigned(oaLast, fmt.oaBits()) && Bits.fitsUnsigned(oa, fmt.oaBits());
    }

    private void checkVa(long iova, long last) throws PageTableException {
        if (!vaLegal(iova, last)) {
            throw new PageTableException(PageTableException.Kind.IOVA_OUT_OF_RANGE, "iova range [" + Bits.hex(iova)
                    + ", " + Bits.hex(last) + "] is outside the " + fmt.vaBits() + "-bit input range of " + fmt.name()
                    + (fmt.vaSignExtended() ? " (addresses must be canonical, within one half)" : ""));
        }
    }

    /** Whether [iova, last] is a legal input range of the format (ignoring how far the current top reaches). */
    private boolean vaLegal(long iova, long last) {
        int bits = fmt.vaBits();
        if (bits >= 64) {
            return true;
        }
        if (!fmt.vaSignExtended()) {
            return Bits.fitsUnsigned(last, bits) && Long.compareUnsigned(iova, last) <= 0;
        }
        long upper = iova >> (bits - 1);
        return (upper == 0 || upper == -1) && (last >> (bits - 1)) == upper;
    }

    /** Whether the current top covers [iova, last]. */
    private boolean vaInRange(long iova, long last, Top t) {
        int covered = itemLg2[t.level] + topItemsLg2[t.level];
        if (!vaLegal(iova, last)) {
            return false;
        }
        if (covered >= 64 || fmt.vaSignExtended()) {
            return true;
        }
        return Bits.fitsUnsigned(last, covered);
    }

    /** Grows the top until it covers {@code last} (growable formats); else checks coverage. */
    private Top ensureCovers(Top t, long last) throws PageTableException {
        while (!vaInRange(last, last, t)) {
            if (t.level >= maxTop) {
                throw new PageTableException(PageTableException.Kind.IOVA_OUT_OF_RANGE, "iova " + Bits.hex(last)
                        + " is beyond what " + fmt.name() + " can translate");
            }
            t = grow(t, t.level + 1);
        }
        return t;
    }

    /** Grows the top table to {@code level} (no-op if already there), publishing address and level together. */
    private Top grow(Top seen, int level) throws PageTableException {
        if (level > maxTop) {
            throw new PageTableException(PageTableException.Kind.IOVA_OUT_OF_RANGE, fmt.name()
                    + " cannot grow beyond level " + maxTop);
        }
        synchronized (growLock) {
            Top t = top;
            if (t == null) {
                throw new IllegalStateException("the page table has been destroyed");
            }
            while (t.level < level) {
                long newTop = allocTable(t.level + 1, true);
                try {
                    store(newTop, fmt.table(t.pa, t.level + 1));
                } catch (MemoryAccessException e) {
                    alloc.free(newTop);
                    throw memoryFault(e);
                }
                t = new Top(newTop, t.level + 1);
                top = t;
            }
            return t;
        }
    }

    /** The table at {@code level} covering {@code va}, creating tables on the way. */
    private long descend(Scratch s, Top t, long va, int level, IotlbGather gather) throws PageTableException {
        int l = level;
        while (l < t.level) {
            if (s.cursorEpoch[l] == s.epoch
                    && Long.compareUnsigned(va - s.cursorVa[l], (1L << spanLg2(l)) - 1) <= 0) {
                break;
            }
            l++;
        }
        long table = l == t.level ? t.pa : s.cursorTable[l];
        while (l > level) {
            int items = l == t.level ? topItemsLg2[l] : tableItemsLg2[l];
            table = child(table, l, index(va, l, items), va);
            l--;
            s.cursorTable[l] = table;
            s.cursorVa[l] = Bits.alignDown(va, spanLg2(l));
            s.cursorEpoch[l] = s.epoch;
        }
        return table;
    }

    /** log2 of the input span of a non-top table at {@code level}. */
    private int spanLg2(int level) {
        return Math.min(63, itemLg2[level] + tableItemsLg2[level]);
    }

    /** The child table of entry {@code idx} of {@code table} at {@code level}, installed if missing. */
    private long child(long table, int level, int idx, long va) throws PageTableException {
        long slot = table + ((long) idx << entryLg2);
        try {
            long e = load(slot);
            int kind = fmt.kind(e, level);
            if (kind == PtFormat.TABLE) {
                return fmt.tableAddress(e, level);
            }
            if (kind == PtFormat.LEAF) {
                throw inUse(va, e, level);
            }
            long fresh = allocTable(level - 1, false);
            long witness = cas(slot, e, fmt.table(fresh, level));
            if (witness == e) {
                return fresh;
            }
            alloc.free(fresh); // lost the race; the table was never visible
            if (fmt.kind(witness, level) == PtFormat.TABLE) {
                return fmt.tableAddress(witness, level);
            }
            throw inUse(va, witness, level);
        } catch (MemoryAccessException e) {
            throw memoryFault(e);
        }
    }

    /**
     * Writes {@code n} entries of leaves of 2^lg2 bytes at {@code idx..}: checks every slot first (empty, or an
     * empty lower table to replace), then writes.
     */
    private void installLeaves(Scratch s, long table, int level, int idx, int n, long va, long oa, int lg2, int prot)
            throws PageTableException {
        int il = itemLg2[level];
        long base = table + ((long) idx << entryLg2);
        boolean replacesTables = false;
        try {
            for (int done = 0; done < n; done += BATCH) {
                int k = Math.min(BATCH, n - done);
                loadRun(base + ((long) done << entryLg2), s.entries, k);
                long any = 0;
                for (int i = 0; i < k; i++) {
                    any |= s.entries[i];
                }
                if (any == 0) {
                    continue; // all zero: empty in every format
                }
                for (int i = 0; i < k; i++) {
                    long e = s.entries[i];
                    int kind = fmt.kind(e, level);
                    if (kind == PtFormat.LEAF) {
                        throw inUse(va + ((long) (done + i) << il), e, level);
                    }
                    if (kind == PtFormat.TABLE) {
                        if (!subtreeEmpty(fmt.tableAddress(e, level), level - 1)) {
                            long at = va + ((long) (done + i) << il);
                            throw new PageTableException(PageTableException.Kind.ADDRESS_IN_USE, "cannot map a "
                                    + Bits.hex(1L << lg2) + "-byte leaf at " + Bits.hex(Bits.alignDown(at, lg2))
                                    + ": part of [" + Bits.hex(at) + ", " + Bits.hex(at + (1L << il) - 1)
                                    + "] is already mapped");
                        }
                        replacesTables = true;
                    }
                }
            }
            if (!replacesTables) {
                // Successive single-item leaves usually differ only by the item size in the address field: when
                // the first, second and last entries agree with that, compute the run by addition.
                long first = fmt.leaf(oa, level, lg2, prot);
                long step = 0;
                boolean linear = false;
                if (lg2 == il && n > 2) {
                    step = fmt.leaf(oa + (1L << il), level, lg2, prot) - first;
                    linear = fmt.leaf(oa + ((long) (n - 1) << il), level, lg2, prot) == first + (n - 1) * step;
                }
                for (int done = 0; done < n; done += BATCH) {
                    int k = Math.min(BATCH, n - done);
                    if (linear) {
                        long e = first + done * step;
                        for (int i = 0; i < k; i++, e += step) {
                            s.entries[i] = e;
                        }
                    } else {
                        for (int i = 0; i < k; i++) {
                            s.entries[i] = fmt.leaf(oa + ((long) (done + i) << il), level, lg2, prot);
                        }
                    }
                    storeRun(base + ((long) done << entryLg2), s.entries, k);
                }
                return;
            }
            for (int i = 0; i < n; i++) {
                long slot = base + ((long) i << entryLg2);
                long e = load(slot);
                long leaf = fmt.leaf(oa + ((long) i << il), level, lg2, prot);
                if (fmt.kind(e, level) == PtFormat.TABLE) {
                    if (cas(slot, e, leaf) != e) {
                        for (int j = 0; j < i; j++) {
                            store(base + ((long) j << entryLg2), 0); // undo this run before reporting
                        }
                        throw new PageTableException(PageTableException.Kind.ADDRESS_IN_USE, "entry for "
                                + Bits.hex(va + ((long) i << il)) + " changed under a concurrent map of an"
                                + " overlapping range");
                    }
                    collectTables(s, fmt.tableAddress(e, level), level - 1);
                } else {
                    store(slot, leaf);
                }
            }
        } catch (MemoryAccessException e) {
            throw memoryFault(e);
        }
    }

    /** Whether the table at {@code level} (not the top) maps nothing, recursively. */
    private boolean subtreeEmpty(long table, int level) throws MemoryAccessException {
        int n = 1 << tableItemsLg2[level];
        for (int i = 0; i < n; i++) {
            long e = load(table + ((long) i << entryLg2));
            int kind = fmt.kind(e, level);
            if (kind == PtFormat.LEAF) {
                return false;
            }
            if (kind == PtFormat.TABLE && (level == 0 || !subtreeEmpty(fmt.tableAddress(e, level), level - 1))) {
                return false;
            }
        }
        return true;
    }

    /** Queues {@code table} and every table below it for freeing (post-order). */
    private void collectTables(Scratch s, long table, int level) throws MemoryAccessException {
        if (level > 0) {
            int n = 1 << tableItemsLg2[level];
            for (int i = 0; i < n; i++) {
                long e = load(table + ((long) i << entryLg2));
                if (fmt.kind(e, level) == PtFormat.TABLE) {
                    collectTables(s, fmt.tableAddress(e, level), level - 1);
                }
            }
        }
        s.addFreed(table);
    }

    /** Hands the tables freed by this operation to the gather, after a range that covers them. */
    private void releaseFreed(Scratch s, IotlbGather gather, long iova, long size) {
        if (s.freedCount == 0) {
            return;
        }
        gather.addRange(iova, size, minPageLg2);
        for (int i = 0; i < s.freedCount; i++) {
            gather.addFreedTable(s.freed[i]);
        }
        s.freedCount = 0;
    }

    private void rollback(long iova, long done, IotlbGather gather) {
        if (done == 0) {
            return;
        }
        try {
            unmap(iova, done, gather);
        } catch (PageTableException e) {
            throw new IllegalStateException("could not roll back a failed map of " + Bits.hex(iova), e);
        }
    }

    // ------------------------------------------------------------------ unmap

    /**
     * Unmaps the leaves that start in {@code [iova, iova + size)}; see the class comment for the rules.
     *
     * @return bytes unmapped (the full size of every leaf removed; less than {@code size} over holes)
     * @throws PageTableException on a bad range, or UNMAP_SPLIT when {@code iova} is inside a larger leaf
     */
    public long unmap(long iova, long size, IotlbGather gather) throws PageTableException {
        Top t = checkedTop();
        if (size == 0 || Bits.rangeOverflows(iova, size)) {
            throw new PageTableException(PageTableException.Kind.BAD_SIZE, "unmap of " + Bits.hex(size) + " bytes at "
                    + Bits.hex(iova) + ": the size is zero or the range wraps past 2^64");
        }
        if (((iova | size) & ((1L << minPageLg2) - 1)) != 0) {
            throw new PageTableException(PageTableException.Kind.MISALIGNED, "unmap of " + Bits.hex(size)
                    + " bytes at " + Bits.hex(iova) + ": iova and size must be multiples of the smallest page size "
                    + Bits.hex(1L << minPageLg2));
        }
        long last = iova + size - 1;
        checkVa(iova, last);
        if (!vaInRange(iova, last, t)) {
            if (!vaInRange(iova, iova, t)) {
                return 0; // nothing mapped beyond what the (growable) table covers
            }
            last = (1L << coveredLg2()) - 1;
        }
        Scratch s = scratch.get();
        s.freedCount = 0;
        s.resetExtent();
        long bytes;
        try {
            checkNoSplit(t, iova);
            bytes = unmapIn(s, t.pa, t.level, topItemsLg2[t.level], iova, last);
        } catch (MemoryAccessException e) {
            throw memoryFault(e);
        }
        if (!s.extentEmpty) {
            gather.addRange(s.extentStart, s.extentLast - s.extentStart + 1, s.extentLg2);
        } else if (s.freedCount > 0) {
            gather.addRange(iova, last - iova + 1, minPageLg2);
        }
        for (int i = 0; i < s.freedCount; i++) {
            gather.addFreedTable(s.freed[i]);
        }
        s.freedCount = 0;
        s.epoch++; // tables may have gone: no cursor survives an unmap
        return bytes;
    }

    private void checkNoSplit(Top t, long iova) throws MemoryAccessException, PageTableException {
        long table = t.pa;
        for (int level = t.level; level >= 0; level--) {
            int items = level == t.level ? topItemsLg2[level] : tableItemsLg2[level];
            long e = load(table + ((long) index(iova, level, items) << entryLg2));
            int kind = fmt.kind(e, level);
            if (kind == PtFormat.EMPTY) {
                return;
            }
            if (kind == PtFormat.LEAF) {
                int lg2 = fmt.leafLg2(e, level);
                long start = Bits.alignDown(iova, lg2);
                if (start != iova) {
                    throw new PageTableException(PageTableException.Kind.UNMAP_SPLIT, "unmap at " + Bits.hex(iova)
                            + " starts inside the " + Bits.hex(1L << lg2) + "-byte mapping at " + Bits.hex(start)
                            + "; unmap it from its start");
                }
                return;
            }
            table = fmt.tableAddress(e, level);
        }
    }

    /**
     * Unmaps the leaves starting in [va, last] below {@code table} (a table at {@code level} with 2^items
     * entries); returns bytes. Entries are read and cleared a batch at a time; each store stays atomic.
     */
    private long unmapIn(Scratch s, long table, int level, int items, long va, long last)
            throws MemoryAccessException, PageTableException {
        int il = itemLg2[level];
        long[] buf = s.levelEntries[level];
        long bytes = 0;
        long cur = va;
        while (true) {
            int idx = index(cur, level, items);
            long firstItem = Bits.alignDown(cur, il);
            // the batch: entries from idx up to the one holding `last`, within this table, at most BATCH
            long toLast = (last - firstItem) >>> il;
            int k = (int) Math.min(Math.min(BATCH, (1L << items) - idx), toLast + 1);
            long slot0 = table + ((long) idx << entryLg2);
            loadRun(slot0, buf, k);
            // Only the span of entries this batch cleared is written back (with zeros): an entry outside it may
            // be a shared one (the first or last item, partly outside the range) another thread just installed.
            int clearedFrom = -1;
            int clearedTo = -1;
            long batchStart = 0;
            long batchLast = 0;
            int batchLg2 = 64;
            int i = 0;
            while (i < k) {
                long e = buf[i];
                if (e == 0) {
                    i++;
                    continue;
                }
                int kind = fmt.kind(e, level);
                if (kind == PtFormat.EMPTY) {
                    i++;
                    continue;
                }
                long itemStart = firstItem + ((long) i << il);
                int advance;
                if (kind == PtFormat.LEAF) {
                    int lg2 = fmt.leafLg2(e, level);
                    long runStart = lg2 == il ? itemStart : Bits.alignDown(itemStart, lg2);
                    if (Long.compareUnsigned(runStart, va) < 0) {
                        throw new PageTableException(PageTableException.Kind.UNMAP_SPLIT, "unmap at " + Bits.hex(va)
                                + " starts inside the " + Bits.hex(1L << lg2) + "-byte mapping at "
                                + Bits.hex(runStart));
                    }
                    if (lg2 == il) {
                        // the common case: a stretch of single-item leaves; classify only, account once
                        int j = i + 1;
                        while (j < k) {
                            long ej = buf[j];
                            if (ej == 0 || fmt.kind(ej, level) != PtFormat.LEAF || fmt.leafLg2(ej, level) != il) {
                                break;
                            }
                            j++;
                        }
                        advance = j - i;
                    } else {
                        advance = 1 << (lg2 - il);
                        for (int j = k - i; j < advance; j++) { // a run that goes on past this batch
                            store(slot0 + ((long) (i + j) << entryLg2), 0);
                        }
                    }
                    if (clearedFrom < 0) {
                        clearedFrom = i;
                        batchStart = runStart;
                    }
                    long runBytes = lg2 == il ? (long) advance << il : 1L << lg2;
                    clearedTo = Math.min(k, i + advance) - 1;
                    batchLast = runStart + runBytes - 1;
                    batchLg2 = Math.min(batchLg2, lg2);
                    bytes += runBytes;
                } else {
                    long itemLast = itemStart + (1L << il) - 1;
                    long child = fmt.tableAddress(e, level);
                    if (Long.compareUnsigned(cur, itemStart) <= 0 && Long.compareUnsigned(itemLast, last) <= 0) {
                        bytes += clearTable(s, child, level - 1, itemStart);
                        s.addFreed(child);
                        if (clearedFrom < 0) {
                            clearedFrom = i;
                            batchStart = itemStart;
                        }
                        clearedTo = i;
                        batchLast = itemLast;
                        batchLg2 = Math.min(batchLg2, minPageLg2);
                    } else {
                        long from = Long.compareUnsigned(cur, itemStart) > 0 ? cur : itemStart;
                        long to = Long.compareUnsigned(last, itemLast) < 0 ? last : itemLast;
                        bytes += unmapIn(s, child, level - 1, tableItemsLg2[level - 1], from, to);
                    }
                    advance = 1;
                }
                i += advance;
            }
            if (clearedFrom >= 0) {
                storeZeros(slot0 + ((long) clearedFrom << entryLg2), clearedTo - clearedFrom + 1);
                s.extend(batchStart, batchLast, batchLg2);
            }
            // a run may have carried us past the batch: continue after whatever we consumed
            long next = firstItem + ((long) i << il);
            if (next == 0 || Long.compareUnsigned(next - 1, last) >= 0) {
                return bytes;
            }
            cur = next;
        }
    }

    /** Counts the leaves of a table being freed whole, and queues its lower tables; {@code va} is its first address. */
    private long clearTable(Scratch s, long table, int level, long va) throws MemoryAccessException {
        int il = itemLg2[level];
        int n = 1 << tableItemsLg2[level];
        long[] buf = s.levelEntries[level];
        long bytes = 0;
        int minLeafLg2 = 64;
        for (int from = 0; from < n; from += BATCH) {
            int k = Math.min(BATCH, n - from);
            loadRun(table + ((long) from << entryLg2), buf, k);
            for (int i = 0; i < k; i++) {
                long e = buf[i];
                if (e == 0) {
                    continue;
                }
                int kind = fmt.kind(e, level);
                long itemVa = va + ((long) (from + i) << il);
                if (kind == PtFormat.LEAF) {
                    int lg2 = fmt.leafLg2(e, level);
                    if (Bits.isAligned(itemVa, lg2)) { // count each run once, at its first entry
                        bytes += 1L << lg2;
                        minLeafLg2 = Math.min(minLeafLg2, lg2);
                    }
                } else if (kind == PtFormat.TABLE) {
                    long child = fmt.tableAddress(e, level);
                    bytes += clearTable(s, child, level - 1, itemVa);
                    s.addFreed(child);
                }
            }
        }
        if (minLeafLg2 < 64) {
            // the whole table goes, so its whole span is invalidated, at the smallest leaf size it held
            s.extend(va, va + (1L << (il + tableItemsLg2[level])) - 1, minLeafLg2);
        }
        return bytes;
    }

    // ------------------------------------------------------------------ lookups

    /** The output address {@code iova} translates to, or {@link #NO_MAPPING}. A read-only walk. */
    public long iovaToPhys(long iova) throws PageTableException {
        Top t = checkedTop();
        if (!vaInRange(iova, iova, t)) {
            return NO_MAPPING;
        }
        try {
            long table = t.pa;
            for (int level = t.level; level >= 0; level--) {
                int items = level == t.level ? topItemsLg2[level] : tableItemsLg2[level];
                long e = load(table + ((long) index(iova, level, items) << entryLg2));
                int kind = fmt.kind(e, level);
                if (kind == PtFormat.EMPTY) {
                    return NO_MAPPING;
                }
                if (kind == PtFormat.LEAF) {
                    int lg2 = fmt.leafLg2(e, level);
                    return Bits.alignDown(fmt.leafOa(e, level), lg2) | (iova & ((1L << lg2) - 1));
                }
                table = fmt.tableAddress(e, level);
            }
            return NO_MAPPING;
        } catch (MemoryAccessException e) {
            throw memoryFault(e);
        }
    }

    /** Fills {@code out} with the leaf that translates {@code iova}; returns false when there is none. */
    public boolean lookup(long iova, PtLookup out) throws PageTableException {
        Top t = checkedTop();
        if (!vaInRange(iova, iova, t)) {
            return false;
        }
        try {
            long table = t.pa;
            for (int level = t.level; level >= 0; level--) {
                int items = level == t.level ? topItemsLg2[level] : tableItemsLg2[level];
                long slot = table + ((long) index(iova, level, items) << entryLg2);
                long e = load(slot);
                int kind = fmt.kind(e, level);
                if (kind == PtFormat.EMPTY) {
                    return false;
                }
                if (kind == PtFormat.LEAF) {
                    int lg2 = fmt.leafLg2(e, level);
                    out.set(Bits.alignDown(iova, lg2), Bits.alignDown(fmt.leafOa(e, level), lg2), lg2, level,
                            fmt.prot(e, level), e, slot);
                    return true;
                }
                table = fmt.tableAddress(e, level);
            }
            return false;
        } catch (MemoryAccessException e) {
            throw memoryFault(e);
        }
    }

    /**
     * Reports each leaf in {@code [iova, iova + size)} that hardware marked dirty, once per leaf, and clears the
     * dirty state unless {@code noClear}. Formats without dirty tracking report nothing.
     *
     * @return bytes reported dirty
     */
    public long readAndClearDirty(long iova, long size, boolean noClear, DirtyConsumer consumer)
            throws PageTableException {
        Top t = checkedTop();
        if (!fmt.tracksDirty() || size == 0) {
            return 0;
        }
        if (Bits.rangeOverflows(iova, size)) {
            throw new PageTableException(PageTableException.Kind.BAD_SIZE, "dirty range wraps past 2^64");
        }
        long last = iova + size - 1;
        checkVa(iova, last);
        if (!vaInRange(iova, last, t)) {
            last = (1L << coveredLg2()) - 1;
        }
        try {
            return dirtyIn(t.pa, t.level, topItemsLg2[t.level], iova, last, noClear, consumer);
        } catch (MemoryAccessException e) {
            throw memoryFault(e);
        }
    }

    private long dirtyIn(long table, int level, int items, long va, long last, boolean noClear,
            DirtyConsumer consumer) throws MemoryAccessException {
        int il = itemLg2[level];
        long bytes = 0;
        long cur = va;
        while (true) {
            long itemStart = Bits.alignDown(cur, il);
            long itemLast = itemStart + (1L << il) - 1;
            long e = load(table + ((long) index(cur, level, items) << entryLg2));
            int kind = fmt.kind(e, level);
            if (kind == PtFormat.LEAF) {
                int lg2 = fmt.leafLg2(e, level);
                long runStart = Bits.alignDown(itemStart, lg2);
                long runSlot = table + ((long) index(runStart, level, items) << entryLg2);
                int runEntries = 1 << (lg2 - il);
                boolean dirty = false;
                for (int i = 0; i < runEntries; i++) {
                    long slot = runSlot + ((long) i << entryLg2);
                    long v = load(slot);
                    while (fmt.kind(v, level) == PtFormat.LEAF && fmt.isDirty(v, level)) {
                        dirty = true;
                        if (noClear) {
                            break;
                        }
                        long witness = cas(slot, v, fmt.clearDirty(v, level));
                        if (witness == v) {
                            break;
                        }
                        v = witness; // hardware changed it meanwhile: look again
                    }
                }
                if (dirty) {
                    consumer.dirty(runStart, 1L << lg2);
                    bytes += 1L << lg2;
                }
                itemLast = runStart + (1L << lg2) - 1;
            } else if (kind == PtFormat.TABLE) {
                long from = Long.compareUnsigned(cur, itemStart) > 0 ? cur : itemStart;
                long to = Long.compareUnsigned(last, itemLast) < 0 ? last : itemLast;
                bytes += dirtyIn(fmt.tableAddress(e, level), level - 1, tableItemsLg2[level - 1], from, to, noClear,
                        consumer);
            }
            if (Long.compareUnsigned(itemLast, last) >= 0 || itemLast == -1L) {
                return bytes;
            }
            cur = itemLast + 1;
        }
    }

    // ------------------------------------------------------------------ teardown

    /**
     * Frees every table page, the top included, straight to the allocator: call it only once no IOMMU can walk
     * the table any more (detached and invalidated). The table cannot be used afterwards.
     */
    public void destroy() throws PageTableException {
        Top t;
        synchronized (growLock) {
            t = top;
            top = null;
        }
        if (t == null) {
            return;
        }
        Scratch s = scratch.get();
        s.freedCount = 0;
        try {
            int n = 1 << topItemsLg2[t.level];
            for (int i = 0; i < n && t.level > 0; i++) {
                long e = load(t.pa + ((long) i << entryLg2));
                if (fmt.kind(e, t.level) == PtFormat.TABLE) {
                    collectTables(s, fmt.tableAddress(e, t.level), t.level - 1);
                }
            }
        } catch (MemoryAccessException e) {
            throw memoryFault(e);
        }
        for (int i = 0; i < s.freedCount; i++) {
            alloc.free(s.freed[i]);
        }
        s.freedCount = 0;
        alloc.free(t.pa);
    }

    // ------------------------------------------------------------------ helpers

    private Top checkedTop() {
        Top t = top;
        if (t == null) {
            throw new IllegalStateException("the page table has been destroyed");
        }
        return t;
    }

    private int index(long va, int level, int items) {
        return (int) ((va >>> itemLg2[level]) & ((1L << items) - 1));
    }

    private long allocTable(int level, boolean isTop) throws PageTableException {
        int items = isTop ? topItemsLg2[level] : tableItemsLg2[level];
        int order = Math.max(0, items + entryLg2 - PageAllocator.PAGE_SHIFT);
        long pa;
        try {
            pa = alloc.allocPages(order, tag);
        } catch (GuestMemoryExhaustedException e) {
            throw new PageTableException(PageTableException.Kind.NO_MEMORY, "no memory for a level-" + level
                    + " table of " + fmt.name() + ": " + e.getMessage(), e);
        }
        // the entry above (or the hardware's base register for the top) must be able to hold the address
        int width = level < maxTop ? fmt.tableOaBits(level + 1) : fmt.oaBits();
        if (!Bits.fitsUnsigned(pa + (1L << (order + PageAllocator.PAGE_SHIFT)) - 1, width)) {
            alloc.free(pa);
            throw new PageTableException(PageTableException.Kind.NO_MEMORY, "the page allocator gave " + Bits.hex(pa)
                    + " for a level-" + level + " table, beyond the " + width + "-bit table addresses of "
                    + fmt.name() + "; give the allocator a pool below 2^" + width);
        }
        return pa;
    }

    private long load(long pa) throws MemoryAccessException {
        return entryLg2 == 3 ? mem.read64(pa) : Integer.toUnsignedLong(mem.read32(pa));
    }

    private void store(long pa, long entry) throws MemoryAccessException {
        if (entryLg2 == 3) {
            mem.write64(pa, entry);
        } else {
            mem.write32(pa, (int) entry);
        }
    }

    private void loadRun(long pa, long[] dst, int n) throws MemoryAccessException {
        if (entryLg2 == 3) {
            mem.read64s(pa, dst, 0, n);
        } else {
            mem.read32s(pa, dst, 0, n);
        }
    }

    private static final long[] ZEROS = new long[BATCH];

    /** Clears {@code n} consecutive entries at {@code pa}, each with an atomic store. */
    private void storeZeros(long pa, int n) throws MemoryAccessException {
        storeRun(pa, ZEROS, n);
    }

    private void storeRun(long pa, long[] src, int n) throws MemoryAccessException {
        if (entryLg2 == 3) {
            mem.write64s(pa, src, 0, n);
        } else {
            mem.write32s(pa, src, 0, n);
        }
    }

    /** Compare-and-exchange of one entry; 32-bit entries go through the 64-bit word that holds them. */
    private long cas(long pa, long expected, long update) throws MemoryAccessException {
        if (entryLg2 == 3) {
            return mem.compareAndExchange64(pa, expected, update);
        }
        long word = pa & ~7L;
        int shift = (int) (pa & 4) * 8;
        while (true) {
            long w = mem.read64(word);
            long cur = (w >>> shift) & 0xFFFF_FFFFL;
            if (cur != (expected & 0xFFFF_FFFFL)) {
                return cur;
            }
            long nw = (w & ~(0xFFFF_FFFFL << shift)) | ((update & 0xFFFF_FFFFL) << shift);
            if (mem.compareAndExchange64(word, w, nw) == w) {
                return expected;
            }
        }
    }

    private PageTableException inUse(long va, long entry, int level) {
        int lg2 = fmt.leafLg2(entry, level);
        long start = Bits.alignDown(va, lg2);
        return new PageTableException(PageTableException.Kind.ADDRESS_IN_USE, "iova " + Bits.hex(va)
                + " is already mapped (a " + Bits.hex(1L << lg2) + "-byte leaf at " + Bits.hex(start) + " -> "
                + Bits.hex(Bits.alignDown(fmt.leafOa(entry, level), lg2)) + ")");
    }

    private static PageTableException memoryFault(MemoryAccessException e) {
        return new PageTableException(PageTableException.Kind.MEMORY_FAULT, "page-table memory access failed: "
                + e.getMessage(), e);
    }

    @Override
    public String toString() {
        Top t = top;
        return "PageTable[" + fmt.name() + (t == null ? ", destroyed" : ", top level " + t.level + " at "
                + Bits.hex(t.pa)) + "]";
    }
}
