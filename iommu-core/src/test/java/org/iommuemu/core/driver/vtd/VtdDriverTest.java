package org.iommuemu.core.driver.vtd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.iommuemu.core.vtd.VtdRegs.*;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.vtd.FaultReason;
import org.iommuemu.core.vtd.InvDesc;
import org.junit.jupiter.api.Test;

class VtdDriverTest {
    private final FakeVtd hw = new FakeVtd();
    private final List<VtdFault> faults = new ArrayList<>();
    private int overflows;

    private VtdDriver start(VtdDriverOptions options) {
        VtdDriver d = VtdDriver.probe(hw, options);
        d.addListener(new VtdListener() {
            @Override
            public void onFault(VtdFault fault) {
                faults.add(fault);
            }

            @Override
            public void onFaultOverflow() {
                overflows++;
            }
        });
        d.init();
        return d;
    }

    private int indexOfWrite(long offset) {
        for (int i = 0; i < hw.writes.size(); i++) {
            if (hw.writes.get(i).offset() == offset) {
                return i;
            }
        }
        return -1;
    }

    @Test
    void initProgramsTheUnitInOrder() {
        VtdDriver d = start(VtdDriverOptions.defaults());
        assertThat(d.scalableMode()).isTrue();
        // fault event before the root table, root table before queued invalidation, TE last
        int feaddr = indexOfWrite(FEADDR);
        int fectl = indexOfWrite(FECTL);
        int rtaddr = indexOfWrite(RTADDR);
        int iqt = indexOfWrite(IQT);
        int iqa = indexOfWrite(IQA);
        assertThat(feaddr).isLessThan(fectl);
        assertThat(fectl).isLessThan(rtaddr);
        assertThat(rtaddr).isLessThan(iqt);
        assertThat(iqt).isLessThan(iqa);
        assertThat(hw.reg(FEADDR)).isEqualTo(VtdDriverOptions.DEFAULT_FAULT_MSI_ADDRESS);
        assertThat(hw.reg(FEUADDR)).isZero();
        assertThat(hw.reg(FEDATA)).isEqualTo(0x40);
        assertThat(hw.reg(FECTL)).isZero(); // IM cleared
        assertThat(hw.reg(RTADDR)).isEqualTo(d.layout().rootTable() | 1L << RTADDR_TTM);
        // GCMD: SRTP alone, then QIE, then QIE|TE (the persistent QIE written back with TE)
        assertThat(hw.writesTo(GCMD)).containsExactly(1L << GCMD_SRTP, 1L << GCMD_QIE,
                1L << GCMD_QIE | 1L << GCMD_TE);
        assertThat(Bits.bit(hw.gsts, GCMD_TE)).isTrue();
        // IQA: 256-bit descriptors (ECAP.SMTS) and QS 1 for 256 entries, as Linux
        long iqaValue = hw.reg(IQA);
        assertThat(Bits.bit(iqaValue, IQA_DW)).isTrue();
        assertThat(iqaValue & 7).isEqualTo(1);
        assertThat(iqaValue & ~0xFFFL).isEqualTo(d.layout().queueBase());
        // global context cache, PASID cache and IOTLB, one wait
        assertThat(hw.invalidations()).extracting(FakeVtd.Desc::type).containsExactly(InvDesc.TYPE_CONTEXT_CACHE,
                InvDesc.TYPE_PASID_CACHE, InvDesc.TYPE_IOTLB);
        assertThat(hw.invalidations().get(0).qw0() >>> InvDesc.G & 3).isEqualTo(CC_GLOBAL);
        assertThat(hw.invalidations().get(1).qw0() >>> InvDesc.G & 3).isEqualTo(InvDesc.PC_GLOBAL);
        assertThat(hw.invalidations().get(2).qw0() >>> InvDesc.G & 3).isEqualTo(IOTLB_GLOBAL);
        assertThat(hw.waits()).isEqualTo(1);
        assertThat(d.stats().waits()).isEqualTo(1);
        // the root table is a zeroed page
        for (int i = 0; i < 512; i++) {
            assertThat(hw.r64(d.layout().rootTable() + 8L * i)).isZero();
        }
    }

    @Test
    void legacyModeByOptionUses128BitDescriptorsOnlyWithoutSmts() {
        VtdDriver d = start(VtdDriverOptions.defaults().withScalableMode(false));
        assertThat(d.scalableMode()).isFalse();
        assertThat(Bits.extract(hw.reg(RTADDR), RTADDR_TTM, 2)).isEqualTo(TTM_LEGACY);
        assertThat(Bits.bit(hw.reg(IQA), IQA_DW)).isTrue(); // SMTS present: Linux still uses 256-bit descriptors
        assertThat(hw.invalidations()).extracting(FakeVtd.Desc::type).containsExactly(InvDesc.TYPE_CONTEXT_CACHE,
                InvDesc.TYPE_IOTLB);

        FakeVtd old = new FakeVtd();
        old.ecap = 1L << ECAP_QI | 0xFL << ECAP_IRO;
        VtdDriver d2 = VtdDriver.probe(old, VtdDriverOptions.defaults());
        d2.init();
        assertThat(d2.scalableMode()).isFalse();
        assertThat(Bits.bit(old.reg(IQA), IQA_DW)).isFalse();
        assertThat(old.reg(IQA) & 7).isZero(); // 256 128-bit descriptors
    }

    @Test
    void translationLeftOnIsDisabledFirst() {
        hw.gsts = 1 << GCMD_TE;
        start(VtdDriverOptions.defaults());
        assertThat(hw.writes.get(0).offset()).isEqualTo(GCMD);
        assertThat(hw.writes.get(0).value()).isZero();
        assertThat(Bits.bit(hw.gsts, GCMD_TE)).isTrue();
    }

    @Test
    void unacknowledgedCommandTimesOutNamingTheRegister() {
        hw.stalledCommands = 1 << GCMD_SRTP;
        VtdDriver d = VtdDriver.probe(hw, VtdDriverOptions.defaults().withAckPolls(10));
        assertThatThrownBy(d::init).isInstanceOfSatisfying(VtdDriverException.class,
                        e -> assertThat(e.kind()).isEqualTo(VtdDriverException.Kind.ACK_TIMEOUT))
                .hasMessageContaining("GSTS bit 30").hasMessageContaining("SRTP").hasMessageContaining("10 polls");
    }

    @Test
    void probeRefusesAUnitWithoutQueuedInvalidation() {
        hw.ecap = 0;
        assertThatThrownBy(() -> VtdDriver.probe(hw, VtdDriverOptions.defaults()))
                .isInstanceOfSatisfying(VtdDriverException.class,
                        e -> assertThat(e.kind()).isEqualTo(VtdDriverException.Kind.UNSUPPORTED_HARDWARE))
                .hasMessageContaining("ECAP.QI=0");
        assertThat(hw.writes).isEmpty();
    }

    @Test
    void initTwiceIsABadState() {
        VtdDriver d = start(VtdDriverOptions.defaults());
        assertThatThrownBy(d::init).isInstanceOfSatisfying(VtdDriverException.class,
                e -> assertThat(e.kind()).isEqualTo(VtdDriverException.Kind.BAD_STATE));
    }

    private static long hi(int sid, int reason, boolean read) {
        return sid | (long) reason << FRCD_HI_FR | (read ? 1L << FRCD_HI_T : 0);
    }

    @Test
    void faultsAreDrainedRoundRobinFromFriDecodedAndCleared() {
        VtdDriver d = start(VtdDriverOptions.defaults());
        hw.recordFault(3, 0x1234_5000L, hi(0x0108, FaultReason.CONTEXT_NOT_PRESENT, true)); // drained by the interrupt
        assertThat(faults).hasSize(1);
        // two more wrapping around: 3 then 0
        hw.fsts |= 1 << FSTS_PPF;
        hw.regs.put(hw.fro() + 16 * 3, 0xABC_D000L);
        hw.regs.put(hw.fro() + 16 * 3 + 8, hi(0x0200, FaultReason.WRITE, false) | 1L << 63
                | 1L << FRCD_HI_PP | 0x77L << FRCD_HI_PV);
        hw.regs.put(hw.fro() + 8, hi(0x0201, FaultReason.READ, true) | 1L << 63);
        hw.fsts = (int) Bits.deposit(hw.fsts, FSTS_FRI, 8, 3) | 1 << FSTS_PFO;
        assertThat(d.drainFaults()).isEqualTo(2);
        assertThat(faults).hasSize(3);
        VtdFault f = faults.get(1);
        assertThat(f.record()).isEqualTo(3);
        assertThat(f.address()).isEqualTo(0xABC_D000L);
        assertThat(f.sourceId()).isEqualTo(0x200);
        assertThat(f.reason()).isEqualTo(FaultReason.WRITE);
        assertThat(f.read()).isFalse();
        assertThat(f.pasidPresent()).isTrue();
        assertThat(f.pasid()).isEqualTo(0x77);
        assertThat(faults.get(2).record()).isZero();
        assertThat(faults.get(2).read()).isTrue();
        assertThat(faults.get(0).toString()).contains("01:01.0").contains("context entry not present");
        // F cleared everywhere, PFO acknowledged and counted
        for (int n = 0; n < hw.faultRecords(); n++) {
            assertThat(Bits.bit(hw.reg(hw.fro() + 16L * n + 8), 63)).isFalse();
        }
        assertThat(hw.fsts & (1 << FSTS_PFO | 1 << FSTS_PPF)).isZero();
        assertThat(overflows).isEqualTo(1);
        assertThat(d.stats().faults()).isEqualTo(3);
        assertThat(d.stats().faultOverflows()).isEqualTo(1);
    }
}
