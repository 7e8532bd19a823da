package org.iommuemu.core.driver.smmuv3;

import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;

/**
 * Turns "invalidate {@code [iova, iova + size)} of this context" into SMMUv3 TLBI commands, the way Linux's
 * arm-smmu-v3 driver does, and hands their two words to a {@link Sink} without allocating.
 *
 * <p><b>Range mode</b> (the SMMU advertises IDR3.RIL): TG names the domain's smallest page size, and the range is
 * covered by as few commands as the NUM/SCALE encoding allows. Each command takes the lowest set bit of the
 * remaining page count as its SCALE and the next five bits of the count as NUM + 1, so a range of {@code n} pages
 * needs at most one command per five significant bits of {@code n} (4 MiB of 4K pages: one command). For leaf
 * invalidations TTL names the level of the gathered page size (4K pages of a 4K table: level 3; 2M blocks:
 * level 2); otherwise TTL is 0 (any level).
 *
 * <p><b>Per-granule mode</b> (no RIL): one single-address command (TG = 0) per gathered page. When that would
 * take more than {@link #contextThreshold()} commands, one context-wide command replaces them all: TLBI_NH_ASID
 * for stage 1, TLBI_S12_VMALL for stage 2 (Linux does the same beyond CMDQ_MAX_TLBI_OPS). Range mode never
 * needs the fallback.
 *
 * <p>Stage 1 uses TLBI_NH_VA (VMID and ASID tagged), stage 2 TLBI_S2_IPA (VMID tagged). Immutable and
 * thread-safe.
 */
public final class TlbiPlanner {
    /** Receives one command at a time: its two little-endian words, as the command queue stores them. */
    @FunctionalInterface
    public interface Sink {
        void command(long dw0, long dw1);
    }

    /** Linux's CMDQ_MAX_TLBI_OPS for 4 KB CPU pages: beyond this many per-page commands, invalidate the context. */
    public static final int DEFAULT_CONTEXT_THRESHOLD = 512;

    private static final int MAX_NUM = 31; // NUM is five bits: NUM + 1 = 1..32 chunks of 2^SCALE pages

    private final boolean rangeInvalidation;
    private final int contextThreshold;

    /**
     * @param rangeInvalidation the SMMU advertises IDR3.RIL
     * @param contextThreshold  in per-granule mode, the most per-page commands before one context-wide
     *                          command is used instead (at least 1)
     */
    public TlbiPlanner(boolean rangeInvalidation, int contextThreshold) {
        if (contextThreshold < 1) {
            throw new IllegalArgumentException("contextThreshold must be at least 1, was " + contextThreshold);
        }
        this.rangeInvalidation = rangeInvalidation;
        this.contextThreshold = contextThreshold;
    }

    public boolean rangeInvalidation() {
        return rangeInvalidation;
    }

    public int contextThreshold() {
        return contextThreshold;
    }

    /**
     * Stage-1 invalidation of {@code [iova, iova + size)} for ASID {@code asid} of VMID {@code vmid}.
     *
     * @param pageLg2 log2 of the page size the range was gathered at (the leaf size the unmap removed)
     * @param tgLg2   log2 of the domain's smallest page size: 12, 14 or 16 (the table granule)
     * @param leaf    only leaf entries changed (no table was freed)
     * @return the number of commands given to {@code sink}
     */
    public int stage1(int vmid, int asid, long iova, long size, int pageLg2, int tgLg2, boolean leaf, Sink sink) {
        return plan(CommandOp.TLBI_NH_VA, vmid, asid, iova, size, pageLg2, tgLg2, leaf, sink);
    }

    /** Stage-2 invalidation of IPAs {@code [ipa, ipa + size)} of VMID {@code vmid}; see {@link #stage1}. */
    public int stage2(int vmid, long ipa, long size, int pageLg2, int tgLg2, boolean leaf, Sink sink) {
        return plan(CommandOp.TLBI_S2_IPA, vmid, 0, ipa, size, pageLg2, tgLg2, leaf, sink);
    }

    private int plan(int opcode, int vmid, int asid, long start, long size, int pageLg2, int tgLg2, boolean leaf,
            Sink sink) {
        if (tgLg2 != 12 && tgLg2 != 14 && tgLg2 != 16) {
            throw new IllegalArgumentException("tgLg2 must be 12, 14 or 16 (a translation granule), was " + tgLg2);
        }
        if (pageLg2 < tgLg2 || pageLg2 > 63) {
            throw new IllegalArgumentException("pageLg2 " + pageLg2 + " is below the granule 2^" + tgLg2);
        }
        if (size <= 0) {
            throw new IllegalArgumentException("size must be positive, was " + size);
        }
        long pageMask = (1L << pageLg2) - 1;
        if ((start & pageMask) != 0 || (size & pageMask) != 0) {
            throw new IllegalArgumentException("range 0x" + Long.toHexString(start) + "+0x" + Long.toHexString(size)
                    + " is not aligned to its page size 2^" + pageLg2);
        }
        boolean stage1 = opcode == CommandOp.TLBI_NH_VA;
        long base = Command.OPCODE.put(0, opcode);
        base = Command.VMID.put(base, vmid);
        if (stage1) {
            base = Command.ASID.put(base, asid);
        }
        long leafBit = Command.LEAF.put(0, leaf);
        if (!rangeInvalidation) {
            long pages = size >>> pageLg2;
            if (Long.compareUnsigned(pages, contextThreshold) > 0) {
                int wide = stage1 ? CommandOp.TLBI_NH_ASID : CommandOp.TLBI_S12_VMALL;
                long dw0 = Command.VMID.put(Command.OPCODE.put(0, wide), vmid);
                sink.command(stage1 ? Command.ASID.put(dw0, asid) : dw0, 0);
                return 1;
            }
            for (long i = 0; i < pages; i++) {
                sink.command(base, leafBit | address(stage1, start + (i << pageLg2)));
            }
            return (int) pages;
        }
        int tg = (tgLg2 - 10) / 2;
        // the level of a leaf of 2^pageLg2 bytes in a table of this granule: 3 for the granule itself
        int ttl = leaf ? 3 - (pageLg2 - tgLg2) / (tgLg2 - 3) : 0;
        long dw1Base = leafBit | Command.TG.put(0, tg) | Command.TTL.put(0, Math.max(ttl, 0));
        long pages = size >>> tgLg2;
        long at = start;
        int commands = 0;
        while (pages != 0) {
            int scale = Long.numberOfTrailingZeros(pages);
            long num = (pages >>> scale) & MAX_NUM; // >= 1: bit 0 of pages >>> scale is set
            long dw0 = Command.SCALE.put(Command.NUM.put(base, num - 1), scale);
            sink.command(dw0, dw1Base | address(stage1, at));
            at += num << (scale + tgLg2);
            pages -= num << scale;
            commands++;
        }
        return commands;
    }

    private static long address(boolean stage1, long address) {
        return stage1 ? Command.VA.putAddress(0, address) : Command.IPA.putAddress(0, address);
    }

    @Override
    public String toString() {
        return "TlbiPlanner[" + (rangeInvalidation ? "range" : "per-granule, context-wide beyond " + contextThreshold)
                + "]";
    }
}
