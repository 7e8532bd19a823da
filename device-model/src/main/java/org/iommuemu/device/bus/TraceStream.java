package org.iommuemu.device.bus;

import io.grpc.StatusRuntimeException;
import io.grpc.stub.ServerCallStreamObserver;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.machine.DeviceStats;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.trace.DriverOp;
import org.iommuemu.device.trace.TraceKind;
import org.iommuemu.device.trace.TraceReader;
import org.iommuemu.device.trace.Tracer;
import org.iommuemu.proto.v1.TraceBatch;
import org.iommuemu.proto.v1.TraceRecord;

/**
 * One {@code Telemetry.Trace} call: a {@link TraceReader} on the machine's ring, drained every few milliseconds
 * by a shared daemon thread into batches the call sends while gRPC says it is ready. A subscriber that does not read
 * makes the call not ready; its reader then falls behind and the ring overwrites what it missed (counted as
 * dropped). Nothing here blocks a writer or buffers beyond one batch.
 */
final class TraceStream {
    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(TraceStream.class);
    /** How often each stream is drained. */
    static final long PUMP_MILLIS = 10;

    private static final ScheduledExecutorService PUMP = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "iommu-emu-trace");
        t.setDaemon(true);
        return t;
    });

    private final Machine machine;
    private final List<IommuDevice> devices;
    private final Tracer tracer;
    private final TraceReader reader;
    private final ServerCallStreamObserver<TraceBatch> call;
    private final boolean[] kinds;
    private final boolean[] instances;
    private final int maxBatch;
    private final long sampleNanos;
    private final long[] buf;
    private final long[] lastSampled;
    private long lastSampleAt;
    private long sentCursor = -1;
    private long sentDropped = -1;
    /** Whether the last batch sent was an idle one (the subscriber knows it is caught up). */
    private boolean idleSent;
    /** Records went out since the last cache sample: sample once caught up, with the idle batch. */
    private boolean samplePending;
    private ScheduledFuture<?> task;
    private volatile boolean closed;

    TraceStream(Machine machine, ServerCallStreamObserver<TraceBatch> call, boolean[] kinds, boolean[] instances,
            int maxBatch, long sampleNanos) {
        this.machine = machine;
        this.tracer = machine.tracer();
        this.devices = machine.iommus();
        this.call = call;
        this.kinds = kinds;
        this.instances = instances;
        this.maxBatch = maxBatch;
        this.sampleNanos = sampleNanos;
        this.buf = new long[maxBatch * Tracer.STRIDE];
        this.lastSampled = new long[instances.length];
        java.util.Arrays.fill(lastSampled, -1);
        this.reader = tracer.open();
    }

    /** Starts draining; the call's cancellation (or a failed send) closes the stream. */
    void start() {
        call.setOnCancelHandler(this::close);
        lastSampleAt = System.nanoTime();
        task = PUMP.scheduleWithFixedDelay(this::pump, 0, PUMP_MILLIS, TimeUnit.MILLISECONDS);
    }

    /** Stops reading: recording stops once no stream is left. Idempotent. */
    void close() {
        if (closed) {
            return;
        }
        closed = true;
        ScheduledFuture<?> t = task;
        if (t != null) {
            t.cancel(false);
        }
        synchronized (this) {
            reader.close();
        }
    }

    private synchronized void pump() {
        if (closed) {
            return;
        }
        try {
            boolean sent = false;
            while (call.isReady()) {
                int n = reader.poll(buf, maxBatch);
                if (n == 0) {
                    break;
                }
                TraceBatch.Builder b = batch();
                for (int i = 0; i < n; i++) {
                    add(b, i * Tracer.STRIDE);
                }
                send(b);
                sent = true;
                if (n < maxBatch) {
                    break;
                }
            }
            samplePending |= sent; // also when the subscriber is behind now: the idle batch that follows samples
            if (!call.isReady()) {
                return; // the subscriber is behind; its reader keeps its place and the ring decides what survives
            }
            TraceBatch.Builder b = batch().setIdle(true);
            long now = System.nanoTime();
            boolean sampled = false;
            if (kinds[TraceKind.CACHE_SAMPLE] && (samplePending || now - lastSampleAt >= sampleNanos)) {
                sampled = sample(b);
                lastSampleAt = now;
                samplePending = false;
            }
            if (!idleSent || sampled || reader.cursor() != sentCursor || reader.dropped() != sentDropped) {
                send(b);
            }
        } catch (StatusRuntimeException | IllegalStateException e) {
            close(); // the call is gone
        } catch (RuntimeException e) {
            log.error("bug while streaming a trace; the stream ends", e);
            close();
            try {
                call.onError(io.grpc.Status.INTERNAL.withDescription("trace stream failed: " + e).asRuntimeException());
            } catch (RuntimeException ignored) {
                // the call is gone already
            }
        }
    }

    private TraceBatch.Builder batch() {
        return TraceBatch.newBuilder().setRingCapacity(reader.capacity());
    }

    private void send(TraceBatch.Builder b) {
        b.setCursor(reader.cursor()).setDropped(reader.dropped());
        sentCursor = reader.cursor();
        sentDropped = reader.dropped();
        idleSent = b.getIdle();
        call.onNext(b.build());
    }

    /** Adds one cache-sample record per cache of each selected instance whose counters moved; true if any. */
    private boolean sample(TraceBatch.Builder b) {
        boolean any = false;
        List<IommuDevice> all = devices;
        for (int i = 0; i < all.size() && i < instances.length; i++) {
            if (!instances[i]) {
                continue;
            }
            IommuDevice d = all.get(i);
            DeviceStats s = d.stats();
            long moved = s.translations();
            for (DeviceStats.CacheStat c : s.caches()) {
                moved += c.hits() + c.misses() + c.invalidated();
            }
            if (moved == lastSampled[i]) {
                continue;
            }
            lastSampled[i] = moved;
            long sim = s.simTimeNs();
            long wall = System.nanoTime();
            for (DeviceStats.CacheStat c : s.caches()) {
                b.addRecords(TraceRecord.newBuilder().setKind(org.iommuemu.proto.v1.TraceKind.TRACE_CACHE_SAMPLE)
                        .setIommu(d.name()).setSimTimeNs(sim).setWallTimeNs(wall).setSubstream(-1)
                        .setName(c.cache()).setAddress(c.hits()).setSize(c.misses()).setExtra(c.entries()));
                any = true;
            }
        }
        return any;
    }

    private void add(TraceBatch.Builder b, int at) {
        int kind = (int) buf[at + Tracer.F_KIND];
        int track = (int) buf[at + Tracer.F_IOMMU];
        if (kind <= 0 || kind >= TraceKind.LIMIT || !kinds[kind]) {
            return;
        }
        if (track >= 0 && (track >= instances.length || !instances[track])) {
            return;
        }
        IommuDevice device = track >= 0 ? devices.get(track) : null;
        long code = buf[at + Tracer.F_CODE];
        long duration = buf[at + Tracer.F_DURATION];
        TraceRecord.Builder r = TraceRecord.newBuilder()
                .setKindValue(kind)
                .setSimTimeNs(buf[at + Tracer.F_SIM])
                .setWallTimeNs(buf[at + Tracer.F_WALL])
                .setStream((int) buf[at + Tracer.F_STREAM])
                .setSubstream((int) buf[at + Tracer.F_SUBSTREAM])
                .setAddress(buf[at + Tracer.F_ADDRESS])
                .setSize(buf[at + Tracer.F_SIZE])
                .setCode((int) code)
                .setResult(buf[at + Tracer.F_RESULT])
                .setExtra(buf[at + Tracer.F_EXTRA]);
        if (device != null) {
            r.setIommu(device.name());
        }
        if (kind == TraceKind.TRANSLATE) {
            r.setDurationNs(duration & ((1L << 48) - 1)).setWalkReads((int) (duration >>> 48));
        } else {
            r.setDurationNs(duration);
        }
        String name = name(kind, device, code);
        if (name != null) {
            r.setName(name);
        }
        b.addRecords(r);
    }

    private static final String[] IRQ_SOURCES = {"", "eventq", "gerror", "priq", "cmd-sync", "fault-event",
        "inv-completion"};

    /** The name of a record's code, or null. */
    static String name(int kind, IommuDevice device, long code) {
        int c = (int) code;
        return switch (kind) {
            case TraceKind.COMMAND -> device == null ? null : device.commandCodeName(c);
            case TraceKind.EVENT -> device == null ? null : device.eventCodeName(c);
            case TraceKind.TRANSLATE -> c == 0 || device == null ? null : device.eventCodeName(c);
            case TraceKind.DMA -> c == 0 || c > FaultType.values().length ? null : FaultType.values()[c - 1].name();
            case TraceKind.INTERRUPT -> c >= 0 && c < IRQ_SOURCES.length ? IRQ_SOURCES[c] : null;
            case TraceKind.INJECTION -> {
                InjectionKind k = InjectionKind.byNumber(c);
                yield k == null ? null : k.name();
            }
            case TraceKind.DRIVER -> DriverOp.of(c).name();
            case TraceKind.QUEUE -> c == TraceKind.QUEUE_COMMAND ? "command" : "invalidation";
            default -> null;
        };
    }
}
