package org.iommuemu.core.driver.smmuv3;

import java.util.BitSet;

/**
 * Hands out the ASIDs or VMIDs of one SMMU: the smallest free id in {@code [first, limit)}, as Linux's
 * arm-smmu-v3 allocates them (ASIDs and VMIDs from 1: ASID 0 and VMID 0 stay reserved, VMID 0 tagging the
 * stage-1-only contexts). Thread-safe.
 */
public final class IdAllocator {
    private final String what;
    private final int first;
    private final int limit;
    private final BitSet used = new BitSet();
    private int inUse;

    /**
     * @param what  "ASID" or "VMID", for messages
     * @param first the smallest id handed out
     * @param bits  the id width the SMMU implements (8 or 16): ids below {@code 2^bits}
     */
    public IdAllocator(String what, int first, int bits) {
        if (bits < 1 || bits > 16) {
            throw new IllegalArgumentException(what + " width must be 1..16 bits, was " + bits);
        }
        if (first < 0 || first >= 1 << bits) {
            throw new IllegalArgumentException(what + " first id " + first + " is outside 0.." + ((1 << bits) - 1));
        }
        this.what = what;
        this.first = first;
        this.limit = 1 << bits;
    }

    /**
     * The smallest free id, now in use.
     *
     * @throws IllegalStateException naming the kind and the range when every id is taken
     */
    public synchronized int allocate() {
        int id = used.nextClearBit(first);
        if (id >= limit) {
            throw new IllegalStateException("no free " + what + ": all " + (limit - first) + " ids from " + first
                    + " to " + (limit - 1) + " are in use");
        }
        used.set(id);
        inUse++;
        return id;
    }

    /** Gives {@code id} back. @throws IllegalArgumentException if it was not allocated */
    public synchronized void free(int id) {
        if (id < first || id >= limit || !used.get(id)) {
            throw new IllegalArgumentException(what + " " + id + " is not allocated");
        }
        used.clear(id);
        inUse--;
    }

    public synchronized int inUse() {
        return inUse;
    }

    /** How many ids can be in use at once. */
    public int capacity() {
        return limit - first;
    }

    @Override
    public synchronized String toString() {
        return what + "s " + first + ".." + (limit - 1) + ", " + inUse + " in use";
    }
}
