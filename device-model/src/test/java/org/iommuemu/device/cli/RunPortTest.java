package org.iommuemu.device.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code run --port}: the embedded machine over Netty on a chosen loopback port, and the options it excludes. */
class RunPortTest {
    private final CliRun cli = new CliRun();

    private int run(String... args) {
        return cli.run(args);
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
        assertThat(run("run", file.toString(), "--port", "0", "--report", report.toString())).as(cli.out() + cli.err())
                .isZero();
        assertThat(cli.out()).contains("over Netty on loopback", "scenario passed");
        assertThat(Files.readString(report)).contains("\"transport\" : \"netty\"");
    }

    @Test
    void portIsRefusedWithTargetAndWithAnExplicitInProcessTransport(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("s.yaml");
        Files.writeString(file, "steps: []\n");
        assertThat(run("run", file.toString(), "--port", "7", "--target", "127.0.0.1:9")).isEqualTo(2);
        assertThat(cli.err()).contains("--port is for the embedded machine; --target names the server's");
        assertThat(run("run", file.toString(), "--port", "0", "--transport", "in-process")).isEqualTo(2);
        assertThat(cli.err()).contains("--port serves over Netty; it cannot go with --transport in-process");
        assertThat(run("run", file.toString(), "--port", "70000")).isEqualTo(2);
        assertThat(cli.err()).contains("--port must be 0 to 65535, got 70000");
    }
}
