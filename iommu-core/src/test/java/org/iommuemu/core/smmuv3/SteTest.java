package org.iommuemu.core.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Ste and L1StreamDescriptor against spec SMMUV3.md §5: entries as Linux writes them, with the expected
 * words worked out by hand from the bit table, Config semantics, validation and seeded random round trips.
 */
class SteTest {

    // ------------------------------------------------------------------ Linux's entries, bit-exact

    @Test
    void abortAsLinuxWritesIt() {
        // dw0: V (bit 0) | Config 0b000
        assertThat(Ste.abort().encode()).containsExactly(0x1L, 0, 0, 0, 0, 0, 0, 0);
        assertThat(Ste.abort().isAbort()).isTrue();
    }

    @Test
    void bypassAsLinuxWritesIt() {
        // dw0: V | Config 0b100 << 1 = 0x8
        assertThat(Ste.bypass().encode()).containsExactly(0x9L, 0, 0, 0, 0, 0, 0, 0);
        // With IDR1.ATTR_TYPES_OVR Linux adds dw1 SHCFG = 0b01 (incoming) at [45:44].
        Ste withShcfg = Ste.bypass().toBuilder().shcfg(Ste.SHCFG_INCOMING).build();
        assertThat(withShcfg.encode()).containsExactly(0x9L, 0x0000_1000_0000_0000L, 0, 0, 0, 0, 0, 0);
        assertThat(Ste.bypass().isBypass()).isTrue();
        assertThat(Ste.bypass().stage1()).isFalse();
        assertThat(Ste.bypass().stage2()).isFalse();
    }

    @Test
    void stage1LinearCdTableAsLinuxWritesIt() {
        Ste ste = Ste.stage1(0x8000_1000L, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0);
        long[] dw = ste.encode();
        // dw0: V | Config 0b101 << 1 (0xA) | S1Fmt 0 | S1ContextPtr 0x80001000 | S1CDMax 0
        assertThat(dw[0]).isEqualTo(0x0000_0000_8000_100BL);
        // dw1: S1DSS 2 | S1CIR 1 << 2 | S1COR 1 << 4 | S1CSH 3 << 6 | STRW 0
        assertThat(dw[1]).isEqualTo(0xD6L);
        assertThat(dw[2]).isZero();
        assertThat(dw[3]).isZero();
        assertThat(ste.stage1()).isTrue();
        assertThat(ste.stage2()).isFalse();
        assertThat(Ste.decode(dw)).isEqualTo(ste);
    }

    @Test
    void stage1TwoLevelCdTableFields() {
        Ste ste = Ste.stage1(0x1_2345_6780L, Ste.S1FMT_64K_L2, 20, Ste.S1DSS_BYPASS);
        long dw0 = ste.dw0();
        // S1Fmt 2 at [5:4] = 0x20; S1CDMax 20 at [63:59] = 20 << 59
        assertThat(dw0).isEqualTo(0x1L | 0xA | 0x20 | 0x1_2345_6780L | (20L << 59));
        assertThat(ste.cdTableLg2()).isEqualTo(20);
        assertThat(Ste.cdLeafLg2(ste.s1Fmt())).isEqualTo(10);
    }

    @Test
    void stage2AsLinuxWritesIt() {
        // VMID 5, 40-bit IPA (T0SZ 24), 4K granule starting at level 1 (SL0 1), 48-bit PA (PS 5).
        Ste ste = Ste.stage2(5, 24, 1, 0, 5, 0x8004_0000L);
        long[] dw = ste.encode();
        // dw0: V | Config 0b110 << 1 = 0xC
        assertThat(dw[0]).isEqualTo(0xDL);
        assertThat(dw[1]).isZero();
        // dw2: VMID 5 | T0SZ 24 << 32 | SL0 1 << 38 | IR0 1 << 40 | OR0 1 << 42 | SH0 3 << 44 | TG 0 << 46
        //      | PS 5 << 48 | S2AA64 bit 51 | S2PTW bit 54 | S2R bit 58
        assertThat(dw[2]).isEqualTo(0x044D_3558_0000_0005L);
        // dw3: S2TTB [51:4]
        assertThat(dw[3]).isEqualTo(0x8004_0000L);
        assertThat(ste.stage2()).isTrue();
        assertThat(ste.stage1()).isFalse();
        assertThat(Ste.granuleLg2ForS2Tg(ste.s2Tg())).isEqualTo(12);
        assertThat(Encodings.oasBits(ste.s2Ps())).isEqualTo(48);
        assertThat(Ste.decode(dw)).isEqualTo(ste);
    }

    @Test
    void everyFieldLandsWhereTheTableSays() {
        Ste ste = Ste.builder()
                .valid(true).config(Ste.CONFIG_NESTED).s1Fmt(3).s1ContextPtr(0x000F_FFFF_FFFF_FFC0L).s1CdMax(31)
                .s1Dss(3).s1Cir(3).s1Cor(3).s1Csh(3).mev(true).s2Fwb(true).s1Stalld(true).eats(3).strw(3).shcfg(3)
                .s2Vmid(0xFFFF).s2T0sz(63).s2Sl0(3).s2Ir0(3).s2Or0(3).s2Sh0(3).s2Tg(3).s2Ps(7)
                .s2Aa64(true).s2Endi(true).s2Affd(true).s2Ptw(true).s2Hd(true).s2Ha(true).s2S(true).s2R(true)
                .s2Ttb(0x000F_FFFF_FFFF_FFF0L)
                .build();
        long[] dw = ste.encode();
        // All ones in every field: exactly the union of the table's ranges.
        assertThat(dw[0]).isEqualTo(0xF80F_FFFF_FFFF_FFFFL); // [0],[3:1],[5:4],[51:6],[63:59]
        assertThat(dw[1]).isEqualTo(0x0000_3000_FA08_00FFL); // [7:0], 19, 25, 27, [31:28], [45:44]
        assertThat(dw[2]).isEqualTo(0x07FF_FFFF_0000_FFFFL); // [15:0], [58:32]
        assertThat(dw[3]).isEqualTo(0x000F_FFFF_FFFF_FFF0L); // [51:4]
        for (int w = 0; w < Ste.DWORDS; w++) {
            assertThat(dw[w]).as("word %d", w).isEqualTo(Ste.definedMask(w));
        }
        assertThat(ste.stage1()).isTrue();
        assertThat(ste.stage2()).isTrue();
    }

    // ------------------------------------------------------------------ Config

    @ParameterizedTest(name = "Config {0}: abort {1}, S1 {2}, S2 {3}")
    @CsvSource({
        "0, true, false, false",
        "1, true, false, false",
        "2, true, false, false",
        "3, true, false, false",
        "4, false, false, false",
        "5, false, true, false",
        "6, false, false, true",
        "7, false, true, true",
    })
    void configWithBit2ClearAbortsAsQemuDoes(int config, boolean abort, boolean s1, boolean s2) {
        assertThat(Ste.configAborts(config)).isEqualTo(abort);
        assertThat(Ste.configStage1(config)).isEqualTo(s1);
        assertThat(Ste.configStage2(config)).isEqualTo(s2);
        // The raw value survives a round trip, so the device reports exactly what the guest wrote.
        Ste ste = Ste.decode(new long[] {1 | (long) config << 1, 0, 0, 0});
        assertThat(ste.config()).isEqualTo(config);
        assertThat(ste.encode()[0]).isEqualTo(1 | (long) config << 1);
    }

    @Test
    void cdLeafSizes() {
        assertThat(Ste.cdLeafLg2(Ste.S1FMT_LINEAR)).isEqualTo(-1);
        assertThat(Ste.cdLeafLg2(Ste.S1FMT_4K_L2)).isEqualTo(6);
        assertThat(Ste.cdLeafLg2(Ste.S1FMT_64K_L2)).isEqualTo(10);
        assertThat(Ste.cdLeafLg2(3)).isEqualTo(-1);
    }

    // ------------------------------------------------------------------ validation

    @Test
    void rejectsValuesThatDoNotFit() {
        assertThatThrownBy(() -> Ste.builder().config(8)).hasMessageContaining("Config");
        assertThatThrownBy(() -> Ste.builder().s1ContextPtr(0x1000_0020L)).hasMessageContaining("S1ContextPtr");
        assertThatThrownBy(() -> Ste.builder().s1ContextPtr(1L << 52)).hasMessageContaining("S1ContextPtr");
        assertThatThrownBy(() -> Ste.builder().s2Ttb(0x1008L)).hasMessageContaining("S2TTB");
        assertThatThrownBy(() -> Ste.builder().s2Vmid(0x1_0000)).hasMessageContaining("S2VMID");
        assertThatThrownBy(() -> Ste.builder().s1CdMax(32)).hasMessageContaining("S1CDMax");
        assertThatThrownBy(() -> Ste.stage2(5, 64, 1, 0, 5, 0)).hasMessageContaining("S2T0SZ");
    }

    @Test
    void decodeIgnoresUndefinedBitsAndWords4To7() {
        long[] dw = {-1L, -1L, -1L, -1L, -1L, -1L, -1L, -1L};
        Ste ste = Ste.decode(dw);
        long[] back = ste.encode();
        for (int w = 0; w < Ste.DWORDS; w++) {
            assertThat(back[w]).as("word %d", w).isEqualTo(Ste.definedMask(w));
        }
        assertThat(Ste.definedMask(4)).isZero();
    }

    @Test
    void encodeIntoOverwritesAllEightWords() {
        long[] into = {-1, -1, -1, -1, -1, -1, -1, -1};
        Ste.bypass().encode(into);
        assertThat(into).containsExactly(0x9L, 0, 0, 0, 0, 0, 0, 0);
    }

    // ------------------------------------------------------------------ random round trips

    @Test
    void randomRoundTrips() {
        for (long seed = 0; seed < 500; seed++) {
            Random rnd = new Random(seed);
            long[] words = new long[Ste.DWORDS];
            for (int w = 0; w < Ste.DWORDS; w++) {
                words[w] = rnd.nextLong() & Ste.definedMask(w);
            }
            Ste ste = Ste.decode(words);
            assertThat(ste.encode()).as("seed %d: encode(decode(w)) == w", seed).containsExactly(words);
            assertThat(Ste.decode(ste.encode())).as("seed %d: decode(encode(x)) == x", seed).isEqualTo(ste);
            assertThat(ste.toBuilder().build()).as("seed %d: toBuilder", seed).isEqualTo(ste);
        }
    }

    // ------------------------------------------------------------------ L1 descriptor

    @Test
    void l1DescriptorAsLinuxWritesIt() {
        // SPAN = SPLIT + 1 = 9 at [4:0], L2Ptr at [51:6]
        L1StreamDescriptor d = L1StreamDescriptor.forSplit(0x8123_4000L, StreamTableBase.LINUX_SPLIT);
        assertThat(d.encode()).isEqualTo(0x8123_4009L);
        assertThat(d.l2Entries()).isEqualTo(256);
        assertThat(d.isValid()).isTrue();
        assertThat(L1StreamDescriptor.decode(0x8123_4009L)).isEqualTo(d);
        assertThat(L1StreamDescriptor.span(0x8123_4009L)).isEqualTo(9);
        assertThat(L1StreamDescriptor.l2Ptr(0x8123_4009L)).isEqualTo(0x8123_4000L);
    }

    @Test
    void l1DescriptorInvalidAndMasking() {
        assertThat(L1StreamDescriptor.decode(0x8123_4000L).isValid()).isFalse();
        assertThat(L1StreamDescriptor.INVALID.l2Entries()).isZero();
        // Bits outside SPAN and L2Ptr[51:6] are dropped (Linux masks [51:6]; QEMU would keep them, §9.9).
        L1StreamDescriptor d = L1StreamDescriptor.decode(0xFFF0_0000_0000_0061L);
        assertThat(d).isEqualTo(new L1StreamDescriptor(1, 0x40));
        assertThatThrownBy(() -> new L1StreamDescriptor(1, 0x20)).hasMessageContaining("L2Ptr");
        assertThatThrownBy(() -> new L1StreamDescriptor(32, 0)).hasMessageContaining("SPAN");
    }
}
