package org.iommuemu.device.regs;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicLongArray;
import org.iommuemu.core.bits.Bits;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The MMIO register window of one device: registers declared once ({@link #reg32}, {@link #reg64},
 * {@link #alias}) and software accesses by offset ({@link #read}, {@link #write}).
 *
 * <p>Access rules, following how SMMUv3 and VT-d drivers use their windows:
 * <ul>
 *   <li>Accesses are 4 or 8 bytes wide at offsets aligned to their width.
 *   <li>A 64-bit register may be accessed whole or as two 32-bit halves (offset and offset + 4). A half
 *       write applies field semantics to that half only; the other half keeps its value.
 *   <li>An 8-byte access at an offset that does not start a 64-bit register is two 32-bit accesses, low
 *       word first: the 32-bit register at the offset (low half of the result) and whatever sits at
 *       offset + 4 (high half).
 *   <li>Offsets inside the window where nothing is declared read as zero and ignore writes; the first
 *       access to each such 4-byte word is logged, later ones are not (one bit per word of the window, so
 *       the record is bounded by the window size).
 * </ul>
 *
 * <p>Concurrency: software writes, their {@link WriteHook hooks}, device-side updates and {@link #reset()}
 * run under {@link #lock()}, so a hook sees a consistent register state and may update other registers.
 * Reads are lock-free. Known registers allocate nothing on either path.
 */
public final class RegisterFile {
    private static final Logger LOG = LoggerFactory.getLogger(RegisterFile.class);

    /** The largest window accepted (the index holds one slot per 4-byte word). */
    public static final long MAX_WINDOW = 1L << 24;

    private final String deviceName;
    private final long windowSize;
    private final Object lock = new Object();
    /** The register covering each 4-byte word of the window, or null. */
    private final Register[] byWord;
    /** For each word: 0 = a 32-bit register or the low half of a 64-bit one, 1 = the high half. */
    private final byte[] halfOfWord;
    /** Words whose unknown access has been logged, one bit per word. */
    private final AtomicLongArray unknownLogged;
    private final List<Register> registers = new ArrayList<>();

    /**
     * @param deviceName for messages
     * @param windowSize bytes; a positive multiple of 8, at most {@link #MAX_WINDOW}
     */
    public RegisterFile(String deviceName, long windowSize) {
        if (deviceName == null || deviceName.isEmpty()) {
            throw new IllegalArgumentException("a register file needs a device name");
        }
        if (windowSize <= 0 || windowSize > MAX_WINDOW || (windowSize & 7) != 0) {
            throw new IllegalArgumentException(deviceName + ": window size " + Bits.hex(windowSize)
                    + " must be a positive multiple of 8 up to " + Bits.hex(MAX_WINDOW));
        }
        this.deviceName = deviceName;
        this.windowSize = windowSize;
        int words = (int) (windowSize >>> 2);
        this.byWord = new Register[words];
        this.halfOfWord = new byte[words];
        this.unknownLogged = new AtomicLongArray((words + 63) >>> 6);
    }

    public String deviceName() {
        return deviceName;
    }

    public long windowSize() {
        return windowSize;
    }

    /** The monitor that serialises writes, hooks and device-side updates. Device code may hold it. */
    public Object lock() {
        return lock;
    }

    /** Declares a 32-bit register at a 4-byte aligned offset. Add fields to it; bits without a field are reserved. */
    public Register reg32(long offset, String name, long reset) {
        return declare(offset, 32, name, reset);
    }

    /** Declares a 64-bit register at an 8-byte aligned offset. */
    public Register reg64(long offset, String name, long reset) {
        return declare(offset, 64, name, reset);
    }

    /**
     * Makes {@code target} also visible at {@code offset} (e.g. the SMMUv3 EVENTQ_PROD/CONS copies at
     * page 0). Accesses there behave exactly as at the primary offset, hooks included.
     */
    public void alias(long offset, Register target) {
        if (target == null || target.file() != this) {
            throw new IllegalArgumentException(deviceName + ": alias target must be a register of this file");
        }
        synchronized (lock) {
            occupy(offset, target.width(), target, "alias of " + target.name());
        }
    }

    private Register declare(long offset, int width, String name, long reset) {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException(deviceName + ": register at " + Bits.hex(offset) + " needs a name");
        }
        if (width == 32 && !Bits.fitsUnsigned(reset, 32)) {
            throw new IllegalArgumentException(
                    deviceName + ": reset value " + Bits.hex(reset) + " of 32-bit register " + name + " too wide");
        }
        synchronized (lock) {
            for (Register r : registers) {
                if (r.name().equals(name)) {
                    throw new IllegalArgumentException(deviceName + ": register name " + name + " used twice");
                }
            }
            Register reg = new Register(this, offset, width, name, reset);
            occupy(offset, width, reg, name);
            registers.add(reg);
            return reg;
        }
    }

    private void occupy(long offset, int width, Register reg, String what) {
        int bytes = width / 8;
        if (offset < 0 || offset % bytes != 0) {
            throw new IllegalArgumentException(
                    deviceName + ": " + what + " at " + Bits.hex(offset) + " is not " + bytes + "-byte aligned");
        }
        if (offset > windowSize - bytes) {
            throw new IllegalArgumentException(
                    deviceName + ": " + what + " at " + Bits.hex(offset) + " lies outside the window");
        }
        int word = (int) (offset >>> 2);
        for (int i = 0; i < bytes / 4; i++) {
            Register other = byWord[word + i];
            if (other != null) {
                throw new IllegalArgumentException(deviceName + ": " + what + " at " + Bits.hex(offset)
                        + " overlaps " + other.name() + " at " + Bits.hex((long) (word + i) << 2));
            }
        }
        for (int i = 0; i < bytes / 4; i++) {
            byWord[word + i] = reg;
            halfOfWord[word + i] = (byte) i;
        }
    }

    /** The declared registers in declaration order (aliases not repeated). */
    public List<Register> registers() {
        return Collections.unmodifiableList(registers);
    }

    /**
     * The register named {@code name}.
     *
     * @throws IllegalArgumentException if there is none
     */
    public Register register(String name) {
        for (Register r : registers) {
            if (r.name().equals(name)) {
                return r;
            }
        }
        throw new IllegalArgumentException(deviceName + " has no register " + name);
    }

    /** The register whose bytes include {@code offset}, through an alias or not; null if none. */
    public Register at(long offset) {
        if (offset < 0 || offset >= windowSize) {
            return null;
        }
        return byWord[(int) (offset >>> 2)];
    }

    /** The offsets other than the primary one at which {@code reg} is visible. */
    public List<Long> aliasesOf(Register reg) {
        List<Long> out = new ArrayList<>();
        for (int w = 0; w < byWord.length; w++) {
            long off = (long) w << 2;
            if (byWord[w] == reg && halfOfWord[w] == 0 && off != reg.offset()) {
                out.add(off);
            }
        }
        return out;
    }

    /**
     * A software read of {@code width} bytes (4 or 8) at a width-aligned offset inside the window.
     *
     * @throws IllegalArgumentException on a bad width, alignment or offset (the caller's bug)
     */
    public long read(long offset, int width) {
        checkAccess(offset, width);
        int word = (int) (offset >>> 2);
        if (width == 8) {
            Register r = byWord[word];
            if (r != null && r.width() == 64 && halfOfWord[word] == 0) {
                return r.readValue();
            }
            return read32(word) | (read32(word + 1) << 32);
        }
        return read32(word);
    }

    private long read32(int word) {
        Register r = byWord[word];
        if (r == null) {
            unknown(word, false, 0);
            return 0;
        }
        long v = r.readValue();
        return halfOfWord[word] == 0 ? v & 0xFFFF_FFFFL : v >>> 32;
    }

    /**
     * A software write of {@code width} bytes (4 or 8) at a width-aligned offset inside the window; for a
     * 4-byte write only the low 32 bits of {@code value} count.
     *
     * @throws IllegalArgumentException on a bad width, alignment or offset (the caller's bug)
     */
    public void write(long offset, int width, long value) {
        checkAccess(offset, width);
        int word = (int) (offset >>> 2);
        synchronized (lock) {
            if (width == 8) {
                Register r = byWord[word];
                if (r != null && r.width() == 64 && halfOfWord[word] == 0) {
                    r.softwareWrite(value, -1L);
                    return;
                }
                write32(word, value & 0xFFFF_FFFFL);
                write32(word + 1, value >>> 32);
            } else {
                write32(word, value & 0xFFFF_FFFFL);
            }
        }
    }

    private void write32(int word, long value) {
        Register r = byWord[word];
        if (r == null) {
            unknown(word, true, value);
            return;
        }
        int shift = halfOfWord[word] * 32;
        r.softwareWrite(value << shift, 0xFFFF_FFFFL << shift);
    }

    /** Every register back to its reset value (hooks do not run). */
    public void reset() {
        synchronized (lock) {
            for (Register r : registers) {
                r.resetValueNow();
            }
        }
    }

    private void checkAccess(long offset, int width) {
        if (width != 4 && width != 8) {
            throw new IllegalArgumentException(deviceName + ": access width " + width + " (expected 4 or 8)");
        }
        if (offset < 0 || offset > windowSize - width || (offset & (width - 1)) != 0) {
            throw new IllegalArgumentException(deviceName + ": " + width + "-byte access at " + Bits.hex(offset)
                    + " is misaligned or outside the " + Bits.hex(windowSize) + "-byte window");
        }
    }

    private void unknown(int word, boolean write, long value) {
        int slot = word >>> 6;
        long bit = 1L << (word & 63);
        long seen = unknownLogged.get(slot);
        while ((seen & bit) == 0) {
            long witness = unknownLogged.compareAndExchange(slot, seen, seen | bit);
            if (witness == seen) {
                if (write) {
                    LOG.warn("{}: write of {} to unknown or reserved register offset {} ignored (logged once per offset)",
                            deviceName, Bits.hex(value), Bits.hex((long) word << 2));
                } else {
                    LOG.warn("{}: read of unknown or reserved register offset {} returns 0 (logged once per offset)",
                            deviceName, Bits.hex((long) word << 2));
                }
                return;
            }
            seen = witness;
        }
    }

    @Override
    public String toString() {
        return deviceName + " registers (" + registers.size() + ", window " + Bits.hex(windowSize) + ")";
    }
}
