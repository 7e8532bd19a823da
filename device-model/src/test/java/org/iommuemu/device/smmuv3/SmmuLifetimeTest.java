package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.ref.WeakReference;
import org.junit.jupiter.api.Test;

/**
 * An SMMU that translated on a thread is garbage once dropped, although that thread lives on. Its per-thread scratch
 * space (micro-TLB, counters, walker) used to keep it: a long fuzzing run that makes a device per input ran out of
 * heap after some 16,000 inputs, and every machine a campaign or a server made stayed in memory.
 */
class SmmuLifetimeTest {
    private static final long IOVA = 0x4000_0000L;

    @Test
    void aDroppedSmmuIsNotKeptByTheThreadThatTranslated() throws Exception {
        WeakReference<SmmuV3Device> ref = translateOnce();
        for (int i = 0; i < 50 && ref.get() != null; i++) {
            System.gc();
            Thread.sleep(10);
        }
        assertThat(ref.get()).as("collected while this thread lives on").isNull();
    }

    private static WeakReference<SmmuV3Device> translateOnce() {
        SmmuTestRig rig = SmmuTestRig.started();
        rig.stage1Stream(1, 1, IOVA, rig.page());
        assertThat(rig.translate(1, -1, IOVA, 0).isOk()).isTrue();
        assertThat(rig.smmu.stats().translations()).isPositive();
        return new WeakReference<>(rig.smmu);
    }
}
