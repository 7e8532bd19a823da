package org.iommuemu.core.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Runs of 64-bit and 32-bit values (page-table entries): read64s, write64s, read32s, write32s. */
class SparseRamRunsTest {
    private static final long BASE = 0x4000_0000L;
    private final SparseRam ram = new SparseRam(List.of(new RamRegion(BASE, 1 << 20)));

    @Test
    void sixtyFourBitRunsRoundTripAcrossPagesAndMatchScalarAccess() throws Exception {
        long[] src = new long[700];
        for (int i = 0; i < src.length; i++) {
            src[i] = 0x0123_4567_89AB_CDEFL * (i + 1);
        }
        long pa = BASE + 4096 - 8 * 100; // starts 100 entries before a page boundary
        ram.write64s(pa, src, 0, src.length);
        for (int i = 0; i < src.length; i++) {
            assertThat(ram.read64(pa + 8L * i)).isEqualTo(src[i]);
        }
        assertThat(ram.read8(pa)).as("little-endian").isEqualTo((int) (src[0] & 0xFF));
        long[] back = new long[src.length + 2];
        ram.read64s(pa, back, 1, src.length);
        for (int i = 0; i < src.length; i++) {
            assertThat(back[i + 1]).isEqualTo(src[i]);
        }
        long[] fresh = {9, 9, 9};
        ram.read64s(BASE + 0x8_0000, fresh, 0, 3);
        assertThat(fresh).as("never-written RAM reads as zero").containsOnly(0L);
    }

    @Test
    void thirtyTwoBitRunsKeepTheLowHalfAndReadBackUnsigned() throws Exception {
        long[] src = new long[1100];
        for (int i = 0; i < src.length; i++) {
            src[i] = 0xFFFF_FFFF_8000_0000L | i; // high half ignored, bit 31 set
        }
        long pa = BASE + 2 * 4096 - 4 * 30;
        ram.write32s(pa, src, 0, src.length);
        long[] back = new long[src.length];
        ram.read32s(pa, back, 0, back.length);
        for (int i = 0; i < src.length; i++) {
            assertThat(back[i]).isEqualTo(0x8000_0000L | i);
            assertThat(ram.read32(pa + 4L * i)).isEqualTo((int) (0x8000_0000L | i));
        }
    }

    @Test
    void misalignedRunsAreRefusedAndOutOfRamRunsChangeNothing() throws Exception {
        long[] v = {1, 2, 3, 4};
        assertThatThrownBy(() -> ram.write64s(BASE + 4, v, 0, 1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("8-byte aligned");
        assertThatThrownBy(() -> ram.read32s(BASE + 2, v, 0, 1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("4-byte aligned");
        long end = BASE + (1 << 20);
        assertThatThrownBy(() -> ram.write64s(end - 16, v, 0, 4)).isInstanceOf(MemoryAccessException.class);
        assertThat(ram.read64(end - 16)).as("nothing written").isZero();
        assertThatThrownBy(() -> ram.write32s(end - 8, v, 0, 4)).isInstanceOf(MemoryAccessException.class);
        assertThat(ram.read64(end - 8)).isZero();
        assertThatThrownBy(() -> ram.read64s(end - 8, new long[2], 0, 2)).isInstanceOf(MemoryAccessException.class);
        assertThatThrownBy(() -> ram.read64s(BASE, v, 2, 3)).isInstanceOf(IndexOutOfBoundsException.class);
        ram.write64s(BASE, v, 0, 0); // an empty run is fine anywhere
    }
}
