package org.iommuemu.core.pgtable;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.SparseRam;
import org.junit.jupiter.api.Test;

class IotlbGatherTest {
    private final SparseRam ram = SparseRam.withDefaultRam();
    private final BuddyPageAllocator alloc = new BuddyPageAllocator(ram, SparseRam.DEFAULT_RAM_BASE, 64 << 20);
    private final List<String> flushes = new ArrayList<>();
    private final IotlbGather gather = new IotlbGather(g -> flushes.add(
            Long.toHexString(g.start()) + "-" + Long.toHexString(g.last()) + "/" + g.pageLg2()
                    + (g.freedTables() ? "+tables" : "")), alloc);

    @Test
    void adjacentAndOverlappingRangesMerge() {
        gather.addRange(0x10000, 0x1000, 12);
        gather.addRange(0x11000, 0x2000, 12);
        gather.addRange(0xF000, 0x1000, 12);
        gather.addRange(0x10000, 0x800_0000 - 0x10000, 12);
        assertThat(flushes).isEmpty();
        gather.sync();
        assertThat(flushes).containsExactly("f000-7ffffff/12");
        assertThat(gather.isEmpty()).isTrue();
    }

    @Test
    void aDisjointRangeOrAnotherPageSizeForcesASyncFirst() {
        gather.addRange(0x10000, 0x1000, 12);
        gather.addRange(0x20000, 0x1000, 12);
        assertThat(flushes).containsExactly("10000-10fff/12");
        gather.addRange(0x21000, 0x20_0000, 21);
        assertThat(flushes).containsExactly("10000-10fff/12", "20000-20fff/12");
        gather.sync();
        assertThat(flushes).hasSize(3).last().isEqualTo("21000-220fff/21");
        assertThat(gather.syncs()).isEqualTo(3);
    }

    @Test
    void freedTablesAreReleasedOnlyAfterTheSync() {
        long table = alloc.allocPages(0, "pgtable");
        gather.addRange(0, 0x20_0000, 12);
        gather.addFreedTable(table);
        assertThat(alloc.allocatedPages("pgtable")).isEqualTo(1);
        gather.addRange(0x4000_0000L, 0x1000, 12); // disjoint: forces a sync, which releases the table
        assertThat(flushes).containsExactly("0-1fffff/12+tables");
        assertThat(alloc.allocatedPages("pgtable")).isZero();
        gather.sync();
        assertThat(flushes).hasSize(2);
        gather.sync();
        assertThat(flushes).as("an empty gather flushes nothing").hasSize(2);
    }
}
