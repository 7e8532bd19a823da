package org.iommuemu.device.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.device.vtd.VtdConfig;
import org.iommuemu.device.xlate.CostModel;
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
    void traceBufferIsAPowerOfTwoWithinTheTracersBounds() {
        assertThat(YamlFiles.parse("test.yaml", "trace_buffer: 1048576\n", ServeConfig.class).traceBuffer())
                .isEqualTo(1 << 20);
        assertThat(YamlFiles.parse("test.yaml", "port: 1\n", ServeConfig.class).traceBuffer()).isNull();
        assertThatThrownBy(() -> parse("trace_buffer: 1000\n")).isInstanceOf(ConfigException.class)
                .hasMessageStartingWith("test.yaml:1:")
                .hasMessageContaining("trace_buffer must be a power of two from 16 to 4194304 records, got 1000");
        assertThatThrownBy(() -> parse("trace_buffer: 8388608\n")).isInstanceOf(ConfigException.class)
                .hasMessageContaining("got 8388608");
        assertThatThrownBy(() -> parse("trace_buffer: -16\n")).isInstanceOf(ConfigException.class)
                .hasMessageContaining("trace_buffer");
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

    @Test
    void anSmmuv3SectionSwitchesFeaturesAndSetsSizesAndCosts() {
        MachineConfig m = parse("""
                iommus:
                  - name: small
                    kind: smmuv3
                    smmuv3:
                      stage2: false
                      range_invalidation: false
                      two_level_stream_table: false
                      granule_16k: false
                      oas_bits: 40
                      sid_bits: 8
                      cmdq_log2: 5
                      iotlb_capacity: 64
                      cost:
                        sync_ns: 1234
                        cache_hit_ns: 0
                  - name: full
                    kind: smmuv3
                """);
        SmmuV3Config small = m.iommus().get(0).smmuv3OrDefaults();
        SmmuV3Config d = SmmuV3Config.defaults();
        assertThat(small).isEqualTo(d.toBuilder().stage2(false).vmid16(false).rangeInvalidation(false).twoLevelStreamTable(false)
                .granule16k(false).oasBits(40).sidBits(8).cmdqLog2(5).iotlbCapacity(64)
                .cost(new CostModel(d.cost().mmioAccessNs(), d.cost().tableReadNs(), d.cost().tableWriteNs(),
                        d.cost().queueReadNs(), 0, d.cost().cacheMissNs(), d.cost().commandNs(), 1234,
                        d.cost().eventWriteNs(), d.cost().msiWriteNs()))
                .build());
        assertThat(m.iommus().get(1).smmuv3()).as("no section: the defaults").isNull();

        // the device the machine builds advertises exactly that in its ID registers
        Machine machine = new Machine(m);
        {
            long idr0 = machine.iommu("small").mmioRead(0x0, 4);
            assertThat(idr0 & 1).as("IDR0.S2P").isZero();
            assertThat((idr0 >>> 1) & 1).as("IDR0.S1P").isEqualTo(1);
            assertThat((idr0 >>> 27) & 3).as("IDR0.ST_LEVEL").isZero();
            assertThat(machine.iommu("small").mmioRead(0x0C, 4) & (1 << 10)).as("IDR3.RIL").isZero();
            long idr5 = machine.iommu("small").mmioRead(0x14, 4);
            assertThat(idr5 & 7).as("IDR5.OAS (40 bits)").isEqualTo(2);
            assertThat((idr5 >>> 5) & 1).as("IDR5.GRAN16K").isZero();
            assertThat(machine.iommu("small").mmioRead(0x04, 4) & 0x3F).as("IDR1.SIDSIZE").isEqualTo(8);
            assertThat(machine.iommu("full").mmioRead(0x0, 4) & 1).as("the other instance keeps S2P").isEqualTo(1);
        }
    }

    @Test
    void smmuv3SectionErrorsNameTheInstanceAndTheKey() {
        assertThatThrownBy(() -> parse("iommus:\n  - name: a\n    kind: smmuv3\n    smmuv3:\n      stage3: true\n"))
                .isInstanceOf(ConfigException.class).hasMessageStartingWith("test.yaml:5:")
                .hasMessageContaining("unknown key 'stage3'");
        assertThatThrownBy(() -> parse("iommus:\n  - name: a\n    kind: vtd\n    smmuv3:\n      msi: false\n"))
                .isInstanceOf(ConfigException.class).hasMessageContaining("iommus[0] (a): an smmuv3 section on a vtd");
        assertThatThrownBy(() -> parse("iommus:\n  - name: a\n    kind: smmuv3\n    smmuv3:\n      ats: false\n"
                + "      pri: true\n"))
                .isInstanceOf(ConfigException.class).hasMessageContaining("iommus[0] (a).smmuv3:")
                .hasMessageContaining("ATS");
        assertThatThrownBy(() -> parse("iommus:\n  - name: a\n    kind: smmuv3\n    smmuv3:\n      cost:\n"
                + "        sync_ns: -1\n"))
                .isInstanceOf(ConfigException.class).hasMessageContaining("sync_ns");
    }

    @Test
    void aVtdSectionSetsCapabilitiesCachesAndCosts() {
        MachineConfig m = parse("""
                iommus:
                  - name: legacy
                    kind: vtd
                    vtd:
                      scalable_mode: false
                      caching_mode: true
                      large_pages_1g: false
                      address_width: 39
                      fault_records: 2
                      domain_id_bits: 8
                      iotlb_capacity: 16
                      cost:
                        sync_ns: 77
                  - name: full
                    kind: vtd
                """);
        VtdConfig legacy = m.iommus().get(0).vtdOrDefaults();
        assertThat(legacy.smts()).isFalse();
        assertThat(legacy.flts() || legacy.slts() || legacy.nest() || legacy.pasid() || legacy.rps())
                .as("scalable-only capabilities go with scalable mode").isFalse();
        assertThat(legacy.cm()).isTrue();
        assertThat(legacy.sllps()).as("2M kept, 1G off").isEqualTo(1);
        assertThat(legacy.guestAddressWidth()).isEqualTo(39);
        assertThat(legacy.faultRecordCount()).isEqualTo(2);
        assertThat(legacy.domainCount()).isEqualTo(256);
        assertThat(legacy.iotlbCapacity()).isEqualTo(16);
        assertThat(legacy.cost().syncNs()).isEqualTo(77);
        assertThat(m.iommus().get(1).vtd()).as("no section: the defaults").isNull();

        Machine machine = new Machine(m);
        long ecap = machine.iommu("legacy").mmioRead(0x10, 8);
        assertThat((ecap >>> 43) & 1).as("ECAP.SMTS").isZero();
        long cap = machine.iommu("legacy").mmioRead(0x08, 8);
        assertThat((cap >>> 7) & 1).as("CAP.CM").isEqualTo(1);
        assertThat((cap >>> 16) & 0x3F).as("CAP.MGAW").isEqualTo(38);
        assertThat((machine.iommu("full").mmioRead(0x10, 8) >>> 43) & 1).as("the other keeps SMTS").isEqualTo(1);
    }

    @Test
    void vtdSectionErrorsNameTheInstanceAndTheKey() {
        assertThatThrownBy(() -> parse("iommus:\n  - name: a\n    kind: vtd\n    vtd:\n      turbo: true\n"))
                .isInstanceOf(ConfigException.class).hasMessageStartingWith("test.yaml:5:")
                .hasMessageContaining("unknown key 'turbo'");
        assertThatThrownBy(() -> parse("iommus:\n  - name: a\n    kind: smmuv3\n    vtd:\n      caching_mode: true\n"))
                .isInstanceOf(ConfigException.class).hasMessageContaining("iommus[0] (a): a vtd section on a smmuv3");
        assertThatThrownBy(() -> parse("iommus:\n  - name: a\n    kind: vtd\n    vtd:\n      queued_invalidation: false\n"))
                .isInstanceOf(ConfigException.class).hasMessageContaining("iommus[0] (a).vtd:")
                .hasMessageContaining("queued invalidation");
        assertThatThrownBy(() -> parse("iommus:\n  - name: a\n    kind: vtd\n    vtd:\n      domain_id_bits: 5\n"))
                .isInstanceOf(ConfigException.class).hasMessageContaining("domain_id_bits");
    }
}
