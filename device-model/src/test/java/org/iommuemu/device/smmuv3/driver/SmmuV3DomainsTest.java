package org.iommuemu.device.smmuv3.driver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.api.SgEntry;
import org.iommuemu.core.driver.smmuv3.SmmuV3Domains;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.driver.smmuv3.TlbiPlanner;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.junit.jupiter.api.Test;

/**
 * The driver's domains against the real device: IOMMU API maps become translations, unmaps are invalidated with
 * the planned TLBIs (range with RIL, per page without, context-wide beyond the threshold), stage 2 and shared
 * domains, detach.
 */
class SmmuV3DomainsTest {
    private static final int SID = 0x20;
    private static final long IOVA = 0x4000_0000L;

    private static IommuDomain domain(DriverRig rig, Arm64Lpae fmt, FlushPolicy policy) throws IommuApiException {
        return IommuDomain.builder(fmt, rig.ram, rig.alloc).name("dom").flushPolicy(policy).build();
    }

    private static long buffer(DriverRig rig, long bytes) {
        return rig.alloc.allocBytes(bytes, "dma");
    }

    @Test
    void aStage1DomainTranslatesWhatItMapsAndStopsAfterAStrictUnmap() throws Exception {
        DriverRig rig = DriverRig.started();
        SmmuV3Domains smmu = new SmmuV3Domains(rig.driver, "smmu0", TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD);
        IommuDomain d = domain(rig, Arm64Lpae.stage1(12, 48, 48), FlushPolicy.STRICT);
        smmu.attachStream(d, SmmuV3Domains.Stage.S1, SID);
        assertThat(d.isAttached(smmu)).isTrue();
        assertThat(smmu.contextId(d)).as("the first ASID").isEqualTo(1);
        long pa = buffer(rig, 64 << 10);

        d.map(IOVA, pa, 64 << 10, Prot.READ | Prot.WRITE);
        Translation t = rig.translate(SID, IOVA + 0x1234, Access.WRITE);
        assertThat(t.isOk()).as("%s", t).isTrue();
        assertThat(t.physicalAddress()).isEqualTo(pa + 0x1234);
        assertThat(rig.translate(SID, IOVA + 0xF000, 0).physicalAddress()).isEqualTo(pa + 0xF000);

        long rangeTlbis = rig.executed(CommandOp.TLBI_NH_VA);
        assertThat(d.unmap(IOVA, 64 << 10)).isEqualTo(64 << 10);
        assertThat(rig.executed(CommandOp.TLBI_NH_VA) - rangeTlbis).as("one range TLBI for 16 pages (RIL)")
                .isEqualTo(1);
        Translation gone = rig.translate(SID, IOVA + 0x1234, 0);
        assertThat(gone.code()).as("the cached translation went with the TLBI: %s", gone)
                .isEqualTo(EventType.F_TRANSLATION);
    }

    @Test
    void withoutRangeInvalidationOnePerPageThenOneAsidWideBeyondTheThreshold() throws Exception {
        DriverRig rig = DriverRig.started(SmmuV3Config.builder().rangeInvalidation(false).build(),
                SmmuV3DriverOptions.defaults());
        SmmuV3Domains smmu = new SmmuV3Domains(rig.driver, "smmu0", 8);
        IommuDomain d = domain(rig, Arm64Lpae.stage1(12, 48, 48), FlushPolicy.STRICT);
        smmu.attachStream(d, SmmuV3Domains.Stage.S1, SID);
        long pa = buffer(rig, 64 << 10);
        d.map(IOVA, pa, 64 << 10, Prot.READ | Prot.WRITE);
        for (long off = 0; off < 64 << 10; off += 4096) {
            assertThat(rig.translate(SID, IOVA + off, 0).isOk()).isTrue();
        }

        long va0 = rig.executed(CommandOp.TLBI_NH_VA);
        d.unmap(IOVA, 8 * 4096); // 8 pages: at the threshold
        assertThat(rig.executed(CommandOp.TLBI_NH_VA) - va0).isEqualTo(8);
        long asid0 = rig.executed(CommandOp.TLBI_NH_ASID);
        d.unmap(IOVA + 8 * 4096, 8 * 4096);
        assertThat(rig.executed(CommandOp.TLBI_NH_ASID) - asid0).as("8 pages again: still per page").isZero();

        d.map(IOVA, pa, 64 << 10, Prot.READ | Prot.WRITE);
        for (long off = 0; off < 64 << 10; off += 4096) {
            assertThat(rig.translate(SID, IOVA + off, 0).isOk()).isTrue();
        }
        d.unmap(IOVA, 64 << 10); // 16 pages: beyond the threshold
        assertThat(rig.executed(CommandOp.TLBI_NH_ASID) - asid0).isEqualTo(1);
        assertThat(rig.translate(SID, IOVA + 0x3000, 0).code()).isEqualTo(EventType.F_TRANSLATION);
    }

    @Test
    void aStage2DomainUsesAVmidAndTlbiS2Ipa() throws Exception {
        DriverRig rig = DriverRig.started();
        SmmuV3Domains smmu = new SmmuV3Domains(rig.driver, "smmu0", TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD);
        IommuDomain d = domain(rig, Arm64Lpae.stage2(12, 40, 48), FlushPolicy.STRICT);
        smmu.attachStream(d, SmmuV3Domains.Stage.S2, SID);
        assertThat(smmu.contextId(d)).as("the first VMID").isEqualTo(1);
        long pa = buffer(rig, 2 << 20);
        d.map(0x20_0000L, pa, 2 << 20, Prot.READ | Prot.WRITE);
        assertThat(rig.translate(SID, 0x20_0000L + 0x1_2345, Access.WRITE).physicalAddress()).isEqualTo(pa + 0x1_2345);

        long s2 = rig.executed(CommandOp.TLBI_S2_IPA);
        d.unmap(0x20_0000L, 2 << 20);
        assertThat(rig.executed(CommandOp.TLBI_S2_IPA) - s2).isEqualTo(1);
        assertThat(rig.translate(SID, 0x20_0000L, 0).code()).isEqualTo(EventType.F_TRANSLATION);
    }

    @Test
    void twoStreamsShareADomainAndTheLastDetachEndsTheContext() throws Exception {
        DriverRig rig = DriverRig.started();
        SmmuV3Domains smmu = new SmmuV3Domains(rig.driver, "smmu0", TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD);
        IommuDomain d = domain(rig, Arm64Lpae.stage1(12, 48, 48), FlushPolicy.LAZY);
        smmu.attachStream(d, SmmuV3Domains.Stage.S1, SID);
        smmu.attachStream(d, SmmuV3Domains.Stage.S1, SID + 1);
        long pa = buffer(rig, 4096);
        d.mapSg(IOVA, List.of(new SgEntry(pa, 0, 4096)), Prot.READ);
        assertThat(rig.translate(SID, IOVA, 0).physicalAddress()).isEqualTo(pa);
        assertThat(rig.translate(SID + 1, IOVA, 0).physicalAddress()).isEqualTo(pa);

        smmu.detachStream(SID);
        assertThat(rig.translate(SID, IOVA, 0).outcome()).as("an aborting STE").isNotEqualTo(Translation.Outcome.OK);
        assertThat(d.isAttached(smmu)).isTrue();
        smmu.detachStream(SID + 1);
        assertThat(d.isAttached(smmu)).isFalse();
        assertThat(smmu.contextId(d)).isEqualTo(-1);

        IommuDomain e = domain(rig, Arm64Lpae.stage1(12, 48, 48), FlushPolicy.STRICT);
        smmu.attachStream(e, SmmuV3Domains.Stage.S1, SID);
        assertThat(smmu.contextId(e)).as("ASID 1 was freed and is reused").isEqualTo(1);
        assertThat(rig.alloc.allocatedPages("smmu-cd")).as("one CD table left").isEqualTo(1);
    }

    @Test
    void incompatibleDomainsAreRefusedWithTheReason() throws Exception {
        DriverRig rig = DriverRig.started(SmmuV3Config.builder().stage2(false).vmid16(false).granule16k(false)
                .oasBits(40).build(), SmmuV3DriverOptions.defaults());
        SmmuV3Domains smmu = new SmmuV3Domains(rig.driver, "smmu0", TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD);
        assertThatThrownBy(() -> smmu.attachStream(domain(rig, Arm64Lpae.stage2(12, 40, 40), FlushPolicy.STRICT),
                SmmuV3Domains.Stage.S2, SID)).hasMessageContaining("does not implement stage 2");
        assertThatThrownBy(() -> smmu.attachStream(domain(rig, Arm64Lpae.stage1(14, 47, 40), FlushPolicy.STRICT),
                SmmuV3Domains.Stage.S1, SID)).hasMessageContaining("16 KB granule");
        assertThatThrownBy(() -> smmu.attachStream(domain(rig, Arm64Lpae.stage1(12, 48, 48), FlushPolicy.STRICT),
                SmmuV3Domains.Stage.S1, SID)).hasMessageContaining("OAS is 40");
        assertThatThrownBy(() -> smmu.attachStream(domain(rig, Arm64Lpae.stage1(12, 48, 40), FlushPolicy.STRICT),
                SmmuV3Domains.Stage.S2, SID)).hasMessageContaining("not one for stage 2");
    }

    @Test
    void strictMapAndUnmapThroughTheDriverAndDeviceAllocateNothing() throws Exception {
        QuietSmmu q = QuietSmmu.create();
        assertThat(q.driver().features().msiPolling()).as("CMD_SYNC completed by an MSI into RAM").isTrue();
        IommuDomain d = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 48), q.ram(), q.alloc()).name("dom")
                .flushPolicy(FlushPolicy.STRICT).build();
        q.smmu().attachStream(d, SmmuV3Domains.Stage.S1, SID);
        long pa = q.alloc().allocBytes(64 << 10, "dma");
        Translation t = new Translation();
        long bytes = QuietSmmu.leastAllocated(1_000, () -> {
            d.map(IOVA, pa, 64 << 10, Prot.READ | Prot.WRITE); // 16 pages
            q.device().translate(SID, -1, IOVA + 0x2000, 0, t);
            d.unmap(IOVA, 64 << 10); // one range TLBI and a CMD_SYNC completed by MSI
        });
        assertThat(t.isOk()).isTrue();
        assertThat(bytes).as("bytes allocated by 1000 map + translate + strict unmap rounds (least of 3 windows)").isZero();
    }

    @Test
    void eventsReachTheFaultHandlerOfTheStreamsDomain() throws Exception {
        DriverRig rig = DriverRig.started();
        SmmuV3Domains smmu = new SmmuV3Domains(rig.driver, "smmu0", TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD);
        IommuDomain handled = domain(rig, Arm64Lpae.stage1(12, 48, 48), FlushPolicy.STRICT);
        IommuDomain silent = domain(rig, Arm64Lpae.stage1(12, 48, 48), FlushPolicy.STRICT);
        smmu.attachStream(handled, SmmuV3Domains.Stage.S1, SID);
        smmu.attachStream(silent, SmmuV3Domains.Stage.S1, SID + 1);
        List<String> faults = new java.util.ArrayList<>();
        smmu.setFaultHandler(handled, (dom, sid, e) -> faults.add(dom.name() + "/" + sid + "/" + e.type() + "/"
                + Long.toHexString(e.inputAddr())));

        assertThat(rig.translate(SID, IOVA + 0x40, Access.WRITE).code()).isEqualTo(EventType.F_TRANSLATION);
        assertThat(rig.translate(SID + 1, IOVA, 0).code()).isEqualTo(EventType.F_TRANSLATION);
        rig.driver.drainEvents();

        assertThat(faults).containsExactly("dom/" + SID + "/" + EventType.F_TRANSLATION + "/"
                + Long.toHexString(IOVA + 0x40));
        assertThat(smmu.unhandledEvents()).as("the other domain has no handler").isEqualTo(1);
        smmu.setFaultHandler(handled, null);
        rig.translate(SID, IOVA, 0);
        rig.driver.drainEvents();
        assertThat(faults).hasSize(1);
    }
}
