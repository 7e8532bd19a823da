package org.iommuemu.device.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code run --metrics-port} and {@code --metrics-linger}: scraped while the scenario runs and after it. */
class RunMetricsTest {
    /** How long the test waits for the run to get somewhere (a bound for a hung run, not a timing claim). */
    private static final long PATIENCE_NANOS = TimeUnit.SECONDS.toNanos(120);

    @TempDir
    Path tmp;


    private final CliRun cli = new CliRun();

    private int run(String... args) {
        return cli.run(args);
    }

    /** Parses the text exposition format: "name{labels}" to value. */
    private static Map<String, Double> scrape(String url) throws IOException, InterruptedException {
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(url)).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).isEqualTo(200);
        Map<String, Double> m = new HashMap<>();
        for (String line : r.body().split("\n")) {
            if (!line.isBlank() && !line.startsWith("#")) {
                int sp = line.lastIndexOf(' ');
                m.put(line.substring(0, sp), Double.parseDouble(line.substring(sp + 1)));
            }
        }
        return m;
    }

    /** Waits until the run has printed {@code pattern}; its first group. */
    private String awaitOutput(Pattern pattern, Thread runner) throws InterruptedException {
        long end = System.nanoTime() + PATIENCE_NANOS;
        while (System.nanoTime() - end < 0) {
            Matcher m = pattern.matcher(cli.out());
            if (m.find()) {
                return m.group(1);
            }
            if (!runner.isAlive()) {
                break;
            }
            Thread.sleep(20);
        }
        throw new AssertionError("the run never printed " + pattern + ":\n" + cli.out() + "\n" + cli.err());
    }

    private static final String SMMU = "{iommu=\"smmu0\"}";

    @Test
    void metricsAreServedDuringTheRunAndWhileItLingers() throws Exception {
        // the external device holds the run at a known point: after the nic's two DMAs, until the test attaches
        Path file = tmp.resolve("s.yaml");
        Files.writeString(file, """
                domains:
                  - {name: net, iommus: [smmu0], stage: 1}
                buffers:
                  - {name: rx, size: 64KiB}
                devices:
                  - {name: nic, iommu: smmu0, stream: 0x10, domain: net}
                  - {name: ext, iommu: smmu0, stream: 0x20, domain: net, external: true, attach_timeout: 120s}
                steps:
                  - map: {domain: net, iova: 0x1000_0000, buffer: rx, size: 64KiB, prot: rw}
                  - dma: {device: nic, op: write, iova: 0x1000_0000, size: 4KiB, data: {seed: 7}}
                  - dma: {device: nic, op: read, iova: 0x1001_0000, size: 64}
                  - wait: {device: ext, detached: true, timeout: 120s}
                  - dma: {device: nic, op: read, iova: 0x1000_0000, size: 4KiB}
                  - expect: {fault: {device: nic, kind: none}}
                """);
        Path report = tmp.resolve("r.json");
        int[] status = {-1};
        Thread runner = new Thread(() -> status[0] = run("run", file.toString(), "--metrics-port", "0",
                "--metrics-linger", "10m", "--report", report.toString()), "run-under-test");
        runner.start();
        try {
            String url = awaitOutput(Pattern.compile("metrics: (http://127\\.0\\.0\\.1:\\d+/metrics)"), runner);
            String target = awaitOutput(Pattern.compile("waiting up to .* for external device ext to attach.*"
                    + "connect to (\\S+) and call"), runner);

            // during the run: what the endpoint says is what Telemetry.Stats says
            Map<String, Double> during = scrape(url);
            ManagedChannel channel = NettyChannelBuilder.forTarget(target).usePlaintext().build();
            InstanceStats stats;
            try {
                stats = TelemetryGrpc.newBlockingStub(channel).stats(StatsRequest.newBuilder().addIommus("smmu0")
                        .build()).getIommus(0);
            } finally {
                channel.shutdownNow();
            }
            assertThat(during.get("iommu_emu_translations_total" + SMMU)).isEqualTo((double) stats.getTranslations())
                    .isEqualTo(2.0);
            assertThat(during.get("iommu_emu_translation_faults_total" + SMMU)).isEqualTo((double) stats.getFaults())
                    .isEqualTo(1.0);
            assertThat(during.get("iommu_emu_walks_total" + SMMU)).isEqualTo((double) stats.getWalks());
            assertThat(during.get("iommu_emu_events_total{iommu=\"smmu0\",type=\"F_TRANSLATION\"}")).isEqualTo(1.0);
            assertThat(cli.out()).doesNotContain("still serving");

            try (DmaClient client = DmaClient.connect(target); DmaSession ext = client.attach("ext", "smmu0", 0x20)) {
                awaitOutput(Pattern.compile("external device ext (attached)"), runner);
            }

            // after the run: the final values, the ones the report holds
            awaitOutput(Pattern.compile("metrics: (still serving) http://127\\.0\\.0\\.1:\\d+/metrics for 600 s"),
                    runner);
            assertThat(runner.isAlive()).as("lingering").isTrue();
            Map<String, Double> after = scrape(url);
            JsonNode smmu = new ObjectMapper().readTree(report.toFile()).get("iommus").get("smmu0");
            assertThat(after.get("iommu_emu_translations_total" + SMMU)).isEqualTo(smmu.get("translations").asDouble())
                    .isEqualTo(3.0);
            assertThat(after.get("iommu_emu_translation_faults_total" + SMMU)).isEqualTo(smmu.get("faults").asDouble());
            assertThat(after.get("iommu_emu_walks_total" + SMMU)).isEqualTo(smmu.get("walks").asDouble());
            // the run's tear-down (detach, domain free) comes after its report, and syncs again
            assertThat(after.get("iommu_emu_commands_total{iommu=\"smmu0\",opcode=\"CMD_SYNC\"}"))
                    .isGreaterThan(smmu.get("commands").get("CMD_SYNC").asDouble());
            assertThat(after.get("iommu_emu_cache_hits_total{cache=\"iotlb\",iommu=\"smmu0\"}"))
                    .isEqualTo(smmu.get("caches").get("iotlb").get("hits").asDouble());
        } finally {
            runner.interrupt(); // ends the linger, as Ctrl-C would
            runner.join(TimeUnit.NANOSECONDS.toMillis(PATIENCE_NANOS));
        }
        assertThat(runner.isAlive()).isFalse();
        assertThat(status[0]).as(cli.out() + "\n" + cli.err()).isZero();
        String url = awaitOutput(Pattern.compile("metrics: (http://127\\.0\\.0\\.1:\\d+/metrics)"), runner);
        assertThatThrownBy(() -> scrape(url)).as("the endpoint is closed once the linger ends")
                .isInstanceOf(ConnectException.class);
    }

    @Test
    void withoutLingerTheEndpointClosesWithTheRun() throws Exception {
        assertThat(run("run", RunTraceReportTest.scenario("unmapped-iova.yaml").toString(), "--metrics-port", "0"))
                .as(cli.out() + "\n" + cli.err()).isZero();
        Matcher m = Pattern.compile("metrics: (http://127\\.0\\.0\\.1:\\d+/metrics) \\(Prometheus text format\\)")
                .matcher(cli.out());
        assertThat(m.find()).as(cli.out()).isTrue();
        assertThat(cli.out()).doesNotContain("still serving");
        assertThatThrownBy(() -> scrape(m.group(1))).isInstanceOf(ConnectException.class);
    }

    @Test
    void metricsOptionsAreCheckedWithClearMessages() throws Exception {
        Path file = tmp.resolve("s.yaml");
        Files.writeString(file, "steps: []\n");
        assertThat(run("run", file.toString(), "--metrics-port", "70000")).isEqualTo(2);
        assertThat(cli.err()).contains("--metrics-port 70000 is not a TCP port (0 to 65535)");
        assertThat(run("run", file.toString(), "--metrics-bind", "127.0.0.1")).isEqualTo(2);
        assertThat(cli.err()).contains("--metrics-bind goes with --metrics-port");
        assertThat(run("run", file.toString(), "--metrics-linger", "30s")).isEqualTo(2);
        assertThat(cli.err()).contains("--metrics-linger goes with --metrics-port");
        assertThat(run("run", file.toString(), "--metrics-port", "0", "--metrics-linger", "soon")).isEqualTo(2);
        assertThat(cli.err()).contains("--metrics-linger must be a duration such as 30s, 5m or 1h");
        assertThat(run("run", file.toString(), "--metrics-port", "0", "--metrics-linger", "25h")).isEqualTo(2);
        assertThat(cli.err()).contains("--metrics-linger must be at most 24h, got '25h'");
        assertThat(run("run", file.toString(), "--metrics-port", "0", "--target", "127.0.0.1:9")).isEqualTo(2);
        assertThat(cli.err()).contains("--metrics-port is for the embedded machine; the server at --target has"
                + " its own");
        assertThat(MetricsOptions.parseLinger("90")).isEqualTo(Duration.ofSeconds(90));
        assertThat(MetricsOptions.parseLinger("500ms")).isEqualTo(Duration.ofMillis(500));
        assertThat(MetricsOptions.parseLinger("5m")).isEqualTo(Duration.ofMinutes(5));
        assertThat(MetricsOptions.parseLinger("24h")).isEqualTo(Duration.ofHours(24));
    }

    @Test
    void aMetricsPortInUseIsAClearErrorAndTheRunDoesNotStart() throws Exception {
        try (java.net.ServerSocket taken = new java.net.ServerSocket(0, 1,
                java.net.InetAddress.getLoopbackAddress())) {
            assertThat(run("run", RunTraceReportTest.scenario("unmapped-iova.yaml").toString(), "--metrics-port",
                    Integer.toString(taken.getLocalPort()))).isEqualTo(2);
        }
        assertThat(cli.err()).contains("--metrics-port: cannot listen on 127.0.0.1:");
        assertThat(cli.out()).doesNotContain("scenario passed");
    }
}
