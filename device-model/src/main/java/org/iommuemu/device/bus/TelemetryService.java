package org.iommuemu.device.bus;

import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.machine.AtcPort;
import org.iommuemu.device.machine.DeviceStats;
import org.iommuemu.device.machine.DriverEventLog;
import org.iommuemu.device.machine.DriverInstance;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.proto.v1.AtsStats;
import org.iommuemu.device.trace.TraceKind;
import org.iommuemu.proto.v1.CacheStats;
import org.iommuemu.proto.v1.CodeCount;
import org.iommuemu.proto.v1.DriverStats;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.StatsReply;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.TraceBatch;
import org.iommuemu.proto.v1.TraceRequest;

/** Counters of the IOMMU instances, and their live trace ({@link TraceStream}). */
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
                reply.addIommus(instanceStats(machine, d));
            }
            return reply.setTraceWritten(machine.tracer().written()).build();
        });
    }

    /** The counters of instance {@code d} of {@code machine}, as Stats reports them (and /metrics exposes them). */
    static InstanceStats instanceStats(Machine machine, IommuDevice d) {
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
        if (DmaService.atsModelled(d)) { // "ats" only for instances that implement ATS
            AtcPort.Stats ats = d.atc().stats();
            b.setAts(AtsStats.newBuilder().setTranslationRequests(ats.translationRequests())
                    .setTranslatedRequests(ats.translatedRequests()).setInvalidationsSent(ats.sent())
                    .setInvalidationsCompleted(ats.completed()).setInvalidationsTimedOut(ats.timedOut())
                    .setInvalidationsWithoutDevice(ats.withoutDevice()));
        }
        machine.sanitizer().counts(d.name()).forEach((kind, n) -> b.addSanitizerReports(
                CodeCount.newBuilder().setCode(kind.code()).setName(kind.name()).setCount(n)));
        return b.build();
    }

    /** Most Trace calls open at once on one server. */
    static final int MAX_TRACE_STREAMS = 16;

    @Override
    public void trace(TraceRequest request, StreamObserver<TraceBatch> responses) {
        TraceStream stream;
        try {
            stream = open(request, (ServerCallStreamObserver<TraceBatch>) responses);
        } catch (BusError e) {
            responses.onError(e.toStatus());
            return;
        }
        stream.start();
    }

    private synchronized TraceStream open(TraceRequest request, ServerCallStreamObserver<TraceBatch> call) {
        List<String> names = machine.iommuNames();
        boolean[] instances = new boolean[names.size()];
        if (request.getIommusCount() == 0) {
            Arrays.fill(instances, true);
        }
        for (int i = 0; i < request.getIommusCount(); i++) {
            int at = names.indexOf(request.getIommus(i));
            if (at < 0) {
                throw BusError.notFound("iommus[" + i + "]: no IOMMU instance '" + request.getIommus(i)
                        + "' (instances: " + names + ")");
            }
            instances[at] = true;
        }
        boolean[] kinds = new boolean[TraceKind.LIMIT];
        if (request.getKindsCount() == 0) {
            Arrays.fill(kinds, true);
        }
        for (int i = 0; i < request.getKindsCount(); i++) {
            int k = request.getKindsValue(i);
            if (k <= 0 || k >= TraceKind.LIMIT) {
                throw BusError.invalidArgument("kinds[" + i + "]: " + k + " is not a trace kind (1.."
                        + (TraceKind.LIMIT - 1) + ")");
            }
            kinds[k] = true;
        }
        int maxBatch = request.getMaxBatch() == 0 ? 1024
                : Integer.compareUnsigned(request.getMaxBatch(), 4096) > 0 ? 4096 : request.getMaxBatch();
        int interval = request.getSampleIntervalMs() == 0 ? 50 : request.getSampleIntervalMs();
        if (Integer.compareUnsigned(interval, 60_000) > 0) {
            throw BusError.outOfRange("sample_interval_ms must be 1..60000, got "
                    + Integer.toUnsignedString(request.getSampleIntervalMs()));
        }
        if (machine.tracer().readers() >= MAX_TRACE_STREAMS) {
            throw BusError.resourceExhausted("at most " + MAX_TRACE_STREAMS + " Trace calls may be open at once;"
                    + " cancel one first");
        }
        return new TraceStream(machine, call, kinds, instances, maxBatch, interval * 1_000_000L);
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
