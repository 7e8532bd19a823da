package org.iommuemu.device.xlate;

import org.iommuemu.core.bits.Bits;

/**
 * One IOTLB entry: a mutable holder the caller owns and reuses. The walker fills one and passes it to
 * {@link Iotlb#insert}; {@link Iotlb#lookup} copies the entry it finds into one. Nothing here allocates.
 *
 * <p>Fields:
 * <ul>
 *   <li>{@code vmid}: the VMID (SMMUv3 STE.S2VMID) or VT-d domain id; -1 when the context has none.
 *   <li>{@code asid}: the ASID (SMMUv3 CD.ASID) or VT-d PASID; -1 when the context has none (stage 2 only,
 *       VT-d legacy and second-stage-only contexts).
 *   <li>{@code global}: the leaf was not ASID-specific (Arm stage 1 nG=0, VT-d first-stage G=1): the entry
 *       serves every ASID of its VMID, and is not removed by ASID-wide invalidation.
 *   <li>{@code va}, {@code sizeLg2}: the input range {@code [va, va + 2^sizeLg2)}; {@code va} is aligned
 *       down to the size. Sizes are 2^12..2^63 (a 4 KB page, a 64 KB contiguous run, a 2 MB or 1 GB block...).
 *   <li>{@code level}: the table level of the leaf, counted as in {@code iommu-core}'s page tables: 0 is the
 *       level of the smallest pages (Arm L3), so Arm level = 3 - level. Range invalidations with a level hint
 *       (Arm TTL) match it.
 *   <li>{@code oa}: the output address of {@code va} (aligned like it).
 *   <li>{@code ipa}: for {@link Stage#NESTED} entries, the intermediate address stage 1 produced for
 *       {@code va} (aligned like it), so that a stage-2 invalidation by IPA can find the entry; for
 *       {@link Stage#S2} entries it equals {@code va}; unused (0) for {@link Stage#S1}.
 *   <li>{@code perms}: {@link Perm} bits.
 *   <li>{@code stage}: {@link Stage#S1}, {@link Stage#S2} or {@link Stage#NESTED}.
 * </ul>
 */
public final class IotlbEntry {
    private int vmid;
    private int asid;
    private boolean global;
    private long va;
    private int sizeLg2;
    private int level;
    private long oa;
    private long ipa;
    private int perms;
    private int stage;

    /**
     * Sets every field; {@code va}, {@code oa} and {@code ipa} are aligned down to {@code 2^sizeLg2}.
     * Validity is checked by {@link Iotlb#insert}, not here, so a lookup can reuse the holder freely.
     *
     * @return this holder
     */
    public IotlbEntry set(int vmid, int asid, boolean global, long va, int sizeLg2, int level, long oa, long ipa,
            int perms, int stage) {
        long alignMask = sizeLg2 >= 0 && sizeLg2 < 64 ? -(1L << sizeLg2) : -1L;
        this.vmid = vmid;
        this.asid = asid;
        this.global = global;
        this.va = va & alignMask;
        this.sizeLg2 = sizeLg2;
        this.level = level;
        this.oa = oa & alignMask;
        this.ipa = ipa & alignMask;
        this.perms = perms;
        this.stage = stage;
        return this;
    }

    /** {@link #set} for values already aligned (the cache's own copies): no masking. */
    void setAligned(int vmid, int asid, boolean global, long va, int sizeLg2, int level, long oa, long ipa,
            int perms, int stage) {
        this.vmid = vmid;
        this.asid = asid;
        this.global = global;
        this.va = va;
        this.sizeLg2 = sizeLg2;
        this.level = level;
        this.oa = oa;
        this.ipa = ipa;
        this.perms = perms;
        this.stage = stage;
    }

    public int vmid() {
        return vmid;
    }

    public int asid() {
        return asid;
    }

    public boolean global() {
        return global;
    }

    public long va() {
        return va;
    }

    public int sizeLg2() {
        return sizeLg2;
    }

    public int level() {
        return level;
    }

    public long oa() {
        return oa;
    }

    public long ipa() {
        return ipa;
    }

    public int perms() {
        return perms;
    }

    public int stage() {
        return stage;
    }

    /** The last input address the entry covers (inclusive). */
    public long vaLast() {
        return va | lowMask();
    }

    /** Whether {@code address} lies in the entry's input range. */
    public boolean covers(long address) {
        return (address & ~lowMask()) == va;
    }

    /** The output address of an input address the entry covers. */
    public long outputAddress(long address) {
        return oa | (address & lowMask());
    }

    /** Bytes from {@code address} (which the entry covers) to the end of the entry. */
    public long contiguousBytes(long address) {
        return (lowMask() - (address & lowMask())) + 1;
    }

    private long lowMask() {
        return sizeLg2 >= 63 ? Long.MAX_VALUE : (1L << sizeLg2) - 1;
    }

    @Override
    public String toString() {
        return "IotlbEntry[vmid=" + vmid + " asid=" + asid + (global ? " global" : "") + " va=" + Bits.hex(va)
                + " size=2^" + sizeLg2 + " level=" + level + " oa=" + Bits.hex(oa)
                + (stage == Stage.NESTED ? " ipa=" + Bits.hex(ipa) : "") + " " + Perm.toString(perms) + " "
                + Stage.toString(stage) + "]";
    }
}
