package org.iommuemu.device.machine;

import org.iommuemu.core.bits.Bits;

/**
 * The outcome of translating one DMA access: a mutable holder that the caller owns and reuses, so the
 * translate path allocates nothing.
 *
 * <p>On success, {@link #physicalAddress()} is the output address of the input address, and
 * {@link #contiguousBytes()} how many bytes from there on translate linearly with the same permissions
 * (to the end of the page or block, or unbounded for bypass), so a caller can move a large DMA in a few
 * chunks. On a fault, the kind, the architected code the IOMMU recorded and a description are set.
 */
public final class Translation {
    /** What happened to the access. */
    public enum Outcome {
        /** Translated; physicalAddress and contiguousBytes are valid. */
        OK,
        /** An architected fault; faultType, code and description are valid. */
        FAULT,
        /** The model does not implement the configuration the guest selected; description says what. */
        UNIMPLEMENTED
    }

    private Outcome outcome = Outcome.OK;
    private long physicalAddress;
    private long contiguousBytes;
    private FaultType faultType;
    private int code;
    private String description;

    /** Records a successful translation. contiguousBytes is unsigned; -1 means "to the end of the address space". */
    public Translation ok(long physicalAddress, long contiguousBytes) {
        this.outcome = Outcome.OK;
        this.physicalAddress = physicalAddress;
        this.contiguousBytes = contiguousBytes;
        this.faultType = null;
        this.code = 0;
        this.description = null;
        return this;
    }

    /** Records an architected fault. */
    public Translation fault(FaultType type, int code, String description) {
        this.outcome = Outcome.FAULT;
        this.faultType = type;
        this.code = code;
        this.description = description;
        return this;
    }

    /** Records that the model does not implement what the guest configured. */
    public Translation unimplemented(String description) {
        this.outcome = Outcome.UNIMPLEMENTED;
        this.faultType = null;
        this.code = 0;
        this.description = description;
        return this;
    }

    public Outcome outcome() {
        return outcome;
    }

    public boolean isOk() {
        return outcome == Outcome.OK;
    }

    public long physicalAddress() {
        return physicalAddress;
    }

    /** Unsigned byte count; compare with {@link Long#compareUnsigned}. */
    public long contiguousBytes() {
        return contiguousBytes;
    }

    public FaultType faultType() {
        return faultType;
    }

    public int code() {
        return code;
    }

    public String description() {
        return description;
    }

    @Override
    public String toString() {
        return switch (outcome) {
            case OK -> "OK pa=" + Bits.hex(physicalAddress) + " len=" + Long.toUnsignedString(contiguousBytes);
            case FAULT -> "FAULT " + faultType + " code=" + Bits.hex(code) + " " + description;
            case UNIMPLEMENTED -> "UNIMPLEMENTED " + description;
        };
    }
}
