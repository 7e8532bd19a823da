package org.iommuemu.core.memory;

import java.util.List;

/**
 * Guest physical memory: the full 64-bit physical address space, of which the {@link #regions() RAM
 * regions} are backed. Every byte a device reads or writes (tables, descriptors, queues, DMA data) and
 * every byte a driver programs goes through this interface, so it can be faulted and traced.
 *
 * <p>Values are little-endian. Accesses may be unaligned and may cross pages; a 64-bit or 32-bit access at
 * an address aligned to its size is single-copy atomic and has acquire (read) / release (write)
 * semantics, so a descriptor published by one thread is seen whole by another. Implementations are
 * thread-safe.
 *
 * <p>An access of which any byte is outside RAM fails with {@link MemoryAccessException} and changes
 * nothing (a write is all or nothing with respect to that check). Scalar and bulk accesses allocate
 * nothing on success.
 */
public interface PhysicalMemory {
    /** The RAM regions, sorted by base, not overlapping. */
    List<RamRegion> regions();

    /** Whether every byte of {@code [pa, pa + length)} is RAM (length 0: false). */
    boolean isRam(long pa, long length);

    int read8(long pa) throws MemoryAccessException;

    int read16(long pa) throws MemoryAccessException;

    int read32(long pa) throws MemoryAccessException;

    long read64(long pa) throws MemoryAccessException;

    void write8(long pa, int value) throws MemoryAccessException;

    void write16(long pa, int value) throws MemoryAccessException;

    void write32(long pa, int value) throws MemoryAccessException;

    void write64(long pa, long value) throws MemoryAccessException;

    /** Copies {@code len} bytes at {@code pa} into {@code dst[off .. off + len)}. */
    void read(long pa, byte[] dst, int off, int len) throws MemoryAccessException;

    /** Copies {@code src[off .. off + len)} to {@code pa}; nothing is written if any byte is outside RAM. */
    void write(long pa, byte[] src, int off, int len) throws MemoryAccessException;

    /** Writes {@code length} zero bytes at {@code pa}; nothing is written if any byte is outside RAM. */
    void zero(long pa, long length) throws MemoryAccessException;

    /**
     * Reads {@code count} consecutive 64-bit values at {@code pa} (8-byte aligned) into {@code dst[off..]}, each
     * one an atomic acquire load as {@link #read64} does. Faster than a loop of {@code read64} for runs of
     * table entries: nothing is read if any byte is outside RAM.
     *
     * @throws IllegalArgumentException if {@code pa} is not 8-byte aligned
     */
    default void read64s(long pa, long[] dst, int off, int count) throws MemoryAccessException {
        java.util.Objects.checkFromIndexSize(off, count, dst.length);
        if ((pa & 7) != 0) {
            throw new IllegalArgumentException("read64s at " + Long.toHexString(pa) + " is not 8-byte aligned");
        }
        if (count > 0 && !isRam(pa, 8L * count)) {
            throw new MemoryAccessException(pa, 8L * count, MemoryAccessException.Reason.NOT_RAM);
        }
        for (int i = 0; i < count; i++) {
            dst[off + i] = read64(pa + 8L * i);
        }
    }

    /**
     * Writes {@code src[off .. off + count)} as consecutive 64-bit values at {@code pa} (8-byte aligned), each
     * one an atomic release store as {@link #write64} does; nothing is written if any byte is outside RAM.
     *
     * @throws IllegalArgumentException if {@code pa} is not 8-byte aligned
     */
    default void write64s(long pa, long[] src, int off, int count) throws MemoryAccessException {
        java.util.Objects.checkFromIndexSize(off, count, src.length);
        if ((pa & 7) != 0) {
            throw new IllegalArgumentException("write64s at " + Long.toHexString(pa) + " is not 8-byte aligned");
        }
        if (count > 0 && !isRam(pa, 8L * count)) {
            throw new MemoryAccessException(pa, 8L * count, MemoryAccessException.Reason.NOT_RAM);
        }
        for (int i = 0; i < count; i++) {
            write64(pa + 8L * i, src[off + i]);
        }
    }

    /**
     * Reads {@code count} consecutive 32-bit values at {@code pa} (4-byte aligned) into {@code dst[off..]} as
     * unsigned longs, each an atomic acquire load as {@link #read32} does; nothing is read if any byte is outside
     * RAM. (32-bit page-table entries use it.)
     *
     * @throws IllegalArgumentException if {@code pa} is not 4-byte aligned
     */
    default void read32s(long pa, long[] dst, int off, int count) throws MemoryAccessException {
        java.util.Objects.checkFromIndexSize(off, count, dst.length);
        if ((pa & 3) != 0) {
            throw new IllegalArgumentException("read32s at " + Long.toHexString(pa) + " is not 4-byte aligned");
        }
        if (count > 0 && !isRam(pa, 4L * count)) {
            throw new MemoryAccessException(pa, 4L * count, MemoryAccessException.Reason.NOT_RAM);
        }
        for (int i = 0; i < count; i++) {
            dst[off + i] = Integer.toUnsignedLong(read32(pa + 4L * i));
        }
    }

    /**
     * Writes the low 32 bits of {@code src[off .. off + count)} as consecutive 32-bit values at {@code pa}
     * (4-byte aligned), each an atomic release store; nothing is written if any byte is outside RAM.
     *
     * @throws IllegalArgumentException if {@code pa} is not 4-byte aligned
     */
    default void write32s(long pa, long[] src, int off, int count) throws MemoryAccessException {
        java.util.Objects.checkFromIndexSize(off, count, src.length);
        if ((pa & 3) != 0) {
            throw new IllegalArgumentException("write32s at " + Long.toHexString(pa) + " is not 4-byte aligned");
        }
        if (count > 0 && !isRam(pa, 4L * count)) {
            throw new MemoryAccessException(pa, 4L * count, MemoryAccessException.Reason.NOT_RAM);
        }
        for (int i = 0; i < count; i++) {
            write32(pa + 4L * i, (int) src[off + i]);
        }
    }

    /**
     * Atomically replaces the 64-bit value at {@code pa} with {@code update} if it equals {@code expected}.
     * Returns the value found (the witness): equal to {@code expected} exactly when the exchange happened.
     *
     * @throws IllegalArgumentException if {@code pa} is not 8-byte aligned (a programming error: atomic
     *     accesses are naturally aligned)
     */
    long compareAndExchange64(long pa, long expected, long update) throws MemoryAccessException;

    /** {@link #compareAndExchange64} reduced to whether the exchange happened. */
    default boolean compareAndSet64(long pa, long expected, long update) throws MemoryAccessException {
        return compareAndExchange64(pa, expected, update) == expected;
    }
}
