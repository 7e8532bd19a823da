package org.iommuemu.device.regs;

import org.iommuemu.core.bits.Bits;

/**
 * A named bit field of one {@link Register}: a handle a device keeps in a final field and uses on hot
 * paths. Reading costs one volatile load, a shift and a mask; nothing allocates.
 *
 * <p>The {@code get(long)} / {@code isSet(long)} variants decode a register image a {@link WriteHook}
 * received ({@code oldValue}, {@code newValue}, {@code written}).
 */
public final class Field {
    private final Register register;
    private final String name;
    private final int lo;
    private final int width;
    private final FieldMode mode;
    private final long mask;

    Field(Register register, String name, int lo, int width, FieldMode mode) {
        this.register = register;
        this.name = name;
        this.lo = lo;
        this.width = width;
        this.mode = mode;
        this.mask = Bits.mask(lo, width);
    }

    public Register register() {
        return register;
    }

    public String name() {
        return name;
    }

    /** The lowest bit of the field within the register. */
    public int lo() {
        return lo;
    }

    public int width() {
        return width;
    }

    public FieldMode mode() {
        return mode;
    }

    /** The field's bits in position. */
    public long mask() {
        return mask;
    }

    /** The field's current value, right-aligned. */
    public long get() {
        return (register.value() & mask) >>> lo;
    }

    /** This field decoded from a register image, right-aligned. */
    public long get(long registerValue) {
        return (registerValue & mask) >>> lo;
    }

    /** Whether any bit of the field is set. */
    public boolean isSet() {
        return (register.value() & mask) != 0;
    }

    /** Whether any bit of this field is set in a register image. */
    public boolean isSet(long registerValue) {
        return (registerValue & mask) != 0;
    }

    /**
     * Device-side update of this field (whatever its software mode), under the register-file lock.
     *
     * @throws IllegalArgumentException if {@code value} does not fit the field (a device bug)
     */
    public void set(long value) {
        if (!Bits.fitsUnsigned(value, width)) {
            throw new IllegalArgumentException(
                    register.name() + "." + name + " is " + width + " bits wide; cannot hold " + Bits.hex(value));
        }
        register.setBits(mask, value << lo);
    }

    /** Device-side update of a field: all ones when {@code set}, else zero. */
    public void set(boolean set) {
        register.setBits(mask, set ? mask : 0);
    }

    /** {@code value} positioned in the register image (truncated to the field). */
    public long place(long value) {
        return (value << lo) & mask;
    }

    @Override
    public String toString() {
        String bits = width == 1 ? Integer.toString(lo) : (lo + width - 1) + ":" + lo;
        return register.name() + "." + name + "[" + bits + "] " + mode;
    }
}
