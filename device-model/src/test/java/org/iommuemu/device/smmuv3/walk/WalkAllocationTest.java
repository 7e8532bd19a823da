package org.iommuemu.device.smmuv3.walk;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.READ_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.WRITE_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.WRITE_USER;

import java.lang.management.ManagementFactory;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.device.smmuv3.walk.Stage1Context.TableHalf;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * After warm-up, walks allocate nothing: successes, faults, bad configurations and hardware updates, for every
 * kind of walk (DESIGN.md: hot paths allocate nothing). External aborts are left out: the memory's own
 * {@link MemoryAccessException} is an allocation the walker cannot avoid.
 */
class WalkAllocationTest {
    private static final int WARM_UP = 20_000;
    private static final int MEASURED = 5_000;

    @FunctionalInterface
    interface Walks {
        void run(int i) throws Exception;
    }

    @SuppressWarnings("deprecation") // Thread.getId: threadId() arrives in Java 19
    private static long allocatedBy(Walks walks) throws Exception {
        java.lang.management.ThreadMXBean plain = ManagementFactory.getThreadMXBean();
        Assumptions.assumeTrue(plain instanceof com.sun.management.ThreadMXBean, "no HotSpot thread MXBean");
        com.sun.management.ThreadMXBean bean = (com.sun.management.ThreadMXBean) plain;
        Assumptions.assumeTrue(bean.isThreadAllocatedMemorySupported() && bean.isThreadAllocatedMemoryEnabled(),
                "thread allocation accounting unavailable");
        long thread = Thread.currentThread().getId();
        for (int i = 0; i < WARM_UP; i++) {
            walks.run(i);
        }
        long before = bean.getThreadAllocatedBytes(thread);
        for (int i = 0; i < MEASURED; i++) {
            walks.run(i);
        }
        return bean.getThreadAllocatedBytes(thread) - before;
    }

    @Test
    void stage1WalksAllocateNothing() throws Exception {
        WalkFixture f = new WalkFixture();
        PageTable pt = new PageTable(Arm64Lpae.stage1(12, 48, 48), f.ram, f.alloc);
        pt.map(0x1234_5600_0000L, 0x9_0000_0000L, 64 << 12, Prot.READ | Prot.WRITE, f.gather);
        pt.map(0x2000_0000_0000L, 0x9_4000_0000L, 1L << 21, Prot.READ, f.gather);
        Stage1Context ok = Stage1Context.builder().ttb0(TableHalf.of(16, 12, pt.root())).build();
        Stage1Context bad = ok.toBuilder().ttb0(TableHalf.of(8, 12, pt.root())).build();
        TableWalker w = f.walker;
        WalkResult out = f.out;
        long bytes = allocatedBy(i -> {
            w.translateStage1(ok, 0x1234_5600_0000L + ((i & 63) << 12), READ_PRIV, out); // 4 levels
            w.translateStage1(ok, 0x2000_0000_0000L + i, READ_PRIV, out); // 2M block
            w.translateStage1(ok, 0x2000_0000_0000L, WRITE_PRIV, out); // permission fault
            w.translateStage1(ok, 0x3000_0000_0000L, READ_PRIV, out); // translation fault
            w.translateStage1(ok, -1L, READ_PRIV, out); // TTB1 disabled
            w.translateStage1(bad, 0, READ_PRIV, out); // bad configuration
        });
        assertThat(bytes).isZero();
    }

    @Test
    void hardwareUpdatesAllocateNothing() throws Exception {
        WalkFixture f = new WalkFixture();
        long l0 = WalkFixture.HAND;
        long l3 = l0 + 0x3000;
        long va = 0x5000;
        f.put(l0, Desc.table(l0 + 0x1000));
        f.put(l0 + 0x1000, Desc.table(l0 + 0x2000));
        f.put(l0 + 0x2000, Desc.table(l3));
        long slot = l3 + 5 * 8;
        long clean = Desc.page(0x9_0000_0000L, Desc.AP_EL0 | Desc.AP_RO | Desc.DBM);
        Stage1Context hd = Stage1Context.builder().ttb0(TableHalf.of(16, 12, l0)).ha(true).hd(true).build();
        TableWalker w = f.walker;
        WalkResult out = f.out;
        long bytes = allocatedBy(i -> {
            f.ram.write64(slot, clean); // AF = 0, writable-clean
            w.translateStage1(hd, va, WRITE_USER, out); // sets AF and clears AP[2] in one update
        });
        assertThat(bytes).isZero();
        assertThat(f.get(slot) & (Desc.AF | Desc.AP_RO)).isEqualTo(Desc.AF);
    }

    @Test
    void stage2AndNestedWalksAllocateNothing() throws Exception {
        NestedWalkTest.Guest g = new NestedWalkTest.Guest(12, 12, 42);
        long va = g.mapVa(Prot.READ | Prot.WRITE);
        long ipa = g.s1.iovaToPhys(va);
        // A VA in another stage-1 subtree whose leaf table page stage 2 does not map.
        long unmappedTables = 0x6000_0000_0000L;
        g.s1.map(unmappedTables, NestedWalkTest.FIXED_WINDOW + 0x10_0000, 4096, Prot.READ, g.f.gather);
        g.s2.unmap(Bits.alignDown(g.s1Leaf(unmappedTables).slot(), 12), 4096, g.f.gather);
        TableWalker w = g.f.walker;
        WalkResult out = g.f.out;
        Stage1Context s1 = g.s1ctx;
        Stage2Context s2 = g.s2ctx;
        long bytes = allocatedBy(i -> {
            w.translateNested(s1, s2, va, WRITE_PRIV, out); // 4 x (3 + 1) + 3 reads
            w.translateNested(s1, s2, unmappedTables, READ_PRIV, out); // stage-2 fault, CLASS = TT
            w.translateStage2(s2, ipa, READ_PRIV, out); // concatenated level-1 start
            w.translateStage2(s2, 1L << 41, READ_PRIV, out); // outside S2T0SZ
        });
        assertThat(bytes).isZero();
        assertThat(w.translateNested(s1, s2, va, WRITE_PRIV, out).reads()).isEqualTo(19);
    }
}
