package org.iommuemu.device.campaign;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Small scenarios and campaigns the campaign tests share. */
final class CampaignFixtures {
    private CampaignFixtures() {}

    /**
     * A correct strict unmap that a stale IOTLB would defeat: a DMA caches the translation, the page is unmapped
     * (one TLBI_NH_VA, one CMD_SYNC), and a second DMA must fault and leave the buffer as the first one wrote it.
     */
    static final String UNMAP_SCENARIO = """
            domains:
              - {name: d, iommus: [smmu0]}
            buffers:
              - {name: buf, size: 8KiB}
            devices:
              - {name: dev, iommu: smmu0, stream: 0x40, domain: d}
            steps:
              - map: {domain: d, iova: 0x1000_0000, buffer: buf, size: 4KiB, prot: rw}
              - dma: {device: dev, op: write, iova: 0x1000_0000, size: 64, data: {pattern: 0x11}}
              - unmap: {domain: d, iova: 0x1000_0000, size: 4KiB}
              - dma: {device: dev, op: write, iova: 0x1000_0000, size: 64, data: {pattern: 0x22}}
              - expect: {fault: {device: dev, kind: TRANSLATION}}
              - expect: {memory: {buffer: buf, size: 64, equals: {pattern: 0x11}}}
            """;

    /** The same steps with no expects: nothing in the scenario would notice a stale write. */
    static final String UNCHECKED_SCENARIO = UNMAP_SCENARIO.lines()
            .filter(l -> !l.contains("expect:")).reduce("", (a, b) -> a + b + "\n");

    /** Three faults with probabilities over {@link #UNMAP_SCENARIO}. */
    static final String CAMPAIGN = """
            scenario: unmap.yaml
            runs: 12
            seed: 7
            faults:
              - kind: ignore_iotlb_invalidation
                label: stale-tlb
                target: {iommu: smmu0}
                probability: 0.4
              - kind: command_drop
                label: drop-tlbi
                target: {iommu: smmu0, opcodes: [0x12]}     # TLBI_NH_VA
                probability: 0.4
              - kind: sync_never_completes
                label: sync-stall
                target: {iommu: smmu0}
                probability: 0.25
            """;

    /** Writes {@code scenario} as unmap.yaml and {@code campaign} as campaign.yaml in {@code dir}. */
    static Path write(Path dir, String scenario, String campaign) throws IOException {
        Files.writeString(dir.resolve("unmap.yaml"), scenario);
        Path f = dir.resolve("campaign.yaml");
        Files.writeString(f, campaign);
        return f;
    }
}
