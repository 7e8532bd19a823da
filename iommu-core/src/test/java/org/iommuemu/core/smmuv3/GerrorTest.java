package org.iommuemu.core.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Gerror against spec SMMUV3.md §3: bit positions and the toggle protocol. */
class GerrorTest {

    @Test
    void bitsAndValidMask() {
        assertThat(Gerror.VALID_MASK).isEqualTo(0x1FD);
        assertThat(new int[] {Gerror.CMDQ_ERR, Gerror.EVENTQ_ABT_ERR, Gerror.PRIQ_ABT_ERR, Gerror.MSI_CMDQ_ABT_ERR,
            Gerror.MSI_EVENTQ_ABT_ERR, Gerror.MSI_PRIQ_ABT_ERR, Gerror.MSI_GERROR_ABT_ERR, Gerror.SFM_ERR})
                .containsExactly(0, 2, 3, 4, 5, 6, 7, 8);
        assertThat(Gerror.name(Gerror.SFM_ERR)).isEqualTo("SFM_ERR");
        assertThat(Gerror.name(1)).isEqualTo("RESERVED_1");
        for (int bit = 0; bit <= 8; bit++) {
            assertThat(Gerror.name(bit)).isNotEmpty();
        }
    }

    @Test
    void raiseToggleAcknowledge() {
        int gerror = 0;
        int gerrorn = 0;
        gerror = Gerror.raise(gerror, gerrorn, Gerror.CMDQ_ERR);
        assertThat(gerror).isEqualTo(0x1);
        assertThat(Gerror.isActive(gerror, gerrorn, Gerror.CMDQ_ERR)).isTrue();
        // Raising an active error again changes nothing (it must not toggle back).
        assertThat(Gerror.raise(gerror, gerrorn, Gerror.CMDQ_ERR)).isEqualTo(gerror);
        gerror = Gerror.raise(gerror, gerrorn, Gerror.EVENTQ_ABT_ERR);
        assertThat(Gerror.active(gerror, gerrorn)).isEqualTo(0x5);
        // Software acknowledges by writing GERRORN with what it read from GERROR.
        gerrorn = gerror;
        assertThat(Gerror.active(gerror, gerrorn)).isZero();
        // The next error toggles the bit back to 0 in GERROR, which is active again.
        gerror = Gerror.raise(gerror, gerrorn, Gerror.CMDQ_ERR);
        assertThat(gerror & 1).isZero();
        assertThat(Gerror.isActive(gerror, gerrorn, Gerror.CMDQ_ERR)).isTrue();
        // The reserved bit 1 never counts as active.
        assertThat(Gerror.active(0x2, 0)).isZero();
    }
}
