package org.iommuemu.core.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.ref.WeakReference;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.Test;

/**
 * A destroyed domain is garbage once its callers drop it, even if the threads that mapped and unmapped in it (a
 * server's workers) live on: their per-thread gathers must not keep it.
 */
class IommuDomainLifetimeTest extends Fixture {

    @Test
    void aDestroyedDomainIsNotKeptByTheThreadsThatUsedIt() throws Exception {
        ExecutorService worker = Executors.newSingleThreadExecutor();
        try {
            WeakReference<IommuDomain> ref = useAndDestroy(worker);
            assertThat(collectedWhile(ref, worker)).as("collected while the worker thread lives").isTrue();
        } finally {
            worker.shutdownNow();
        }
    }

    /** Maps and unmaps on the worker and on this thread, destroys the domain and forgets it. */
    private WeakReference<IommuDomain> useAndDestroy(ExecutorService worker) throws Exception {
        FakeInstance smmu = new FakeInstance("smmu0", ALL_4K_SIZES, false);
        IommuDomain d = strict();
        d.attach(smmu);
        worker.submit(() -> {
            d.map(0x4000_0000L, 0x1_0000_0000L, M2, RW);
            return d.unmap(0x4000_0000L, M2);
        }).get();
        d.map(0x4000_0000L, 0x1_0000_0000L, K4, RW);
        d.unmap(0x4000_0000L, K4); // this thread's gathers too
        assertThat(smmu.syncs()).as("both unmaps synced").hasSize(2);
        d.detach(smmu);
        d.destroy();
        return new WeakReference<>(d);
    }

    private static boolean collectedWhile(WeakReference<?> ref, ExecutorService alive) throws Exception {
        for (int i = 0; i < 50 && ref.get() != null; i++) {
            alive.submit(() -> { }).get(); // the worker is still there
            System.gc();
            Thread.sleep(10);
        }
        return ref.get() == null;
    }
}
