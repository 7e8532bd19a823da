package org.iommuemu.device.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.MachineConfig;
import org.junit.jupiter.api.Test;

class ServeConfigTest {
    private static MachineConfig parse(String yaml) {
        return YamlFiles.parse("test.yaml", yaml, ServeConfig.class).apply(MachineConfig.defaults());
    }

    @Test
    void aFullFileDescribesTheMachine() {
        ServeConfig file = YamlFiles.parse("test.yaml", """
                bind: 0.0.0.0
                port: 9000
                ram:
                  - base: 0x8000_0000
                    size: 2GiB
                  - base: 0x100000000
                    size: 1G
                iommus:
                  - name: smmu-a
                    kind: smmuv3
                  - name: vtd-b
                    kind: VTD
                limits:
                  max_dma_length: 256KiB
                  max_sessions: 16
                """, ServeConfig.class);
        assertThat(file.bind()).isEqualTo("0.0.0.0");
        assertThat(file.port()).isEqualTo(9000);
        MachineConfig m = file.apply(MachineConfig.defaults());
        assertThat(m.ram()).containsExactly(new RamRegion(0x8000_0000L, 2L << 30), new RamRegion(1L << 32, 1L << 30));
        assertThat(m.iommus()).containsExactly(new IommuSpec("smmu-a", IommuType.SMMUV3),
                new IommuSpec("vtd-b", IommuType.VTD));
        assertThat(m.limits().maxDmaLength()).isEqualTo(256 << 10);
        assertThat(m.limits().maxSessions()).isEqualTo(16);
        assertThat(m.limits().maxTransferInFlight()).as("unspecified keys keep their default").isEqualTo(128);
    }

    @Test
    void omittedSectionsKeepTheDefaults() {
        MachineConfig m = parse("port: 1234\n");
        assertThat(m).isEqualTo(MachineConfig.defaults());
    }

    @Test
    void anUnknownKeyIsAnErrorWithLineColumnAndTheKnownKeys() {
        assertThatThrownBy(() -> parse("port: 1\niommus:\n  - name: a\n    kidn: vtd\n"))
                .isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("test.yaml:4:")
                .hasMessageContaining("unknown key 'kidn'")
                .hasMessageContaining("expected one of: kind, name");
    }

    @Test
    void badValuesNameTheFieldAndThePlace() {
        assertThatThrownBy(() -> parse("iommus:\n  - name: a\n    kind: amd\n"))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("test.yaml:")
                .hasMessageContaining("unknown IOMMU kind 'amd' (expected smmuv3 or vtd)");
        assertThatThrownBy(() -> parse("ram:\n  - size: lots\n"))
                .isInstanceOf(ConfigException.class).hasMessageContaining("lots");
        assertThatThrownBy(() -> parse("ram:\n  - base: 0x1000\n"))
                .isInstanceOf(ConfigException.class).hasMessageContaining("ram[0]: size is required");
        assertThatThrownBy(() -> parse("iommus:\n  - name: x\n"))
                .isInstanceOf(ConfigException.class).hasMessageContaining("iommus[0]: name and kind are required");
        assertThatThrownBy(() -> parse("iommus:\n  - name: a\n    kind: vtd\n  - name: a\n    kind: smmuv3\n"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("'a' is used twice");
        assertThatThrownBy(() -> parse("port: [1, 2]\n")).isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("test.yaml:1:").hasMessageContaining("port");
        assertThatThrownBy(() -> parse("port: 70000\n")).isInstanceOf(ConfigException.class)
                .hasMessageContaining("port 70000 is not a TCP port");
        assertThatThrownBy(() -> parse("bind: 'unterminated\n")).isInstanceOf(ConfigException.class)
                .hasMessageContaining("not valid YAML");
        assertThatThrownBy(() -> parse("")).isInstanceOf(ConfigException.class).hasMessageContaining("empty");
    }
}
