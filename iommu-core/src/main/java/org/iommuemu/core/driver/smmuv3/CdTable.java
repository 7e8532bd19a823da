package org.iommuemu.core.driver.smmuv3;

import java.util.List;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.L1CdDescriptor;
import org.iommuemu.core.smmuv3.Ste;

/**
 * One stream's context-descriptor table ({@code spec/SMMUV3.md} §6), in one of the layouts Linux's
 * {@code arm_smmu_alloc_cd_tables} chooses:
 * <ul>
 *   <li><b>single</b>: one CD, S1CDMax 0 (a stream without substreams);</li>
 *   <li><b>linear</b>: 2^S1CDMax CDs in one block, when they fit in one leaf table or the SMMU has no
 *       2-level CD tables;</li>
 *   <li><b>2-level</b>: an L1 table of 2^(S1CDMax − leafLg2) descriptors and leaf tables of 2^leafLg2 CDs
 *       (64 KB: S1Fmt 64K_L2, Linux's; or 4 KB: S1Fmt 4K_L2), each leaf allocated when a CD in its range is
 *       first written, zero-filled (every CD invalid) before its L1 descriptor is published.</li>
 * </ul>
 *
 * <p><b>Updates</b> ({@link #write}, {@link #clear}) follow the order Linux's {@code arm_smmu_write_cd_entry} keeps
 * for a CD the SMMU may be using: a valid CD is first made invalid (word 0 with V=0, CFGI_CD, CMD_SYNC), then
 * words 1–7 are written and word 0 last with V=1, then CFGI_CD and CMD_SYNC. A CD written into a leaf created
 * for it is invalidated with Leaf=0, so a cached L1 descriptor goes too. {@link #fill} writes a CD into a table
 * the SMMU has not been pointed at yet: no invalidation.
 *
 * <p>Not thread-safe: its owner ({@link SmmuV3Domains}) serialises attach and detach.
 */
final class CdTable {
    /** log2 of the CDs in a 64 KB leaf (Linux's CTXDESC_SPLIT). */
    static final int LEAF_64K_LG2 = 10;
    /** log2 of the CDs in a 4 KB leaf. */
    static final int LEAF_4K_LG2 = 6;

    private final PhysicalMemory memory;
    private final PageAllocator allocator;
    private final String tag;
    private final int s1CdMax;
    private final int s1Fmt;
    private final int leafLg2;
    private final long base;
    /** Leaf tables by L1 index (2-level only), 0 until allocated. */
    private final long[] leaves;
    private final long[] words = new long[Cd.DWORDS];

    private CdTable(PhysicalMemory memory, PageAllocator allocator, String tag, int s1CdMax, int s1Fmt, int leafLg2) {
        this.memory = memory;
        this.allocator = allocator;
        this.tag = tag;
        this.s1CdMax = s1CdMax;
        this.s1Fmt = s1Fmt;
        this.leafLg2 = leafLg2;
        if (s1Fmt == Ste.S1FMT_LINEAR) {
            this.base = allocator.allocBytes((long) Cd.SIZE << s1CdMax, tag);
            this.leaves = null;
        } else {
            int l1Lg2 = s1CdMax - leafLg2;
            this.base = allocator.allocBytes((long) L1CdDescriptor.SIZE << l1Lg2, tag);
            this.leaves = new long[1 << l1Lg2];
        }
    }

    /** A one-CD table (S1CDMax 0) from {@code allocator}. */
    static CdTable single(PhysicalMemory memory, PageAllocator allocator, String tag) {
        return new CdTable(memory, allocator, tag, 0, Ste.S1FMT_LINEAR, 0);
    }

    /**
     * A table for SubstreamIDs of {@code ssidBits} bits (1..20): linear when 2^ssidBits CDs fit in one leaf of
     * 2^{@code leafLg2} CDs or {@code twoLevel} is false, else 2-level with leaves of that size.
     */
    static CdTable forSubstreams(PhysicalMemory memory, PageAllocator allocator, String tag, int ssidBits,
            boolean twoLevel, int leafLg2) {
        if (ssidBits < 1 || ssidBits > 20) {
            throw new IllegalArgumentException("ssidBits must be 1..20, was " + ssidBits);
        }
        if (leafLg2 != LEAF_4K_LG2 && leafLg2 != LEAF_64K_LG2) {
            throw new IllegalArgumentException("leafLg2 must be 6 or 10, was " + leafLg2);
        }
        if (!twoLevel || ssidBits <= leafLg2) {
            return new CdTable(memory, allocator, tag, ssidBits, Ste.S1FMT_LINEAR, 0);
        }
        int fmt = leafLg2 == LEAF_64K_LG2 ? Ste.S1FMT_64K_L2 : Ste.S1FMT_4K_L2;
        return new CdTable(memory, allocator, tag, ssidBits, fmt, leafLg2);
    }

    /** STE.S1ContextPtr: the linear table or the L1 table. */
    long pointer() {
        return base;
    }

    /** STE.S1Fmt. */
    int s1Fmt() {
        return s1Fmt;
    }

    /** STE.S1CDMax: log2 of the CDs the table holds (0: one CD, no substreams). */
    int s1CdMax() {
        return s1CdMax;
    }

    /** Whether SubstreamID {@code ssid} has a CD slot here. */
    boolean covers(int ssid) {
        return ssid >= 0 && (ssid >>> s1CdMax) == 0;
    }

    /** Leaf tables allocated (0 for a linear table). */
    int leavesAllocated() {
        int n = 0;
        if (leaves != null) {
            for (long l : leaves) {
                n += l != 0 ? 1 : 0;
            }
        }
        return n;
    }

    /** Writes {@code cd} at {@code ssid} of a table the SMMU does not use yet (no invalidation needed). */
    void fill(int ssid, Cd cd) {
        long at = address(ssid, true);
        cd.encode(words);
        writeWords(at, 1, "writing CD " + ssid);
        write64(at, words[0]);
    }

    /**
     * Installs {@code cd} (valid) at {@code ssid} of stream {@code streamId}'s table, which the SMMU may be using,
     * in the safe order of the class comment.
     */
    void write(CommandQueue q, int streamId, int ssid, Cd cd) {
        int leavesBefore = leavesAllocated();
        long at = address(ssid, true);
        boolean newLeaf = leavesAllocated() != leavesBefore;
        long old = read64(at);
        if (Cd.V.isSet(old)) {
            write64(at, Cd.V.put(old, false));
            invalidate(q, streamId, ssid, true);
        }
        cd.encode(words);
        writeWords(at, 1, "writing CD " + ssid + " of stream " + Integer.toUnsignedString(streamId));
        write64(at, words[0]);
        invalidate(q, streamId, ssid, !newLeaf);
    }

    /**
     * Makes the CD at {@code ssid} invalid (word 0 cleared, CFGI_CD, CMD_SYNC), then clears the rest of it. Does
     * nothing when it is not valid.
     */
    void clear(CommandQueue q, int streamId, int ssid) {
        long at = address(ssid, false);
        if (at == 0 || !Cd.V.isSet(read64(at))) {
            return;
        }
        write64(at, 0);
        invalidate(q, streamId, ssid, true);
        for (int i = 1; i < Cd.DWORDS; i++) {
            words[i] = 0;
        }
        writeWords(at, 1, "clearing CD " + ssid);
    }

    /** Whether the CD at {@code ssid} is valid in memory. */
    boolean isValid(int ssid) {
        long at = address(ssid, false);
        return at != 0 && Cd.V.isSet(read64(at));
    }

    /** Returns every block of the table to its allocator. The SMMU must no longer reach it. */
    void free() {
        if (leaves != null) {
            for (int i = 0; i < leaves.length; i++) {
                if (leaves[i] != 0) {
                    allocator.free(leaves[i]);
                    leaves[i] = 0;
                }
            }
        }
        allocator.free(base);
    }

    private static void invalidate(CommandQueue q, int streamId, int ssid, boolean leaf) {
        q.submit(List.of(Command.cfgiCd(streamId, ssid, leaf)));
    }

    /** The address of the CD of {@code ssid}; in a 2-level table allocates its leaf when asked to, else 0. */
    private long address(int ssid, boolean allocate) {
        if (!covers(ssid)) {
            throw new SmmuV3DriverException(SmmuV3DriverException.Kind.BAD_ARGUMENT, "SubstreamID "
                    + Integer.toUnsignedString(ssid) + " is outside the CD table (S1CDMax " + s1CdMax + ")");
        }
        if (leaves == null) {
            return base + (long) ssid * Cd.SIZE;
        }
        int l1 = ssid >>> leafLg2;
        long leaf = leaves[l1];
        if (leaf == 0) {
            if (!allocate) {
                return 0;
            }
            leaf = allocator.allocBytes((long) Cd.SIZE << leafLg2, tag); // zero-filled: every CD invalid
            write64(base + (long) l1 * L1CdDescriptor.SIZE, L1CdDescriptor.of(leaf).encode());
            leaves[l1] = leaf;
        }
        return leaf + (long) (ssid & ((1 << leafLg2) - 1)) * Cd.SIZE;
    }

    private void writeWords(long at, int from, String what) {
        try {
            memory.write64s(at + 8L * from, words, from, Cd.DWORDS - from);
        } catch (MemoryAccessException e) {
            throw failure(what, at, e);
        }
    }

    private long read64(long at) {
        try {
            return memory.read64(at);
        } catch (MemoryAccessException e) {
            throw failure("reading a CD", at, e);
        }
    }

    private void write64(long at, long value) {
        try {
            memory.write64(at, value);
        } catch (MemoryAccessException e) {
            throw failure("writing the CD table", at, e);
        }
    }

    private static SmmuV3DriverException failure(String what, long at, MemoryAccessException e) {
        return new SmmuV3DriverException(SmmuV3DriverException.Kind.MEMORY,
                what + " at " + Bits.hex(at) + " failed: " + e.getMessage(), e);
    }

    @Override
    public String toString() {
        return "CdTable[" + (s1Fmt == Ste.S1FMT_LINEAR ? "linear" : "2-level, 2^" + leafLg2 + " CDs per leaf")
                + ", S1CDMax " + s1CdMax + " at " + Bits.hex(base) + "]";
    }
}
