package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.smmuv3.SmmuFaultRecordTest.assertRecord;
import static org.iommuemu.device.smmuv3.SmmuStreamTableTest.assertFault;

import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Stage 2 with concatenated first-level tables, and nested translation with the guest's tables in IPA space. */
class SmmuStage2NestedTest {
    private static final int SID = 50;
    private static final int VMID = 6;
    private static final long IOVA = 0x12_3456_7000L;
    private static final long S2AP_WRITE = 1L << 7;

    private final SmmuTestRig rig = SmmuTestRig.started();

    @ParameterizedTest(name = "granule 2^{0}, {1}-bit IPA: {2} concatenated tables at Arm level {3}")
    @CsvSource({"12, 40, 2, 1", "12, 42, 8, 1", "12, 48, 1, 0", "14, 48, 2, 1", "14, 40, 1, 1", "16, 48, 1, 1"})
    void stage2WithConcatenatedFirstLevelTables(int granuleLg2, int ias, int tables, int startLevel) {
        PageTable pt = rig.stage2(granuleLg2, ias);
        Arm64Lpae f = (Arm64Lpae) pt.format();
        assertThat(f.concatenatedTables()).isEqualTo(tables);
        assertThat(3 - pt.topLevel()).isEqualTo(startLevel);
        long granule = 1L << granuleLg2;
        long firstPa = rig.bytes(granule, "data");
        long lastPa = rig.bytes(granule, "data");
        long lastIpa = (1L << ias) - granule; // indexed in the last concatenated table
        rig.map(pt, granule, firstPa, granule, Prot.READ | Prot.WRITE);
        rig.map(pt, lastIpa, lastPa, granule, Prot.READ | Prot.WRITE);
        Ste ste = SmmuTestRig.s2Ste(VMID, pt);
        assertThat(ste.s2T0sz()).isEqualTo(64 - ias);
        rig.installSte(SID, ste);

        assertThat(rig.pa(SID, -1, granule + 0x28, Access.WRITE)).isEqualTo(firstPa + 0x28);
        assertThat(rig.pa(SID, -1, lastIpa + granule - 1, 0)).isEqualTo(lastPa + granule - 1);
        assertFault(rig.translate(SID, -1, lastIpa - granule, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        if (ias < 48) {
            assertFault(rig.translate(SID, -1, 1L << ias, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        } else { // beyond the SMMU's IAS: a stage-1 address size fault (§3.4)
            assertFault(rig.translate(SID, -1, 1L << ias, 0), FaultType.ADDRESS_SIZE, EventType.F_ADDR_SIZE);
        }
        assertThat(rig.events()).extracting(EventRecord::ipa)
                .containsExactly(lastIpa - granule, ias == 48 ? 0L : 1L << ias);
    }

    /** A nested stream: the guest's stage-1 table maps IOVA to a data page of its own memory. */
    private static final class Nested {
        final GuestSpace guest;
        final PageTable s1;
        final long dataIpa;
        final long cdIpa;

        Nested(SmmuTestRig rig, boolean s2r) {
            guest = new GuestSpace(rig, 8);
            s1 = guest.stage1();
            dataIpa = guest.page();
            guest.map(s1, IOVA, dataIpa, 4096, Prot.READ | Prot.WRITE);
            cdIpa = guest.cdTable(SmmuTestRig.cdFor(s1, 9));
            rig.writeSte(SID, guest.nestedSte(VMID, cdIpa, 0, Ste.S1DSS_SSID0).toBuilder().s2R(s2r).build());
        }

        /** The IPA of the level-3 stage-1 table on the walk of IOVA. */
        long level3TableIpa() {
            long l2Slot = SmmuTestRig.tableSlot(guest, s1, IOVA, 2);
            return guest.r64(l2Slot) & 0xFFFF_FFFF_F000L;
        }
    }

    @Test
    void nestedTranslationReadsCdAndStage1TablesThroughStage2() {
        Nested n = new Nested(rig, true);

        assertThat(rig.pa(SID, -1, IOVA + 0x123, Access.WRITE)).isEqualTo(n.guest.paOf(n.dataIpa) + 0x123);
        assertThat(n.cdIpa).isBetween(GuestSpace.IPA_BASE, GuestSpace.IPA_BASE + n.guest.size);
        assertThat(n.guest.paOf(n.cdIpa)).isNotEqualTo(n.cdIpa);
        rig.assertNoEvents();
    }

    @Test
    void stage2FaultFetchingTheCdIsReportedWithClassCd() {
        Nested n = new Nested(rig, true);
        n.guest.unmapPage(n.cdIpa);

        Translation t = rig.translate(SID, -1, IOVA + 0x10, Access.WRITE);

        assertFault(t, FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertRecord(rig.onlyEvent(), EventType.F_TRANSLATION, SID, false, 0, IOVA + 0x10, false, false, false,
                true, EventRecord.CLASS_CD, n.cdIpa, 0);
    }

    @Test
    void stage2FaultReadingAStage1TableIsReportedWithClassTt() {
        Nested n = new Nested(rig, true);
        long l3 = n.level3TableIpa();
        n.guest.unmapPage(l3);

        Translation t = rig.translate(SID, -1, IOVA + 0x10, Access.PRIVILEGED);

        assertFault(t, FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertRecord(rig.onlyEvent(), EventType.F_TRANSLATION, SID, false, 0, IOVA + 0x10, true, true, false,
                true, EventRecord.CLASS_TT, l3, 0);
    }

    @Test
    void stage2FaultOnTheStage1OutputIsReportedWithClassIn() {
        Nested n = new Nested(rig, true);
        n.guest.unmapPage(n.dataIpa);

        assertFault(rig.translate(SID, -1, IOVA + 0x10, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertRecord(rig.onlyEvent(), EventType.F_TRANSLATION, SID, false, 0, IOVA + 0x10, true, false, false,
                true, EventRecord.CLASS_IN, n.dataIpa, 0);
    }

    @Test
    void stage1FaultInANestedStreamIsAStage1Record() {
        new Nested(rig, true);

        assertFault(rig.translate(SID, -1, IOVA + 0x1000, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertRecord(rig.onlyEvent(), EventType.F_TRANSLATION, SID, false, 0, IOVA + 0x1000, true, false, false,
                false, EventRecord.CLASS_IN, 0, 0);
    }

    @Test
    void stage2PermissionFaultOfANestedWriteIsAStage2Record() {
        Nested n = new Nested(rig, true);
        long slot = SmmuTestRig.leafSlot(n.guest.s2, n.dataIpa);
        rig.w64(slot, rig.r64(slot) & ~S2AP_WRITE);

        assertFault(rig.translate(SID, -1, IOVA + 0x10, Access.WRITE), FaultType.PERMISSION,
                EventType.F_PERMISSION);
        assertRecord(rig.onlyEvent(), EventType.F_PERMISSION, SID, false, 0, IOVA + 0x10, false, false, false, true,
                EventRecord.CLASS_IN, n.dataIpa, 0);
    }

    @Test
    void stage2PermissionFaultOfANestedWriteIsAStage2RecordAlsoWhenTheReadIsCached() {
        Nested n = new Nested(rig, true);
        long slot = SmmuTestRig.leafSlot(n.guest.s2, n.dataIpa);
        rig.w64(slot, rig.r64(slot) & ~S2AP_WRITE);
        assertThat(rig.pa(SID, -1, IOVA + 0x10, 0)).isEqualTo(n.guest.paOf(n.dataIpa) + 0x10);

        assertFault(rig.translate(SID, -1, IOVA + 0x10, Access.WRITE), FaultType.PERMISSION,
                EventType.F_PERMISSION);
        assertRecord(rig.onlyEvent(), EventType.F_PERMISSION, SID, false, 0, IOVA + 0x10, false, false, false, true,
                EventRecord.CLASS_IN, n.dataIpa, 0);
    }

    @Test
    void stage1PermissionFaultOfANestedWriteIsAStage1RecordAlsoWhenTheReadIsCached() {
        Nested n = new Nested(rig, true);
        long slot = SmmuTestRig.leafSlot(n.s1, IOVA); // the slot's IPA: write it through the guest's view
        n.guest.w64(slot, n.guest.r64(slot) | (1L << 7)); // AP[2]: read-only at stage 1
        assertThat(rig.translate(SID, -1, IOVA, 0).isOk()).isTrue();

        assertFault(rig.translate(SID, -1, IOVA + 0x10, Access.WRITE), FaultType.PERMISSION,
                EventType.F_PERMISSION);
        assertRecord(rig.onlyEvent(), EventType.F_PERMISSION, SID, false, 0, IOVA + 0x10, false, false, false,
                false, EventRecord.CLASS_IN, 0, 0);
    }

    @Test
    void s2rClearSilencesStage2FaultsOfANestedStream() {
        Nested n = new Nested(rig, false);
        n.guest.unmapPage(n.dataIpa);

        assertFault(rig.translate(SID, -1, IOVA, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertFault(rig.translate(SID, -1, IOVA + 0x1000, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertThat(rig.events()).as("only the stage-1 fault (CD.R = 1)").extracting(EventRecord::s2)
                .containsExactly(false);
    }
}
