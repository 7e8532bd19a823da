package org.iommuemu.device.inject;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.vtd.FaultReason;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.FaultType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * WALK_READ_ABORT: a read the translation makes (STE, CD, descriptor; root, context, PASID, paging entry) fails as
 * an external abort, the DMA gets the architected fault, nothing from the failed read is cached, and once the fault
 * is cleared the same DMA succeeds.
 */
class WalkFaultsTest {

    private static FaultSpec abortAt(String iommu, long start, long end) {
        return new FaultSpec(InjectionKind.WALK_READ_ABORT).iommu(iommu).target(t -> t.addresses(start, end));
    }

    /** The DMA faults with {@code code}; cleared, the same DMA reads the page (the failed read left no cache). */
    private static DmaOutcome faultsThenRecovers(InjectRig r, FaultSpec spec, int code) {
        long id = r.faults().inject(spec);
        DmaOutcome out = r.read();
        assertThat(out.status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(out.code()).isEqualTo(code);
        assertThat(out.faultType()).isEqualTo(FaultType.EXTERNAL_ABORT);
        assertThat(r.read().code()).as("nothing was cached: the read is made, and aborts, again").isEqualTo(code);
        assertThat(r.faults().log().since(0)).hasSize(2).allSatisfy(rec -> {
            assertThat(rec.kind()).isEqualTo(InjectionKind.WALK_READ_ABORT);
            assertThat(rec.faultId()).isEqualTo(id);
            assertThat(rec.detail()).contains("stream 0x" + Integer.toHexString(r.sid));
        });
        r.faults().clear(id);
        assertThat(r.read().isOk()).isTrue();
        return out;
    }

    @Test
    void anAbortedSteReadIsFSteFetchWithTheSteAddress() throws Exception {
        InjectRig r = InjectRig.smmu();
        long ste = r.steAddress();
        faultsThenRecovers(r, abortAt("smmu0", ste, ste + 64).target(t -> t.streams(r.sid, r.sid)),
                EventType.F_STE_FETCH);
        assertThat(r.events).first().satisfies(e -> {
            assertThat(e.type()).isEqualTo(EventType.F_STE_FETCH);
            assertThat(e.streamId()).isEqualTo(r.sid);
            assertThat(e.fetchAddr()).isEqualTo(ste);
        });
    }

    @Test
    void anAbortedCdReadIsFCdFetch() throws Exception {
        InjectRig r = InjectRig.smmu();
        long cd = r.cdAddress();
        faultsThenRecovers(r, abortAt("smmu0", cd, cd + 64), EventType.F_CD_FETCH);
        assertThat(r.events).first().satisfies(e -> {
            assertThat(e.type()).isEqualTo(EventType.F_CD_FETCH);
            assertThat(e.fetchAddr()).isEqualTo(cd);
        });
    }

    @Test
    void anAbortedDescriptorReadIsFWalkEabtWithTheDescriptorAddress() throws Exception {
        InjectRig r = InjectRig.smmu(); // no DMA yet: the first walk reads the top-level table from memory
        long root = r.d.pageTable().root();
        faultsThenRecovers(r, abortAt("smmu0", root, root + 4096), EventType.F_WALK_EABT);
        assertThat(r.events).first().satisfies(e -> {
            assertThat(e.type()).isEqualTo(EventType.F_WALK_EABT);
            assertThat(e.inputAddr()).isEqualTo(InjectRig.IOVA);
            assertThat(e.clazz()).isEqualTo(EventRecord.CLASS_TT);
            assertThat(e.fetchAddr()).isBetween(root, root + 4095);
        });
    }

    @Test
    void anAbortForAnotherStreamOrAddressNeverFires() throws Exception {
        InjectRig r = InjectRig.smmu();
        long ste = r.steAddress();
        r.faults().inject(abortAt("smmu0", ste, ste + 64).target(t -> t.streams(r.sid + 1, r.sid + 1)));
        r.faults().inject(abortAt("smmu0", 0x10, 0x20));
        assertThat(r.read().isOk()).isTrue();
        assertThat(r.faults().log().lastSequence()).isZero();
        assertThat(r.faults().list("")).allSatisfy(s -> assertThat(s.fires()).isZero());
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"root entry, 0, 0x38", "scalable-context entry, 1, 0x40", "PASID-directory entry, 2, 0x50",
        "PASID-table entry, 3, 0x58"})
    void anAbortedVtdStructureReadGivesItsAccessFaultReason(String what, int which, int reason) throws Exception {
        InjectRig r = InjectRig.vtd();
        long at = r.vtdStructures()[which];
        faultsThenRecovers(r, abortAt("dmar0", at, at + 8).target(t -> t.streams(r.sid, r.sid)), reason);
        assertThat(r.vtdFaults).first().satisfies(f -> {
            assertThat(f.reason()).isEqualTo(reason);
            assertThat(f.sourceId()).isEqualTo(r.sid);
        });
    }

    @Test
    void anAbortedSecondStagePagingEntryReadIsSmSsAccess() throws Exception {
        InjectRig r = InjectRig.vtd();
        long root = r.d.pageTable().root();
        faultsThenRecovers(r, abortAt("dmar0", root, root + 4096), FaultReason.SM_SS_ACCESS);
        assertThat(r.vtdFaults).first().satisfies(f -> assertThat(f.reason()).isEqualTo(FaultReason.SM_SS_ACCESS));
    }
}
