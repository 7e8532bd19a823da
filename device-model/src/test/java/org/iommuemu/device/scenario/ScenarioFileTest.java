package org.iommuemu.device.scenario;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** Parsing and checking scenario files: every error names the file and where. */
class ScenarioFileTest {
    private static final String HEAD = """
            domains:
              - name: d
                iommus: [smmu0]
            buffers:
              - name: buf
                size: 64KiB
            devices:
              - name: nic
                iommu: smmu0
                stream: 0x10
                domain: d
            steps:
            """;

    private static ScenarioFile.Loaded parse(String steps) {
        return ScenarioFile.parse("s.yaml", HEAD + steps);
    }

    @Test
    void aValidFileParsesWithTheDefaultsAndTheStepLines() {
        ScenarioFile.Loaded l = parse("""
                  - map: {domain: d, iova: 0x1000, buffer: buf, size: 4K}
                  - dma: {device: nic, op: read, iova: 0x1000, size: 16}
                """);
        Scenario s = l.scenario();
        assertThat(s.domains.get(0).stage).isEqualTo(1);
        assertThat(s.domains.get(0).granuleLg2).isEqualTo(12);
        assertThat(s.domains.get(0).inputBits).isEqualTo(48);
        assertThat(s.steps).extracting(Scenario.Step::kind).containsExactly("map", "dma");
        assertThat(s.stepLines).containsExactly(13, 14);
        assertThat(l.machine().iommus()).extracting(m -> m.name()).contains("smmu0");
    }

    @Test
    void anUnknownKeyNamesFileLineAndColumn() {
        assertThatThrownBy(() -> parse("""
                  - map: {domain: d, iova: 0x1000, buffer: buf, size: 4K}
                  - unmap: {domain: d, iova: 0x1000, size: 4K, colour: red}
                """)).isInstanceOf(ScenarioException.class)
                .hasMessageContaining("s.yaml:14:").hasMessageContaining("unknown key 'colour'")
                .hasMessageContaining("expected one of: domain, iova, size");
        assertThatThrownBy(() -> parse("  - jump: {to: 3}\n")).hasMessageContaining("s.yaml:13:")
                .hasMessageContaining("unknown key 'jump'");
        assertThatThrownBy(() -> ScenarioFile.parse("t.yaml", "machine:\n  port: 7400\n"))
                .hasMessageContaining("t.yaml:2:").hasMessageContaining("unknown key 'port'");
    }

    @Test
    void aBadValueNamesFileLineAndColumnAndWhatWasExpected() {
        assertThatThrownBy(() -> parse("  - map: {domain: d, iova: 0x1000, buffer: buf, size: 4K, prot: rwx}\n"))
                .hasMessageContaining("s.yaml:13:").hasMessageContaining("prot must be rw, r or w, got 'rwx'");
        assertThatThrownBy(() -> parse("  - dma: {device: nic, op: copy, iova: 0, size: 1}\n"))
                .hasMessageContaining("s.yaml:13:").hasMessageContaining("op must be read or write");
        assertThatThrownBy(() -> ScenarioFile.parse("u.yaml", "domains:\n  - name: x\n    iommus: [smmu0]\n"
                + "    stage: 3\n")).hasMessageContaining("u.yaml:4:").hasMessageContaining("stage must be 1 or 2");
        assertThatThrownBy(() -> parse("  - expect: {events: {iommu: smmu0, type: F_NOPE, count: 1}}\n"))
                .hasMessageContaining("s.yaml:13:").hasMessageContaining("'F_NOPE' is neither an SMMUv3 event type");
        assertThatThrownBy(() -> parse("  - expect: {counter: {iommu: smmu0, name: commands.TLBI_ALL, max: 1}}\n"))
                .hasMessageContaining("s.yaml:13:").hasMessageContaining("'TLBI_ALL' is neither an SMMUv3 command");
        assertThatThrownBy(() -> parse("  - expect: {fault: {device: nic, kind: sideways}}\n"))
                .hasMessageContaining("kind must be none or one of [TRANSLATION, PERMISSION");
        assertThatThrownBy(() -> ScenarioFile.parse("m.yaml", "machine:\n  iommus:\n    - name: s\n"
                + "      kind: smmuv3\n      smmuv3:\n        stage3: true\n"))
                .hasMessageContaining("m.yaml:6:").hasMessageContaining("unknown key 'stage3'");
    }

    @Test
    void unknownNamesInStepsNameTheStepAndItsLine() {
        assertThatThrownBy(() -> parse("""
                  - map: {domain: d, iova: 0x1000, buffer: buf, size: 4K}
                  - map: {domain: nope, iova: 0x1000, buffer: buf, size: 4K}
                """)).isInstanceOf(ScenarioException.class)
                .hasMessage("s.yaml:14: steps[1]: unknown domain 'nope' (defined: d)");
        assertThatThrownBy(() -> parse("  - map: {domain: d, iova: 0x1000, buffer: bof, size: 4K}\n"))
                .hasMessage("s.yaml:13: steps[0]: unknown buffer 'bof' (defined: buf)");
        assertThatThrownBy(() -> parse("  - dma: {device: gpu, op: read, iova: 0, size: 4}\n"))
                .hasMessage("s.yaml:13: steps[0]: unknown device 'gpu' (defined: nic)");
        assertThatThrownBy(() -> parse("  - expect: {events: {iommu: smmu9, type: F_TRANSLATION, count: 1}}\n"))
                .hasMessageContaining("s.yaml:13: steps[0]: unknown iommu 'smmu9'");
        assertThatThrownBy(() -> parse("  - map: {domain: d, iova: 0, buffer: buf, offset: 60K, size: 8K}\n"))
                .hasMessageContaining("steps[0]: offset + size runs past buffer buf");
        assertThatThrownBy(() -> parse("  - map: {domain: d, iova: 0, size: 4K}\n"))
                .hasMessageContaining("steps[0]: give either buffer (and offset) or pa");
        assertThatThrownBy(() -> parse("  - map: {domain: d, iova: 0, buffer: buf, size: 4K}\n"
                + "    unmap: {domain: d, iova: 0, size: 4K}\n"))
                .hasMessageContaining("steps[0]: a step is exactly one of");
        assertThatThrownBy(() -> parse("  - dma: {device: nic, op: write, iova: 0, size: 4}\n"))
                .hasMessageContaining("a dma write needs data");
    }

    @Test
    void injectStepsAreCheckedWhereTheyStand() {
        assertThatThrownBy(() -> parse("  - inject: {kind: bus_stream_cut, target: {iommu: smmu0, opcodes: [1]}}\n"))
                .hasMessageContaining("s.yaml:13: steps[0]: inject:").hasMessageContaining("BUS_STREAM_CUT")
                .hasMessageContaining("target.opcodes");
        assertThatThrownBy(() -> parse("  - inject: {kind: command_drop}\n"))
                .hasMessageContaining("steps[0]: inject needs target.iommu");
        assertThatThrownBy(() -> parse("  - inject: {kind: command_drop, target: {iommu: smmu9}}\n"))
                .hasMessageContaining("unknown iommu 'smmu9'");
        assertThatThrownBy(() -> parse("  - inject: {kind: command_drop, target: {iommu: smmu0}, trigger: {count: -1}}\n"))
                .hasMessageContaining("s.yaml:13:").hasMessageContaining("trigger.count must not be negative");
        assertThatThrownBy(() -> parse("  - clear_faults: {}\n"))
                .hasMessageContaining("steps[0]: clear_faults: no inject step comes before it");
        assertThatThrownBy(() -> parse("  - inject: {kind: command_drop, label: a, target: {iommu: smmu0}}\n"
                + "  - clear_faults: {label: b}\n"))
                .hasMessageContaining("steps[1]: clear_faults: no inject step before it has label 'b'");
        assertThatThrownBy(() -> parse("  - expect: {counter: {iommu: smmu0, name: injected.TELEPORT, min: 1}}\n"))
                .hasMessageContaining("injected.TELEPORT");
    }

    @Test
    void sanitizerExpectsAndTheSwitch() {
        assertThat(parse("  - expect: {sanitizer: {max: 0}}\n").scenario().sanitizer).as("on by default").isTrue();
        assertThat(ScenarioFile.parse("s.yaml", "sanitizer: false\n" + HEAD).scenario().sanitizer).isFalse();
        assertThatThrownBy(() -> parse("  - expect: {sanitizer: {kind: bogus, min: 1}}\n"))
                .hasMessageContaining("s.yaml:13:").hasMessageContaining("kind must be one of [STALE_TRANSLATION");
        assertThatThrownBy(() -> parse("  - expect: {sanitizer: {kind: freed_memory}}\n"))
                .hasMessageContaining("steps[0]: expect sanitizer needs min and/or max");
    }

    @Test
    void badSectionsNameTheEntry() {
        assertThatThrownBy(() -> ScenarioFile.parse("v.yaml", """
                domains:
                  - name: d
                    iommus: [dmar0, smmu0]
                """)).hasMessage("v.yaml: domains[0] (d): a domain's instances are of one kind ([dmar0, smmu0] mixes"
                + " VTD and SMMUV3)");
        assertThatThrownBy(() -> ScenarioFile.parse("v.yaml", """
                domains:
                  - name: d
                    iommus: [dmar0]
                    granule: 64K
                """)).hasMessage("v.yaml: domains[0] (d): VT-d page tables have a 4K granule (granule is 64K)");
        assertThatThrownBy(() -> ScenarioFile.parse("v.yaml", """
                machine:
                  iommus:
                    - {name: a, kind: smmuv3}
                    - {name: b, kind: smmuv3}
                domains:
                  - {name: d, iommus: [a]}
                devices:
                  - {name: x, iommu: b, stream: 1, domain: d}
                """)).hasMessage("v.yaml:8: devices[0] (x): domain d is on [a], not on b");
        assertThatThrownBy(() -> ScenarioFile.parse("v.yaml", """
                domains:
                  - {name: d, iommus: [smmu0]}
                devices:
                  - {name: x, iommu: smmu0, stream: 1, domain: d}
                  - {name: y, iommu: smmu0, stream: 1, domain: d}
                """)).hasMessageContaining("devices[1] (y): stream 1 of smmu0 belongs to another device");
        assertThatThrownBy(() -> ScenarioFile.parse("v.yaml", "buffers:\n  - {name: b}\n"))
                .hasMessage("v.yaml: buffers[0]: name and size are required");
    }

    @Test
    void trafficAndNicStepsAreCheckedWithTheirPlace() {
        assertThatThrownBy(() -> parse("  - traffic: {device: nic, iova: 0x1000, range: 64KiB}\n"))
                .hasMessageContaining("s.yaml:13: steps[0]: traffic needs exactly one of ops and bytes");
        assertThatThrownBy(() -> parse("  - traffic: {device: nic, iova: 0x1000, range: 64KiB, ops: 5, bytes: 4K}\n"))
                .hasMessageContaining("traffic needs exactly one of ops and bytes");
        assertThatThrownBy(() -> parse("  - traffic: {device: nic, pattern: zigzag, iova: 0, range: 4K, ops: 1}\n"))
                .hasMessageContaining("s.yaml:13:").hasMessageContaining("pattern must be sequential, random,"
                        + " strided or hot_set, got 'zigzag'");
        assertThatThrownBy(() -> parse("  - traffic: {device: nic, iova: 0, range: 4K, ops: 1, hot_pages: 4}\n"))
                .hasMessageContaining("hot_pages and hot_probability go with pattern hot_set");
        assertThatThrownBy(() -> parse("  - traffic: {device: nic, iova: 0, range: 4K, request: 8K, ops: 1}\n"))
                .hasMessageContaining("steps[0]: traffic: ");
        assertThatThrownBy(() -> parse("  - nic_receive: {device: nic, packets: 1, size: 64, iova: 0x1000,"
                + " buffer: buf, data: {seed: 1}}\n"))
                .hasMessageContaining("device nic is not a NIC (give it a nic: section)");
        assertThatThrownBy(() -> parse("  - nic_receive: {device: nic, packets: 1, size: 100000, iova: 0,"
                + " buffer: buf, data: {seed: 1}}\n")).hasMessageContaining("larger than a 64 KiB packet");
        assertThatThrownBy(() -> parse("  - expect: {device_counter: {device: nic, name: rx_packets, min: 1}}\n"))
                .hasMessageContaining("rx_packets is a NIC counter and nic is not a NIC");
        assertThatThrownBy(() -> parse("  - expect: {device_counter: {device: nic, name: tx_ghosts, min: 1}}\n"))
                .hasMessageContaining("unknown device counter 'tx_ghosts'");
        String nic = HEAD.replace("domain: d\n", "domain: d\n    nic: {ring_iova: 0xF000_0800}\n");
        assertThatThrownBy(() -> ScenarioFile.parse("n.yaml", nic))
                .hasMessageContaining("nic ring_iova 0xf0000800 is not aligned to the 4 KiB granule of domain d");
        String ok = HEAD.replace("domain: d\n", "domain: d\n    nic: {ring_iova: 0xF000_0000, rx_entries: 8}\n");
        assertThatThrownBy(() -> ScenarioFile.parse("n.yaml", ok + "  - nic_receive: {device: nic, packets: 2,"
                + " size: 64, iova: 0x1000_0800, buffer: buf, data: {seed: 1}}\n"))
                .hasMessageContaining("iova 0x10000800 is not aligned");
        Scenario s = ScenarioFile.parse("n.yaml", ok + "  - nic_receive: {device: nic, packets: 2, size: 64,"
                + " iova: 0x1000_0000, buffer: buf, data: {seed: 1}}\n").scenario();
        assertThat(s.devices.get(0).nic.rxEntries).isEqualTo(8);
        assertThat(s.devices.get(0).nic.txEntries).isEqualTo(256);
        assertThat(s.steps.get(0).kind()).isEqualTo("nic_receive");
    }

    @Test
    void substreamsAndNestingAreChecked() {
        String nested = """
                domains:
                  - {name: vm, iommus: [smmu0], stage: 2}
                  - {name: guest, iommus: [smmu0], nest_parent: vm}
                devices:
                  - {name: vf, iommu: smmu0, stream: 3, domain: guest}
                """;
        Scenario s = ScenarioFile.parse("n.yaml", nested).scenario();
        assertThat(s.domains.get(1).nestParent).isEqualTo("vm");
        assertThatThrownBy(() -> ScenarioFile.parse("n.yaml", nested.replace("stream: 3,", "stream: 3, substream: 2,")))
                .hasMessageContaining("substream needs a stage-1 domain that is not nested");
        assertThatThrownBy(() -> ScenarioFile.parse("n.yaml", nested.replace("stage: 2}", "}")))
                .hasMessageContaining("nest_parent nests a stage-1 domain on a stage-2 one");
        assertThatThrownBy(() -> ScenarioFile.parse("n.yaml", nested.replace("nest_parent: vm", "nest_parent: x")))
                .hasMessageContaining("nest_parent 'x' must name a domain defined before this one");
        assertThatThrownBy(() -> ScenarioFile.parse("n.yaml", nested.replace("stream: 3,", "stream: 3, substream: 0,")))
                .hasMessageContaining("n.yaml:5:").hasMessageContaining("substream must be 1 to 0xFFFFF");
        Scenario p = ScenarioFile.parse("p.yaml", HEAD.replace("stream: 0x10", "stream: 0x10\n    substream: 7"))
                .scenario();
        assertThat(p.devices.get(0).substream).isEqualTo(7);
    }
}
