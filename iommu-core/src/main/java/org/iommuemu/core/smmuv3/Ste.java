package org.iommuemu.core.smmuv3;

import java.util.List;
import org.iommuemu.core.bits.Bits;

/**
 * A Stream Table Entry: 64 bytes, eight little-endian 64-bit words ({@code spec/SMMUV3.md} §5; Arm IHI0070
 * "Stream Table Entry"). The record holds every field the non-secure architecture defines in words 0–3, as
 * Linux's {@code arm-smmu-v3.h} and QEMU's {@code smmuv3-internal.h} place them; words 4–7 (secure and VMS
 * fields) are not modelled: {@link #decode} ignores them and {@link #encode} writes them as zero. The
 * attribute-override fields of word 1 (MemAttr, MTCFG, ALLOCCFG, NSCFG, PRIVCFG, INSTCFG) are left out as
 * well: the fact sheet marks their positions unverified.
 *
 * <p>Values are right-aligned field values; {@link #s1ContextPtr} and {@link #s2Ttb} are addresses in
 * place (the address with its low, unencoded bits zero). The canonical constructor rejects a value that does
 * not fit its field, so every {@code Ste} encodes without loss: {@code decode(encode(x)).equals(x)}, and
 * {@code encode(decode(w))} is {@code w} with the bits no field names cleared.
 *
 * <p><b>Config.</b> {@link #CONFIG_ABORT} 0b000, {@link #CONFIG_BYPASS} 0b100, {@link #CONFIG_S1} 0b101,
 * {@link #CONFIG_S2} 0b110, {@link #CONFIG_NESTED} 0b111. The encodings 0b001–0b011 are not named by either
 * source; this class follows QEMU and treats every Config with bit 2 clear as abort ({@link #isAbort}),
 * keeping the raw three bits so that re-encoding a decoded entry gives back what the guest wrote.
 *
 * <p>Drivers build entries with the factories {@link #abort()}, {@link #bypass()}, {@link #stage1},
 * {@link #stage2} (which write what Linux writes) and adjust them with {@link #toBuilder()}.
 *
 * @param valid        V, dw0[0]
 * @param config       Config, dw0[3:1]
 * @param s1Fmt        S1Fmt, dw0[5:4]: {@link #S1FMT_LINEAR}, {@link #S1FMT_4K_L2}, {@link #S1FMT_64K_L2}
 * @param s1ContextPtr S1ContextPtr, dw0[51:6]: address of the CD or L1 CD table
 * @param s1CdMax      S1CDMax, dw0[63:59]: log2 of the number of CDs; 0 = substreams disabled
 * @param s1Dss        S1DSS, dw1[1:0]: {@link #S1DSS_TERMINATE}, {@link #S1DSS_BYPASS}, {@link #S1DSS_SSID0}
 * @param s1Cir        S1CIR, dw1[3:2]: inner cacheability of CD fetches ({@link Encodings#CACHE_NC}…)
 * @param s1Cor        S1COR, dw1[5:4]: outer cacheability of CD fetches
 * @param s1Csh        S1CSH, dw1[7:6]: shareability of CD fetches
 * @param mev          MEV, dw1[19]: events may be merged
 * @param s2Fwb        S2FWB, dw1[25]: stage-2 forced write-back
 * @param s1Stalld     S1STALLD, dw1[27]: stage-1 stalls disabled
 * @param eats         EATS, dw1[29:28]: {@link #EATS_ABT}, {@link #EATS_TRANS}, {@link #EATS_S1CHK}
 * @param strw         STRW, dw1[31:30]: {@link #STRW_NSEL1}, {@link #STRW_EL2}
 * @param shcfg        SHCFG, dw1[45:44]: {@link #SHCFG_INCOMING} or a shareability
 * @param s2Vmid       S2VMID, dw2[15:0]
 * @param s2T0sz       S2T0SZ, dw2[37:32]: stage-2 input size is 64 − S2T0SZ bits
 * @param s2Sl0        S2SL0, dw2[39:38]: stage-2 starting level
 * @param s2Ir0        S2IR0, dw2[41:40]: inner cacheability of stage-2 walks
 * @param s2Or0        S2OR0, dw2[43:42]: outer cacheability of stage-2 walks
 * @param s2Sh0        S2SH0, dw2[45:44]: shareability of stage-2 walks
 * @param s2Tg         S2TG, dw2[47:46]: stage-2 granule, TG0-style ({@link #granuleLg2ForS2Tg})
 * @param s2Ps         S2PS, dw2[50:48]: stage-2 output size ({@link Encodings#oasBits})
 * @param s2Aa64       S2AA64, dw2[51]: stage-2 tables are AArch64
 * @param s2Endi       S2ENDI, dw2[52]: stage-2 tables are big-endian
 * @param s2Affd       S2AFFD, dw2[53]: stage-2 access-flag faults disabled
 * @param s2Ptw        S2PTW, dw2[54]: protected table walk
 * @param s2Hd         S2HD, dw2[55]: stage-2 hardware dirty-state update
 * @param s2Ha         S2HA, dw2[56]: stage-2 hardware access-flag update
 * @param s2S          S2S, dw2[57]: stage-2 faults stall
 * @param s2R          S2R, dw2[58]: stage-2 faults are recorded
 * @param s2Ttb        S2TTB, dw3[51:4]: stage-2 translation table base
 */
public record Ste(
        boolean valid,
        int config,
        int s1Fmt,
        long s1ContextPtr,
        int s1CdMax,
        int s1Dss,
        int s1Cir,
        int s1Cor,
        int s1Csh,
        boolean mev,
        boolean s2Fwb,
        boolean s1Stalld,
        int eats,
        int strw,
        int shcfg,
        int s2Vmid,
        int s2T0sz,
        int s2Sl0,
        int s2Ir0,
        int s2Or0,
        int s2Sh0,
        int s2Tg,
        int s2Ps,
        boolean s2Aa64,
        boolean s2Endi,
        boolean s2Affd,
        boolean s2Ptw,
        boolean s2Hd,
        boolean s2Ha,
        boolean s2S,
        boolean s2R,
        long s2Ttb) {

    /** Size of an STE in bytes. */
    public static final int SIZE = 64;
    /** Number of 64-bit words in an STE. */
    public static final int DWORDS = 8;

    /** Config: abort all traffic, no event. */
    public static final int CONFIG_ABORT = 0b000;
    /** Config: bypass both stages. */
    public static final int CONFIG_BYPASS = 0b100;
    /** Config: stage 1 translates, stage 2 bypassed. */
    public static final int CONFIG_S1 = 0b101;
    /** Config: stage 1 bypassed, stage 2 translates. */
    public static final int CONFIG_S2 = 0b110;
    /** Config: both stages translate (nested). */
    public static final int CONFIG_NESTED = 0b111;
    private static final int CONFIG_ENABLED_BIT = 2;
    private static final int CONFIG_S1_BIT = 0;
    private static final int CONFIG_S2_BIT = 1;

    /** S1Fmt: one linear table of 2^S1CDMax CDs. */
    public static final int S1FMT_LINEAR = 0;
    /** S1Fmt: two-level CD table with 4 KB leaf tables of 64 CDs (unverified in the fact sheet). */
    public static final int S1FMT_4K_L2 = 1;
    /** S1Fmt: two-level CD table with 64 KB leaf tables of 1024 CDs (what Linux uses). */
    public static final int S1FMT_64K_L2 = 2;
    private static final int CD_LEAF_4K_LG2 = 12 - 6; // 4 KB of 64-byte CDs
    private static final int CD_LEAF_64K_LG2 = 16 - 6; // 64 KB of 64-byte CDs

    /** S1DSS: traffic without a substream is terminated. */
    public static final int S1DSS_TERMINATE = 0;
    /** S1DSS: traffic without a substream bypasses stage 1. */
    public static final int S1DSS_BYPASS = 1;
    /** S1DSS: traffic without a substream uses the CD of substream 0. */
    public static final int S1DSS_SSID0 = 2;

    /** EATS: ATS translation requests are aborted. */
    public static final int EATS_ABT = 0;
    /** EATS: full ATS. */
    public static final int EATS_TRANS = 1;
    /** EATS: split-stage ATS (stage 1 checked on translated traffic). */
    public static final int EATS_S1CHK = 2;

    /** STRW: non-secure EL1 translation regime. */
    public static final int STRW_NSEL1 = 0;
    /** STRW: EL2 (or EL2&amp;0 with E2H) translation regime. */
    public static final int STRW_EL2 = 2;

    /** SHCFG: use the incoming shareability (the other values are {@link Encodings#SH_NSH} etc.). */
    public static final int SHCFG_INCOMING = 1;

    public static final BitField V = BitField.flag("V", 0, 0);
    public static final BitField CONFIG = BitField.of("Config", 0, 3, 1);
    public static final BitField S1FMT = BitField.of("S1Fmt", 0, 5, 4);
    public static final BitField S1_CONTEXT_PTR = BitField.of("S1ContextPtr", 0, 51, 6);
    public static final BitField S1_CDMAX = BitField.of("S1CDMax", 0, 63, 59);

    public static final BitField S1DSS = BitField.of("S1DSS", 1, 1, 0);
    public static final BitField S1CIR = BitField.of("S1CIR", 1, 3, 2);
    public static final BitField S1COR = BitField.of("S1COR", 1, 5, 4);
    public static final BitField S1CSH = BitField.of("S1CSH", 1, 7, 6);
    public static final BitField MEV = BitField.flag("MEV", 1, 19);
    public static final BitField S2FWB = BitField.flag("S2FWB", 1, 25);
    public static final BitField S1STALLD = BitField.flag("S1STALLD", 1, 27);
    public static final BitField EATS = BitField.of("EATS", 1, 29, 28);
    public static final BitField STRW = BitField.of("STRW", 1, 31, 30);
    public static final BitField SHCFG = BitField.of("SHCFG", 1, 45, 44);

    public static final BitField S2VMID = BitField.of("S2VMID", 2, 15, 0);
    public static final BitField S2T0SZ = BitField.of("S2T0SZ", 2, 37, 32);
    public static final BitField S2SL0 = BitField.of("S2SL0", 2, 39, 38);
    public static final BitField S2IR0 = BitField.of("S2IR0", 2, 41, 40);
    public static final BitField S2OR0 = BitField.of("S2OR0", 2, 43, 42);
    public static final BitField S2SH0 = BitField.of("S2SH0", 2, 45, 44);
    public static final BitField S2TG = BitField.of("S2TG", 2, 47, 46);
    public static final BitField S2PS = BitField.of("S2PS", 2, 50, 48);
    public static final BitField S2AA64 = BitField.flag("S2AA64", 2, 51);
    public static final BitField S2ENDI = BitField.flag("S2ENDI", 2, 52);
    public static final BitField S2AFFD = BitField.flag("S2AFFD", 2, 53);
    public static final BitField S2PTW = BitField.flag("S2PTW", 2, 54);
    public static final BitField S2HD = BitField.flag("S2HD", 2, 55);
    public static final BitField S2HA = BitField.flag("S2HA", 2, 56);
    public static final BitField S2S = BitField.flag("S2S", 2, 57);
    public static final BitField S2R = BitField.flag("S2R", 2, 58);

    public static final BitField S2TTB = BitField.of("S2TTB", 3, 51, 4);

    /** Every field this class decodes, in word and bit order. */
    public static final List<BitField> FIELDS = List.of(
            V, CONFIG, S1FMT, S1_CONTEXT_PTR, S1_CDMAX,
            S1DSS, S1CIR, S1COR, S1CSH, MEV, S2FWB, S1STALLD, EATS, STRW, SHCFG,
            S2VMID, S2T0SZ, S2SL0, S2IR0, S2OR0, S2SH0, S2TG, S2PS,
            S2AA64, S2ENDI, S2AFFD, S2PTW, S2HD, S2HA, S2S, S2R,
            S2TTB);

    /** Rejects values that do not fit their fields ({@link IllegalArgumentException} naming the field). */
    public Ste {
        CONFIG.checkValue(config);
        S1FMT.checkValue(s1Fmt);
        S1_CONTEXT_PTR.checkAddress(s1ContextPtr);
        S1_CDMAX.checkValue(s1CdMax);
        S1DSS.checkValue(s1Dss);
        S1CIR.checkValue(s1Cir);
        S1COR.checkValue(s1Cor);
        S1CSH.checkValue(s1Csh);
        EATS.checkValue(eats);
        STRW.checkValue(strw);
        SHCFG.checkValue(shcfg);
        S2VMID.checkValue(s2Vmid);
        S2T0SZ.checkValue(s2T0sz);
        S2SL0.checkValue(s2Sl0);
        S2IR0.checkValue(s2Ir0);
        S2OR0.checkValue(s2Or0);
        S2SH0.checkValue(s2Sh0);
        S2TG.checkValue(s2Tg);
        S2PS.checkValue(s2Ps);
        S2TTB.checkAddress(s2Ttb);
    }

    // ------------------------------------------------------------------ decode / encode

    /** Decodes an STE from its words; {@code dw} holds at least words 0–3 (words 4–7 are not modelled). */
    public static Ste decode(long[] dw) {
        return decode(dw[0], dw[1], dw[2], dw[3]);
    }

    /** Decodes an STE from its words 0–3 (the words that hold every field this class models). */
    public static Ste decode(long dw0, long dw1, long dw2, long dw3) {
        return new Ste(
                V.isSet(dw0),
                CONFIG.getInt(dw0),
                S1FMT.getInt(dw0),
                S1_CONTEXT_PTR.address(dw0),
                S1_CDMAX.getInt(dw0),
                S1DSS.getInt(dw1),
                S1CIR.getInt(dw1),
                S1COR.getInt(dw1),
                S1CSH.getInt(dw1),
                MEV.isSet(dw1),
                S2FWB.isSet(dw1),
                S1STALLD.isSet(dw1),
                EATS.getInt(dw1),
                STRW.getInt(dw1),
                SHCFG.getInt(dw1),
                S2VMID.getInt(dw2),
                S2T0SZ.getInt(dw2),
                S2SL0.getInt(dw2),
                S2IR0.getInt(dw2),
                S2OR0.getInt(dw2),
                S2SH0.getInt(dw2),
                S2TG.getInt(dw2),
                S2PS.getInt(dw2),
                S2AA64.isSet(dw2),
                S2ENDI.isSet(dw2),
                S2AFFD.isSet(dw2),
                S2PTW.isSet(dw2),
                S2HD.isSet(dw2),
                S2HA.isSet(dw2),
                S2S.isSet(dw2),
                S2R.isSet(dw2),
                S2TTB.address(dw3));
    }

    /** The eight words of this entry. */
    public long[] encode() {
        long[] dw = new long[DWORDS];
        encode(dw);
        return dw;
    }

    /** Writes the eight words of this entry into {@code into[0..7]} (words 4–7 as zero). */
    public void encode(long[] into) {
        into[0] = dw0();
        into[1] = dw1();
        into[2] = dw2();
        into[3] = dw3();
        for (int i = 4; i < DWORDS; i++) {
            into[i] = 0;
        }
    }

    /** Word 0: V, Config, S1Fmt, S1ContextPtr, S1CDMax. */
    public long dw0() {
        long w = V.put(0, valid);
        w = CONFIG.put(w, config);
        w = S1FMT.put(w, s1Fmt);
        w = S1_CONTEXT_PTR.putAddress(w, s1ContextPtr);
        return S1_CDMAX.put(w, s1CdMax);
    }

    /** Word 1: S1DSS, CD fetch attributes, MEV, S2FWB, S1STALLD, EATS, STRW, SHCFG. */
    public long dw1() {
        long w = S1DSS.put(0, s1Dss);
        w = S1CIR.put(w, s1Cir);
        w = S1COR.put(w, s1Cor);
        w = S1CSH.put(w, s1Csh);
        w = MEV.put(w, mev);
        w = S2FWB.put(w, s2Fwb);
        w = S1STALLD.put(w, s1Stalld);
        w = EATS.put(w, eats);
        w = STRW.put(w, strw);
        return SHCFG.put(w, shcfg);
    }

    /** Word 2: VMID and the stage-2 walk controls. */
    public long dw2() {
        long w = S2VMID.put(0, s2Vmid);
        w = S2T0SZ.put(w, s2T0sz);
        w = S2SL0.put(w, s2Sl0);
        w = S2IR0.put(w, s2Ir0);
        w = S2OR0.put(w, s2Or0);
        w = S2SH0.put(w, s2Sh0);
        w = S2TG.put(w, s2Tg);
        w = S2PS.put(w, s2Ps);
        w = S2AA64.put(w, s2Aa64);
        w = S2ENDI.put(w, s2Endi);
        w = S2AFFD.put(w, s2Affd);
        w = S2PTW.put(w, s2Ptw);
        w = S2HD.put(w, s2Hd);
        w = S2HA.put(w, s2Ha);
        w = S2S.put(w, s2S);
        return S2R.put(w, s2R);
    }

    /** Word 3: S2TTB. */
    public long dw3() {
        return S2TTB.putAddress(0, s2Ttb);
    }

    /** The bits of word {@code word} that some field of this class covers (0 for words 4–7). */
    public static long definedMask(int word) {
        long m = 0;
        for (BitField f : FIELDS) {
            if (f.word() == word) {
                m |= f.mask();
            }
        }
        return m;
    }

    // ------------------------------------------------------------------ meaning

    /**
     * Whether a Config value aborts traffic: bit 2 clear. 0b000 is the architected abort; QEMU treats the
     * unnamed 0b001–0b011 the same way, and so does this class.
     */
    public static boolean configAborts(int config) {
        return !Bits.bit(config, CONFIG_ENABLED_BIT);
    }

    /** Whether a Config value has stage 1 translate (S1 or nested). */
    public static boolean configStage1(int config) {
        return !configAborts(config) && Bits.bit(config, CONFIG_S1_BIT);
    }

    /** Whether a Config value has stage 2 translate (S2 or nested). */
    public static boolean configStage2(int config) {
        return !configAborts(config) && Bits.bit(config, CONFIG_S2_BIT);
    }

    /** Whether this (valid) entry aborts its stream's traffic ({@link #configAborts}). */
    public boolean isAbort() {
        return configAborts(config);
    }

    /** Whether this entry bypasses both stages. */
    public boolean isBypass() {
        return config == CONFIG_BYPASS;
    }

    /** Whether stage 1 translates. */
    public boolean stage1() {
        return configStage1(config);
    }

    /** Whether stage 2 translates. */
    public boolean stage2() {
        return configStage2(config);
    }

    /** log2 of the number of CDs the stream's CD table holds: S1CDMax (0 = one CD, substreams disabled). */
    public int cdTableLg2() {
        return s1CdMax;
    }

    /**
     * log2 of the number of CDs in one leaf table of a two-level CD table of format {@code s1Fmt}: 6 for
     * {@link #S1FMT_4K_L2} (unverified), 10 for {@link #S1FMT_64K_L2}; {@code -1} for linear or reserved.
     * The L1 index is then {@code ssid >>> leafLg2}, the leaf index {@code ssid & (2^leafLg2 - 1)}.
     */
    public static int cdLeafLg2(int s1Fmt) {
        switch (s1Fmt) {
            case S1FMT_4K_L2:
                return CD_LEAF_4K_LG2;
            case S1FMT_64K_L2:
                return CD_LEAF_64K_LG2;
            default:
                return -1;
        }
    }

    /** log2 of the stage-2 granule of an S2TG value (TG0-style encoding): 12, 16, 14, or -1 for reserved. */
    public static int granuleLg2ForS2Tg(int s2Tg) {
        return Encodings.granuleLg2ForTg0(s2Tg);
    }

    // ------------------------------------------------------------------ driver side

    /** An empty builder (all fields zero: an invalid entry). */
    public static Builder builder() {
        return new Builder(new long[DWORDS]);
    }

    /** A builder holding this entry's fields. */
    public Builder toBuilder() {
        return new Builder(encode());
    }

    /** A valid entry that aborts its stream's traffic without recording events, as Linux writes it. */
    public static Ste abort() {
        return builder().valid(true).config(CONFIG_ABORT).build();
    }

    /**
     * A valid bypass entry. Linux also writes SHCFG = {@link #SHCFG_INCOMING} when the SMMU has
     * IDR1.ATTR_TYPES_OVR; add it with {@code bypass().toBuilder().shcfg(SHCFG_INCOMING).build()}.
     */
    public static Ste bypass() {
        return builder().valid(true).config(CONFIG_BYPASS).build();
    }

    /**
     * A stage-1 entry as Linux's {@code arm_smmu_make_cdtable_ste} writes it without ATS, stall or E2H: V,
     * Config S1, the CD table, CD fetches write-back read-allocate and inner shareable, STRW NS-EL1.
     *
     * @param cdTablePtr address of the CD table (linear) or of the L1 CD table; 64-byte aligned, below 2^52
     * @param s1Fmt      {@link #S1FMT_LINEAR} or a two-level format
     * @param s1CdMax    log2 of the number of CDs (0: one CD, no substreams)
     * @param s1Dss      what traffic without a substream does ({@link #S1DSS_SSID0} and so on)
     */
    public static Ste stage1(long cdTablePtr, int s1Fmt, int s1CdMax, int s1Dss) {
        return builder()
                .valid(true)
                .config(CONFIG_S1)
                .s1Fmt(s1Fmt)
                .s1ContextPtr(cdTablePtr)
                .s1CdMax(s1CdMax)
                .s1Dss(s1Dss)
                .s1Cir(Encodings.CACHE_WBWA)
                .s1Cor(Encodings.CACHE_WBWA)
                .s1Csh(Encodings.SH_ISH)
                .strw(STRW_NSEL1)
                .build();
    }

    /**
     * A stage-2 entry as Linux's {@code arm_smmu_make_s2_domain_ste} writes it without ATS on a
     * little-endian host: V, Config S2, the VMID and walk controls (walks write-back write-allocate, inner
     * shareable), S2AA64, S2PTW, S2R and the table base.
     *
     * @param vmid   the VMID (16 bits)
     * @param t0sz   S2T0SZ: the input address has 64 − t0sz bits
     * @param sl0    S2SL0: the starting level, in the architecture's per-granule encoding
     * @param s2Tg   S2TG: the granule, TG0-style ({@link Encodings#tg0ForGranuleLg2})
     * @param s2Ps   S2PS: the output size ({@link Encodings#oasEncoding})
     * @param s2Ttb  the stage-2 table base, 16-byte aligned, below 2^52
     */
    public static Ste stage2(int vmid, int t0sz, int sl0, int s2Tg, int s2Ps, long s2Ttb) {
        return builder()
                .valid(true)
                .config(CONFIG_S2)
                .s2Vmid(vmid)
                .s2T0sz(t0sz)
                .s2Sl0(sl0)
                .s2Ir0(Encodings.CACHE_WBWA)
                .s2Or0(Encodings.CACHE_WBWA)
                .s2Sh0(Encodings.SH_ISH)
                .s2Tg(s2Tg)
                .s2Ps(s2Ps)
                .s2Aa64(true)
                .s2Ptw(true)
                .s2R(true)
                .s2Ttb(s2Ttb)
                .build();
    }

    /**
     * A mutable STE under construction, held as its words. Every setter checks that the value fits its
     * field ({@link IllegalArgumentException} naming it otherwise).
     */
    public static final class Builder {
        private final long[] dw;

        private Builder(long[] dw) {
            this.dw = dw;
        }

        private Builder set(BitField f, long value) {
            dw[f.word()] = f.put(dw[f.word()], f.checkValue(value));
            return this;
        }

        private Builder set(BitField f, boolean value) {
            dw[f.word()] = f.put(dw[f.word()], value);
            return this;
        }

        private Builder setAddress(BitField f, long address) {
            dw[f.word()] = f.putAddress(dw[f.word()], f.checkAddress(address));
            return this;
        }

        public Builder valid(boolean v) {
            return set(V, v);
        }

        public Builder config(int v) {
            return set(CONFIG, v);
        }

        public Builder s1Fmt(int v) {
            return set(S1FMT, v);
        }

        public Builder s1ContextPtr(long address) {
            return setAddress(S1_CONTEXT_PTR, address);
        }

        public Builder s1CdMax(int v) {
            return set(S1_CDMAX, v);
        }

        public Builder s1Dss(int v) {
            return set(S1DSS, v);
        }

        public Builder s1Cir(int v) {
            return set(S1CIR, v);
        }

        public Builder s1Cor(int v) {
            return set(S1COR, v);
        }

        public Builder s1Csh(int v) {
            return set(S1CSH, v);
        }

        public Builder mev(boolean v) {
            return set(MEV, v);
        }

        public Builder s2Fwb(boolean v) {
            return set(S2FWB, v);
        }

        public Builder s1Stalld(boolean v) {
            return set(S1STALLD, v);
        }

        public Builder eats(int v) {
            return set(EATS, v);
        }

        public Builder strw(int v) {
            return set(STRW, v);
        }

        public Builder shcfg(int v) {
            return set(SHCFG, v);
        }

        public Builder s2Vmid(int v) {
            return set(S2VMID, v);
        }

        public Builder s2T0sz(int v) {
            return set(S2T0SZ, v);
        }

        public Builder s2Sl0(int v) {
            return set(S2SL0, v);
        }

        public Builder s2Ir0(int v) {
            return set(S2IR0, v);
        }

        public Builder s2Or0(int v) {
            return set(S2OR0, v);
        }

        public Builder s2Sh0(int v) {
            return set(S2SH0, v);
        }

        public Builder s2Tg(int v) {
            return set(S2TG, v);
        }

        public Builder s2Ps(int v) {
            return set(S2PS, v);
        }

        public Builder s2Aa64(boolean v) {
            return set(S2AA64, v);
        }

        public Builder s2Endi(boolean v) {
            return set(S2ENDI, v);
        }

        public Builder s2Affd(boolean v) {
            return set(S2AFFD, v);
        }

        public Builder s2Ptw(boolean v) {
            return set(S2PTW, v);
        }

        public Builder s2Hd(boolean v) {
            return set(S2HD, v);
        }

        public Builder s2Ha(boolean v) {
            return set(S2HA, v);
        }

        public Builder s2S(boolean v) {
            return set(S2S, v);
        }

        public Builder s2R(boolean v) {
            return set(S2R, v);
        }

        public Builder s2Ttb(long address) {
            return setAddress(S2TTB, address);
        }

        /** The entry built so far. */
        public Ste build() {
            return decode(dw);
        }
    }
}
