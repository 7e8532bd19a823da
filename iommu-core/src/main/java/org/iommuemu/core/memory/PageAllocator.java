package org.iommuemu.core.memory;

import java.util.Map;

/**
 * The driver side's physical page allocator: it hands out blocks of guest RAM for page tables, queues,
 * stream/context tables and DMA buffers, as an operating system's page allocator would.
 *
 * <p>Blocks are 2^order pages of {@link #PAGE_SIZE} bytes, aligned to their own size, and zero-filled
 * when handed out. Every block carries a tag naming its owner ("pgtable", "cmdq", "dma-buffer"...), and
 * the allocator counts outstanding pages per tag, so a test can prove that a teardown returned every
 * table page. Freeing an address that is not the start of an allocated block is a programming error and
 * throws {@link IllegalStateException}. Implementations are thread-safe.
 */
public interface PageAllocator {
    int PAGE_SHIFT = 12;
    long PAGE_SIZE = 1L << PAGE_SHIFT;

    /**
     * Allocates 2^{@code order} contiguous pages aligned to 2^({@code order} + 12) bytes, zero-filled.
     *
     * @return the physical address of the first byte
     * @throws GuestMemoryExhaustedException when no free block of that order exists
     * @throws IllegalArgumentException when order is negative or larger than {@link #maxOrder()}
     */
    long allocPages(int order, String tag);

    /** Allocates the smallest block of at least {@code bytes} bytes (at least one page). */
    default long allocBytes(long bytes, String tag) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("allocation of " + bytes + " bytes");
        }
        long pages = (bytes + PAGE_SIZE - 1) >>> PAGE_SHIFT;
        int order = 64 - Long.numberOfLeadingZeros(pages - 1);
        return allocPages(order, tag);
    }

    /** Returns the block that starts at {@code pa} (its size and tag were recorded at allocation). */
    void free(long pa);

    /** Size in bytes of the allocated block at {@code pa}. */
    long blockSize(long pa);

    /** The largest order a single block can have. */
    int maxOrder();

    /** Pages currently allocated, all tags together. */
    long allocatedPages();

    /** Pages currently allocated under {@code tag}. */
    long allocatedPages(String tag);

    /** Pages currently allocated, by tag (tags with none outstanding omitted). A snapshot. */
    Map<String, Long> outstandingByTag();

    /** Pages still free. */
    long freePages();
}
