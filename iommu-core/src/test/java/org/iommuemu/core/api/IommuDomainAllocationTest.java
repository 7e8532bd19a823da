package org.iommuemu.core.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.management.ManagementFactory;
import org.iommuemu.core.pgtable.IotlbGather;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The map and unmap paths allocate nothing once warmed up (per-thread gathers, primitive queue arrays). */
class IommuDomainAllocationTest extends Fixture {
    /** An instance that only counts, so that it allocates nothing itself. */
    private static final class CountingInstance implements IommuInstanceOps {
        long calls;

        @Override
        public String name() {
            return "counting";
        }

        @Override
        public long pageSizes() {
            return ALL_4K_SIZES;
        }

        @Override
        public boolean needsMapSync() {
            return true;
        }

        @Override
        public void iotlbSyncMap(IommuDomain domain, long iova, long size) {
            calls++;
        }

        @Override
        public void iotlbSync(IommuDomain domain, IotlbGather gather) {
            calls += gather.last() - gather.start();
        }

        @Override
        public void flushIotlbAll(IommuDomain domain) {
            calls++;
        }
    }

    @ParameterizedTest
    @EnumSource(FlushPolicy.class)
    void mapAndUnmapAllocateNothing(FlushPolicy policy) throws Exception {
        java.lang.management.ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        Assumptions.assumeTrue(mx instanceof com.sun.management.ThreadMXBean,
                "needs com.sun.management.ThreadMXBean to count allocated bytes");
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) mx;
        Assumptions.assumeTrue(threads.isThreadAllocatedMemorySupported() && threads.isThreadAllocatedMemoryEnabled());
        IommuDomain d = domain().flushPolicy(policy).build();
        CountingInstance instance = new CountingInstance();
        d.attach(instance);
        int rounds = 20_000;
        long sink = churn(d, rounds); // warm up: tables, gathers, queue arrays
        long tid = Thread.currentThread().getId();
        long before = threads.getThreadAllocatedBytes(tid);
        sink += churn(d, rounds);
        long allocated = threads.getThreadAllocatedBytes(tid) - before;
        assertThat(allocated).as("bytes allocated by %d map+unmap rounds (sink %d, %d calls)", rounds, sink,
                instance.calls).isLessThan(rounds);
    }

    private static long churn(IommuDomain d, int rounds) throws IommuApiException {
        long sum = 0;
        for (int i = 0; i < rounds; i++) {
            long iova = 0x4000_0000L + (i & 1023) * K4;
            sum += d.map(iova, 0x2_0000_0000L + i * K4, K4, RW);
            sum += d.unmap(iova, K4);
        }
        return sum;
    }
}
