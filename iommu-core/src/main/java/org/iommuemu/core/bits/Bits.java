package org.iommuemu.core.bits;

/**
 * Bit-field and unsigned helpers for 64-bit registers, descriptors and addresses.
 *
 * <p>Fields are named by their lowest bit {@code lo} and their width in bits, as in the field
 * tables of the specifications. Addresses are unsigned {@code long}s: compare them with
 * {@link Long#compareUnsigned}, shift them with {@code >>>}. Everything here is allocation-free.
 */
public final class Bits {
    private Bits() {}

    /** A mask of {@code width} ones starting at bit {@code lo}; width 0..64, lo + width ≤ 64. */
    public static long mask(int lo, int width) {
        if (width == 0) {
            return 0;
        }
        return (-1L >>> (64 - width)) << lo;
    }

    /** A mask of the bits {@code [hi:lo]}, inclusive, as written in the specifications. */
    public static long maskHiLo(int hi, int lo) {
        return mask(lo, hi - lo + 1);
    }

    /** The field of {@code width} bits at {@code lo}, right-aligned. */
    public static long extract(long value, int lo, int width) {
        return (value >>> lo) & mask(0, width);
    }

    /** {@code value} with the field of {@code width} bits at {@code lo} replaced by {@code field} (truncated). */
    public static long deposit(long value, int lo, int width, long field) {
        long m = mask(lo, width);
        return (value & ~m) | ((field << lo) & m);
    }

    /** Bit {@code n} of {@code value}. */
    public static boolean bit(long value, int n) {
        return ((value >>> n) & 1) != 0;
    }

    /** {@code value} with bit {@code n} set or cleared. */
    public static long withBit(long value, int n, boolean set) {
        return set ? value | (1L << n) : value & ~(1L << n);
    }

    /** Whether {@code value} is a multiple of {@code 2^lg2}. */
    public static boolean isAligned(long value, int lg2) {
        return (value & mask(0, lg2)) == 0;
    }

    /** {@code value} rounded down to a multiple of {@code 2^lg2}. */
    public static long alignDown(long value, int lg2) {
        return value & ~mask(0, lg2);
    }

    /**
     * {@code value} rounded up to a multiple of {@code 2^lg2}, modulo 2^64: a value above the last
     * multiple below 2^64 rounds up to 0. Use {@link #alignUpOverflows} first where that matters.
     */
    public static long alignUp(long value, int lg2) {
        long m = mask(0, lg2);
        return (value + m) & ~m;
    }

    /** Whether rounding {@code value} up to a multiple of {@code 2^lg2} passes 2^64. */
    public static boolean alignUpOverflows(long value, int lg2) {
        return !isAligned(value, lg2) && alignUp(value, lg2) == 0;
    }

    /** Whether {@code value} is a power of two (zero is not). */
    public static boolean isPowerOfTwo(long value) {
        return value != 0 && (value & (value - 1)) == 0;
    }

    /** log2 of a power of two; {@code -1} for a value that is not one. */
    public static int lg2(long powerOfTwo) {
        return isPowerOfTwo(powerOfTwo) ? Long.numberOfTrailingZeros(powerOfTwo) : -1;
    }

    /** Whether the unsigned value fits in {@code bits} bits. */
    public static boolean fitsUnsigned(long value, int bits) {
        return bits >= 64 || (value >>> bits) == 0;
    }

    /**
     * The exclusive end of {@code [start, start + length)}, or {@code 0} when the range ends exactly at
     * 2^64. Use {@link #rangeOverflows} first to reject ranges that wrap.
     */
    public static long end(long start, long length) {
        return start + length;
    }

    /** Whether {@code [start, start + length)} wraps past 2^64 (a range ending exactly at 2^64 does not). */
    public static boolean rangeOverflows(long start, long length) {
        return length != 0 && Long.compareUnsigned(start + length - 1, start) < 0;
    }

    /**
     * The last byte of {@code [start, start + length)}, inclusive, for a length of at least 1 (the
     * inclusive form cannot overflow for a range that ends exactly at 2^64).
     */
    public static long last(long start, long length) {
        return start + length - 1;
    }

    /** The smaller of two unsigned values. */
    public static long minUnsigned(long a, long b) {
        return Long.compareUnsigned(a, b) <= 0 ? a : b;
    }

    /** The larger of two unsigned values. */
    public static long maxUnsigned(long a, long b) {
        return Long.compareUnsigned(a, b) >= 0 ? a : b;
    }

    /** Hexadecimal with a {@code 0x} prefix, for messages. */
    public static String hex(long value) {
        return "0x" + Long.toHexString(value);
    }
}
