package org.iommuemu.device.smmuv3.walk;

import java.util.Objects;
import org.iommuemu.core.bits.Bits;

/**
 * The stage-1 translation regime of one context descriptor, as the walker needs it (spec SMMUV3.md §6;
 * PGTABLE.md §1.5): two table halves (TTB0 for addresses with VA[55] = 0, TTB1 for VA[55] = 1), the output
 * size and the hardware-update and permission controls. Decoding the CD into this is the caller's job.
 *
 * <p>Immutable, with value equality over its inputs. Building one computes the walk geometry of each half
 * (start level, index bits, address masks) and validates the configuration once: {@link #validate} returns
 * the reason the CD is unusable (the device reports C_BAD_CD), and a walk of an invalid context returns
 * {@link WalkResult.Outcome#BAD_CONFIG} instead of walking. Values are not otherwise range-checked: nothing a
 * guest writes into a CD makes construction throw.
 *
 * <p>Field meanings (CD dword and bits in SMMUV3.md §6):
 * <ul>
 * <li>{@code ttb0}, {@code ttb1}: per half EPDx (disabled), TxSZ, granule (TGx decoded to log2 bytes), TTBx and
 *     HADx. A disabled half's other fields are ignored.
 * <li>{@code oasBits}: the effective IPS in bits, already capped by the SMMU's OAS (and, for nested
 *     translation, by its IAS). 52 is honoured only with the 64K granule; the 4K and 16K granules cap at 48.
 * <li>{@code affd}: an AF = 0 leaf does not fault (the AF is treated as set) when hardware does not update it.
 * <li>{@code ha}, {@code hd}: hardware updates of the access flag and of the dirty state (DBM). HD takes
 *     effect only together with HA (the model's reading; unverified).
 * <li>{@code wxn}: writable memory is execute-never.
 * <li>{@code asid}: carried for the IOTLB tag; not used by the walk.
 * <li>{@code tbi0}, {@code tbi1}: top byte ignore: VA[63:56] take no part in the range check of that half.
 * <li>{@code mair}: the MAIR image (CD dword 3); the walker reports the attribute byte AttrIndx selects.
 * </ul>
 */
public final class Stage1Context {

    /**
     * One translation-table half of a CD (TTB0 or TTB1).
     *
     * @param enabled              EPDx = 0: walks through this half are allowed
     * @param tsz                  TxSZ: the half covers {@code 64 - tsz} bits of input address; 16..39
     * @param granuleLg2           translation granule: 12 (4K), 14 (16K) or 16 (64K)
     * @param ttb                  TTBx: the first-level table, aligned to its size (at least 64 bytes)
     * @param hierarchicalDisabled HADx: APTable, PXNTable and UXNTable in table descriptors are ignored
     */
    public record TableHalf(boolean enabled, int tsz, int granuleLg2, long ttb, boolean hierarchicalDisabled) {
        /** A half with EPDx = 1: every address it covers is a translation fault. */
        public static final TableHalf DISABLED = new TableHalf(false, 64, 12, 0, false);

        /** An enabled half with hierarchical attributes honoured. */
        public static TableHalf of(int tsz, int granuleLg2, long ttb) {
            return new TableHalf(true, tsz, granuleLg2, ttb, false);
        }

        /** This half with HADx set or clear. */
        public TableHalf withHierarchicalDisabled(boolean had) {
            return new TableHalf(enabled, tsz, granuleLg2, ttb, had);
        }
    }

    /** Smallest TxSZ: 48-bit VAs (no 52-bit VA, SMMU_IDR5.VAX = 0). */
    public static final int MIN_TSZ = 16;
    /** Largest TxSZ: 25-bit VAs (no small translation tables, SMMU_IDR3.STT = 0). */
    public static final int MAX_TSZ = 39;

    private final TableHalf ttb0;
    private final TableHalf ttb1;
    private final int oasBits;
    private final boolean affd;
    private final boolean ha;
    private final boolean hd;
    private final boolean wxn;
    private final int asid;
    private final boolean tbi0;
    private final boolean tbi1;
    private final long mair;

    final WalkGeometry half0;
    final WalkGeometry half1;
    /** HD and HA: dirty state is managed by hardware. */
    final boolean hdEffective;
    final String invalidReason;

    private Stage1Context(Builder b) {
        this.ttb0 = Objects.requireNonNull(b.ttb0, "ttb0");
        this.ttb1 = Objects.requireNonNull(b.ttb1, "ttb1");
        this.oasBits = b.oasBits;
        this.affd = b.affd;
        this.ha = b.ha;
        this.hd = b.hd;
        this.wxn = b.wxn;
        this.asid = b.asid;
        this.tbi0 = b.tbi0;
        this.tbi1 = b.tbi1;
        this.mair = b.mair;
        this.hdEffective = b.hd && b.ha;
        String reason = Vmsa.oasValid(oasBits) ? null : "IPS of " + oasBits + " bits is not 32, 36, 40, 42, 44, 48 or 52";
        String r0 = checkHalf("TTB0", ttb0);
        String r1 = checkHalf("TTB1", ttb1);
        reason = reason != null ? reason : r0 != null ? r0 : r1;
        this.invalidReason = reason;
        this.half0 = reason == null ? geometry(ttb0, oasBits) : WalkGeometry.NONE;
        this.half1 = reason == null ? geometry(ttb1, oasBits) : WalkGeometry.NONE;
    }

    /** A builder with both halves disabled, a 48-bit IPS and every control clear. */
    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this context's values. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.ttb0 = ttb0;
        b.ttb1 = ttb1;
        b.oasBits = oasBits;
        b.affd = affd;
        b.ha = ha;
        b.hd = hd;
        b.wxn = wxn;
        b.asid = asid;
        b.tbi0 = tbi0;
        b.tbi1 = tbi1;
        b.mair = mair;
        return b;
    }

    /**
     * Why the CD's translation controls are unusable (C_BAD_CD), or null when they are valid: an IPS that names
     * no output size; for each enabled half, a granule other than 4K/16K/64K, a TxSZ outside
     * {@value #MIN_TSZ}..{@value #MAX_TSZ}, or a TTB not aligned to its first-level table (at least 64 bytes).
     * A TTB beyond the output size is not a configuration error: the walk reports F_ADDR_SIZE (as the Arm
     * architecture does for TTBRn; QEMU rejects the CD instead).
     */
    public static String validate(Stage1Context context) {
        return context.invalidReason;
    }

    private static String checkHalf(String name, TableHalf h) {
        if (!h.enabled()) {
            return null;
        }
        if (!Vmsa.granuleValid(h.granuleLg2())) {
            return name + ": granule 2^" + h.granuleLg2() + " is not 4K, 16K or 64K";
        }
        if (h.tsz() < MIN_TSZ || h.tsz() > MAX_TSZ) {
            return name + ": T" + name.charAt(3) + "SZ " + h.tsz() + " is outside " + MIN_TSZ + ".." + MAX_TSZ;
        }
        WalkGeometry g = geometry(h, 48);
        if (!Bits.isAligned(h.ttb(), g.topTableAlignLg2())) {
            return name + " " + Bits.hex(h.ttb()) + " is not aligned to its " + (1L << g.topTableAlignLg2())
                    + "-byte level-" + g.startLevel + " table";
        }
        return null;
    }

    /** Stage 1 (§1.5): {@code levels = ceil((IA - G) / (G - 3))}, start level {@code 4 - levels}. */
    private static WalkGeometry geometry(TableHalf h, int oasBits) {
        if (!h.enabled()) {
            return WalkGeometry.NONE;
        }
        int g = h.granuleLg2();
        int stride = g - 3;
        int ia = 64 - h.tsz();
        int levels = (ia - g + stride - 1) / stride;
        return new WalkGeometry(true, ia, g, 4 - levels, h.ttb(), oasBits, oasBits == 52, h.hierarchicalDisabled());
    }

    // ---------------------------------------------------------------- CD field decoding helpers (SMMUV3.md §6)

    /** CD.TG0 to log2 of the granule: 0 → 12 (4K), 1 → 16 (64K), 2 → 14 (16K); 3 (reserved) → -1. */
    public static int granuleLg2FromTg0(int tg0) {
        return switch (tg0) {
            case 0 -> 12;
            case 1 -> 16;
            case 2 -> 14;
            default -> -1;
        };
    }

    /** CD.TG1 to log2 of the granule: 1 → 14 (16K), 2 → 12 (4K), 3 → 16 (64K); 0 (reserved) → -1. */
    public static int granuleLg2FromTg1(int tg1) {
        return switch (tg1) {
            case 1 -> 14;
            case 2 -> 12;
            case 3 -> 16;
            default -> -1;
        };
    }

    /** The IPS / S2PS / OAS encoding to bits: 0..6 → 32, 36, 40, 42, 44, 48, 52; anything else → -1. */
    public static int oasBitsFromEncoding(int ps) {
        return switch (ps) {
            case 0 -> 32;
            case 1 -> 36;
            case 2 -> 40;
            case 3 -> 42;
            case 4 -> 44;
            case 5 -> 48;
            case 6 -> 52;
            default -> -1;
        };
    }

    // ---------------------------------------------------------------- accessors

    public TableHalf ttb0() {
        return ttb0;
    }

    public TableHalf ttb1() {
        return ttb1;
    }

    public int oasBits() {
        return oasBits;
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

    public boolean wxn() {
        return wxn;
    }

    public int asid() {
        return asid;
    }

    public boolean tbi0() {
        return tbi0;
    }

    public boolean tbi1() {
        return tbi1;
    }

    public long mair() {
        return mair;
    }

    /** Arm level of the first lookup in half 0 (TTB0) or 1 (TTB1); meaningful for a valid, enabled half. */
    public int startLevel(int half) {
        return (half == 0 ? half0 : half1).startLevel;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Stage1Context c && ttb0.equals(c.ttb0) && ttb1.equals(c.ttb1) && oasBits == c.oasBits
                && affd == c.affd && ha == c.ha && hd == c.hd && wxn == c.wxn && asid == c.asid && tbi0 == c.tbi0
                && tbi1 == c.tbi1 && mair == c.mair;
    }

    @Override
    public int hashCode() {
        return Objects.hash(ttb0, ttb1, oasBits, affd, ha, hd, wxn, asid, tbi0, tbi1, mair);
    }

    @Override
    public String toString() {
        return "Stage1Context[ttb0=" + half(ttb0) + ", ttb1=" + half(ttb1) + ", ips=" + oasBits
                + (affd ? ", AFFD" : "") + (ha ? ", HA" : "") + (hd ? ", HD" : "") + (wxn ? ", WXN" : "")
                + ", asid=" + asid + (tbi0 ? ", TBI0" : "") + (tbi1 ? ", TBI1" : "") + ", mair=" + Bits.hex(mair)
                + (invalidReason != null ? ", INVALID: " + invalidReason : "") + "]";
    }

    private static String half(TableHalf h) {
        if (!h.enabled()) {
            return "disabled";
        }
        return "{tsz " + h.tsz() + ", " + Vmsa.granuleName(h.granuleLg2()) + ", " + Bits.hex(h.ttb())
                + (h.hierarchicalDisabled() ? ", HAD" : "") + "}";
    }

    /** Collects the fields of a {@link Stage1Context}. Not thread-safe. */
    public static final class Builder {
        private TableHalf ttb0 = TableHalf.DISABLED;
        private TableHalf ttb1 = TableHalf.DISABLED;
        private int oasBits = 48;
        private boolean affd;
        private boolean ha;
        private boolean hd;
        private boolean wxn;
        private int asid;
        private boolean tbi0;
        private boolean tbi1;
        private long mair;

        private Builder() {}

        public Builder ttb0(TableHalf half) {
            this.ttb0 = half;
            return this;
        }

        public Builder ttb1(TableHalf half) {
            this.ttb1 = half;
            return this;
        }

        public Builder oasBits(int bits) {
            this.oasBits = bits;
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

        public Builder wxn(boolean on) {
            this.wxn = on;
            return this;
        }

        public Builder asid(int asid) {
            this.asid = asid;
            return this;
        }

        public Builder tbi0(boolean on) {
            this.tbi0 = on;
            return this;
        }

        public Builder tbi1(boolean on) {
            this.tbi1 = on;
            return this;
        }

        public Builder mair(long mair) {
            this.mair = mair;
            return this;
        }

        public Stage1Context build() {
            return new Stage1Context(this);
        }
    }
}
