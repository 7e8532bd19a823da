package org.iommuemu.device.inject;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverException;
import org.iommuemu.core.driver.vtd.VtdDriverException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.core.vtd.FaultReason;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.machine.SmmuDriverInstance;
import org.iommuemu.device.machine.VtdDriverInstance;
import org.junit.jupiter.api.Test;

/**
 * Each injection point implemented so far, on a default machine driven by its own driver (DriverHost): the
 * observable outcome with the fault active, and the same sequence once it is cleared.
 */
class FaultInjectionPointsTest {
    private static final long IOVA = 0x40_0000L;
    private static final int SID = 5;
    private static final int RID = 0x0310;

    /** The address of stream {@code sid}'s STE, through the driver's stream table (linear or 2-level). */
    private static long steAddress(SmmuV3Driver driver, PhysicalMemory mem, int sid) throws Exception {
        SmmuV3Driver.Layout l = driver.layout();
        if (!l.twoLevelStreamTable()) {
            return l.streamTableBase() + 64L * sid;
        }
        long l1 = mem.read64(l.streamTableBase() + 8L * (sid >>> 8));
        return (l1 & 0x000F_FFFF_FFFF_FFC0L) + 64L * (sid & 0xFF);
    }

    // ------------------------------------------------------------------ table and descriptor memory

    @Test
    void aFlippedSteValidBitGivesCBadSteOnceTheSteIsInvalidated() throws Exception {
        InjectRig r = InjectRig.smmu();
        assertThat(r.read().isOk()).isTrue();
        SmmuV3Driver driver = ((SmmuDriverInstance) r.o).driver();
        long ste = steAddress(driver, r.m.memory(), SID);
        long before = r.m.memory().read64(ste);
        long id = r.faults().inject(new FaultSpec(InjectionKind.MEMORY_FLIP_BIT).iommu("smmu0")
                .params(p -> p.address(ste).bit(0)));
        assertThat(r.m.memory().read64(ste)).isEqualTo(before ^ 1);
        assertThat(r.read().isOk()).as("the STE is cached until CFGI_STE").isTrue();
        driver.submit(Command.cfgiSte(SID, true));
        DmaOutcome out = r.read();
        assertThat(out.status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(out.code()).isEqualTo(EventType.C_BAD_STE);
        assertThat(r.faults().list("")).singleElement().satisfies(s -> {
            assertThat(s.id()).isEqualTo(id);
            assertThat(s.fires()).isEqualTo(1);
            assertThat(s.exhausted()).isTrue();
        });
        assertThat(r.faults().log().since(0)).singleElement().satisfies(rec -> {
            assertThat(rec.kind()).isEqualTo(InjectionKind.MEMORY_FLIP_BIT);
            assertThat(rec.address()).isEqualTo(ste);
            assertThat(rec.iommu()).isEqualTo("smmu0");
            assertThat(rec.detail()).contains("flipped bit 0");
        });
        assertThat(r.m.faults().instance("smmu0").firedByKind()).containsEntry(InjectionKind.MEMORY_FLIP_BIT, 1L);
    }

    @Test
    void aClearedContextEntryPresentBitGivesContextNotPresentAfterContextInvalidation() throws Exception {
        InjectRig r = InjectRig.vtd();
        assertThat(r.read().isOk()).isTrue();
        VtdDriverInstance v = (VtdDriverInstance) r.o;
        assertThat(v.driver().scalableMode()).isTrue();
        long root = v.driver().layout().rootTable();
        long re = r.m.memory().read64(root + 16L * (RID >>> 8));
        long ce = (re & VtdTables.PTR_MASK) + 32L * (RID & 0xFF); // devfn < 128: the lower context table
        assertThat(r.m.memory().read64(ce) & 1).isEqualTo(1);
        r.faults().inject(new FaultSpec(InjectionKind.MEMORY_WRITE_FIELD).iommu("dmar0")
                .params(p -> p.address(ce).field(VtdTables.SMCTX_P, 1, 0)));
        assertThat(r.m.memory().read64(ce) & 1).isZero();
        assertThat(r.read().isOk()).as("the context entry is cached until invalidated").isTrue();
        v.driver().submit(InvDesc.contextCache(VtdRegs.CC_GLOBAL, 0, 0, 0), 0);
        DmaOutcome out = r.read();
        assertThat(out.status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(out.code()).isEqualTo(FaultReason.SM_CONTEXT_NOT_PRESENT);
    }

    @Test
    void aMemoryFaultOutsideRamIsRefusedAndChangesNothing() {
        Machine m = new Machine(MachineConfig.defaults());
        assertThatThrownBy(() -> m.faults().inject(new FaultSpec(InjectionKind.MEMORY_FLIP_BIT)
                .params(p -> p.address(0x1000).bit(3))))
                .isInstanceOf(FaultSpecException.OutOfRange.class).hasMessageContaining("params.address");
        assertThat(m.faults().list("")).isEmpty();
        assertThat(m.faults().log().lastSequence()).isZero();
    }

    // ------------------------------------------------------------------ caches: ignored IOTLB invalidations

    private static void staleAfterStrictUnmapThenClearedFaults(InjectRig r, FaultSpec spec) throws Exception {
        assertThat(r.read().isOk()).isTrue(); // the translation is in the IOTLB
        long id = r.faults().inject(spec);
        r.d.unmap(IOVA, 4096); // strict: the invalidation is issued and waited for
        DmaOutcome stale = r.read();
        assertThat(stale.isOk()).as("with %s the unmapped page stays reachable", spec).isTrue();
        assertThat(r.faults().list(r.name)).singleElement().satisfies(s -> assertThat(s.fires()).isPositive());
        assertThat(r.faults().log().since(0)).isNotEmpty().allSatisfy(rec -> {
            assertThat(rec.faultId()).isEqualTo(id);
            assertThat(rec.iommu()).isEqualTo(r.name);
            assertThat(rec.kind()).isEqualTo(spec.kind());
        });
        r.faults().clear(id);
        r.d.map(IOVA, r.buf, 4096, Prot.READ | Prot.WRITE);
        assertThat(r.read().isOk()).isTrue();
        r.d.unmap(IOVA, 4096);
        assertThat(r.read().status()).as("cleared, the same unmap invalidates").isEqualTo(DmaOutcome.Status.FAULT);
    }

    @Test
    void ignoredTlbiLeavesAnUnmappedPageReachableOnAnSmmu() throws Exception {
        staleAfterStrictUnmapThenClearedFaults(InjectRig.smmu(),
                new FaultSpec(InjectionKind.IGNORE_IOTLB_INVALIDATION).iommu("smmu0"));
    }

    @Test
    void ignoredIotlbInvalidationLeavesAnUnmappedPageReachableOnVtd() throws Exception {
        staleAfterStrictUnmapThenClearedFaults(InjectRig.vtd(),
                new FaultSpec(InjectionKind.IGNORE_IOTLB_INVALIDATION).iommu("dmar0"));
    }

    @Test
    void anIgnoredInvalidationOnAnotherInstanceChangesNothing() throws Exception {
        InjectRig r = InjectRig.smmu();
        assertThat(r.read().isOk()).isTrue();
        r.faults().inject(new FaultSpec(InjectionKind.IGNORE_IOTLB_INVALIDATION).iommu("dmar0"));
        r.d.unmap(IOVA, 4096);
        assertThat(r.read().status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(r.faults().log().lastSequence()).isZero();
    }

    // ------------------------------------------------------------------ command processing

    @Test
    void droppedTlbiCommandsLeaveTheTranslationButTheSyncCompletes() throws Exception {
        InjectRig r = InjectRig.smmu();
        staleAfterStrictUnmapThenClearedFaults(r, new FaultSpec(InjectionKind.COMMAND_DROP).iommu("smmu0")
                .target(t -> t.opcodes(CommandOp.TLBI_NH_ALL, CommandOp.TLBI_NH_ASID, CommandOp.TLBI_NH_VA,
                        CommandOp.TLBI_NH_VAA)));
        long prod = r.m.iommu("smmu0").mmioRead(SmmuRegs.CMDQ_PROD, 4);
        assertThat(r.m.iommu("smmu0").mmioRead(SmmuRegs.CMDQ_CONS, 4)).as("CONS moved past dropped commands")
                .isEqualTo(prod);
    }

    @Test
    void droppedIotlbDescriptorsLeaveTheTranslationOnVtd() throws Exception {
        staleAfterStrictUnmapThenClearedFaults(InjectRig.vtd(),
                new FaultSpec(InjectionKind.COMMAND_DROP).iommu("dmar0")
                .target(t -> t.opcodes(InvDesc.TYPE_IOTLB, InvDesc.TYPE_PASID_IOTLB)));
    }

    @Test
    void aCmdSyncThatNeverCompletesTimesTheDriverOutAndItRecoversOnceCleared() throws Exception {
        InjectRig r = InjectRig.smmu();
        SmmuV3Driver driver = ((SmmuDriverInstance) r.o).driver();
        long id = r.faults().inject(new FaultSpec(InjectionKind.SYNC_NEVER_COMPLETES).iommu("smmu0"));
        assertThatThrownBy(driver::sync).isInstanceOfSatisfying(SmmuV3DriverException.class,
                e -> assertThat(e.kind()).isEqualTo(SmmuV3DriverException.Kind.QUEUE_TIMEOUT))
                .hasMessageContaining("CMD_SYNC did not complete");
        long prod = r.m.iommu("smmu0").mmioRead(SmmuRegs.CMDQ_PROD, 4);
        assertThat(r.m.iommu("smmu0").mmioRead(SmmuRegs.CMDQ_CONS, 4)).as("CONS stays on the CMD_SYNC")
                .isNotEqualTo(prod);
        assertThat(r.faults().log().since(0)).first().satisfies(rec -> {
            assertThat(rec.code()).isEqualTo(CommandOp.CMD_SYNC);
            assertThat(rec.detail()).contains("never completing");
        });
        r.faults().clear(id);
        driver.sync(); // the stalled CMD_SYNC completes first, then this one
        r.d.unmap(IOVA, 4096);
        assertThat(r.read().status()).isEqualTo(DmaOutcome.Status.FAULT);
    }

    @Test
    void anInvalidationWaitThatNeverCompletesTimesTheDriverOutAndItRecoversOnceCleared() throws Exception {
        InjectRig r = InjectRig.vtd();
        VtdDriverInstance v = (VtdDriverInstance) r.o;
        long id = r.faults().inject(new FaultSpec(InjectionKind.SYNC_NEVER_COMPLETES).iommu("dmar0"));
        long iwcBefore = r.m.iommu("dmar0").mmioRead(VtdRegs.ICS, 4);
        assertThatThrownBy(() -> v.driver().sync()).isInstanceOfSatisfying(VtdDriverException.class,
                e -> assertThat(e.kind()).isEqualTo(VtdDriverException.Kind.QUEUE_TIMEOUT))
                .hasMessageContaining("did not complete");
        assertThat(r.m.iommu("dmar0").mmioRead(VtdRegs.ICS, 4)).isEqualTo(iwcBefore);
        r.faults().clear(id);
        v.driver().sync();
        r.d.unmap(IOVA, 4096);
        assertThat(r.read().status()).isEqualTo(DmaOutcome.Status.FAULT);
    }

    @Test
    void aCountedStallFiresOnceAndTheNextDoorbellCompletesIt() throws Exception {
        InjectRig r = InjectRig.smmu();
        SmmuV3Driver driver = ((SmmuDriverInstance) r.o).driver();
        r.faults().inject(new FaultSpec(InjectionKind.SYNC_NEVER_COMPLETES).iommu("smmu0")
                .trigger(t -> t.count(1)));
        assertThatThrownBy(driver::sync).isInstanceOf(SmmuV3DriverException.class);
        driver.sync();
        assertThat(r.faults().list("")).singleElement().satisfies(s -> {
            assertThat(s.fires()).isEqualTo(1);
            assertThat(s.exhausted()).isTrue();
        });
    }
}
