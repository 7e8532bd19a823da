package org.iommuemu.device.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code iommu-emu campaign FILE}: exit status, the table, the JSON report, shards. */
class CampaignCommandTest {
    @TempDir
    Path dir;

    private static final String SCENARIO = """
            domains:
              - {name: d, iommus: [smmu0]}
            buffers:
              - {name: buf, size: 8KiB}
            devices:
              - {name: dev, iommu: smmu0, stream: 0x40, domain: d}
            steps:
              - map: {domain: d, iova: 0x1000_0000, buffer: buf, size: 4KiB, prot: rw}
              - dma: {device: dev, op: write, iova: 0x1000_0000, size: 64, data: {pattern: 0x11}}
              - unmap: {domain: d, iova: 0x1000_0000, size: 4KiB}
              - dma: {device: dev, op: write, iova: 0x1000_0000, size: 64, data: {pattern: 0x22}}
              - expect: {fault: {device: dev, kind: TRANSLATION}}
              - expect: {memory: {buffer: buf, size: 64, equals: {pattern: 0x11}}}
            """;

    private static final String CAMPAIGN = """
            scenario: s/unmap.yaml
            runs: 6
            seed: 5
            faults:
              - {kind: ignore_iotlb_invalidation, label: stale-tlb, target: {iommu: smmu0}, probability: 0.5}
              - kind: command_drop
                label: drop-tlbi
                target: {iommu: smmu0, opcodes: [0x12]}
                trigger: {probability: 0.5}
                probability: 0.5
            """;

    private Path campaign() throws Exception {
        Files.createDirectories(dir.resolve("s"));
        Files.writeString(dir.resolve("s/unmap.yaml"), SCENARIO);
        Path f = dir.resolve("c.yaml");
        Files.writeString(f, CAMPAIGN);
        return f;
    }

    private final CliRun cli = new CliRun();

    private int run(String... args) {
        return cli.run(args);
    }

    @Test
    void helpFormatsEveryOptionWithoutPicocliWarnings() {
        java.io.PrintStream saved = System.err;
        java.io.ByteArrayOutputStream warnings = new java.io.ByteArrayOutputStream();
        System.setErr(new java.io.PrintStream(warnings, true));
        try {
            assertThat(run("campaign", "--help")).isZero();
        } finally {
            System.setErr(saved);
        }
        assertThat(cli.out()).contains("Run only the runs whose index % N == I");
        assertThat(warnings.toString()).as("picocli's own warnings, e.g. an unescaped %").isEmpty();
    }

    @Test
    void aCampaignPrintsItsTableAndTheSameSeedWritesTheSameReport() throws Exception {
        Path f = campaign();
        Path a = dir.resolve("a.json");
        Path b = dir.resolve("b.json");
        assertThat(run("campaign", f.toString(), "--report", a.toString())).as(cli.out() + "\n" + cli.err()).isZero();
        String table = cli.out();
        assertThat(table).contains("campaign " + f + ": scenario s/unmap.yaml, seed 5, 6 run(s)", "stale-tlb",
                "drop-tlbi", "(all runs)", "detected", "recovered", "corrupted", "silent", "hung");
        assertThat(cli.err()).as("no progress line unless asked, in tests").doesNotContain("runs:");
        assertThat(run("campaign", f.toString(), "--report", b.toString())).isZero();
        assertThat(Files.readAllBytes(b)).isEqualTo(Files.readAllBytes(a));
        assertThat(cli.out()).isEqualTo(table);
        JsonNode json = new ObjectMapper().readTree(a.toFile());
        assertThat(json.get("seed").asLong()).isEqualTo(5);
        assertThat(json.get("results")).hasSize(6);
        assertThat(json.get("baseline").get("passed").asBoolean()).isTrue();
        JsonNode first = json.get("results").get(0);
        assertThat(first.get("index").asInt()).isZero();
        assertThat(first.has("seed")).isTrue();
        assertThat(first.get("outcome").has("detected")).isTrue();
        assertThat(run("campaign", f.toString(), "--seed", "6", "--report", b.toString())).isZero();
        assertThat(Files.readAllBytes(b)).isNotEqualTo(Files.readAllBytes(a));
    }

    @Test
    void theShardsTogetherAreTheWholeCampaign() throws Exception {
        Path f = campaign();
        Path whole = dir.resolve("whole.json");
        assertThat(run("campaign", f.toString(), "--runs", "7", "--report", whole.toString())).isZero();
        ObjectMapper m = new ObjectMapper();
        List<JsonNode> merged = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Path part = dir.resolve("shard" + i + ".json");
            assertThat(run("campaign", f.toString(), "--runs", "7", "--shard", i + "/3", "--report", part.toString()))
                    .as(cli.err()).isZero();
            assertThat(cli.out()).contains("(shard " + i + "/3)");
            JsonNode r = m.readTree(part.toFile());
            r.get("results").forEach(run -> assertThat(run.get("index").asInt() % 3).isEqualTo(r.get("shard")
                    .asText().charAt(0) - '0'));
            r.get("results").forEach(merged::add);
        }
        merged.sort(Comparator.comparingInt(n -> n.get("index").asInt()));
        List<JsonNode> all = new ArrayList<>();
        m.readTree(whole.toFile()).get("results").forEach(all::add);
        assertThat(merged).hasSize(7).isEqualTo(all);
        String wholeTable = tableOf(f, "--runs", "7");
        Path back = dir.resolve("merged.json");
        assertThat(run("campaign-merge", dir.resolve("shard2.json").toString(), dir.resolve("shard0.json").toString(),
                dir.resolve("shard1.json").toString(), "--report", back.toString())).as(cli.err()).isZero();
        assertThat(Files.readString(back)).as("merged shards are the whole campaign's report, byte for byte")
                .isEqualTo(Files.readString(whole));
        assertThat(cli.out()).isEqualTo(wholeTable);
    }

    private String tableOf(Path f, String... more) {
        List<String> args = new ArrayList<>(List.of("campaign", f.toString()));
        args.addAll(List.of(more));
        assertThat(run(args.toArray(String[]::new))).isZero();
        return cli.out();
    }

    @Test
    void parallelJobsGiveTheSameReport() throws Exception {
        Path f = campaign();
        Path one = dir.resolve("one.json");
        Path two = dir.resolve("two.json");
        assertThat(run("campaign", f.toString(), "--runs", "5", "--report", one.toString())).isZero();
        String table = cli.out();
        assertThat(run("campaign", f.toString(), "--runs", "5", "--jobs", "3", "--report", two.toString()))
                .as(cli.err()).isZero();
        assertThat(Files.readString(two)).isEqualTo(Files.readString(one));
        assertThat(cli.out()).isEqualTo(table);
        assertThat(run("campaign", f.toString(), "--jobs", "0")).isEqualTo(2);
        assertThat(cli.err()).contains("--jobs must be 1..64, got 0");
    }

    @Test
    void mergeRefusesReportsThatAreNotTheShardsOfOneCampaign() throws Exception {
        Path f = campaign();
        for (int i = 0; i < 2; i++) {
            assertThat(run("campaign", f.toString(), "--runs", "3", "--shard", i + "/2", "--report",
                    dir.resolve("s" + i + ".json").toString())).isZero();
        }
        assertThat(run("campaign", f.toString(), "--runs", "3", "--seed", "9", "--shard", "1/2", "--report",
                dir.resolve("other.json").toString())).isZero();
        String s0 = dir.resolve("s0.json").toString();
        assertThat(run("campaign-merge", s0)).isEqualTo(2);
        assertThat(cli.err()).contains("shard(s) 1/2 missing: 1 of 2 given");
        assertThat(run("campaign-merge", s0, s0)).isEqualTo(2);
        assertThat(cli.err()).contains(": shard 0/2 is given twice");
        assertThat(run("campaign-merge", s0, dir.resolve("other.json").toString())).isEqualTo(2);
        assertThat(cli.err()).contains("other.json: 'seed' differs from " + s0);
        Files.writeString(dir.resolve("junk.json"), "{\"a\": 1}");
        assertThat(run("campaign-merge", dir.resolve("junk.json").toString())).isEqualTo(2);
        assertThat(cli.err()).contains("junk.json: not a campaign report (no 'campaign')");
        assertThat(run("campaign-merge", dir.resolve("nope.json").toString())).isEqualTo(2);
        assertThat(cli.err()).contains("nope.json: no such file");
        assertThat(run("campaign-merge", s0, dir.resolve("s1.json").toString())).as(cli.err()).isZero();
        assertThat(cli.out()).contains("seed 5, 3 run(s)").doesNotContain("shard");
    }

    @Test
    void theProgressLineGoesToStandardErrorWhenAsked() throws Exception {
        Path f = campaign();
        assertThat(run("campaign", f.toString(), "--runs", "2", "--progress")).isZero();
        assertThat(cli.err()).contains("\r[", "] 2/2 runs: ");
        assertThat(cli.out()).doesNotContain("\r");
    }

    @Test
    void theExampleCampaignRuns() {
        Path example = Files.isDirectory(Path.of("..", "scenarios")) ? Path.of("..", "scenarios", "campaigns")
                : Path.of("scenarios", "campaigns");
        assertThat(run("campaign", example.resolve("strict-unmap-faults.yaml").toString(), "--runs", "4"))
                .as(cli.err()).isZero();
        assertThat(cli.out()).contains("scenario strict-unmap.yaml, seed 1, 4 run(s)", "stale-tlb", "drop-tlbi",
                "sync-stall");
    }

    @Test
    void badFilesAndOptionsExitTwoWithOneLine() throws Exception {
        Path f = campaign();
        Files.writeString(dir.resolve("bad.yaml"), "scenario: s/unmap.yaml\nruns: many\nfaults: []\n");
        assertThat(run("campaign", dir.resolve("bad.yaml").toString())).isEqualTo(2);
        assertThat(cli.err()).startsWith("iommu-emu: " + dir.resolve("bad.yaml") + ":2:7: runs: ");
        assertThat(run("campaign", dir.resolve("none.yaml").toString())).isEqualTo(2);
        assertThat(cli.err()).contains("no such file");
        assertThat(run("campaign", f.toString(), "--shard", "3/3")).isEqualTo(2);
        assertThat(cli.err()).contains("--shard 3/3: I must be 0..N-1");
        assertThat(run("campaign", f.toString(), "--shard", "x")).isEqualTo(2);
        assertThat(cli.err()).contains("--shard must be I/N");
        assertThat(run("campaign", f.toString(), "--runs", "0")).isEqualTo(2);
        assertThat(cli.err()).contains("--runs must be at least 1");
        assertThat(run("campaign", f.toString(), "--runs", "lots")).isEqualTo(2);
        assertThat(run("campaign", f.toString(), "--report", dir.resolve("no/such/dir.json").toString()))
                .isEqualTo(2);
        assertThat(cli.err()).contains("no such directory");
    }
}
