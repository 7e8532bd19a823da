package org.iommuemu.core.driver.vtd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.iommuemu.core.vtd.VtdRegs.CC_DEVICE;
import static org.iommuemu.core.vtd.VtdRegs.ECAP_DT;
import static org.iommuemu.core.vtd.VtdRegs.IOTLB_DOMAIN;
import static org.iommuemu.core.vtd.VtdRegs.IOTLB_PAGE;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;
import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.core.pgtable.fmt.X86Pt;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdTables;
import org.junit.jupiter.api.Test;

/**
 * The VT-d driver's device TLBs (ATS) on a fake unit: what {@link VtdDomains#enableAts} writes to the context entry
 * and invalidates, the device-TLB descriptors that follow a domain's IOTLB invalidations (their size encoding, the
 * PASID-based ones, one wait per batch), what detaching does, the refusals, and that the unmap path stays
 * allocation-free with ATS.
 */
class VtdDomainsAtsTest {
    private static final long K4 = 1L << 12;
    private static final int RW = Prot.READ | Prot.WRITE;
    private static final int RID = 0x0108; // 01:01.0
    private static final int OTHER = 0x0110;
    private static final long PA = FakeVtd.RAM_BASE + (32L << 20);

    private final FakeVtd hw = new FakeVtd();
    private VtdDriver driver;
    private VtdDomains domains;

    private void start(boolean scalable, boolean dt) {
        if (dt) {
            hw.ecap |= 1L << ECAP_DT;
        }
        hw.deviceTlbTimeouts = 0; // the devices answer
        driver = VtdDriver.probe(hw, VtdDriverOptions.defaults().withScalableMode(scalable));
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

    private static int devSid(FakeVtd.Desc d) {
        return (int) Bits.extract(d.qw0(), d.type() == InvDesc.TYPE_DEVICE_TLB ? InvDesc.DEV_SID : InvDesc.PDEV_SID,
                16);
    }

    private long contextEntry(int rid) {
        long root = driver.layout().rootTable();
        boolean scalable = driver.scalableMode();
        int devfn = rid & 0xFF;
        long re = hw.r64(root + 16L * (rid >>> 8) + (scalable && devfn >= 128 ? 8 : 0));
        return (re & VtdTables.PTR_MASK) + (long) (scalable ? devfn & 0x7F : devfn)
                * (scalable ? VtdTables.SM_CONTEXT_ENTRY_SIZE : VtdTables.CONTEXT_ENTRY_SIZE);
    }

    private List<Integer> types() {
        return hw.invalidations().stream().map(FakeVtd.Desc::type).toList();
    }

    @Test
    void legacyEnableSetsTt01InOneStoreAndInvalidatesTheContextEntry() throws Exception {
        start(false, true);
        IommuDomain d = domain(VtdSs.levels(4), "ss");
        domains.attachDevice(d, RID);
        long before = hw.r64(contextEntry(RID));
        long qw1 = hw.r64(contextEntry(RID) + 8);
        hw.executed.clear();
        domains.enableAts(RID);
        long qw0 = hw.r64(contextEntry(RID));
        assertThat(Bits.extract(qw0, VtdTables.CTX_TT, 2)).isEqualTo(VtdTables.TT_DEV_IOTLB);
        assertThat(qw0 & ~(3L << VtdTables.CTX_TT)).as("only TT changed").isEqualTo(before);
        assertThat(hw.r64(contextEntry(RID) + 8)).isEqualTo(qw1);
        assertThat(types()).containsExactly(InvDesc.TYPE_CONTEXT_CACHE, InvDesc.TYPE_IOTLB);
        FakeVtd.Desc cc = hw.invalidations().get(0);
        assertThat(g(cc)).isEqualTo(CC_DEVICE);
        assertThat(did(cc)).isEqualTo(domains.domainId(d));
        assertThat(Bits.extract(cc.qw0(), InvDesc.CC_SID, 16)).isEqualTo(RID);
        assertThat(g(hw.invalidations().get(1))).isEqualTo(IOTLB_DOMAIN);
        assertThat(hw.waits()).isEqualTo(1);
        assertThat(domains.atsEnabled(RID)).isTrue();

        hw.executed.clear();
        domains.enableAts(RID);
        assertThat(hw.executed).as("enabling twice does nothing").isEmpty();
    }

    @Test
    void scalableEnableSetsDteAndInvalidatesEveryDomainOfTheDevice() throws Exception {
        start(true, true);
        IommuDomain ss = domain(VtdSs.levels(4), "ss");
        IommuDomain fs = domain(X86Pt.levels(4), "fs");
        domains.attachDevice(ss, RID);
        domains.attachPasid(fs, RID, 5);
        long before = hw.r64(contextEntry(RID));
        hw.executed.clear();
        domains.enableAts(RID);
        long qw0 = hw.r64(contextEntry(RID));
        assertThat(Bits.bit(qw0, VtdTables.SMCTX_DTE)).isTrue();
        assertThat(qw0 & ~(1L << VtdTables.SMCTX_DTE)).isEqualTo(before);
        assertThat(types()).containsExactly(InvDesc.TYPE_CONTEXT_CACHE, InvDesc.TYPE_PASID_CACHE, InvDesc.TYPE_IOTLB,
                InvDesc.TYPE_PASID_CACHE, InvDesc.TYPE_IOTLB);
        assertThat(hw.invalidations().subList(1, 5)).extracting(VtdDomainsAtsTest::did).containsExactlyInAnyOrder(
                domains.domainId(ss), domains.domainId(ss), domains.domainId(fs), domains.domainId(fs));
        assertThat(g(hw.invalidations().get(1))).as("domain-selective PASID cache").isEqualTo(InvDesc.PC_DOMAIN);
    }

    @Test
    void anUnmapIsFollowedByADeviceTlbInvalidationOfTheSameRangeInTheSameBatch() throws Exception {
        start(false, true);
        IommuDomain d = domain(VtdSs.levels(4), "ss");
        domains.attachDevice(d, RID);
        d.map(0x100000, PA, 16 * K4, RW);
        domains.enableAts(RID);
        hw.executed.clear();
        d.unmap(0x102000, 2 * K4);
        assertThat(types()).as("IOTLB first, then the device TLB").containsExactly(InvDesc.TYPE_IOTLB,
                InvDesc.TYPE_DEVICE_TLB);
        assertThat(g(hw.invalidations().get(0))).isEqualTo(IOTLB_PAGE);
        FakeVtd.Desc dev = hw.invalidations().get(1);
        assertThat(devSid(dev)).isEqualTo(RID);
        assertThat(dev.qw1()).as("8 KB at 0x102000: S=1, no address bit below 13 set").isEqualTo(0x102000L | 1);
        assertThat(hw.waits()).as("one wait for both").isEqualTo(1);

        hw.executed.clear();
        d.unmap(0x107000, 2 * K4); // 0x107000..0x108fff: the aligned span is 64 KB at 0x100000
        FakeVtd.Desc wide = hw.invalidations().get(1);
        assertThat(wide.qw1()).as("S=1, bits 12..14 set: 2^16 bytes").isEqualTo(0x100000L | 0x7000 | 1);

        hw.executed.clear();
        d.unmap(0x105000, K4);
        assertThat(hw.invalidations().get(1).qw1()).as("one page: S=0").isEqualTo(0x105000L);

        hw.executed.clear();
        domains.flushIotlbAll(d);
        assertThat(types()).containsExactly(InvDesc.TYPE_IOTLB, InvDesc.TYPE_DEVICE_TLB);
        assertThat(hw.invalidations().get(1).qw1()).as("everything: every address bit and S")
                .isEqualTo(VtdTables.PTR_MASK | 1);
        assertThat(domains.deviceTlbInvalidations()).isEqualTo(4);
    }

    @Test
    void aPasidDomainOfAnAtsDeviceGetsPasidBasedDeviceTlbInvalidations() throws Exception {
        start(true, true);
        IommuDomain ss = domain(VtdSs.levels(4), "ss");
        IommuDomain fs = domain(X86Pt.levels(4), "fs");
        domains.attachDevice(ss, RID);
        domains.enableAts(RID);
        domains.attachPasid(fs, RID, 5);
        fs.map(0x200000, PA, 4 * K4, RW);
        hw.executed.clear();
        fs.unmap(0x200000, 4 * K4);
        assertThat(types()).containsExactly(InvDesc.TYPE_PASID_IOTLB, InvDesc.TYPE_PASID_DEVICE_TLB);
        FakeVtd.Desc dev = hw.invalidations().get(1);
        assertThat(devSid(dev)).isEqualTo(RID);
        assertThat(Bits.extract(dev.qw0(), InvDesc.PASID, 20)).isEqualTo(5);
        assertThat(dev.qw1()).as("16 KB at 0x200000: bit 12 set, S (bit 11), not G")
                .isEqualTo(0x200000L | 0x1000 | 1L << InvDesc.PDEV_S);

        hw.executed.clear();
        domains.detachPasid(RID, 5);
        assertThat(types()).as("tear-down with the PASID's whole device TLB").containsExactly(
                InvDesc.TYPE_PASID_CACHE, InvDesc.TYPE_PASID_IOTLB, InvDesc.TYPE_PASID_DEVICE_TLB);
        assertThat(hw.invalidations().get(2).qw1() & VtdTables.PTR_MASK).isEqualTo(VtdTables.PTR_MASK);
    }

    @Test
    void legacyDetachInvalidatesTheWholeDeviceTlbAndTheDomainStopsInvalidatingIt() throws Exception {
        start(false, true);
        IommuDomain d = domain(VtdSs.levels(4), "ss");
        domains.attachDevice(d, RID);
        domains.attachDevice(d, OTHER);
        d.map(0x100000, PA, 4 * K4, RW);
        domains.enableAts(RID);
        hw.executed.clear();
        domains.detachDevice(RID);
        assertThat(types()).containsExactly(InvDesc.TYPE_CONTEXT_CACHE, InvDesc.TYPE_IOTLB, InvDesc.TYPE_DEVICE_TLB);
        assertThat(hw.invalidations().get(2).qw1()).isEqualTo(VtdTables.PTR_MASK | 1);
        assertThat(domains.atsEnabled(RID)).isFalse();
        hw.executed.clear();
        d.unmap(0x100000, K4);
        assertThat(types()).as("no device TLB left to invalidate").containsExactly(InvDesc.TYPE_IOTLB);

        domains.attachDevice(d, RID);
        long qw0 = hw.r64(contextEntry(RID));
        assertThat(Bits.extract(qw0, VtdTables.CTX_TT, 2)).as("re-attached without ATS")
                .isEqualTo(VtdTables.TT_MULTI_LEVEL);
    }

    @Test
    void scalableDetachOfTheWholeDeviceClearsDteAndItsPasidsStopInvalidatingTheDeviceTlb() throws Exception {
        start(true, true);
        IommuDomain ss = domain(VtdSs.levels(4), "ss");
        IommuDomain fs = domain(X86Pt.levels(4), "fs");
        domains.attachDevice(ss, RID);
        domains.attachPasid(fs, RID, 5);
        domains.enableAts(RID);
        fs.map(0x200000, PA, K4, RW);
        hw.executed.clear();
        domains.detachDevice(RID);
        assertThat(types()).containsExactly(
                // RID_PASID torn down, with the whole device TLB
                InvDesc.TYPE_PASID_CACHE, InvDesc.TYPE_IOTLB, InvDesc.TYPE_DEVICE_TLB,
                // DTE cleared: context, the remaining DID, every PASID's device-TLB entries
                InvDesc.TYPE_CONTEXT_CACHE, InvDesc.TYPE_PASID_CACHE, InvDesc.TYPE_IOTLB, InvDesc.TYPE_DEVICE_TLB,
                InvDesc.TYPE_PASID_DEVICE_TLB);
        assertThat(Bits.bit(hw.r64(contextEntry(RID)), VtdTables.SMCTX_DTE)).isFalse();
        assertThat(hw.invalidations().get(7).qw1() & 1).as("G: every PASID").isEqualTo(1);
        hw.executed.clear();
        fs.unmap(0x200000, K4);
        assertThat(types()).containsExactly(InvDesc.TYPE_PASID_IOTLB);
    }

    @Test
    void enablingIsRefusedWithoutEcapDtAndForADeviceWithNothingAttached() throws Exception {
        start(false, false);
        IommuDomain d = domain(VtdSs.levels(4), "ss");
        domains.attachDevice(d, RID);
        assertThatThrownBy(() -> domains.enableAts(RID)).isInstanceOfSatisfying(IommuApiException.class,
                e -> assertThat(e.kind()).isEqualTo(IommuApiException.Kind.INCOMPATIBLE_INSTANCE))
                .hasMessageContaining("ECAP.DT=0");
        assertThat(Bits.extract(hw.r64(contextEntry(RID)), VtdTables.CTX_TT, 2)).isEqualTo(VtdTables.TT_MULTI_LEVEL);

        FakeVtd other = new FakeVtd();
        other.ecap |= 1L << ECAP_DT;
        VtdDriver dr = VtdDriver.probe(other, VtdDriverOptions.defaults());
        dr.init();
        VtdDomains withDt = new VtdDomains(dr, "dmar1");
        assertThatThrownBy(() -> withDt.enableAts(RID)).isInstanceOfSatisfying(IommuApiException.class,
                e -> assertThat(e.kind()).isEqualTo(IommuApiException.Kind.NOT_ATTACHED))
                .hasMessageContaining("no domain is attached");
    }

    @Test
    void aDeviceThatNeverAnswersIsRetriedThenGivenUpAndTheUnmapReturns() throws Exception {
        start(false, true);
        IommuDomain d = domain(VtdSs.levels(4), "ss");
        domains.attachDevice(d, RID);
        d.map(0x100000, PA, 4 * K4, RW);
        domains.enableAts(RID);
        List<Integer> abandoned = new ArrayList<>();
        driver.addListener(new VtdListener() {
            @Override
            public void onInvalidationAbandoned(int sourceId, int attempts) {
                abandoned.add(sourceId);
            }
        });
        hw.deviceTlbTimeouts = Integer.MAX_VALUE;
        d.unmap(0x100000, K4);
        assertThat(abandoned).containsExactly(RID);
        assertThat(driver.stats().invalidationsAbandoned()).isEqualTo(1);
        assertThat(d.iovaToPhys(0x100000)).as("the unmap took effect").isEqualTo(-1L);
        hw.deviceTlbTimeouts = 0;
        hw.executed.clear();
        d.unmap(0x101000, K4);
        assertThat(types()).as("the queue keeps working").containsExactly(InvDesc.TYPE_IOTLB,
                InvDesc.TYPE_DEVICE_TLB);
        assertThat(hw.waits()).isEqualTo(1);
    }

    @Test
    void mapAndUnmapWithAtsAllocateNothing() throws Exception {
        start(true, true);
        IommuDomain ss = domain(VtdSs.levels(4), "ss");
        IommuDomain fs = domain(X86Pt.levels(4), "fs");
        domains.attachDevice(ss, RID);
        domains.enableAts(RID);
        domains.attachPasid(fs, RID, 3);
        ss.map(0x100000, PA, K4, RW);
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
        assertThat(domains.deviceTlbInvalidations()).as("the unmaps did invalidate device TLBs").isGreaterThan(0);
    }
}
