package org.iommuemu.core.memory;

import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.bits.Sizes;

/**
 * A binary buddy {@link PageAllocator} over a pool {@code [base, base + size)} of guest RAM.
 *
 * <p><b>Blocks.</b> A block of order k is 2^k pages aligned to its own size in the physical address
 * space (not merely within the pool). The pool is first cut into the largest aligned blocks it holds;
 * allocation splits the smallest sufficient free block, and freeing merges a block with its buddy for as
 * long as the buddy is free and whole. {@link #maxOrder()} is the order of the largest naturally aligned
 * block inside the pool, capped at {@value #MAX_ORDER_CAP} (1 GiB blocks): a 4 MiB pool starting at 2 MiB
 * holds no aligned 4 MiB block, so its maximum order is 9 (2 MiB). Blocks are zero-filled with {@link PhysicalMemory#zero} when
 * handed out (on {@link SparseRam} that drops backing pages, so it is cheap).
 *
 * <p><b>Metadata.</b> Everything lives in primitive arrays indexed by page number within the pool:
 * intrusive doubly linked free lists (int next/prev), a byte order and a byte state per block head, a
 * short tag index per allocated block, and a bitmap remembering freed block heads (to tell a double free
 * from a free of memory never allocated). That is about 12 bytes per page, so pools are limited to
 * {@value #MAX_POOL_PAGES} pages (64 GiB). Allocating and freeing allocate no objects; only the first use
 * of a new tag name grows the small tag table.
 *
 * <p><b>Concurrency.</b> Thread-safe: one lock guards the metadata (allocation and free are short; the
 * zero-fill of a new block runs outside the lock).
 *
 * <p><b>Errors.</b> Freeing (or asking the size of) an address that is not the start of an allocated
 * block throws {@link IllegalStateException}, saying whether it is a double free, memory that is not
 * allocated, or an address inside an allocated block.
 */
public final class BuddyPageAllocator implements PageAllocator {
    /** The largest block order any pool offers: 2^18 pages, 1 GiB. */
    public static final int MAX_ORDER_CAP = 18;

    /** The largest pool, in pages (2^24 pages, 64 GiB): the metadata costs about 12 bytes a page. */
    public static final int MAX_POOL_PAGES = 1 << 24;

    private static final byte STATE_NONE = 0; // not the head of any block (or a head inside a larger block)
    private static final byte STATE_FREE = 1; // head of a free block, linked in the free list of its order
    private static final byte STATE_ALLOCATED = 2; // head of an allocated block
    private static final int NIL = -1;

    private final PhysicalMemory mem;
    private final long base;
    private final long size;
    private final long basePfn;
    private final long endPfn;
    private final int pages;
    private final int maxOrder;

    private final Object lock = new Object();

    // Everything below is guarded by lock.
    private final int[] next;
    private final int[] prev;
    private final byte[] blockOrder;
    private final byte[] state;
    private final short[] tagOf;
    /** Bit i: page i was the head of a block that was freed and no allocation has covered it since. */
    private final long[] freedHead;
    private final int[] freeHead = new int[MAX_ORDER_CAP + 1];
    private long freePages;
    private long allocatedPages;
    private final Map<String, Integer> tagIndex = new HashMap<>();
    private String[] tagNames = new String[8];
    private long[] tagPages = new long[8];
    private int tagCount;

    /**
     * An allocator handing out the RAM {@code [base, base + size)} of {@code mem}.
     *
     * @throws IllegalArgumentException if base or size is not 4 KiB-aligned, size is 0, the pool is larger
     *     than {@value #MAX_POOL_PAGES} pages, wraps past 2^64, or is not all RAM in {@code mem}
     */
    public BuddyPageAllocator(PhysicalMemory mem, long base, long size) {
        this.mem = Objects.requireNonNull(mem, "physical memory");
        String pool = "page pool of " + Bits.hex(size) + " bytes at " + Bits.hex(base);
        if (!Bits.isAligned(base, PAGE_SHIFT) || !Bits.isAligned(size, PAGE_SHIFT)) {
            throw new IllegalArgumentException(pool + ": base and size must be multiples of 4 KiB");
        }
        if (size == 0) {
            throw new IllegalArgumentException(pool + ": the pool is empty");
        }
        if (Long.compareUnsigned(size >>> PAGE_SHIFT, MAX_POOL_PAGES) > 0) {
            throw new IllegalArgumentException(pool + ": more than " + MAX_POOL_PAGES + " pages ("
                    + Sizes.format((long) MAX_POOL_PAGES << PAGE_SHIFT) + "), the most this allocator manages");
        }
        if (Bits.rangeOverflows(base, size)) {
            throw new IllegalArgumentException(pool + ": the pool wraps past 2^64");
        }
        if (!mem.isRam(base, size)) {
            throw new IllegalArgumentException(pool + ": the pool is not all RAM (RAM is " + mem.regions() + ")");
        }
        this.base = base;
        this.size = size;
        this.pages = (int) (size >>> PAGE_SHIFT);
        this.basePfn = base >>> PAGE_SHIFT;
        this.endPfn = basePfn + pages;
        this.next = new int[pages];
        this.prev = new int[pages];
        this.blockOrder = new byte[pages];
        this.state = new byte[pages];
        this.tagOf = new short[pages];
        this.freedHead = new long[(pages + 63) >>> 6];
        Arrays.fill(freeHead, NIL);

        // Cut the pool into its largest aligned blocks, from the top down, so the lowest block of each
        // order ends up first in its free list.
        int largest = 0;
        long end = endPfn;
        while (end > basePfn) {
            int k = Math.min(MAX_ORDER_CAP,
                    Math.min(Long.numberOfTrailingZeros(end), 63 - Long.numberOfLeadingZeros(end - basePfn)));
            end -= 1L << k;
            linkFree((int) (end - basePfn), k);
            largest = Math.max(largest, k);
        }
        this.maxOrder = largest;
        this.freePages = pages;
    }

    /** First byte of the pool. */
    public long base() {
        return base;
    }

    /** Size of the pool in bytes. */
    public long size() {
        return size;
    }

    /** Size of the pool in pages. */
    public long totalPages() {
        return pages;
    }

    @Override
    public int maxOrder() {
        return maxOrder;
    }

    @Override
    public long allocPages(int order, String tag) {
        Objects.requireNonNull(tag, "tag");
        if (order < 0 || order > maxOrder) {
            throw new IllegalArgumentException("allocation of order " + order + ": the order must be 0.." + maxOrder);
        }
        int head;
        synchronized (lock) {
            int k = order;
            while (k <= maxOrder && freeHead[k] == NIL) {
                k++;
            }
            if (k > maxOrder) {
                throw new GuestMemoryExhaustedException(exhaustedMessage(order, tag));
            }
            int t = tagIndexOf(tag);
            head = freeHead[k];
            unlinkFree(head, k);
            while (k > order) {
                k--;
                linkFree(head + (1 << k), k);
            }
            state[head] = STATE_ALLOCATED;
            blockOrder[head] = (byte) order;
            tagOf[head] = (short) t;
            clearFreedMarks(head, 1 << order);
            long n = 1L << order;
            freePages -= n;
            allocatedPages += n;
            tagPages[t] += n;
        }
        long pa = addressOf(head);
        try {
            mem.zero(pa, PAGE_SIZE << order);
        } catch (MemoryAccessException e) {
            free(pa);
            throw new IllegalStateException("zero-filling the new block at " + Bits.hex(pa) + " failed", e);
        }
        return pa;
    }

    @Override
    public void free(long pa) {
        synchronized (lock) {
            int head = allocatedHead(pa, "free");
            int k = blockOrder[head];
            long n = 1L << k;
            tagPages[tagOf[head]] -= n;
            allocatedPages -= n;
            freePages += n;
            state[head] = STATE_NONE;
            freedHead[head >>> 6] |= 1L << head;

            long pfn = basePfn + head;
            while (k < maxOrder) {
                long buddyPfn = pfn ^ (1L << k);
                if (buddyPfn < basePfn || buddyPfn + (1L << k) > endPfn) {
                    break;
                }
                int buddy = (int) (buddyPfn - basePfn);
                if (state[buddy] != STATE_FREE || blockOrder[buddy] != k) {
                    break;
                }
                unlinkFree(buddy, k);
                state[buddy] = STATE_NONE;
                pfn &= ~(1L << k);
                k++;
            }
            linkFree((int) (pfn - basePfn), k);
        }
    }

    @Override
    public long blockSize(long pa) {
        synchronized (lock) {
            return PAGE_SIZE << blockOrder[allocatedHead(pa, "blockSize")];
        }
    }

    @Override
    public long allocatedPages() {
        synchronized (lock) {
            return allocatedPages;
        }
    }

    @Override
    public long allocatedPages(String tag) {
        synchronized (lock) {
            Integer t = tagIndex.get(tag);
            return t == null ? 0 : tagPages[t];
        }
    }

    @Override
    public Map<String, Long> outstandingByTag() {
        TreeMap<String, Long> snapshot = new TreeMap<>();
        synchronized (lock) {
            for (int t = 0; t < tagCount; t++) {
                if (tagPages[t] != 0) {
                    snapshot.put(tagNames[t], tagPages[t]);
                }
            }
        }
        return Collections.unmodifiableMap(snapshot);
    }

    @Override
    public long freePages() {
        synchronized (lock) {
            return freePages;
        }
    }

    @Override
    public String toString() {
        synchronized (lock) {
            return "BuddyPageAllocator[" + Bits.hex(base) + ", " + Bits.hex(Bits.last(base, size)) + "] ("
                    + Sizes.format(size) + ", max order " + maxOrder + ", " + freePages + " pages free, "
                    + allocatedPages + " allocated)";
        }
    }

    // ---------------------------------------------------------------- internals (lock held)

    private long addressOf(int pageIndex) {
        return base + ((long) pageIndex << PAGE_SHIFT);
    }

    private void linkFree(int head, int k) {
        int first = freeHead[k];
        next[head] = first;
        prev[head] = NIL;
        if (first != NIL) {
            prev[first] = head;
        }
        freeHead[k] = head;
        state[head] = STATE_FREE;
        blockOrder[head] = (byte) k;
    }

    private void unlinkFree(int head, int k) {
        int n = next[head];
        int p = prev[head];
        if (p == NIL) {
            freeHead[k] = n;
        } else {
            next[p] = n;
        }
        if (n != NIL) {
            prev[n] = p;
        }
        state[head] = STATE_NONE;
    }

    /** Clears the freed-head marks of pages {@code [from, from + count)}. */
    private void clearFreedMarks(int from, int count) {
        int end = from + count;
        int i = from;
        while (i < end && (i & 63) != 0) {
            freedHead[i >>> 6] &= ~(1L << i);
            i++;
        }
        while (end - i >= 64) {
            freedHead[i >>> 6] = 0;
            i += 64;
        }
        while (i < end) {
            freedHead[i >>> 6] &= ~(1L << i);
            i++;
        }
    }

    private int tagIndexOf(String tag) {
        Integer known = tagIndex.get(tag);
        if (known != null) {
            return known;
        }
        if (tagCount == Short.MAX_VALUE) {
            throw new IllegalArgumentException(
                    "tag '" + tag + "': too many distinct tags (" + tagCount + "); tags name owners, not blocks");
        }
        if (tagCount == tagNames.length) {
            tagNames = Arrays.copyOf(tagNames, tagCount * 2);
            tagPages = Arrays.copyOf(tagPages, tagCount * 2);
        }
        tagNames[tagCount] = tag;
        tagIndex.put(tag, tagCount);
        return tagCount++;
    }

    /** The page index of the allocated block starting at {@code pa}, or an IllegalStateException saying why not. */
    private int allocatedHead(long pa, String op) {
        long offset = pa - base;
        if (Long.compareUnsigned(offset, size) < 0 && (offset & (PAGE_SIZE - 1)) == 0) {
            int index = (int) (offset >>> PAGE_SHIFT);
            if (state[index] == STATE_ALLOCATED) {
                return index; // the common case: no message is built
            }
        }
        String what = op + "(" + Bits.hex(pa) + ")";
        if (Long.compareUnsigned(offset, size) >= 0) {
            throw new IllegalStateException(what + ": not allocated: the address is outside the page pool ["
                    + Bits.hex(base) + ", " + Bits.hex(Bits.last(base, size)) + "]");
        }
        int index = (int) (offset >>> PAGE_SHIFT);
        boolean pageAligned = (offset & (PAGE_SIZE - 1)) == 0;
        int container = allocatedBlockContaining(index);
        if (container != NIL) {
            throw new IllegalStateException(what + ": not the start of a block: the address lies inside the "
                    + Sizes.format(PAGE_SIZE << blockOrder[container]) + " block at " + Bits.hex(addressOf(container))
                    + " (tag '" + tagNames[tagOf[container]] + "')");
        }
        if (pageAligned && (freedHead[index >>> 6] & (1L << index)) != 0) {
            throw new IllegalStateException(what + ": " + (op.equals("free") ? "double free" : "not allocated")
                    + ": the block at " + Bits.hex(pa) + " was already freed");
        }
        throw new IllegalStateException(what + ": not allocated: the address is free memory of the page pool");
    }

    /** The head of the allocated block covering page {@code index}, or NIL. */
    private int allocatedBlockContaining(int index) {
        long pfn = basePfn + index;
        for (int k = 0; k <= maxOrder; k++) {
            long headPfn = pfn & -(1L << k);
            if (headPfn < basePfn) {
                break;
            }
            int head = (int) (headPfn - basePfn);
            if (state[head] == STATE_ALLOCATED && index - head < (1 << blockOrder[head])) {
                return head;
            }
        }
        return NIL;
    }

    private String exhaustedMessage(int order, String tag) {
        int largestFree = -1;
        for (int k = maxOrder; k >= 0; k--) {
            if (freeHead[k] != NIL) {
                largestFree = k;
                break;
            }
        }
        return "guest memory exhausted: no free block of order " + order + " (" + Sizes.format(PAGE_SIZE << order)
                + ") for '" + tag + "'; " + freePages + " page(s) free in the pool of " + pages
                + (largestFree < 0 ? ", none left" : ", the largest free block has order " + largestFree);
    }
}
