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
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Machine;
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

        @Override
        public MetricSnapshots collect() {
            List<InstanceStats> all = new ArrayList<>();
            for (IommuDevice d : machine.iommus()) {
                all.add(TelemetryService.instanceStats(machine, d));
            }
            List<MetricSnapshot> out = new ArrayList<>();
            out.add(perInstance("iommu_emu_translations", "Translations requested by DMA (one per translated chunk).",
                    all, InstanceStats::getTranslations));
            out.add(perInstance("iommu_emu_translation_faults", "Translations that ended in a fault or an abort.",
                    all, InstanceStats::getFaults));
            out.add(perInstance("iommu_emu_walks", "Page-table walks started (IOTLB misses that walked).", all,
                    InstanceStats::getWalks));
            out.add(perInstance("iommu_emu_walk_reads", "Descriptor reads page-table walks made from memory.", all,
                    InstanceStats::getWalkReads));
            out.add(perInstance("iommu_emu_mmio_reads", "Register reads through the MMIO window.", all,
                    InstanceStats::getMmioReads));
            out.add(perInstance("iommu_emu_mmio_writes", "Register writes through the MMIO window.", all,
                    InstanceStats::getMmioWrites));
            out.add(perInstance("iommu_emu_events_lost", "Event records that could not be written.", all,
                    InstanceStats::getEventsLost));
            out.add(perInstance("iommu_emu_global_errors", "Global errors raised (GERROR, IQE/ITE/ICE).", all,
                    InstanceStats::getGlobalErrors));
            out.add(perInstance("iommu_emu_interrupts", "Interrupts and MSI writes raised.", all,
                    InstanceStats::getInterrupts));
            CounterSnapshot.Builder sim = CounterSnapshot.builder().name("iommu_emu_sim_time_seconds")
                    .help("Simulated time the instance's work cost under its cost model.");
            for (InstanceStats s : all) {
                sim.dataPoint(CounterSnapshot.CounterDataPointSnapshot.builder()
                        .labels(Labels.of("iommu", s.getIommu())).value(s.getSimTimeNs() / 1e9).build());
            }
            out.add(sim.build());
            out.add(cache("iommu_emu_cache_hits", "Cache lookups that hit.", all, CacheStats::getHits));
            out.add(cache("iommu_emu_cache_misses", "Cache lookups that missed.", all, CacheStats::getMisses));
            out.add(cache("iommu_emu_cache_inserts", "Cache entries inserted.", all, CacheStats::getInserts));
            out.add(cache("iommu_emu_cache_evictions", "Cache entries evicted by capacity.", all,
                    CacheStats::getEvictions));
            out.add(cache("iommu_emu_cache_invalidated", "Cache entries removed by invalidations.", all,
                    CacheStats::getInvalidated));
            out.add(cacheGauge("iommu_emu_cache_entries", "Cache entries held now.", all, CacheStats::getEntries));
            out.add(cacheGauge("iommu_emu_cache_capacity", "Cache capacity in entries.", all,
                    CacheStats::getCapacity));
            out.add(codes("iommu_emu_commands", "Commands / invalidation descriptors consumed, by opcode.", "opcode",
                    all, InstanceStats::getCommandsList));
            out.add(codes("iommu_emu_events", "Event / fault records written, by type.", "type", all,
                    InstanceStats::getEventsList));
            out.add(codes("iommu_emu_injected_faults", "Injected faults that fired, by kind.", "kind", all,
                    InstanceStats::getInjectedFaultsList));
            out.add(CounterSnapshot.builder().name("iommu_emu_trace_records")
                    .help("Records the trace ring has taken (only while a Telemetry.Trace stream is open).")
                    .dataPoint(CounterSnapshot.CounterDataPointSnapshot.builder()
                            .value(machine.tracer().written()).build()).build());
            out.add(GaugeSnapshot.builder().name("iommu_emu_trace_streams")
                    .help("Telemetry.Trace streams open now.")
                    .dataPoint(GaugeSnapshot.GaugeDataPointSnapshot.builder()
                            .value(machine.tracer().readers()).build()).build());
            return new MetricSnapshots(out);
        }

        private static CounterSnapshot perInstance(String name, String help, List<InstanceStats> all,
                Function<InstanceStats, Long> value) {
            CounterSnapshot.Builder b = CounterSnapshot.builder().name(name).help(help);
            for (InstanceStats s : all) {
                b.dataPoint(CounterSnapshot.CounterDataPointSnapshot.builder()
                        .labels(Labels.of("iommu", s.getIommu())).value(value.apply(s)).build());
            }
            return b.build();
        }

        private static CounterSnapshot cache(String name, String help, List<InstanceStats> all,
                Function<CacheStats, Long> value) {
            CounterSnapshot.Builder b = CounterSnapshot.builder().name(name).help(help);
            for (InstanceStats s : all) {
                for (CacheStats c : s.getCachesList()) {
                    b.dataPoint(CounterSnapshot.CounterDataPointSnapshot.builder()
                            .labels(Labels.of("iommu", s.getIommu(), "cache", c.getCache()))
                            .value(value.apply(c)).build());
                }
            }
            return b.build();
        }

        private static GaugeSnapshot cacheGauge(String name, String help, List<InstanceStats> all,
                Function<CacheStats, Long> value) {
            GaugeSnapshot.Builder b = GaugeSnapshot.builder().name(name).help(help);
            for (InstanceStats s : all) {
                for (CacheStats c : s.getCachesList()) {
                    b.dataPoint(GaugeSnapshot.GaugeDataPointSnapshot.builder()
                            .labels(Labels.of("iommu", s.getIommu(), "cache", c.getCache()))
                            .value(value.apply(c)).build());
                }
            }
            return b.build();
        }

        private static CounterSnapshot codes(String name, String help, String label, List<InstanceStats> all,
                Function<InstanceStats, List<CodeCount>> codes) {
            CounterSnapshot.Builder b = CounterSnapshot.builder().name(name).help(help);
            for (InstanceStats s : all) {
                // two codes could share a name (unknown codes are named by number): sum them per name
                Map<String, Long> byName = new LinkedHashMap<>();
                for (CodeCount c : codes.apply(s)) {
                    String n = c.getName().isEmpty() ? Integer.toString(c.getCode()) : c.getName();
                    byName.merge(n, c.getCount(), Long::sum);
                }
                byName.forEach((n, count) -> b.dataPoint(CounterSnapshot.CounterDataPointSnapshot.builder()
                        .labels(Labels.of("iommu", s.getIommu(), label, n)).value(count).build()));
            }
            return b.build();
        }
    }
}
