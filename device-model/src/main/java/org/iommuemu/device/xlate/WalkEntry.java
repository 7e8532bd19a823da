package org.iommuemu.device.xlate;

import org.iommuemu.core.bits.Bits;

/**
 * One walk-cache entry: a mutable holder the caller owns and reuses, filled by {@link WalkCache#lookup} and
 * {@link WalkCache#lookupDeepest}. Nothing here allocates.
 *
 * <p>The entry is the table descriptor read at {@code level} of a walk for the input region
 * {@code [va, va + 2^spanLg2)}, i.e. the region the next-level table it points to translates (with a 4 KB
 * granule: a descriptor at level 1, Arm L2, spans 2 MB). A walker that finds one resumes at level
 * {@code level - 1} from the table the descriptor points to.
 */
public final class WalkEntry {
    private int vmid;
    private int asid;
    private int stage;
    private int level;
    private int spanLg2;
    private long va;
    private long descriptor;

    void set(int vmid, int asid, int stage, int level, int spanLg2, long va, long descriptor) {
        this.vmid = vmid;
        this.asid = asid;
        this.stage = stage;
        this.level = level;
        this.spanLg2 = spanLg2;
        this.va = va;
        this.descriptor = descriptor;
    }

    public int vmid() {
        return vmid;
    }

    public int asid() {
        return asid;
    }

    /** {@link Stage#S1} or {@link Stage#S2}. */
    public int stage() {
        return stage;
    }

    /** The level of the table that holds the descriptor (0 is the level of the smallest pages). */
    public int level() {
        return level;
    }

    /** log2 of the input region the descriptor's next-level table translates. */
    public int spanLg2() {
        return spanLg2;
    }

    /** The start of that region (aligned to {@code 2^spanLg2}); an IPA for stage 2 entries. */
    public long va() {
        return va;
    }

    /** The cached table descriptor, as read from memory. */
    public long descriptor() {
        return descriptor;
    }

    @Override
    public String toString() {
        return "WalkEntry[vmid=" + vmid + " asid=" + asid + " " + Stage.toString(stage) + " level=" + level
                + " va=" + Bits.hex(va) + " span=2^" + spanLg2 + " desc=" + Bits.hex(descriptor) + "]";
    }
}
