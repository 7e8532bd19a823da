package org.iommuemu.core.bits;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class SizesTest {
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "0 | 0",
        "4096 | 4096",
        "1_000_000 | 1000000",
        "0x1000 | 4096",
        "0X8000_0000 | 2147483648",
        "0xffff_ffff_ffff_ffff | 18446744073709551615",
        "18446744073709551615 | 18446744073709551615",
        "4K | 4096",
        "4k | 4096",
        "4KB | 4096",
        "4kib | 4096",
        "4 KiB | 4096",
        "  12KiB  | 12288",
        "2M | 2097152",
        "2 mb | 2097152",
        "512MiB | 536870912",
        "4G | 4294967296",
        "4GiB | 4294967296",
        "1T | 1099511627776",
        "3 TiB | 3298534883328",
        "4097 B | 4097",
        "7b | 7",
        "0x10K | 16384",
        "0x2 GiB | 2147483648",
        "0x1B | 27",
        "0x1 B | 1",
        "16777215T | 18446742974197923840",
    })
    void parsesSizesAndAddresses(String text, String expected) {
        assertThat(Sizes.parse(text)).isEqualTo(Long.parseUnsignedLong(expected));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "   ", "K", "GiB", "0x", "0xG", "-1", "+1", "1.5G", "4 KiBB", "4 X", "1 K B",
        "_1", "1_", "1__", "0x_1", "1_G_", "4 GiB 4", "１２", "0x12345678901234567", "18446744073709551616",
        "16777216T", "0x1_0000_0000_0000 T"})
    void rejectsBadInputWithAClearMessage(String text) {
        assertThatThrownBy(() -> Sizes.parse(text))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("bad size '" + text + "': ");
    }

    @Test
    void overflowIsNamed() {
        assertThatThrownBy(() -> Sizes.parse("16777216 TiB")).hasMessageContaining("does not fit in 64 bits");
        assertThatThrownBy(() -> Sizes.parse("0x1_0000_0000_0000_0000")).hasMessageContaining("does not fit in 64 bits");
    }

    @Test
    void nullIsABug() {
        assertThatThrownBy(() -> Sizes.parse(null)).isInstanceOf(NullPointerException.class);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "0 | 0 B",
        "1 | 1 B",
        "4097 | 4097 B",
        "1024 | 1 KiB",
        "12288 | 12 KiB",
        "1536 | 1536 B",
        "1048576 | 1 MiB",
    })
    void formatsWithTheLargestExactUnit(long bytes, String expected) {
        assertThat(Sizes.format(bytes)).isEqualTo(expected);
    }

    @Test
    void formatsLargeAndUnsignedValues() {
        assertThat(Sizes.format(4L << 30)).isEqualTo("4 GiB");
        assertThat(Sizes.format(3L << 20)).isEqualTo("3 MiB");
        assertThat(Sizes.format((1L << 30) + (1L << 20))).isEqualTo("1025 MiB");
        assertThat(Sizes.format(1L << 40)).isEqualTo("1 TiB");
        assertThat(Sizes.format(1L << 50)).as("no unit above TiB").isEqualTo("1024 TiB");
        assertThat(Sizes.format(Long.MIN_VALUE)).isEqualTo("8388608 TiB");
        assertThat(Sizes.format(-1L)).isEqualTo("18446744073709551615 B");
    }

    @Test
    void parseReadsBackWhatFormatWrites() {
        Random rnd = new Random(7);
        for (int i = 0; i < 20_000; i++) {
            long bytes = rnd.nextLong() >>> rnd.nextInt(64);
            bytes &= -1L << (rnd.nextInt(5) * 10); // often a whole number of some unit
            assertThat(Sizes.parse(Sizes.format(bytes))).isEqualTo(bytes);
        }
    }
}
