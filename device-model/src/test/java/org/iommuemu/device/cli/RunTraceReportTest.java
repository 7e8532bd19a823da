package org.iommuemu.device.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.jsoup.Jsoup;
import org.jsoup.nodes.Document;
import org.jsoup.nodes.Element;
import org.jsoup.parser.Parser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code run --trace FILE} and {@code run --report FILE.html} on the example scenarios, parsed. */
class RunTraceReportTest {
    @TempDir
    Path tmp;


    private final CliRun cli = new CliRun();

    private int run(String... args) {
        return cli.run(args);
    }

    static Path scenario(String name) {
        Path p = Path.of("..", "scenarios", name);
        return Files.exists(p) ? p : Path.of("scenarios", name);
    }

    private static List<JsonNode> events(JsonNode trace) {
        List<JsonNode> all = new ArrayList<>();
        trace.get("traceEvents").forEach(all::add);
        return all;
    }

    /** Checks the fields the trace-event format requires of each phase this writer uses. */
    private static void assertWellFormed(JsonNode trace) {
        assertThat(trace.get("displayTimeUnit").asText()).isEqualTo("ns");
        assertThat(trace.get("otherData").get("time").asText()).contains("simulated time in microseconds");
        assertThat(trace.get("otherData").get("dropped_records").asLong()).isZero();
        for (JsonNode e : events(trace)) {
            assertThat(e.hasNonNull("name") && e.hasNonNull("ph") && e.get("pid").isInt() && e.get("tid").isInt()
                    && e.get("ts").isNumber()).as("name, ph, pid, tid, ts: %s", e).isTrue();
            switch (e.get("ph").asText()) {
                case "M" -> assertThat(e.get("args").has("name") || e.get("args").has("sort_index")).isTrue();
                case "X" -> assertThat(e.get("dur").isNumber() && e.get("dur").asDouble() >= 0).as("dur: %s", e)
                        .isTrue();
                case "i" -> assertThat(e.get("s").asText()).isIn("t", "p", "g");
                case "C" -> assertThat(e.get("args").elements().next().isNumber()).as("counter value: %s", e)
                        .isTrue();
                default -> throw new AssertionError("unexpected phase in " + e);
            }
        }
    }

    /** Process name by pid, and "pid/tid" to thread name. */
    private static Map<String, String> names(JsonNode trace) {
        Map<String, String> m = new HashMap<>();
        for (JsonNode e : events(trace)) {
            if (e.get("name").asText().equals("process_name")) {
                m.put(e.get("pid").asText(), e.get("args").get("name").asText());
            } else if (e.get("name").asText().equals("thread_name")) {
                m.put(e.get("pid").asText() + "/" + e.get("tid").asText(), e.get("args").get("name").asText());
            }
        }
        return m;
    }

    private static long count(JsonNode trace, String ph, String name) {
        return events(trace).stream().filter(e -> e.get("ph").asText().equals(ph)
                && e.get("name").asText().equals(name)).count();
    }

    @Test
    void theTraceOfUnmappedIovaHasTheTracksAndTheFault() throws Exception {
        Path trace = tmp.resolve("t.json");
        Path report = tmp.resolve("r.json");
        assertThat(run("run", scenario("unmapped-iova.yaml").toString(), "--trace", trace.toString(), "--report",
                report.toString())).as(cli.out()).isZero();
        JsonNode t = new ObjectMapper().readTree(trace.toFile());
        assertWellFormed(t);
        Map<String, String> names = names(t);
        assertThat(names.values()).contains("IOMMU smmu0", "IOMMU dmar0", "devices", "device nic (smmu0 stream 16)",
                "driver");
        assertThat(count(t, "X", "fault F_TRANSLATION")).isEqualTo(1);
        assertThat(count(t, "i", "event F_TRANSLATION")).isEqualTo(1);
        JsonNode fault = events(t).stream().filter(e -> e.get("name").asText().equals("fault F_TRANSLATION"))
                .findFirst().orElseThrow();
        assertThat(names.get(fault.get("pid").asText())).isEqualTo("IOMMU smmu0");
        assertThat(fault.get("args").get("iova").asText()).isEqualTo("0x10010000");
        assertThat(fault.get("args").get("stream").asInt()).isEqualTo(16);
        JsonNode dma = events(t).stream().filter(e -> e.get("name").asText().equals("DMA read")).findFirst()
                .orElseThrow();
        assertThat(names.get(dma.get("pid").asText() + "/" + dma.get("tid").asText()))
                .isEqualTo("device nic (smmu0 stream 16)");
        assertThat(dma.get("args").get("fault").asText()).isEqualTo("TRANSLATION");
        assertThat(count(t, "i", "MAP")).as("the driver's map").isEqualTo(1);
        JsonNode r = new ObjectMapper().readTree(report.toFile());
        assertThat(count(t, "i", "CMD_SYNC")).as("as many CMD_SYNC as Telemetry counted")
                .isEqualTo(r.get("iommus").get("smmu0").get("commands").get("CMD_SYNC").asLong()).isPositive();
    }

    @Test
    void theTraceOfNicReceiveStrictHasHitsMissesAndCounters() throws Exception {
        Path trace = tmp.resolve("t.json");
        Path report = tmp.resolve("r.json");
        assertThat(run("run", scenario("nic-receive-strict.yaml").toString(), "--trace", trace.toString(),
                "--report", report.toString())).as(cli.out()).isZero();
        JsonNode t = new ObjectMapper().readTree(trace.toFile());
        assertWellFormed(t);
        JsonNode smmu = new ObjectMapper().readTree(report.toFile()).get("iommus").get("smmu0");
        long hits = count(t, "X", "IOTLB hit");
        long misses = count(t, "X", "IOTLB miss (walk)");
        assertThat(hits).isPositive();
        assertThat(misses).isPositive();
        assertThat(hits + misses + count(t, "X", "fault F_TRANSLATION")).as("one event per translation")
                .isEqualTo(smmu.get("translations").asLong());
        assertThat(hits).isEqualTo(smmu.get("caches").get("iotlb").get("hits").asLong());
        assertThat(count(t, "i", "CMD_SYNC")).isEqualTo(smmu.get("commands").get("CMD_SYNC").asLong());
        assertThat(count(t, "i", "TLBI_NH_VA")).isEqualTo(smmu.get("commands").get("TLBI_NH_VA").asLong());
        assertThat(count(t, "C", "iotlb hit rate %")).isPositive();
        assertThat(count(t, "C", "walk hit rate %")).isPositive();
        assertThat(count(t, "C", "command queue occupancy")).isPositive();
    }

    @Test
    void theHtmlReportHasItsSectionsAndCharts() throws Exception {
        Path html = tmp.resolve("report.html");
        assertThat(run("run", scenario("nic-receive-strict.yaml").toString(), "--report", html.toString()))
                .as(cli.out()).isZero();
        String text = Files.readString(html, StandardCharsets.UTF_8);
        Document strict = Jsoup.parse(text, "", Parser.xmlParser());
        assertThat(strict.select("html > head > title")).hasSize(1);
        assertThat(strict.select("html > body")).hasSize(1);
        Document d = Jsoup.parse(text);
        for (String id : List.of("summary", "expectations", "cache-hit-rates", "command-mix", "faults",
                "dma-throughput")) {
            assertThat(d.select("section#" + id)).as(id).hasSize(1);
        }
        assertThat(d.select("script, link, img, iframe, [src], [href]")).as("no scripts, no external resources")
                .isEmpty();
        assertThat(d.select("style")).hasSize(1);
        assertThat(d.select("#expectations tr.expect")).hasSize(7)
                .allSatisfy(tr -> assertThat(tr.selectFirst("td.result").text()).isEqualTo("PASS"));
        Element hitRates = d.selectFirst("#cache-hit-rates svg.hit-rate[data-iommu=smmu0]");
        assertThat(hitRates).isNotNull();
        assertThat(hitRates.select("rect.bar")).as("one bar per cache: iotlb, config, walk").hasSize(3);
        assertThat(d.select("#command-mix table.commands td").eachText()).contains("CMD_SYNC", "TLBI_NH_VA");
        assertThat(d.select("#command-mix svg.commands rect.bar")).hasSize(5);
        assertThat(d.select("#faults tr.fault")).hasSize(1).first()
                .satisfies(tr -> assertThat(tr.text()).contains("smmu0", "F_TRANSLATION"));
        assertThat(d.select("#dma-throughput svg.throughput rect.bar")).hasSize(40);
    }

    @Test
    void stringsFromInputAreEscaped() throws Exception {
        Path nasty = tmp.resolve("x<b>&'.yaml");
        Files.copy(scenario("unmapped-iova.yaml"), nasty);
        Path html = tmp.resolve("report.htm");
        assertThat(run("run", nasty.toString(), "--report", html.toString())).as(cli.out()).isZero();
        String text = Files.readString(html, StandardCharsets.UTF_8);
        assertThat(text).contains("x&lt;b&gt;&amp;&#39;.yaml").doesNotContain("x<b>");
        Document d = Jsoup.parse(text);
        assertThat(d.select("h1 b")).isEmpty();
        assertThat(d.selectFirst("h1").text()).contains("x<b>&'.yaml");
    }
}
