package org.iommuemu.core.api;

import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;

/** Guest RAM, an allocator and sizes shared by the API tests. */
class Fixture {
    static final long K4 = 1L << 12;
    static final long K64 = 1L << 16;
    static final long M2 = 1L << 21;
    static final long M4 = 1L << 22;
    static final long G1 = 1L << 30;
    static final int RW = Prot.READ | Prot.WRITE;
    /** Page sizes of {@link TestFormat#fourK()}. */
    static final long ALL_4K_SIZES = K4 | K64 | M2 | G1;

    final SparseRam ram = SparseRam.withDefaultRam();
    final BuddyPageAllocator alloc = new BuddyPageAllocator(ram, SparseRam.DEFAULT_RAM_BASE, G1);

    /** Table pages outstanding. */
    long tablePages() {
        return alloc.allocatedPages(PageTable.TAG);
    }

    IommuDomain.Builder domain() {
        return IommuDomain.builder(TestFormat.fourK(), ram, alloc);
    }

    IommuDomain strict() throws IommuApiException {
        return domain().name("strict").build();
    }
}
