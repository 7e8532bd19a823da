package org.iommuemu.device.inject;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.device.config.ConfigException;
import org.iommuemu.device.config.YamlFiles;
import org.iommuemu.device.xlate.SimClock;
import org.junit.jupiter.api.Test;

/** Triggers, determinism, records and the spec's validation, without a machine. */
class FaultInjectorTest {
    private static List<Boolean> decisions(long seed, int n) {
        FaultInjector injector = new FaultInjector();
        InstanceFaults i = injector.attach("smmu0", new SimClock());
        injector.inject(new FaultSpec(InjectionKind.COMMAND_DROP).trigger(t -> t.probability(0.5).seed(seed)));
        List<Boolean> out = new ArrayList<>();
        for (int k = 0; k < n; k++) {
            out.add(i.fires(InjectionKind.COMMAND_DROP, 0x12, 0x1000 + 16L * k, "CMDQ entry"));
        }
        return out;
    }

    @Test
    void theSameSeedGivesTheSameDecisions() {
        List<Boolean> a = decisions(42, 200);
        assertThat(decisions(42, 200)).isEqualTo(a);
        assertThat(decisions(43, 200)).isNotEqualTo(a);
        assertThat(a).contains(true, false);
    }

    @Test
    void skipFirstAndCountBoundTheFirings() {
        SimClock clock = new SimClock();
        FaultInjector injector = new FaultInjector();
        InstanceFaults i = injector.attach("dmar0", clock);
        long id = injector.inject(new FaultSpec(InjectionKind.COMMAND_DROP).iommu("dmar0")
                .target(t -> t.opcodes(2)).trigger(t -> t.skipFirst(2).count(2)));
        clock.advance(100);
        List<Boolean> got = new ArrayList<>();
        for (int k = 0; k < 6; k++) {
            got.add(i.fires(InjectionKind.COMMAND_DROP, k == 3 ? 7 : 2, 0x2000, "IQ descriptor"));
        }
        // opportunities: 1, 2 skipped; 3 fires; opcode 7 is no opportunity; 4 fires and exhausts it
        assertThat(got).containsExactly(false, false, true, false, true, false);
        assertThat(injector.list("")).singleElement().satisfies(s -> {
            assertThat(s.opportunities()).isEqualTo(4);
            assertThat(s.fires()).isEqualTo(2);
            assertThat(s.exhausted()).isTrue();
        });
        assertThat(i.active).as("an exhausted fault leaves the hot path").isEmpty();
        assertThat(injector.log().since(0)).extracting(InjectionLog.Record::sequence).containsExactly(1L, 2L);
        assertThat(injector.log().since(1)).singleElement().satisfies(r -> {
            assertThat(r.faultId()).isEqualTo(id);
            assertThat(r.simTimeNs()).isEqualTo(100);
            assertThat(r.code()).isEqualTo(2);
            assertThat(r.detail()).isEqualTo("dropped code 0x2 at IQ descriptor 0x2000");
        });
        assertThat(i.firedByKind()).containsExactly(java.util.Map.entry(InjectionKind.COMMAND_DROP, 2L));
    }

    @Test
    void withNoFaultOnItsInstanceAHookSeesAnEmptyArray() {
        FaultInjector injector = new FaultInjector();
        InstanceFaults smmu = injector.attach("smmu0", new SimClock());
        InstanceFaults vtd = injector.attach("dmar0", new SimClock());
        long id = injector.inject(new FaultSpec(InjectionKind.IGNORE_IOTLB_INVALIDATION).iommu("dmar0"));
        assertThat(smmu.active).isEmpty();
        assertThat(vtd.active).hasSize(1);
        assertThat(smmu.fires(InjectionKind.IGNORE_IOTLB_INVALIDATION, 0x12, 0, "CMDQ entry")).isFalse();
        injector.clear(id);
        assertThat(vtd.active).isEmpty();
        assertThatThrownBy(() -> injector.clear(id)).isInstanceOf(FaultSpecException.NotFound.class)
                .hasMessageContaining("fault 1 not found");
    }

    @Test
    void validationNamesTheField() {
        assertThatThrownBy(() -> new FaultSpec(InjectionKind.SYNC_NEVER_COMPLETES).target(t -> t.opcodes(1)).validate())
                .hasMessage("target.opcodes: SYNC_NEVER_COMPLETES does not select by opcodes (it selects by "
                        + "target.iommu)");
        assertThatThrownBy(() -> new FaultSpec(InjectionKind.MEMORY_FLIP_BIT).target(t -> t.streams(1, 2))
                .validate()).hasMessage("target.stream_ids: MEMORY_FLIP_BIT does not select by stream_ids (it "
                        + "selects by target.iommu)");
        assertThatThrownBy(() -> new FaultSpec(InjectionKind.MEMORY_WRITE_FIELD)
                .params(p -> p.address(0x8000_0000L).field(60, 4, 0x1F)).validate())
                .hasMessage("params.field_value: 0x1f does not fit 4 bits");
        assertThatThrownBy(() -> new FaultSpec(InjectionKind.MEMORY_FLIP_BIT).trigger(t -> t.count(2)).validate())
                .hasMessageContaining("trigger: MEMORY_FLIP_BIT is carried out once");
        assertThatThrownBy(() -> new FaultSpec(InjectionKind.COMMAND_DROP).params(p -> p.delayNs(5)).validate())
                .hasMessage("params.delay_ns: COMMAND_DROP does not take params.delay_ns (it takes no parameters)");
        assertThatThrownBy(() -> new FaultSpec(InjectionKind.MEMORY_FLIP_BIT).params(p -> p.address(8).bit(64))
                .validate()).hasMessage("params.bit: bit 64 is not 0..63");
        assertThatThrownBy(() -> new FaultInjector().inject(new FaultSpec(InjectionKind.COMMAND_DROP).iommu("x")))
                .isInstanceOf(FaultSpecException.NotFound.class).hasMessageStartingWith("target.iommu: iommu 'x'");
    }

    @Test
    void streamAndAddressSelectorsMatchOnlyOpportunitiesInside() {
        FaultInjector injector = new FaultInjector();
        InstanceFaults i = injector.attach("smmu0", new SimClock());
        FaultSpec s = new FaultSpec(InjectionKind.COMMAND_DROP)
                .target(t -> t.streams(0x10, 0x1F).addresses(0x4000, 0x5000));
        injector.inject(s.copy().trigger(t -> t.count(0)));
        InjectionKind k = InjectionKind.COMMAND_DROP;
        // the spec is valid only where the kind takes the selectors; matching is the target's own rule
        FaultSpec.Target t = s.target();
        assertThat(t.matchesStreamAndAddress(0x10, true, 0x4000)).isTrue();
        assertThat(t.matchesStreamAndAddress(0x1F, true, 0x4FFF)).isTrue();
        assertThat(t.matchesStreamAndAddress(0x20, true, 0x4000)).isFalse();
        assertThat(t.matchesStreamAndAddress(0x0F, true, 0x4000)).isFalse();
        assertThat(t.matchesStreamAndAddress(0x10, true, 0x5000)).as("end is exclusive").isFalse();
        assertThat(t.matchesStreamAndAddress(-1, true, 0x4000)).as("no stream, stream selector").isFalse();
        assertThat(t.matchesStreamAndAddress(0x10, false, 0)).as("no address, address selector").isFalse();
        assertThat(new FaultSpec.Target().matchesStreamAndAddress(-1, false, 0)).isTrue();
        assertThat(i.firing(k, 0x12, 0x10, true, 0x4800, 0x9000, "CMDQ entry")).isNotNull();
        assertThat(i.firing(k, 0x12, 0x30, true, 0x4800, 0x9000, "CMDQ entry")).isNull();
        assertThat(i.fires(k, 0x12, 0x9000, "CMDQ entry")).as("a selected fault never fires where there is "
                + "nothing to select by").isFalse();
        assertThat(injector.log().since(0)).singleElement().satisfies(r ->
                assertThat(r.detail()).isEqualTo("dropped code 0x12 stream 0x10 at CMDQ entry 0x9000"));
    }

    @Test
    void recordsAfterAnyCursorNeverFailEvenHugeOrUnsignedOnes() {
        InjectionLog log = new InjectionLog();
        assertThat(log.since(Long.MAX_VALUE)).isEmpty();
        assertThat(log.since(-1)).as("uint64 max").isEmpty();
        for (int i = 0; i < InjectionLog.KEPT + 5; i++) {
            log.add(1, InjectionKind.COMMAND_DROP, "smmu0", i, 0, 0, "r" + i);
        }
        assertThat(log.since(0)).hasSize(InjectionLog.KEPT).first().extracting(InjectionLog.Record::sequence)
                .isEqualTo(6L);
        assertThat(log.since(InjectionLog.KEPT + 3)).extracting(InjectionLog.Record::sequence)
                .containsExactly((long) InjectionLog.KEPT + 4, (long) InjectionLog.KEPT + 5);
        assertThat(log.since(Long.MAX_VALUE)).isEmpty();
        assertThat(log.since(-1)).isEmpty();
        assertThat(log.since(Long.MIN_VALUE)).as("2^63 as uint64").isEmpty();
    }

    @Test
    void methodSelectorsTakeShortOrFullNames() {
        FaultSpec.Target t = new FaultSpec.Target().methods(java.util.List.of("Dma/Read"));
        assertThat(t.matchesMethod("iommuemu.v1.Dma/Read")).isTrue();
        assertThat(t.matchesMethod("iommuemu.v1.Dma/Write")).isFalse();
        assertThat(new FaultSpec.Target().matchesMethod("iommuemu.v1.Dma/Write")).isTrue();
        assertThatThrownBy(() -> new FaultSpec.Target().methods(java.util.List.of("Read")))
                .hasMessageStartingWith("target.methods[0]: 'Read' is not a gRPC method as Service/Method");
    }

    @Test
    void yamlGivesTheSameSpecAsTheBusAndLocatesErrors() {
        FaultSpec s = YamlFiles.parse("f.yaml", """
                kind: ignore_iotlb_invalidation
                label: stale
                target:
                  iommu: smmu0
                  opcodes: [0x12, 18]
                trigger:
                  probability: 0.25
                  seed: 9
                  skip_first: 1
                  count: 4
                """, FaultSpec.class).validate();
        assertThat(s.kind()).isEqualTo(InjectionKind.IGNORE_IOTLB_INVALIDATION);
        assertThat(s.target().opcodes()).containsExactly(0x12, 18);
        assertThat(FaultSpec.fromProto(s.toProto()).toProto()).isEqualTo(s.toProto());
        assertThat(s.trigger().probability()).isEqualTo(0.25);
        assertThatThrownBy(() -> YamlFiles.parse("f.yaml", """
                kind: command_drop
                trigger:
                  probability: 2
                """, FaultSpec.class))
                .isInstanceOf(ConfigException.class)
                .hasMessageContaining("f.yaml:3:")
                .hasMessageContaining("probability 2.0 is not between 0 and 1");
        assertThatThrownBy(() -> YamlFiles.parse("f.yaml", "kind: command_drop\ntarget:\n  stream: 1\n",
                FaultSpec.class)).isInstanceOf(ConfigException.class).hasMessageContaining("f.yaml:3:")
                .hasMessageContaining("unknown key 'stream'");
        assertThatThrownBy(() -> YamlFiles.parse("f.yaml", "kind: teleport\n", FaultSpec.class))
                .isInstanceOf(ConfigException.class).hasMessageContaining("f.yaml:1:")
                .hasMessageContaining("kind 'teleport' is not an injection kind");
    }
}
