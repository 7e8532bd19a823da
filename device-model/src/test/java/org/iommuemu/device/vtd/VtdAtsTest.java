package org.iommuemu.device.vtd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.mockito.ArgumentMatchers.anyInt;
import static org.mockito.ArgumentMatchers.anyLong;
import static org.mockito.ArgumentMatchers.anyString;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.when;

import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.vtd.FaultReason;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.AtcPort;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.InterruptSink;
import org.iommuemu.device.machine.Translation;
import org.junit.jupiter.api.Test;

/**
 * ATS on VT-d: device-TLB invalidations reach the device's ATC through the unit's {@link AtcPort}, an invalidation
 * wait stays on the queue until they are completed, and one that is never completed aborts the wait with ITE naming
 * the source id; translation and translated requests need a context with device TLBs enabled (TT=01).
 */
class VtdAtsTest {
    private static final long GCMD = 0x18;
    private static final long GSTS = 0x1C;
    private static final long FSTS = 0x34;
    private static final long IQH = 0x80;
    private static final long IQT = 0x88;
    private static final long IQA = 0x90;
    private static final long IQERCD = 0xB0;
    private static final long QIE = 1L << 26;
    private static final long QUEUE = 0x8000_0000L;
    private static final long STATUS = 0x8001_0000L;
    private static final int SID = 0x10;

    private final SparseRam ram = SparseRam.withDefaultRam();
    private VtdDevice vtd;

    private void start(int atcTimeoutMs) {
        InterruptSink interrupts = mock(InterruptSink.class);
        when(interrupts.msi(anyString(), anyString(), anyLong(), anyInt())).thenReturn(true);
        vtd = new VtdDevice("dmar0", VtdConfig.builder().dt(true).atcTimeoutMs(atcTimeoutMs).build(), ram, interrupts);
        vtd.mmioWrite(IQA, 8, QUEUE);
        vtd.mmioWrite(IQT, 8, 0);
        vtd.mmioWrite(GCMD, 4, QIE);
    }

    private void put(int index, long qw0, long qw1) throws Exception {
        ram.write64(QUEUE + index * 16L, qw0);
        ram.write64(QUEUE + index * 16L + 8, qw1);
    }

    private void tail(int index) {
        vtd.mmioWrite(IQT, 8, (long) index << 4);
    }

    private long head() {
        return vtd.mmioRead(IQH, 8) >>> 4;
    }

    @Test
    void aWaitAfterADeviceTlbInvalidationCompletesOnlyOnceTheDeviceAnswers() throws Exception {
        start(60_000);
        AtcPort.Endpoint device = vtd.atc().register(SID);
        put(0, InvDesc.deviceTlb(SID), 0x5000);
        put(1, InvDesc.waitQw0(true, false, false, InvDesc.STATUS_DONE), STATUS);
        tail(2);
        assertThat(head()).as("IQH stays on the wait").isEqualTo(1);
        assertThat(ram.read32(STATUS)).isZero();
        AtcPort.Invalidation inv = device.poll();
        assertThat(inv.streamId()).isEqualTo(SID);
        assertThat(inv.address()).isEqualTo(0x5000);
        assertThat(inv.sizeLg2()).as("S=0: one page").isEqualTo(12);
        assertThat(inv.substreamId()).isEqualTo(-1);
        assertThat(device.complete(inv.id())).isTrue();
        assertThat(head()).as("the next register access finds it complete").isEqualTo(2);
        assertThat(ram.read32(STATUS)).isEqualTo(InvDesc.STATUS_DONE);
        assertThat(vtd.atc().stats().completed()).isEqualTo(1);

        // S=1 with ADDR bits 12..14 set and 15 clear: 64 KB at 0
        put(2, InvDesc.deviceTlb(SID), 0x7000 | 1);
        // a stream without an ATC: completes at once
        put(3, InvDesc.deviceTlb(0x20), 0x1000);
        put(4, InvDesc.waitQw0(true, false, false, 7), STATUS);
        tail(5);
        inv = device.poll();
        assertThat(inv.address()).isZero();
        assertThat(inv.sizeLg2()).isEqualTo(16);
        device.complete(inv.id());
        assertThat(head()).isEqualTo(5);
        assertThat(ram.read32(STATUS)).isEqualTo(7);
        assertThat(vtd.atc().stats().withoutDevice()).isEqualTo(1);
    }

    @Test
    void aDeviceThatNeverAnswersAbortsTheWaitWithIteNamingItsSourceId() throws Exception {
        start(50);
        AtcPort.Endpoint device = vtd.atc().register(SID);
        put(0, InvDesc.deviceTlb(SID), 0x5000);
        put(1, InvDesc.waitQw0(true, false, false, InvDesc.STATUS_DONE), STATUS);
        tail(2);
        assertThat(device.poll()).isNotNull();
        long fsts = 0;
        for (int i = 0; i < 60_000 && (fsts & 1L << VtdRegs.FSTS_ITE) == 0; i++) {
            Thread.sleep(1); // wall time passes; every read lets the unit look at its deadline
            fsts = vtd.mmioRead(FSTS, 4);
        }
        assertThat(fsts & 1L << VtdRegs.FSTS_ITE).as("ITE").isNotZero();
        assertThat((vtd.mmioRead(IQERCD, 8) >>> VtdRegs.IQERCD_ITESID) & 0xFFFF).isEqualTo(SID);
        assertThat(head()).as("IQH past the aborted wait").isEqualTo(2);
        assertThat(ram.read32(STATUS)).as("an aborted wait writes no status").isZero();
        assertThat(vtd.atc().stats().timedOut()).isEqualTo(1);

        vtd.mmioWrite(FSTS, 4, 1L << VtdRegs.FSTS_ITE);
        put(2, InvDesc.waitQw0(true, false, false, InvDesc.STATUS_DONE), STATUS);
        tail(3);
        assertThat(head()).as("the queue works again once ITE is cleared").isEqualTo(3);
        assertThat(ram.read32(STATUS)).isEqualTo(InvDesc.STATUS_DONE);
    }

    @Test
    void atsRequestsNeedAContextWithDeviceTlbsEnabled() {
        VtdRig rig = VtdRig.legacy(VtdConfig.builder().dt(true).build());
        VtdRig.SsTable ss = rig.ss(4);
        ss.map(0x1234_5000L, 0x9000_0000L, 12, 3);
        rig.context(SID, VtdTables.contextQw0(ss.root, VtdTables.TT_MULTI_LEVEL, false), VtdTables.contextQw1(5, 4));
        Translation t = rig.translator.atsRequest(rig.rootTable, rig.ttm, SID, -1, 0x1234_5000L, 0, true,
                new Translation());
        assertThat(t.faultType()).isEqualTo(FaultType.ABORTED);
        assertThat(t.code()).as("TT=00 blocks ATS requests").isEqualTo(FaultReason.CONTEXT_TT_BLOCKED);
        assertThat(rig.faults()).hasSize(1);

        int dev = SID + 1;
        rig.context(dev, VtdTables.contextQw0(ss.root, VtdTables.TT_DEV_IOTLB, false), VtdTables.contextQw1(5, 4));
        t = rig.translator.atsRequest(rig.rootTable, rig.ttm, dev, -1, 0x1234_5000L, 0, true, new Translation());
        assertThat(t.isOk()).isTrue();
        assertThat(t.physicalAddress()).isEqualTo(0x9000_0000L);
        t = rig.translator.atsRequest(rig.rootTable, rig.ttm, dev, -1, 0x7000_0000L, 0, true, new Translation());
        assertThat(t.faultType()).as("not mapped").isEqualTo(FaultType.TRANSLATION);
        assertThat(rig.faults()).as("a translation request's not-present fault is not recorded").isEmpty();
        t = rig.translator.atsRequest(rig.rootTable, rig.ttm, dev, -1, 0xABCD_E000L, Access.WRITE, false,
                new Translation());
        assertThat(t.isOk()).as("a translated request passes through").isTrue();
        assertThat(t.physicalAddress()).isEqualTo(0xABCD_E000L);
    }
}
