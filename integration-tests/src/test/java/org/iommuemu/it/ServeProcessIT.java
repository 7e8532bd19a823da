package org.iommuemu.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MemReadRequest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The runnable jar as a user runs it: {@code iommu-emu serve --port 0} in its own process, driven from
 * this one with the DMA client library, then stopped with SIGTERM.
 */
class ServeProcessIT {
    private static Path jar() {
        Path jar = Path.of(System.getProperty("iommuemu.jar", "../device-model/target/iommu-emu.jar"));
        assertThat(jar).as("the runnable jar (built by device-model's package phase)").exists();
        return jar;
    }

    private static int awaitPort(List<String> lines, int seconds) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < deadline) {
            synchronized (lines) {
                for (String l : lines) {
                    if (l.startsWith("port ")) {
                        return Integer.parseInt(l.substring(5).trim());
                    }
                }
            }
            Thread.sleep(20);
        }
        return -1;
    }

    private static String javaBin() {
        return System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
    }

    /** A started {@code iommu-emu} and the thread collecting its output (done once the process has exited). */
    private record Started(Process process, Thread output) {}

    /** Starts {@code iommu-emu ARGS...} with its output collected line by line into {@code lines}. */
    private static Started start(List<String> lines, String... args) throws java.io.IOException {
        List<String> cmd = new ArrayList<>(List.of(javaBin(), "-jar", jar().toString()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        Thread reader = new Thread(() -> {
            try (BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(),
                    StandardCharsets.UTF_8))) {
                String line;
                while ((line = out.readLine()) != null) {
                    lines.add(line);
                }
            } catch (java.io.IOException e) {
                lines.add("(output closed: " + e.getMessage() + ")");
            }
        }, "iommu-emu-output");
        reader.setDaemon(true);
        reader.start();
        return new Started(p, reader);
    }

    @Test
    void runTargetsAServeInAnotherProcessTwiceWithTheSameResult() throws Exception {
        List<String> serveOut = Collections.synchronizedList(new ArrayList<>());
        Process serve = start(serveOut, "serve", "--port", "0").process();
        try {
            int port = awaitPort(serveOut, 60);
            assertThat(port).as("serve printed its port: " + serveOut).isPositive();
            Path scenario = Path.of("..", "scenarios", "nic-receive-lazy.yaml");
            for (int run = 1; run <= 2; run++) {
                List<String> out = Collections.synchronizedList(new ArrayList<>());
                Started r = start(out, "run", scenario.toString(), "--target", "127.0.0.1:" + port);
                Process p = r.process();
                assertThat(p.waitFor(120, TimeUnit.SECONDS)).as("run %d finishes", run).isTrue();
                r.output().join(10_000);
                String text;
                synchronized (out) {
                    text = String.join("\n", out);
                }
                assertThat(p.exitValue()).as("run %d:%n%s", run, text).isZero();
                assertThat(text).contains("against the server at 127.0.0.1:" + port, "scenario passed",
                        "NIC eth0: 500 packets received");
            }
        } finally {
            serve.destroyForcibly();
        }
    }

    @Test
    void serveTalksToAnotherProcessAndStopsGracefullyOnSigterm(@TempDir Path dir) throws Exception {
        Path config = dir.resolve("machine.yaml");
        Files.writeString(config, """
                ram:
                  - base: 0x40000000
                    size: 256MiB
                iommus:
                  - name: smmu-it
                    kind: smmuv3
                """);
        List<String> lines = Collections.synchronizedList(new ArrayList<>());
        Started started = start(lines, "serve", "--port", "0", "--config", config.toString());
        Process p = started.process();
        try {
            int port = awaitPort(lines, 60);
            assertThat(port).as("serve printed its port: " + lines).isPositive();
            String target = "127.0.0.1:" + port;
            assertThat(lines).anyMatch(l -> l.contains("serving on " + target));
            assertThat(lines).anyMatch(l -> l.contains("iommu smmu-it (smmuv3)"));
            assertThat(lines).anyMatch(l -> l.contains("ram 256 MiB at 0x40000000"));

            try (DmaClient client = DmaClient.connect(target); DmaSession s = client.attach("remote", "smmu-it", 4)) {
                DmaResult w = s.write(0x4000_1000L, "hello from another process".getBytes(StandardCharsets.UTF_8));
                assertThat(w.isOk()).isTrue();
                ManagedChannel ch = NettyChannelBuilder.forTarget(target).usePlaintext().build();
                try {
                    ByteString back = MachineGrpc.newBlockingStub(ch).memRead(MemReadRequest.newBuilder()
                            .setAddress(0x4000_1000L).setLength(26).build()).getData();
                    assertThat(back.toStringUtf8()).isEqualTo("hello from another process");
                } finally {
                    ch.shutdownNow();
                }
            }
            ProcessHandle.of(p.pid()).ifPresent(h -> h.destroy()); // SIGTERM
            assertThat(p.waitFor(30, TimeUnit.SECONDS)).as("serve exits after SIGTERM").isTrue();
            assertThat(p.exitValue()).as("the JVM's exit status after SIGTERM").isEqualTo(128 + 15);
            started.output().join(10_000);
            assertThat(lines).as("no stack trace on the way out").noneMatch(l -> l.contains("Exception"));
        } finally {
            p.destroyForcibly();
        }
    }
}
