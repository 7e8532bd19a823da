package org.iommuemu.core.driver.smmuv3;

/**
 * The SMMUv3 driver could not do what it was asked: the hardware is unusable, did not answer in time, or the
 * call was wrong. {@link #kind()} says which; the message names the register, values and limits involved.
 */
public final class SmmuV3DriverException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** Why the driver failed. */
    public enum Kind {
        /** Probe refused the hardware (no AArch64 tables, no translation stage, embedded implementation...). */
        UNSUPPORTED_HARDWARE,
        /** A CR0/IRQ_CTRL write was not acknowledged, or GBPA.UPDATE did not clear, within the poll bound. */
        ACK_TIMEOUT,
        /** The command queue did not make room, or a CMD_SYNC did not complete, within the poll bound. */
        QUEUE_TIMEOUT,
        /** Reading or writing the driver's own structures in physical memory failed, or memory ran out. */
        MEMORY,
        /** An argument was out of range (a StreamID beyond the stream table...). */
        BAD_ARGUMENT,
        /** The call does not fit the driver's state (used before {@code init}, initialised twice...). */
        BAD_STATE
    }

    private final Kind kind;

    public SmmuV3DriverException(Kind kind, String message) {
        this(kind, message, null);
    }

    public SmmuV3DriverException(Kind kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }
}
