package org.iommuemu.dma;

import com.google.protobuf.ByteString;
import org.iommuemu.proto.v1.DmaFault;

/**
 * The result of one DMA: the data read (reads), and the fault when the IOMMU refused the access. A
 * fault is a normal result, not an exception: the request was valid, the translation failed.
 *
 * @param data bytes read; with a fault, the bytes before the faulting address; empty for writes
 * @param fault the fault, or null
 */
public record DmaResult(ByteString data, DmaFault fault) {
    public boolean isOk() {
        return fault == null;
    }

    public boolean faulted() {
        return fault != null;
    }

    @Override
    public String toString() {
        if (fault == null) {
            return data.isEmpty() ? "OK" : "OK (" + data.size() + " bytes)";
        }
        return "FAULT " + fault.getKind() + " at 0x" + Long.toHexString(fault.getAddress()) + " code=0x"
                + Integer.toHexString(fault.getCode()) + " after " + fault.getBytesDone() + " bytes: "
                + fault.getDescription();
    }
}
