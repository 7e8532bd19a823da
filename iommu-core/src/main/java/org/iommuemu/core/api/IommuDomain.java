package org.iommuemu.core.api;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongSupplier;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.bits.Sizes;
import org.iommuemu.core.concurrent.PerThread;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PageSizes;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.PageTableException;
import org.iommuemu.core.pgtable.PtFormat;

/**
 * An IOMMU domain: one I/O address space (a {@link PageTable} in guest memory) that DMA of the devices
 * attached to it is translated through, and the IOMMU API on it (Linux's {@code iommu_map},
 * {@code iommu_map_sg}, {@code iommu_unmap}, {@code iommu_iova_to_phys}, and dma-iommu's flush queue).
 * Built with {@link #builder(PtFormat, PhysicalMemory, PageAllocator)} or {@link #builder(PageTable,
 * PageAllocator)}.
 *
 * <h2>Instances and page sizes</h2>
 * A domain may be attached to several IOMMU instances at once ({@link #attach}); they all walk the same page
 * table, and every invalidation goes to every attached instance. The domain maps with the page sizes of its
 * format that every attached instance supports ({@link #pageSizes()}); an instance that lacks the format's
 * minimum page size cannot be attached, and one that lacks a larger size in use can be attached only while
 * nothing is mapped (existing leaves might have that size). Addresses and sizes given to map, mapSg and unmap
 * must be multiples of the minimum page size and lie in the {@link #apertureStart() aperture}; nothing is ever
 * rounded.
 *
 * <h2>Map-side synchronisation</h2>
 * A {@link #map} or {@link #mapSg} call writes all its entries first, then synchronises once, for the whole
 * range of the call:
 * <ol>
 *   <li>if installing a large leaf replaced lower tables that mapped nothing, the walk caches must forget
 *       those tables: one unmap-side sync ({@link IommuInstanceOps#iotlbSync}, with
 *       {@link IotlbGather#freedTables()} set) goes to every attached instance, and only then are the table
 *       pages returned to the allocator;</li>
 *   <li>one {@link IommuInstanceOps#iotlbSyncMap} over {@code [iova, iova + size)} goes to every attached
 *       instance that {@link IommuInstanceOps#needsMapSync() needs it}; instances that do not get nothing.</li>
 * </ol>
 * A call that fails unmaps what it had mapped (an unmap-side sync, always strict) and issues no map-side
 * sync. In {@link FlushPolicy#LAZY} mode, a map whose range overlaps a range still waiting in the flush queue
 * first flushes the queue: the iova is being reused, and a TLB entry of the old mapping must not serve the
 * new one.
 *
 * <h2>Unmap-side synchronisation</h2>
 * {@link #unmap} clears the entries through an {@link IotlbGather} that belongs to the calling thread, so the
 * whole range of one call becomes one gathered range (page size: the smallest leaf removed; tables whose span
 * lies inside the range are freed).
 * <ul>
 *   <li>{@link FlushPolicy#STRICT}: before unmap returns, the gather syncs once: one
 *       {@link IommuInstanceOps#iotlbSync} per attached instance (leaf-only unless tables were freed), then the
 *       freed table pages go back to the allocator. An unmap that removed nothing syncs nothing.</li>
 *   <li>{@link FlushPolicy#LAZY}: the gathered range and the freed table pages go to the flush queue instead;
 *       unmap returns without invalidating. The queue is flushed, by one {@link IommuInstanceOps#flushIotlbAll}
 *       per attached instance, when it holds {@link Builder#flushQueueCapacity capacity} ranges (checked after
 *       each unmap), when its oldest entry has waited {@link Builder#flushQueueTimeoutNanos timeout} nanoseconds
 *       or more (checked at each map, mapSg and unmap, and by {@link #flushQueueIfExpired()}), when a map
 *       overlaps a queued range, before an instance is detached, and on {@link #flushQueue()} or
 *       {@link #flushAll()}. Only once that flush has completed are the queued table pages released. A real
 *       driver calls {@link #flushQueueIfExpired()} from a timer so an idle domain does not keep stale
 *       entries for ever; {@link FlushQueueTimer} does that.</li>
 * </ul>
 * Freed table pages are never released before every instance attached at the time has completed an
 * invalidation that covers them, so no walk can reach a page that has been handed out again.
 *
 * <h2>Threads</h2>
 * Threads may map and unmap disjoint ranges concurrently (as the page table allows). Each thread uses its own
 * gathers; flushes of the queue are serialised; instance operations may be called from several threads at
 * once. Attach, detach and destroy are not meant to race with map or unmap of the same domain (as in Linux, a
 * caller attaches before mapping and unmaps before detaching). The map and unmap paths allocate nothing once
 * warmed up (per-thread gathers, primitive arrays in the queue).
 *
 * <h2>Errors</h2>
 * Every refused operation throws {@link IommuApiException} with a message naming the values and a
 * {@link IommuApiException.Kind}. A {@code RuntimeException} from an instance (a driver whose sync failed)
 * reaches the caller; the table pages that the failed sync was to release are then kept allocated for ever
 * (never reused while an IOMMU might still walk them).
 */
public final class IommuDomain {
    /** {@link #iovaToPhys} of an address that nothing maps. */
    public static final long NO_MAPPING = PageTable.NO_MAPPING;
    /** Default bound of the flush queue: ranges waiting before a flush (the size of one of Linux's per-CPU queues). */
    public static final int DEFAULT_FLUSH_QUEUE_CAPACITY = 256;
    /** Default time bound of the flush queue: 10 ms (Linux's IOVA_FQ_TIMEOUT). */
    public static final long DEFAULT_FLUSH_QUEUE_TIMEOUT_NANOS = 10_000_000L;

    private static final IommuInstanceOps[] NONE = new IommuInstanceOps[0];
    private static final AtomicInteger IDS = new AtomicInteger();

    private final int id;
    private final String name;
    private final PageTable table;
    private final PageAllocator alloc;
    private final long formatSizes;
    private final int minLg2;
    private final long minMask;
    private final long apertureStart;
    private final long apertureLast;
    private final FlushPolicy policy;
    private final LongSupplier clock;
    /** Null in STRICT mode. */
    private final FlushQueue queue;
    private final GatherAllocator releasing = new GatherAllocator(false);
    private final GatherAllocator deferring = new GatherAllocator(true);
    private final PerThread<Gathers> gathers = new PerThread<>(Gathers::new);

    private final Object attachLock = new Object();
    private final Object flushLock = new Object();
    private volatile IommuInstanceOps[] instances = NONE;
    private volatile IommuInstanceOps[] mapSyncInstances = NONE;
    private volatile long pageSizes;
    private volatile boolean destroyed;
    /** Who is told of maps, unmaps and flushes; null (the default) costs one volatile read per call. */
    private volatile MappingObserver observer;

    private final LongAdder mapSyncs = new LongAdder();
    private final LongAdder unmapSyncs = new LongAdder();
    private final LongAdder fullFlushes = new LongAdder();
    private final LongAdder queueFlushes = new LongAdder();
    private final LongAdder tablePagesFreed = new LongAdder();
    private final LongAdder mappedBytes = new LongAdder();

    /** The gathers of one thread: one that syncs with the instances, one that feeds the flush queue. */
    private final class Gathers {
        final IotlbGather strict = new IotlbGather(IommuDomain.this::syncInstances, releasing);
        final IotlbGather lazy = queue == null ? null : new IotlbGather(IommuDomain.this::queueRange, deferring);
    }

    private IommuDomain(Builder b, int id, PageTable table) {
        this.id = id;
        this.name = b.name != null ? b.name : "domain" + id;
        this.table = table;
        this.alloc = b.alloc;
        this.formatSizes = table.pageSizes();
        this.minLg2 = table.minPageLg2();
        this.minMask = (1L << minLg2) - 1;
        this.apertureStart = b.apertureStart;
        this.apertureLast = b.apertureLast;
        this.policy = b.policy;
        this.clock = b.clock;
        this.queue = policy == FlushPolicy.LAZY ? new FlushQueue(b.capacity, b.timeoutNanos, b.clock) : null;
        this.pageSizes = formatSizes;
    }

    /**
     * Told what the domain's user means to have mapped, for checkers that keep a shadow of the mappings (the
     * emulator's DMA sanitizer). Calls come on the thread of the operation, after it succeeded, and must not call
     * back into the domain. A failed map or mapSg (unwound) and an unmap that removed nothing are not reported.
     *
     * <p>Ordering, which a shadow relies on: {@link #unmapped} comes after the unmap's invalidation completed
     * (STRICT) or after its range was queued (LAZY); {@link #flushStarting} comes before a full flush decides which
     * queued ranges it covers, and {@link #flushed} once that flush has completed on every instance. So every
     * range reported unmapped before a {@code flushStarting} is covered by the {@code flushed} that follows it.
     */
    public interface MappingObserver {
        /** {@code [iova, iova + size)} now translates to {@code [pa, pa + size)} with {@code prot}. */
        void mapped(IommuDomain domain, long iova, long pa, long size, int prot);

        /**
         * The leaves starting in {@code [iova, iova + size)} were removed ({@code size} is the larger of the
         * requested size and the bytes removed, so a large leaf unmapped from its start is covered whole).
         */
        void unmapped(IommuDomain domain, long iova, long size);

        /** A full flush (queue flush, flushAll) is about to decide what it covers. */
        default void flushStarting(IommuDomain domain) {
        }

        /** The full flush announced by the last {@link #flushStarting} completed on every attached instance. */
        void flushed(IommuDomain domain);

        /** The domain was destroyed. */
        void destroyed(IommuDomain domain);
    }

    // ------------------------------------------------------------------ construction

    /** A domain over a new, empty page table of {@code fmt} in {@code mem}, with table pages from {@code alloc}. */
    public static Builder builder(PtFormat fmt, PhysicalMemory mem, PageAllocator alloc) {
        return new Builder(given(fmt, "format"), given(mem, "physical memory"),
                null, given(alloc, "page allocator"));
    }

    /**
     * A domain over an existing page table, which it takes over (its {@link #destroy()} destroys the table).
     * {@code alloc} must be the allocator the table's pages come from: freed tables are returned to it.
     */
    public static Builder builder(PageTable table, PageAllocator alloc) {
        return new Builder(given(table, "page table").format(), null, table,
                given(alloc, "page allocator"));
    }

    /** {@code value}, or an IllegalArgumentException naming what is missing. */
    private static <T> T given(T value, String what) {
        if (value == null) {
            throw new IllegalArgumentException("IommuDomain.builder: the " + what + " is null");
        }
        return value;
    }

    /**
     * Configures a domain; {@link #build()} creates it. Not thread-safe. A null argument is refused with an
     * IllegalArgumentException naming it.
     */
    public static final class Builder {
        private final PtFormat fmt;
        private final PhysicalMemory mem;
        private final PageTable existing;
        private final PageAllocator alloc;
        private String name;
        private boolean built;
        private String tableTag = PageTable.TAG;
        private boolean apertureSet;
        private long apertureStart;
        private long apertureLast;
        private FlushPolicy policy = FlushPolicy.STRICT;
        private int capacity = DEFAULT_FLUSH_QUEUE_CAPACITY;
        private long timeoutNanos = DEFAULT_FLUSH_QUEUE_TIMEOUT_NANOS;
        private LongSupplier clock = System::nanoTime;

        private Builder(PtFormat fmt, PhysicalMemory mem, PageTable existing, PageAllocator alloc) {
            this.fmt = fmt;
            this.mem = mem;
            this.existing = existing;
            this.alloc = alloc;
        }

        /** A name for messages; default {@code "domain<id>"}. */
        public Builder name(String name) {
            this.name = given(name, "name");
            return this;
        }

        /** The allocation tag of the table pages of a new table; default {@link PageTable#TAG}. */
        public Builder tableTag(String tag) {
            this.tableTag = given(tag, "table tag");
            return this;
        }

        /**
         * The iova range the domain accepts, {@code [start, last]} inclusive; default the format's input range
         * (its lower half for a sign-extended format). Must lie in the format's input range, with {@code start}
         * and {@code last + 1} multiples of the format's minimum page size.
         */
        public Builder aperture(long start, long last) {
            this.apertureSet = true;
            this.apertureStart = start;
            this.apertureLast = last;
            return this;
        }

        /** When unmaps invalidate; default {@link FlushPolicy#STRICT}. */
        public Builder flushPolicy(FlushPolicy policy) {
            this.policy = given(policy, "flush policy");
            return this;
        }

        /** LAZY: how many unmapped ranges may wait before a flush; default {@value #DEFAULT_FLUSH_QUEUE_CAPACITY}. */
        public Builder flushQueueCapacity(int capacity) {
            if (capacity < 1) {
                throw new IllegalArgumentException("flush queue capacity " + capacity + ": must be at least 1");
            }
            this.capacity = capacity;
            return this;
        }

        /** LAZY: how long the oldest queued entry may wait; default 10 ms. */
        public Builder flushQueueTimeoutNanos(long timeoutNanos) {
            if (timeoutNanos <= 0) {
                throw new IllegalArgumentException("flush queue timeout " + timeoutNanos + " ns: must be positive");
            }
            this.timeoutNanos = timeoutNanos;
            return this;
        }

        /** The clock of the flush queue's time bound, in nanoseconds; default {@code System::nanoTime}. */
        public Builder clock(LongSupplier nanoTime) {
            this.clock = given(nanoTime, "clock");
            return this;
        }

        /**
         * Creates the domain (and, for {@link #builder(PtFormat, PhysicalMemory, PageAllocator)}, its empty page
         * table).
         *
         * @throws IllegalArgumentException if the aperture does not fit the format
         * @throws IllegalStateException when a builder over an existing page table has built its domain already
         *     (a table belongs to one domain)
         * @throws IommuApiException PAGE_TABLE (NO_MEMORY) when the top table cannot be allocated
         */
        public IommuDomain build() throws IommuApiException {
            if (existing != null && built) {
                throw new IllegalStateException("the page table " + existing + " belongs to a domain already");
            }
            int minLg2 = PageSizes.minLg2(fmt.pageSizes());
            if (minLg2 < 0) {
                throw new IllegalArgumentException(fmt.name() + " has no page sizes");
            }
            if (!apertureSet) {
                apertureStart = 0;
                int bits = fmt.vaBits();
                apertureLast = bits >= 64 ? -1L : (1L << (fmt.vaSignExtended() ? bits - 1 : bits)) - 1;
            }
            checkAperture(minLg2);
            PageTable pt = existing;
            if (pt == null) {
                try {
                    pt = new PageTable(fmt, mem, alloc, tableTag);
                } catch (PageTableException e) {
                    throw new IommuApiException(IommuApiException.Kind.PAGE_TABLE, "cannot create the page table"
                            + (name == null ? "" : " of " + name) + ": " + e.getMessage(), e);
                }
            }
            built = true;
            return new IommuDomain(this, IDS.incrementAndGet(), pt);
        }

        private void checkAperture(int minLg2) {
            String what = "aperture [" + Bits.hex(apertureStart) + ", " + Bits.hex(apertureLast) + "]"
                    + (name == null ? "" : " of " + name);
            if (Long.compareUnsigned(apertureStart, apertureLast) > 0) {
                throw new IllegalArgumentException(what + ": start is above last");
            }
            if (!Bits.isAligned(apertureStart, minLg2) || !Bits.isAligned(apertureLast + 1, minLg2)) {
                throw new IllegalArgumentException(what + ": start and last + 1 must be multiples of the minimum"
                        + " page size " + Bits.hex(1L << minLg2));
            }
            int bits = fmt.vaBits();
            if (bits >= 64) {
                return;
            }
            boolean ok;
            if (fmt.vaSignExtended()) {
                long half = apertureStart >> (bits - 1);
                ok = (half == 0 || half == -1) && (apertureLast >> (bits - 1)) == half;
            } else {
                ok = Bits.fitsUnsigned(apertureLast, bits);
            }
            if (!ok) {
                throw new IllegalArgumentException(what + ": outside the " + bits + "-bit input range of "
                        + fmt.name());
            }
        }
    }

    // ------------------------------------------------------------------ accessors

    /** A number unique among the domains of this JVM. */
    public int id() {
        return id;
    }

    public String name() {
        return name;
    }

    /**
     * The page table (for drivers: its {@link PageTable#root() root} and {@link PageTable#format() format} go
     * into STEs/context entries; for tests: {@link PageTable#lookup}). Changing it directly bypasses the
     * domain's invalidations.
     */
    public PageTable pageTable() {
        return table;
    }

    public PtFormat format() {
        return table.format();
    }

    /** The page sizes maps use: the format's, restricted to those every attached instance supports. */
    public long pageSizes() {
        return pageSizes;
    }

    /** The minimum page size in bytes: every address and size must be a multiple of it. */
    public long minPageSize() {
        return 1L << minLg2;
    }

    /** First iova of the aperture. */
    public long apertureStart() {
        return apertureStart;
    }

    /** Last iova of the aperture, inclusive. */
    public long apertureLast() {
        return apertureLast;
    }

    public FlushPolicy flushPolicy() {
        return policy;
    }

    /** Now, on the clock of the flush queue's time bound (see {@link Builder#clock}). */
    public long clockNanos() {
        return clock.getAsLong();
    }

    /** Sets (or, with null, removes) the {@link MappingObserver}; one per domain. */
    public void mappingObserver(MappingObserver observer) {
        this.observer = observer;
    }

    /** The {@link MappingObserver}, or null. */
    public MappingObserver mappingObserver() {
        return observer;
    }

    /** The instances attached now, in attach order (a snapshot). */
    public List<IommuInstanceOps> instances() {
        return List.of(instances);
    }

    public boolean isAttached(IommuInstanceOps instance) {
        return indexOf(instances, instance) >= 0;
    }

    public boolean isDestroyed() {
        return destroyed;
    }

    /** Map and mapSg calls that issued a map-side sync (each one to every instance that needs it). */
    public long mapSyncs() {
        return mapSyncs.sum();
    }

    /**
     * Gather syncs sent to the instances ({@link IommuInstanceOps#iotlbSync}, each to every attached
     * instance): STRICT unmaps, unwinding of failed maps, and tables replaced by maps. Counted even when no
     * instance is attached (the count is of the domain's decisions; each instance counts its own work).
     */
    public long unmapSyncs() {
        return unmapSyncs.sum();
    }

    /**
     * Rounds of {@link IommuInstanceOps#flushIotlbAll} to every attached instance: {@link #flushAll()}, queue
     * flushes, and the flush after a fault on table memory during unmap. Counted even with no instance.
     */
    public long fullFlushes() {
        return fullFlushes.sum();
    }

    /** Flushes of the LAZY flush queue (capacity, time, overlap, detach, {@link #flushQueue()}). */
    public long queueFlushes() {
        return queueFlushes.sum();
    }

    /**
     * Table pages returned to the allocator after an invalidation (gather syncs, queue flushes, and the queued
     * pages {@link #destroy()} releases); not the tables {@link PageTable#destroy()} frees at the end.
     */
    public long tablePagesFreed() {
        return tablePagesFreed.sum();
    }

    /** Bytes mapped now, as map, mapSg and unmap counted them. */
    public long mappedBytes() {
        return mappedBytes.sum();
    }

    /** LAZY: unmapped ranges waiting in the flush queue (0 in STRICT mode). */
    public int queuedRanges() {
        return queue == null ? 0 : queue.rangeCount();
    }

    /** LAZY: freed table blocks waiting in the flush queue (0 in STRICT mode). */
    public int queuedTablePages() {
        return queue == null ? 0 : queue.pageCount();
    }

    /** LAZY: the range bound of the flush queue; 0 in STRICT mode. */
    public int flushQueueCapacity() {
        return queue == null ? 0 : queue.capacity();
    }

    /** LAZY: the time bound of the flush queue; 0 in STRICT mode. */
    public long flushQueueTimeoutNanos() {
        return queue == null ? 0 : queue.timeoutNanos();
    }

    // ------------------------------------------------------------------ attach / detach / destroy

    /**
     * Attaches an instance: from now on it gets every invalidation of this domain, and maps use only page sizes
     * it supports. The driver makes the instance walk {@link #pageTable()} and starts it with no stale entry
     * of this domain cached.
     *
     * @throws IommuApiException INCOMPATIBLE_INSTANCE when the instance lacks the minimum page size, or lacks a
     *     page size in use while something is mapped; ALREADY_ATTACHED; DESTROYED; BAD_ARGUMENT for null
     */
    public void attach(IommuInstanceOps instance) throws IommuApiException {
        if (instance == null) {
            throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, "attach to " + describe()
                    + ": the instance is null");
        }
        synchronized (attachLock) {
            checkLive("attach " + instance.name());
            IommuInstanceOps[] now = instances;
            if (indexOf(now, instance) >= 0) {
                throw new IommuApiException(IommuApiException.Kind.ALREADY_ATTACHED, instance.name()
                        + " is attached to " + describe() + " already");
            }
            long supported = instance.pageSizes();
            if ((supported & (1L << minLg2)) == 0) {
                throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot attach "
                        + instance.name() + " to " + describe() + ": it supports page sizes " + sizeList(supported)
                        + " but the domain's page table (" + table.format().name() + ") needs its minimum page size "
                        + Sizes.format(1L << minLg2));
            }
            long current = pageSizes;
            long lost = current & ~supported;
            if (lost != 0 && mappedBytes.sum() != 0) {
                throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot attach "
                        + instance.name() + " to " + describe() + ": it lacks page sizes " + sizeList(lost)
                        + " that the domain's existing mappings (" + Bits.hex(mappedBytes.sum()) + " bytes) may use;"
                        + " attach it before mapping");
            }
            IommuInstanceOps[] next = Arrays.copyOf(now, now.length + 1);
            next[now.length] = instance;
            instances = next;
            if (instance.needsMapSync()) {
                IommuInstanceOps[] ms = mapSyncInstances;
                IommuInstanceOps[] nextMs = Arrays.copyOf(ms, ms.length + 1);
                nextMs[ms.length] = instance;
                mapSyncInstances = nextMs;
            }
            pageSizes = current & supported;
        }
    }

    /**
     * Detaches an instance: it gets no more invalidations of this domain. In LAZY mode the flush queue is
     * flushed first (to every instance, this one included), so the instance leaves with no queued range still
     * cached. The driver stops the instance walking the table, and must invalidate this domain's entries before
     * it could ever be attached again. The page sizes grow back to what the remaining instances support.
     *
     * @throws IommuApiException NOT_ATTACHED; BAD_ARGUMENT for null
     */
    public void detach(IommuInstanceOps instance) throws IommuApiException {
        if (instance == null) {
            throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, "detach from " + describe()
                    + ": the instance is null");
        }
        if (indexOf(instances, instance) < 0) {
            throw notAttached(instance);
        }
        if (queue != null) {
            fullFlush(true, true);
        }
        synchronized (attachLock) {
            IommuInstanceOps[] now = instances;
            int k = indexOf(now, instance);
            if (k < 0) {
                throw notAttached(instance);
            }
            IommuInstanceOps[] next = new IommuInstanceOps[now.length - 1];
            System.arraycopy(now, 0, next, 0, k);
            System.arraycopy(now, k + 1, next, k, now.length - k - 1);
            long sizes = formatSizes;
            int syncing = 0;
            for (IommuInstanceOps i : next) {
                sizes &= i.pageSizes();
                syncing += i.needsMapSync() ? 1 : 0;
            }
            IommuInstanceOps[] ms = new IommuInstanceOps[syncing];
            int j = 0;
            for (IommuInstanceOps i : next) {
                if (i.needsMapSync()) {
                    ms[j++] = i;
                }
            }
            instances = next;
            mapSyncInstances = ms;
            pageSizes = sizes;
        }
    }

    private IommuApiException notAttached(IommuInstanceOps instance) {
        return new IommuApiException(IommuApiException.Kind.NOT_ATTACHED, instance.name() + " is not attached to "
                + describe());
    }

    /**
     * Destroys the domain: releases the table pages waiting in the flush queue, then every table page
     * ({@link PageTable#destroy()}). No instance is attached, so none can walk the table any more (a detached
     * instance was flushed, or its driver invalidated the domain, when it left). Destroying twice does nothing;
     * any other operation on a destroyed domain fails with DESTROYED.
     *
     * @throws IommuApiException STILL_ATTACHED (naming the instances) while an instance is attached
     */
    public void destroy() throws IommuApiException {
        synchronized (attachLock) {
            if (destroyed) {
                return;
            }
            IommuInstanceOps[] now = instances;
            if (now.length > 0) {
                StringBuilder names = new StringBuilder();
                for (IommuInstanceOps i : now) {
                    names.append(names.length() == 0 ? "" : ", ").append(i.name());
                }
                throw new IommuApiException(IommuApiException.Kind.STILL_ATTACHED, "cannot destroy " + describe()
                        + ": it is still attached to " + names + "; detach it first");
            }
            destroyed = true;
        }
        MappingObserver ob = observer;
        if (ob != null) {
            ob.destroyed(this);
        }
        if (queue != null) {
            synchronized (flushLock) {
                int pages = queue.drain(queue.size(), 0);
                for (int k = 0; k < pages; k++) {
                    releasePage(queue.drained(k));
                }
            }
        }
        try {
            table.destroy();
        } catch (PageTableException e) {
            throw pageTableError("destroy of " + describe(), e);
        }
    }

    // ------------------------------------------------------------------ map

    /**
     * Maps {@code [iova, iova + size)} to physical {@code [pa, pa + size)} with {@code prot} ({@link
     * org.iommuemu.core.pgtable.Prot} bits), in the largest page sizes the alignment allows, then synchronises
     * once (see the class comment). All or nothing.
     *
     * @return {@code size}
     * @throws IommuApiException BAD_ARGUMENT (zero size, wrap), OUT_OF_APERTURE, MISALIGNED, PAGE_TABLE
     *     (ADDRESS_IN_USE when part of the range is mapped, BAD_PROT, OA_TOO_WIDE, NO_MEMORY...), DESTROYED
     */
    public long map(long iova, long pa, long size, int prot) throws IommuApiException {
        checkLive("map");
        checkRange("map", iova, size);
        if (Bits.rangeOverflows(pa, size)) {
            throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, "map of " + Bits.hex(size)
                    + " bytes at iova " + Bits.hex(iova) + " -> pa " + Bits.hex(pa) + " in " + describe()
                    + ": the physical range wraps past 2^64");
        }
        if (((iova | pa | size) & minMask) != 0) {
            throw new IommuApiException(IommuApiException.Kind.MISALIGNED, "map of " + Bits.hex(size)
                    + " bytes at iova " + Bits.hex(iova) + " -> pa " + Bits.hex(pa) + " in " + describe() + ": "
                    + misaligned(iova, pa, size) + " not a multiple of the minimum page size "
                    + Bits.hex(1L << minLg2));
        }
        if (queue != null) {
            beforeLazyMap(iova, iova + size - 1);
        }
        IotlbGather g = gathers.get().strict;
        try {
            mapRange(iova, pa, size, prot, g, pageSizes);
        } catch (PageTableException | RuntimeException e) {
            syncAfterFailure(g, e);
            if (e instanceof RuntimeException r) {
                throw r;
            }
            throw pageTableError("map of " + Bits.hex(size) + " bytes at iova " + Bits.hex(iova) + " -> pa "
                    + Bits.hex(pa) + " in " + describe(), (PageTableException) e);
        }
        finishMap(g, iova, size);
        MappingObserver ob = observer;
        if (ob != null) {
            ob.mapped(this, iova, pa, size, prot);
        }
        return size;
    }

    /** "the size 0x1800 is" / "iova 0x1200 and size 0x1800 are": the values that are not page multiples. */
    private String misaligned(long iova, long pa, long size) {
        List<String> bad = new ArrayList<>();
        if ((iova & minMask) != 0) {
            bad.add("iova " + Bits.hex(iova));
        }
        if ((pa & minMask) != 0) {
            bad.add("pa " + Bits.hex(pa));
        }
        if ((size & minMask) != 0) {
            bad.add("size " + Bits.hex(size));
        }
        return String.join(" and ", bad) + (bad.size() == 1 ? " is" : " are");
    }

    /**
     * Maps a scatter-gather list back to back from {@code iova}: entry 0 at {@code iova}, entry 1 right after
     * it, and so on. Physically contiguous entries (one's end is the next one's start) are mapped together, so
     * larger pages become possible. Each entry's start ({@code address + offset}) and length must be multiples
     * of the minimum page size: what the IOMMU's pages cannot express exactly is refused, never rounded up (a
     * list of 64 KiB CPU pages on a 4 KiB IOMMU maps exactly those bytes). One map-side sync at the end; on any
     * failure everything this call mapped is unmapped again.
     *
     * @return bytes mapped: the sum of the lengths
     * @throws IommuApiException BAD_ARGUMENT (null or empty list, null entry, zero length, wrap, total past
     *     2^64), MISALIGNED, OUT_OF_APERTURE, PAGE_TABLE, DESTROYED; {@link IommuApiException#sgIndex()} names
     *     the entry (for a failed coalesced run, its first entry)
     */
    public long mapSg(long iova, List<SgEntry> sg, int prot) throws IommuApiException {
        checkLive("mapSg");
        String call = "mapSg at iova " + Bits.hex(iova) + " in " + describe();
        if (sg == null) {
            throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, call
                    + ": the scatter-gather list is null");
        }
        if (sg.isEmpty()) {
            throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, call
                    + ": the scatter-gather list is empty");
        }
        long total = checkSg(call, sg);
        checkRange("mapSg", iova, total);
        if (queue != null) {
            beforeLazyMap(iova, iova + total - 1);
        }
        IotlbGather g = gathers.get().strict;
        long sizes = pageSizes;
        long mapped = 0;
        int index = 0;
        int runFirst = 0;
        long runPa = 0;
        long runLen = 0;
        try {
            for (Iterator<SgEntry> it = sg.iterator(); it.hasNext(); index++) {
                SgEntry e = it.next();
                long start = e.address() + e.offset();
                if (runLen != 0 && start == runPa + runLen && start != 0) {
                    runLen += e.length();
                    continue;
                }
                if (runLen != 0) {
                    mapRange(iova + mapped, runPa, runLen, prot, g, sizes);
                    mapped += runLen;
                }
                runFirst = index;
                runPa = start;
                runLen = e.length();
            }
            mapRange(iova + mapped, runPa, runLen, prot, g, sizes);
        } catch (PageTableException | RuntimeException e) {
            unwind(iova, mapped, g, e);
            syncAfterFailure(g, e);
            if (e instanceof RuntimeException r) {
                throw r;
            }
            int runLast = runFirst;
            long covered = 0;
            for (int k = runFirst; k < sg.size() && covered < runLen; k++) {
                covered += sg.get(k).length();
                runLast = k;
            }
            String entries = runLast == runFirst ? "entry " + runFirst : "entries " + runFirst + ".." + runLast
                    + " (one physically contiguous run)";
            throw new IommuApiException(IommuApiException.Kind.PAGE_TABLE, call + ": sg " + entries + " at iova "
                    + Bits.hex(iova + mapped) + " -> pa " + Bits.hex(runPa) + ", " + Bits.hex(runLen)
                    + " bytes, could not be mapped: " + e.getMessage()
                    + (mapped == 0 ? "" : "; the " + Bits.hex(mapped) + " bytes mapped before it were unmapped again"),
                    e, runFirst);
        }
        finishMap(g, iova, total);
        MappingObserver ob = observer;
        if (ob != null) {
            long at = iova;
            for (SgEntry e : sg) {
                ob.mapped(this, at, e.address() + e.offset(), e.length(), prot);
                at += e.length();
            }
        }
        return total;
    }

    /** Validates every entry; returns the total length. */
    private long checkSg(String call, List<SgEntry> sg) throws IommuApiException {
        long total = 0;
        int i = 0;
        for (SgEntry e : sg) {
            if (e == null) {
                throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, call + ": sg entry " + i
                        + " is null", null, i);
            }
            long start = e.address() + e.offset();
            if (Long.compareUnsigned(start, e.address()) < 0) {
                throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, call + ": sg entry " + i
                        + ": address " + Bits.hex(e.address()) + " + offset " + Bits.hex(e.offset())
                        + " wraps past 2^64", null, i);
            }
            if (e.length() == 0) {
                throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, call + ": sg entry " + i
                        + " has length 0", null, i);
            }
            if ((start & minMask) != 0) {
                throw new IommuApiException(IommuApiException.Kind.MISALIGNED, call + ": sg entry " + i
                        + " starts at physical address " + Bits.hex(start) + " (address " + Bits.hex(e.address())
                        + " + offset " + Bits.hex(e.offset()) + "), not a multiple of the minimum page size "
                        + Bits.hex(1L << minLg2) + ": the IOMMU cannot map part of a page", null, i);
            }
            if ((e.length() & minMask) != 0) {
                throw new IommuApiException(IommuApiException.Kind.MISALIGNED, call + ": sg entry " + i
                        + " has length " + Bits.hex(e.length()) + ", not a multiple of the minimum page size "
                        + Bits.hex(1L << minLg2) + ": mapping it would expose the rest of a page", null, i);
            }
            if (Bits.rangeOverflows(start, e.length())) {
                throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, call + ": sg entry " + i + " ("
                        + Bits.hex(e.length()) + " bytes at " + Bits.hex(start) + ") wraps past 2^64", null, i);
            }
            long sum = total + e.length();
            if (Long.compareUnsigned(sum, total) < 0) {
                throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, call + ": the total length"
                        + " overflows 2^64 at sg entry " + i, null, i);
            }
            total = sum;
            i++;
        }
        return total;
    }

    /**
     * Maps through the page table using only {@code sizes} (the format's sizes every attached instance
     * supports). The page table is all or nothing: on failure it has removed what this call mapped.
     */
    private void mapRange(long iova, long pa, long size, int prot, IotlbGather g, long sizes)
            throws PageTableException {
        table.map(iova, pa, size, prot, sizes, g);
    }

    /** Unmaps the first {@code length} bytes a failed map call had mapped; a failure is added to {@code cause}. */
    private void unwind(long iova, long length, IotlbGather g, Exception cause) {
        if (length == 0) {
            return;
        }
        try {
            table.unmap(iova, length, g);
        } catch (PageTableException | RuntimeException e) {
            cause.addSuppressed(e);
        }
    }

    /**
     * After a failed map: syncs what the unwinding gathered; an instance failing (again) is recorded on
     * {@code cause}, which the caller throws.
     */
    private void syncAfterFailure(IotlbGather g, Exception cause) {
        try {
            syncGather(g);
        } catch (RuntimeException s) {
            if (s != cause) {
                cause.addSuppressed(s);
            }
        }
    }

    /**
     * The end of a successful map: sync replaced tables, then one map-side sync. If an instance fails, the
     * range is unmapped again (as Linux does when iotlb_sync_map fails) and the exception propagates.
     */
    private void finishMap(IotlbGather g, long iova, long size) {
        IommuInstanceOps[] ms = mapSyncInstances;
        try {
            syncGather(g);
            for (IommuInstanceOps i : ms) {
                i.iotlbSyncMap(this, iova, size);
            }
        } catch (RuntimeException e) {
            unwind(iova, size, g, e);
            syncAfterFailure(g, e);
            throw e;
        }
        mappedBytes.add(size);
        if (ms.length != 0) {
            mapSyncs.increment();
        }
    }

    /** LAZY: a map reusing a queued iova flushes the queue first; an expired queue is flushed too. */
    private void beforeLazyMap(long first, long last) {
        if (!queue.isEmpty() && (queue.overlaps(first, last) || queue.expired())) {
            fullFlush(true, true);
        }
    }

    // ------------------------------------------------------------------ unmap

    /**
     * Unmaps the leaves that start in {@code [iova, iova + size)} (whole: a large leaf is removed entirely when
     * the range starts at its start), then STRICT: syncs once before returning; LAZY: queues the range and the
     * freed tables (see the class comment).
     *
     * @return bytes unmapped (the full size of every leaf removed; 0 over a hole)
     * @throws IommuApiException BAD_ARGUMENT, OUT_OF_APERTURE, MISALIGNED, PAGE_TABLE (UNMAP_SPLIT when
     *     {@code iova} is inside a larger leaf; MEMORY_FAULT), DESTROYED
     */
    public long unmap(long iova, long size) throws IommuApiException {
        checkLive("unmap");
        checkRange("unmap", iova, size);
        if (((iova | size) & minMask) != 0) {
            throw new IommuApiException(IommuApiException.Kind.MISALIGNED, "unmap of " + Bits.hex(size)
                    + " bytes at iova " + Bits.hex(iova) + " in " + describe() + ": "
                    + misaligned(iova, 0, size) + " not a multiple of the minimum page size "
                    + Bits.hex(1L << minLg2));
        }
        Gathers gs = gathers.get();
        IotlbGather g = queue == null ? gs.strict : gs.lazy;
        long bytes;
        try {
            bytes = table.unmap(iova, size, g);
        } catch (PageTableException e) {
            if (e.kind() == PageTableException.Kind.MEMORY_FAULT) {
                // entries may have been cleared without reaching the gather: forget everything
                fullFlush(false, false);
            }
            throw pageTableError("unmap of " + Bits.hex(size) + " bytes at iova " + Bits.hex(iova) + " in "
                    + describe(), e);
        }
        mappedBytes.add(-bytes);
        syncGather(g);
        MappingObserver ob = observer;
        if (ob != null && bytes != 0) {
            ob.unmapped(this, iova, Long.compareUnsigned(bytes, size) > 0 ? bytes : size);
        }
        if (queue != null && (queue.isFull() || queue.expired())) {
            fullFlush(true, true);
        }
        return bytes;
    }

    /** The physical address {@code iova} translates to in the page table, or {@link #NO_MAPPING}. */
    public long iovaToPhys(long iova) throws IommuApiException {
        checkLive("iovaToPhys");
        if (Long.compareUnsigned(iova, apertureStart) < 0 || Long.compareUnsigned(iova, apertureLast) > 0) {
            return NO_MAPPING;
        }
        try {
            return table.iovaToPhys(iova);
        } catch (PageTableException e) {
            throw pageTableError("iovaToPhys(" + Bits.hex(iova) + ") in " + describe(), e);
        }
    }

    // ------------------------------------------------------------------ flushing

    /**
     * Invalidates everything of this domain in every attached instance ({@link
     * IommuInstanceOps#flushIotlbAll}). In LAZY mode this also empties the flush queue: the table pages that
     * were waiting are released after the flush.
     */
    public void flushAll() throws IommuApiException {
        checkLive("flushAll");
        fullFlush(false, false);
    }

    /**
     * LAZY: flushes the queue now if anything waits in it (one flushIotlbAll per instance, then the queued
     * table pages are released).
     *
     * @return whether a flush happened (always false in STRICT mode)
     */
    public boolean flushQueue() throws IommuApiException {
        checkLive("flushQueue");
        return queue != null && fullFlush(true, true);
    }

    /**
     * LAZY: flushes the queue if its oldest entry has waited the timeout or longer. The domain checks this at
     * each map and unmap; a driver also calls it from a timer (see {@link FlushQueueTimer}) so that an idle
     * domain's queue is flushed too, as Linux's flush-queue timer does.
     *
     * @return whether a flush happened (false in STRICT mode and once the domain is destroyed)
     */
    public boolean flushQueueIfExpired() {
        if (queue == null || destroyed || !queue.expired()) {
            return false;
        }
        return fullFlush(true, true);
    }

    /**
     * One flushIotlbAll per attached instance, then the release of what was queued before it began. Flushes
     * are serialised, so "queued before it began" is a prefix of the FIFO.
     *
     * @param onlyIfQueued skip the flush when the queue is empty
     * @param queueFlush count it as a flush of the queue
     */
    private boolean fullFlush(boolean onlyIfQueued, boolean queueFlush) {
        synchronized (flushLock) {
            MappingObserver ob = observer;
            if (ob != null) {
                ob.flushStarting(this);
            }
            int waiting = queue == null ? 0 : queue.size();
            if (waiting == 0 && onlyIfQueued) {
                return false;
            }
            long start = waiting == 0 ? 0 : clock.getAsLong();
            for (IommuInstanceOps i : instances) {
                i.flushIotlbAll(this);
            }
            fullFlushes.increment();
            if (queueFlush) {
                queueFlushes.increment();
            }
            if (waiting > 0) {
                int pages = queue.drain(waiting, start);
                for (int k = 0; k < pages; k++) {
                    releasePage(queue.drained(k));
                }
            }
            if (ob != null) {
                ob.flushed(this);
            }
            return true;
        }
    }

    /** The strict gathers' flusher: one iotlbSync per attached instance. */
    private void syncInstances(IotlbGather g) {
        for (IommuInstanceOps i : instances) {
            i.iotlbSync(this, g);
        }
        unmapSyncs.increment();
    }

    /** The LAZY gathers' flusher: the range goes to the queue (its pages follow through {@link #deferring}). */
    private void queueRange(IotlbGather g) {
        if (!g.hasRange()) {
            return;
        }
        while (!queue.tryAddRange(g.start(), g.last())) {
            fullFlush(true, true); // full: another thread filled it since the last check
        }
    }

    /** Syncs a gather; if an instance fails, the gather (and the pages it holds) is dropped, not reused. */
    private void syncGather(IotlbGather g) {
        if (g.isEmpty()) {
            return;
        }
        try {
            g.sync();
        } catch (RuntimeException e) {
            gathers.remove();
            throw e;
        }
    }

    private void releasePage(long pa) {
        long pages = alloc.blockSize(pa) >>> PageAllocator.PAGE_SHIFT;
        alloc.free(pa);
        tablePagesFreed.add(pages);
    }

    /** What gathers free through: released at once (after their sync), or queued for the next queue flush. */
    private final class GatherAllocator implements PageAllocator {
        private final boolean deferred;

        GatherAllocator(boolean deferred) {
            this.deferred = deferred;
        }

        @Override
        public void free(long pa) {
            if (deferred) {
                queue.addPage(pa);
            } else {
                releasePage(pa);
            }
        }

        @Override
        public long allocPages(int order, String tag) {
            return alloc.allocPages(order, tag);
        }

        @Override
        public long blockSize(long pa) {
            return alloc.blockSize(pa);
        }

        @Override
        public int maxOrder() {
            return alloc.maxOrder();
        }

        @Override
        public long allocatedPages() {
            return alloc.allocatedPages();
        }

        @Override
        public long allocatedPages(String tag) {
            return alloc.allocatedPages(tag);
        }

        @Override
        public Map<String, Long> outstandingByTag() {
            return alloc.outstandingByTag();
        }

        @Override
        public long freePages() {
            return alloc.freePages();
        }
    }

    // ------------------------------------------------------------------ checks and messages

    private void checkLive(String op) throws IommuApiException {
        if (destroyed) {
            throw new IommuApiException(IommuApiException.Kind.DESTROYED, op + ": " + describe()
                    + " has been destroyed");
        }
    }

    private void checkRange(String op, long iova, long size) throws IommuApiException {
        if (size == 0) {
            throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, op + " of 0 bytes at iova "
                    + Bits.hex(iova) + " in " + describe() + ": the size must not be zero");
        }
        if (Bits.rangeOverflows(iova, size)) {
            throw new IommuApiException(IommuApiException.Kind.BAD_ARGUMENT, op + " of " + Bits.hex(size)
                    + " bytes at iova " + Bits.hex(iova) + " in " + describe() + ": the range wraps past 2^64");
        }
        long last = iova + size - 1;
        if (Long.compareUnsigned(iova, apertureStart) < 0 || Long.compareUnsigned(last, apertureLast) > 0) {
            throw new IommuApiException(IommuApiException.Kind.OUT_OF_APERTURE, op + " of iova range ["
                    + Bits.hex(iova) + ", " + Bits.hex(last) + "] in " + describe() + ": outside the aperture ["
                    + Bits.hex(apertureStart) + ", " + Bits.hex(apertureLast) + "]");
        }
    }

    private IommuApiException pageTableError(String what, PageTableException e) {
        return new IommuApiException(IommuApiException.Kind.PAGE_TABLE, what + ": " + e.getMessage(), e);
    }

    private String describe() {
        return "domain '" + name + "'";
    }

    private static int indexOf(IommuInstanceOps[] array, IommuInstanceOps instance) {
        for (int k = 0; k < array.length; k++) {
            if (array[k] == instance) {
                return k;
            }
        }
        return -1;
    }

    /** "4 KiB, 2 MiB, 1 GiB" for a page-size bitmap. */
    static String sizeList(long sizes) {
        if (sizes == 0) {
            return "(none)";
        }
        List<String> names = new ArrayList<>();
        for (int s = 0; s < 64; s++) {
            if ((sizes & (1L << s)) != 0) {
                names.add(Sizes.format(1L << s));
            }
        }
        return String.join(", ", names);
    }

    @Override
    public String toString() {
        StringBuilder b = new StringBuilder("IommuDomain[").append(name).append(", ").append(policy).append(", ")
                .append(table.format().name());
        for (IommuInstanceOps i : instances) {
            b.append(", ").append(i.name());
        }
        return b.append(destroyed ? ", destroyed]" : "]").toString();
    }
}
