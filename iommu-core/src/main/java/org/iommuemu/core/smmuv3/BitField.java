package org.iommuemu.core.smmuv3;

import org.iommuemu.core.bits.Bits;

/**
 * One named field of a little-endian descriptor made of 64-bit words: the word it lives in, its lowest bit
 * and its width, as the field tables of {@code spec/SMMUV3.md} write them ({@code dwN [hi:lo]}).
 *
 * <p>Two views of a field's value. A <em>value</em> is right-aligned ({@link #get}, {@link #put}): counts,
 * identifiers, encodings. An <em>address</em> stays in place ({@link #address}, {@link #putAddress}): an
 * address field {@code [51:6]} holds bits 51..6 of a 64-byte-aligned address, so the value read is the address
 * itself with its low bits zero.
 *
 * <p>Immutable; every accessor is allocation-free. Fields are declared once, as constants of the descriptor
 * classes, and the device's hot paths may use them directly on raw words.
 */
public final class BitField {
    private final String name;
    private final int word;
    private final int lo;
    private final int width;
    private final long mask;

    private BitField(String name, int word, int lo, int width) {
        if (word < 0 || lo < 0 || width < 1 || lo + width > Long.SIZE) {
            throw new IllegalArgumentException("bad field " + name + ": dw" + word + " lo " + lo + " width " + width);
        }
        this.name = name;
        this.word = word;
        this.lo = lo;
        this.width = width;
        this.mask = Bits.mask(lo, width);
    }

    /** The field {@code dw<word>[hi:lo]}, inclusive bounds as in the spec tables. */
    public static BitField of(String name, int word, int hi, int lo) {
        return new BitField(name, word, lo, hi - lo + 1);
    }

    /** The one-bit field {@code dw<word>[bit]}. */
    public static BitField flag(String name, int word, int bit) {
        return new BitField(name, word, bit, 1);
    }

    /** The field's name as the spec writes it. */
    public String name() {
        return name;
    }

    /** Index of the 64-bit word holding the field. */
    public int word() {
        return word;
    }

    /** Lowest bit of the field within its word. */
    public int lo() {
        return lo;
    }

    /** Highest bit of the field within its word, inclusive. */
    public int hi() {
        return lo + width - 1;
    }

    /** Width in bits. */
    public int width() {
        return width;
    }

    /** The field's bits, in place, within its word. */
    public long mask() {
        return mask;
    }

    /** The largest right-aligned value the field holds. */
    public long maxValue() {
        return mask >>> lo;
    }

    /** The right-aligned value of the field in {@code word}, which must be the field's own word. */
    public long get(long word) {
        return (word & mask) >>> lo;
    }

    /** The right-aligned value, as an {@code int}: for fields of at most 32 bits (32-bit ones read as unsigned bit patterns). */
    public int getInt(long word) {
        return (int) ((word & mask) >>> lo);
    }

    /** The value of a one-bit field. */
    public boolean isSet(long word) {
        return (word & mask) != 0;
    }

    /** The right-aligned value of the field read from a descriptor's words. */
    public long get(long[] words) {
        return get(words[word]);
    }

    /** An address field's bits in place (the address with the bits outside the field cleared). */
    public long address(long word) {
        return word & mask;
    }

    /** {@code word} with the field replaced by the right-aligned {@code value} (excess high bits dropped). */
    public long put(long word, long value) {
        return (word & ~mask) | ((value << lo) & mask);
    }

    /** {@code word} with a one-bit field set or cleared. */
    public long put(long word, boolean set) {
        return set ? word | mask : word & ~mask;
    }

    /** {@code word} with the address field replaced by {@code address}'s bits in the field's range. */
    public long putAddress(long word, long address) {
        return (word & ~mask) | (address & mask);
    }

    /** Whether the right-aligned {@code value} fits the field. */
    public boolean fits(long value) {
        return (value & ~(mask >>> lo)) == 0;
    }

    /** Whether {@code address} has no bits outside the field's range (aligned below, within the top bit). */
    public boolean fitsAddress(long address) {
        return (address & ~mask) == 0;
    }

    /** {@code value}, or {@link IllegalArgumentException} naming the field when it does not fit. */
    public long checkValue(long value) {
        if (!fits(value)) {
            throw new IllegalArgumentException(
                    name + " must fit " + width + " bit" + (width == 1 ? "" : "s") + ", not " + Bits.hex(value));
        }
        return value;
    }

    /** {@code address}, or {@link IllegalArgumentException} naming the field when it has bits outside it. */
    public long checkAddress(long address) {
        if (!fitsAddress(address)) {
            throw new IllegalArgumentException(name + " must have bits [" + hi() + ":" + lo + "] only (aligned to "
                    + (1L << lo) + " bytes, below 2^" + (hi() + 1) + "), not " + Bits.hex(address));
        }
        return address;
    }

    @Override
    public String toString() {
        return name + " dw" + word + "[" + hi() + ":" + lo + "]";
    }
}
