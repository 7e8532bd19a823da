package org.iommuemu.core.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Cd and L1CdDescriptor against spec SMMUV3.md §6: the CD Linux writes for a 48-bit 4K stage 1 with the
 * words worked out by hand, the TG0/TG1 encodings, validation and seeded random round trips.
 */
class CdTest {

    @Test
    void stage1CdAsLinuxWritesIt() {
        // 48-bit VA (T0SZ 16), 4K granule (TG0 0), 48-bit PA (IPS 5), ASID 1.
        Cd cd = Cd.stage1(16, 0, 5, 1, 0x8010_0000L, Cd.LINUX_MAIR);
        long[] dw = cd.encode();
        // dw0 [31:0]:  T0SZ 16 | TG0 0 << 6 | IR0 1 << 8 | OR0 1 << 10 | SH0 3 << 12 | EPD1 bit 30 | V bit 31
        //     [63:32]: IPS 5 | AA64 bit 41 | R bit 45 | A bit 46 | ASET bit 47 | ASID 1 << 48
        assertThat(dw[0]).isEqualTo(0x0001_E205_C000_3510L);
        // dw1: TTB0 [51:4]
        assertThat(dw[1]).isEqualTo(0x8010_0000L);
        assertThat(dw[2]).isZero();
        // dw3: MAIR = NC 0x44 | WBRWA 0xFF << 8 | Device-nGnRE 0x04 << 16 | INC-OWBRWA 0xF4 << 24
        assertThat(dw[3]).isEqualTo(0xF404_FF44L);
        assertThat(dw[4]).isZero();
        assertThat(Cd.decode(dw)).isEqualTo(cd);
        assertThat(cd.valid()).isTrue();
        assertThat(cd.granule0Lg2()).isEqualTo(12);
        assertThat(Encodings.oasBits(cd.ips())).isEqualTo(48);
    }

    @Test
    void everyFieldLandsWhereTheTableSays() {
        Cd cd = Cd.builder()
                .t0sz(63).tg0(3).ir0(3).or0(3).sh0(3).epd0(true).endi(true)
                .t1sz(63).tg1(3).ir1(3).or1(3).sh1(3).epd1(true).valid(true)
                .ips(7).affd(true).wxn(true).uwxn(true).tbi0(true).tbi1(true).pan(true)
                .aa64(true).hd(true).ha(true).s(true).r(true).a(true).aset(true).asid(0xFFFF)
                .nscfg0(true).had0(true).ttb0(0x000F_FFFF_FFFF_FFF0L)
                .nscfg1(true).had1(true).ttb1(0x000F_FFFF_FFFF_FFF0L)
                .mair(-1L).amair(-1L)
                .build();
        long[] dw = cd.encode();
        assertThat(dw[0]).isEqualTo(-1L); // word 0 is fully defined
        assertThat(dw[1]).isEqualTo(0x000F_FFFF_FFFF_FFF3L); // 0, 1, [51:4]
        assertThat(dw[2]).isEqualTo(0x000F_FFFF_FFFF_FFF3L);
        assertThat(dw[3]).isEqualTo(-1L);
        assertThat(dw[4]).isEqualTo(-1L);
        for (int w = 0; w < Cd.DWORDS; w++) {
            assertThat(dw[w]).as("word %d", w).isEqualTo(Cd.definedMask(w));
        }
    }

    @Test
    void tbi0AndTbi1AreDistinctBits() {
        // QEMU's TBI1 helper reads bit 38 (a precedence bug, §9.11); the table has TBI0 38, TBI1 39.
        assertThat(Cd.builder().tbi0(true).build().dw0()).isEqualTo(1L << 38);
        assertThat(Cd.builder().tbi1(true).build().dw0()).isEqualTo(1L << 39);
        assertThat(Cd.decode(1L << 39, 0, 0, 0, 0).tbi0()).isFalse();
    }

    @ParameterizedTest(name = "TG0 {0} -> {1}, TG1 {0} -> {2}")
    @CsvSource({
        "0, 12, -1",
        "1, 16, 14",
        "2, 14, 12",
        "3, -1, 16",
    })
    void tg0AndTg1EncodeGranulesDifferently(int tg, int tg0Lg2, int tg1Lg2) {
        assertThat(Cd.granuleLg2ForTg0(tg)).isEqualTo(tg0Lg2);
        assertThat(Cd.granuleLg2ForTg1(tg)).isEqualTo(tg1Lg2);
        if (tg0Lg2 > 0) {
            assertThat(Encodings.tg0ForGranuleLg2(tg0Lg2)).isEqualTo(tg);
        }
        if (tg1Lg2 > 0) {
            assertThat(Encodings.tg1ForGranuleLg2(tg1Lg2)).isEqualTo(tg);
        }
    }

    @Test
    void granuleInversesRejectOtherSizes() {
        assertThat(Encodings.tg0ForGranuleLg2(13)).isEqualTo(-1);
        assertThat(Encodings.tg1ForGranuleLg2(21)).isEqualTo(-1);
        assertThat(Cd.builder().tg1(2).build().granule1Lg2()).isEqualTo(12);
    }

    @ParameterizedTest(name = "OAS encoding {0} = {1} bits")
    @CsvSource({"0, 32", "1, 36", "2, 40", "3, 42", "4, 44", "5, 48", "6, 52", "7, -1"})
    void oasEncodings(int encoding, int bits) {
        assertThat(Encodings.oasBits(encoding)).isEqualTo(bits);
        if (bits > 0) {
            assertThat(Encodings.oasEncoding(bits)).isEqualTo(encoding);
        }
    }

    @Test
    void rejectsValuesThatDoNotFit() {
        assertThatThrownBy(() -> Cd.builder().t0sz(64)).hasMessageContaining("T0SZ");
        assertThatThrownBy(() -> Cd.builder().asid(0x1_0000)).hasMessageContaining("ASID");
        assertThatThrownBy(() -> Cd.builder().ttb0(0x1004L)).hasMessageContaining("TTB0");
        assertThatThrownBy(() -> Cd.builder().ttb1(1L << 52)).hasMessageContaining("TTB1");
        assertThatThrownBy(() -> Cd.stage1(16, 4, 5, 1, 0, 0)).hasMessageContaining("TG0");
    }

    @Test
    void decodeIgnoresUndefinedBitsAndWords5To7() {
        long[] dw = {-1L, -1L, -1L, -1L, -1L, -1L, -1L, -1L};
        long[] back = Cd.decode(dw).encode();
        for (int w = 0; w < Cd.DWORDS; w++) {
            assertThat(back[w]).as("word %d", w).isEqualTo(Cd.definedMask(w));
        }
        assertThat(Cd.definedMask(5)).isZero();
    }

    @Test
    void randomRoundTrips() {
        for (long seed = 0; seed < 500; seed++) {
            Random rnd = new Random(seed);
            long[] words = new long[Cd.DWORDS];
            for (int w = 0; w < Cd.DWORDS; w++) {
                words[w] = rnd.nextLong() & Cd.definedMask(w);
            }
            Cd cd = Cd.decode(words);
            assertThat(cd.encode()).as("seed %d: encode(decode(w)) == w", seed).containsExactly(words);
            assertThat(Cd.decode(cd.encode())).as("seed %d: decode(encode(x)) == x", seed).isEqualTo(cd);
            assertThat(cd.toBuilder().build()).as("seed %d: toBuilder", seed).isEqualTo(cd);
        }
    }

    @Test
    void l1CdDescriptor() {
        L1CdDescriptor d = L1CdDescriptor.of(0x8765_4000L);
        // V bit 0 | L2Ptr [51:12]
        assertThat(d.encode()).isEqualTo(0x8765_4001L);
        assertThat(L1CdDescriptor.decode(0x8765_4001L)).isEqualTo(d);
        assertThat(L1CdDescriptor.decode(0xFFF0_0000_8765_4FFEL)).isEqualTo(new L1CdDescriptor(false, 0x8765_4000L));
        assertThat(L1CdDescriptor.valid(0x1)).isTrue();
        assertThat(L1CdDescriptor.l2Ptr(0x8765_4001L)).isEqualTo(0x8765_4000L);
        assertThat(L1CdDescriptor.INVALID.encode()).isZero();
        assertThatThrownBy(() -> L1CdDescriptor.of(0x8765_4800L)).hasMessageContaining("L2Ptr");
    }
}
