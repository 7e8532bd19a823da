package org.iommuemu.device.scenario;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.cli.IommuEmu;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.iommuemu.device.cli.CliRun;

/** {@code iommu-emu run FILE}: its exit status and what it prints. */
class ScenarioCommandTest {
    private final CliRun cli = new CliRun();

    private int run(String... args) {
        return cli.run(args);
    }

    private static final String BASE = """
            domains:
              - {name: d, iommus: [smmu0]}
            buffers:
              - {name: buf, size: 8KiB}
            devices:
              - {name: nic, iommu: smmu0, stream: 0x10, domain: d}
            steps:
              - map: {domain: d, iova: 0x1000_0000, buffer: buf, size: 8KiB, prot: rw}
              - dma: {device: nic, op: write, iova: 0x1000_0000, size: 4KiB, data: {pattern: 0xA5}}
            """;

    @Test
    void aPassingScenarioExitsZeroAndWritesAJsonReport(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("ok.yaml");
        Files.writeString(f, BASE + "  - expect: {memory: {buffer: buf, size: 4KiB, equals: {pattern: 0xA5}}}\n");
        Path report = dir.resolve("report.json");
        assertThat(run("run", f.toString(), "--report", report.toString())).as(cli.out() + "\n" + cli.err()).isZero();
        assertThat(cli.out()).contains("[2] PASS expect memory buf 4 KiB equals pattern 0xA5",
                "DMA by dma and traffic steps: 1 ops (0 reads, 1 writes), 4096 bytes", "cache hit rates: iotlb", "commands: ",
                "simulated ns", "scenario passed");
        JsonNode json = new ObjectMapper().readTree(report.toFile());
        assertThat(json.get("expects_passed").asInt()).isEqualTo(1);
        assertThat(json.get("dma").get("bytes").asLong()).isEqualTo(4096);
        assertThat(json.get("iommus").get("smmu0").get("commands").get("CMD_SYNC").asLong()).isPositive();
        assertThat(json.get("failures")).isEmpty();
    }

    @Test
    void aFailingExpectExitsOneAndSaysWhichAndWhy(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("bad-expect.yaml");
        Files.writeString(f, BASE
                + "  - expect: {memory: {buffer: buf, offset: 4KiB, size: 16, equals: {pattern: 0xA5}}}\n"
                + "  - expect: {fault: {device: nic, kind: TRANSLATION}}\n"
                + "  - expect: {counter: {iommu: smmu0, name: faults, max: 0}}\n");
        assertThat(run("run", f.toString())).as(cli.out() + "\n" + cli.err()).isEqualTo(1);
        assertThat(cli.out())
                .contains("[2] FAIL expect memory buf+0x1000 16 B equals pattern 0xA5: byte 0 is 0x00, expected 0xA5")
                .contains("[3] FAIL expect fault nic TRANSLATION: the last DMA of nic gave no fault")
                .contains("[4] PASS expect counter smmu0 faults <= 0")
                .contains("scenario FAILED: 2 failure(s)")
                .contains(f + ":10: steps[2]: expect memory", f + ":11: steps[3]: expect fault");
    }

    @Test
    void aStepThatCannotBeDoneFailsAndStopsTheRun(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("overlap.yaml");
        Files.writeString(f, BASE + "  - map: {domain: d, iova: 0x1000_0000, buffer: buf, size: 4KiB}\n"
                + "  - expect: {fault: {device: nic, kind: none}}\n");
        assertThat(run("run", f.toString())).as(cli.out() + "\n" + cli.err()).isEqualTo(1);
        assertThat(cli.out()).contains("[2] FAIL map d iova 0x10000000", "stopping",
                "steps: 3 of 4 run (stopped at one that could not be done); expects: 0 passed, 0 failed").doesNotContain("[3]");
    }

    @Test
    void aBadFileExitsTwoWithALocatedMessageAndNoStackTrace(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("typo.yaml");
        Files.writeString(f, BASE + "  - dma: {device: nic, op: read, iova: 0x1000_0000, lenght: 4}\n");
        assertThat(run("run", f.toString())).isEqualTo(2);
        assertThat(cli.err()).contains("typo.yaml:10:", "unknown key 'lenght'").doesNotContain("\tat ");
        assertThat(run("run", dir.resolve("missing.yaml").toString())).isEqualTo(2);
        assertThat(cli.err()).contains("missing.yaml: no such file");
    }

    @Test
    void helpListsTheRunCommand() {
        assertThat(run("--help")).isZero();
        assertThat(cli.out()).contains("run");
        assertThat(run("run", "--help")).isZero();
        assertThat(cli.out()).contains("FILE", "--report", "Exit status");
    }

    @Test
    void theSameScenarioRunsOverNettyOnLoopback(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("ok.yaml");
        Files.writeString(f, BASE + "  - expect: {memory: {buffer: buf, size: 4KiB, equals: {pattern: 0xA5}}}\n"
                + "  - dma: {device: nic, op: read, iova: 0x1000_3000, size: 16}\n"
                + "  - expect: {fault: {device: nic, kind: TRANSLATION}}\n");
        assertThat(run("run", f.toString(), "--transport", "netty")).as(cli.out() + "\n" + cli.err()).isZero();
        assertThat(cli.out()).contains("over Netty on loopback", "scenario passed");
        assertThat(run("run", f.toString(), "--transport", "carrier-pigeon")).isEqualTo(2);
        assertThat(cli.err()).contains("--transport must be in-process or netty");
    }

    @Test
    void targetRunsAgainstASeparateServerAndRefusesWhatCannotWork(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("ok.yaml");
        Files.writeString(f, BASE + "  - expect: {memory: {buffer: buf, size: 4KiB, equals: {pattern: 0xA5}}}\n"
                + "  - expect: {counter: {iommu: smmu0, name: translations, min: 1, max: 1}}\n");
        try (BusServer server = BusServer.netty(new Machine(MachineConfig.defaults()), "127.0.0.1", 0).start()) {
            assertThat(run("run", f.toString(), "--target", server.target())).as(cli.out() + "\n" + cli.err()).isZero();
            assertThat(cli.out()).contains("against the server at " + server.target(),
                    "the file's machine section is not applied", "scenario passed");
            assertThat(run("run", f.toString(), "--target", server.target())).as("again: counters are per run")
                    .isZero();
            Path other = dir.resolve("other.yaml");
            Files.writeString(other, BASE.replace("smmu0", "smmu9").replace("steps:", """
                    machine:
                      iommus:
                        - {name: smmu9, kind: smmuv3}
                    steps:"""));
            assertThat(run("run", other.toString(), "--target", server.target())).isEqualTo(2);
            assertThat(cli.err()).contains("the server has no IOMMU instance smmu9");
            assertThat(run("run", f.toString(), "--target", server.target(), "--transport", "netty")).isEqualTo(2);
            assertThat(cli.err()).contains("--transport is for the embedded machine");
        }
        assertThat(run("run", f.toString(), "--target", "no-port")).isEqualTo(2);
        assertThat(cli.err()).contains("--target must be HOST:PORT");
        try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
            int closed = s.getLocalPort();
            s.close();
            assertThat(run("run", f.toString(), "--target", "127.0.0.1:" + closed)).isEqualTo(2);
            assertThat(cli.err()).contains("cannot reach the server at 127.0.0.1:" + closed, "UNAVAILABLE");
        }
    }

    @Test
    void driverClientRunsTheDriverInThisProcess(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("ok.yaml");
        Files.writeString(f, BASE + "  - expect: {memory: {buffer: buf, size: 4KiB, equals: {pattern: 0xA5}}}\n"
                + "  - dma: {device: nic, op: read, iova: 0x1000_3000, size: 16}\n"
                + "  - expect: {events: {iommu: smmu0, type: F_TRANSLATION, count: 1}}\n");
        assertThat(run("run", f.toString(), "--driver", "client", "--transport", "netty")).as(cli.out() + "\n" + cli.err())
                .isZero();
        assertThat(cli.out()).contains("driver in this process over the bus", "domain 1 of the client-side"
                + " driver", "PASS expect events smmu0 F_TRANSLATION = 1", "scenario passed");
        assertThat(run("run", f.toString(), "--driver", "kernel")).isEqualTo(2);
        assertThat(cli.err()).contains("--driver must be server or client, got kernel");
    }

    @Test
    void injectFilesAddFaultsBeforeTheFirstStep(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("stale.yaml");
        // a strict unmap, then a DMA that should fault: with TLBIs ignored it goes through
        Files.writeString(f, BASE + "  - unmap: {domain: d, iova: 0x1000_0000, size: 8KiB}\n"
                + "  - dma: {device: nic, op: write, iova: 0x1000_0000, size: 64, data: {pattern: 0x5A}}\n"
                + "  - expect: {fault: {device: nic, kind: TRANSLATION}}\n");
        assertThat(run("run", f.toString())).as("without faults the unmap protects the buffer").isZero();
        Path fault = dir.resolve("fault.yaml");
        Files.writeString(fault, "kind: ignore_iotlb_invalidation\ntarget: {iommu: smmu0}\n");
        assertThat(run("run", f.toString(), "--inject", fault.toString())).as(cli.out() + "\n" + cli.err()).isEqualTo(1);
        assertThat(cli.out()).contains("inject IGNORE_IOTLB_INVALIDATION on smmu0 (--inject): fault ",
                "injected: IGNORE_IOTLB_INVALIDATION 1", "FAIL expect fault nic TRANSLATION");

        Path bad = dir.resolve("bad.yaml");
        Files.writeString(bad, "kind: ignore_iotlb_invalidation\ntrigger: {probability: 3}\n");
        assertThat(run("run", f.toString(), "--inject", bad.toString())).isEqualTo(2);
        assertThat(cli.err()).contains("--inject " + bad + ":2:").contains("probability 3.0 is not between 0 and 1");
        Path nowhere = dir.resolve("nowhere.yaml");
        Files.writeString(nowhere, "kind: command_drop\n");
        assertThat(run("run", f.toString(), "--inject", nowhere.toString())).isEqualTo(2);
        assertThat(cli.err()).contains("target.iommu is required");
    }

    @Test
    void serveRefusesAnInjectFileItCannotCarryOut(@TempDir Path dir) throws Exception {
        Path fault = dir.resolve("f.yaml");
        Files.writeString(fault, "kind: command_drop\ntarget: {iommu: smmu9}\n");
        assertThat(run("serve", "--port", "0", "--inject", fault.toString())).isEqualTo(2);
        assertThat(cli.err()).contains("--inject COMMAND_DROP:").contains("smmu9");
        Files.writeString(fault, "kind: bus_stream_cut\ntarget: {iommu: smmu0, opcodes: [1]}\n");
        assertThat(run("serve", "--port", "0", "--inject", fault.toString())).isEqualTo(2);
        assertThat(cli.err()).contains("BUS_STREAM_CUT");
    }
}
