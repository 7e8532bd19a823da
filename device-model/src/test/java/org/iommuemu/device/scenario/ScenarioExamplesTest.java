package org.iommuemu.device.scenario;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.Machine;
import org.junit.jupiter.api.Test;

/** Every example under {@code scenarios/} at the repository root runs and passes, with every expect evaluated. */
class ScenarioExamplesTest {
    static Path dir() {
        Path p = Path.of("..", "scenarios");
        return Files.isDirectory(p) ? p : Path.of("scenarios");
    }

    static Stream<Path> examples() throws IOException {
        List<Path> files;
        try (Stream<Path> s = Files.list(dir())) {
            files = s.filter(f -> f.toString().endsWith(".yaml")).sorted().toList();
        }
        assertThat(files).hasSizeGreaterThanOrEqualTo(4);
        return files.stream();
    }

    /** The VT-d examples, under {@code scenarios/vtd/}. */
    static Stream<Path> vtdExamples() throws IOException {
        List<Path> files;
        try (Stream<Path> s = Files.list(dir().resolve("vtd"))) {
            files = s.filter(f -> f.toString().endsWith(".yaml")).sorted().toList();
        }
        assertThat(files).hasSizeGreaterThanOrEqualTo(6);
        return files.stream();
    }

    /** Every example, SMMUv3 and VT-d. */
    static Stream<Path> allExamples() throws IOException {
        return Stream.concat(examples(), vtdExamples());
    }

    private static ScenarioRunner.Result run(Path file, StringWriter out) {
        return ScenarioRunner.run(ScenarioFile.read(file), new PrintWriter(out, true));
    }

    @ParameterizedTest
    @MethodSource("allExamples")
    void examplePassesAndEvaluatesEveryExpect(Path file) throws IOException {
        StringWriter out = new StringWriter();
        ScenarioRunner.Result r = run(file, out);
        long expects = Files.readAllLines(file).stream().filter(l -> l.trim().startsWith("- expect:")).count();
        assertThat(expects).as("the example checks something").isPositive();
        assertThat(r.failures()).as(out.toString()).isEmpty();
        assertThat(r.stepsRun()).isEqualTo(r.steps());
        assertThat(r.expectsPassed()).as(out.toString()).isEqualTo(expects);
        assertThat(out.toString()).contains("scenario passed").doesNotContain("FAIL");
        assertThat(Files.readAllLines(file).get(0)).as("a comment header").startsWith("# ");
    }

    @ParameterizedTest
    @MethodSource("allExamples")
    void examplePassesOverNetty(Path file) {
        StringWriter out = new StringWriter();
        ScenarioRunner.Result r = ScenarioRunner.run(ScenarioFile.read(file), new PrintWriter(out, true),
                ScenarioRunner.Options.netty());
        assertThat(r.failures()).as(out.toString()).isEmpty();
        assertThat(r.report().get("transport")).isEqualTo("netty");
    }

    @ParameterizedTest
    @MethodSource("allExamples")
    void examplePassesTwiceAgainstOneSeparateServer(Path file) throws IOException {
        ScenarioFile.Loaded loaded = ScenarioFile.read(file);
        try (BusServer server = BusServer.netty(new Machine(loaded.machine()), "127.0.0.1", 0).start()) {
            for (int run = 1; run <= 2; run++) {
                StringWriter out = new StringWriter();
                ScenarioRunner.Result r = ScenarioRunner.run(loaded, new PrintWriter(out, true),
                        ScenarioRunner.Options.remote(server.target()));
                assertThat(r.failures()).as("run " + run + ":\n" + out).isEmpty();
                assertThat(r.expectsPassed()).as(out.toString()).isPositive();
                assertThat(out.toString()).as("run %d cleans up after itself", run).doesNotContain("warning");
            }
        }
    }

    /**
     * The driver out of process: iommu-core's SMMUv3 or VT-d driver in the runner, programming the units over Netty
     * through the Machine service's MMIO, memory and interrupts, gives what the server's own driver gives: the same
     * expects pass, the same DMA outcomes, the same commands by opcode, events, translations, walks and IOTLB
     * hits, and the same stale-DMA sanitizer verdict (the client-side driver feeds the server's sanitizer over
     * {@code Driver.SanitizerFeed}). (Simulated time, MMIO counts and configuration-cache lookups may differ a
     * little: the two hosts see CMD_SYNC completions at different moments, so the driver polls a different number
     * of times.)
     */
    @ParameterizedTest
    @MethodSource("allExamples")
    @SuppressWarnings("unchecked")
    void theDriverOutOfProcessGivesTheSameResultsAsTheServersDriver(Path file) throws IOException {
        ScenarioFile.Loaded loaded = ScenarioFile.read(file);
        StringWriter inOut = new StringWriter();
        StringWriter outOut = new StringWriter();
        ScenarioRunner.Result in = ScenarioRunner.run(loaded, new PrintWriter(inOut, true),
                ScenarioRunner.Options.inProcess());
        ScenarioRunner.Result out = ScenarioRunner.run(loaded, new PrintWriter(outOut, true),
                ScenarioRunner.Options.netty().withDriver(ScenarioRunner.DriverSide.CLIENT));
        assertThat(out.failures()).as(outOut.toString()).isEmpty();
        assertThat(out.report().get("driver")).isEqualTo("client");
        assertThat(out.expectsPassed()).isEqualTo(in.expectsPassed());
        assertThat(out.report().get("dma")).usingRecursiveComparison().ignoringFields("wall_ns", "ops_per_second",
                "bytes_per_second").isEqualTo(in.report().get("dma"));
        assertThat(out.report().get("nics")).isEqualTo(in.report().get("nics"));
        assertThat(((Map<String, Object>) out.report().get("sanitizer")).get("reports")).as(outOut.toString())
                .isEqualTo(((Map<String, Object>) in.report().get("sanitizer")).get("reports"));
        Map<String, Map<String, Object>> a = (Map<String, Map<String, Object>>) in.report().get("iommus");
        Map<String, Map<String, Object>> b = (Map<String, Map<String, Object>>) out.report().get("iommus");
        assertThat(b.keySet()).isEqualTo(a.keySet());
        for (String iommu : a.keySet()) {
            for (String k : List.of("translations", "faults", "walks", "commands", "events",
                    "events_read_by_driver")) {
                assertThat(b.get(iommu).get(k)).as("%s %s%n%s%n%s", iommu, k, inOut, outOut)
                        .isEqualTo(a.get(iommu).get(k));
            }
            Map<String, Object> ca = (Map<String, Object>) a.get(iommu).get("caches");
            Map<String, Object> cb = (Map<String, Object>) b.get(iommu).get("caches");
            assertThat(cb.get("iotlb")).as("%s iotlb", iommu).isEqualTo(ca.get("iotlb"));
        }
        // the two ran the same steps line by line, apart from where the domains came from
        assertThat(steps(outOut.toString())).isEqualTo(steps(inOut.toString()));
    }

    private static List<String> steps(String output) {
        return output.lines().filter(l -> l.matches("\\s+\\[\\d+\\] (ok|PASS|FAIL) .*"))
                .map(l -> l.replaceAll("\\d+ packets/s", "").replaceAll("[\\d.]+ ops/s, [\\d.]+ MB/s", ""))
                .toList();
    }

    @Test
    void theReadmesMainJobRunsAnExampleScenario() throws IOException {
        String text = Files.readString(dir().resolveSibling("README.md"));
        java.util.regex.Matcher m = java.util.regex.Pattern
                .compile("java -jar device-model/target/iommu-emu.jar run scenarios/([a-z0-9-]+\\.yaml)\n")
                .matcher(text.substring(text.indexOf("**Run the main job**")));
        assertThat(m.find()).as("the main-job command runs a scenario").isTrue();
        Path main = dir().resolve(m.group(1));
        assertThat(examples()).as("and it is one of the examples this class runs").contains(main);
    }

    @Test
    void theFormatExampleInTheReadmeRunsAndPasses() throws IOException {
        Path readme = dir().resolveSibling("README.md");
        String text = Files.readString(readme);
        int start = text.indexOf("```yaml\nmachine:");
        assertThat(start).as("README has the scenario format example").isNotNegative();
        String yaml = text.substring(start + "```yaml\n".length(), text.indexOf("```", start + 7));
        StringWriter out = new StringWriter();
        ScenarioRunner.Result r = ScenarioRunner.run(ScenarioFile.parse("README.md", yaml), new PrintWriter(out, true));
        assertThat(r.failures()).as(out.toString()).isEmpty();
        assertThat(r.expectsPassed()).isEqualTo(7);
    }

    @Test
    @SuppressWarnings("unchecked")
    void rangeInvalidationSendsFarFewerTlbisThanPerPage() {
        StringWriter out = new StringWriter();
        ScenarioRunner.Result r = run(dir().resolve("range-vs-page-invalidation.yaml"), out);
        assertThat(r.passed()).as(out.toString()).isTrue();
        Map<String, Object> iommus = (Map<String, Object>) r.report().get("iommus");
        Map<String, Long> range = (Map<String, Long>) ((Map<String, Object>) iommus.get("smmu_range")).get("commands");
        Map<String, Long> page = (Map<String, Long>) ((Map<String, Object>) iommus.get("smmu_page")).get("commands");
        assertThat(range.get("TLBI_NH_VA")).isEqualTo(2L);
        assertThat(range).doesNotContainKey("TLBI_NH_ASID");
        assertThat(page.get("TLBI_NH_VA")).isEqualTo(256L);
        assertThat(page.get("TLBI_NH_ASID")).isEqualTo(1L);
        assertThat(out.toString()).contains("PASS expect counter smmu_page commands.TLBI_NH_VA = 256",
                "PASS expect counter smmu_range commands.TLBI_NH_VA = 1");
    }

    @Test
    void faultExamplesReportTheFaultAndTheEventRecord() {
        StringWriter out = new StringWriter();
        assertThat(run(dir().resolve("unmapped-iova.yaml"), out).passed()).isTrue();
        assertThat(out.toString()).contains("fault TRANSLATION at 0x10010000",
                "PASS expect events smmu0 F_TRANSLATION = 1", "events: F_TRANSLATION 1");
        out = new StringWriter();
        assertThat(run(dir().resolve("read-only-write.yaml"), out).passed()).isTrue();
        assertThat(out.toString()).contains("fault PERMISSION at 0x30000000",
                "PASS expect events smmu0 F_PERMISSION = 1", "PASS expect memory sector 4 KiB equals pattern 0x5A");
    }

    /** The sanitizer is on in every example run with the server's driver, and the stale-TLB example's bug is caught. */
    @Test
    void theSanitizerCatchesTheInjectedStaleTlbAndNothingElse() {
        StringWriter out = new StringWriter();
        ScenarioRunner.Result r = run(dir().resolve("stale-tlb-bug.yaml"), out);
        assertThat(r.failures()).as(out.toString()).isEmpty();
        assertThat(out.toString()).contains("sanitizer: on", "PASS expect sanitizer STALE_TRANSLATION",
                "sanitizer report: ");
        assertThat(r.report().get("sanitizer")).asString().contains("STALE_TRANSLATION=1");
        // without the fault the same scenario is clean: its expectations now fail, and the sanitizer stays quiet
        StringWriter clean = new StringWriter();
        String text;
        try {
            text = Files.readString(dir().resolve("stale-tlb-bug.yaml")).replace(
                    "  - inject: {kind: ignore_iotlb_invalidation, label: stale-tlb, target: {iommu: smmu0}}\n", "")
                    .replace("  - clear_faults: {label: stale-tlb}\n", "");
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        ScenarioRunner.Result c = ScenarioRunner.run(ScenarioFile.parse("clean.yaml", text),
                new PrintWriter(clean, true));
        assertThat(clean.toString()).contains("FAIL expect sanitizer STALE_TRANSLATION").doesNotContain(
                "sanitizer report: ");
        assertThat(c.passed()).isFalse();
    }
}
