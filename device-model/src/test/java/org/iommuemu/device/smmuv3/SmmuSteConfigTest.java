package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.smmuv3.SmmuStreamTableTest.assertConfigEvent;
import static org.iommuemu.device.smmuv3.SmmuStreamTableTest.assertFault;

import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.junit.jupiter.api.Test;

/** What each STE.Config does with a transaction, and STE.S1DSS for transactions without a substream (spec §5). */
class SmmuSteConfigTest {
    private static final long IOVA = 0x7654_3000L;

    @Test
    void abortSteAbortsWithoutAnEvent() {
        SmmuTestRig rig = SmmuTestRig.started();
        rig.installSte(1, Ste.abort());

        Translation t = rig.translate(1, -1, IOVA, Access.WRITE);

        assertFault(t, FaultType.ABORTED, 0);
        assertFault(rig.translate(1, 4, IOVA, 0), FaultType.ABORTED, 0);
        rig.assertNoEvents();
    }

    @Test
    void bypassSteGivesTheInputAddressWithUnboundedContiguity() {
        SmmuTestRig rig = SmmuTestRig.started();
        rig.installSte(2, Ste.bypass());

        for (int access : new int[] {0, Access.WRITE, Access.PRIVILEGED | Access.INSTRUCTION}) {
            Translation t = rig.translate(2, -1, 0xDEAD_BEEF_123L, access);
            assertThat(t.isOk()).isTrue();
            assertThat(t.physicalAddress()).isEqualTo(0xDEAD_BEEF_123L);
            assertThat(t.contiguousBytes()).isEqualTo(-1L);
        }
        rig.assertNoEvents();
    }

    @Test
    void stage1SteTranslatesThroughItsCdAndPageTable() {
        SmmuTestRig rig = SmmuTestRig.started();
        long pa = rig.page();
        rig.stage1Stream(3, 7, IOVA, pa);

        Translation t = rig.translate(3, -1, IOVA + 0x7F0, Access.WRITE);

        assertThat(t.isOk()).as("%s", t).isTrue();
        assertThat(t.physicalAddress()).isEqualTo(pa + 0x7F0);
        assertThat(t.contiguousBytes()).as("to the end of the 4 KB page").isEqualTo(0x810);
    }

    @Test
    void stage2SteTranslatesTheInputAsAnIpa() {
        SmmuTestRig rig = SmmuTestRig.started();
        long pa = rig.page();
        rig.stage2Stream(4, 9, IOVA, pa);

        assertThat(rig.pa(4, -1, IOVA + 0x10, Access.WRITE)).isEqualTo(pa + 0x10);
        assertFault(rig.translate(4, -1, IOVA + 0x1000, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
    }

    @Test
    void nestedSteTranslatesStage1OutputThroughStage2() {
        SmmuTestRig rig = SmmuTestRig.started();
        GuestSpace guest = new GuestSpace(rig, 8);
        PageTable s1 = guest.stage1();
        long dataIpa = guest.page();
        guest.map(s1, IOVA, dataIpa, 4096, Prot.READ | Prot.WRITE);
        long cdIpa = guest.cdTable(SmmuTestRig.cdFor(s1, 5));
        rig.installSte(6, guest.nestedSte(3, cdIpa, 0, Ste.S1DSS_SSID0));

        long pa = rig.pa(6, -1, IOVA + 0x44, Access.WRITE);

        assertThat(pa).isEqualTo(guest.paOf(dataIpa) + 0x44);
        assertThat(pa).as("not the IPA").isNotEqualTo(dataIpa + 0x44);
        rig.assertNoEvents();
    }

    /** A stage-1 stream with two substreams: SSID 0 maps IOVA to pa0, SSID 1 maps it to pa1. */
    private static long[] twoSubstreams(SmmuTestRig rig, int sid, int s1Dss) {
        long pa0 = rig.page();
        long pa1 = rig.page();
        PageTable pt0 = rig.stage1(12, 48);
        PageTable pt1 = rig.stage1(12, 48);
        rig.map(pt0, IOVA, pa0, 4096, Prot.READ | Prot.WRITE);
        rig.map(pt1, IOVA, pa1, 4096, Prot.READ | Prot.WRITE);
        long cds = rig.cdTable(1);
        rig.writeCd(cds, 0, SmmuTestRig.cdFor(pt0, 10));
        rig.writeCd(cds, 1, SmmuTestRig.cdFor(pt1, 11));
        rig.installSte(sid, Ste.stage1(cds, Ste.S1FMT_LINEAR, 1, s1Dss));
        return new long[] {pa0, pa1};
    }

    @Test
    void s1dssTerminateAbortsTrafficWithoutSubstreamWithStreamDisabled() {
        SmmuTestRig rig = SmmuTestRig.started();
        long[] pa = twoSubstreams(rig, 8, Ste.S1DSS_TERMINATE);

        assertFault(rig.translate(8, -1, IOVA, 0), FaultType.ABORTED, EventType.F_STREAM_DISABLED);
        assertConfigEvent(rig.onlyEvent(), EventType.F_STREAM_DISABLED, 8, false, 0);
        assertThat(rig.pa(8, 1, IOVA, 0)).as("substream traffic is translated").isEqualTo(pa[1]);
        assertThat(rig.pa(8, 0, IOVA, 0)).isEqualTo(pa[0]);
    }

    @Test
    void s1dssBypassSkipsStage1ForTrafficWithoutSubstream() {
        SmmuTestRig rig = SmmuTestRig.started();
        long[] pa = twoSubstreams(rig, 8, Ste.S1DSS_BYPASS);

        assertThat(rig.pa(8, -1, IOVA + 4, Access.WRITE)).isEqualTo(IOVA + 4);
        assertThat(rig.pa(8, 1, IOVA + 4, Access.WRITE)).isEqualTo(pa[1] + 4);
        rig.assertNoEvents();
    }

    @Test
    void s1dssSsid0UsesTheCdOfSubstream0ForTrafficWithoutSubstream() {
        SmmuTestRig rig = SmmuTestRig.started();
        long[] pa = twoSubstreams(rig, 8, Ste.S1DSS_SSID0);

        assertThat(rig.pa(8, -1, IOVA + 4, 0)).isEqualTo(pa[0] + 4);
        assertThat(rig.pa(8, 1, IOVA + 4, 0)).isEqualTo(pa[1] + 4);
        rig.assertNoEvents();
    }

    @Test
    void nestedS1dssBypassTranslatesTrafficWithoutSubstreamByStage2Only() {
        SmmuTestRig rig = SmmuTestRig.started();
        GuestSpace guest = new GuestSpace(rig, 8);
        PageTable s1 = guest.stage1();
        long dataIpa = guest.page();
        guest.map(s1, IOVA, dataIpa, 4096, Prot.READ | Prot.WRITE);
        long cdIpa = guest.alloc.allocPages(0, "cd");
        long[] words = SmmuTestRig.cdFor(s1, 5).encode();
        for (int i = 0; i < 8; i++) {
            guest.w64(cdIpa + 64 + 8L * i, words[i]); // substream 1
        }
        rig.installSte(6, guest.nestedSte(3, cdIpa, 1, Ste.S1DSS_BYPASS));

        assertThat(rig.pa(6, -1, dataIpa + 8, 0)).as("IPA through stage 2").isEqualTo(guest.paOf(dataIpa) + 8);
        assertThat(rig.pa(6, 1, IOVA + 8, 0)).isEqualTo(guest.paOf(dataIpa) + 8);
    }

    @Test
    void stage1SteOnAnSmmuWithoutStage1IsBadSte() {
        SmmuTestRig rig = SmmuTestRig.started(SmmuTestRig.smallQueues().stage1(false).ssidBits(0).twoLevelCd(false)
                .asid16(false).build());
        rig.installSte(1, Ste.stage1(rig.cdTable(0), Ste.S1FMT_LINEAR, 0, 0));

        assertFault(rig.translate(1, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
        assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_STE, 1, false, 0);
    }

    @Test
    void stage2SteOnAnSmmuWithoutStage2IsBadSte() {
        SmmuTestRig rig = SmmuTestRig.started(SmmuTestRig.smallQueues().stage2(false).vmid16(false).build());
        PageTable s2 = rig.stage2(12, 40);
        rig.installSte(1, SmmuTestRig.s2Ste(1, s2));

        assertFault(rig.translate(1, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
        assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_STE, 1, false, 0);
    }

    @Test
    void stage2SteWithAStartLevelThatNeedsTooManyConcatenatedTablesIsBadSte() {
        SmmuTestRig rig = SmmuTestRig.started();
        PageTable s2 = rig.stage2(12, 40);
        // 4 KB, 44-bit IPA starting at level 1: 2^(44-30-9) = 32 tables, more than 16
        rig.installSte(1, SmmuTestRig.s2Ste(1, s2).toBuilder().s2T0sz(20).s2Sl0(1).build());

        assertFault(rig.translate(1, 2, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
        assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_STE, 1, true, 2);
    }

    @Test
    void stage1SteWithReservedS1FmtIsBadSte() {
        SmmuTestRig rig = SmmuTestRig.started();
        rig.installSte(1, Ste.stage1(rig.cdTable(0), 3, 4, 0));

        assertFault(rig.translate(1, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
        assertThat(rig.onlyEvent().type()).isEqualTo(EventType.C_BAD_STE);
    }

    @Test
    void stage1SteWithS1CdMaxBeyondSsidSizeIsBadSte() {
        SmmuTestRig rig = SmmuTestRig.started(SmmuTestRig.smallQueues().ssidBits(4).build());
        rig.installSte(1, Ste.stage1(rig.cdTable(5), Ste.S1FMT_LINEAR, 5, 0));

        assertFault(rig.translate(1, 1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
        EventRecord e = rig.onlyEvent();
        assertConfigEvent(e, EventType.C_BAD_STE, 1, true, 1);
    }

    @Test
    void cdIsIgnoredByABypassSte() {
        SmmuTestRig rig = SmmuTestRig.started();
        long cds = rig.cdTable(0);
        rig.writeCd(cds, 0, Cd.builder().build()); // invalid CD: would be C_BAD_CD if read
        rig.installSte(5, Ste.bypass().toBuilder().s1ContextPtr(cds).build());

        assertThat(rig.pa(5, -1, IOVA, 0)).isEqualTo(IOVA);
        rig.assertNoEvents();
    }
}
