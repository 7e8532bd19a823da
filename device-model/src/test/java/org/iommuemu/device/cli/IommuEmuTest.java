package org.iommuemu.device.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IommuEmuTest {
    private final CliRun cli = new CliRun();

    private int run(String... args) {
        return cli.run(args);
    }

    @Test
    void helpExplainsTheCommandsAndEveryServeOption() {
        assertThat(run("--help")).isZero();
        assertThat(cli.out()).contains("serve", "demo", "--verbose", "--version");
        assertThat(run("serve", "--help")).isZero();
        assertThat(cli.out()).contains("--bind", "--port", "--iommu=NAME=KIND", "--ram=SIZE[@BASE]",
                "--config=FILE", "--max-dma-length", "0 picks a free port");
    }

    @Test
    void versionNamesTheReleaseAndTheApi() {
        assertThat(run("--version")).isZero();
        assertThat(cli.out()).startsWith("iommu-emu ").contains("bus API v1");
    }

    @Test
    void demoRunsEndToEndInProcessAndPasses() {
        int code = run("demo", "--ops", "200");
        assertThat(code).as(cli.out() + "\n" + cli.err()).isZero();
        assertThat(cli.out()).contains("demo passed", "attached 'demo-nic'", "GBPA.ABORT=1 aborts",
                "external abort", "200 pipelined 4 KiB reads", "lands at physical", "faults: FAULT TRANSLATION",
                "the event queue holds one record", "stale IOTLB entry", "DMA reaches the new page",
                "Telemetry.Stats: 4 translations, 1 fault(s), 3 walks (6 table reads)").doesNotContain("FAIL");
    }

    @Test
    void demoRunsOverNettyToo() {
        int code = run("demo", "--transport", "netty", "--ops", "100");
        assertThat(code).as(cli.out() + "\n" + cli.err()).isZero();
        assertThat(cli.out()).contains("transport netty", "demo passed");
    }

    @Test
    void demoOnAMachineWithOnlyAVtdInstanceSkipsTheSmmuPart() {
        int code = run("demo", "--iommu", "dmar7=vtd", "--ram", "1GiB@0x40000000");
        assertThat(code).as(cli.out() + "\n" + cli.err()).isZero();
        assertThat(cli.out()).contains("dmar7", "RAM: 1 GiB at 0x40000000").doesNotContain("SMMUv3 ");
    }

    @Test
    void ramBeyondTheMaxRamIsAClearErrorUnlessRaised() {
        assertThat(run("demo", "--ram", "128GiB")).isEqualTo(2);
        assertThat(cli.err()).contains("RAM of 128 GiB (1 region(s)) exceeds the max RAM of 64 GiB",
                "--max-ram").doesNotContain("\tat ");
        int code = run("demo", "--ram", "128GiB", "--max-ram", "256GiB", "--ops", "10");
        assertThat(code).as(cli.out() + "\n" + cli.err()).isZero();
        assertThat(cli.out()).contains("demo passed");
    }

    @Test
    void badInputIsAClearErrorWithoutAStackTrace(@TempDir Path dir) throws Exception {
        assertThat(run("serve", "--port", "70000")).isEqualTo(2);
        assertThat(cli.err()).contains("--port 70000 is not a TCP port").doesNotContain("\tat ");
        assertThat(run("demo", "--iommu", "x=amd")).isEqualTo(2);
        assertThat(cli.err()).contains("unknown IOMMU kind 'amd'");
        assertThat(run("demo", "--ram", "12 bananas")).isEqualTo(2);
        assertThat(cli.err()).contains("bananas");
        Path bad = dir.resolve("bad.yaml");
        Files.writeString(bad, "iommus:\n  - name: a\n    kind: vtd\n    colour: red\n");
        assertThat(run("demo", "--config", bad.toString())).isEqualTo(2);
        assertThat(cli.err()).contains("bad.yaml:4:", "unknown key 'colour'");
        assertThat(run("demo", "--config", dir.resolve("missing.yaml").toString())).isEqualTo(2);
        assertThat(cli.err()).contains("missing.yaml: no such file");
        assertThat(run("frobnicate")).isEqualTo(2);
        assertThat(cli.err()).contains("Unmatched argument");
        assertThat(run()).isEqualTo(2);
        assertThat(cli.err()).contains("Missing command");
    }
}
