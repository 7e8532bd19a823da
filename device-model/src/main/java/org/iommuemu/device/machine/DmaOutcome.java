package org.iommuemu.device.machine;

import org.iommuemu.core.bits.Bits;

/**
 * The result of one DMA through an IOMMU: a mutable holder owned and reused by the caller (the DMA path
 * allocates nothing). On a fault, {@link #bytesDone()} bytes before {@link #faultAddress()} were
 * transferred, in address order, as hardware splitting the burst into transactions would have done.
 */
public final class DmaOutcome {
    /** How the DMA ended. */
    public enum Status {
        OK,
        FAULT,
        UNIMPLEMENTED
    }

    private Status status = Status.OK;
    private long bytesDone;
    private long faultAddress;
    private FaultType faultType;
    private int code;
    private String description;
    final Translation translation = new Translation();

    void reset() {
        status = Status.OK;
        bytesDone = 0;
        faultAddress = 0;
        faultType = null;
        code = 0;
        description = null;
    }

    void done(long bytes) {
        bytesDone = bytes;
    }

    void fault(long address, long bytes, FaultType type, int faultCode, String text) {
        status = Status.FAULT;
        faultAddress = address;
        bytesDone = bytes;
        faultType = type;
        code = faultCode;
        description = text;
    }

    void unimplemented(long bytes, String text) {
        status = Status.UNIMPLEMENTED;
        bytesDone = bytes;
        description = text;
    }

    public Status status() {
        return status;
    }

    public boolean isOk() {
        return status == Status.OK;
    }

    public long bytesDone() {
        return bytesDone;
    }

    public long faultAddress() {
        return faultAddress;
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
        return switch (status) {
            case OK -> "OK " + bytesDone + " bytes";
            case FAULT -> "FAULT " + faultType + " at " + Bits.hex(faultAddress) + " code=" + Bits.hex(code)
                    + " after " + bytesDone + " bytes: " + description;
            case UNIMPLEMENTED -> "UNIMPLEMENTED: " + description;
        };
    }
}
