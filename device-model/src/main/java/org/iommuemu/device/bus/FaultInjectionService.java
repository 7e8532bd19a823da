package org.iommuemu.device.bus;

import io.grpc.stub.StreamObserver;
import org.iommuemu.device.inject.FaultInjector;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.inject.FaultSpecException;
import org.iommuemu.device.inject.InjectionLog;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.proto.v1.ClearFaultsReply;
import org.iommuemu.proto.v1.ClearFaultsRequest;
import org.iommuemu.proto.v1.FaultInjectionGrpc;
import org.iommuemu.proto.v1.FaultStatus;
import org.iommuemu.proto.v1.InjectReply;
import org.iommuemu.proto.v1.InjectRequest;
import org.iommuemu.proto.v1.InjectionRecord;
import org.iommuemu.proto.v1.ListFaultsReply;
import org.iommuemu.proto.v1.ListFaultsRequest;

/**
 * The machine's {@link FaultInjector} on the bus. Refusals: INVALID_ARGUMENT naming the field, UNIMPLEMENTED for a
 * kind not implemented yet, NOT_FOUND for an unknown instance or fault id, OUT_OF_RANGE for memory outside RAM.
 */
final class FaultInjectionService extends FaultInjectionGrpc.FaultInjectionImplBase {
    private final Machine machine;

    FaultInjectionService(Machine machine) {
        this.machine = machine;
    }

    @Override
    public void inject(InjectRequest request, StreamObserver<InjectReply> responses) {
        Calls.unary(responses, () -> {
            if (!request.hasSpec()) {
                throw BusError.invalidArgument("spec is required");
            }
            try {
                long id = machine.faults().inject(FaultSpec.fromProto(request.getSpec()));
                return InjectReply.newBuilder().setFaultId(id).build();
            } catch (FaultSpecException e) {
                throw toBusError("spec.", e);
            }
        });
    }

    @Override
    public void list(ListFaultsRequest request, StreamObserver<ListFaultsReply> responses) {
        Calls.unary(responses, () -> {
            String iommu = request.getIommu();
            if (!iommu.isEmpty()) {
                MachineService.device(machine, iommu);
            }
            FaultInjector faults = machine.faults();
            ListFaultsReply.Builder b = ListFaultsReply.newBuilder();
            for (FaultInjector.Status s : faults.list(iommu)) {
                b.addFaults(FaultStatus.newBuilder().setFaultId(s.id()).setSpec(s.spec().toProto())
                        .setOpportunities(s.opportunities()).setFires(s.fires()).setExhausted(s.exhausted()));
            }
            InjectionLog log = faults.log();
            b.setLastSequence(log.lastSequence());
            for (InjectionLog.Record r : log.since(request.getRecordsAfter())) {
                if (iommu.isEmpty() || iommu.equals(r.iommu())) {
                    b.addRecords(InjectionRecord.newBuilder().setSequence(r.sequence()).setFaultId(r.faultId())
                            .setKindValue(r.kind().number()).setIommu(r.iommu()).setSimTimeNs(r.simTimeNs())
                            .setCode(r.code()).setAddress(r.address()).setDetail(r.detail()));
                }
            }
            return b.build();
        });
    }

    @Override
    public void clear(ClearFaultsRequest request, StreamObserver<ClearFaultsReply> responses) {
        Calls.unary(responses, () -> {
            ClearFaultsReply.Builder b = ClearFaultsReply.newBuilder();
            if (request.getAll()) {
                if (request.getFaultId() != 0) {
                    throw BusError.invalidArgument("fault_id: give a fault id or all, not both");
                }
                b.addAllCleared(machine.faults().clearAll());
                return b.build();
            }
            if (request.getFaultId() == 0) {
                throw BusError.invalidArgument("fault_id is required (or all: true)");
            }
            try {
                machine.faults().clear(request.getFaultId());
            } catch (FaultSpecException e) {
                throw toBusError("", e);
            }
            return b.addCleared(request.getFaultId()).build();
        });
    }

    private static BusError toBusError(String prefix, FaultSpecException e) {
        String message = e.field().isEmpty() ? e.getMessage() : prefix + e.getMessage();
        if (e instanceof FaultSpecException.Unimplemented) {
            return BusError.unimplemented(message);
        }
        if (e instanceof FaultSpecException.NotFound) {
            return BusError.notFound(message);
        }
        if (e instanceof FaultSpecException.OutOfRange) {
            return BusError.outOfRange(message);
        }
        return BusError.invalidArgument(message);
    }
}
