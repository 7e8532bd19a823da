package org.iommuemu.device.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class IommuEmuTest {
    private final StringWriter out = new StringWriter();
    private final StringWriter err = new StringWriter();

    private int run(String... args) {
        CommandLine cmd = IommuEmu.commandLine();
        cmd.setOut(new PrintWriter(out, true));
        cmd.setErr(new PrintWriter(err, true));
        return cmd.execute(args);
    }

    @Test
    void helpExplainsTheCommandsAndEveryServeOption() {
        assertThat(run("--help")).isZero();
        assertThat(out.toString()).contains("serve", "demo", "--verbose", "--version");
        out.getBuffer().setLength(0);
        assertThat(run("serve", "--help")).isZero();
        assertThat(out.toString()).contains("--bind", "--port", "--iommu=NAME=KIND", "--ram=SIZE[@BASE]",
                "--config=FILE", "--max-dma-length", "0 picks a free port");
    }

    @Test
    void versionNamesTheReleaseAndTheApi() {
        assertThat(run("--version")).isZero();
        assertThat(out.toString()).startsWith("iommu-emu ").contains("bus API v1");
    }

    @Test
    void demoRunsEndToEndInProcessAndPasses() {
        int code = run("demo", "--ops", "200");
        assertThat(code).as(out + "\n" + err).isZero();
        assertThat(out.toString()).contains("demo passed", "attached 'demo-nic'", "GBPA.ABORT=1 aborts",
                "external abort", "200 pipelined 4 KiB reads", "lands at physical", "faults: FAULT TRANSLATION",
                "the event queue holds one record", "stale IOTLB entry", "DMA reaches the new page",
                "Telemetry.Stats: 4 translations, 1 fault(s), 3 walks (6 table reads)").doesNotContain("FAIL");
    }

    @Test
    void demoRunsOverNettyToo() {
        int code = run("demo", "--transport", "netty", "--ops", "100");
        assertThat(code).as(out + "\n" + err).isZero();
        assertThat(out.toString()).contains("transport netty", "demo passed");
    }

    @Test
    void demoOnAMachineWithOnlyAVtdInstanceSkipsTheSmmuPart() {
        int code = run("demo", "--iommu", "dmar7=vtd", "--ram", "1GiB@0x40000000");
        assertThat(code).as(out + "\n" + err).isZero();
        assertThat(out.toString()).contains("dmar7", "RAM: 1 GiB at 0x40000000").doesNotContain("SMMUv3 ");
    }

    @Test
    void ramBeyondTheMaxRamIsAClearErrorUnlessRaised() {
        assertThat(run("demo", "--ram", "128GiB")).isEqualTo(2);
        assertThat(err.toString()).contains("RAM of 128 GiB (1 region(s)) exceeds the max RAM of 64 GiB",
                "--max-ram").doesNotContain("\tat ");
        err.getBuffer().setLength(0);
        int code = run("demo", "--ram", "128GiB", "--max-ram", "256GiB", "--ops", "10");
        assertThat(code).as(out + "\n" + err).isZero();
        assertThat(out.toString()).contains("demo passed");
    }

    @Test
    void badInputIsAClearErrorWithoutAStackTrace(@TempDir Path dir) throws Exception {
        assertThat(run("serve", "--port", "70000")).isEqualTo(2);
        assertThat(err.toString()).contains("--port 70000 is not a TCP port").doesNotContain("\tat ");
        err.getBuffer().setLength(0);
        assertThat(run("demo", "--iommu", "x=amd")).isEqualTo(2);
        assertThat(err.toString()).contains("unknown IOMMU kind 'amd'");
        err.getBuffer().setLength(0);
        assertThat(run("demo", "--ram", "12 bananas")).isEqualTo(2);
        assertThat(err.toString()).contains("bananas");
        err.getBuffer().setLength(0);
        Path bad = dir.resolve("bad.yaml");
        Files.writeString(bad, "iommus:\n  - name: a\n    kind: vtd\n    colour: red\n");
        assertThat(run("demo", "--config", bad.toString())).isEqualTo(2);
        assertThat(err.toString()).contains("bad.yaml:4:", "unknown key 'colour'");
        err.getBuffer().setLength(0);
        assertThat(run("demo", "--config", dir.resolve("missing.yaml").toString())).isEqualTo(2);
        assertThat(err.toString()).contains("missing.yaml: no such file");
        err.getBuffer().setLength(0);
        assertThat(run("frobnicate")).isEqualTo(2);
        assertThat(err.toString()).contains("Unmatched argument");
        err.getBuffer().setLength(0);
        assertThat(run()).isEqualTo(2);
        assertThat(err.toString()).contains("Missing command");
    }
}
