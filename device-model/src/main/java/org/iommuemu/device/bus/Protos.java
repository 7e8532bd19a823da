package org.iommuemu.device.bus;

import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.proto.v1.DmaFault;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.IommuKind;

/** Conversions between the machine's types and the bus messages. */
final class Protos {
    private Protos() {}

    static IommuKind kind(IommuType type) {
        return switch (type) {
            case SMMUV3 -> IommuKind.SMMUV3;
            case VTD -> IommuKind.VTD;
        };
    }

    static FaultKind faultKind(FaultType type) {
        return switch (type) {
            case TRANSLATION -> FaultKind.TRANSLATION;
            case PERMISSION -> FaultKind.PERMISSION;
            case ACCESS_FLAG -> FaultKind.ACCESS_FLAG;
            case ADDRESS_SIZE -> FaultKind.ADDRESS_SIZE;
            case EXTERNAL_ABORT -> FaultKind.EXTERNAL_ABORT;
            case BAD_CONFIGURATION -> FaultKind.BAD_CONFIGURATION;
            case ABORTED -> FaultKind.ABORTED;
        };
    }

    /** The bus fault of a faulted DMA outcome. */
    static DmaFault fault(DmaOutcome out) {
        DmaFault.Builder b = DmaFault.newBuilder()
                .setKind(faultKind(out.faultType()))
                .setAddress(out.faultAddress())
                .setCode(out.code())
                .setBytesDone(out.bytesDone());
        if (out.description() != null) {
            b.setDescription(out.description());
        }
        return b.build();
    }
}
