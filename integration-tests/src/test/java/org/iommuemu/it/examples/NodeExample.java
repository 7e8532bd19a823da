package org.iommuemu.it.examples;

import static org.assertj.core.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * Finds node and the JavaScript example with its dependencies, and runs it. In CI (CI=true) a missing node or
 * {@code npm ci} is a failure (.ci/run installs both); elsewhere the tests are skipped with a loud message.
 */
final class NodeExample {
    private NodeExample() {}

    /** The repository root (tests run in integration-tests/). */
    static Path root() {
        Path here = Path.of("").toAbsolutePath();
        return Files.isDirectory(here.resolve("examples")) ? here : here.getParent();
    }

    static Path dir() {
        return root().resolve("examples").resolve("js-copy-engine");
    }

    /** Skips (or in CI fails) the calling test unless node runs and the example's node_modules are installed. */
    static void require() {
        String problem = null;
        try {
            Process p = new ProcessBuilder("node", "--version").redirectErrorStream(true).start();
            String version = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
                problem = "`node --version` failed: " + version;
            }
        } catch (IOException e) {
            problem = "node is not on PATH (" + e.getMessage() + ")";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            problem = "interrupted";
        }
        if (problem == null && !Files.isDirectory(dir().resolve("node_modules").resolve("@grpc").resolve("grpc-js"))) {
            problem = dir().resolve("node_modules") + " is missing: run `npm ci --no-audit --no-fund` in " + dir();
        }
        if (problem == null) {
            return;
        }
        String message = "THE JAVASCRIPT DEVICE-MODEL EXAMPLE WAS NOT TESTED: " + problem
                + " (install nodejs and npm, then npm ci in examples/js-copy-engine; .ci/run does both)";
        if ("true".equals(System.getenv("CI"))) {
            fail(message + " -- CI must run it");
        }
        System.err.println("**********\n" + message + "\n**********");
        Assumptions.assumeTrue(false, message);
    }

    /** The finished program: exit status and output lines. */
    record Ran(int exit, List<String> lines) {
        String text() {
            return String.join("\n", lines);
        }
    }

    /** Runs {@code node examples/js-copy-engine/index.js ARGS...}, at most two minutes. */
    static Ran run(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("node", dir().resolve("index.js").toString()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getOutputStream().close();
        List<String> lines = new ArrayList<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(),
                    StandardCharsets.UTF_8))) {
                for (String l; (l = r.readLine()) != null; ) {
                    synchronized (lines) {
                        lines.add(l);
                    }
                }
            } catch (IOException e) {
                // gone
            }
        });
        reader.setDaemon(true);
        reader.start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("the JavaScript example did not finish in 120 s: " + lines);
        }
        reader.join(10_000);
        synchronized (lines) {
            return new Ran(p.exitValue(), List.copyOf(lines));
        }
    }
}
