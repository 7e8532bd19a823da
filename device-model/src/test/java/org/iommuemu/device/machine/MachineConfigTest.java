package org.iommuemu.device.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

class MachineConfigTest {
    @Test
    void iommuSpecsParseFromTheCommandLineForm() {
        assertThat(IommuSpec.parse("smmu0=smmuv3")).isEqualTo(new IommuSpec("smmu0", IommuType.SMMUV3));
        assertThat(IommuSpec.parse(" dmar1 = VTD ")).isEqualTo(new IommuSpec("dmar1", IommuType.VTD));
        assertThatThrownBy(() -> IommuSpec.parse("smmu0")).hasMessageContaining("expected NAME=KIND");
        assertThatThrownBy(() -> IommuSpec.parse("smmu0=amd")).hasMessageContaining("unknown IOMMU kind 'amd'");
        assertThatThrownBy(() -> IommuSpec.parse("0bad=vtd")).hasMessageContaining("bad IOMMU instance name");
        assertThatThrownBy(() -> IommuSpec.parse("=vtd")).hasMessageContaining("bad IOMMU instance name");
    }

    @Test
    void namesMustBeUniqueAndRamPresent() {
        MachineConfig d = MachineConfig.defaults();
        assertThatThrownBy(() -> d.withIommus(List.of(IommuSpec.parse("a=vtd"), IommuSpec.parse("a=smmuv3"))))
                .hasMessageContaining("used twice");
        assertThatThrownBy(() -> d.withRam(List.of())).hasMessageContaining("at least one RAM region");
        assertThat(d.withIommus(List.of()).iommus()).as("a machine without IOMMUs is allowed").isEmpty();
    }

    @Test
    void limitsAreCheckedAndTheMessageSizeFollowsTheDmaLength() {
        Limits l = Limits.DEFAULTS.withMaxDmaLength(8 << 20);
        assertThat(l.maxMessageBytes()).isEqualTo((8 << 20) + Limits.MESSAGE_OVERHEAD);
        assertThatThrownBy(() -> Limits.DEFAULTS.withMaxDmaLength(0)).hasMessageContaining("max DMA length 0");
        assertThatThrownBy(() -> new Limits(1 << 20, 1 << 20, 1 << 20, 8, 8))
                .hasMessageContaining("must be at least");
        assertThatThrownBy(() -> new Limits(1 << 20, 2 << 20, 1 << 20, 0, 8)).hasMessageContaining("max sessions");
    }

    @Test
    void ramBeyondTheMaxRamIsRefusedNamingTheLimitAndRaisingItAllowsIt() {
        MachineConfig big = MachineConfig.defaults().withRam(List.of(
                new org.iommuemu.core.memory.RamRegion(0x8000_0000L, 1L << 40),
                new org.iommuemu.core.memory.RamRegion(0x8000_0000L + (1L << 40), 1L << 30)));
        assertThatThrownBy(() -> new Machine(big))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("RAM of 1025 GiB (2 region(s)) exceeds the max RAM of 64 GiB")
                .hasMessageContaining("limits.max_ram").hasMessageContaining("--max-ram");
        MachineConfig raised = big.withLimits(big.limits().withMaxRamBytes(2L << 40));
        assertThat(raised.checkRam().totalRam()).isEqualTo((1L << 40) + (1L << 30));
        assertThat(MachineConfig.defaults().totalRam()).isEqualTo(4L << 30);
        assertThatThrownBy(() -> Limits.DEFAULTS.withMaxRamBytes(17L << 40)).hasMessageContaining("max RAM");
        assertThatThrownBy(() -> Limits.DEFAULTS.withSessions(8, 0))
                .hasMessageContaining("max sessions per connection 0");
    }

    @Test
    void theFiveBoundConstructorKeepsTheDefaultRamBoundAndCapsSessionsPerConnection() {
        Limits few = new Limits(1 << 20, (1 << 20) + Limits.MESSAGE_OVERHEAD, 1 << 20, 8, 8);
        assertThat(few.maxRamBytes()).isEqualTo(Limits.DEFAULT_MAX_RAM);
        assertThat(few.maxSessionsPerConnection()).isEqualTo(8);
        assertThat(Limits.DEFAULTS.maxSessionsPerConnection()).isEqualTo(256);
    }
}
