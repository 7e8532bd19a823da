package org.iommuemu.device.smmuv3;

import java.util.List;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.PageTableException;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.Ste;

/**
 * A virtual machine's memory as its own driver sees it: a window of IPA space, every page of it mapped by a
 * stage-2 {@link PageTable} (4 KB pages, read-write) onto host RAM the rig allocated. The guest driver allocates
 * its CD tables and stage-1 tables here with its own page allocator, so every address it writes into them is an
 * IPA, as in a real VM; the SMMU reaches them only through stage 2.
 */
final class GuestSpace implements PhysicalMemory {
    static final long IPA_BASE = 0x4000_0000L;

    final SmmuTestRig rig;
    final PageTable s2;
    final long base;
    final long size;
    final long hostBase;
    final BuddyPageAllocator alloc;
    private final RamRegion window;

    /** A window of 2^order pages at {@link #IPA_BASE}, mapped by a fresh 4 KB, 40-bit stage-2 table. */
    GuestSpace(SmmuTestRig rig, int order) {
        this.rig = rig;
        this.s2 = rig.stage2(12, 40);
        this.base = IPA_BASE;
        this.size = 4096L << order;
        this.hostBase = rig.pages(order, "guest");
        rig.mapPages(s2, base, hostBase, size, Prot.READ | Prot.WRITE);
        this.window = new RamRegion(base, size);
        this.alloc = new BuddyPageAllocator(this, base, size);
    }

    /** The host physical address stage 2 gives {@code ipa} (as the driver's tables say, not the SMMU). */
    long pa(long ipa) throws MemoryAccessException {
        if (!window.contains(ipa, 1)) {
            throw new MemoryAccessException(ipa, 1, MemoryAccessException.Reason.NOT_RAM);
        }
        long pa;
        try {
            pa = s2.iovaToPhys(ipa);
        } catch (PageTableException e) {
            throw new AssertionError(e);
        }
        if (pa == PageTable.NO_MAPPING) {
            throw new MemoryAccessException(ipa, 1, MemoryAccessException.Reason.NOT_RAM);
        }
        return pa;
    }

    long paOf(long ipa) {
        try {
            return pa(ipa);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }

    /** Removes the stage-2 mapping of the page holding {@code ipa} (no invalidation). */
    void unmapPage(long ipa) {
        try {
            s2.unmap(ipa & -4096L, 4096, rig.gather());
        } catch (PageTableException e) {
            throw new AssertionError(e);
        }
    }

    /** A stage-1 table the guest builds in its own memory: 4 KB granule, 48-bit VAs, 40-bit output (IPAs). */
    PageTable stage1() {
        return SmmuTestRig.table(Arm64Lpae.stage1(12, 48, 40), this, alloc);
    }

    /** Maps in a table that lives in this space. */
    void map(PageTable pt, long iova, long ipa, long size, int prot) {
        try {
            pt.map(iova, ipa, size, prot, new IotlbGather(SmmuTestRig.NO_FLUSH, alloc));
        } catch (PageTableException e) {
            throw new AssertionError(e);
        }
    }

    /** A CD table page in this space holding {@code cd} at substream 0; returns its IPA. */
    long cdTable(Cd cd) {
        long ipa = alloc.allocPages(0, "guest-cd");
        long[] words = cd.encode();
        for (int i = 0; i < words.length; i++) {
            w64(ipa + 8L * i, words[i]);
        }
        return ipa;
    }

    /**
     * The nested STE: this space's stage 2 (VMID {@code vmid}) and the guest's CD table at IPA {@code cdIpa},
     * as a VMM writes it from the guest's own STE.
     */
    Ste nestedSte(int vmid, long cdIpa, int s1CdMax, int s1Dss) {
        return SmmuTestRig.s2Ste(vmid, s2).toBuilder()
                .config(Ste.CONFIG_NESTED)
                .s1Fmt(Ste.S1FMT_LINEAR)
                .s1ContextPtr(cdIpa)
                .s1CdMax(s1CdMax)
                .s1Dss(s1Dss)
                .s1Cir(Encodings.CACHE_WBWA)
                .s1Cor(Encodings.CACHE_WBWA)
                .s1Csh(Encodings.SH_ISH)
                .build();
    }

    long page() {
        return alloc.allocPages(0, "guest-data");
    }

    void w64(long ipa, long value) {
        try {
            write64(ipa, value);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }

    long r64(long ipa) {
        try {
            return read64(ipa);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
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
        return rig.ram.read8(pa(pa));
    }

    @Override
    public int read16(long pa) throws MemoryAccessException {
        return rig.ram.read16(pa(pa));
    }

    @Override
    public int read32(long pa) throws MemoryAccessException {
        return rig.ram.read32(pa(pa));
    }

    @Override
    public long read64(long pa) throws MemoryAccessException {
        return rig.ram.read64(pa(pa));
    }

    @Override
    public void write8(long pa, int value) throws MemoryAccessException {
        rig.ram.write8(pa(pa), value);
    }

    @Override
    public void write16(long pa, int value) throws MemoryAccessException {
        rig.ram.write16(pa(pa), value);
    }

    @Override
    public void write32(long pa, int value) throws MemoryAccessException {
        rig.ram.write32(pa(pa), value);
    }

    @Override
    public void write64(long pa, long value) throws MemoryAccessException {
        rig.ram.write64(pa(pa), value);
    }

    @Override
    public long compareAndExchange64(long pa, long expected, long update) throws MemoryAccessException {
        return rig.ram.compareAndExchange64(pa(pa), expected, update);
    }

    @Override
    public void read(long pa, byte[] dst, int off, int len) throws MemoryAccessException {
        while (len > 0) {
            int n = (int) Math.min(len, 4096 - (pa & 4095));
            rig.ram.read(pa(pa), dst, off, n);
            pa += n;
            off += n;
            len -= n;
        }
    }

    @Override
    public void write(long pa, byte[] src, int off, int len) throws MemoryAccessException {
        while (len > 0) {
            int n = (int) Math.min(len, 4096 - (pa & 4095));
            rig.ram.write(pa(pa), src, off, n);
            pa += n;
            off += n;
            len -= n;
        }
    }

    @Override
    public void zero(long pa, long length) throws MemoryAccessException {
        while (length > 0) {
            long n = Math.min(length, 4096 - (pa & 4095));
            rig.ram.zero(pa(pa), n);
            pa += n;
            length -= n;
        }
    }
}
