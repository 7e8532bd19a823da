package org.iommuemu.device.xlate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class CostModelTest {
    @Test
    void defaultsAreTheDocumentedOnes() {
        CostModel c = CostModel.DEFAULTS;
        assertThat(c.mmioAccessNs()).isEqualTo(100);
        assertThat(c.tableReadNs()).isEqualTo(80);
        assertThat(c.tableWriteNs()).isEqualTo(100);
        assertThat(c.queueReadNs()).isEqualTo(80);
        assertThat(c.cacheHitNs()).isEqualTo(2);
        assertThat(c.cacheMissNs()).isEqualTo(5);
        assertThat(c.commandNs()).isEqualTo(50);
        assertThat(c.syncNs()).isEqualTo(200);
        assertThat(c.eventWriteNs()).isEqualTo(100);
        assertThat(c.msiWriteNs()).isEqualTo(100);
    }

    @Test
    void aHitIsCheaperThanAMissWithItsWalk() {
        CostModel c = CostModel.DEFAULTS;
        // a 4-level walk after a miss costs four table reads on top of the miss
        assertThat(c.cacheHitNs()).isLessThan(c.cacheMissNs() + 4 * c.tableReadNs());
    }

    @Test
    void negativeCostsAreRejected() {
        assertThatThrownBy(() -> new CostModel(100, 80, 100, 80, 2, -5, 50, 200, 100, 100))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("-5");
        assertThat(CostModel.FREE.syncNs()).isZero();
    }
}
