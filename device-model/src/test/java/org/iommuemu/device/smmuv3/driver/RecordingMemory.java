package org.iommuemu.device.smmuv3.driver;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.memory.RamRegion;

/** Physical memory that records every 64-bit write in [from, to) as (address, value), in order. */
final class RecordingMemory implements PhysicalMemory {
    final PhysicalMemory next;
    final List<long[]> writes = new CopyOnWriteArrayList<>();
    volatile long from;
    volatile long to;

    RecordingMemory(PhysicalMemory next) {
        this.next = next;
    }

    void watch(long start, long length) {
        writes.clear();
        from = start;
        to = start + length;
    }

    @Override
    public List<RamRegion> regions() {
        return next.regions();
    }

    @Override
    public boolean isRam(long pa, long length) {
        return next.isRam(pa, length);
    }

    @Override
    public int read8(long pa) throws MemoryAccessException {
        return next.read8(pa);
    }

    @Override
    public int read16(long pa) throws MemoryAccessException {
        return next.read16(pa);
    }

    @Override
    public int read32(long pa) throws MemoryAccessException {
        return next.read32(pa);
    }

    @Override
    public long read64(long pa) throws MemoryAccessException {
        return next.read64(pa);
    }

    @Override
    public void write8(long pa, int value) throws MemoryAccessException {
        next.write8(pa, value);
    }

    @Override
    public void write16(long pa, int value) throws MemoryAccessException {
        next.write16(pa, value);
    }

    @Override
    public void write32(long pa, int value) throws MemoryAccessException {
        next.write32(pa, value);
    }

    @Override
    public void write64(long pa, long value) throws MemoryAccessException {
        if (pa >= from && pa < to) {
            writes.add(new long[] {pa, value});
        }
        next.write64(pa, value);
    }

    @Override
    public void read(long pa, byte[] dst, int off, int len) throws MemoryAccessException {
        next.read(pa, dst, off, len);
    }

    @Override
    public void write(long pa, byte[] src, int off, int len) throws MemoryAccessException {
        next.write(pa, src, off, len);
    }

    @Override
    public void zero(long pa, long length) throws MemoryAccessException {
        next.zero(pa, length);
    }

    @Override
    public long compareAndExchange64(long pa, long expected, long update) throws MemoryAccessException {
        return next.compareAndExchange64(pa, expected, update);
    }
}
