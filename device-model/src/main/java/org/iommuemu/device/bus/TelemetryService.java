package org.iommuemu.device.bus;

import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.machine.AtcPort;
import org.iommuemu.device.machine.DeviceStats;
import org.iommuemu.device.machine.DriverEventLog;
import org.iommuemu.device.machine.DriverInstance;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.proto.v1.AtsStats;
import org.iommuemu.proto.v1.CacheStats;
import org.iommuemu.proto.v1.CodeCount;
import org.iommuemu.proto.v1.DriverStats;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.StatsReply;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;

/** Counters of the IOMMU instances. */
final class TelemetryService extends TelemetryGrpc.TelemetryImplBase {
    private final Machine machine;

    TelemetryService(Machine machine) {
        this.machine = machine;
    }

    @Override
    public void stats(StatsRequest request, StreamObserver<StatsReply> responses) {
        Calls.unary(responses, () -> {
            List<IommuDevice> devices = new ArrayList<>();
            if (request.getIommusCount() == 0) {
                devices.addAll(machine.iommus());
            } else {
                for (String name : request.getIommusList()) {
                    devices.add(MachineService.device(machine, name));
                }
            }
            StatsReply.Builder reply = StatsReply.newBuilder();
            for (IommuDevice d : devices) {
                InstanceStats.Builder b = toProto(d.name(), d.stats()).toBuilder();
                DriverInstance o = machine.driverHost().owned(d.name());
                if (o != null) {
                    b.setDriver(driverStats(o.events().since(Long.MAX_VALUE)));
                }
                InstanceFaults injected = machine.faults().instance(d.name());
                if (injected != null) {
                    injected.firedByKind().forEach((kind, n) -> b.addInjectedFaults(CodeCount.newBuilder()
                            .setCode(kind.number()).setName(kind.name()).setCount(n)));
                }
                if (d.atc() != null) {
                    AtcPort.Stats ats = d.atc().stats();
                    b.setAts(AtsStats.newBuilder().setTranslationRequests(ats.translationRequests())
                            .setTranslatedRequests(ats.translatedRequests()).setInvalidationsSent(ats.sent())
                            .setInvalidationsCompleted(ats.completed()).setInvalidationsTimedOut(ats.timedOut())
                            .setInvalidationsWithoutDevice(ats.withoutDevice()));
                }
                machine.sanitizer().counts(d.name()).forEach((kind, n) -> b.addSanitizerReports(
                        CodeCount.newBuilder().setCode(kind.code()).setName(kind.name()).setCount(n)));
                reply.addIommus(b);
            }
            return reply.build();
        });
    }

    /** The driver's counters from its event log (records not included). */
    static DriverStats driverStats(DriverEventLog.Snapshot snap) {
        DriverStats.Builder b = DriverStats.newBuilder().setOwned(true).setEventOverflows(snap.overflows())
                .setGlobalErrors(snap.globalErrors()).setCommandErrors(snap.commandErrors());
        snap.countsByType().forEach((type, count) -> b.addEventsRead(CodeCount.newBuilder().setCode(type)
                .setName(snap.typeNames().getOrDefault(type, "")).setCount(count)));
        return b.build();
    }

    static InstanceStats toProto(String name, DeviceStats s) {
        InstanceStats.Builder b = InstanceStats.newBuilder()
                .setIommu(name)
                .setTranslations(s.translations())
                .setFaults(s.faults())
                .setWalks(s.walks())
                .setWalkReads(s.walkReads())
                .setMmioReads(s.mmioReads())
                .setMmioWrites(s.mmioWrites())
                .setEventsLost(s.eventsLost())
                .setGlobalErrors(s.globalErrors())
                .setSimTimeNs(s.simTimeNs())
                .setInterrupts(s.interrupts());
        for (DeviceStats.CacheStat c : s.caches()) {
            b.addCaches(CacheStats.newBuilder().setCache(c.cache()).setHits(c.hits()).setMisses(c.misses())
                    .setInserts(c.inserts()).setEvictions(c.evictions()).setInvalidated(c.invalidated())
                    .setEntries(c.entries()).setCapacity(c.capacity()));
        }
        for (DeviceStats.CodeCount c : s.commands()) {
            b.addCommands(CodeCount.newBuilder().setCode(c.code()).setName(c.name()).setCount(c.count()));
        }
        for (DeviceStats.CodeCount c : s.events()) {
            b.addEvents(CodeCount.newBuilder().setCode(c.code()).setName(c.name()).setCount(c.count()));
        }
        return b.build();
    }
}
