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

    @Test
    void longStepsPrintProgressAndDeviceCountersAddUp() {
        String text = """
                domains:
                  - {name: d, iommus: [smmu0]}
                buffers:
                  - {name: buf, size: 64KiB}
                devices:
                  - name: eth
                    iommu: smmu0
                    stream: 9
                    domain: d
                    nic: {ring_iova: 0x7000_0000, rx_entries: 4, tx_entries: 2}
                steps:
                  - map: {domain: d, iova: 0x1000_0000, buffer: buf, size: 64KiB, prot: rw}
                  - traffic: {device: eth, pattern: strided, iova: 0x1000_0000, range: 64KiB, request: 256,
                              stride: 4KiB, ops: 256, read_fraction: 0.5, seed: 3}
                  - nic_receive: {device: eth, packets: 128, size: 100, iova: 0x2000_0000, buffer: buf,
                                  data: {pattern: 0x3C}}
                  - expect: {device_counter: {device: eth, name: dma_ops, min: 256, max: 256}}
                  - expect: {device_counter: {device: eth, name: dma_bytes, min: 65536, max: 65536}}
                  - expect: {device_counter: {device: eth, name: rx_packets, min: 128, max: 128}}
                  - expect: {device_counter: {device: eth, name: rx_bytes, min: 12800, max: 12800}}
                  - expect: {device_counter: {device: eth, name: rx_drops, max: 0}}
                  - expect: {memory: {buffer: buf, size: 100, equals: {pattern: 0x3C}}}
                  - expect: {counter: {iommu: smmu0, name: commands.TLBI_NH_VA, min: 128, max: 128}}
                """;
        ScenarioRunner.Result r = ScenarioRunner.run(ScenarioFile.parse("p.yaml", text), new PrintWriter(out, true),
                ScenarioRunner.Options.inProcess().withProgressEvery(0));
        assertThat(r.failures()).as(out.toString()).isEmpty();
        assertThat(r.expectsPassed()).isEqualTo(7);
        assertThat(out.toString()).contains("...  25% (32 requests answered", "... 100% (224 requests answered", "...  50% (64 packets",
                "... 100% (128 packets", "NIC eth: 128 packets received (12800 bytes), 0 dropped, 0 DMA faults");
    }

    @Test
    void aNicReceiveIntoAnUnmappedRingStopsTheRunWithTheNicsFault() {
        ScenarioRunner.Result r = run("""
                domains:
                  - {name: d, iommus: [smmu0]}
                buffers:
                  - {name: buf, size: 8KiB}
                devices:
                  - {name: eth, iommu: smmu0, stream: 9, domain: d, nic: {ring_iova: 0x7000_0000}}
                steps:
                  - unmap: {domain: d, iova: 0x7000_0000, size: 8KiB}
                  - nic_receive: {device: eth, packets: 2, size: 64, iova: 0x2000_0000, buffer: buf,
                                  data: {seed: 1}}
                  - expect: {device_counter: {device: eth, name: rx_packets, min: 2}}
                """);
        assertThat(r.passed()).isFalse();
        assertThat(r.stepsRun()).as("the failing step counts as run").isEqualTo(2);
        assertThat(out.toString()).contains("FAIL nic_receive eth", "packet 0 at iova 0x20000000: DROPPED_FAULT",
                "last fault TRANSLATION at 0x70000000");
        assertThat(r.failed()).extracting(ScenarioRunner.Failure::step, ScenarioRunner.Failure::what)
                .containsExactly(org.assertj.core.groups.Tuple.tuple(1, "step"));
    }

    @Test
    void failuresSayWhatFailed() {
        ScenarioRunner.Result r = run("""
                domains:
                  - {name: d, iommus: [smmu0]}
                buffers:
                  - {name: buf, size: 8KiB}
                devices:
                  - {name: dev, iommu: smmu0, stream: 9, domain: d}
                steps:
                  - map: {domain: d, iova: 0x1000, buffer: buf, size: 4KiB, prot: rw}
                  - dma: {device: dev, op: write, iova: 0x1000, size: 64, data: {pattern: 0x11}}
                  - expect: {memory: {buffer: buf, size: 64, equals: {pattern: 0x22}}}
                  - expect: {fault: {device: dev, kind: TRANSLATION}}
                  - dma: {device: dev, op: read, iova: 0x1000, size: 64}
                  - expect: {read: {device: dev, equals: {pattern: 0x22}}}
                """);
        assertThat(r.failed()).extracting(ScenarioRunner.Failure::step, ScenarioRunner.Failure::what)
                .containsExactly(org.assertj.core.groups.Tuple.tuple(2, "expect.memory"),
                        org.assertj.core.groups.Tuple.tuple(3, "expect.fault"),
                        org.assertj.core.groups.Tuple.tuple(5, "expect.read"));
        assertThat(r.failed()).extracting(ScenarioRunner.Failure::message).isEqualTo(r.failures());
    }
}
