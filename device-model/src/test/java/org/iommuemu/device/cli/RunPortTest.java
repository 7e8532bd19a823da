package org.iommuemu.device.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code run --port}: the embedded machine over Netty on a chosen loopback port, and the options it excludes. */
class RunPortTest {
    private final StringWriter out = new StringWriter();
    private final StringWriter err = new StringWriter();

    private int run(String... args) {
        CommandLine cmd = IommuEmu.commandLine();
        cmd.setOut(new PrintWriter(out, true));
        cmd.setErr(new PrintWriter(err, true));
        return cmd.execute(args);
    }

    @Test
    void portServesTheEmbeddedMachineOverNetty(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("s.yaml");
        Files.writeString(file, """
                domains:
                  - {name: d, iommus: [smmu0]}
                devices:
                  - {name: dev, iommu: smmu0, stream: 1, domain: d}
                steps:
                  - dma: {device: dev, op: read, iova: 0x1000, size: 64}
                  - expect: {fault: {device: dev, kind: TRANSLATION}}
                """);
        Path report = dir.resolve("r.json");
        assertThat(run("run", file.toString(), "--port", "0", "--report", report.toString())).as(out + "" + err)
                .isZero();
        assertThat(out.toString()).contains("over Netty on loopback", "scenario passed");
        assertThat(Files.readString(report)).contains("\"transport\" : \"netty\"");
    }

    @Test
    void portIsRefusedWithTargetAndWithAnExplicitInProcessTransport(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("s.yaml");
        Files.writeString(file, "steps: []\n");
        assertThat(run("run", file.toString(), "--port", "7", "--target", "127.0.0.1:9")).isEqualTo(2);
        assertThat(err.toString()).contains("--port is for the embedded machine; --target names the server's");
        assertThat(run("run", file.toString(), "--port", "0", "--transport", "in-process")).isEqualTo(2);
        assertThat(err.toString()).contains("--port serves over Netty; it cannot go with --transport in-process");
        assertThat(run("run", file.toString(), "--port", "70000")).isEqualTo(2);
        assertThat(err.toString()).contains("--port must be 0 to 65535, got 70000");
    }
}
