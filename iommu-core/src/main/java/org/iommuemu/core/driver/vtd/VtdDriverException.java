package org.iommuemu.core.driver.vtd;

/**
 * The VT-d driver could not do what it was asked: the hardware is unusable, did not answer in time, reported an
 * error the driver cannot recover from, or the call was wrong. {@link #kind()} says which; the message names the
 * register, values and limits involved.
 */
public final class VtdDriverException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** Why the driver failed. */
    public enum Kind {
        /** Probe refused the hardware (no usable address width, no queued invalidation, CAP/ECAP all ones...). */
        UNSUPPORTED_HARDWARE,
        /** A GCMD command's status bit did not follow in GSTS within the poll bound. */
        ACK_TIMEOUT,
        /** The invalidation queue did not make room, or an invalidation wait did not complete, within the bound. */
        QUEUE_TIMEOUT,
        /**
         * The hardware aborted a batch: an invalidation time-out (FSTS.ITE) aborted its invalidation wait, so the
         * driver cannot tell whether the batch took effect.
         */
        QUEUE_ERROR,
        /** Reading or writing the driver's own structures in physical memory failed, or memory ran out. */
        MEMORY,
        /** An argument was out of range (a PASID beyond the PASID table...). */
        BAD_ARGUMENT,
        /** The call does not fit the driver's state (used before {@code init}, initialised twice...). */
        BAD_STATE
    }

    private final Kind kind;

    public VtdDriverException(Kind kind, String message) {
        this(kind, message, null);
    }

    public VtdDriverException(Kind kind, String message, Throwable cause) {
        super(message, cause);
        this.kind = kind;
    }

    public Kind kind() {
        return kind;
    }
}
