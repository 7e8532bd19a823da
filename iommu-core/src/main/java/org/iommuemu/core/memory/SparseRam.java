package org.iommuemu.core.memory;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.bits.Sizes;

/**
 * {@link PhysicalMemory} over the whole 64-bit physical address space, with RAM in a few regions whose
 * bytes are stored in 4 KiB backing pages allocated on first write.
 *
 * <p><b>Sparseness.</b> RAM that was never written reads as zero and costs nothing: a fresh 4 GiB RAM
 * holds no backing page ({@link #backedPages()} is 0), reads do not allocate pages, and a write
 * allocates exactly the pages it touches. {@link #zero} drops the backing pages it covers entirely (and
 * clears the others), so zeroing a large block is cheap and gives the memory back. Each region keeps a
 * two-level page directory: a top array of lazily allocated chunks of {@value #CHUNK_PAGES} page slots,
 * so a region costs one reference per 2 MiB until it is written. Regions are limited to
 * {@link #MAX_REGION_SIZE} bytes each; configure several adjacent regions for more.
 *
 * <p><b>Layout rules.</b> Regions must be 4 KiB-aligned in base and size and must not overlap; adjacent
 * regions form contiguous RAM. Because of the alignment, a naturally aligned access never spans two
 * regions or two pages.
 *
 * <p><b>Concurrency.</b> Thread-safe without locks. Aligned 32- and 64-bit accesses are single-copy
 * atomic with acquire/release semantics; 8-bit, 16-bit and unaligned accesses are plain, and accesses
 * that cross a page boundary are done byte by byte (not atomic). Backing pages and chunks are installed
 * with a compare-and-exchange on their directory slot: when two writers race on a fresh page, both use
 * the winner's page and no data is lost. A {@link #zero} that drops a page concurrently with a write to
 * the same bytes may lose that write, which is one of the legal orders of two racing accesses.
 *
 * <p><b>Faults and bugs.</b> An access of which any byte is outside RAM (including one that wraps past
 * 2^64) throws {@link MemoryAccessException} with reason {@link MemoryAccessException.Reason#NOT_RAM},
 * the access's first address and its length, and changes nothing. Bad array bounds in bulk accesses
 * are caller bugs and throw {@link IndexOutOfBoundsException}; a bulk access of length 0 does nothing.
 * Successful scalar, bulk and compare-and-exchange accesses allocate nothing except, on the first write
 * to a page, its backing page.
 */
public final class SparseRam implements PhysicalMemory {
    /** Base of the default RAM region: 2 GiB, where many Arm and x86 platforms put DRAM. */
    public static final long DEFAULT_RAM_BASE = 0x8000_0000L;

    /** Size of the default RAM region: 4 GiB. */
    public static final long DEFAULT_RAM_SIZE = 1L << 32;

    /** Largest size of one region (1 TiB): its page directory's top array has 2^19 entries. */
    public static final long MAX_REGION_SIZE = 1L << 40;

    /** Size of a backing page; regions are aligned to it. */
    public static final int PAGE_SIZE = 4096;

    /** Backing-page slots per directory chunk (a chunk maps 2 MiB). */
    public static final int CHUNK_PAGES = 512;

    private static final int PAGE_SHIFT = 12;
    private static final long PAGE_MASK = PAGE_SIZE - 1;
    private static final int CHUNK_SHIFT = 9;
    private static final int CHUNK_MASK = CHUNK_PAGES - 1;

    private static final VarHandle LE16 =
            MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle LE32 =
            MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle LE64 =
            MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    /** Slots of a region's top array (chunks). */
    private static final VarHandle TOP_SLOT = MethodHandles.arrayElementVarHandle(byte[][][].class);
    /** Slots of a chunk (backing pages). */
    private static final VarHandle PAGE_SLOT = MethodHandles.arrayElementVarHandle(byte[][].class);

    static {
        // Atomic (non-plain) access modes of a byte[] view need the element's memory address aligned to
        // the access size. HotSpot aligns array data to 8 bytes (byte[] data starts at offset 16), so an
        // 8-aligned index is an 8-aligned address. Fail loudly here, not at the first atomic access.
        byte[] probe = new byte[16];
        try {
            long witness = (long) LE64.compareAndExchange(probe, 8, 0L, 1L);
            int word = (int) LE32.getAcquire(probe, 4);
            if (witness != 0 || word != 0 || (long) LE64.getAcquire(probe, 8) != 1L) {
                throw new ExceptionInInitializerError("byte[] view VarHandles misbehave on this JVM");
            }
        } catch (IllegalStateException e) {
            throw new ExceptionInInitializerError(
                    "this JVM does not align byte[] data to 8 bytes; SparseRam needs it for atomic accesses: " + e);
        }
    }

    /** One RAM region and its page directory. */
    private static final class Region {
        final long base;
        final long sizeMinus1;
        final long last;
        final long firstFrame;
        /** Chunks of {@value #CHUNK_PAGES} page slots, allocated on first write; accessed via TOP_SLOT. */
        final byte[][][] top;

        Region(RamRegion desc) {
            this.base = desc.base();
            this.sizeMinus1 = desc.size() - 1;
            this.last = desc.last();
            this.firstFrame = base >>> PAGE_SHIFT;
            long frames = desc.size() >>> PAGE_SHIFT;
            this.top = new byte[(int) ((frames + CHUNK_PAGES - 1) >>> CHUNK_SHIFT)][][];
        }

        boolean containsByte(long pa) {
            return Long.compareUnsigned(pa - base, sizeMinus1) <= 0;
        }
    }

    private final Region[] regions;
    private final List<RamRegion> regionList;
    private final AtomicLong backedPages = new AtomicLong();

    /**
     * {@link #zero} gives back the backing pages it fully covers only for ranges at least this long; shorter
     * ranges (page tables, descriptors, small buffers that are freed and soon written again) are cleared in
     * place, so reallocating them allocates nothing.
     */
    public static final long DROP_THRESHOLD = 64 * 1024;

    /**
     * RAM made of {@code ramRegions}, in any order.
     *
     * @throws IllegalArgumentException if a region is not 4 KiB-aligned in base or size, is larger than
     *     {@link #MAX_REGION_SIZE}, or overlaps another (the message names both)
     */
    public SparseRam(List<RamRegion> ramRegions) {
        List<RamRegion> sorted = new ArrayList<>(ramRegions);
        for (RamRegion r : sorted) {
            Objects.requireNonNull(r, "RAM region");
            if (!Bits.isAligned(r.base(), PAGE_SHIFT) || !Bits.isAligned(r.size(), PAGE_SHIFT)) {
                throw new IllegalArgumentException("RAM region " + r + " (size " + Sizes.format(r.size())
                        + ") is not 4 KiB-aligned in base and size");
            }
            if (Long.compareUnsigned(r.size(), MAX_REGION_SIZE) > 0) {
                throw new IllegalArgumentException("RAM region " + r + " is " + Sizes.format(r.size())
                        + ", more than the " + Sizes.format(MAX_REGION_SIZE)
                        + " a region may have; split it into adjacent regions");
            }
        }
        sorted.sort(Comparator.comparing(RamRegion::base, Long::compareUnsigned));
        for (int i = 1; i < sorted.size(); i++) {
            if (sorted.get(i - 1).overlaps(sorted.get(i))) {
                throw new IllegalArgumentException(
                        "RAM regions " + sorted.get(i - 1) + " and " + sorted.get(i) + " overlap");
            }
        }
        this.regionList = List.copyOf(sorted);
        this.regions = new Region[sorted.size()];
        for (int i = 0; i < regions.length; i++) {
            regions[i] = new Region(sorted.get(i));
        }
    }

    /** RAM made of {@code ramRegions}, in any order; see {@link #SparseRam(List)}. */
    public static SparseRam of(RamRegion... ramRegions) {
        return new SparseRam(List.of(ramRegions));
    }

    /** {@link #DEFAULT_RAM_SIZE} (4 GiB) of RAM at {@link #DEFAULT_RAM_BASE} (2 GiB). */
    public static SparseRam withDefaultRam() {
        return of(new RamRegion(DEFAULT_RAM_BASE, DEFAULT_RAM_SIZE));
    }

    /** How many 4 KiB backing pages exist now (for tests and telemetry). */
    public long backedPages() {
        return backedPages.get();
    }

    @Override
    public List<RamRegion> regions() {
        return regionList;
    }

    @Override
    public boolean isRam(long pa, long length) {
        if (length == 0 || Bits.rangeOverflows(pa, length)) {
            return false;
        }
        long cur = pa;
        long remaining = length;
        while (true) {
            Region r = regionOf(cur);
            if (r == null) {
                return false;
            }
            long avail = r.last - cur + 1; // at most MAX_REGION_SIZE, never 0
            if (Long.compareUnsigned(remaining, avail) <= 0) {
                return true;
            }
            remaining -= avail;
            cur += avail;
        }
    }

    // ---------------------------------------------------------------- scalar reads

    @Override
    public int read8(long pa) throws MemoryAccessException {
        Region r = regionOf(pa);
        if (r == null) {
            throw notRam(pa, 1);
        }
        byte[] page = pageOrNull(r, pa);
        return page == null ? 0 : page[(int) (pa & PAGE_MASK)] & 0xFF;
    }

    @Override
    public int read16(long pa) throws MemoryAccessException {
        Region r = regionOf(pa);
        if (r != null && (pa & PAGE_MASK) <= PAGE_SIZE - 2) {
            byte[] page = pageOrNull(r, pa);
            return page == null ? 0 : (short) LE16.get(page, (int) (pa & PAGE_MASK)) & 0xFFFF;
        }
        return (int) readSlow(pa, 2);
    }

    @Override
    public int read32(long pa) throws MemoryAccessException {
        Region r = regionOf(pa);
        if (r != null && (pa & PAGE_MASK) <= PAGE_SIZE - 4) {
            byte[] page = pageOrNull(r, pa);
            if (page == null) {
                return 0;
            }
            int off = (int) (pa & PAGE_MASK);
            return (off & 3) == 0 ? (int) LE32.getAcquire(page, off) : (int) LE32.get(page, off);
        }
        return (int) readSlow(pa, 4);
    }

    @Override
    public long read64(long pa) throws MemoryAccessException {
        Region r = regionOf(pa);
        if (r != null && (pa & PAGE_MASK) <= PAGE_SIZE - 8) {
            byte[] page = pageOrNull(r, pa);
            if (page == null) {
                return 0;
            }
            int off = (int) (pa & PAGE_MASK);
            return (off & 7) == 0 ? (long) LE64.getAcquire(page, off) : (long) LE64.get(page, off);
        }
        return readSlow(pa, 8);
    }

    /** A little-endian value of {@code n} bytes that crosses a page (or is not all RAM), byte by byte. */
    private long readSlow(long pa, int n) throws MemoryAccessException {
        if (!isRam(pa, n)) {
            throw notRam(pa, n);
        }
        long value = 0;
        for (int i = 0; i < n; i++) {
            long a = pa + i;
            byte[] page = pageOrNull(regionOf(a), a);
            long b = page == null ? 0 : page[(int) (a & PAGE_MASK)] & 0xFF;
            value |= b << (8 * i);
        }
        return value;
    }

    // ---------------------------------------------------------------- scalar writes

    @Override
    public void write8(long pa, int value) throws MemoryAccessException {
        Region r = regionOf(pa);
        if (r == null) {
            throw notRam(pa, 1);
        }
        pageForWrite(r, pa)[(int) (pa & PAGE_MASK)] = (byte) value;
    }

    @Override
    public void write16(long pa, int value) throws MemoryAccessException {
        Region r = regionOf(pa);
        if (r != null && (pa & PAGE_MASK) <= PAGE_SIZE - 2) {
            LE16.set(pageForWrite(r, pa), (int) (pa & PAGE_MASK), (short) value);
            return;
        }
        writeSlow(pa, 2, value);
    }

    @Override
    public void write32(long pa, int value) throws MemoryAccessException {
        Region r = regionOf(pa);
        if (r != null && (pa & PAGE_MASK) <= PAGE_SIZE - 4) {
            byte[] page = pageForWrite(r, pa);
            int off = (int) (pa & PAGE_MASK);
            if ((off & 3) == 0) {
                LE32.setRelease(page, off, value);
            } else {
                LE32.set(page, off, value);
            }
            return;
        }
        writeSlow(pa, 4, value);
    }

    @Override
    public void write64(long pa, long value) throws MemoryAccessException {
        Region r = regionOf(pa);
        if (r != null && (pa & PAGE_MASK) <= PAGE_SIZE - 8) {
            byte[] page = pageForWrite(r, pa);
            int off = (int) (pa & PAGE_MASK);
            if ((off & 7) == 0) {
                LE64.setRelease(page, off, value);
            } else {
                LE64.set(page, off, value);
            }
            return;
        }
        writeSlow(pa, 8, value);
    }

    /** Writes {@code n} little-endian bytes that cross a page (or are not all RAM), byte by byte. */
    private void writeSlow(long pa, int n, long value) throws MemoryAccessException {
        if (!isRam(pa, n)) {
            throw notRam(pa, n);
        }
        for (int i = 0; i < n; i++) {
            long a = pa + i;
            pageForWrite(regionOf(a), a)[(int) (a & PAGE_MASK)] = (byte) (value >>> (8 * i));
        }
    }

    // ---------------------------------------------------------------- bulk

    @Override
    public void read(long pa, byte[] dst, int off, int len) throws MemoryAccessException {
        Objects.checkFromIndexSize(off, len, dst.length);
        if (len == 0) {
            return;
        }
        if (!isRam(pa, len)) {
            throw notRam(pa, len);
        }
        long cur = pa;
        int done = 0;
        while (done < len) {
            Region r = regionOf(cur);
            int n = pieceLength(cur, len - done);
            byte[] page = pageOrNull(r, cur);
            if (page == null) {
                Arrays.fill(dst, off + done, off + done + n, (byte) 0);
            } else {
                System.arraycopy(page, (int) (cur & PAGE_MASK), dst, off + done, n);
            }
            cur += n;
            done += n;
        }
    }

    @Override
    public void write(long pa, byte[] src, int off, int len) throws MemoryAccessException {
        Objects.checkFromIndexSize(off, len, src.length);
        if (len == 0) {
            return;
        }
        if (!isRam(pa, len)) {
            throw notRam(pa, len);
        }
        long cur = pa;
        int done = 0;
        while (done < len) {
            Region r = regionOf(cur);
            int n = pieceLength(cur, len - done);
            System.arraycopy(src, off + done, pageForWrite(r, cur), (int) (cur & PAGE_MASK), n);
            cur += n;
            done += n;
        }
    }

    /**
     * {@inheritDoc}
     *
     * <p>Backing pages that the range covers entirely are dropped (they read as zero again and
     * {@link #backedPages()} goes down); pages it covers in part are cleared; missing pages stay missing.
     *
     * @throws IllegalArgumentException if {@code length} is negative
     */
    @Override
    public void zero(long pa, long length) throws MemoryAccessException {
        if (length < 0) {
            throw new IllegalArgumentException("zero of a negative length " + length + " at " + Bits.hex(pa));
        }
        if (length == 0) {
            return;
        }
        if (!isRam(pa, length)) {
            throw notRam(pa, length);
        }
        boolean drop = length >= DROP_THRESHOLD;
        long cur = pa;
        long remaining = length;
        while (remaining > 0) {
            Region r = regionOf(cur);
            int n = pieceLength(cur, remaining);
            if (n == PAGE_SIZE && drop) {
                dropPage(r, cur);
            } else {
                byte[] page = pageOrNull(r, cur);
                if (page != null) {
                    int from = (int) (cur & PAGE_MASK);
                    Arrays.fill(page, from, from + n, (byte) 0);
                }
            }
            cur += n;
            remaining -= n;
        }
    }

    /** Bytes from {@code pa} to the end of its page, limited to {@code remaining} (regions end on pages). */
    private static int pieceLength(long pa, long remaining) {
        long toPageEnd = PAGE_SIZE - (pa & PAGE_MASK);
        return (int) Math.min(toPageEnd, remaining);
    }

    // ---------------------------------------------------------------- atomics

    /**
     * {@inheritDoc}
     *
     * <p>A compare-and-exchange on a page never written installs the page first, so the exchange is real
     * (and the page is backed afterwards even when the comparison fails).
     */
    @Override
    public long compareAndExchange64(long pa, long expected, long update) throws MemoryAccessException {
        if ((pa & 7) != 0) {
            throw new IllegalArgumentException(
                    "compareAndExchange64 at " + Bits.hex(pa) + ": the address is not 8-byte aligned");
        }
        Region r = regionOf(pa);
        if (r == null) {
            throw notRam(pa, 8);
        }
        return (long) LE64.compareAndExchange(pageForWrite(r, pa), (int) (pa & PAGE_MASK), expected, update);
    }

    // ---------------------------------------------------------------- runs of 64-bit values

    @Override
    public void read64s(long pa, long[] dst, int off, int count) throws MemoryAccessException {
        Objects.checkFromIndexSize(off, count, dst.length);
        if ((pa & 7) != 0) {
            throw new IllegalArgumentException("read64s at " + Bits.hex(pa) + " is not 8-byte aligned");
        }
        if (count == 0) {
            return;
        }
        if (!isRam(pa, 8L * count)) {
            throw notRam(pa, 8L * count);
        }
        int done = 0;
        while (done < count) {
            long at = pa + 8L * done;
            int inPage = (int) Math.min(count - done, (PAGE_SIZE - (at & PAGE_MASK)) >>> 3);
            byte[] page = pageOrNull(regionOf(at), at);
            if (page == null) {
                Arrays.fill(dst, off + done, off + done + inPage, 0L);
            } else {
                // Plain aligned 64-bit loads are single-copy atomic on 64-bit JVMs; one fence after the run gives
                // every load acquire ordering at a fraction of the cost of an acquire per element.
                int o = (int) (at & PAGE_MASK);
                for (int i = 0; i < inPage; i++, o += 8) {
                    dst[off + done + i] = (long) LE64.get(page, o);
                }
            }
            done += inPage;
        }
        VarHandle.acquireFence();
    }

    @Override
    public void write64s(long pa, long[] src, int off, int count) throws MemoryAccessException {
        Objects.checkFromIndexSize(off, count, src.length);
        if ((pa & 7) != 0) {
            throw new IllegalArgumentException("write64s at " + Bits.hex(pa) + " is not 8-byte aligned");
        }
        if (count == 0) {
            return;
        }
        if (!isRam(pa, 8L * count)) {
            throw notRam(pa, 8L * count);
        }
        // One release fence before the run orders every store after what the caller wrote before (as a release
        // store each would); the aligned 64-bit stores themselves are single-copy atomic.
        VarHandle.releaseFence();
        int done = 0;
        while (done < count) {
            long at = pa + 8L * done;
            int inPage = (int) Math.min(count - done, (PAGE_SIZE - (at & PAGE_MASK)) >>> 3);
            byte[] page = pageForWrite(regionOf(at), at);
            int o = (int) (at & PAGE_MASK);
            for (int i = 0; i < inPage; i++, o += 8) {
                LE64.set(page, o, src[off + done + i]);
            }
            done += inPage;
        }
    }

    @Override
    public void read32s(long pa, long[] dst, int off, int count) throws MemoryAccessException {
        Objects.checkFromIndexSize(off, count, dst.length);
        if ((pa & 3) != 0) {
            throw new IllegalArgumentException("read32s at " + Bits.hex(pa) + " is not 4-byte aligned");
        }
        if (count == 0) {
            return;
        }
        if (!isRam(pa, 4L * count)) {
            throw notRam(pa, 4L * count);
        }
        int done = 0;
        while (done < count) {
            long at = pa + 4L * done;
            int inPage = (int) Math.min(count - done, (PAGE_SIZE - (at & PAGE_MASK)) >>> 2);
            byte[] page = pageOrNull(regionOf(at), at);
            if (page == null) {
                Arrays.fill(dst, off + done, off + done + inPage, 0L);
            } else {
                int o = (int) (at & PAGE_MASK);
                for (int i = 0; i < inPage; i++, o += 4) {
                    dst[off + done + i] = Integer.toUnsignedLong((int) LE32.get(page, o));
                }
            }
            done += inPage;
        }
        VarHandle.acquireFence();
    }

    @Override
    public void write32s(long pa, long[] src, int off, int count) throws MemoryAccessException {
        Objects.checkFromIndexSize(off, count, src.length);
        if ((pa & 3) != 0) {
            throw new IllegalArgumentException("write32s at " + Bits.hex(pa) + " is not 4-byte aligned");
        }
        if (count == 0) {
            return;
        }
        if (!isRam(pa, 4L * count)) {
            throw notRam(pa, 4L * count);
        }
        VarHandle.releaseFence();
        int done = 0;
        while (done < count) {
            long at = pa + 4L * done;
            int inPage = (int) Math.min(count - done, (PAGE_SIZE - (at & PAGE_MASK)) >>> 2);
            byte[] page = pageForWrite(regionOf(at), at);
            int o = (int) (at & PAGE_MASK);
            for (int i = 0; i < inPage; i++, o += 4) {
                LE32.set(page, o, (int) src[off + done + i]);
            }
            done += inPage;
        }
    }

    // ---------------------------------------------------------------- directory

    /** The region holding byte {@code pa}, or null. Regions are few: a linear search allocates nothing. */
    private Region regionOf(long pa) {
        for (Region r : regions) {
            if (r.containsByte(pa)) {
                return r;
            }
        }
        return null;
    }

    /** The backing page of {@code pa} (in region {@code r}), or null if the page was never written. */
    private static byte[] pageOrNull(Region r, long pa) {
        long frame = (pa >>> PAGE_SHIFT) - r.firstFrame;
        byte[][] chunk = (byte[][]) TOP_SLOT.getAcquire(r.top, (int) (frame >>> CHUNK_SHIFT));
        if (chunk == null) {
            return null;
        }
        return (byte[]) PAGE_SLOT.getAcquire(chunk, (int) frame & CHUNK_MASK);
    }

    /** The backing page of {@code pa} (in region {@code r}), installed if missing. */
    private byte[] pageForWrite(Region r, long pa) {
        long frame = (pa >>> PAGE_SHIFT) - r.firstFrame;
        int chunkIndex = (int) (frame >>> CHUNK_SHIFT);
        byte[][] chunk = (byte[][]) TOP_SLOT.getAcquire(r.top, chunkIndex);
        if (chunk == null) {
            chunk = installChunk(r, chunkIndex);
        }
        int pageIndex = (int) frame & CHUNK_MASK;
        byte[] page = (byte[]) PAGE_SLOT.getAcquire(chunk, pageIndex);
        return page != null ? page : installPage(chunk, pageIndex);
    }

    private static byte[][] installChunk(Region r, int chunkIndex) {
        byte[][] fresh = new byte[CHUNK_PAGES][];
        byte[][] witness = (byte[][]) TOP_SLOT.compareAndExchange(r.top, chunkIndex, (byte[][]) null, fresh);
        return witness == null ? fresh : witness;
    }

    private byte[] installPage(byte[][] chunk, int pageIndex) {
        byte[] fresh = new byte[PAGE_SIZE];
        byte[] witness = (byte[]) PAGE_SLOT.compareAndExchange(chunk, pageIndex, (byte[]) null, fresh);
        if (witness == null) {
            backedPages.incrementAndGet();
            return fresh;
        }
        return witness; // lost the race: use the winner's page, so nothing the winner writes is lost
    }

    /** Forgets the backing page of {@code pa}, if any. */
    private void dropPage(Region r, long pa) {
        long frame = (pa >>> PAGE_SHIFT) - r.firstFrame;
        byte[][] chunk = (byte[][]) TOP_SLOT.getAcquire(r.top, (int) (frame >>> CHUNK_SHIFT));
        if (chunk == null) {
            return;
        }
        int pageIndex = (int) frame & CHUNK_MASK;
        byte[] page = (byte[]) PAGE_SLOT.getAcquire(chunk, pageIndex);
        if (page != null && (byte[]) PAGE_SLOT.compareAndExchange(chunk, pageIndex, page, (byte[]) null) == page) {
            backedPages.decrementAndGet();
        }
    }

    private static MemoryAccessException notRam(long pa, long length) {
        return new MemoryAccessException(pa, length, MemoryAccessException.Reason.NOT_RAM);
    }

    @Override
    public String toString() {
        return "SparseRam" + regionList + " (" + backedPages() + " backed pages)";
    }
}
