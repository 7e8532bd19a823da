package org.iommuemu.device.scenario;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;

/** Steps beyond the examples: map_sg, lazy domains and the flush step, stage 2. */
class ScenarioRunnerTest {
    private final StringWriter out = new StringWriter();

    private ScenarioRunner.Result run(String text) {
        return ScenarioRunner.run(ScenarioFile.parse("t.yaml", text), new PrintWriter(out, true));
    }

    @Test
    void mapSgJoinsBuffersIntoOneIovaRange() {
        ScenarioRunner.Result r = run("""
                domains:
                  - {name: d, iommus: [smmu0], stage: 2}
                buffers:
                  - {name: a, size: 4KiB}
                  - {name: b, size: 8KiB}
                devices:
                  - {name: dev, iommu: smmu0, stream: 3, domain: d}
                steps:
                  - map_sg: {domain: d, iova: 0x10_0000, entries: [{buffer: a, size: 4KiB}, {buffer: b, offset: 4KiB, size: 4KiB}]}
                  - dma: {device: dev, op: write, iova: 0x10_0000, size: 8KiB, data: {pattern: 0x77}}
                  - expect: {memory: {buffer: a, size: 4KiB, equals: {pattern: 0x77}}}
                  - expect: {memory: {buffer: b, offset: 4KiB, size: 4KiB, equals: {pattern: 0x77}}}
                  - expect: {memory: {buffer: b, size: 4KiB, equals: {pattern: 0}}}
                """);
        assertThat(r.failures()).as(out.toString()).isEmpty();
        assertThat(r.expectsPassed()).isEqualTo(3);
        assertThat(out.toString()).contains("stage 2", "map_sg d iova 0x100000 2 entries, 8 KiB prot RW (8 KiB mapped)");
    }

    @Test
    void aLazyDomainKeepsAStaleTranslationUntilItsQueueIsFlushed() {
        ScenarioRunner.Result r = run("""
                domains:
                  - {name: d, iommus: [smmu0], flush: lazy}
                buffers:
                  - {name: a, size: 4KiB}
                devices:
                  - {name: dev, iommu: smmu0, stream: 3, domain: d}
                steps:
                  - map: {domain: d, iova: 0x10_0000, buffer: a, size: 4KiB, prot: rw}
                  - dma: {device: dev, op: read, iova: 0x10_0000, size: 64}
                  - unmap: {domain: d, iova: 0x10_0000, size: 4KiB}
                  - dma: {device: dev, op: read, iova: 0x10_0000, size: 64}
                  - expect: {fault: {device: dev, kind: none}}
                  - flush: {domain: d}
                  - dma: {device: dev, op: read, iova: 0x10_0000, size: 64}
                  - expect: {fault: {device: dev, kind: TRANSLATION}}
                  - expect: {counter: {iommu: smmu0, name: caches.iotlb.hits, min: 1}}
                """);
        assertThat(r.failures()).as(out.toString()).isEmpty();
        assertThat(r.expectsPassed()).isEqualTo(3);
        assertThat(out.toString()).contains("lazy", "flush d (flushed the queue)");
    }
}
