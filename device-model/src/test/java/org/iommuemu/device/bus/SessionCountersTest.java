package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.regs.AllocationMeter;
import org.junit.jupiter.api.Test;

/** A session's DMA counters: exact under concurrent use, and counting allocates nothing (it is on the DMA path). */
class SessionCountersTest {
    private static Session session() {
        Machine m = new Machine(MachineConfig.defaults());
        return new Session(1, "s", m.iommu("smmu0"), 3, false, null, null, 1);
    }

    @Test
    void countingAllocatesNothing() {
        Session s = session();
        long bytes = AllocationMeter.bytesAllocated(() -> {
            for (int i = 0; i < 100_000; i++) {
                s.count((i & 1) == 0, 4096, (i & 7) == 0);
            }
        });
        assertThat(bytes).isZero();
        assertThat(s.reads() + s.writes()).isEqualTo(200_000);
        assertThat(s.bytes()).isEqualTo(200_000L * 4096);
        assertThat(s.faults()).isEqualTo(25_000);
    }

    @Test
    void countsFromSeveralThreadsAddUp() throws Exception {
        Session s = session();
        Thread[] threads = new Thread[4];
        for (int t = 0; t < threads.length; t++) {
            threads[t] = new Thread(() -> {
                for (int i = 0; i < 50_000; i++) {
                    s.count(true, 8, false);
                }
            });
            threads[t].start();
        }
        for (Thread t : threads) {
            t.join();
        }
        assertThat(s.writes()).isEqualTo(200_000);
        assertThat(s.bytes()).isEqualTo(1_600_000);
        assertThat(s.reads()).isZero();
    }
}
