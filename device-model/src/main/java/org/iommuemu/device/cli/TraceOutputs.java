package org.iommuemu.device.cli;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.iommuemu.device.BuildInfo;
import org.iommuemu.device.scenario.ScenarioRunner;
import org.iommuemu.device.trace.ChromeTrace;
import org.iommuemu.device.trace.HtmlReport;
import org.iommuemu.device.trace.TraceCollector;
import org.iommuemu.device.trace.Tracer;

/**
 * What {@code run --trace FILE} and {@code run --report FILE.html} need from a run: a {@link TraceCollector} on the
 * run's bus from the moment it connects until its steps are done, then the Chrome trace and the HTML page.
 */
final class TraceOutputs implements ScenarioRunner.Observer {
    /** How long to wait for the trace stream to catch up once the steps are done. */
    static final long CATCH_UP_MILLIS = 30_000;

    private final PrintWriter out;
    private TraceCollector collector;
    private List<String> instances = List.of();
    private List<ScenarioRunner.DeviceInfo> devices = List.of();
    private String problem;
    private String traceBufferHint = "give a larger trace buffer";
    private String driverTrackNote;

    TraceOutputs(PrintWriter out) {
        this.out = out;
    }

    /** How the user gets a larger ring, for the warning about lost records ("give run a larger --trace-buffer"). */
    void traceBufferHint(String hint) {
        traceBufferHint = hint;
    }

    /** Why the driver track is empty (a warning now, {@code otherData.driver_track} in the trace); null: it is not. */
    void driverTrackNote(String note) {
        driverTrackNote = note;
        out.println("warning: driver track " + note);
    }

    @Override
    public void connected(ManagedChannel channel, List<String> instances, List<ScenarioRunner.DeviceInfo> devices) {
        this.instances = instances;
        this.devices = devices;
        collector = TraceCollector.start(channel, instances, List.of());
    }

    @Override
    public void stepsDone(long traceWritten) {
        if (collector == null) {
            return;
        }
        try {
            if (!collector.awaitCaughtUp(traceWritten, CATCH_UP_MILLIS)) {
                problem = "the trace stream did not catch up within " + CATCH_UP_MILLIS / 1000 + " s; the trace"
                        + " may miss the run's last records";
            }
        } catch (StatusRuntimeException e) {
            problem = e.getStatus().getCode() == Status.Code.UNIMPLEMENTED
                    ? "the server does not offer Telemetry.Trace (an older iommu-emu); the trace is empty"
                    : "the trace stream failed: " + e.getStatus().getCode() + ": " + e.getStatus().getDescription();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            problem = "interrupted while waiting for the trace";
        } finally {
            collector.close();
        }
        if (problem != null) {
            out.println("warning: " + problem);
        }
        if (collector.dropped() > 0) {
            out.println("warning: the trace lost " + collector.dropped() + " record(s): the server's ring ("
                    + collector.ringCapacity() + " records) wrapped before they were streamed; "
                    + traceBufferHint + " (" + suggestedRing(collector.cursor(), collector.ringCapacity())
                    + " records would hold the whole run)");
        }
    }

    /**
     * A ring size that holds {@code records} (the records the run made) at once: the power of two at or above
     * it, at least twice {@code capacity}, at most {@link Tracer#MAX_CAPACITY}.
     */
    static long suggestedRing(long records, long capacity) {
        long want = Math.max(records, 2 * capacity);
        long ring = want <= 1 ? 1 : Long.highestOneBit(want - 1) << 1;
        return Math.max(Tracer.MIN_CAPACITY, Math.min(ring, Tracer.MAX_CAPACITY));
    }

    /** Writes the Chrome trace-event JSON of the run to {@code file}. */
    void writeTrace(Path file, Map<String, Object> report) throws IOException {
        Map<String, Object> other = new LinkedHashMap<>();
        other.put("scenario", report.get("scenario"));
        other.put("transport", report.get("transport"));
        other.put("iommu_emu_version", BuildInfo.version());
        other.put("records", collector == null ? 0 : collector.records().size());
        other.put("dropped_records", collector == null ? 0 : collector.dropped());
        other.put("records_not_kept", collector == null ? 0 : collector.notKept());
        other.put("ring_capacity", collector == null ? 0 : collector.ringCapacity());
        if (problem != null) {
            other.put("problem", problem);
        }
        if (driverTrackNote != null) {
            other.put("driver_track", driverTrackNote);
        }
        try (OutputStream o = Files.newOutputStream(file)) {
            new ChromeTrace(instances, devices).write(o, collector == null ? List.of() : collector.records(), other);
        }
    }

    /** Writes the HTML report of the run to {@code file}. */
    void writeHtml(Path file, Map<String, Object> report) throws IOException {
        Map<String, Object> page = report;
        if (driverTrackNote != null) {
            page = new LinkedHashMap<>(report);
            page.put("driver_track", driverTrackNote);
        }
        Files.writeString(file, HtmlReport.render(page, collector == null ? List.of() : collector.records(),
                collector == null ? 0 : collector.dropped()), StandardCharsets.UTF_8);
    }
}
