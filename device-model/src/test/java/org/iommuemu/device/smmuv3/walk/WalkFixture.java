package org.iommuemu.device.smmuv3.walk;

import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.pgtable.IotlbGather;

/** Guest RAM, a page allocator over part of it, and a walker reading that RAM directly. */
class WalkFixture {
    static final long RAM = SparseRam.DEFAULT_RAM_BASE;
    /** The allocator hands out the first 256 MiB of RAM; hand-written tables live above it. */
    static final long POOL = 256L << 20;
    static final long HAND = RAM + POOL;
    static final int READ_PRIV = org.iommuemu.device.machine.Access.PRIVILEGED;
    static final int WRITE_PRIV = org.iommuemu.device.machine.Access.PRIVILEGED
            | org.iommuemu.device.machine.Access.WRITE;
    static final int FETCH_PRIV = org.iommuemu.device.machine.Access.PRIVILEGED
            | org.iommuemu.device.machine.Access.INSTRUCTION;
    static final int READ_USER = 0;
    static final int WRITE_USER = org.iommuemu.device.machine.Access.WRITE;
    static final int FETCH_USER = org.iommuemu.device.machine.Access.INSTRUCTION;

    final SparseRam ram = SparseRam.withDefaultRam();
    final BuddyPageAllocator alloc = new BuddyPageAllocator(ram, RAM, POOL);
    final IotlbGather gather = new IotlbGather(g -> {}, alloc);
    final TableWalker walker = new TableWalker(DescriptorReader.direct(ram));
    final WalkResult out = new WalkResult();

    void put(long pa, long value) {
        try {
            ram.write64(pa, value);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }

    long get(long pa) {
        try {
            return ram.read64(pa);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }
}
