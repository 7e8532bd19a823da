package org.iommuemu.core.driver.smmuv3;

import java.util.Map;
import java.util.Objects;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.bits.Sizes;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;

/**
 * Where the structures of a stage-1 domain nested on a stage-2 domain live: a block of the driver heap that the
 * stage-2 <em>parent</em> maps at IPA == PA, read-write and cacheable, for as long as the block exists, and a page
 * allocator over it.
 *
 * <p><b>Why.</b> With nesting (STE.Config = stage 1 + stage 2) every address the SMMU finds in the stage-1
 * structures is an IPA that stage 2 translates: STE.S1ContextPtr, the CD's TTB0 and every table descriptor of the
 * stage-1 walk. The driver writes physical addresses there (it allocates those pages itself), so they must
 * translate to themselves. Rather than mapping and unmapping each table page in the parent as it comes and goes
 * (stage-2 maps and invalidations inside a stage-1 map), the driver maps one block once: the nested domain's page
 * table is built over this allocator ({@code IommuDomain.builder(fmt, memory, tables)}), and
 * {@link SmmuV3Domains#attachNested} takes the stream's CD table from it too. When the block is full, a map that
 * needs another table page fails with the page table's NO_MEMORY, naming this block.
 *
 * <p><b>The IPA range is the driver's.</b> {@code [base(), base() + size())} is mapped in the parent from
 * {@link #create} until {@link #close}; a map of the caller's over it fails (ADDRESS_IN_USE), and a caller who
 * unmaps it breaks every walk of the nested domain (stage-2 faults, CLASS=TT or CD). The block comes from the
 * driver heap, so a caller that keeps its IPAs for data outside the heap never meets it.
 *
 * <p>Thread-safe (the pool is). {@link #close} must not race with allocations.
 */
public final class NestedTables implements PageAllocator {
    /** The tag of the block in the heap it comes from. */
    public static final String TAG = "smmu-nested-tables";

    private final IommuDomain parent;
    private final PageAllocator heap;
    private final BuddyPageAllocator pool;
    private volatile boolean closed;

    private NestedTables(IommuDomain parent, PageAllocator heap, BuddyPageAllocator pool) {
        this.parent = parent;
        this.heap = heap;
        this.pool = pool;
    }

    /**
     * Takes a block of {@code bytes} (a power of two, at least the parent's granule) from {@code heap} and maps it
     * IPA == PA, read-write, in {@code parent}.
     *
     * @throws IommuApiException INCOMPATIBLE_INSTANCE when {@code parent} is not an arm64 LPAE stage-2 domain or its
     *     granule is larger than the block; what {@link IommuDomain#map} throws (OUT_OF_APERTURE when the parent's
     *     input range does not reach the block's address, PAGE_TABLE ADDRESS_IN_USE when the caller mapped part
     *     of it), with the block given back
     * @throws org.iommuemu.core.memory.GuestMemoryExhaustedException when the heap has no such block
     */
    public static NestedTables create(IommuDomain parent, PhysicalMemory memory, PageAllocator heap, long bytes)
            throws IommuApiException {
        Objects.requireNonNull(parent, "parent");
        Objects.requireNonNull(memory, "memory");
        Objects.requireNonNull(heap, "heap");
        if (!Bits.isPowerOfTwo(bytes) || bytes < PAGE_SIZE) {
            throw new IllegalArgumentException("nesting tables: bytes must be a power of two of at least 4 KiB, was "
                    + bytes);
        }
        if (!(parent.format() instanceof Arm64Lpae f) || f.stage() != Arm64Lpae.Stage.S2) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot nest on domain "
                    + parent.name() + ": its page table is " + parent.format().name()
                    + ", not an arm64 LPAE stage-2 table");
        }
        if (parent.minPageSize() > bytes) {
            throw new IommuApiException(IommuApiException.Kind.INCOMPATIBLE_INSTANCE, "cannot nest on domain "
                    + parent.name() + ": its granule " + Sizes.format(parent.minPageSize()) + " is larger than the "
                    + Sizes.format(bytes) + " block of nesting tables");
        }
        long base = heap.allocBytes(bytes, TAG);
        try {
            parent.map(base, base, bytes, Prot.READ | Prot.WRITE | Prot.CACHE);
        } catch (IommuApiException e) {
            heap.free(base);
            throw new IommuApiException(e.kind(), "cannot map the nesting tables [" + Bits.hex(base) + ", "
                    + Bits.hex(base + bytes - 1) + "] at IPA == PA in stage-2 domain " + parent.name() + ": "
                    + e.getMessage(), e.getCause() != null ? e.getCause() : e);
        } catch (RuntimeException e) {
            heap.free(base);
            throw e;
        }
        return new NestedTables(parent, heap, new BuddyPageAllocator(memory, base, bytes));
    }

    /** The stage-2 domain that maps the block. */
    public IommuDomain parent() {
        return parent;
    }

    /** First byte of the block (and its IPA in the parent). */
    public long base() {
        return pool.base();
    }

    /** Size of the block in bytes. */
    public long size() {
        return pool.size();
    }

    /** Whether {@code pa} lies in the block. */
    public boolean contains(long pa) {
        return Long.compareUnsigned(pa - pool.base(), pool.size()) < 0;
    }

    public boolean isClosed() {
        return closed;
    }

    /**
     * Unmaps the block from the parent (and, for a LAZY parent, flushes its queue, so no IOTLB keeps the identity
     * map) and returns it to the heap. Closing twice does nothing.
     *
     * @throws IllegalStateException while pages of the block are still allocated (destroy the nested domain and
     *     detach its streams first)
     * @throws IommuApiException what the parent's unmap or flush throws
     */
    public synchronized void close() throws IommuApiException {
        if (closed) {
            return;
        }
        long used = pool.allocatedPages();
        if (used != 0) {
            throw new IllegalStateException("the nesting tables at " + Bits.hex(pool.base()) + " still hold " + used
                    + " pages " + pool.outstandingByTag() + ": destroy the nested domain and detach its streams first");
        }
        closed = true;
        if (!parent.isDestroyed()) {
            parent.unmap(pool.base(), pool.size());
            parent.flushQueue();
        }
        heap.free(pool.base());
    }

    // ------------------------------------------------------------------ PageAllocator, over the block

    @Override
    public long allocPages(int order, String tag) {
        if (closed) {
            throw new IllegalStateException("the nesting tables at " + Bits.hex(pool.base()) + " are closed");
        }
        return pool.allocPages(order, tag);
    }

    @Override
    public void free(long pa) {
        pool.free(pa);
    }

    @Override
    public long blockSize(long pa) {
        return pool.blockSize(pa);
    }

    @Override
    public int maxOrder() {
        return pool.maxOrder();
    }

    @Override
    public long allocatedPages() {
        return pool.allocatedPages();
    }

    @Override
    public long allocatedPages(String tag) {
        return pool.allocatedPages(tag);
    }

    @Override
    public Map<String, Long> outstandingByTag() {
        return pool.outstandingByTag();
    }

    @Override
    public long freePages() {
        return pool.freePages();
    }

    @Override
    public String toString() {
        return "NestedTables[" + Sizes.format(pool.size()) + " at " + Bits.hex(pool.base()) + " in " + parent.name()
                + (closed ? ", closed" : "") + "]";
    }
}
