package org.iommuemu.core.smmuv3;

import org.iommuemu.core.bits.Bits;

/**
 * Arithmetic on the PROD and CONS registers of the SMMUv3 circular queues ({@code spec/SMMUV3.md} §4).
 *
 * <p>For a queue of 2^n entries (n = LOG2SIZE of the queue base), a pointer holds the index in bits
 * [n−1:0] and the wrap flag in bit n. The queue is empty when PROD and CONS are equal in both, full when the
 * indexes are equal and the wrap flags differ. Incrementing counts modulo 2^(n+1), so the wrap flag toggles
 * each time the index passes the end. Bits above n carry other fields: CMDQ_CONS.ERR[30:24] and the
 * OVFLG/OVACKFLG bit 31 of the event and PRI queues. Every method here looks at bits [n:0] only and
 * {@link #inc} leaves the bits above them as they were (QEMU keeps ERR when it advances CONS).
 *
 * <p>All methods are static and allocation-free. {@code log2Size} is 0..31.
 */
public final class QueuePointer {
    private QueuePointer() {}

    /** Bytes in a command-queue entry. */
    public static final int CMDQ_ENTRY_SIZE = 16;
    /** Bytes in an event-queue record. */
    public static final int EVENTQ_ENTRY_SIZE = 32;
    /** Bytes in a PRI-queue entry. */
    public static final int PRIQ_ENTRY_SIZE = 16;

    /** CMDQ_CONS.ERR, bits [30:24]: the CERROR of the command CONS points at. */
    public static final BitField CMDQ_CONS_ERR = BitField.of("ERR", 0, 30, 24);
    /** CERROR: no error. */
    public static final int CERROR_NONE = 0;
    /** CERROR: an illegal or unsupported command. */
    public static final int CERROR_ILL = 1;
    /** CERROR: an abort reading the command. */
    public static final int CERROR_ABT = 2;
    /** CERROR: an ATC invalidation timed out before a CMD_SYNC completed. */
    public static final int CERROR_ATC_INV_SYNC = 3;

    /** Bit 31 of EVENTQ_PROD / PRIQ_PROD (OVFLG) and of EVENTQ_CONS / PRIQ_CONS (OVACKFLG). */
    public static final int OVERFLOW_BIT = 31;
    /** The mask of {@link #OVERFLOW_BIT}. */
    public static final int OVERFLOW_FLAG = 1 << OVERFLOW_BIT;

    /** The number of entries of a queue of 2^log2Size entries. */
    public static long entries(int log2Size) {
        return 1L << log2Size;
    }

    /** The index bits [log2Size−1:0] of a pointer. */
    public static int index(int ptr, int log2Size) {
        return (int) (ptr & Bits.mask(0, log2Size));
    }

    /** The wrap flag, bit log2Size of a pointer. */
    public static boolean wrap(int ptr, int log2Size) {
        return Bits.bit(ptr, log2Size);
    }

    /** The index and wrap bits [log2Size:0] together. */
    public static int indexAndWrap(int ptr, int log2Size) {
        return (int) (ptr & Bits.mask(0, log2Size + 1));
    }

    /** A pointer from an index and a wrap flag (no other bits). */
    public static int pointer(int index, boolean wrap, int log2Size) {
        return (int) Bits.withBit(index & Bits.mask(0, log2Size), log2Size, wrap);
    }

    /** {@code ptr} advanced by {@code n} entries modulo 2^(log2Size+1); bits above log2Size unchanged. */
    public static int inc(int ptr, int log2Size, int n) {
        long m = Bits.mask(0, log2Size + 1);
        return (int) ((ptr & ~m) | ((ptr + (long) n) & m));
    }

    /** {@code ptr} advanced by one entry ({@link #inc(int, int, int)}). */
    public static int inc(int ptr, int log2Size) {
        return inc(ptr, log2Size, 1);
    }

    /** Whether the queue is empty: same index, same wrap. */
    public static boolean isEmpty(int prod, int cons, int log2Size) {
        return indexAndWrap(prod, log2Size) == indexAndWrap(cons, log2Size);
    }

    /** Whether the queue is full: same index, different wrap. */
    public static boolean isFull(int prod, int cons, int log2Size) {
        return index(prod, log2Size) == index(cons, log2Size) && wrap(prod, log2Size) != wrap(cons, log2Size);
    }

    /** Entries written and not yet consumed, 0..2^log2Size. */
    public static long used(int prod, int cons, int log2Size) {
        return (indexAndWrap(prod, log2Size) - (long) indexAndWrap(cons, log2Size)) & Bits.mask(0, log2Size + 1);
    }

    /** Free entries, 0..2^log2Size. */
    public static long space(int prod, int cons, int log2Size) {
        return entries(log2Size) - used(prod, cons, log2Size);
    }

    /** The byte offset from the queue base of the entry a pointer indexes. */
    public static long entryOffset(int ptr, int log2Size, int entrySize) {
        return (long) index(ptr, log2Size) * entrySize;
    }

    /** CMDQ_CONS.ERR of a CONS value. */
    public static int cmdqError(int cons) {
        return CMDQ_CONS_ERR.getInt(Integer.toUnsignedLong(cons));
    }

    /** {@code cons} with ERR set to {@code cerror}, other bits unchanged. */
    public static int withCmdqError(int cons, int cerror) {
        return (int) CMDQ_CONS_ERR.put(Integer.toUnsignedLong(cons), CMDQ_CONS_ERR.checkValue(cerror));
    }

    /** The OVFLG / OVACKFLG bit 31 of a PROD or CONS value. */
    public static boolean overflowFlag(int ptr) {
        return Bits.bit(ptr, OVERFLOW_BIT);
    }

    /** {@code prod} with OVFLG toggled: how the SMMU reports that it discarded a record (§4). */
    public static int toggleOverflow(int prod) {
        return prod ^ OVERFLOW_FLAG;
    }

    /** Whether an overflow is active: PROD.OVFLG differs from CONS.OVACKFLG. */
    public static boolean overflowActive(int prod, int cons) {
        return overflowFlag(prod) != overflowFlag(cons);
    }

    /** {@code cons} acknowledging the overflow state of {@code prod} (OVACKFLG := OVFLG), as Linux writes it. */
    public static int acknowledgeOverflow(int cons, int prod) {
        return (cons & ~OVERFLOW_FLAG) | (prod & OVERFLOW_FLAG);
    }
}
