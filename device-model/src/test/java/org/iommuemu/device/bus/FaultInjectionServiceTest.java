package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.bus.BusFixture.assertStatus;

import io.grpc.Status;
import org.iommuemu.proto.v1.ClearFaultsRequest;
import org.iommuemu.proto.v1.FaultInjectionGrpc;
import org.iommuemu.proto.v1.FaultParams;
import org.iommuemu.proto.v1.FaultSpec;
import org.iommuemu.proto.v1.FaultTarget;
import org.iommuemu.proto.v1.FaultTrigger;
import org.iommuemu.proto.v1.IdRange;
import org.iommuemu.proto.v1.InjectRequest;
import org.iommuemu.proto.v1.InjectionKind;
import org.iommuemu.proto.v1.ListFaultsReply;
import org.iommuemu.proto.v1.ListFaultsRequest;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class FaultInjectionServiceTest {
    private BusFixture bus;
    private FaultInjectionGrpc.FaultInjectionBlockingStub faults;

    @BeforeEach
    void setUp() throws Exception {
        bus = new BusFixture();
        faults = FaultInjectionGrpc.newBlockingStub(bus.channel());
    }

    @AfterEach
    void tearDown() {
        bus.close();
    }

    private static InjectRequest inject(FaultSpec.Builder spec) {
        return InjectRequest.newBuilder().setSpec(spec).build();
    }

    private static FaultSpec.Builder ignoreTlbi(String iommu) {
        return FaultSpec.newBuilder().setKind(InjectionKind.IGNORE_IOTLB_INVALIDATION).setLabel("stale")
                .setTarget(FaultTarget.newBuilder().setIommu(iommu).addOpcodes(0x12))
                .setTrigger(FaultTrigger.newBuilder().setProbability(0.5).setSeed(7).setCount(3));
    }

    @Test
    void injectListAndClear() {
        long first = faults.inject(inject(ignoreTlbi("smmu0"))).getFaultId();
        long second = faults.inject(inject(FaultSpec.newBuilder().setKind(InjectionKind.SYNC_NEVER_COMPLETES)
                .setTarget(FaultTarget.newBuilder().setIommu("dmar0")))).getFaultId();
        assertThat(first).isEqualTo(1);
        assertThat(second).isEqualTo(2);

        ListFaultsReply all = faults.list(ListFaultsRequest.getDefaultInstance());
        assertThat(all.getFaultsList()).extracting(f -> f.getFaultId()).containsExactly(1L, 2L);
        assertThat(all.getFaults(0).getSpec()).isEqualTo(ignoreTlbi("smmu0").build().toBuilder()
                .setParams(FaultParams.getDefaultInstance()).build());
        assertThat(all.getFaults(0).getFires()).isZero();
        assertThat(all.getFaults(0).getExhausted()).isFalse();
        assertThat(all.getRecordsList()).isEmpty();
        assertThat(faults.list(ListFaultsRequest.newBuilder().setIommu("dmar0").build()).getFaultsList())
                .extracting(f -> f.getFaultId()).containsExactly(2L);

        assertThat(faults.clear(ClearFaultsRequest.newBuilder().setFaultId(1).build()).getClearedList())
                .containsExactly(1L);
        assertThat(faults.clear(ClearFaultsRequest.newBuilder().setAll(true).build()).getClearedList())
                .containsExactly(2L);
        assertThat(faults.list(ListFaultsRequest.getDefaultInstance()).getFaultsList()).isEmpty();
        assertThat(faults.inject(inject(ignoreTlbi("smmu0"))).getFaultId()).as("ids are never reused").isEqualTo(3);
    }

    @Test
    void aMemoryFaultIsRecordedListedAndCountedInTelemetry() throws Exception {
        long word = bus.ramBase() + 0x1000;
        bus.machine.memory().write64(word, 0xF0);
        faults.inject(inject(FaultSpec.newBuilder().setKind(InjectionKind.MEMORY_FLIP_BIT)
                .setTarget(FaultTarget.newBuilder().setIommu("smmu0"))
                .setParams(FaultParams.newBuilder().setAddress(word).setBit(1))));
        assertThat(bus.machine.memory().read64(word)).isEqualTo(0xF2);
        ListFaultsReply list = faults.list(ListFaultsRequest.getDefaultInstance());
        assertThat(list.getLastSequence()).isEqualTo(1);
        assertThat(list.getRecords(0).getKind()).isEqualTo(InjectionKind.MEMORY_FLIP_BIT);
        assertThat(list.getRecords(0).getAddress()).isEqualTo(word);
        assertThat(list.getRecords(0).getIommu()).isEqualTo("smmu0");
        assertThat(list.getFaults(0).getExhausted()).isTrue();
        assertThat(faults.list(ListFaultsRequest.newBuilder().setRecordsAfter(1).build()).getRecordsList()).isEmpty();

        var stats = TelemetryGrpc.newBlockingStub(bus.channel()).stats(StatsRequest.getDefaultInstance());
        assertThat(stats.getIommus(0).getInjectedFaultsList()).singleElement().satisfies(c -> {
            assertThat(c.getName()).isEqualTo("MEMORY_FLIP_BIT");
            assertThat(c.getCode()).isEqualTo(InjectionKind.MEMORY_FLIP_BIT_VALUE);
            assertThat(c.getCount()).isEqualTo(1);
        });
        assertThat(stats.getIommus(1).getInjectedFaultsList()).isEmpty();
    }

    @Test
    void everyKindOfTheBusEnumIsImplementedAndAnUnknownNumberIsRefused() {
        for (InjectionKind k : InjectionKind.values()) {
            if (k == InjectionKind.INJECTION_KIND_UNSPECIFIED || k == InjectionKind.UNRECOGNIZED) {
                continue;
            }
            var mine = org.iommuemu.device.inject.InjectionKind.byNumber(k.getNumber());
            assertThat(mine).as(k.name()).isNotNull();
            assertThat(mine.name()).isEqualTo(k.name());
            assertThat(mine.implemented()).as(k.name()).isTrue();
        }
        assertStatus(() -> faults.inject(inject(FaultSpec.newBuilder().setKindValue(63)
                .setTarget(FaultTarget.newBuilder().setIommu("smmu0")))),
                Status.Code.INVALID_ARGUMENT, "spec.kind: unknown injection kind 63");
        assertThat(faults.list(ListFaultsRequest.getDefaultInstance()).getFaultsList()).isEmpty();
    }

    @Test
    void badFieldsAreInvalidArgumentNamingTheField() {
        assertStatus(() -> faults.inject(InjectRequest.getDefaultInstance()), Status.Code.INVALID_ARGUMENT,
                "spec is required");
        assertStatus(() -> faults.inject(inject(FaultSpec.newBuilder())), Status.Code.INVALID_ARGUMENT,
                "spec.kind: is required");
        assertStatus(() -> faults.inject(inject(ignoreTlbi("smmu0")
                .setTrigger(FaultTrigger.newBuilder().setProbability(1.5)))),
                Status.Code.INVALID_ARGUMENT, "spec.trigger.probability: probability 1.5 is not between 0 and 1");
        assertStatus(() -> faults.inject(inject(FaultSpec.newBuilder().setKind(InjectionKind.SYNC_NEVER_COMPLETES)
                .setTarget(FaultTarget.newBuilder().setIommu("smmu0")
                        .setStreamIds(IdRange.newBuilder().setFirst(1).setLast(2))))),
                Status.Code.INVALID_ARGUMENT, "spec.target.stream_ids: SYNC_NEVER_COMPLETES does not select");
        assertStatus(() -> faults.inject(inject(ignoreTlbi("smmu0").setParams(FaultParams.newBuilder()
                .setCapacity(4)))), Status.Code.INVALID_ARGUMENT,
                "spec.params.capacity: IGNORE_IOTLB_INVALIDATION does not take params.capacity");
        assertStatus(() -> faults.inject(inject(FaultSpec.newBuilder().setKind(InjectionKind.MEMORY_FLIP_BIT)
                .setParams(FaultParams.newBuilder().setAddress(bus.ramBase()).setBit(64)))),
                Status.Code.INVALID_ARGUMENT, "spec.params.bit: bit 64 is not 0..63");
        assertStatus(() -> faults.inject(inject(FaultSpec.newBuilder().setKind(InjectionKind.MEMORY_FLIP_BIT)
                .setParams(FaultParams.newBuilder().setAddress(bus.ramBase() + 4)))),
                Status.Code.INVALID_ARGUMENT, "spec.params.address: 0x80000004 is not 8-byte aligned");
        assertStatus(() -> faults.inject(inject(FaultSpec.newBuilder().setKind(InjectionKind.MEMORY_FLIP_BIT)
                .setParams(FaultParams.newBuilder().setAddress(0x1000)))),
                Status.Code.OUT_OF_RANGE, "spec.params.address: 0x1000 is not RAM");
        assertStatus(() -> faults.clear(ClearFaultsRequest.getDefaultInstance()), Status.Code.INVALID_ARGUMENT,
                "fault_id is required");
    }

    @Test
    void unknownInstancesAndFaultIdsAreNotFound() {
        assertStatus(() -> faults.inject(inject(ignoreTlbi("smmu7"))), Status.Code.NOT_FOUND,
                "spec.target.iommu: iommu 'smmu7' not found");
        assertStatus(() -> faults.list(ListFaultsRequest.newBuilder().setIommu("smmu7").build()),
                Status.Code.NOT_FOUND, "iommu 'smmu7' not found");
        assertStatus(() -> faults.clear(ClearFaultsRequest.newBuilder().setFaultId(42).build()),
                Status.Code.NOT_FOUND, "fault 42 not found");
    }
}
