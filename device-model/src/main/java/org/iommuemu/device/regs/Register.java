package org.iommuemu.device.regs;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import org.iommuemu.core.bits.Bits;

/**
 * One 32-bit or 64-bit register of a {@link RegisterFile}, declared once with its offset, reset value and
 * {@link Field fields}; software behaviour follows the fields' {@link FieldMode modes} and side effects
 * hang on {@link #afterWrite after-write hooks}. Declarations chain:
 *
 * <pre>{@code
 * Register cr0 = regs.reg32(0x20, "CR0", 0)
 *         .field("SMMUEN", 0, 1, FieldMode.READ_WRITE)
 *         .field("EVENTQEN", 2, 1, FieldMode.READ_WRITE)
 *         .afterWrite((old, now, written, mask) -> cr0ack.set(now));
 * }</pre>
 *
 * <p>Bits covered by no field are reserved: they read as zero and ignore software writes, reset values and
 * device-side updates. Declare everything while constructing the device, before it is used: adding a field
 * puts the register back to its reset value.
 *
 * <p>Reading the stored value is lock-free (a volatile load). Every update, software or device side, runs
 * under the {@link RegisterFile#lock() register-file lock}.
 */
public final class Register {
    private static final WriteHook[] NO_HOOKS = new WriteHook[0];

    private final RegisterFile file;
    private final long offset;
    private final int width;
    private final String name;
    private final long resetRaw;
    private final List<Field> fields = new ArrayList<>();
    private FieldMasks masks = FieldMasks.NONE;
    private long resetValue;
    private long readMask;
    private long definedMask;
    private WriteHook[] hooks = NO_HOOKS;
    private volatile long value;

    Register(RegisterFile file, long offset, int width, String name, long reset) {
        this.file = file;
        this.offset = offset;
        this.width = width;
        this.name = name;
        this.resetRaw = reset;
    }

    /**
     * Declares a field of {@code width} bits at bit {@code lo}.
     *
     * @throws IllegalArgumentException if the field leaves the register, overlaps another field, or its name
     *     is already used in this register
     */
    public Register field(String fieldName, int lo, int fieldWidth, FieldMode mode) {
        if (fieldName == null || fieldName.isEmpty() || mode == null) {
            throw new IllegalArgumentException(name + ": a field needs a name and a mode");
        }
        if (lo < 0 || fieldWidth < 1 || lo + fieldWidth > width) {
            throw new IllegalArgumentException(name + "." + fieldName + " [" + (lo + fieldWidth - 1) + ":" + lo
                    + "] does not fit a " + width + "-bit register");
        }
        long bits = Bits.mask(lo, fieldWidth);
        for (Field f : fields) {
            if (f.name().equals(fieldName)) {
                throw new IllegalArgumentException(name + " already has a field " + fieldName);
            }
            if ((f.mask() & bits) != 0) {
                throw new IllegalArgumentException(name + "." + fieldName + " overlaps " + f);
            }
        }
        synchronized (file.lock()) {
            fields.add(new Field(this, fieldName, lo, fieldWidth, mode));
            masks = masks.with(mode, bits);
            definedMask = masks.defined();
            readMask = masks.readable();
            resetValue = resetRaw & definedMask;
            value = resetValue;
        }
        return this;
    }

    /** Declares a one-bit field. */
    public Register flag(String fieldName, int bit, FieldMode mode) {
        return field(fieldName, bit, 1, mode);
    }

    /** Adds a hook run after every software write to this register; hooks run in the order added. */
    public Register afterWrite(WriteHook hook) {
        if (hook == null) {
            throw new IllegalArgumentException(name + ": null hook");
        }
        synchronized (file.lock()) {
            WriteHook[] h = Arrays.copyOf(hooks, hooks.length + 1);
            h[hooks.length] = hook;
            hooks = h;
        }
        return this;
    }

    /**
     * The handle of a declared field. Look it up once, at construction, and keep it.
     *
     * @throws IllegalArgumentException if there is no such field
     */
    public Field fieldHandle(String fieldName) {
        for (Field f : fields) {
            if (f.name().equals(fieldName)) {
                return f;
            }
        }
        throw new IllegalArgumentException(name + " has no field " + fieldName);
    }

    /** Whether a field of that name is declared. */
    public boolean hasField(String fieldName) {
        for (Field f : fields) {
            if (f.name().equals(fieldName)) {
                return true;
            }
        }
        return false;
    }

    /** The declared fields, in declaration order. */
    public List<Field> fields() {
        return Collections.unmodifiableList(fields);
    }

    public RegisterFile file() {
        return file;
    }

    /** The primary offset (aliases are listed by {@link RegisterFile#aliasesOf}). */
    public long offset() {
        return offset;
    }

    /** 32 or 64. */
    public int width() {
        return width;
    }

    public String name() {
        return name;
    }

    /** The field masks that drive software accesses. */
    public FieldMasks masks() {
        return masks;
    }

    /** The bits covered by fields. */
    public long definedMask() {
        return definedMask;
    }

    /** The power-on value with reserved bits removed. */
    public long resetValue() {
        return resetValue;
    }

    /** The stored value (write-only fields included: they hold what software last wrote). Lock-free. */
    public long value() {
        return value;
    }

    /** What software reads: the stored value without write-only and reserved bits. Lock-free. */
    public long readValue() {
        return value & readMask;
    }

    /** Device-side store: bypasses the fields' software modes; reserved bits are dropped. */
    public void set(long newValue) {
        synchronized (file.lock()) {
            value = newValue & definedMask;
        }
    }

    /** Device-side update of the bits in {@code mask} to those of {@code bits}, atomically. */
    public void setBits(long mask, long bits) {
        synchronized (file.lock()) {
            long v = value;
            value = ((v & ~mask) | (bits & mask)) & definedMask;
        }
    }

    /** Software write of the bytes in {@code writtenMask}; the caller holds the lock. */
    void softwareWrite(long written, long writtenMask) {
        long old = value;
        long now = masks.effectiveWrite(old, written, writtenMask);
        value = now;
        WriteHook[] h = hooks;
        for (int i = 0; i < h.length; i++) {
            h[i].afterWrite(old, now, written, writtenMask);
        }
    }

    /** Back to the reset value; the caller holds the lock. */
    void resetValueNow() {
        value = resetValue;
    }

    @Override
    public String toString() {
        return name + "@" + Bits.hex(offset) + "/" + width;
    }
}
