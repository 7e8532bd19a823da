package org.iommuemu.device.vtd;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.ref.WeakReference;
import org.junit.jupiter.api.Test;

/** A VT-d translator that translated on a thread is garbage once dropped, although that thread lives on. */
class VtdLifetimeTest {

    @Test
    void aDroppedTranslatorIsNotKeptByTheThreadThatTranslated() throws Exception {
        WeakReference<VtdTranslator> ref = translateOnce();
        for (int i = 0; i < 50 && ref.get() != null; i++) {
            System.gc();
            Thread.sleep(10);
        }
        assertThat(ref.get()).as("collected while this thread lives on").isNull();
    }

    private static WeakReference<VtdTranslator> translateOnce() {
        VtdRig rig = VtdRig.legacy(VtdConfig.defaults());
        long ss = rig.page();
        rig.context(0x10, ss, 4, 1);
        rig.translate(0x10, -1, 0x1000, 0);
        assertThat(rig.translator.translations()).isPositive();
        return new WeakReference<>(rig.translator);
    }
}
