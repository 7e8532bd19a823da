package org.iommuemu.device.bus;

import io.prometheus.metrics.exporter.httpserver.HTTPServer;
import io.prometheus.metrics.model.registry.MultiCollector;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import io.prometheus.metrics.model.snapshots.MetricSnapshots;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.function.ToDoubleFunction;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.proto.v1.AtsStats;
import org.iommuemu.proto.v1.CacheStats;
import org.iommuemu.proto.v1.CodeCount;
import org.iommuemu.proto.v1.InstanceStats;

/**
 * {@code serve --metrics-port}: the machine's counters in the Prometheus text exposition format at
 * {@code http://HOST:PORT/metrics}, served by the Prometheus Java client's HTTP server. Every scrape takes one
 * snapshot per instance, the same one {@code Telemetry.Stats} returns ({@link TelemetryService#instanceStats}), and
 * nothing is counted twice: the IOMMUs' own counters are the source.
 */
public final class MetricsServer implements AutoCloseable {
    private final HTTPServer http;

    private MetricsServer(HTTPServer http) {
        this.http = http;
    }

    /**
     * Starts serving {@code machine}'s metrics on {@code host}:{@code port} (0: any free port).
     *
     * @throws IOException when the port cannot be bound
     */
    public static MetricsServer start(Machine machine, String host, int port) throws IOException {
        PrometheusRegistry registry = new PrometheusRegistry();
        registry.register(new Collector(machine));
        return new MetricsServer(HTTPServer.builder().hostname(host).port(port).registry(registry).buildAndStart());
    }

    /** The port it listens on. */
    public int port() {
        return http.getPort();
    }

    @Override
    public void close() {
        http.close();
    }

    /** Builds every metric family from one snapshot of every instance. */
    static final class Collector implements MultiCollector {
        private final Machine machine;

        Collector(Machine machine) {
            this.machine = machine;
        }

        /** One data point of a family: its labels and its value. */
        private record Sample(Labels labels, double value) {}

        @Override
        public MetricSnapshots collect() {
            List<InstanceStats> all = new ArrayList<>();
            for (IommuDevice d : machine.iommus()) {
                all.add(TelemetryService.instanceStats(machine, d));
            }
            List<MetricSnapshot> out = new ArrayList<>();
            out.add(counter("iommu_emu_translations", "Translations requested by DMA (one per translated chunk).",
                    perInstance(all, InstanceStats::getTranslations)));
            out.add(counter("iommu_emu_translation_faults", "Translations that ended in a fault or an abort.",
                    perInstance(all, InstanceStats::getFaults)));
            out.add(counter("iommu_emu_walks", "Page-table walks started (IOTLB misses that walked).",
                    perInstance(all, InstanceStats::getWalks)));
            out.add(counter("iommu_emu_walk_reads", "Descriptor reads page-table walks made from memory.",
                    perInstance(all, InstanceStats::getWalkReads)));
            out.add(counter("iommu_emu_mmio_reads", "Register reads through the MMIO window.",
                    perInstance(all, InstanceStats::getMmioReads)));
            out.add(counter("iommu_emu_mmio_writes", "Register writes through the MMIO window.",
                    perInstance(all, InstanceStats::getMmioWrites)));
            out.add(counter("iommu_emu_events_lost", "Event records that could not be written.",
                    perInstance(all, InstanceStats::getEventsLost)));
            out.add(counter("iommu_emu_global_errors", "Global errors raised (GERROR, IQE/ITE/ICE).",
                    perInstance(all, InstanceStats::getGlobalErrors)));
            out.add(counter("iommu_emu_interrupts", "Interrupts and MSI writes raised.",
                    perInstance(all, InstanceStats::getInterrupts)));
            out.add(counter("iommu_emu_sim_time_seconds", "Simulated time the instance's work cost under its cost"
                    + " model.", perInstance(all, s -> s.getSimTimeNs() / 1e9)));
            out.add(counter("iommu_emu_cache_hits", "Cache lookups that hit.", perCache(all, CacheStats::getHits)));
            out.add(counter("iommu_emu_cache_misses", "Cache lookups that missed.",
                    perCache(all, CacheStats::getMisses)));
            out.add(counter("iommu_emu_cache_inserts", "Cache entries inserted.",
                    perCache(all, CacheStats::getInserts)));
            out.add(counter("iommu_emu_cache_evictions", "Cache entries evicted by capacity.",
                    perCache(all, CacheStats::getEvictions)));
            out.add(counter("iommu_emu_cache_invalidated", "Cache entries removed by invalidations.",
                    perCache(all, CacheStats::getInvalidated)));
            out.add(gauge("iommu_emu_cache_entries", "Cache entries held now.", perCache(all, CacheStats::getEntries)));
            out.add(gauge("iommu_emu_cache_capacity", "Cache capacity in entries.",
                    perCache(all, CacheStats::getCapacity)));
            out.add(counter("iommu_emu_commands", "Commands / invalidation descriptors consumed, by opcode.",
                    perCode(all, "opcode", InstanceStats::getCommandsList)));
            out.add(counter("iommu_emu_events", "Event / fault records written, by type.",
                    perCode(all, "type", InstanceStats::getEventsList)));
            out.add(counter("iommu_emu_injected_faults", "Injected faults that fired, by kind.",
                    perCode(all, "kind", InstanceStats::getInjectedFaultsList)));
            out.add(counter("iommu_emu_ats_translation_requests", "ATS translation requests (Dma.Translate).",
                    perAtsInstance(all, AtsStats::getTranslationRequests)));
            out.add(counter("iommu_emu_ats_translated_requests", "ATS translated requests, passed without a walk.",
                    perAtsInstance(all, AtsStats::getTranslatedRequests)));
            out.add(counter("iommu_emu_ats_invalidations_sent", "ATC invalidations sent to devices.",
                    perAtsInstance(all, AtsStats::getInvalidationsSent)));
            out.add(counter("iommu_emu_ats_invalidations_completed", "ATC invalidations devices completed.",
                    perAtsInstance(all, AtsStats::getInvalidationsCompleted)));
            out.add(counter("iommu_emu_ats_invalidations_timed_out", "ATC invalidations no device answered in time"
                    + " (CERROR_ATC_INV_SYNC / ITE).", perAtsInstance(all, AtsStats::getInvalidationsTimedOut)));
            out.add(counter("iommu_emu_ats_invalidations_without_device", "ATC invalidations for a stream no ATS"
                    + " device was attached on (completed at once).",
                    perAtsInstance(all, AtsStats::getInvalidationsWithoutDevice)));
            out.add(counter("iommu_emu_trace_records", "Records the trace ring has taken (only while a"
                    + " Telemetry.Trace stream is open).", List.of(new Sample(Labels.EMPTY,
                            machine.tracer().written()))));
            out.add(gauge("iommu_emu_trace_streams", "Telemetry.Trace streams open now.",
                    List.of(new Sample(Labels.EMPTY, machine.tracer().readers()))));
            return new MetricSnapshots(out);
        }

        private static CounterSnapshot counter(String name, String help, List<Sample> samples) {
            CounterSnapshot.Builder b = CounterSnapshot.builder().name(name).help(help);
            for (Sample x : samples) {
                b.dataPoint(CounterSnapshot.CounterDataPointSnapshot.builder().labels(x.labels()).value(x.value())
                        .build());
            }
            return b.build();
        }

        private static GaugeSnapshot gauge(String name, String help, List<Sample> samples) {
            GaugeSnapshot.Builder b = GaugeSnapshot.builder().name(name).help(help);
            for (Sample x : samples) {
                b.dataPoint(GaugeSnapshot.GaugeDataPointSnapshot.builder().labels(x.labels()).value(x.value())
                        .build());
            }
            return b.build();
        }

        /** One sample per instance, labelled {@code iommu}. */
        private static List<Sample> perInstance(List<InstanceStats> all, ToDoubleFunction<InstanceStats> value) {
            List<Sample> out = new ArrayList<>();
            for (InstanceStats s : all) {
                out.add(new Sample(Labels.of("iommu", s.getIommu()), value.applyAsDouble(s)));
            }
            return out;
        }

        /** One sample per instance that implements ATS (its {@code Stats} has {@code ats}), labelled {@code iommu}. */
        private static List<Sample> perAtsInstance(List<InstanceStats> all, ToDoubleFunction<AtsStats> value) {
            List<Sample> out = new ArrayList<>();
            for (InstanceStats s : all) {
                if (s.hasAts()) {
                    out.add(new Sample(Labels.of("iommu", s.getIommu()), value.applyAsDouble(s.getAts())));
                }
            }
            return out;
        }

        /** One sample per cache of every instance, labelled {@code iommu} and {@code cache}. */
        private static List<Sample> perCache(List<InstanceStats> all, ToDoubleFunction<CacheStats> value) {
            List<Sample> out = new ArrayList<>();
            for (InstanceStats s : all) {
                for (CacheStats c : s.getCachesList()) {
                    out.add(new Sample(Labels.of("iommu", s.getIommu(), "cache", c.getCache()),
                            value.applyAsDouble(c)));
                }
            }
            return out;
        }

        /** One sample per code name of every instance, labelled {@code iommu} and {@code label}. */
        private static List<Sample> perCode(List<InstanceStats> all, String label,
                Function<InstanceStats, List<CodeCount>> codes) {
            List<Sample> out = new ArrayList<>();
            for (InstanceStats s : all) {
                // two codes could share a name (unknown codes are named by number): sum them per name
                Map<String, Long> byName = new LinkedHashMap<>();
                for (CodeCount c : codes.apply(s)) {
                    String n = c.getName().isEmpty() ? Integer.toString(c.getCode()) : c.getName();
                    byName.merge(n, c.getCount(), Long::sum);
                }
                byName.forEach((n, count) -> out.add(new Sample(Labels.of("iommu", s.getIommu(), label, n), count)));
            }
            return out;
        }
    }
}
