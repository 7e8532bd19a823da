package org.iommuemu.core.driver.vtd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.iommuemu.core.vtd.VtdRegs.*;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.core.pgtable.fmt.X86Pt;
import org.iommuemu.core.vtd.FaultReason;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdTables;
import org.junit.jupiter.api.Test;

class VtdDomainsTest {
    private static final long K4 = 1L << 12;
    private static final int RW = Prot.READ | Prot.WRITE;
    private static final int RID = 0x0108; // 01:01.0
    private static final long PA = FakeVtd.RAM_BASE + (32L << 20);

    private final FakeVtd hw = new FakeVtd();
    private VtdDriver driver;
    private VtdDomains domains;

    private void start(VtdDriverOptions options) {
        driver = VtdDriver.probe(hw, options);
        driver.init();
        domains = new VtdDomains(driver, "dmar0");
        hw.executed.clear();
    }

    private IommuDomain domain(PtFormat fmt, String name) throws IommuApiException {
        return IommuDomain.builder(fmt, hw.ram, hw.alloc).name(name).build();
    }

    private static int g(FakeVtd.Desc d) {
        return (int) Bits.extract(d.qw0(), InvDesc.G, 2);
    }

    private static int did(FakeVtd.Desc d) {
        return (int) Bits.extract(d.qw0(), InvDesc.DID, 16);
    }

    private long contextEntry(int rid) {
        long root = driver.layout().rootTable();
        boolean scalable = driver.scalableMode();
        int devfn = rid & 0xFF;
        long re = hw.r64(root + 16L * (rid >>> 8) + (scalable && devfn >= 128 ? 8 : 0));
        assertThat(Bits.bit(re, 0)).as("root entry present").isTrue();
        return (re & VtdTables.PTR_MASK) + (long) (scalable ? devfn & 0x7F : devfn)
                * (scalable ? VtdTables.SM_CONTEXT_ENTRY_SIZE : VtdTables.CONTEXT_ENTRY_SIZE);
    }

    private long pasidEntry(int rid, int pasid) {
        long dir = hw.r64(contextEntry(rid)) & VtdTables.PTR_MASK;
        long pde = hw.r64(dir + 8L * (pasid >>> 6));
        assertThat(Bits.bit(pde, 0)).as("PASID directory entry present").isTrue();
        return (pde & VtdTables.PTR_MASK) + 64L * (pasid & 63);
    }

    @Test
    void legacyAttachWritesTheContextEntry() throws Exception {
        start(VtdDriverOptions.defaults().withScalableMode(false));
        IommuDomain d = domain(VtdSs.levels(4), "ss");
        domains.attachDevice(d, RID);
        long ce = contextEntry(RID);
        long qw0 = hw.r64(ce);
        long qw1 = hw.r64(ce + 8);
        assertThat(Bits.bit(qw0, VtdTables.CTX_P)).isTrue();
        assertThat(Bits.extract(qw0, VtdTables.CTX_TT, 2)).isEqualTo(VtdTables.TT_MULTI_LEVEL);
        assertThat(qw0 & VtdTables.PTR_MASK).isEqualTo(d.pageTable().root());
        assertThat(Bits.extract(qw1, VtdTables.CTX_AW, 3)).isEqualTo(2);
        assertThat(Bits.extract(qw1, VtdTables.CTX_DID, 16)).isEqualTo(1);
        assertThat(domains.domainId(d)).isEqualTo(1);
        assertThat(d.isAttached(domains)).isTrue();
        assertThat(hw.invalidations()).isEmpty(); // CM=0: nothing cached for a not-present entry
        assertThat(domains.needsMapSync()).isFalse();
        assertThat(domains.pageSizes()).isEqualTo(1L << 12 | 1L << 21 | 1L << 30);
    }

    @Test
    void cachingModeInvalidatesNewEntriesAndMappings() throws Exception {
        hw.cm(true);
        start(VtdDriverOptions.defaults().withScalableMode(false));
        IommuDomain d = domain(VtdSs.levels(4), "ss");
        domains.attachDevice(d, RID);
        // context_present_cache_flush: CC device-selective with DID 0, IOTLB domain-selective
        assertThat(hw.invalidations()).hasSize(2);
        FakeVtd.Desc cc = hw.invalidations().get(0);
        assertThat(cc.type()).isEqualTo(InvDesc.TYPE_CONTEXT_CACHE);
        assertThat(g(cc)).isEqualTo(CC_DEVICE);
        assertThat(did(cc)).isZero();
        assertThat(Bits.extract(cc.qw0(), InvDesc.CC_SID, 16)).isEqualTo(RID);
        assertThat(g(hw.invalidations().get(1))).isEqualTo(IOTLB_DOMAIN);
        assertThat(did(hw.invalidations().get(1))).isEqualTo(1);
        assertThat(hw.waits()).isEqualTo(1);
        hw.executed.clear();
        assertThat(domains.needsMapSync()).isTrue();
        d.map(0x10000, PA, 4 * K4, RW);
        FakeVtd.Desc psi = hw.invalidations().get(0);
        assertThat(g(psi)).isEqualTo(IOTLB_PAGE);
        assertThat(psi.qw1() & VtdTables.PTR_MASK).isEqualTo(0x10000);
        assertThat(psi.qw1() & 0x3F).isEqualTo(2);
        assertThat(Bits.bit(psi.qw1(), InvDesc.ADDR_IH)).isFalse();
    }

    @Test
    void unmapIsOnePageSelectiveInvalidationWithOneWait() throws Exception {
        start(VtdDriverOptions.defaults().withScalableMode(false));
        IommuDomain d = domain(VtdSs.levels(4), "ss");
        domains.attachDevice(d, RID);
        d.map(0x10000, PA, 16 * K4, RW);
        hw.executed.clear();
        d.unmap(0x11000, 2 * K4); // pages 0x11..0x12 straddle a 2-page boundary: AM 2 from 0x10000
        assertThat(hw.invalidations()).hasSize(1);
        FakeVtd.Desc psi = hw.invalidations().get(0);
        assertThat(psi.type()).isEqualTo(InvDesc.TYPE_IOTLB);
        assertThat(g(psi)).isEqualTo(IOTLB_PAGE);
        assertThat(did(psi)).isEqualTo(1);
        assertThat(psi.qw1() & VtdTables.PTR_MASK).isEqualTo(0x10000);
        assertThat(psi.qw1() & 0x3F).isEqualTo(2);
        assertThat(Bits.bit(psi.qw1(), InvDesc.ADDR_IH)).isTrue();
        assertThat(hw.waits()).isEqualTo(1);
        hw.executed.clear();
        d.flushAll();
        assertThat(g(hw.invalidations().get(0))).isEqualTo(IOTLB_DOMAIN);
    }

    @Test
    void detachClearsTheContextEntryThenInvalidates() throws Exception {
        start(VtdDriverOptions.defaults().withScalableMode(false));
        IommuDomain d = domain(VtdSs.levels(4), "ss");
        domains.attachDevice(d, RID);
        hw.executed.clear();
        domains.detachDevice(RID);
        long ce = contextEntry(RID);
        assertThat(hw.r64(ce)).isZero();
        assertThat(hw.r64(ce + 8)).isZero();
        assertThat(hw.invalidations()).extracting(FakeVtd.Desc::type).containsExactly(InvDesc.TYPE_CONTEXT_CACHE,
                InvDesc.TYPE_IOTLB);
        assertThat(g(hw.invalidations().get(0))).isEqualTo(CC_DEVICE);
        assertThat(did(hw.invalidations().get(0))).isEqualTo(1);
        assertThat(g(hw.invalidations().get(1))).isEqualTo(IOTLB_DOMAIN);
        assertThat(hw.waits()).isEqualTo(1);
        assertThat(domains.domainId(d)).isEqualTo(-1);
        assertThat(d.isAttached(domains)).isFalse();
        assertThat(domains.domainOf(RID)).isNull();
        d.destroy();
    }

    @Test
    void movingADeviceDetachesItFirstAndDomainIdsAreReused() throws Exception {
        start(VtdDriverOptions.defaults().withScalableMode(false));
        IommuDomain a = domain(VtdSs.levels(4), "a");
        IommuDomain b = domain(VtdSs.levels(3), "b");
        domains.attachDevice(a, RID);
        domains.attachDevice(b, RID);
        assertThat(domains.domainOf(RID)).isSameAs(b);
        assertThat(domains.domainId(a)).isEqualTo(-1);
        assertThat(domains.domainId(b)).isEqualTo(1); // a's DID was freed by the move
        assertThat(Bits.extract(hw.r64(contextEntry(RID) + 8), VtdTables.CTX_AW, 3)).isEqualTo(1);
        domains.attachDevice(a, 0x0109);
        assertThat(domains.domainId(a)).isEqualTo(2);
    }

    @Test
    void scalableSecondStageUsesRidPasidAndTheContextPointsAtThePasidDirectory() throws Exception {
        start(VtdDriverOptions.defaults().withMaxPasidBits(13));
        IommuDomain d = domain(VtdSs.levels(4), "ss");
        domains.attachDevice(d, RID);
        long ce = contextEntry(RID);
        long cqw0 = hw.r64(ce);
        assertThat(Bits.bit(cqw0, VtdTables.SMCTX_P)).isTrue();
        assertThat(Bits.bit(cqw0, VtdTables.SMCTX_PASIDE)).isTrue();
        assertThat(Bits.extract(cqw0, VtdTables.SMCTX_PDTS, 3)).isZero(); // 128 directory entries: 2^13 PASIDs
        assertThat(Bits.extract(hw.r64(ce + 8), 0, 20)).isEqualTo(VtdDomains.RID_PASID);
        long pe = pasidEntry(RID, 0);
        long qw0 = hw.r64(pe);
        assertThat(Bits.bit(qw0, VtdTables.PE_P)).isTrue();
        assertThat(Bits.extract(qw0, VtdTables.PE_PGTT, 3)).isEqualTo(VtdTables.PGTT_SECOND_STAGE);
        assertThat(Bits.extract(qw0, VtdTables.PE_AW, 3)).isEqualTo(2);
        assertThat(qw0 & VtdTables.PTR_MASK).isEqualTo(d.pageTable().root());
        assertThat(hw.r64(pe + 8) & 0xFFFF).isEqualTo(1);
        // second-stage domains are invalidated with IOTLB descriptors, also in scalable mode
        d.map(0, PA, K4, RW);
        hw.executed.clear();
        d.unmap(0, K4);
        assertThat(hw.invalidations()).extracting(FakeVtd.Desc::type).containsExactly(InvDesc.TYPE_IOTLB);
        // device detach: PASID entry torn down, then the context entry, the PASID table freed
        hw.executed.clear();
        domains.detachDevice(RID);
        assertThat(hw.r64(ce)).isZero();
        assertThat(hw.invalidations()).extracting(FakeVtd.Desc::type).containsExactly(InvDesc.TYPE_PASID_CACHE,
                InvDesc.TYPE_IOTLB, InvDesc.TYPE_CONTEXT_CACHE, InvDesc.TYPE_PASID_CACHE, InvDesc.TYPE_IOTLB);
        assertThat(g(hw.invalidations().get(0))).isEqualTo(InvDesc.PC_PASID);
        assertThat(hw.alloc.allocatedPages(PasidTable.TAG)).isZero();
    }

    @Test
    void firstStageDomainsOnPasidsUsePasidBasedInvalidation() throws Exception {
        start(VtdDriverOptions.defaults());
        IommuDomain ss = domain(VtdSs.levels(4), "ss");
        IommuDomain fs = domain(X86Pt.levels(4), "fs");
        domains.attachDevice(ss, RID);
        domains.attachPasid(fs, RID, 0x45);
        long pe = pasidEntry(RID, 0x45);
        long qw0 = hw.r64(pe);
        assertThat(Bits.extract(qw0, VtdTables.PE_PGTT, 3)).isEqualTo(VtdTables.PGTT_FIRST_STAGE);
        long qw2 = hw.r64(pe + 16);
        assertThat(qw2 & VtdTables.PTR_MASK).isEqualTo(fs.pageTable().root());
        assertThat(Bits.extract(qw2, VtdTables.PE_FSPM, 2)).isZero(); // 4-level
        assertThat(hw.r64(pe + 8) & 0xFFFF).isEqualTo(2);
        assertThat(domains.domainOf(RID, 0x45)).isSameAs(fs);
        assertThat(domains.pasidsOf(RID)).containsExactly(0x45);
        fs.map(0x20000, PA, 2 * K4, RW);
        hw.executed.clear();
        fs.unmap(0x20000, 2 * K4);
        FakeVtd.Desc p = hw.invalidations().get(0);
        assertThat(p.type()).isEqualTo(InvDesc.TYPE_PASID_IOTLB);
        assertThat(g(p)).isEqualTo(InvDesc.PIOTLB_PAGE);
        assertThat(Bits.extract(p.qw0(), InvDesc.PASID, 20)).isEqualTo(0x45);
        assertThat(p.qw1() & 0x3F).isEqualTo(1);
        // the same domain on a second device's RID_PASID: one PASID-IOTLB per distinct PASID
        domains.attachDevice(fs, 0x0200);
        fs.map(0x20000, PA, K4, RW);
        hw.executed.clear();
        fs.unmap(0x20000, K4);
        assertThat(hw.invalidations()).extracting(d -> Bits.extract(d.qw0(), InvDesc.PASID, 20))
                .containsExactly(0L, 0x45L);
        hw.executed.clear();
        domains.detachPasid(RID, 0x45);
        assertThat(hw.r64(pe)).isZero();
        assertThat(hw.invalidations()).extracting(FakeVtd.Desc::type).containsExactly(InvDesc.TYPE_PASID_CACHE,
                InvDesc.TYPE_PASID_IOTLB);
        assertThat(g(hw.invalidations().get(1))).isEqualTo(InvDesc.PIOTLB_PASID);
        assertThat(domains.domainOf(RID)).isSameAs(ss); // the device keeps its context entry
        assertThat(Bits.bit(hw.r64(contextEntry(RID)), 0)).isTrue();
    }

    @Test
    void incompatibleDomainsAreRefusedClearly() throws Exception {
        start(VtdDriverOptions.defaults().withScalableMode(false));
        IommuDomain fs = domain(X86Pt.levels(4), "fs");
        assertThatThrownBy(() -> domains.attachDevice(fs, RID)).isInstanceOf(IommuApiException.class)
                .hasMessageContaining("first-stage (x86-64) tables need scalable mode");
        IommuDomain five = domain(VtdSs.levels(5), "five");
        assertThatThrownBy(() -> domains.attachDevice(five, RID)).hasMessageContaining("SAGAW");
        IommuDomain arm = domain(Arm64Lpae.stage1(12, 48, 48), "arm");
        assertThatThrownBy(() -> domains.attachDevice(arm, RID)).hasMessageContaining("not a VT-d");
        IommuDomain ss = domain(VtdSs.levels(4), "ss");
        assertThatThrownBy(() -> domains.attachPasid(ss, RID, 1)).hasMessageContaining("legacy mode");
        assertThatThrownBy(() -> domains.attachDevice(ss, 0x10000)).hasMessageContaining("16-bit");
        assertThat(domains.domainId(ss)).isEqualTo(-1);
    }

    @Test
    void faultsReachTheOwningDomainsHandler() throws Exception {
        start(VtdDriverOptions.defaults());
        IommuDomain ss = domain(VtdSs.levels(4), "ss");
        IommuDomain fs = domain(X86Pt.levels(4), "fs");
        domains.attachDevice(ss, RID);
        domains.attachPasid(fs, RID, 7);
        List<String> got = new ArrayList<>();
        domains.setFaultHandler(ss, (dom, rid, f) -> got.add(dom.name() + " " + Integer.toHexString(f.reason())));
        domains.setFaultHandler(fs, (dom, rid, f) -> got.add(dom.name() + " pasid " + f.pasid()));
        hw.recordFault(0, 0x5000, RID | (long) FaultReason.SM_SS_PERMISSION << FRCD_HI_FR);
        hw.recordFault(1, 0x6000, RID | (long) FaultReason.SM_FS_NOT_PRESENT << FRCD_HI_FR | 1L << FRCD_HI_PP
                | 7L << FRCD_HI_PV);
        hw.recordFault(2, 0x6000, 0x0300 | (long) FaultReason.SM_CONTEXT_NOT_PRESENT << FRCD_HI_FR);
        assertThat(got).containsExactly("ss 79", "fs pasid 7");
        domains.setFaultHandler(ss, null);
        hw.recordFault(3, 0x5000, RID | (long) FaultReason.SM_SS_PERMISSION << FRCD_HI_FR);
        assertThat(domains.unhandledFaults()).isEqualTo(1);
    }

    @Test
    void mapUnmapAndSyncAllocateNothing() throws Exception {
        start(VtdDriverOptions.defaults());
        IommuDomain ss = domain(VtdSs.levels(4), "ss");
        IommuDomain fs = domain(X86Pt.levels(4), "fs");
        domains.attachDevice(ss, RID);
        domains.attachPasid(fs, RID, 3);
        ss.map(0x100000, PA, K4, RW); // tables exist from here on
        fs.map(0x100000, PA, K4, RW);
        hw.recording = false;
        long bytes = AllocationProbe.bytes(() -> {
            try {
                ss.map(0x200000, PA, K4, RW);
                ss.unmap(0x200000, K4);
                fs.map(0x200000, PA, K4, RW);
                fs.unmap(0x200000, K4);
            } catch (IommuApiException e) {
                throw new AssertionError(e);
            }
        });
        assertThat(bytes).isZero();
    }
}
