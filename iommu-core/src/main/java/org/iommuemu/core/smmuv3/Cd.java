package org.iommuemu.core.smmuv3;

import java.util.List;

/**
 * A Context Descriptor: 64 bytes, eight little-endian 64-bit words ({@code spec/SMMUV3.md} §6; Arm IHI0070
 * "Context Descriptor"). The record holds every field of words 0–4 the fact sheet lists; words 5–7
 * (IMPDEF, PARTID, PMG) are not modelled: {@link #decode} ignores them and {@link #encode} writes zero.
 *
 * <p>Values are right-aligned; {@link #ttb0} and {@link #ttb1} are addresses in place. {@link #mair} and
 * {@link #amair} are whole words (MAIR0 in bits 31:0, MAIR1 in 63:32: a MAIR_EL1 image). The canonical
 * constructor rejects a value that does not fit its field, so {@code decode(encode(x)).equals(x)}.
 *
 * <p><b>Granules.</b> TG0 and TG1 are encoded differently (as in TCR_EL1): TG0 0→4 KB, 1→64 KB, 2→16 KB;
 * TG1 1→16 KB, 2→4 KB, 3→64 KB. Use {@link #granuleLg2ForTg0} and {@link #granuleLg2ForTg1}.
 *
 * <p>The positions of IR1/OR1/SH1, UWXN and PAN are marked unverified in the fact sheet (Linux and QEMU
 * name neither); they follow the TCR_EL1 layout the CD copies, as the sheet gives them.
 *
 * @param t0sz   T0SZ, dw0[5:0]: TTB0 covers 64 − T0SZ input bits
 * @param tg0    TG0, dw0[7:6]
 * @param ir0    IR0, dw0[9:8]: inner cacheability of TTB0 walks ({@link Encodings#CACHE_NC}…)
 * @param or0    OR0, dw0[11:10]
 * @param sh0    SH0, dw0[13:12]
 * @param epd0   EPD0, dw0[14]: TTB0 walks disabled
 * @param endi   ENDI, dw0[15]: big-endian tables
 * @param t1sz   T1SZ, dw0[21:16]
 * @param tg1    TG1, dw0[23:22]
 * @param ir1    IR1, dw0[25:24]
 * @param or1    OR1, dw0[27:26]
 * @param sh1    SH1, dw0[29:28]
 * @param epd1   EPD1, dw0[30]: TTB1 walks disabled
 * @param valid  V, dw0[31]
 * @param ips    IPS, dw0[34:32]: intermediate/output size ({@link Encodings#oasBits})
 * @param affd   AFFD, dw0[35]: access-flag faults disabled
 * @param wxn    WXN, dw0[36]
 * @param uwxn   UWXN, dw0[37]
 * @param tbi0   TBI0, dw0[38]: top byte ignored for TTB0 addresses
 * @param tbi1   TBI1, dw0[39]
 * @param pan    PAN, dw0[40]
 * @param aa64   AA64, dw0[41]: AArch64 tables
 * @param hd     HD, dw0[42]: hardware dirty-state update
 * @param ha     HA, dw0[43]: hardware access-flag update
 * @param s      S, dw0[44]: faults stall
 * @param r      R, dw0[45]: faults are recorded
 * @param a      A, dw0[46]: terminated transactions abort (rather than RAZ/WI)
 * @param aset   ASET, dw0[47]: the ASID is not shared with PE broadcast invalidation
 * @param asid   ASID, dw0[63:48]
 * @param nscfg0 NSCFG0, dw1[0]
 * @param had0   HAD0, dw1[1]: hierarchical attributes disabled for TTB0
 * @param ttb0   TTB0, dw1[51:4]
 * @param nscfg1 NSCFG1, dw2[0]
 * @param had1   HAD1, dw2[1]
 * @param ttb1   TTB1, dw2[51:4]
 * @param mair   MAIR0 | MAIR1 &lt;&lt; 32, dw3
 * @param amair  AMAIR0 | AMAIR1 &lt;&lt; 32, dw4
 */
public record Cd(
        int t0sz,
        int tg0,
        int ir0,
        int or0,
        int sh0,
        boolean epd0,
        boolean endi,
        int t1sz,
        int tg1,
        int ir1,
        int or1,
        int sh1,
        boolean epd1,
        boolean valid,
        int ips,
        boolean affd,
        boolean wxn,
        boolean uwxn,
        boolean tbi0,
        boolean tbi1,
        boolean pan,
        boolean aa64,
        boolean hd,
        boolean ha,
        boolean s,
        boolean r,
        boolean a,
        boolean aset,
        int asid,
        boolean nscfg0,
        boolean had0,
        long ttb0,
        boolean nscfg1,
        boolean had1,
        long ttb1,
        long mair,
        long amair) {

    /** Size of a CD in bytes. */
    public static final int SIZE = 64;
    /** Number of 64-bit words in a CD. */
    public static final int DWORDS = 8;

    public static final BitField T0SZ = BitField.of("T0SZ", 0, 5, 0);
    public static final BitField TG0 = BitField.of("TG0", 0, 7, 6);
    public static final BitField IR0 = BitField.of("IR0", 0, 9, 8);
    public static final BitField OR0 = BitField.of("OR0", 0, 11, 10);
    public static final BitField SH0 = BitField.of("SH0", 0, 13, 12);
    public static final BitField EPD0 = BitField.flag("EPD0", 0, 14);
    public static final BitField ENDI = BitField.flag("ENDI", 0, 15);
    public static final BitField T1SZ = BitField.of("T1SZ", 0, 21, 16);
    public static final BitField TG1 = BitField.of("TG1", 0, 23, 22);
    public static final BitField IR1 = BitField.of("IR1", 0, 25, 24);
    public static final BitField OR1 = BitField.of("OR1", 0, 27, 26);
    public static final BitField SH1 = BitField.of("SH1", 0, 29, 28);
    public static final BitField EPD1 = BitField.flag("EPD1", 0, 30);
    public static final BitField V = BitField.flag("V", 0, 31);
    public static final BitField IPS = BitField.of("IPS", 0, 34, 32);
    public static final BitField AFFD = BitField.flag("AFFD", 0, 35);
    public static final BitField WXN = BitField.flag("WXN", 0, 36);
    public static final BitField UWXN = BitField.flag("UWXN", 0, 37);
    public static final BitField TBI0 = BitField.flag("TBI0", 0, 38);
    public static final BitField TBI1 = BitField.flag("TBI1", 0, 39);
    public static final BitField PAN = BitField.flag("PAN", 0, 40);
    public static final BitField AA64 = BitField.flag("AA64", 0, 41);
    public static final BitField HD = BitField.flag("HD", 0, 42);
    public static final BitField HA = BitField.flag("HA", 0, 43);
    public static final BitField S = BitField.flag("S", 0, 44);
    public static final BitField R = BitField.flag("R", 0, 45);
    public static final BitField A = BitField.flag("A", 0, 46);
    public static final BitField ASET = BitField.flag("ASET", 0, 47);
    public static final BitField ASID = BitField.of("ASID", 0, 63, 48);

    public static final BitField NSCFG0 = BitField.flag("NSCFG0", 1, 0);
    public static final BitField HAD0 = BitField.flag("HAD0", 1, 1);
    public static final BitField TTB0 = BitField.of("TTB0", 1, 51, 4);

    public static final BitField NSCFG1 = BitField.flag("NSCFG1", 2, 0);
    public static final BitField HAD1 = BitField.flag("HAD1", 2, 1);
    public static final BitField TTB1 = BitField.of("TTB1", 2, 51, 4);

    public static final BitField MAIR = BitField.of("MAIR", 3, 63, 0);
    public static final BitField AMAIR = BitField.of("AMAIR", 4, 63, 0);

    /** Every field this class decodes, in word and bit order. */
    public static final List<BitField> FIELDS = List.of(
            T0SZ, TG0, IR0, OR0, SH0, EPD0, ENDI, T1SZ, TG1, IR1, OR1, SH1, EPD1, V,
            IPS, AFFD, WXN, UWXN, TBI0, TBI1, PAN, AA64, HD, HA, S, R, A, ASET, ASID,
            NSCFG0, HAD0, TTB0,
            NSCFG1, HAD1, TTB1,
            MAIR, AMAIR);

    /**
     * The MAIR Linux's io-pgtable-arm programs: attribute 0 Normal non-cacheable (0x44), 1 Normal write-back
     * read/write-allocate (0xFF), 2 Device-nGnRE (0x04), 3 inner non-cacheable outer write-back (0xF4).
     */
    public static final long LINUX_MAIR = 0x00000000_F404FF44L;

    /** Rejects values that do not fit their fields ({@link IllegalArgumentException} naming the field). */
    public Cd {
        T0SZ.checkValue(t0sz);
        TG0.checkValue(tg0);
        IR0.checkValue(ir0);
        OR0.checkValue(or0);
        SH0.checkValue(sh0);
        T1SZ.checkValue(t1sz);
        TG1.checkValue(tg1);
        IR1.checkValue(ir1);
        OR1.checkValue(or1);
        SH1.checkValue(sh1);
        IPS.checkValue(ips);
        ASID.checkValue(asid);
        TTB0.checkAddress(ttb0);
        TTB1.checkAddress(ttb1);
    }

    // ------------------------------------------------------------------ decode / encode

    /** Decodes a CD from its words; {@code dw} holds at least words 0–4 (words 5–7 are not modelled). */
    public static Cd decode(long[] dw) {
        return decode(dw[0], dw[1], dw[2], dw[3], dw[4]);
    }

    /** Decodes a CD from its words 0–4. */
    public static Cd decode(long dw0, long dw1, long dw2, long dw3, long dw4) {
        return new Cd(
                T0SZ.getInt(dw0),
                TG0.getInt(dw0),
                IR0.getInt(dw0),
                OR0.getInt(dw0),
                SH0.getInt(dw0),
                EPD0.isSet(dw0),
                ENDI.isSet(dw0),
                T1SZ.getInt(dw0),
                TG1.getInt(dw0),
                IR1.getInt(dw0),
                OR1.getInt(dw0),
                SH1.getInt(dw0),
                EPD1.isSet(dw0),
                V.isSet(dw0),
                IPS.getInt(dw0),
                AFFD.isSet(dw0),
                WXN.isSet(dw0),
                UWXN.isSet(dw0),
                TBI0.isSet(dw0),
                TBI1.isSet(dw0),
                PAN.isSet(dw0),
                AA64.isSet(dw0),
                HD.isSet(dw0),
                HA.isSet(dw0),
                S.isSet(dw0),
                R.isSet(dw0),
                A.isSet(dw0),
                ASET.isSet(dw0),
                ASID.getInt(dw0),
                NSCFG0.isSet(dw1),
                HAD0.isSet(dw1),
                TTB0.address(dw1),
                NSCFG1.isSet(dw2),
                HAD1.isSet(dw2),
                TTB1.address(dw2),
                dw3,
                dw4);
    }

    /** The eight words of this descriptor. */
    public long[] encode() {
        long[] dw = new long[DWORDS];
        encode(dw);
        return dw;
    }

    /** Writes the eight words of this descriptor into {@code into[0..7]} (words 5–7 as zero). */
    public void encode(long[] into) {
        into[0] = dw0();
        into[1] = dw1();
        into[2] = dw2();
        into[3] = mair;
        into[4] = amair;
        for (int i = 5; i < DWORDS; i++) {
            into[i] = 0;
        }
    }

    /** Word 0: the translation controls, V and the ASID. */
    public long dw0() {
        long w = T0SZ.put(0, t0sz);
        w = TG0.put(w, tg0);
        w = IR0.put(w, ir0);
        w = OR0.put(w, or0);
        w = SH0.put(w, sh0);
        w = EPD0.put(w, epd0);
        w = ENDI.put(w, endi);
        w = T1SZ.put(w, t1sz);
        w = TG1.put(w, tg1);
        w = IR1.put(w, ir1);
        w = OR1.put(w, or1);
        w = SH1.put(w, sh1);
        w = EPD1.put(w, epd1);
        w = V.put(w, valid);
        w = IPS.put(w, ips);
        w = AFFD.put(w, affd);
        w = WXN.put(w, wxn);
        w = UWXN.put(w, uwxn);
        w = TBI0.put(w, tbi0);
        w = TBI1.put(w, tbi1);
        w = PAN.put(w, pan);
        w = AA64.put(w, aa64);
        w = HD.put(w, hd);
        w = HA.put(w, ha);
        w = S.put(w, s);
        w = R.put(w, r);
        w = A.put(w, a);
        w = ASET.put(w, aset);
        return ASID.put(w, asid);
    }

    /** Word 1: NSCFG0, HAD0, TTB0. */
    public long dw1() {
        long w = NSCFG0.put(0, nscfg0);
        w = HAD0.put(w, had0);
        return TTB0.putAddress(w, ttb0);
    }

    /** Word 2: NSCFG1, HAD1, TTB1. */
    public long dw2() {
        long w = NSCFG1.put(0, nscfg1);
        w = HAD1.put(w, had1);
        return TTB1.putAddress(w, ttb1);
    }

    /** The bits of word {@code word} that some field of this class covers (0 for words 5–7). */
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

    /** log2 of the granule of a TG0 value: 0→12 (4 KB), 1→16 (64 KB), 2→14 (16 KB); -1 for reserved 3. */
    public static int granuleLg2ForTg0(int tg0) {
        return Encodings.granuleLg2ForTg0(tg0);
    }

    /** log2 of the granule of a TG1 value: 1→14 (16 KB), 2→12 (4 KB), 3→16 (64 KB); -1 for reserved 0. */
    public static int granuleLg2ForTg1(int tg1) {
        return Encodings.granuleLg2ForTg1(tg1);
    }

    /** This descriptor's TTB0 granule ({@link #granuleLg2ForTg0}). */
    public int granule0Lg2() {
        return granuleLg2ForTg0(tg0);
    }

    /** This descriptor's TTB1 granule ({@link #granuleLg2ForTg1}). */
    public int granule1Lg2() {
        return granuleLg2ForTg1(tg1);
    }

    // ------------------------------------------------------------------ driver side

    /** An empty builder (all fields zero: an invalid descriptor). */
    public static Builder builder() {
        return new Builder(new long[DWORDS]);
    }

    /** A builder holding this descriptor's fields. */
    public Builder toBuilder() {
        return new Builder(encode());
    }

    /**
     * A stage-1 descriptor as Linux's {@code arm_smmu_make_s1_cd} writes it on a little-endian host without
     * stall or HTTU: TTB0 walk controls (walks write-back write-allocate, inner shareable), EPD1 (no TTB1),
     * V, IPS, AA64, R, A, ASET, the ASID, TTB0 and the MAIR.
     *
     * @param t0sz input size 64 − t0sz bits (16 for 48 bits)
     * @param tg0  TG0 ({@link Encodings#tg0ForGranuleLg2})
     * @param ips  output size encoding ({@link Encodings#oasEncoding})
     * @param asid the ASID (16 bits)
     * @param ttb0 the table base, 16-byte aligned, below 2^52
     * @param mair MAIR0 | MAIR1 &lt;&lt; 32 ({@link #LINUX_MAIR} for Linux's)
     */
    public static Cd stage1(int t0sz, int tg0, int ips, int asid, long ttb0, long mair) {
        return builder()
                .t0sz(t0sz)
                .tg0(tg0)
                .ir0(Encodings.CACHE_WBWA)
                .or0(Encodings.CACHE_WBWA)
                .sh0(Encodings.SH_ISH)
                .epd1(true)
                .valid(true)
                .ips(ips)
                .aa64(true)
                .r(true)
                .a(true)
                .aset(true)
                .asid(asid)
                .ttb0(ttb0)
                .mair(mair)
                .build();
    }

    /**
     * A mutable CD under construction, held as its words. One setter per field, named as the record
     * component; every setter checks that the value fits ({@link IllegalArgumentException} naming it).
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

        public Builder t0sz(int v) {
            return set(T0SZ, v);
        }

        public Builder tg0(int v) {
            return set(TG0, v);
        }

        public Builder ir0(int v) {
            return set(IR0, v);
        }

        public Builder or0(int v) {
            return set(OR0, v);
        }

        public Builder sh0(int v) {
            return set(SH0, v);
        }

        public Builder epd0(boolean v) {
            return set(EPD0, v);
        }

        public Builder endi(boolean v) {
            return set(ENDI, v);
        }

        public Builder t1sz(int v) {
            return set(T1SZ, v);
        }

        public Builder tg1(int v) {
            return set(TG1, v);
        }

        public Builder ir1(int v) {
            return set(IR1, v);
        }

        public Builder or1(int v) {
            return set(OR1, v);
        }

        public Builder sh1(int v) {
            return set(SH1, v);
        }

        public Builder epd1(boolean v) {
            return set(EPD1, v);
        }

        public Builder valid(boolean v) {
            return set(V, v);
        }

        public Builder ips(int v) {
            return set(IPS, v);
        }

        public Builder affd(boolean v) {
            return set(AFFD, v);
        }

        public Builder wxn(boolean v) {
            return set(WXN, v);
        }

        public Builder uwxn(boolean v) {
            return set(UWXN, v);
        }

        public Builder tbi0(boolean v) {
            return set(TBI0, v);
        }

        public Builder tbi1(boolean v) {
            return set(TBI1, v);
        }

        public Builder pan(boolean v) {
            return set(PAN, v);
        }

        public Builder aa64(boolean v) {
            return set(AA64, v);
        }

        public Builder hd(boolean v) {
            return set(HD, v);
        }

        public Builder ha(boolean v) {
            return set(HA, v);
        }

        public Builder s(boolean v) {
            return set(S, v);
        }

        public Builder r(boolean v) {
            return set(R, v);
        }

        public Builder a(boolean v) {
            return set(A, v);
        }

        public Builder aset(boolean v) {
            return set(ASET, v);
        }

        public Builder asid(int v) {
            return set(ASID, v);
        }

        public Builder nscfg0(boolean v) {
            return set(NSCFG0, v);
        }

        public Builder had0(boolean v) {
            return set(HAD0, v);
        }

        public Builder ttb0(long address) {
            return setAddress(TTB0, address);
        }

        public Builder nscfg1(boolean v) {
            return set(NSCFG1, v);
        }

        public Builder had1(boolean v) {
            return set(HAD1, v);
        }

        public Builder ttb1(long address) {
            return setAddress(TTB1, address);
        }

        public Builder mair(long v) {
            dw[MAIR.word()] = v;
            return this;
        }

        public Builder amair(long v) {
            dw[AMAIR.word()] = v;
            return this;
        }

        /** The descriptor built so far. */
        public Cd build() {
            return decode(dw);
        }
    }
}
