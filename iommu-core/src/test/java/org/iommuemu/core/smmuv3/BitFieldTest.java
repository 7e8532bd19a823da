package org.iommuemu.core.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** BitField: values, addresses in place, whole-word fields and validation messages. */
class BitFieldTest {

    @Test
    void valueField() {
        BitField f = BitField.of("X", 1, 13, 12);
        assertThat(f.word()).isEqualTo(1);
        assertThat(f.lo()).isEqualTo(12);
        assertThat(f.hi()).isEqualTo(13);
        assertThat(f.width()).isEqualTo(2);
        assertThat(f.mask()).isEqualTo(0x3000L);
        assertThat(f.maxValue()).isEqualTo(3);
        assertThat(f.get(0x2FFFL)).isEqualTo(2);
        assertThat(f.get(new long[] {0, 0x1000})).isEqualTo(1);
        assertThat(f.put(-1L, 1)).isEqualTo(~0x2000L);
        assertThat(f.put(0, 7)).as("excess bits dropped").isEqualTo(0x3000L);
        assertThat(f.fits(3)).isTrue();
        assertThat(f.fits(4)).isFalse();
        assertThat(f.fits(-1)).isFalse();
        assertThat(f.toString()).isEqualTo("X dw1[13:12]");
        assertThatThrownBy(() -> f.checkValue(4)).hasMessage("X must fit 2 bits, not 0x4");
    }

    @Test
    void addressField() {
        BitField a = BitField.of("A", 0, 51, 6);
        assertThat(a.address(-1L)).isEqualTo(0x000F_FFFF_FFFF_FFC0L);
        assertThat(a.putAddress(0x3F, 0x1000)).isEqualTo(0x103FL);
        assertThat(a.fitsAddress(0x40)).isTrue();
        assertThat(a.fitsAddress(0x20)).isFalse();
        assertThat(a.fitsAddress(1L << 52)).isFalse();
        assertThatThrownBy(() -> a.checkAddress(0x20))
                .hasMessage("A must have bits [51:6] only (aligned to 64 bytes, below 2^52), not 0x20");
    }

    @Test
    void flagsAndWholeWords() {
        BitField f = BitField.flag("F", 0, 63);
        assertThat(f.isSet(Long.MIN_VALUE)).isTrue();
        assertThat(f.put(0, true)).isEqualTo(Long.MIN_VALUE);
        assertThat(f.put(-1L, false)).isEqualTo(Long.MAX_VALUE);
        assertThatThrownBy(() -> f.checkValue(2)).hasMessage("F must fit 1 bit, not 0x2");
        BitField w = BitField.of("W", 3, 63, 0);
        assertThat(w.mask()).isEqualTo(-1L);
        assertThat(w.fits(-1L)).isTrue();
        assertThat(w.get(0x1234L)).isEqualTo(0x1234L);
        BitField sid = BitField.of("SID", 0, 63, 32);
        assertThat(sid.getInt(0xFFFF_FFFF_0000_0000L)).isEqualTo(-1);
    }

    @Test
    void rejectsImpossibleFields() {
        assertThatThrownBy(() -> BitField.of("bad", 0, 64, 60)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> BitField.of("bad", 0, 3, 4)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> BitField.flag("bad", -1, 0)).isInstanceOf(IllegalArgumentException.class);
    }
}
