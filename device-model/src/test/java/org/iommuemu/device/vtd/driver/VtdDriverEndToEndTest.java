package org.iommuemu.device.vtd.driver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.driver.vtd.VtdDriver;
import org.iommuemu.core.driver.vtd.VtdDriverOptions;
import org.iommuemu.core.driver.vtd.VtdFault;
import org.iommuemu.core.driver.vtd.VtdListener;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.core.pgtable.fmt.X86Pt;
import org.iommuemu.core.vtd.FaultReason;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.machine.DeviceStats;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.InterruptRecord;
import org.iommuemu.device.vtd.VtdConfig;
import org.iommuemu.device.vtd.VtdDevice;
import org.iommuemu.device.vtd.VtdFaultInjection;
import org.junit.jupiter.api.Test;

/**
 * The VT-d driver against the VT-d device model through an {@link org.iommuemu.device.machine.InProcessVtdHost}:
 * bring-up, the invalidation queue and its error recovery, fault events reaching domain handlers, and (once the
 * device translates) DMA through attached domains with strict unmap invalidation.
 */
class VtdDriverEndToEndTest {
    private static final int RID = 0x0310; // 03:02.0
    private static final int RW = Prot.READ | Prot.WRITE;
    private static final long K4 = 1L << 12;

    private static long executed(VtdDevice vtd, int type) {
        for (DeviceStats.CodeCount c : vtd.stats().commands()) {
            if (c.code() == type) {
                return c.count();
            }
        }
        return 0;
    }

    @Test
    void bringsTheUnitUpInScalableMode() {
        VtdDriverRig rig = VtdDriverRig.started(VtdConfig.defaults(), VtdDriverOptions.defaults());
        VtdDriver.Layout layout = rig.driver.layout();
        long gsts = rig.read32(VtdRegs.GSTS);
        assertThat(Bits.bit(gsts, VtdRegs.GCMD_TE)).isTrue();
        assertThat(Bits.bit(gsts, VtdRegs.GCMD_QIE)).isTrue();
        assertThat(Bits.bit(gsts, VtdRegs.GCMD_SRTP)).isTrue(); // RTPS
        assertThat(rig.vtd.rootTableAddress()).isEqualTo(layout.rootTable());
        assertThat(rig.vtd.translationTableMode()).isEqualTo(VtdRegs.TTM_SCALABLE);
        assertThat(layout.wideDescriptors()).isTrue();
        assertThat(executed(rig.vtd, InvDesc.TYPE_CONTEXT_CACHE)).isEqualTo(1);
        assertThat(executed(rig.vtd, InvDesc.TYPE_PASID_CACHE)).isEqualTo(1);
        assertThat(executed(rig.vtd, InvDesc.TYPE_IOTLB)).isEqualTo(1);
        assertThat(executed(rig.vtd, InvDesc.TYPE_WAIT)).isEqualTo(1);
        assertThat(rig.read32(VtdRegs.FECTL) & 1L << VtdRegs.ECTL_IM).isZero();
        assertThat(rig.queueErrors).isEmpty();
    }

    @Test
    void bringsTheUnitUpInLegacyMode() {
        VtdDriverRig rig = VtdDriverRig.started(VtdConfig.defaults(),
                VtdDriverOptions.defaults().withScalableMode(false));
        assertThat(rig.vtd.translationTableMode()).isEqualTo(VtdRegs.TTM_LEGACY);
        assertThat(executed(rig.vtd, InvDesc.TYPE_PASID_CACHE)).isZero();
        assertThat(Bits.bit(rig.read32(VtdRegs.GSTS), VtdRegs.GCMD_TE)).isTrue();
    }

    @Test
    void aSecondDriverTakesOverAUnitLeftEnabled() {
        VtdDriverRig rig = VtdDriverRig.started(VtdConfig.defaults(), VtdDriverOptions.defaults());
        long firstRoot = rig.driver.layout().rootTable();
        VtdDriver again = VtdDriver.probe(rig.host, VtdDriverOptions.defaults());
        again.init(); // TE and QIE found on: both turned off, then the unit is brought up afresh
        assertThat(rig.vtd.rootTableAddress()).isEqualTo(again.layout().rootTable()).isNotEqualTo(firstRoot);
        again.sync();
        assertThat(Bits.bit(rig.read32(VtdRegs.GSTS), VtdRegs.GCMD_TE)).isTrue();
    }

    @Test
    void aDescriptorTheUnitRejectsIsReportedAndSkipped() {
        VtdDriverRig rig = VtdDriverRig.started(VtdConfig.defaults(), VtdDriverOptions.defaults());
        long bad = InvDesc.iotlb(VtdRegs.IOTLB_DOMAIN, 1, false, false) | 1L << 8; // reserved bit
        rig.driver.submit(InvDesc.contextCache(VtdRegs.CC_GLOBAL, 0, 0, 0), 0, bad, 0,
                InvDesc.iotlb(VtdRegs.IOTLB_GLOBAL, 0, false, false), 0);
        assertThat(rig.queueErrors).hasSize(1);
        Object[] e = rig.queueErrors.get(0);
        assertThat(e[0]).isEqualTo(VtdListener.QueueError.IQE);
        assertThat((long) e[2]).isEqualTo(bad);
        assertThat(Bits.extract((long) e[4], VtdRegs.IQERCD_IQEI, 4)).isEqualTo(VtdRegs.IQEI_RESERVED);
        assertThat(rig.read32(VtdRegs.FSTS) & 1L << VtdRegs.FSTS_IQE).isZero();
        assertThat(executed(rig.vtd, InvDesc.TYPE_CONTEXT_CACHE)).isEqualTo(2);
        assertThat(executed(rig.vtd, InvDesc.TYPE_IOTLB)).isEqualTo(2); // init's and the one after the bad one
        rig.driver.sync(); // the queue goes on
        assertThat(rig.driver.stats().queueErrors()).isEqualTo(1);
    }

    @Test
    void attachWritesTheTablesTheUnitWillWalk() throws Exception {
        VtdDriverRig rig = VtdDriverRig.started(VtdConfig.defaults(), VtdDriverOptions.defaults());
        IommuDomain d = rig.domain(VtdSs.levels(4), "ss");
        rig.domains.attachDevice(d, RID);
        long root = rig.vtd.rootTableAddress();
        long re = rig.ram.read64(root + 16L * 3);
        assertThat(Bits.bit(re, 0)).isTrue();
        long ce = (re & VtdTables.PTR_MASK) + 32L * 0x10;
        long cqw0 = rig.ram.read64(ce);
        assertThat(Bits.bit(cqw0, VtdTables.SMCTX_P)).isTrue();
        long dir = cqw0 & VtdTables.PTR_MASK;
        long pte = (rig.ram.read64(dir) & VtdTables.PTR_MASK);
        assertThat(rig.ram.read64(pte) & VtdTables.PTR_MASK).isEqualTo(d.pageTable().root());
        d.map(0x40000, rig.allocDma("buf"), K4, RW);
        long before = executed(rig.vtd, InvDesc.TYPE_IOTLB);
        d.unmap(0x40000, K4);
        assertThat(executed(rig.vtd, InvDesc.TYPE_IOTLB)).isEqualTo(before + 1);
    }

    @Test
    void faultEventsReachTheDomainsHandler() throws Exception {
        VtdDriverRig rig = VtdDriverRig.started(VtdConfig.defaults(), VtdDriverOptions.defaults());
        IommuDomain d = rig.domain(VtdSs.levels(4), "ss");
        IommuDomain fs = rig.domain(X86Pt.levels(4), "fs");
        rig.domains.attachDevice(d, RID);
        rig.domains.attachPasid(fs, RID, 9);
        List<VtdFault> handled = new ArrayList<>();
        List<VtdFault> pasidFaults = new ArrayList<>();
        rig.domains.setFaultHandler(d, (dom, rid, f) -> handled.add(f));
        rig.domains.setFaultHandler(fs, (dom, rid, f) -> pasidFaults.add(f));
        VtdFaultInjection.report(rig.vtd, RID, -1, 0x7000_1234L, FaultReason.SM_SS_PERMISSION, true);
        rig.host.deliverPendingInterrupts(); // raised off the MMIO path: delivered at the next access or here
        assertThat(handled).hasSize(1);
        VtdFault f = handled.get(0);
        assertThat(f.sourceId()).isEqualTo(RID);
        assertThat(f.address()).isEqualTo(0x7000_1000L);
        assertThat(f.reason()).isEqualTo(FaultReason.SM_SS_PERMISSION);
        assertThat(f.read()).isFalse();
        // (reported while the first was pending, the device would fold it into that record: same source id)
        VtdFaultInjection.report(rig.vtd, RID, 9, 0x8000L, FaultReason.SM_FS_NOT_PRESENT, false);
        rig.host.deliverPendingInterrupts();
        assertThat(pasidFaults).singleElement().satisfies(p -> {
            assertThat(p.pasidPresent()).isTrue();
            assertThat(p.pasid()).isEqualTo(9);
            assertThat(p.read()).isTrue();
        });
        assertThat(rig.faults).hasSize(2);
        InterruptRecord msi = rig.interrupts.stream().filter(r -> r.source().equals("fault-event")).findFirst()
                .orElseThrow();
        assertThat(msi.msiAddress()).isEqualTo(VtdDriverOptions.DEFAULT_FAULT_MSI_ADDRESS);
        assertThat(msi.msiData()).isEqualTo(0x40);
        assertThat(rig.read32(VtdRegs.FSTS) & (1L << VtdRegs.FSTS_PPF | 1L << VtdRegs.FSTS_PFO)).isZero();
        // the next fault raises the event again (nothing was left pending)
        VtdFaultInjection.report(rig.vtd, RID, -1, 0x9000L, FaultReason.SM_SS_PERMISSION, false);
        rig.host.deliverPendingInterrupts();
        assertThat(handled).hasSize(2);
        assertThat(rig.domains.unhandledFaults()).isZero();
    }

    @Test
    void overflowingTheFaultRecordsIsCountedAndCleared() {
        VtdDriverRig rig = VtdDriverRig.started(VtdConfig.defaults(), VtdDriverOptions.defaults());
        int records = rig.driver.features().faultRecords();
        for (int i = 0; i <= records; i++) { // one more than there are records, each from another source
            VtdFaultInjection.report(rig.vtd, 0x100 + i, -1, 0x1000L * i, FaultReason.SM_CONTEXT_NOT_PRESENT, false);
        }
        assertThat(rig.driver.drainFaults()).isEqualTo(records);
        assertThat(rig.driver.stats().faultOverflows()).isEqualTo(1);
        assertThat(rig.read32(VtdRegs.FSTS) & (1L << VtdRegs.FSTS_PPF | 1L << VtdRegs.FSTS_PFO)).isZero();
        VtdFaultInjection.report(rig.vtd, 0x222, -1, 0x5000L, FaultReason.SM_CONTEXT_NOT_PRESENT, false);
        assertThat(rig.driver.drainFaults()).isEqualTo(1); // recording works again
    }

    // ------------------------------------------------------------------ DMA (needs the device's translation path)

    private static void assumeTranslation(VtdDriverRig rig) {
        assumeTrue(rig.vtd.translationModelled(), "VtdDevice does not translate yet (TE=1 is UNIMPLEMENTED)");
    }

    @Test
    void dmaThroughASecondStageDomainAndStrictUnmapFaults() throws Exception {
        for (boolean scalable : new boolean[] {false, true}) {
            VtdDriverRig rig = VtdDriverRig.started(VtdConfig.defaults(),
                    VtdDriverOptions.defaults().withScalableMode(scalable));
            assumeTranslation(rig);
            IommuDomain d = rig.domain(VtdSs.levels(4), "ss");
            List<VtdFault> handled = new ArrayList<>();
            rig.domains.setFaultHandler(d, (dom, rid, f) -> handled.add(f));
            rig.domains.attachDevice(d, RID);
            long buf = rig.allocDma("buf");
            rig.ram.write64(buf + 8, 0x1122_3344_5566_7788L);
            d.map(0x10_0000, buf, K4, RW);
            byte[] got = new byte[8];
            DmaOutcome ok = rig.read(RID, -1, 0x10_0008, got);
            assertThat(ok.isOk()).as("scalable=%s: %s", scalable, ok.description()).isTrue();
            assertThat(got[0]).isEqualTo((byte) 0x88);
            d.unmap(0x10_0000, K4); // strict: invalidated before it returns
            DmaOutcome gone = rig.read(RID, -1, 0x10_0008, got);
            assertThat(gone.status()).isEqualTo(DmaOutcome.Status.FAULT);
            rig.host.deliverPendingInterrupts();
            assertThat(handled).as("scalable=%s", scalable).isNotEmpty();
            assertThat(handled.get(0).address()).isEqualTo(0x10_0000);
        }
    }

    @Test
    void dmaThroughAFirstStageDomainOnAPasid() throws Exception {
        VtdDriverRig rig = VtdDriverRig.started(VtdConfig.defaults(), VtdDriverOptions.defaults());
        assumeTranslation(rig);
        IommuDomain fs = rig.domain(X86Pt.levels(4), "fs");
        rig.domains.attachPasid(fs, RID, 5);
        long buf = rig.allocDma("buf");
        fs.map(0x20_0000, buf, K4, RW);
        DmaOutcome w = rig.write(RID, 5, 0x20_0010, new byte[] {1, 2, 3, 4});
        assertThat(w.isOk()).as(w.description()).isTrue();
        assertThat(rig.ram.read32(buf + 0x10)).isEqualTo(0x0403_0201);
        fs.unmap(0x20_0000, K4);
        assertThat(rig.write(RID, 5, 0x20_0010, new byte[4]).status()).isEqualTo(DmaOutcome.Status.FAULT);
    }

    @Test
    void cachingModeMapsAreVisibleToDma() throws Exception {
        VtdDriverRig rig = VtdDriverRig.started(VtdConfig.builder().cm(true).build(), VtdDriverOptions.defaults());
        assumeTranslation(rig);
        IommuDomain d = rig.domain(VtdSs.levels(4), "ss");
        rig.domains.attachDevice(d, RID);
        byte[] got = new byte[4];
        assertThat(rig.read(RID, -1, 0x30_0000, got).status()).isEqualTo(DmaOutcome.Status.FAULT); // cached absent
        d.map(0x30_0000, rig.allocDma("buf"), K4, RW);
        assertThat(rig.read(RID, -1, 0x30_0000, got).isOk()).isTrue();
    }
}
