package org.iommuemu.device.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.trace.DriverOp;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code run --trace-buffer}, {@code serve --trace-buffer}, and the driver track of {@code --driver client} runs. */
class RunTraceExtrasTest {
    @TempDir
    Path tmp;


    private final CliRun cli = new CliRun();

    private int run(String... args) {
        return cli.run(args);
    }

    /** The driver track's instants of {@code trace}, counted by name (MAP, UNMAP, ...). */
    private static Map<String, Integer> driverOps(JsonNode trace) {
        Map<String, Integer> ops = new TreeMap<>();
        for (JsonNode e : trace.get("traceEvents")) {
            if (e.get("ph").asText().equals("i") && e.path("cat").asText().equals("driver")) {
                ops.merge(e.get("name").asText(), 1, Integer::sum);
            }
        }
        return ops;
    }

    /** A scenario with every driver operation a scenario makes before tear-down. */
    private Path allDriverOps() throws Exception {
        Path file = tmp.resolve("ops.yaml");
        Files.writeString(file, """
                domains:
                  - {name: net, iommus: [smmu0], stage: 1}
                  - {name: lazy, iommus: [smmu0], stage: 1, flush: lazy}
                buffers:
                  - {name: rx, size: 64KiB}
                  - {name: tx, size: 16KiB}
                devices:
                  - {name: nic, iommu: smmu0, stream: 0x10, domain: net}
                  - {name: disk, iommu: smmu0, stream: 0x11, domain: lazy}
                steps:
                  - map: {domain: net, iova: 0x1000_0000, buffer: rx, size: 64KiB, prot: rw}
                  - map_sg: {domain: net, iova: 0x2000_0000, entries: [{buffer: tx, size: 4KiB}, {buffer: tx,
                      size: 8KiB}]}
                  - dma: {device: nic, op: write, iova: 0x1000_0000, size: 4KiB, data: {seed: 7}}
                  - dma: {device: nic, op: read, iova: 0x2000_1000, size: 64}
                  - unmap: {domain: net, iova: 0x1000_0000, size: 64KiB}
                  - map: {domain: lazy, iova: 0x3000_0000, buffer: tx, size: 16KiB, prot: r}
                  - dma: {device: disk, op: read, iova: 0x3000_0000, size: 64}
                  - unmap: {domain: lazy, iova: 0x3000_0000, size: 16KiB}
                  - flush: {domain: lazy}
                  - dma: {device: nic, op: read, iova: 0x1000_0000, size: 64}
                  - expect: {fault: {device: nic, kind: TRANSLATION}}
                """);
        return file;
    }

    @Test
    void clientDriverOperationsAreOnTheDriverTrackAsTheServersAre() throws Exception {
        Path file = allDriverOps();
        Path server = tmp.resolve("server.json");
        Path client = tmp.resolve("client.json");
        assertThat(run("run", file.toString(), "--trace", server.toString())).as(cli.out() + "\n" + cli.err()).isZero();
        assertThat(run("run", file.toString(), "--driver", "client", "--trace", client.toString()))
                .as(cli.out() + "\n" + cli.err()).isZero();
        Map<String, Integer> byServer = driverOps(new ObjectMapper().readTree(server.toFile()));
        Map<String, Integer> byClient = driverOps(new ObjectMapper().readTree(client.toFile()));
        // what the scenario did up to its last step: 2 domains, 2 attaches, 2 maps, 1 map_sg, 2 unmaps, 1 flush
        assertThat(byServer).isEqualTo(Map.of(DriverOp.DOMAIN_ALLOC.name(), 2, DriverOp.ATTACH.name(), 2,
                DriverOp.MAP.name(), 2, DriverOp.MAP_SG.name(), 1, DriverOp.UNMAP.name(), 2,
                DriverOp.FLUSH.name(), 1));
        assertThat(byClient).as("the client driver's operations, as the server's driver records them")
                .isEqualTo(byServer);
        JsonNode mapSg = null;
        for (JsonNode e : new ObjectMapper().readTree(client.toFile()).get("traceEvents")) {
            if (e.get("name").asText().equals("MAP_SG")) {
                mapSg = e;
            }
        }
        assertThat(mapSg).isNotNull();
        assertThat(mapSg.toString()).contains("0x20000000").contains("12288");
        assertThat(cli.out()).doesNotContain("driver track");
    }

    @Test
    void aClientDriverAgainstATargetSaysItsDriverTrackIsNotRecorded() throws Exception {
        Machine machine = new Machine(MachineConfig.defaults());
        BusServer server = BusServer.netty(machine, "127.0.0.1", 0).start();
        try {
            Path trace = tmp.resolve("t.json");
            Path html = tmp.resolve("r.html");
            assertThat(run("run", allDriverOps().toString(), "--driver", "client", "--target", server.target(),
                    "--trace", trace.toString(), "--report", html.toString())).as(cli.out() + "\n" + cli.err()).isZero();
            assertThat(org.jsoup.Jsoup.parse(Files.readString(html)).select("#summary tr").eachText())
                    .anySatisfy(row -> assertThat(row).startsWith("driver track not recorded: with --driver client"));
            JsonNode t = new ObjectMapper().readTree(trace.toFile());
            assertThat(t.get("otherData").get("driver_track").asText()).startsWith("not recorded: with --driver"
                    + " client against --target");
            assertThat(cli.out()).contains("warning: driver track not recorded");
            assertThat(driverOps(t)).isEmpty();
            assertThat(t.toString()).contains("CMD_SYNC").as("the commands the client driver sent are there");
        } finally {
            server.close();
        }
    }

    @Test
    void traceBufferSizesTheRingAndLostRecordsAreReportedWithTheOption() throws Exception {
        Path trace = tmp.resolve("t.json");
        assertThat(run("run", RunTraceReportTest.scenario("nic-receive-strict.yaml").toString(), "--trace-buffer",
                "16", "--trace", trace.toString())).as(cli.out() + "\n" + cli.err()).isZero();
        assertThat(cli.out()).contains("trace buffer: 16 records (1.6 KiB while a Telemetry.Trace stream is"
                + " open)");
        JsonNode other = new ObjectMapper().readTree(trace.toFile()).get("otherData");
        assertThat(other.get("ring_capacity").asLong()).isEqualTo(16);
        long dropped = other.get("dropped_records").asLong();
        assertThat(dropped).as("thousands of records through a 16-record ring").isPositive();
        assertThat(cli.out()).contains("warning: the trace lost " + dropped + " record(s): the server's ring (16"
                + " records) wrapped before they were streamed; give run a larger --trace-buffer (");
        long suggested = Long.parseLong(cli.out().replaceAll("(?s).*larger --trace-buffer \\((\\d+) records"
                + " would hold the whole run\\).*", "$1"));
        assertThat(Long.bitCount(suggested)).isEqualTo(1);

        // the ring the warning suggests holds the whole run
        assertThat(run("run", RunTraceReportTest.scenario("nic-receive-strict.yaml").toString(), "--trace-buffer",
                Long.toString(suggested), "--trace", trace.toString())).as(cli.out() + "\n" + cli.err()).isZero();
        other = new ObjectMapper().readTree(trace.toFile()).get("otherData");
        assertThat(other.get("ring_capacity").asLong()).isEqualTo(suggested);
        assertThat(other.get("dropped_records").asLong()).isZero();
        assertThat(cli.out()).doesNotContain("lost");
    }

    @Test
    void badTraceBufferValuesNameTheOption() throws Exception {
        Path file = tmp.resolve("s.yaml");
        Files.writeString(file, "steps: []\n");
        assertThat(run("run", file.toString(), "--trace-buffer", "1000")).isEqualTo(2);
        assertThat(cli.err()).contains("--trace-buffer must be a power of two from 16 to 4194304 records, got"
                + " 1000");
        assertThat(run("run", file.toString(), "--trace-buffer", "8")).isEqualTo(2);
        assertThat(cli.err()).contains("got 8");
        assertThat(run("run", file.toString(), "--trace-buffer", "8388608")).isEqualTo(2);
        assertThat(cli.err()).contains("got 8388608");
        assertThat(run("run", file.toString(), "--trace-buffer", "1024", "--target", "127.0.0.1:9")).isEqualTo(2);
        assertThat(cli.err()).contains("--trace-buffer is for the embedded machine; the server at --target has"
                + " its own");
        assertThat(run("serve", "--port", "0", "--trace-buffer", "100")).isEqualTo(2);
        assertThat(cli.err()).contains("--trace-buffer must be a power of two from 16 to 4194304 records, got"
                + " 100");
        Path config = tmp.resolve("c.yaml");
        Files.writeString(config, "trace_buffer: 3\n");
        assertThat(run("serve", "--port", "0", "--config", config.toString())).isEqualTo(2);
        assertThat(cli.err()).contains("c.yaml:1:").contains("trace_buffer must be a power of two from 16 to"
                + " 4194304 records, got 3");
    }
}
