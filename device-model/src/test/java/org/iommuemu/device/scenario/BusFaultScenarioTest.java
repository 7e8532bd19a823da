package org.iommuemu.device.scenario;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;

/** Bus fault kinds in a scenario's {@code inject} steps: they strike the run's own DMA over the bus. */
class BusFaultScenarioTest {
    @Test
    void aCorruptedDmaReadFailsTheReadExpectationButNotTheMemoryOneAndIsCounted() {
        StringWriter out = new StringWriter();
        ScenarioRunner.Result r = ScenarioRunner.run(ScenarioFile.parse("bus.yaml", """
                domains:
                  - {name: d, iommus: [smmu0]}
                buffers:
                  - {name: buf, size: 4KiB}
                devices:
                  - {name: dev, iommu: smmu0, stream: 3, domain: d}
                steps:
                  - map: {domain: d, iova: 0x10_0000, buffer: buf, size: 4KiB, prot: rw}
                  - dma: {device: dev, op: write, iova: 0x10_0000, size: 64, data: {pattern: 0x55}}
                  - inject:
                      kind: bus_dma_read_corrupt
                      label: flaky
                      target: {iommu: smmu0, stream_ids: {first: 3, last: 3}}
                      params: {bit: 9}
                  - dma: {device: dev, op: read, iova: 0x10_0000, size: 64}
                  - expect: {read: {device: dev, equals: {pattern: 0x55}}}
                  - expect: {memory: {buffer: buf, size: 64, equals: {pattern: 0x55}}}
                  - expect: {counter: {iommu: smmu0, name: injected.BUS_DMA_READ_CORRUPT, min: 1, max: 1}}
                  - clear_faults: {label: flaky}
                  - dma: {device: dev, op: read, iova: 0x10_0000, size: 64}
                  - expect: {read: {device: dev, equals: {pattern: 0x55}}}
                """), new PrintWriter(out, true));
        assertThat(r.failures()).as(out.toString()).singleElement().asString().contains("expect read dev");
        assertThat(r.expectsPassed()).as(out.toString()).isEqualTo(3);
        assertThat(out.toString()).contains("PASS expect counter smmu0 injected.BUS_DMA_READ_CORRUPT");
        // the report lists what fired, where and when
        assertThat((java.util.List<?>) r.report().get("injections")).singleElement().satisfies(o -> {
            @SuppressWarnings("unchecked")
            java.util.Map<String, Object> rec = (java.util.Map<String, Object>) o;
            assertThat(rec.get("kind")).isEqualTo("BUS_DMA_READ_CORRUPT");
            assertThat(rec.get("iommu")).isEqualTo("smmu0");
            assertThat(rec.get("address")).isEqualTo(0x10_0000L);
            assertThat((String) rec.get("detail")).contains("corrupted the read data");
        });
        assertThat(out.toString()).containsPattern("injected #\\d+ \\(fault \\d+, BUS_DMA_READ_CORRUPT\\) on smmu0 at "
                + "\\d+ simulated ns: corrupted the read data");
    }
}
