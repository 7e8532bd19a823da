package org.iommuemu.device.scenario;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.junit.jupiter.api.Test;

/**
 * Scenarios with an external device ({@code external: true}): the runner serves over Netty, attaches the stream to
 * the domain, waits for a program outside it to attach, and checks what that program did from the server's
 * per-session counters. Here the "program" is a thread of this test with its own {@link DmaClient} connection.
 */
class ExternalDeviceScenarioTest {
    private static final String SCENARIO = """
            # an external device writes 16 KiB through a stage-1 domain and faults once
            domains:
              - {name: d, iommus: [smmu0]}
            buffers:
              - {name: dst, size: 16KiB}
            devices:
              - {name: ext, iommu: smmu0, stream: 0x20, domain: d, external: true, attach_timeout: 20s}
            steps:
              - map: {domain: d, iova: 0x2000_0000, buffer: dst, size: 16KiB, prot: rw}
              - wait: {device: ext, detached: true, timeout: 20s}
              - expect: {device_counter: {device: ext, name: dma_ops, min: 5, max: 5}}
              - expect: {device_counter: {device: ext, name: dma_bytes, min: 16384, max: 16384}}
              - expect: {device_counter: {device: ext, name: dma_faults, min: 1, max: 1}}
              - expect: {memory: {buffer: dst, size: 16KiB, equals: {seed: 9}}}
            """;

    /** A writer whose text another thread can watch. */
    private static final class Watched extends StringWriter {
        synchronized String text() {
            return toString();
        }

        /** Waits until the text matches {@code pattern}; returns the match's first group. */
        String await(Pattern pattern) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (System.nanoTime() < deadline) {
                Matcher m = pattern.matcher(text());
                if (m.find()) {
                    return m.groupCount() > 0 ? m.group(1) : m.group();
                }
                Thread.sleep(10);
            }
            throw new AssertionError("no " + pattern + " in:\n" + text());
        }
    }

    /** The external device: once the runner waits for it, 4 writes of 4 KiB and a read of an unmapped iova. */
    private static DmaResult device(Watched out) throws Exception {
        String target = out.await(Pattern.compile("bus: serving on (\\S+) "));
        out.await(Pattern.compile("waiting up to 20 s for external device ext"));
        byte[] data = new byte[16384];
        new Random(9).nextBytes(data);
        try (DmaClient client = DmaClient.connect(target); DmaSession s = client.attach("java-ext", "smmu0", 0x20)) {
            for (int i = 0; i < 4; i++) {
                DmaResult w = s.write(0x2000_0000L + i * 4096L, ByteString.copyFrom(data, i * 4096, 4096),
                        org.iommuemu.dma.DmaOptions.DEFAULT);
                assertThat(w.isOk()).as("write %d: %s", i, w).isTrue();
            }
            return s.read(0x3000_0000L, 64);
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    void theRunnerWaitsForTheExternalDeviceAndChecksItFromTheServersCounters() throws Exception {
        Watched out = new Watched();
        CompletableFuture<DmaResult> device = CompletableFuture.supplyAsync(() -> {
            try {
                return device(out);
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
        ScenarioRunner.Result r = ScenarioRunner.run(ScenarioFile.parse("ext.yaml", SCENARIO),
                new PrintWriter(out, true));
        assertThat(device.get(30, TimeUnit.SECONDS).fault().getKind().name()).isEqualTo("TRANSLATION");
        String text = out.text();
        assertThat(r.failures()).as(text).isEmpty();
        assertThat(r.expectsPassed()).isEqualTo(4);
        assertThat(r.report().get("transport")).as("an external device needs TCP").isEqualTo("netty");
        assertThat(text).contains("over Netty on loopback",
                "device ext: stream 0x20 of smmu0 in domain d",
                "external: its own program attaches on the bus",
                "waiting up to 20 s for external device ext to attach on stream 0x20 of smmu0: connect to 127.0.0.1:",
                "external device ext attached: session 'java-ext' from /127.0.0.1:",
                "ok   wait ext detached after",
                "PASS expect device_counter ext dma_ops = 5 (is 5)",
                "external device ext (stream 0x20 of smmu0): 1 session(s) (0 live), 5 DMA ops (1 reads, 4 writes),"
                        + " 16384 bytes, 1 faulted");
        Map<String, Object> ext = (Map<String, Object>) ((Map<String, Object>) r.report().get("external")).get("ext");
        assertThat(ext).containsEntry("sessions", 1).containsEntry("writes", 4L).containsEntry("faults", 1L);
    }

    @Test
    void aDeviceThatNeverAttachesFailsTheRunWithTheDeviceStreamAndTimeout() {
        StringWriter out = new StringWriter();
        ScenarioRunner.Result r = ScenarioRunner.run(ScenarioFile.parse("late.yaml", SCENARIO.replace(
                "attach_timeout: 20s", "attach_timeout: 300ms")), new PrintWriter(out, true));
        assertThat(r.passed()).isFalse();
        assertThat(r.stepsRun()).as("the run stops at the wait (which counts as run)").isEqualTo(2);
        assertThat(r.failures().get(0)).contains("late.yaml:10: steps[1]",
                "external device ext did not attach on stream 0x20 of smmu0 within 0.300 s (attach_timeout)");
    }

    @Test
    void theRunnerStartsTheCommandAndReportsItsStatusAndOutputWhenItFails() {
        String scenario = SCENARIO.replace("attach_timeout: 20s",
                "attach_timeout: 20s, command: [sh, -c, 'echo device for {name} at {target} stream {stream}; exit 3']");
        StringWriter out = new StringWriter();
        ScenarioRunner.Result r = ScenarioRunner.run(ScenarioFile.parse("cmd.yaml", scenario),
                new PrintWriter(out, true));
        assertThat(r.passed()).isFalse();
        assertThat(out.toString()).contains("external device ext: started sh -c echo device for ext at 127.0.0.1:");
        assertThat(r.failures().get(0)).contains("the command of external device ext exited with status 3 before"
                + " it attached", "| device for ext at 127.0.0.1:", "stream 0x20");
    }

    @Test
    void aCommandStillRunningAtTheEndIsStoppedAndAnUnusedDeviceMustStillAttach() {
        String scenario = """
                domains:
                  - {name: d, iommus: [smmu0]}
                devices:
                  - {name: ext, iommu: smmu0, stream: 0x20, domain: d, external: true, attach_timeout: 500ms,
                     command: [sleep, '60']}
                steps:
                  - expect: {counter: {iommu: smmu0, name: translations, max: 0}}
                """;
        StringWriter out = new StringWriter();
        long t0 = System.nanoTime();
        ScenarioRunner.Result r = ScenarioRunner.run(ScenarioFile.parse("sleep.yaml", scenario),
                new PrintWriter(out, true));
        assertThat(System.nanoTime() - t0).as("the sleeping command was stopped, not waited for")
                .isLessThan(TimeUnit.SECONDS.toNanos(50));
        assertThat(r.failed()).extracting(ScenarioRunner.Failure::what).containsExactly("external");
        assertThat(r.failures().get(0)).contains("external device ext did not attach");
        assertThat(out.toString()).contains("its command was still running; stopped it");
    }

    @Test
    void theFileRefusesWhatTheRunnerCannotDoWithAnExternalDevice() {
        String head = """
                domains:
                  - {name: d, iommus: [smmu0]}
                devices:
                  - {name: ext, iommu: smmu0, stream: 0x20, domain: d, external: true}
                  - {name: own, iommu: smmu0, stream: 0x21, domain: d}
                steps:
                """;
        assertThatThrownBy(() -> ScenarioFile.parse("a.yaml", head
                + "  - dma: {device: ext, op: read, iova: 0, size: 64}\n"))
                .hasMessageContaining("a.yaml:7: steps[0]: dma needs a device the runner drives, and ext is external");
        assertThatThrownBy(() -> ScenarioFile.parse("a.yaml", head + "  - expect: {read: {device: ext, equals:"
                + " {seed: 1}}}\n")).hasMessageContaining("expect read needs a device the runner drives");
        assertThatThrownBy(() -> ScenarioFile.parse("a.yaml", head + "  - wait: {device: own, detached: true}\n"))
                .hasMessageContaining("wait is for external devices, and own is not one");
        assertThatThrownBy(() -> ScenarioFile.parse("a.yaml", head + "  - wait: {device: ext}\n"))
                .hasMessageContaining("wait needs a device and exactly one of attached: true, detached: true, dma_ops");
        assertThatThrownBy(() -> ScenarioFile.parse("a.yaml", head + "  - wait: {device: ext, detached: true,"
                + " timeout: soon}\n")).hasMessageContaining("timeout must be a duration such as 30s, 500ms or 2m,"
                + " got 'soon'");
        assertThatThrownBy(() -> ScenarioFile.parse("a.yaml", head.replace("0x21, domain: d}",
                "0x21, domain: d, attach_timeout: 5s}"))).hasMessageContaining(
                "devices[1] (own): attach_timeout and command are for external devices (external: true)");
        assertThatThrownBy(() -> ScenarioFile.parse("a.yaml", head.replace("external: true}",
                "external: true, nic: {ring_iova: 0x1000}}"))).hasMessageContaining(
                "an external device cannot be a nic");
    }
}
