package org.iommuemu.device.regs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class FieldMasksTest {
    // bits 0-7 RO, 8-15 RW, 16-23 W1C, 24-31 W1S, 32-39 WO, 40-63 reserved
    private static final FieldMasks M = FieldMasks.NONE
            .with(FieldMode.READ_ONLY, 0xFFL)
            .with(FieldMode.READ_WRITE, 0xFF00L)
            .with(FieldMode.WRITE_ONE_TO_CLEAR, 0xFF_0000L)
            .with(FieldMode.WRITE_ONE_TO_SET, 0xFF00_0000L)
            .with(FieldMode.WRITE_ONLY, 0xFF_0000_0000L);

    @Test
    void groupsAndDerivedMasks() {
        assertThat(M.readOnly()).isEqualTo(0xFFL);
        assertThat(M.readWrite()).isEqualTo(0xFF00L);
        assertThat(M.writeOneToClear()).isEqualTo(0xFF_0000L);
        assertThat(M.writeOneToSet()).isEqualTo(0xFF00_0000L);
        assertThat(M.writeOnly()).isEqualTo(0xFF_0000_0000L);
        assertThat(M.defined()).isEqualTo(0xFF_FFFF_FFFFL);
        assertThat(M.readable()).isEqualTo(0xFFFF_FFFFL);
    }

    @Test
    void readOnlyBitsKeepTheirValue() {
        assertThat(M.effectiveWrite(0x5AL, 0xA5L, -1L) & 0xFF).isEqualTo(0x5AL);
    }

    @Test
    void readWriteBitsTakeTheWrittenValue() {
        assertThat(M.effectiveWrite(0x1200L, 0x3400L, -1L) & 0xFF00).isEqualTo(0x3400L);
    }

    @Test
    void writeOneToClearClearsOnlyTheOnes() {
        assertThat(M.effectiveWrite(0xF0_0000L, 0x30_0000L, -1L) & 0xFF_0000).isEqualTo(0xC0_0000L);
        assertThat(M.effectiveWrite(0xF0_0000L, 0, -1L) & 0xFF_0000).isEqualTo(0xF0_0000L);
    }

    @Test
    void writeOneToSetSetsOnlyTheOnes() {
        assertThat(M.effectiveWrite(0x0100_0000L, 0x0300_0000L, -1L) & 0xFF00_0000L).isEqualTo(0x0300_0000L);
        assertThat(M.effectiveWrite(0x0100_0000L, 0, -1L) & 0xFF00_0000L).isEqualTo(0x0100_0000L);
    }

    @Test
    void writeOnlyBitsAreStoredButNotReadable() {
        long v = M.effectiveWrite(0, 0x42_0000_0000L, -1L);
        assertThat(v).isEqualTo(0x42_0000_0000L);
        assertThat(v & M.readable()).isZero();
    }

    @Test
    void reservedBitsStayZero() {
        assertThat(M.effectiveWrite(0, 0xFFFF_FF00_0000_0000L, -1L)).isZero();
        assertThat(M.effectiveWrite(0xFFFF_FF00_0000_0000L, 0, -1L)).isZero();
    }

    @Test
    void bitsOutsideTheWrittenMaskAreUntouched() {
        long old = 0xFFFF_FFFFL;
        // a write of the high half only: W1C/W1S/RW of the low half unaffected even though written has ones
        long v = M.effectiveWrite(old, -1L, 0xFFFF_FFFF_0000_0000L);
        assertThat(v & 0xFFFF_FFFFL).isEqualTo(0xFFFF_FFFFL);
        assertThat(v >>> 32).isEqualTo(0xFFL);
        long w = M.effectiveWrite(old, 0, 0xFFFF_FFFF_0000_0000L);
        assertThat(w).isEqualTo(0xFFFF_FFFFL);
    }

    @Test
    void overlappingGroupsAreRejected() {
        assertThatThrownBy(() -> new FieldMasks(1, 1, 0, 0, 0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> M.with(FieldMode.READ_WRITE, 0x80L)).isInstanceOf(IllegalArgumentException.class);
    }

    /** Compares the mask arithmetic with a bit-by-bit reference of each mode, on seeded random inputs. */
    @Test
    void matchesBitwiseReference() {
        SplittableRandom random = new SplittableRandom(0x5EED);
        long[] edges = {0, -1L, 0xFFFF_FFFFL, 0xFFFF_FFFF_0000_0000L, 0x5555_5555_5555_5555L};
        for (int i = 0; i < 20_000; i++) {
            long old = i < 25 ? edges[i % 5] : random.nextLong();
            long written = i < 25 ? edges[i / 5] : random.nextLong();
            long writtenMask = switch (i % 3) {
                case 0 -> 0xFFFF_FFFFL;
                case 1 -> 0xFFFF_FFFF_0000_0000L;
                default -> -1L;
            };
            long storedOld = old & M.defined();
            assertThat(M.effectiveWrite(storedOld, written, writtenMask))
                    .as("old=%x written=%x mask=%x", storedOld, written, writtenMask)
                    .isEqualTo(reference(storedOld, written, writtenMask));
        }
    }

    private static long reference(long storedOld, long written, long writtenMask) {
        long expected = 0;
        for (int b = 0; b < 64; b++) {
            long bit = 1L << b;
            boolean o = (storedOld & bit) != 0;
            boolean w = (written & bit) != 0;
            boolean covered = (writtenMask & bit) != 0;
            boolean n;
            if ((M.defined() & bit) == 0) {
                n = false;
            } else if (!covered || (M.readOnly() & bit) != 0) {
                n = o;
            } else if ((M.readWrite() & bit) != 0 || (M.writeOnly() & bit) != 0) {
                n = w;
            } else if ((M.writeOneToClear() & bit) != 0) {
                n = o && !w;
            } else {
                n = o || w;
            }
            if (n) {
                expected |= bit;
            }
        }
        return expected;
    }
}
