package org.iommuemu.core.smmuv3;

/**
 * The CMDQ_BASE, EVENTQ_BASE and PRIQ_BASE registers ({@code spec/SMMUV3.md} §4): LOG2SIZE[4:0],
 * ADDR[51:5], and the allocation hint at bit 62 (RA for the command queue, WA for the others).
 *
 * <p>ADDR is [51:5] as in Linux and the architecture; QEMU masks [51:6] (§9.3). The effective size is
 * LOG2SIZE capped to the queue's maximum in IDR1 ({@link #effectiveLog2Size}), as QEMU does; a queue is
 * expected to be aligned to its size, which this class does not check.
 *
 * @param address      ADDR, in place (32-byte aligned, below 2^52)
 * @param log2Size     LOG2SIZE: the queue holds 2^log2Size entries
 * @param allocateHint RA / WA, bit 62
 */
public record QueueBase(long address, int log2Size, boolean allocateHint) {
    public static final BitField LOG2SIZE = BitField.of("LOG2SIZE", 0, 4, 0);
    public static final BitField ADDR = BitField.of("ADDR", 0, 51, 5);
    public static final BitField ALLOCATE_HINT = BitField.flag("RA/WA", 0, 62);

    /** Rejects values that do not fit their fields. */
    public QueueBase {
        ADDR.checkAddress(address);
        LOG2SIZE.checkValue(log2Size);
    }

    /** Decodes a register value. */
    public static QueueBase decode(long reg) {
        return new QueueBase(address(reg), log2Size(reg), allocateHint(reg));
    }

    /** The register value. */
    public long encode() {
        return ALLOCATE_HINT.put(LOG2SIZE.put(ADDR.putAddress(0, address), log2Size), allocateHint);
    }

    /** ADDR of a register value, in place. */
    public static long address(long reg) {
        return ADDR.address(reg);
    }

    /** LOG2SIZE of a register value, as written. */
    public static int log2Size(long reg) {
        return LOG2SIZE.getInt(reg);
    }

    /** The RA / WA hint of a register value. */
    public static boolean allocateHint(long reg) {
        return ALLOCATE_HINT.isSet(reg);
    }

    /** LOG2SIZE capped to the queue's maximum (IDR1.CMDQS / EVENTQS / PRIQS). */
    public static int effectiveLog2Size(long reg, int maxLog2Size) {
        return Math.min(log2Size(reg), maxLog2Size);
    }

    /** The physical address of the entry a PROD/CONS pointer indexes. */
    public static long entryAddress(long reg, int log2Size, int ptr, int entrySize) {
        return address(reg) + QueuePointer.entryOffset(ptr, log2Size, entrySize);
    }
}
