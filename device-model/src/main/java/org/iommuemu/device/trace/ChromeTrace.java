package org.iommuemu.device.trace;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.IOException;
import java.io.OutputStream;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.iommuemu.device.scenario.ScenarioRunner;
import org.iommuemu.proto.v1.TraceRecord;

/**
 * Writes trace records as Chrome trace-event JSON ({@code {"traceEvents": [...], "displayTimeUnit": "ns",
 * "otherData": {...}}}), which Perfetto and chrome://tracing open. Tracks: a process per IOMMU instance (thread 1
 * translations, thread 2 commands, events, interrupts and injections, plus counters), a "devices" process with a
 * thread per device (stream) carrying its DMA, and a "driver" process for the driver's operations. {@code ts} and
 * {@code dur} are SIMULATED time in microseconds (the instance's clock); wall time is in each event's args.
 */
public final class ChromeTrace {
    /** Process id of the devices. */
    static final int DEVICES_PID = 1000;
    /** Process id of the driver. */
    static final int DRIVER_PID = 1001;

    private final List<String> iommus;
    private final List<ScenarioRunner.DeviceInfo> devices;
    private final Map<String, Integer> deviceTids = new LinkedHashMap<>();
    private final Map<String, String> deviceNames = new HashMap<>();

    /** A writer for a run on {@code iommus} (the process order) with the scenario's {@code devices}. */
    public ChromeTrace(List<String> iommus, List<ScenarioRunner.DeviceInfo> devices) {
        this.iommus = List.copyOf(iommus);
        this.devices = List.copyOf(devices);
        for (ScenarioRunner.DeviceInfo d : devices) {
            String key = d.iommu() + "/" + d.stream();
            deviceTids.putIfAbsent(key, deviceTids.size() + 1);
            deviceNames.putIfAbsent(key, d.name());
        }
    }

    /** Writes {@code records} to {@code out} with {@code otherData} (plus the time-unit note) and closes nothing. */
    public void write(OutputStream out, List<TraceRecord> records, Map<String, Object> otherData) throws IOException {
        // devices that appear in the records but not in the scenario (another client's) get a track too
        for (TraceRecord r : records) {
            if (r.getKind() == org.iommuemu.proto.v1.TraceKind.TRACE_DMA) {
                deviceTids.putIfAbsent(r.getIommu() + "/" + r.getStream(), deviceTids.size() + 1);
            }
        }
        try (JsonGenerator g = new JsonFactory().createGenerator(out, JsonEncoding.UTF8)) {
            g.disable(JsonGenerator.Feature.AUTO_CLOSE_TARGET);
            g.writeStartObject();
            g.writeArrayFieldStart("traceEvents");
            metadata(g);
            Map<String, long[]> samples = new HashMap<>();
            for (TraceRecord r : records) {
                event(g, r, samples);
            }
            g.writeEndArray();
            g.writeStringField("displayTimeUnit", "ns");
            g.writeObjectFieldStart("otherData");
            g.writeStringField("time", "ts and dur are simulated time in microseconds (each IOMMU instance's clock;"
                    + " device and driver events use their instance's / the latest instance clock); wall_ns in args"
                    + " is the server's System.nanoTime");
            for (Map.Entry<String, Object> e : otherData.entrySet()) {
                g.writeFieldName(e.getKey());
                writeValue(g, e.getValue());
            }
            g.writeEndObject();
            g.writeEndObject();
        }
    }

    private static void writeValue(JsonGenerator g, Object v) throws IOException {
        if (v == null) {
            g.writeNull();
        } else if (v instanceof Number n) {
            g.writeNumber(n.longValue());
        } else if (v instanceof Boolean b) {
            g.writeBoolean(b);
        } else {
            g.writeString(v.toString());
        }
    }

    private void metadata(JsonGenerator g) throws IOException {
        for (int i = 0; i < iommus.size(); i++) {
            name(g, "process_name", i + 1, 0, "IOMMU " + iommus.get(i));
            sortIndex(g, i + 1, i);
            name(g, "thread_name", i + 1, 1, "translations");
            name(g, "thread_name", i + 1, 2, "commands, events, interrupts");
        }
        name(g, "process_name", DEVICES_PID, 0, "devices");
        sortIndex(g, DEVICES_PID, iommus.size());
        for (Map.Entry<String, Integer> e : deviceTids.entrySet()) {
            String[] k = e.getKey().split("/", 2);
            String n = deviceNames.get(e.getKey());
            name(g, "thread_name", DEVICES_PID, e.getValue(), (n != null ? "device " + n : "device") + " (" + k[0]
                    + " stream " + k[1] + ")");
        }
        name(g, "process_name", DRIVER_PID, 0, "driver");
        sortIndex(g, DRIVER_PID, iommus.size() + 1);
        name(g, "thread_name", DRIVER_PID, 1, "driver");
        name(g, "thread_name", DRIVER_PID, 2, "injections (no instance)");
    }

    private static void name(JsonGenerator g, String what, int pid, int tid, String name) throws IOException {
        g.writeStartObject();
        g.writeStringField("name", what);
        g.writeStringField("ph", "M");
        g.writeNumberField("pid", pid);
        g.writeNumberField("tid", tid);
        g.writeNumberField("ts", 0);
        g.writeObjectFieldStart("args");
        g.writeStringField("name", name);
        g.writeEndObject();
        g.writeEndObject();
    }

    private static void sortIndex(JsonGenerator g, int pid, int index) throws IOException {
        g.writeStartObject();
        g.writeStringField("name", "process_sort_index");
        g.writeStringField("ph", "M");
        g.writeNumberField("pid", pid);
        g.writeNumberField("tid", 0);
        g.writeNumberField("ts", 0);
        g.writeObjectFieldStart("args");
        g.writeNumberField("sort_index", index);
        g.writeEndObject();
        g.writeEndObject();
    }

    private int pid(TraceRecord r) {
        int i = iommus.indexOf(r.getIommu());
        return i < 0 ? -1 : i + 1;
    }

    private static double us(long ns) {
        return ns / 1000.0;
    }

    private static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    private void start(JsonGenerator g, String name, String cat, String ph, int pid, int tid, long simNs)
            throws IOException {
        g.writeStartObject();
        g.writeStringField("name", name);
        g.writeStringField("cat", cat);
        g.writeStringField("ph", ph);
        g.writeNumberField("pid", pid);
        g.writeNumberField("tid", tid);
        g.writeNumberField("ts", us(simNs));
        if (ph.equals("i")) {
            g.writeStringField("s", "t");
        }
    }

    private void event(JsonGenerator g, TraceRecord r, Map<String, long[]> samples) throws IOException {
        int pid = pid(r);
        switch (r.getKind()) {
            case TRACE_TRANSLATE -> {
                if (pid < 0) {
                    return;
                }
                String name = r.getResult() == 1 ? "fault " + (r.getName().isEmpty() ? "" : r.getName())
                        : r.getResult() == 2 ? "unimplemented" : r.getExtra() == 1 ? "IOTLB hit"
                        : r.getExtra() == 2 ? "IOTLB miss (walk)" : "translate";
                start(g, name.trim(), "translation", "X", pid, 1, r.getSimTimeNs());
                g.writeNumberField("dur", us(r.getDurationNs()));
                g.writeObjectFieldStart("args");
                g.writeNumberField("stream", r.getStream());
                g.writeNumberField("substream", r.getSubstream());
                g.writeStringField("iova", hex(r.getAddress()));
                g.writeNumberField("bytes", r.getSize());
                g.writeNumberField("walk_reads", r.getWalkReads());
                g.writeNumberField("wall_ns", r.getWallTimeNs());
                g.writeEndObject();
                g.writeEndObject();
            }
            case TRACE_DMA -> {
                Integer tid = deviceTids.get(r.getIommu() + "/" + r.getStream());
                start(g, r.getExtra() == 1 ? "DMA write" : "DMA read", "dma", "X", DEVICES_PID,
                        tid == null ? 0 : tid, r.getSimTimeNs());
                g.writeNumberField("dur", us(r.getDurationNs()));
                g.writeObjectFieldStart("args");
                g.writeStringField("iommu", r.getIommu());
                g.writeStringField("iova", hex(r.getAddress()));
                g.writeNumberField("length", r.getSize());
                g.writeNumberField("bytes_done", r.getResult());
                g.writeStringField("fault", r.getName().isEmpty() ? "none" : r.getName());
                g.writeNumberField("wall_ns", r.getWallTimeNs());
                g.writeEndObject();
                g.writeEndObject();
            }
            case TRACE_COMMAND, TRACE_EVENT, TRACE_GLOBAL_ERROR, TRACE_INTERRUPT -> {
                if (pid < 0) {
                    return;
                }
                String cat = switch (r.getKind()) {
                    case TRACE_COMMAND -> "command";
                    case TRACE_EVENT -> "event";
                    case TRACE_GLOBAL_ERROR -> "global_error";
                    default -> "interrupt";
                };
                String name = switch (r.getKind()) {
                    case TRACE_COMMAND -> r.getName();
                    case TRACE_EVENT -> "event " + r.getName();
                    case TRACE_GLOBAL_ERROR -> "global error";
                    default -> "IRQ " + r.getName() + " " + switch ((int) r.getResult()) {
                        case TraceKind.IRQ_DROPPED -> "dropped";
                        case TraceKind.IRQ_DELAYED -> "delayed";
                        case TraceKind.IRQ_MSI_FAILED -> "MSI write failed";
                        default -> "delivered";
                    };
                };
                start(g, name, cat, "i", pid, 2, r.getSimTimeNs());
                g.writeObjectFieldStart("args");
                g.writeNumberField("code", r.getCode());
                if (r.getKind() == org.iommuemu.proto.v1.TraceKind.TRACE_INTERRUPT) {
                    g.writeStringField("address", hex(r.getAddress()));
                }
                g.writeNumberField("wall_ns", r.getWallTimeNs());
                g.writeEndObject();
                g.writeEndObject();
            }
            case TRACE_INJECTION -> {
                start(g, "inject " + r.getName(), "injection", "i", pid < 0 ? DRIVER_PID : pid, 2,
                        r.getSimTimeNs());
                g.writeObjectFieldStart("args");
                g.writeNumberField("fault_id", r.getExtra());
                g.writeStringField("address", hex(r.getAddress()));
                g.writeNumberField("wall_ns", r.getWallTimeNs());
                g.writeEndObject();
                g.writeEndObject();
            }
            case TRACE_DRIVER -> {
                start(g, r.getName(), "driver", "i", DRIVER_PID, 1, r.getSimTimeNs());
                g.writeObjectFieldStart("args");
                g.writeNumberField("domain", r.getStream());
                g.writeStringField("iova", hex(r.getAddress()));
                g.writeNumberField("bytes", r.getSize());
                g.writeBooleanField("ok", r.getResult() == 0);
                g.writeNumberField("wall_ns", r.getWallTimeNs());
                g.writeEndObject();
                g.writeEndObject();
            }
            case TRACE_QUEUE -> {
                if (pid < 0) {
                    return;
                }
                start(g, r.getName() + " queue occupancy", "queue", "C", pid, 0, r.getSimTimeNs());
                g.writeObjectFieldStart("args");
                g.writeNumberField("entries", r.getSize());
                g.writeEndObject();
                g.writeEndObject();
            }
            case TRACE_CACHE_SAMPLE -> {
                if (pid < 0) {
                    return;
                }
                // hit rate over the lookups since the previous sample (or since the start, for the first)
                String key = r.getIommu() + "/" + r.getName();
                long[] prev = samples.computeIfAbsent(key, k -> new long[] {-1, 0});
                long hits = r.getAddress();
                long misses = r.getSize();
                double rate;
                if (prev[0] < 0) {
                    rate = hits + misses == 0 ? 0 : 100.0 * hits / (hits + misses);
                } else {
                    long h = hits - prev[0];
                    long m = misses - prev[1];
                    rate = h + m == 0 ? -1 : 100.0 * h / (h + m);
                }
                prev[0] = hits;
                prev[1] = misses;
                if (rate < 0) {
                    return; // no lookups since the last sample: nothing to say
                }
                start(g, r.getName() + " hit rate %", "cache", "C", pid, 0, r.getSimTimeNs());
                g.writeObjectFieldStart("args");
                g.writeNumberField("hit_rate", Math.round(rate * 10) / 10.0);
                g.writeEndObject();
                g.writeEndObject();
            }
            default -> {
            }
        }
    }
}
