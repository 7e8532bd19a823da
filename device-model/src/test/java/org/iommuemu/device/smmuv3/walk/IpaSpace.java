package org.iommuemu.device.smmuv3.walk;

import java.util.List;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.PageTableException;

/**
 * A guest's view of memory through stage 2: a window of IPA space whose every access is translated by a
 * stage-2 {@link PageTable} into the host's physical memory. A guest driver builds its stage-1 tables in here,
 * so they end up wherever stage 2 put each page, as in a real VM.
 */
final class IpaSpace implements PhysicalMemory {
    private static final long PAGE = 4096;

    private final PhysicalMemory host;
    private final PageTable stage2;
    private final RamRegion window;

    IpaSpace(PhysicalMemory host, PageTable stage2, long base, long size) {
        this.host = host;
        this.stage2 = stage2;
        this.window = new RamRegion(base, size);
    }

    /** The host physical address of {@code ipa}. */
    long pa(long ipa) throws MemoryAccessException {
        if (!window.contains(ipa, 1)) {
            throw new MemoryAccessException(ipa, 1, MemoryAccessException.Reason.NOT_RAM);
        }
        long pa;
        try {
            pa = stage2.iovaToPhys(ipa);
        } catch (PageTableException e) {
            throw new AssertionError(e);
        }
        if (pa == PageTable.NO_MAPPING) {
            throw new MemoryAccessException(ipa, 1, MemoryAccessException.Reason.NOT_RAM);
        }
        return pa;
    }

    @Override
    public List<RamRegion> regions() {
        return List.of(window);
    }

    @Override
    public boolean isRam(long pa, long length) {
        return length > 0 && window.contains(pa, length);
    }

    @Override
    public int read8(long pa) throws MemoryAccessException {
        return host.read8(pa(pa));
    }

    @Override
    public int read16(long pa) throws MemoryAccessException {
        return host.read16(pa(pa));
    }

    @Override
    public int read32(long pa) throws MemoryAccessException {
        return host.read32(pa(pa));
    }

    @Override
    public long read64(long pa) throws MemoryAccessException {
        return host.read64(pa(pa));
    }

    @Override
    public void write8(long pa, int value) throws MemoryAccessException {
        host.write8(pa(pa), value);
    }

    @Override
    public void write16(long pa, int value) throws MemoryAccessException {
        host.write16(pa(pa), value);
    }

    @Override
    public void write32(long pa, int value) throws MemoryAccessException {
        host.write32(pa(pa), value);
    }

    @Override
    public void write64(long pa, long value) throws MemoryAccessException {
        host.write64(pa(pa), value);
    }

    @Override
    public long compareAndExchange64(long pa, long expected, long update) throws MemoryAccessException {
        return host.compareAndExchange64(pa(pa), expected, update);
    }

    @Override
    public void read(long pa, byte[] dst, int off, int len) throws MemoryAccessException {
        while (len > 0) {
            int n = (int) Math.min(len, PAGE - (pa & (PAGE - 1)));
            host.read(pa(pa), dst, off, n);
            pa += n;
            off += n;
            len -= n;
        }
    }

    @Override
    public void write(long pa, byte[] src, int off, int len) throws MemoryAccessException {
        while (len > 0) {
            int n = (int) Math.min(len, PAGE - (pa & (PAGE - 1)));
            host.write(pa(pa), src, off, n);
            pa += n;
            off += n;
            len -= n;
        }
    }

    @Override
    public void zero(long pa, long length) throws MemoryAccessException {
        while (length > 0) {
            long n = Math.min(length, PAGE - (pa & (PAGE - 1)));
            host.zero(pa(pa), n);
            pa += n;
            length -= n;
        }
    }
}
