package org.iommuemu.core.bits;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class BitsTest {
    @Test
    void masks() {
        assertThat(Bits.mask(0, 0)).isZero();
        assertThat(Bits.mask(5, 0)).isZero();
        assertThat(Bits.mask(0, 1)).isEqualTo(1);
        assertThat(Bits.mask(4, 4)).isEqualTo(0xf0);
        assertThat(Bits.mask(0, 64)).isEqualTo(-1L);
        assertThat(Bits.mask(63, 1)).isEqualTo(Long.MIN_VALUE);
        assertThat(Bits.mask(12, 40)).isEqualTo(0x000f_ffff_ffff_f000L);
        assertThat(Bits.maskHiLo(47, 12)).isEqualTo(0x0000_ffff_ffff_f000L);
        assertThat(Bits.maskHiLo(63, 0)).isEqualTo(-1L);
        assertThat(Bits.maskHiLo(3, 3)).isEqualTo(8);
    }

    @Test
    void extractAndDeposit() {
        long ste = 0x8000_0000_0000_0035L;
        assertThat(Bits.extract(ste, 1, 3)).isEqualTo(2);
        assertThat(Bits.extract(ste, 63, 1)).isEqualTo(1);
        assertThat(Bits.extract(ste, 0, 64)).isEqualTo(ste);
        assertThat(Bits.deposit(0, 4, 8, 0xab)).isEqualTo(0xab0);
        assertThat(Bits.deposit(-1L, 4, 8, 0)).isEqualTo(~0xff0L);
        assertThat(Bits.deposit(0, 4, 4, 0x1f)).as("truncated").isEqualTo(0xf0);
        assertThat(Bits.deposit(0, 0, 64, -2L)).isEqualTo(-2L);
    }

    @Test
    void depositThenExtractRoundTripsAndLeavesOtherBitsAlone() {
        Random rnd = new Random(1);
        for (int i = 0; i < 10_000; i++) {
            int lo = rnd.nextInt(64);
            int width = rnd.nextInt(65 - lo);
            long value = rnd.nextLong();
            long field = rnd.nextLong();
            long out = Bits.deposit(value, lo, width, field);
            assertThat(Bits.extract(out, lo, width)).isEqualTo(field & Bits.mask(0, width));
            assertThat(out & ~Bits.mask(lo, width)).isEqualTo(value & ~Bits.mask(lo, width));
        }
    }

    @Test
    void singleBits() {
        assertThat(Bits.bit(0b100, 2)).isTrue();
        assertThat(Bits.bit(0b100, 1)).isFalse();
        assertThat(Bits.bit(Long.MIN_VALUE, 63)).isTrue();
        assertThat(Bits.withBit(0, 63, true)).isEqualTo(Long.MIN_VALUE);
        assertThat(Bits.withBit(-1L, 0, false)).isEqualTo(-2L);
        assertThat(Bits.withBit(5, 0, true)).isEqualTo(5);
    }

    @Test
    void alignment() {
        assertThat(Bits.isAligned(0x3000, 12)).isTrue();
        assertThat(Bits.isAligned(0x3008, 12)).isFalse();
        assertThat(Bits.isAligned(0x3008, 0)).isTrue();
        assertThat(Bits.isAligned(Long.MIN_VALUE, 63)).isTrue();
        assertThat(Bits.alignDown(0x3fff, 12)).isEqualTo(0x3000);
        assertThat(Bits.alignDown(-1L, 12)).isEqualTo(0xffff_ffff_ffff_f000L);
        assertThat(Bits.alignUp(0x3001, 12)).isEqualTo(0x4000);
        assertThat(Bits.alignUp(0x3000, 12)).isEqualTo(0x3000);
        assertThat(Bits.alignUp(0, 12)).isZero();
        assertThat(Bits.alignUp(0x7fff_ffff_ffff_f001L, 12)).isEqualTo(0x8000_0000_0000_0000L);
        assertThat(Bits.alignUp(-5L, 12)).as("wraps to 0").isZero();
        assertThat(Bits.alignUpOverflows(-5L, 12)).isTrue();
        assertThat(Bits.alignUpOverflows(0xffff_ffff_ffff_f000L, 12)).isFalse();
        assertThat(Bits.alignUpOverflows(0x1001, 12)).isFalse();
    }

    @ParameterizedTest
    @CsvSource({"1, 0", "2, 1", "4096, 12", "-9223372036854775808, 63", "0, -1", "3, -1", "-1, -1", "12288, -1"})
    void powersOfTwo(long value, int lg2) {
        assertThat(Bits.lg2(value)).isEqualTo(lg2);
        assertThat(Bits.isPowerOfTwo(value)).isEqualTo(lg2 >= 0);
    }

    @Test
    void fitsUnsigned() {
        assertThat(Bits.fitsUnsigned(0xff, 8)).isTrue();
        assertThat(Bits.fitsUnsigned(0x100, 8)).isFalse();
        assertThat(Bits.fitsUnsigned(-1L, 64)).isTrue();
        assertThat(Bits.fitsUnsigned(-1L, 63)).isFalse();
        assertThat(Bits.fitsUnsigned(0, 0)).isTrue();
        assertThat(Bits.fitsUnsigned(1, 0)).isFalse();
        assertThat(Bits.fitsUnsigned(1L << 52, 52)).isFalse();
    }

    @Test
    void ranges() {
        assertThat(Bits.end(0x1000, 0x1000)).isEqualTo(0x2000);
        assertThat(Bits.end(-0x1000L, 0x1000)).as("ends exactly at 2^64").isZero();
        assertThat(Bits.last(-0x1000L, 0x1000)).isEqualTo(-1L);
        assertThat(Bits.last(5, 1)).isEqualTo(5);
        assertThat(Bits.rangeOverflows(-0x1000L, 0x1000)).isFalse();
        assertThat(Bits.rangeOverflows(-0x1000L, 0x1001)).isTrue();
        assertThat(Bits.rangeOverflows(-1L, 0)).as("empty never wraps").isFalse();
        assertThat(Bits.rangeOverflows(0, -1L)).isFalse();
        assertThat(Bits.rangeOverflows(1, -1L)).as("[1, 2^64)").isFalse();
        assertThat(Bits.rangeOverflows(2, -1L)).isTrue();
    }

    @Test
    void unsignedMinMax() {
        assertThat(Bits.minUnsigned(-1L, 1)).isEqualTo(1);
        assertThat(Bits.maxUnsigned(-1L, 1)).isEqualTo(-1L);
        assertThat(Bits.minUnsigned(Long.MIN_VALUE, Long.MAX_VALUE)).isEqualTo(Long.MAX_VALUE);
        assertThat(Bits.maxUnsigned(3, 3)).isEqualTo(3);
    }

    @Test
    void hex() {
        assertThat(Bits.hex(0)).isEqualTo("0x0");
        assertThat(Bits.hex(0x8000_0000L)).isEqualTo("0x80000000");
        assertThat(Bits.hex(-1L)).isEqualTo("0xffffffffffffffff");
    }
}
