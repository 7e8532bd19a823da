package org.iommuemu.core.memory;

import org.iommuemu.core.bits.Bits;

/**
 * A range of guest physical addresses backed by RAM: {@code [base, base + size)}.
 *
 * @param base first byte (unsigned)
 * @param size length in bytes, greater than zero; the region may end exactly at 2^64
 */
public record RamRegion(long base, long size) {
    public RamRegion {
        if (size == 0) {
            throw new IllegalArgumentException("RAM region at " + Bits.hex(base) + " has size 0");
        }
        if (Bits.rangeOverflows(base, size)) {
            throw new IllegalArgumentException(
                    "RAM region at " + Bits.hex(base) + " of size " + Bits.hex(size) + " wraps past 2^64");
        }
    }

    /** Last byte, inclusive. */
    public long last() {
        return base + size - 1;
    }

    /** Whether {@code [pa, pa + length)} lies entirely in this region; length 0 is never contained. */
    public boolean contains(long pa, long length) {
        if (length == 0 || Bits.rangeOverflows(pa, length)) {
            return false;
        }
        return Long.compareUnsigned(pa, base) >= 0 && Long.compareUnsigned(pa + length - 1, last()) <= 0;
    }

    /** Whether this region and {@code other} share at least one byte. */
    public boolean overlaps(RamRegion other) {
        return Long.compareUnsigned(base, other.last()) <= 0 && Long.compareUnsigned(other.base, last()) <= 0;
    }

    @Override
    public String toString() {
        return "[" + Bits.hex(base) + ", " + Bits.hex(last()) + "]";
    }
}
