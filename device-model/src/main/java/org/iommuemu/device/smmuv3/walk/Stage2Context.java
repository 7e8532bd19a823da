package org.iommuemu.device.smmuv3.walk;

import java.util.Objects;
import org.iommuemu.core.bits.Bits;

/**
 * The stage-2 translation regime of one stream table entry, as the walker needs it (spec SMMUV3.md §5 STE
 * dword 1–3; PGTABLE.md §1.6). Decoding the STE into this is the caller's job.
 *
 * <p>Immutable, with value equality over its inputs. Building one computes the walk geometry (start level from
 * S2SL0, the index bits of a possibly concatenated first table) and validates the configuration once:
 * {@link #validate} returns the reason the STE is unusable (the device reports C_BAD_STE), and a walk with an
 * invalid context returns {@link WalkResult.Outcome#BAD_CONFIG}. Nothing a guest writes makes construction
 * throw.
 *
 * <p>Fields:
 * <ul>
 * <li>{@code vmid}: S2VMID, carried for the IOTLB tag.
 * <li>{@code t0sz}: S2T0SZ: the IPA space is {@code 64 - t0sz} bits.
 * <li>{@code sl0}: S2SL0: the start level (4K: 0 → L2, 1 → L1, 2 → L0; 16K and 64K: 0 → L3, 1 → L2, 2 → L1).
 * <li>{@code granuleLg2}: S2TG decoded: 12, 14 or 16.
 * <li>{@code psBits}: the effective S2PS in bits (capped by the SMMU's OAS by the caller); 52 only with 64K.
 * <li>{@code ttb}: S2TTB.
 * <li>{@code affd}, {@code ha}, {@code hd}: S2AFFD, S2HA, S2HD, as the stage-1 controls (HD needs HA).
 * <li>{@code ptw}: S2PTW: a stage-1 table walk access that stage 2 maps as Device memory is a stage-2
 *     permission fault.
 * <li>{@code fwb}: S2FWB: MemAttr uses the forced-write-back encoding (only affects the S2PTW Device test:
 *     MemAttr[2] = 0 is Device; without FWB MemAttr[3:2] = 0b00 is).
 * <li>{@code xnx}: the SMMU implements FEAT_XNX (SMMU_IDR3.XNX): descriptor bits [54:53] are XN[1:0] with
 *     separate privileged and unprivileged execute-never; without it bit 54 is XN for both and bit 53 is ignored.
 * <li>{@code iasBits}: the SMMU's input address size (for an AArch64-only SMMU, its OAS; SMMUv3 §3.4). It bounds
 *     S2T0SZ and decides which start levels exist (the Arm ARM's PAMax), and a stage-2-only input above it is a
 *     stage-1 F_ADDR_SIZE.
 * </ul>
 */
public final class Stage2Context {

    /** Smallest IPA size a stage-2 table can have: S2T0SZ ≤ 39 (no small translation tables). */
    public static final int MIN_IA = 25;
    /** Most first-level tables a stage-2 walk may concatenate (§1.6). */
    public static final int MAX_CONCATENATED = 16;

    private final int vmid;
    private final int t0sz;
    private final int sl0;
    private final int granuleLg2;
    private final int psBits;
    private final long ttb;
    private final boolean affd;
    private final boolean ha;
    private final boolean hd;
    private final boolean ptw;
    private final boolean fwb;
    private final boolean xnx;
    private final int iasBits;

    final WalkGeometry geometry;
    final boolean hdEffective;
    final String invalidReason;

    private Stage2Context(Builder b) {
        this.vmid = b.vmid;
        this.t0sz = b.t0sz;
        this.sl0 = b.sl0;
        this.granuleLg2 = b.granuleLg2;
        this.psBits = b.psBits;
        this.ttb = b.ttb;
        this.affd = b.affd;
        this.ha = b.ha;
        this.hd = b.hd;
        this.ptw = b.ptw;
        this.fwb = b.fwb;
        this.xnx = b.xnx;
        this.iasBits = b.iasBits;
        this.hdEffective = b.hd && b.ha;
        String reason = check();
        this.invalidReason = reason;
        this.geometry = reason == null
                ? new WalkGeometry(true, 64 - t0sz, granuleLg2, startLevelOf(granuleLg2, sl0), ttb, psBits,
                        iasBits >= 52, false)
                : WalkGeometry.NONE;
    }

    /** A builder for a 4K-granule, 48-bit IPA, 48-bit PS stage 2 starting at level 0, with every control clear. */
    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this context's values. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.vmid = vmid;
        b.t0sz = t0sz;
        b.sl0 = sl0;
        b.granuleLg2 = granuleLg2;
        b.psBits = psBits;
        b.ttb = ttb;
        b.affd = affd;
        b.ha = ha;
        b.hd = hd;
        b.ptw = ptw;
        b.fwb = fwb;
        b.xnx = xnx;
        b.iasBits = iasBits;
        return b;
    }

    /**
     * Why the STE's stage-2 controls are unusable (C_BAD_STE), or null when they are valid. Checked, in order:
     * the granule is 4K, 16K or 64K; S2PS and the SMMU's IAS name output sizes; the IPA size {@code 64 - S2T0SZ}
     * is at least {@value #MIN_IA} bits and at most the IAS (and 48 bits unless the granule is 64K); S2SL0 names
     * a start level that exists (SL0 = 3 never does here; SL0 = 2 needs an IAS of at least 44 bits with 4K and
     * 64K, 42 with 16K); the start level is consistent with the IPA size: it resolves at least one index bit and
     * at most a full table plus a concatenation of up to {@value #MAX_CONCATENATED} tables (the Arm ARM's
     * S2InconsistentSL rule, which is the concatenation limit); S2TTB is aligned to the first-level table (all the
     * concatenated tables together, at least 64 bytes). An S2TTB beyond S2PS is left to the walk (F_ADDR_SIZE).
     */
    public static String validate(Stage2Context context) {
        return context.invalidReason;
    }

    private String check() {
        if (!Vmsa.granuleValid(granuleLg2)) {
            return "S2TG: granule 2^" + granuleLg2 + " is not 4K, 16K or 64K";
        }
        if (!Vmsa.oasValid(psBits)) {
            return "S2PS of " + psBits + " bits is not 32, 36, 40, 42, 44, 48 or 52";
        }
        if (!Vmsa.oasValid(iasBits)) {
            return "IAS of " + iasBits + " bits is not 32, 36, 40, 42, 44, 48 or 52";
        }
        int ia = 64 - t0sz;
        int maxIa = Math.min(iasBits, granuleLg2 == 16 ? 52 : 48);
        if (ia < MIN_IA || ia > maxIa) {
            return "S2T0SZ " + t0sz + " gives a " + ia + "-bit IPA space; the " + Vmsa.granuleName(granuleLg2)
                    + " granule with a " + iasBits + "-bit IAS allows " + MIN_IA + ".." + maxIa + " bits (S2T0SZ "
                    + (64 - maxIa) + ".." + (64 - MIN_IA) + ")";
        }
        int start = startLevelOf(granuleLg2, sl0);
        if (start < 0) {
            return "S2SL0 " + sl0 + " is reserved with the " + Vmsa.granuleName(granuleLg2) + " granule";
        }
        if (sl0 == 2 && iasBits < (granuleLg2 == 14 ? 42 : 44)) {
            return "S2SL0 2 (level " + start + ") is reserved with the " + Vmsa.granuleName(granuleLg2)
                    + " granule on an SMMU with a " + iasBits + "-bit IAS";
        }
        int stride = granuleLg2 - 3;
        int startBits = ia - Vmsa.levelShift(granuleLg2, start);
        if (startBits < 1) {
            return "S2SL0 " + sl0 + " starts at level " + start + ", which resolves no bit of a " + ia
                    + "-bit IPA with the " + Vmsa.granuleName(granuleLg2) + " granule";
        }
        if (startBits > stride + 4) {
            return "S2SL0 " + sl0 + " starts at level " + start + ", which would need " + (1L << (startBits - stride))
                    + " concatenated tables for a " + ia + "-bit IPA with the " + Vmsa.granuleName(granuleLg2)
                    + " granule (at most " + MAX_CONCATENATED + ")";
        }
        int alignLg2 = Math.max(6, startBits + 3);
        if (!Bits.isAligned(ttb, alignLg2)) {
            return "S2TTB " + Bits.hex(ttb) + " is not aligned to its " + (1L << alignLg2) + "-byte level-" + start
                    + " table";
        }
        return null;
    }

    /** §1.6: the start level S2SL0 names, or -1 when it names none (SL0 = 3, or anything outside 0..3). */
    private static int startLevelOf(int granuleLg2, int sl0) {
        if (sl0 < 0 || sl0 > 2) {
            return -1;
        }
        return (granuleLg2 == 12 ? 2 : 3) - sl0;
    }

    /** STE.S2TG to log2 of the granule: 0 → 12 (4K), 1 → 16 (64K), 2 → 14 (16K); 3 (reserved) → -1. */
    public static int granuleLg2FromTg(int s2tg) {
        return Stage1Context.granuleLg2FromTg0(s2tg);
    }

    // ---------------------------------------------------------------- accessors

    public int vmid() {
        return vmid;
    }

    public int t0sz() {
        return t0sz;
    }

    public int sl0() {
        return sl0;
    }

    public int granuleLg2() {
        return granuleLg2;
    }

    public int psBits() {
        return psBits;
    }

    public long ttb() {
        return ttb;
    }

    public boolean affd() {
        return affd;
    }

    public boolean ha() {
        return ha;
    }

    public boolean hd() {
        return hd;
    }

    public boolean ptw() {
        return ptw;
    }

    public boolean fwb() {
        return fwb;
    }

    public boolean xnx() {
        return xnx;
    }

    public int iasBits() {
        return iasBits;
    }

    /** Arm level of the first lookup; meaningful for a valid context. */
    public int startLevel() {
        return geometry.startLevel;
    }

    /** How many tables the first lookup spans: 1, or 2..16 when concatenated; meaningful for a valid context. */
    public int concatenatedTables() {
        int extra = geometry.startBits - geometry.stride;
        return extra > 0 ? 1 << extra : 1;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Stage2Context c && vmid == c.vmid && t0sz == c.t0sz && sl0 == c.sl0
                && granuleLg2 == c.granuleLg2 && psBits == c.psBits && ttb == c.ttb && affd == c.affd && ha == c.ha
                && hd == c.hd && ptw == c.ptw && fwb == c.fwb && xnx == c.xnx && iasBits == c.iasBits;
    }

    @Override
    public int hashCode() {
        return Objects.hash(vmid, t0sz, sl0, granuleLg2, psBits, ttb, affd, ha, hd, ptw, fwb, xnx, iasBits);
    }

    @Override
    public String toString() {
        return "Stage2Context[vmid=" + vmid + ", t0sz=" + t0sz + ", sl0=" + sl0 + ", " + Vmsa.granuleName(granuleLg2)
                + ", ps=" + psBits + ", ttb=" + Bits.hex(ttb) + (affd ? ", AFFD" : "") + (ha ? ", HA" : "")
                + (hd ? ", HD" : "") + (ptw ? ", PTW" : "") + (fwb ? ", FWB" : "") + (xnx ? ", XNX" : "")
                + ", ias=" + iasBits + (invalidReason != null ? ", INVALID: " + invalidReason : "") + "]";
    }

    /** Collects the fields of a {@link Stage2Context}. Not thread-safe. */
    public static final class Builder {
        private int vmid;
        private int t0sz = 16;
        private int sl0 = 2;
        private int granuleLg2 = 12;
        private int psBits = 48;
        private long ttb;
        private boolean affd;
        private boolean ha;
        private boolean hd;
        private boolean ptw;
        private boolean fwb;
        private boolean xnx;
        private int iasBits = 48;

        private Builder() {}

        public Builder vmid(int vmid) {
            this.vmid = vmid;
            return this;
        }

        public Builder t0sz(int t0sz) {
            this.t0sz = t0sz;
            return this;
        }

        public Builder sl0(int sl0) {
            this.sl0 = sl0;
            return this;
        }

        public Builder granuleLg2(int granuleLg2) {
            this.granuleLg2 = granuleLg2;
            return this;
        }

        public Builder psBits(int bits) {
            this.psBits = bits;
            return this;
        }

        public Builder ttb(long ttb) {
            this.ttb = ttb;
            return this;
        }

        public Builder affd(boolean on) {
            this.affd = on;
            return this;
        }

        public Builder ha(boolean on) {
            this.ha = on;
            return this;
        }

        public Builder hd(boolean on) {
            this.hd = on;
            return this;
        }

        public Builder ptw(boolean on) {
            this.ptw = on;
            return this;
        }

        public Builder fwb(boolean on) {
            this.fwb = on;
            return this;
        }

        public Builder xnx(boolean on) {
            this.xnx = on;
            return this;
        }

        public Builder iasBits(int bits) {
            this.iasBits = bits;
            return this;
        }

        public Stage2Context build() {
            return new Stage2Context(this);
        }
    }
}
