package org.iommuemu.device.scenario;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.iommuemu.dma.Atc;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.junit.jupiter.api.Test;

/**
 * ATS devices in scenario files ({@code ats: true}, {@code atc:}): the keys and their checks, the device and instance
 * counters, and the two examples ({@code scenarios/ats-nic.yaml}, {@code scenarios/ats-mute-device.yaml}), each of
 * whose expectations is shown to fail when what it checks is taken away.
 */
class AtsScenarioTest {
    private static final String HEAD = """
            machine:
              iommus:
                - {name: smmu0, kind: smmuv3, smmuv3: {ats: true}}
                - {name: plain, kind: smmuv3}
                - {name: dmar0, kind: vtd, vtd: {device_tlb: true}}
                - {name: dmar1, kind: vtd}
            domains:
              - {name: d, iommus: [smmu0]}
              - {name: p, iommus: [plain]}
              - {name: v, iommus: [dmar0]}
              - {name: w, iommus: [dmar1]}
            buffers:
              - {name: buf, size: 64KiB}
            devices:
            """;

    private static ScenarioFile.Loaded parse(String devices, String steps) {
        return ScenarioFile.parse("a.yaml", HEAD + devices + "steps:\n" + steps);
    }

    private static String example(String name) {
        try {
            return Files.readString(ScenarioExamplesTest.dir().resolve(name));
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    /** Runs scenario text in process; the runner's output. */
    private static String run(String source, String text, ScenarioRunner.Result[] result) {
        StringWriter out = new StringWriter();
        result[0] = ScenarioRunner.run(ScenarioFile.parse(source, text), new PrintWriter(out, true));
        return out.toString();
    }

    // ------------------------------------------------------------------ the keys

    @Test
    void anAtsDeviceParsesWithTheAtcDefaultsOrItsOwnSettings() {
        Scenario s = parse("""
                  - {name: a, iommu: smmu0, stream: 1, domain: d, ats: true}
                  - {name: b, iommu: smmu0, stream: 2, domain: d, ats: true,
                     atc: {capacity: 8, answer: delayed, delay: 20ms}}
                  - {name: c, iommu: smmu0, stream: 3, domain: d, ats: true, atc: {answer: never}}
                  - {name: e, iommu: smmu0, stream: 4, domain: d, ats: true, external: true}
                  - {name: f, iommu: dmar0, stream: 5, domain: v, ats: true}
                """, "  - expect: {device_counter: {device: a, name: atc_hits, min: 0}}\n").scenario();
        assertThat(s.devices.get(0).ats).isTrue();
        assertThat(s.devices.get(0).atc).isNull();
        Scenario.AtcSpec defaults = new Scenario.AtcSpec();
        assertThat(defaults.capacity).isEqualTo(Atc.DEFAULT_CAPACITY);
        assertThat(defaults.describe()).isEqualTo("answers invalidations at once");
        assertThat(s.devices.get(1).atc.capacity).isEqualTo(8);
        assertThat(s.devices.get(1).atc.delayNanos).isEqualTo(20_000_000L);
        assertThat(s.devices.get(1).atc.describe()).isEqualTo("answers invalidations after 20.0 ms");
        assertThat(s.devices.get(2).atc.describe()).isEqualTo("never answers invalidations");
        assertThat(s.deviceLines).containsExactly(15, 16, 18, 19, 20);
    }

    @Test
    void atsOnAnInstanceWithoutAtsNamesTheFileLineDeviceAndTheSettingToGive() {
        assertThatThrownBy(() -> parse("""
                  - {name: ok, iommu: smmu0, stream: 1, domain: d}
                  - {name: x, iommu: plain, stream: 1, domain: p, ats: true}
                """, "")).isInstanceOf(ScenarioException.class).hasMessage("a.yaml:16: devices[1] (x): ats needs an"
                        + " SMMU that implements ATS (IDR0.ATS): give plain ats: true in the machine's smmuv3"
                        + " settings");
        assertThatThrownBy(() -> parse("  - {name: y, iommu: dmar1, stream: 1, domain: w, ats: true}\n", ""))
                .hasMessage("a.yaml:15: devices[0] (y): ats needs device TLBs on dmar1 (ECAP.DT): give it"
                        + " device_tlb: true in the machine's vtd settings");
    }

    @Test
    void atsIsForWholeStreamsAndAnExternalDeviceKeepsItsOwnAtc() {
        assertThatThrownBy(() -> parse("  - {name: s, iommu: smmu0, stream: 1, substream: 3, domain: d, ats: true}\n",
                "")).hasMessageContaining("a.yaml:15: devices[0] (s): ats applies to a whole stream");
        assertThatThrownBy(() -> parse("""
                  - {name: e, iommu: smmu0, stream: 1, domain: d, ats: true, external: true, atc: {capacity: 4}}
                """, "")).hasMessageContaining("a.yaml:15: devices[0] (e): atc is for the runner's own ATS devices");
        assertThatThrownBy(() -> parse("  - {name: n, iommu: smmu0, stream: 1, domain: d, atc: {capacity: 4}}\n",
                "")).hasMessageContaining("devices[0] (n): atc configures the ATC of an ATS device: add ats: true");
    }

    @Test
    void badAtcValuesNameFileLineAndColumn() {
        assertThatThrownBy(() -> parse("  - {name: a, iommu: smmu0, stream: 1, domain: d, ats: true,"
                + " atc: {answer: sometimes}}\n", "")).isInstanceOf(ScenarioException.class)
                .hasMessageContaining("a.yaml:15:").hasMessageContaining(
                        "answer must be at_once, delayed or never, got 'sometimes'");
        assertThatThrownBy(() -> parse("  - {name: a, iommu: smmu0, stream: 1, domain: d, ats: true,"
                + " atc: {capacity: 0}}\n", "")).hasMessageContaining("a.yaml:15:")
                .hasMessageContaining("capacity must be 1 to 4096 regions, got 0");
        assertThatThrownBy(() -> parse("  - {name: a, iommu: smmu0, stream: 1, domain: d, ats: true,"
                + " atc: {capacity: 5000}}\n", "")).hasMessageContaining("capacity must be 1 to 4096");
        assertThatThrownBy(() -> parse("  - {name: a, iommu: smmu0, stream: 1, domain: d, ats: true,"
                + " atc: {delay: forever, answer: delayed}}\n", "")).hasMessageContaining("a.yaml:15:")
                .hasMessageContaining("delay must be a duration such as 30s");
        assertThatThrownBy(() -> parse("  - {name: a, iommu: smmu0, stream: 1, domain: d, ats: true,"
                + " atc: {size: 4}}\n", "")).hasMessageContaining("a.yaml:15:")
                .hasMessageContaining("unknown key 'size'");
        assertThatThrownBy(() -> parse("  - {name: a, iommu: smmu0, stream: 1, domain: d, ats: true,"
                + " atc: {answer: at_once, delay: 5ms}}\n", ""))
                .hasMessage("a.yaml:15: devices[0] (a): atc delay goes with answer: delayed");
    }

    @Test
    void atcCountersNeedAnAtsDeviceTheRunnerDrivesAndAtsCountersAreChecked() {
        String devices = """
                  - {name: a, iommu: smmu0, stream: 1, domain: d, ats: true}
                  - {name: n, iommu: smmu0, stream: 2, domain: d}
                  - {name: e, iommu: smmu0, stream: 3, domain: d, ats: true, external: true}
                """;
        assertThatThrownBy(() -> parse(devices,
                "  - expect: {device_counter: {device: n, name: atc_misses, max: 1}}\n"))
                .hasMessageContaining("a.yaml:19: steps[0]: atc_misses is a counter of the ATC of an ATS device the"
                        + " runner drives, and n has no ats: true");
        assertThatThrownBy(() -> parse(devices, "  - expect: {device_counter: {device: e, name: atc_hits, max: 1}}\n"))
                .hasMessageContaining("and e is external (its program keeps its ATC)");
        assertThatThrownBy(() -> parse(devices,
                "  - expect: {device_counter: {device: a, name: atc_lookups, max: 1}}\n"))
                .hasMessageContaining("a.yaml:19:").hasMessageContaining("unknown device counter 'atc_lookups'");
        assertThatThrownBy(() -> parse(devices, "  - expect: {counter: {iommu: smmu0, name: ats.hits, max: 1}}\n"))
                .hasMessageContaining("a.yaml:19:").hasMessageContaining(
                        "'hits' is not an ATS counter (one of [translation_requests, translated_requests,");
        parse(devices, "  - expect: {counter: {iommu: smmu0, name: ats.invalidations_timed_out, max: 0}}\n");
    }

    // ------------------------------------------------------------------ running

    @Test
    void anAtsDeviceOnVtdGetsDeviceTlbInvalidationsWithEitherDriver() {
        String text = HEAD + "  - {name: f, iommu: dmar0, stream: 5, domain: v, ats: true}\nsteps:\n"
                + "  - map: {domain: v, iova: 0x1000, buffer: buf, size: 4KiB, prot: rw}\n"
                + "  - dma: {device: f, op: read, iova: 0x1000, size: 8}\n"
                + "  - unmap: {domain: v, iova: 0x1000, size: 4KiB}\n"
                + "  - expect: {counter: {iommu: dmar0, name: commands.DEV_TLB_INV, min: 1, max: 1}}\n"
                + "  - expect: {device_counter: {device: f, name: atc_invalidations, min: 1, max: 1}}\n"
                + "  - dma: {device: f, op: read, iova: 0x1000, size: 8}\n"
                + "  - expect: {fault: {device: f, kind: PERMISSION}}\n"; // re-translated: "no access"
        ScenarioFile.Loaded loaded = ScenarioFile.parse("v.yaml", text);
        for (ScenarioRunner.Options o : List.of(ScenarioRunner.Options.inProcess(),
                ScenarioRunner.Options.netty().withDriver(ScenarioRunner.DriverSide.CLIENT))) {
            StringWriter out = new StringWriter();
            ScenarioRunner.Result r = ScenarioRunner.run(loaded, new PrintWriter(out, true), o);
            assertThat(r.failures()).as(out.toString()).isEmpty();
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    void theAtsNicExampleReportsItsAtcAndTheSmmuPassesTranslatedRequests() {
        ScenarioRunner.Result[] r = new ScenarioRunner.Result[1];
        String out = run("ats-nic.yaml", example("ats-nic.yaml"), r);
        assertThat(r[0].failures()).as(out).isEmpty();
        assertThat(out).contains("ats: its DMA goes through an ATC of 64 regions, which answers invalidations at once",
                "PASS expect counter smmu0 commands.ATC_INV = 100 (is 100)",
                "ok   dma eth0 write 64 B at iova 0x10063000 (pattern 0xEE): fault PERMISSION at 0x10063000",
                "ATC of eth0: 2178 hits, 124 misses, 124 translation requests (2 refused or no access), 101"
                        + " invalidations received (116 regions dropped), 101 answered");
        Map<String, Object> atc = (Map<String, Object>) ((Map<String, Object>) r[0].report().get("atc")).get("eth0");
        assertThat(atc).containsEntry("atc_translations", 124L).containsEntry("atc_invalidations", 101L);
    }

    /** Without ATS the same NIC makes the SMMU translate every request, and no ATC_INV is sent. */
    @Test
    void withoutAtsTheAtsNicExpectationsOnTheSmmuFail() {
        String text = example("ats-nic.yaml").replace("    ats: true\n", "")
                .replace("    atc: {capacity: 64, answer: at_once}\n", "")
                .replaceAll("  - expect: \\{device_counter: \\{device: eth0, name: atc_[^\n]*\n", "");
        ScenarioRunner.Result[] r = new ScenarioRunner.Result[1];
        String out = run("no-ats.yaml", text, r);
        assertThat(r[0].passed()).isFalse();
        assertThat(out).contains("FAIL expect counter smmu0 ats.translation_requests = 20 (is 0)",
                "FAIL expect counter smmu0 ats.translated_requests = 2000 (is 0)",
                "FAIL expect counter smmu0 translations <= 40 (is 2000)",
                "FAIL expect counter smmu0 caches.iotlb.hits <= 40",
                "FAIL expect counter smmu0 commands.ATC_INV = 100 (is 0)",
                "FAIL expect counter smmu0 commands.CMD_SYNC in [202, 204]",
                "FAIL expect counter smmu0 ats.invalidations_completed = 100 (is 0)",
                "FAIL expect fault eth0 PERMISSION",
                "FAIL expect events smmu0 F_TRANSLATION = 0",
                "FAIL expect counter smmu0 commands.ATC_INV = 101 (is 0)");
        assertThat(out).contains("PASS expect counter smmu0 walks <= 16");
    }

    /** An ATC too small for the working set misses again and again. */
    @Test
    void withASmallAtcTheHitAndMissExpectationsFail() {
        String text = example("ats-nic.yaml").replace("atc: {capacity: 64, answer: at_once}",
                "atc: {capacity: 4, answer: at_once}");
        ScenarioRunner.Result[] r = new ScenarioRunner.Result[1];
        String out = run("small-atc.yaml", text, r);
        assertThat(r[0].passed()).isFalse();
        assertThat(out).contains("FAIL expect device_counter eth0 atc_misses = 20",
                "FAIL expect device_counter eth0 atc_hits = 1980",
                "FAIL expect counter smmu0 ats.translation_requests = 20",
                "FAIL expect counter smmu0 translations <= 40");
    }

    /** A NIC that never answers: every unmap's sync times out, and the ATC's answers are missing. */
    @Test
    void whenTheNicNeverAnswersTheCompletionExpectationsFail() {
        String text = example("ats-nic.yaml").replace("smmuv3: {ats: true}", "smmuv3: {ats: true, atc_timeout_ms: 10}")
                .replace("atc: {capacity: 64, answer: at_once}", "atc: {capacity: 64, answer: never}");
        ScenarioRunner.Result[] r = new ScenarioRunner.Result[1];
        String out = run("never.yaml", text, r);
        assertThat(r[0].passed()).isFalse();
        assertThat(out).contains("PASS expect device_counter eth0 atc_invalidations = 100 (is 100)",
                "FAIL expect device_counter eth0 atc_completions = 100 (is 0)",
                "FAIL expect counter smmu0 ats.invalidations_completed = 100 (is 0)",
                "FAIL expect counter smmu0 ats.invalidations_timed_out <= 0 (is 100)");
    }

    /** A lazy domain defers the TLBIs and ATC_INVs to its flush: the device keeps its stale entry meanwhile. */
    @Test
    void withALazyDomainTheInvalidationExpectationsFail() {
        String text = example("ats-nic.yaml").replace("flush: strict", "flush: lazy");
        ScenarioRunner.Result[] r = new ScenarioRunner.Result[1];
        String out = run("lazy.yaml", text, r);
        assertThat(r[0].passed()).isFalse();
        assertThat(out).contains("FAIL expect device_counter eth0 atc_invalidations = 100",
                "FAIL expect device_counter eth0 atc_completions = 100",
                "FAIL expect fault eth0 PERMISSION",
                "FAIL expect device_counter eth0 atc_translate_faults = 1",
                "FAIL expect device_counter eth0 atc_invalidated = 116");
    }

    @Test
    void theMuteDeviceExampleTimesOutItsSyncAndTheOtherDeviceKeepsWorking() {
        ScenarioRunner.Result[] r = new ScenarioRunner.Result[1];
        String out = run("ats-mute-device.yaml", example("ats-mute-device.yaml"), r);
        assertThat(r[0].failures()).as(out).isEmpty();
        assertThat(out).contains("ats: its DMA goes through an ATC of 64 regions, which never answers invalidations",
                "ats: its DMA goes through an ATC of 8 regions, which answers invalidations after 5.0 ms",
                "PASS expect counter smmu0 ats.invalidations_timed_out = 1 (is 1)",
                "PASS expect counter smmu0 global_errors = 1 (is 1)",
                "ok   dma good read 64 B at iova 0x40000000: fault PERMISSION at 0x40000000");
    }

    /** When the device answers, nothing times out: the expectations on the timeout fail. */
    @Test
    void whenTheMuteDeviceAnswersTheTimeoutExpectationsFail() {
        String text = example("ats-mute-device.yaml").replace("atc: {answer: never}", "atc: {answer: at_once}");
        ScenarioRunner.Result[] r = new ScenarioRunner.Result[1];
        String out = run("answers.yaml", text, r);
        assertThat(r[0].passed()).isFalse();
        assertThat(out).contains("FAIL expect counter smmu0 ats.invalidations_completed = 1 (is 2)",
                "FAIL expect counter smmu0 ats.invalidations_timed_out = 1 (is 0)",
                "FAIL expect counter smmu0 global_errors = 1 (is 0)",
                "FAIL expect device_counter mute atc_completions <= 0 (is 1)",
                "FAIL expect counter smmu0 ats.invalidations_timed_out = 2 (is 0)",
                "PASS expect fault good PERMISSION");
    }

    /**
     * An external ATS device: the runner enables ATS on its stream (STE.EATS=1) and the program attaches with ATS and
     * keeps its own ATC; here the program is a thread of this test.
     */
    @Test
    void anExternalAtsDeviceGetsAtsOnItsStreamAndKeepsItsOwnAtc() throws Exception {
        String scenario = """
                machine:
                  iommus:
                    - {name: smmu0, kind: smmuv3, smmuv3: {ats: true}}
                domains:
                  - {name: d, iommus: [smmu0]}
                buffers:
                  - {name: buf, size: 16KiB}
                devices:
                  - {name: ext, iommu: smmu0, stream: 0x20, domain: d, external: true, ats: true, attach_timeout: 20s}
                steps:
                  - map: {domain: d, iova: 0x2000_0000, buffer: buf, size: 16KiB, prot: rw}
                  - wait: {device: ext, detached: true, timeout: 20s}
                  - expect: {device_counter: {device: ext, name: dma_ops, min: 8, max: 8}}
                  - expect: {counter: {iommu: smmu0, name: ats.translation_requests, min: 4, max: 4}}
                  - expect: {counter: {iommu: smmu0, name: ats.translated_requests, min: 8, max: 8}}
                """;
        StringWriter out = new StringWriter();
        PrintWriter printer = new PrintWriter(out, true);
        CompletableFuture<Long> device = CompletableFuture.supplyAsync(() -> {
            try {
                String target = await(out, Pattern.compile("bus: serving on (\\S+) "));
                await(out, Pattern.compile("waiting up to 20 s for external device ext"));
                try (DmaClient client = DmaClient.connect(target);
                        DmaSession s = client.attach("java-ats", "smmu0", 0x20, false, true)) {
                    Atc atc = new Atc(8);
                    s.useAtc(atc);
                    for (int i = 0; i < 8; i++) {
                        DmaResult w = s.write(0x2000_0000L + (i % 4) * 4096L,
                                com.google.protobuf.ByteString.copyFromUtf8("ats"), DmaOptions.DEFAULT);
                        assertThat(w.isOk()).as("write %d: %s", i, w).isTrue();
                    }
                    return atc.hits();
                }
            } catch (InterruptedException e) {
                throw new RuntimeException(e);
            }
        });
        ScenarioRunner.Result r = ScenarioRunner.run(ScenarioFile.parse("ext-ats.yaml", scenario), printer);
        assertThat(device.get(30, TimeUnit.SECONDS)).as("the device's own ATC served the second round").isEqualTo(4);
        assertThat(r.failures()).as(out.toString()).isEmpty();
        assertThat(out.toString()).contains("ATS enabled on its stream, external: its own program attaches");
    }

    private static String await(StringWriter out, Pattern pattern) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (System.nanoTime() < deadline) {
            String text = out.getBuffer().toString(); // a StringBuffer: safe to read while the runner writes
            Matcher m = pattern.matcher(text);
            if (m.find()) {
                return m.groupCount() > 0 ? m.group(1) : m.group();
            }
            Thread.sleep(10);
        }
        throw new AssertionError("no " + pattern + " in:\n" + out);
    }
}
