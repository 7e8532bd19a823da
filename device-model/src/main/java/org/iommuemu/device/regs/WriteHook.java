package org.iommuemu.device.regs;

/**
 * A side effect of a software write to one register, run after the write's field semantics have been
 * applied and while the {@link RegisterFile#lock() register-file lock} is held.
 *
 * <p>The hook runs for every software write that reaches the register, also when no bit changed (a
 * doorbell written with its current value still rings). All values are positioned in the register's
 * 64-bit image: for a 32-bit access to the high half of a 64-bit register, {@code written} and
 * {@code writtenMask} have their bits in 63..32.
 */
@FunctionalInterface
public interface WriteHook {
    /**
     * @param oldValue the register's stored value before the write
     * @param newValue the stored value after the write (reserved bits zero; {@link FieldMode#WRITE_ONLY}
     *     fields hold what was written)
     * @param written the raw value software wrote, positioned in the register, including bits that the
     *     field modes ignored
     * @param writtenMask the bits the access covered ({@code 0xFFFF_FFFF} for a 32-bit register, one or
     *     both halves for a 64-bit register)
     */
    void afterWrite(long oldValue, long newValue, long written, long writtenMask);
}
