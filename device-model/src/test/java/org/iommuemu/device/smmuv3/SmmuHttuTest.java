package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.smmuv3.SmmuStreamTableTest.assertFault;

import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.junit.jupiter.api.Test;

/**
 * Hardware translation-table updates (IDR0.HTTU; CD.HA/HD, STE.S2HA/S2HD, AFFD/S2AFFD): the access flag and the
 * dirty state written back into the descriptors in guest memory, read back here with the rig. Descriptor bits
 * (Arm VMSAv8-64): AF bit 10; stage 1 AP[2] bit 7 (1 = read-only, the "clean" state of a DBM page); stage 2
 * S2AP[1] bit 7 (1 = writable); DBM bit 51.
 */
class SmmuHttuTest {
    private static final long AF = 1L << 10;
    private static final long AP2 = 1L << 7;
    private static final long S2AP_W = 1L << 7;
    private static final long DBM = 1L << 51;
    private static final long IOVA = 0x5_6780_0000L;
    private static final int SID = 12;

    private final SmmuTestRig rig;
    private long pa;

    SmmuHttuTest() {
        rig = SmmuTestRig.started();
    }

    /** A stage-1 stream mapping IOVA read-write, its CD as given; returns the leaf descriptor's address. */
    private long stage1(SmmuTestRig r, boolean ha, boolean hd, boolean affd) {
        PageTable pt = r.stage1(12, 48);
        pa = r.page();
        r.map(pt, IOVA, pa, 4096, Prot.READ | Prot.WRITE);
        long cds = r.cdTable(0);
        Cd cd = SmmuTestRig.cdFor(pt, 5).toBuilder().ha(ha).hd(hd).affd(affd).build();
        r.writeCd(cds, 0, cd);
        r.installSte(SID, Ste.stage1(cds, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0));
        return SmmuTestRig.leafSlot(pt, IOVA);
    }

    private long stage1(boolean ha, boolean hd) {
        return stage1(rig, ha, hd, false);
    }

    /** A stage-2 stream mapping IOVA (an IPA) read-write, its STE with the given HTTU controls. */
    private long stage2(SmmuTestRig r, boolean ha, boolean hd, boolean affd) {
        PageTable pt = r.stage2(12, 40);
        pa = r.page();
        r.map(pt, IOVA, pa, 4096, Prot.READ | Prot.WRITE);
        r.installSte(SID, SmmuTestRig.s2Ste(4, pt).toBuilder().s2Ha(ha).s2Hd(hd).s2Affd(affd).build());
        return SmmuTestRig.leafSlot(pt, IOVA);
    }

    private void clear(long slot, long bits) {
        rig.w64(slot, rig.r64(slot) & ~bits);
    }

    private void set(long slot, long bits) {
        rig.w64(slot, rig.r64(slot) | bits);
    }

    // ------------------------------------------------------------------ stage 1: access flag

    @Test
    void haSetsTheAccessFlagInsteadOfFaulting() {
        long slot = stage1(true, false);
        clear(slot, AF);
        long before = rig.r64(slot);

        assertThat(rig.pa(SID, -1, IOVA + 0x10, 0)).isEqualTo(pa + 0x10);

        assertThat(rig.r64(slot)).as("AF set, nothing else changed").isEqualTo(before | AF);
        rig.assertNoEvents();
    }

    @Test
    void accessFlagIsSetForWritesToo() {
        long slot = stage1(true, false);
        clear(slot, AF);

        assertThat(rig.pa(SID, -1, IOVA, Access.WRITE)).isEqualTo(pa);

        assertThat(rig.r64(slot) & AF).isEqualTo(AF);
    }

    @Test
    void affdTreatsAfZeroAsAccessedWithoutWriting() {
        long slot = stage1(rig, false, false, true);
        clear(slot, AF);
        long before = rig.r64(slot);

        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(pa);

        assertThat(rig.r64(slot)).as("descriptor untouched").isEqualTo(before);
        rig.assertNoEvents();
    }

    @Test
    void faultingAccessSetsNoAccessFlag() {
        long slot = stage1(true, false);
        clear(slot, AF);
        set(slot, AP2); // read-only, no DBM
        long before = rig.r64(slot);

        assertFault(rig.translate(SID, -1, IOVA, Access.WRITE), FaultType.PERMISSION, EventType.F_PERMISSION);

        assertThat(rig.r64(slot)).as("no update for an access that faults").isEqualTo(before);
    }

    // ------------------------------------------------------------------ stage 1: dirty state

    @Test
    void writeToAWritableCleanPageMarksItDirtyAndAReadDoesNot() {
        long slot = stage1(true, true);
        set(slot, DBM | AP2); // writable-clean
        long clean = rig.r64(slot);

        assertThat(rig.pa(SID, -1, IOVA + 8, 0)).isEqualTo(pa + 8);
        assertThat(rig.r64(slot)).as("a read leaves it clean").isEqualTo(clean);

        assertThat(rig.pa(SID, -1, IOVA + 8, Access.WRITE)).isEqualTo(pa + 8);
        assertThat(rig.r64(slot)).as("AP[2] cleared: dirty; DBM kept").isEqualTo(clean & ~AP2);
        rig.assertNoEvents();
    }

    @Test
    void firstWriteMarksDirtyWithoutAnEarlierRead() {
        long slot = stage1(true, true);
        set(slot, DBM | AP2);
        clear(slot, AF);
        long before = rig.r64(slot);

        assertThat(rig.pa(SID, -1, IOVA, Access.WRITE)).isEqualTo(pa);

        assertThat(rig.r64(slot)).as("AF set and AP[2] cleared together").isEqualTo((before | AF) & ~AP2);
    }

    @Test
    void writesAfterTheDirtyUpdateHitTheCacheAndDoNotTouchTheDescriptor() {
        long slot = stage1(true, true);
        set(slot, DBM | AP2);
        rig.pa(SID, -1, IOVA, 0);
        rig.pa(SID, -1, IOVA, Access.WRITE);
        long walks = rig.stats().walks();
        // software cleans the page again without invalidating: the SMMU keeps using its dirty (writable) entry
        set(slot, AP2);
        long cleanedBySoftware = rig.r64(slot);

        for (int i = 0; i < 5; i++) {
            assertThat(rig.pa(SID, -1, IOVA + 64L * i, Access.WRITE)).isEqualTo(pa + 64L * i);
        }

        assertThat(rig.r64(slot)).as("no further descriptor writes").isEqualTo(cleanedBySoftware);
        assertThat(rig.stats().walks()).as("no further walks").isEqualTo(walks);
    }

    @Test
    void afterCleaningAndTlbiTheNextWriteMarksDirtyAgain() {
        long slot = stage1(true, true);
        set(slot, DBM | AP2);
        rig.pa(SID, -1, IOVA, Access.WRITE);
        set(slot, AP2);
        rig.issue(Command.tlbiNhVa(0, 5, IOVA, true));

        rig.pa(SID, -1, IOVA, Access.WRITE);

        assertThat(rig.r64(slot) & AP2).as("dirty again").isZero();
    }

    @Test
    void hdWithoutHaLeavesAWritableCleanPageReadOnly() {
        long slot = stage1(false, true); // {HD, HA} = 0b10: behaves as HTTU disabled
        set(slot, DBM | AP2);
        long before = rig.r64(slot);

        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(pa);
        assertFault(rig.translate(SID, -1, IOVA, Access.WRITE), FaultType.PERMISSION, EventType.F_PERMISSION);

        assertThat(rig.r64(slot)).isEqualTo(before);
    }

    @Test
    void withoutHdAWritableCleanPageIsReadOnly() {
        long slot = stage1(true, false);
        set(slot, DBM | AP2);

        assertFault(rig.translate(SID, -1, IOVA, Access.WRITE), FaultType.PERMISSION, EventType.F_PERMISSION);
        assertThat(rig.r64(slot) & AP2).isEqualTo(AP2);
    }

    // ------------------------------------------------------------------ stage 2

    @Test
    void s2haSetsTheStage2AccessFlag() {
        long slot = stage2(rig, true, false, false);
        clear(slot, AF);
        long before = rig.r64(slot);

        assertThat(rig.pa(SID, -1, IOVA + 0x20, 0)).isEqualTo(pa + 0x20);

        assertThat(rig.r64(slot)).isEqualTo(before | AF);
        rig.assertNoEvents();
    }

    @Test
    void s2affdTreatsAfZeroAsAccessedWithoutWriting() {
        long slot = stage2(rig, false, false, true);
        clear(slot, AF);
        long before = rig.r64(slot);

        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(pa);

        assertThat(rig.r64(slot)).isEqualTo(before);
    }

    @Test
    void withoutS2haOrS2affdAfZeroIsAStage2AccessFault() {
        long slot = stage2(rig, false, false, false);
        clear(slot, AF);

        assertFault(rig.translate(SID, -1, IOVA, 0), FaultType.ACCESS_FLAG, EventType.F_ACCESS);
        assertThat(rig.onlyEvent().s2()).isTrue();
    }

    @Test
    void s2hdWriteToAWritableCleanPageSetsS2apWrite() {
        long slot = stage2(rig, true, true, false);
        clear(slot, S2AP_W);
        set(slot, DBM); // writable-clean at stage 2: DBM with S2AP[1] = 0
        long clean = rig.r64(slot);

        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(pa);
        assertThat(rig.r64(slot)).as("a read leaves it clean").isEqualTo(clean);

        assertThat(rig.pa(SID, -1, IOVA, Access.WRITE)).isEqualTo(pa);
        assertThat(rig.r64(slot)).as("S2AP[1] set: dirty").isEqualTo(clean | S2AP_W);
    }

    // ------------------------------------------------------------------ HTTU not implemented

    @Test
    void advertisedHttuFollowsTheConfiguration() {
        assertThat((rig.read32(SmmuV3Registers.IDR0) >>> 6) & 3).as("IDR0.HTTU: access and dirty").isEqualTo(2);
        SmmuTestRig aOnly = SmmuTestRig.started(SmmuTestRig.smallQueues().httuDirty(false).build());
        assertThat((aOnly.read32(SmmuV3Registers.IDR0) >>> 6) & 3).isEqualTo(1);
        SmmuTestRig none = SmmuTestRig.started(SmmuTestRig.smallQueues().httuDirty(false).httuAccess(false).build());
        assertThat((none.read32(SmmuV3Registers.IDR0) >>> 6) & 3).isZero();
    }

    @Test
    void cdSettingHaOnAnSmmuWithoutHttuIsBadCd() {
        SmmuTestRig none = SmmuTestRig.started(SmmuTestRig.smallQueues().httuDirty(false).httuAccess(false).build());
        long slot = stage1(none, true, false, false);
        none.w64(slot, none.r64(slot) & ~AF);
        long before = none.r64(slot);

        // SMMUv3 CD.HA: "It is ILLEGAL to set HA if SMMU_IDR0.HTTU == 0b00"
        assertFault(none.translate(SID, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_CD);
        assertThat(none.r64(slot)).isEqualTo(before);
    }

    @Test
    void cdSettingHdOnAnSmmuWithAccessFlagUpdatesOnlyIsBadCd() {
        SmmuTestRig aOnly = SmmuTestRig.started(SmmuTestRig.smallQueues().httuDirty(false).build());
        stage1(aOnly, true, true, false);

        // "It is ILLEGAL to set HD if SMMU_IDR0.HTTU == 0b00 or 0b01"
        assertFault(aOnly.translate(SID, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_CD);
    }

    @Test
    void cdSettingOnlyHaOnAnSmmuWithAccessFlagUpdatesWorks() {
        SmmuTestRig aOnly = SmmuTestRig.started(SmmuTestRig.smallQueues().httuDirty(false).build());
        long slot = stage1(aOnly, true, false, false);
        aOnly.w64(slot, aOnly.r64(slot) & ~AF);

        assertThat(aOnly.pa(SID, -1, IOVA, 0)).isEqualTo(pa);
        assertThat(aOnly.r64(slot) & AF).isEqualTo(AF);
    }

    @Test
    void steSettingS2haOnAnSmmuWithoutHttuIsBadSte() {
        SmmuTestRig none = SmmuTestRig.started(SmmuTestRig.smallQueues().httuDirty(false).httuAccess(false).build());
        stage2(none, true, false, false);

        // STE.S2HA: "It is ILLEGAL to set STE.S2HA if SMMU_IDR0.HTTU == 0b00"
        assertFault(none.translate(SID, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
    }

    @Test
    void steSettingS2hdOnAnSmmuWithAccessFlagUpdatesOnlyIsBadSte() {
        SmmuTestRig aOnly = SmmuTestRig.started(SmmuTestRig.smallQueues().httuDirty(false).build());
        stage2(aOnly, true, true, false);

        assertFault(aOnly.translate(SID, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
    }
}
