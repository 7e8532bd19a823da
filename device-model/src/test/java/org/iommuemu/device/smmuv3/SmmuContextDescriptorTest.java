package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.smmuv3.SmmuStreamTableTest.assertConfigEvent;
import static org.iommuemu.device.smmuv3.SmmuStreamTableTest.assertFault;

import java.util.function.UnaryOperator;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.L1CdDescriptor;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Finding a substream's context descriptor: linear and 2-level CD tables, and every way it fails (spec §6, §8). */
class SmmuContextDescriptorTest {
    private static final long IOVA = 0x4_5678_9000L;
    private static final int SID = 12;

    private final SmmuTestRig rig = SmmuTestRig.started();

    /** A table mapping IOVA to a fresh page; returns {table, pa}. */
    private Object[] mapping() {
        PageTable pt = rig.stage1(12, 48);
        long pa = rig.page();
        rig.map(pt, IOVA, pa, 4096, Prot.READ | Prot.WRITE);
        return new Object[] {pt, pa};
    }

    @Test
    void linearCdTableGivesEachSubstreamItsOwnContext() {
        long cds = rig.cdTable(3);
        long[] pa = new long[8];
        for (int ssid = 0; ssid < 8; ssid++) {
            Object[] m = mapping();
            pa[ssid] = (long) m[1];
            rig.writeCd(cds, ssid, SmmuTestRig.cdFor((PageTable) m[0], 100 + ssid));
        }
        rig.installSte(SID, Ste.stage1(cds, Ste.S1FMT_LINEAR, 3, Ste.S1DSS_SSID0));

        for (int ssid = 7; ssid >= 0; ssid--) {
            assertThat(rig.pa(SID, ssid, IOVA + ssid, 0)).as("substream %d", ssid).isEqualTo(pa[ssid] + ssid);
        }
        rig.assertNoEvents();
    }

    @Test
    void twoLevelCdTableWith64KLeavesHolds1024CdsPerLeaf() {
        long l1 = rig.l1CdTable(12);
        long leaf0 = rig.cdLeaf(l1, 0);
        long leaf1 = rig.cdLeaf(l1, 0x400);
        Object[] a = mapping();
        Object[] b = mapping();
        rig.writeCd(leaf0, 3, SmmuTestRig.cdFor((PageTable) a[0], 1));
        rig.writeCd(leaf1, 5, SmmuTestRig.cdFor((PageTable) b[0], 2)); // SSID 0x405: L1 index 1, leaf index 5
        rig.installSte(SID, Ste.stage1(l1, Ste.S1FMT_64K_L2, 12, Ste.S1DSS_SSID0));

        assertThat(L1CdDescriptor.decode(rig.r64(l1 + 8))).isEqualTo(L1CdDescriptor.of(leaf1));
        assertThat(rig.pa(SID, 3, IOVA, 0)).isEqualTo((long) a[1]);
        assertThat(rig.pa(SID, 0x405, IOVA, 0)).isEqualTo((long) b[1]);
        rig.assertNoEvents();
    }

    @Test
    void invalidL1CdDescriptorIsBadSubstreamId() {
        long l1 = rig.l1CdTable(12);
        rig.cdLeaf(l1, 0);
        rig.installSte(SID, Ste.stage1(l1, Ste.S1FMT_64K_L2, 12, Ste.S1DSS_SSID0));

        assertFault(rig.translate(SID, 0x805, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_SUBSTREAMID);
        assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_SUBSTREAMID, SID, true, 0x805);
    }

    @Test
    void twoLevelCdTableOnAnSmmuWithoutCd2lIsBadSte() {
        SmmuTestRig small = SmmuTestRig.started(SmmuTestRig.smallQueues().twoLevelCd(false).build());
        long l1 = small.l1CdTable(12);
        small.installSte(SID, Ste.stage1(l1, Ste.S1FMT_64K_L2, 12, Ste.S1DSS_SSID0));

        assertFault(small.translate(SID, 1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
        assertConfigEvent(small.onlyEvent(), EventType.C_BAD_STE, SID, true, 1);
    }

    @Test
    void substreamBeyondS1CdMaxIsBadSubstreamId() {
        long cds = rig.cdTable(2);
        for (int ssid = 0; ssid < 8; ssid++) { // valid CDs even beyond the 4 the STE allows
            rig.writeCd(cds, ssid, SmmuTestRig.cdFor((PageTable) mapping()[0], ssid));
        }
        rig.installSte(SID, Ste.stage1(cds, Ste.S1FMT_LINEAR, 2, Ste.S1DSS_SSID0));

        assertThat(rig.translate(SID, 3, IOVA, 0).isOk()).isTrue();
        assertFault(rig.translate(SID, 4, IOVA, Access.WRITE), FaultType.BAD_CONFIGURATION,
                EventType.C_BAD_SUBSTREAMID);
        assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_SUBSTREAMID, SID, true, 4);
    }

    @Test
    void substreamOnAStreamWithoutSubstreamsIsBadSubstreamId() {
        long pa = rig.page();
        rig.stage1Stream(SID, 1, IOVA, pa); // S1CDMax 0

        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(pa);
        assertFault(rig.translate(SID, 0, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_SUBSTREAMID);
        assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_SUBSTREAMID, SID, true, 0);
    }

    /** Installs a one-CD stream whose CD is a valid Linux CD changed by {@code change}; translates SSID 0. */
    private void badCd(UnaryOperator<Cd.Builder> change) {
        long cds = rig.cdTable(1);
        Cd good = SmmuTestRig.cdFor((PageTable) mapping()[0], 1);
        rig.writeCd(cds, 1, change.apply(good.toBuilder()).build());
        rig.installSte(SID, Ste.stage1(cds, Ste.S1FMT_LINEAR, 1, Ste.S1DSS_SSID0));

        assertFault(rig.translate(SID, 1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_CD);
        assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_CD, SID, true, 1);
    }

    @Test
    void cdWithVClearIsBadCd() {
        badCd(b -> b.valid(false));
    }

    @Test
    void cdWithAa64ClearIsBadCd() {
        badCd(b -> b.aa64(false));
    }

    @Test
    void cdAskingToStallIsBadCd() {
        badCd(b -> b.s(true));
    }

    @Test
    void cdWithReservedTg0IsBadCd() {
        badCd(b -> b.tg0(3));
    }

    @Test
    void cdWithBigEndianTablesIsBadCd() {
        badCd(b -> b.endi(true));
    }

    @Test
    void cdWithReservedIpsIsBadCd() {
        badCd(b -> b.ips(7));
    }

    @ParameterizedTest(name = "T0SZ {0}")
    @ValueSource(ints = {0, 15, 40, 63})
    void cdWithT0szOutside16To39IsBadCd(int t0sz) {
        badCd(b -> b.t0sz(t0sz));
    }

    @Test
    void cdWithTtb1EnabledAndReservedTg1IsBadCd() {
        badCd(b -> b.epd1(false).tg1(0).t1sz(16));
    }

    @Test
    void cdWithTtb0NotAlignedToItsTableIsBadCd() {
        badCd(b -> b.ttb0(b.build().ttb0() + 0x800));
    }

    @Test
    void cdWithAsidAbove255OnAnSmmuWith8BitAsidsIsBadCd() {
        SmmuTestRig small = SmmuTestRig.started(SmmuTestRig.smallQueues().asid16(false).build());
        long cds = small.cdTable(0);
        PageTable pt = small.stage1(12, 48);
        small.writeCd(cds, 0, SmmuTestRig.cdFor(pt, 256));
        small.installSte(SID, Ste.stage1(cds, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0));

        assertFault(small.translate(SID, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_CD);
        assertConfigEvent(small.onlyEvent(), EventType.C_BAD_CD, SID, false, 0);
    }

    @Test
    void badCdIsNotCachedSoFixingItNeedsNoInvalidation() {
        long cds = rig.cdTable(0);
        Object[] m = mapping();
        Cd good = SmmuTestRig.cdFor((PageTable) m[0], 1);
        rig.writeCd(cds, 0, good.toBuilder().valid(false).build());
        rig.installSte(SID, Ste.stage1(cds, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0));
        assertFault(rig.translate(SID, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_CD);
        assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_CD, SID, false, 0);

        rig.writeCd(cds, 0, good);

        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo((long) m[1]);
    }

    @Test
    void cdFetchOutsideRamIsCdFetchWithTheCdAddress() {
        rig.installSte(SID, Ste.stage1(SmmuTestRig.NOT_RAM, Ste.S1FMT_LINEAR, 4, Ste.S1DSS_SSID0));

        assertFault(rig.translate(SID, 5, IOVA, 0), FaultType.EXTERNAL_ABORT, EventType.F_CD_FETCH);
        EventRecord e = rig.onlyEvent();
        assertThat(e.type()).isEqualTo(EventType.F_CD_FETCH);
        assertThat(e.streamId()).isEqualTo(SID);
        assertThat(e.ssv()).isTrue();
        assertThat(e.substreamId()).isEqualTo(5);
        assertThat(e.fetchAddr()).as("FetchAddr").isEqualTo(SmmuTestRig.NOT_RAM + 5 * 64);
        assertThat(e.inputAddr()).isZero();
    }

    @Test
    void l1CdTableOutsideRamIsCdFetchWithTheL1DescriptorAddress() {
        rig.installSte(SID, Ste.stage1(SmmuTestRig.NOT_RAM, Ste.S1FMT_64K_L2, 12, Ste.S1DSS_SSID0));

        assertFault(rig.translate(SID, 0x805, IOVA, 0), FaultType.EXTERNAL_ABORT, EventType.F_CD_FETCH);
        assertThat(rig.onlyEvent().fetchAddr()).isEqualTo(SmmuTestRig.NOT_RAM + 2 * 8);
    }

    @Test
    void cdLeafOutsideRamIsCdFetchWithTheCdAddress() {
        long l1 = rig.l1CdTable(12);
        rig.w64(l1 + 8, L1CdDescriptor.of(SmmuTestRig.NOT_RAM).encode());
        rig.installSte(SID, Ste.stage1(l1, Ste.S1FMT_64K_L2, 12, Ste.S1DSS_SSID0));

        assertFault(rig.translate(SID, 0x403, IOVA, 0), FaultType.EXTERNAL_ABORT, EventType.F_CD_FETCH);
        assertThat(rig.onlyEvent().fetchAddr()).isEqualTo(SmmuTestRig.NOT_RAM + 3 * 64);
    }
}
