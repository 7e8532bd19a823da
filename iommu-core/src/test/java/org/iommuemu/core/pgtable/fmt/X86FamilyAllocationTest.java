package org.iommuemu.core.pgtable.fmt;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.management.ManagementFactory;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The page-table walk and the map/unmap algorithms call format methods for every entry they touch, so the
 * VT-d second-stage, x86-64 and AMD v1 formats must allocate nothing. Measured with the thread allocation
 * counter, through the interface, as the algorithms call them.
 */
class X86FamilyAllocationTest {
    private static final PtFormat[] FORMATS = {
        VtdSs.levels(5).withSnoop(true).withAccessDirty(true), X86Pt.levels(5), AmdV1.levels(6),
    };

    @Test
    void formatMethodsDoNotAllocate() {
        java.lang.management.ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        Assumptions.assumeTrue(mx instanceof com.sun.management.ThreadMXBean,
                "needs com.sun.management.ThreadMXBean to count allocated bytes");
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) mx;
        Assumptions.assumeTrue(threads.isThreadAllocatedMemorySupported() && threads.isThreadAllocatedMemoryEnabled());
        int rounds = 20_000;
        long sink = exercise(rounds); // warm up
        long tid = Thread.currentThread().getId();
        long before = threads.getThreadAllocatedBytes(tid);
        sink += exercise(rounds);
        long allocated = threads.getThreadAllocatedBytes(tid) - before;
        // One object per call would be at least 16 bytes x dozens of calls x rounds.
        assertThat(allocated).as("bytes allocated by %d rounds (sink %d)", rounds, sink).isLessThan(rounds);
    }

    private static long exercise(int rounds) {
        long sum = 0;
        for (int i = 0; i < rounds; i++) {
            PtFormat f = FORMATS[i % FORMATS.length];
            int level = i % 3;
            int item = f.itemLg2(level);
            int size = (i & 4) != 0 && (f.leafSizes(level) & (1L << (item + 1))) != 0 ? item + 1 : item;
            long oa = ((long) i << 21) & 0xf_ffff_ffe0_0000L;
            int prot = 1 + (i % Prot.ALL);
            long leaf = f.leaf(oa, level, size, prot | Prot.READ);
            sum += f.kind(leaf, level) + f.leafOa(leaf, level) + f.leafLg2(leaf, level) + f.prot(leaf, level);
            sum += f.isDirty(f.markDirty(f.clearDirty(leaf, level), level), level) ? 1 : 0;
            long table = f.table(oa, level + 1);
            sum += f.kind(table, level + 1) + f.tableAddress(table, level + 1);
            sum += f.leafSizes(level) + f.pageSizes() + f.canonicalProt(prot) + f.supportedProt();
            sum += f.tableItemsLg2(level) + f.topItemsLg2(f.topLevel()) + f.vaBits() + f.oaBits();
            sum += f.name().length();
        }
        return sum;
    }
}
