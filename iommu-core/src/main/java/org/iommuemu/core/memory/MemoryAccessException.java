package org.iommuemu.core.memory;

import org.iommuemu.core.bits.Bits;

/**
 * A guest physical memory access failed: the architected outcome is an external abort (SMMUv3
 * F_WALK_EABT / CERROR_ABT, a VT-d fault, a DMA fault on the bus). This is a result, not a bug: callers
 * catch it and report the abort. It carries no stack trace, so producing it is cheap.
 */
public final class MemoryAccessException extends Exception {
    /** Why the access failed. */
    public enum Reason {
        /** Some byte of the range is outside every RAM region. */
        NOT_RAM,
        /** A fault injector made this access fail. */
        INJECTED
    }

    private final long address;
    private final long length;
    private final Reason reason;

    public MemoryAccessException(long address, long length, Reason reason) {
        super(null, null, false, false);
        this.address = address;
        this.length = length;
        this.reason = reason;
    }

    /** First byte of the access that failed. */
    public long address() {
        return address;
    }

    /** Length of the access that failed. */
    public long length() {
        return length;
    }

    public Reason reason() {
        return reason;
    }

    @Override
    public String getMessage() {
        String what = reason == Reason.NOT_RAM ? "is not RAM" : "failed (injected fault)";
        return "physical access of " + length + " byte(s) at " + Bits.hex(address) + " " + what;
    }
}
