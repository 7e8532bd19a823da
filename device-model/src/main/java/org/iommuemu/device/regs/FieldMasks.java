package org.iommuemu.device.regs;

import org.iommuemu.core.bits.Bits;

/**
 * The bits of one register grouped by {@link FieldMode}; bits in no group are reserved (read as zero,
 * ignore writes). It holds the pure functions that give a register its software-visible behaviour:
 * {@link #effectiveWrite} and {@link #readable()}.
 *
 * @param readOnly {@link FieldMode#READ_ONLY} bits
 * @param readWrite {@link FieldMode#READ_WRITE} bits
 * @param writeOneToClear {@link FieldMode#WRITE_ONE_TO_CLEAR} bits
 * @param writeOneToSet {@link FieldMode#WRITE_ONE_TO_SET} bits
 * @param writeOnly {@link FieldMode#WRITE_ONLY} bits
 */
public record FieldMasks(long readOnly, long readWrite, long writeOneToClear, long writeOneToSet, long writeOnly) {
    /** A register with no fields: every bit reserved. */
    public static final FieldMasks NONE = new FieldMasks(0, 0, 0, 0, 0);

    /** @throws IllegalArgumentException if two groups share a bit */
    public FieldMasks {
        long[] groups = {readOnly, readWrite, writeOneToClear, writeOneToSet, writeOnly};
        long seen = 0;
        for (long g : groups) {
            if ((seen & g) != 0) {
                throw new IllegalArgumentException("field modes overlap in bits " + Bits.hex(seen & g));
            }
            seen |= g;
        }
    }

    /** The bits covered by some field; the rest are reserved. */
    public long defined() {
        return readOnly | readWrite | writeOneToClear | writeOneToSet | writeOnly;
    }

    /** The bits software reads back from the stored value (write-only and reserved bits read as zero). */
    public long readable() {
        return readOnly | readWrite | writeOneToClear | writeOneToSet;
    }

    /** These masks with {@code bits} added to the group of {@code mode}. */
    public FieldMasks with(FieldMode mode, long bits) {
        return switch (mode) {
            case READ_ONLY -> new FieldMasks(readOnly | bits, readWrite, writeOneToClear, writeOneToSet, writeOnly);
            case READ_WRITE -> new FieldMasks(readOnly, readWrite | bits, writeOneToClear, writeOneToSet, writeOnly);
            case WRITE_ONE_TO_CLEAR ->
                    new FieldMasks(readOnly, readWrite, writeOneToClear | bits, writeOneToSet, writeOnly);
            case WRITE_ONE_TO_SET ->
                    new FieldMasks(readOnly, readWrite, writeOneToClear, writeOneToSet | bits, writeOnly);
            case WRITE_ONLY -> new FieldMasks(readOnly, readWrite, writeOneToClear, writeOneToSet, writeOnly | bits);
        };
    }

    /**
     * The stored value after software writes {@code written} over the bytes in {@code writtenMask}:
     * read-write and write-only bits take the written value, write-one-to-clear bits written as 1 clear,
     * write-one-to-set bits written as 1 set, read-only bits keep their value, reserved bits are zero.
     * Bits outside {@code writtenMask} keep their value whatever their mode.
     */
    public long effectiveWrite(long oldValue, long written, long writtenMask) {
        long replace = (readWrite | writeOnly) & writtenMask;
        long v = (oldValue & ~replace) | (written & replace);
        v &= ~(written & writeOneToClear & writtenMask);
        v |= written & writeOneToSet & writtenMask;
        return v & defined();
    }
}
