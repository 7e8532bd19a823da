package org.iommuemu.core.vtd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/**
 * The device-TLB descriptor encoders: every span from one page to the whole address space decodes back (by the
 * spec's rule, S=1: the lowest clear address bit N at or above 12 gives 2^(N+1) bytes) to the same address and
 * size, no reserved bit is set, and bad spans or misaligned addresses are refused.
 */
class InvDescDeviceTlbTest {
    /** The spec's decoding of a device-TLB qw1: {base, log2 of the size}. */
    private static long[] decode(long qw1, int sizeBit) {
        long addr = qw1 & VtdTables.PTR_MASK;
        if ((qw1 >>> sizeBit & 1) == 0) {
            return new long[] {addr, 12};
        }
        long ones = ~(addr >>> 12);
        int lg2 = ones == 0 ? 64 : Math.min(64, 12 + Long.numberOfTrailingZeros(ones) + 1);
        long base = lg2 == 64 ? 0 : addr & -(1L << lg2);
        return new long[] {base, lg2};
    }

    @Test
    void everySpanDecodesBackToItsAddressAndSize() {
        for (int lg2 = 12; lg2 <= 64; lg2++) {
            long addr = lg2 >= 40 ? 0 : 0x55L << 40 & -(1L << lg2);
            long dev = InvDesc.deviceTlbAddr(addr, lg2);
            assertThat(decode(dev, InvDesc.DEV_S)).as("span 2^" + lg2).containsExactly(addr, lg2);
            assertThat(dev & InvDesc.DEV_RSVD1).isZero();
            long pdev = InvDesc.pasidDeviceTlbAddr(addr, lg2, false);
            assertThat(decode(pdev, InvDesc.PDEV_S)).containsExactly(addr, lg2);
            assertThat(pdev & InvDesc.PDEV_RSVD1).isZero();
        }
        assertThat(InvDesc.pasidDeviceTlbAddr(0, 64, true) & 1).as("G").isEqualTo(1);
    }

    @Test
    void thePasidBasedQw0CarriesTheSourceIdAndPasidAndNoReservedBit() {
        long qw0 = InvDesc.pasidDeviceTlb(0xABCD, 0xF_FFFF);
        assertThat(InvDesc.type(qw0)).isEqualTo(InvDesc.TYPE_PASID_DEVICE_TLB);
        assertThat(qw0 >>> InvDesc.PDEV_SID & 0xFFFF).isEqualTo(0xABCD);
        assertThat(qw0 >>> InvDesc.PASID & 0xF_FFFF).isEqualTo(0xF_FFFF);
        assertThat(qw0 & InvDesc.PDEV_RSVD0).isZero();
        assertThat(InvDesc.deviceTlb(0xABCD) & InvDesc.DEV_RSVD0).isZero();
    }

    @Test
    void badSpansAndMisalignedAddressesAreRefused() {
        assertThatThrownBy(() -> InvDesc.deviceTlbAddr(0, 11)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("2^11");
        assertThatThrownBy(() -> InvDesc.deviceTlbAddr(0, 65)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> InvDesc.deviceTlbAddr(0x1000, 13)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("aligned");
        assertThatThrownBy(() -> InvDesc.pasidDeviceTlbAddr(0x800, 12, false))
                .isInstanceOf(IllegalArgumentException.class);
    }
}
