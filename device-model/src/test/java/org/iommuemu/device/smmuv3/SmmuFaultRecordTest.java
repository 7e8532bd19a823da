package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.smmuv3.SmmuStreamTableTest.assertFault;

import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.junit.jupiter.api.Test;

/**
 * Every translation fault, with its event record checked field by field (spec §8), and the recording controls
 * CD.R (stage 1) and STE.S2R (stage 2).
 */
class SmmuFaultRecordTest {
    private static final long IOVA = 0x1234_5000L;
    private static final int SID = 21;
    private static final long AF = 1L << 10;
    private static final long AP2 = 1L << 7;

    private final SmmuTestRig rig = SmmuTestRig.started();

    /** Every field of a translation-class or walk-abort record. */
    static void assertRecord(EventRecord e, int type, int sid, boolean ssv, int ssid, long inputAddr, boolean read,
            boolean privileged, boolean instruction, boolean s2, int clazz, long ipa, long fetchAddr) {
        assertThat(e.type()).as("EventType").isEqualTo(type);
        assertThat(e.streamId()).as("StreamID").isEqualTo(sid);
        assertThat(e.ssv()).as("SSV").isEqualTo(ssv);
        assertThat(e.substreamId()).as("SubstreamID").isEqualTo(ssid);
        assertThat(e.inputAddr()).as("InputAddr").isEqualTo(inputAddr);
        assertThat(e.rnw()).as("RnW").isEqualTo(read);
        assertThat(e.pnu()).as("PnU").isEqualTo(privileged);
        assertThat(e.ind()).as("InD").isEqualTo(instruction);
        assertThat(e.s2()).as("S2").isEqualTo(s2);
        assertThat(e.clazz()).as("CLASS").isEqualTo(clazz);
        assertThat(e.ipa()).as("IPA").isEqualTo(ipa);
        assertThat(e.fetchAddr()).as("FetchAddr").isEqualTo(fetchAddr);
        assertThat(e.stall()).as("Stall").isFalse();
        assertThat(e.stag()).as("STAG").isZero();
    }

    /** A stage-1 stream with substreams (S1CDMax 2) whose SSID 1 uses {@code pt}; CD.R as given. */
    private void stage1WithSubstream(PageTable pt, boolean record) {
        long cds = rig.cdTable(2);
        rig.writeCd(cds, 1, SmmuTestRig.cdFor(pt, 33).toBuilder().r(record).build());
        rig.installSte(SID, Ste.stage1(cds, Ste.S1FMT_LINEAR, 2, Ste.S1DSS_SSID0));
    }

    // ------------------------------------------------------------------ stage 1

    @Test
    void stage1TranslationFaultRecordsTheAccess() {
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, IOVA, rig.page(), 4096, Prot.READ | Prot.WRITE);
        stage1WithSubstream(pt, true);

        long va = IOVA + 0x1_0000 + 0x18;
        Translation t = rig.translate(SID, 1, va, Access.WRITE | Access.PRIVILEGED | Access.INSTRUCTION);

        assertFault(t, FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertRecord(rig.onlyEvent(), EventType.F_TRANSLATION, SID, true, 1, va, false, true, true, false,
                EventRecord.CLASS_IN, 0, 0);
    }

    @Test
    void stage1TranslationFaultOfAReadWithoutSubstream() {
        PageTable pt = rig.stage1(12, 48);
        long cds = rig.cdTable(0);
        rig.writeCd(cds, 0, SmmuTestRig.cdFor(pt, 1));
        rig.installSte(SID, Ste.stage1(cds, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0));

        assertFault(rig.translate(SID, -1, IOVA + 4, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertRecord(rig.onlyEvent(), EventType.F_TRANSLATION, SID, false, 0, IOVA + 4, true, false, false, false,
                EventRecord.CLASS_IN, 0, 0);
    }

    @Test
    void stage1AddressSizeFaultForAnOutputBeyondIps() {
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, IOVA, 1L << 40, 4096, Prot.READ | Prot.WRITE); // a 41-bit output
        long cds = rig.cdTable(2);
        rig.writeCd(cds, 1, SmmuTestRig.cdFor(pt, 33).toBuilder().ips(Encodings.oasEncoding(40)).build());
        rig.installSte(SID, Ste.stage1(cds, Ste.S1FMT_LINEAR, 2, Ste.S1DSS_SSID0));

        assertFault(rig.translate(SID, 1, IOVA + 8, 0), FaultType.ADDRESS_SIZE, EventType.F_ADDR_SIZE);
        assertRecord(rig.onlyEvent(), EventType.F_ADDR_SIZE, SID, true, 1, IOVA + 8, true, false, false, false,
                EventRecord.CLASS_IN, 0, 0);
    }

    @Test
    void stage1AccessFlagFaultWithoutHardwareUpdate() {
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, IOVA, rig.page(), 4096, Prot.READ | Prot.WRITE);
        long slot = SmmuTestRig.leafSlot(pt, IOVA);
        rig.w64(slot, rig.r64(slot) & ~AF);
        stage1WithSubstream(pt, true); // Linux's CD: HA = 0, AFFD = 0

        assertFault(rig.translate(SID, 1, IOVA, Access.WRITE), FaultType.ACCESS_FLAG, EventType.F_ACCESS);
        assertRecord(rig.onlyEvent(), EventType.F_ACCESS, SID, true, 1, IOVA, false, false, false, false,
                EventRecord.CLASS_IN, 0, 0);
    }

    @Test
    void stage1PermissionFaultForAWriteToAReadOnlyPage() {
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, IOVA, rig.page(), 4096, Prot.READ);
        stage1WithSubstream(pt, true);

        assertThat(rig.translate(SID, 1, IOVA, 0).isOk()).isTrue();
        assertFault(rig.translate(SID, 1, IOVA + 0x20, Access.WRITE), FaultType.PERMISSION,
                EventType.F_PERMISSION);
        assertRecord(rig.onlyEvent(), EventType.F_PERMISSION, SID, true, 1, IOVA + 0x20, false, false, false,
                false, EventRecord.CLASS_IN, 0, 0);
    }

    @Test
    void stage1PermissionFaultForUnprivilegedAccessToAPrivilegedPage() {
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, IOVA, rig.page(), 4096, Prot.READ | Prot.WRITE | Prot.PRIV);
        stage1WithSubstream(pt, true);

        assertThat(rig.translate(SID, 1, IOVA, Access.PRIVILEGED | Access.WRITE).isOk()).isTrue();
        assertFault(rig.translate(SID, 1, IOVA, 0), FaultType.PERMISSION, EventType.F_PERMISSION);
        assertRecord(rig.onlyEvent(), EventType.F_PERMISSION, SID, true, 1, IOVA, true, false, false, false,
                EventRecord.CLASS_IN, 0, 0);
    }

    @Test
    void stage1InstructionFetchFromANoExecPage() {
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, IOVA, rig.page(), 4096, Prot.READ | Prot.NOEXEC);
        stage1WithSubstream(pt, true);

        assertFault(rig.translate(SID, 1, IOVA, Access.INSTRUCTION), FaultType.PERMISSION, EventType.F_PERMISSION);
        assertRecord(rig.onlyEvent(), EventType.F_PERMISSION, SID, true, 1, IOVA, true, false, true, false,
                EventRecord.CLASS_IN, 0, 0);
    }

    @Test
    void stage1WalkExternalAbortRecordsTheDescriptorAddress() {
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, IOVA, rig.page(), 4096, Prot.READ | Prot.WRITE);
        long l2 = SmmuTestRig.tableSlot(rig.ram, pt, IOVA, 2);
        rig.w64(l2, SmmuTestRig.NOT_RAM | 3); // the level-3 table is not RAM
        stage1WithSubstream(pt, true);

        assertFault(rig.translate(SID, 1, IOVA + 0x30, 0), FaultType.EXTERNAL_ABORT, EventType.F_WALK_EABT);
        long index = (IOVA >>> 12) & 511;
        assertRecord(rig.onlyEvent(), EventType.F_WALK_EABT, SID, true, 1, IOVA + 0x30, true, false, false, false,
                EventRecord.CLASS_TT, 0, SmmuTestRig.NOT_RAM + index * 8);
    }

    @Test
    void cdRecordClearFaultsWithoutARecord() {
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, IOVA, rig.page(), 4096, Prot.READ);
        long slot = SmmuTestRig.leafSlot(pt, IOVA);
        stage1WithSubstream(pt, false);

        assertFault(rig.translate(SID, 1, IOVA + 0x1000, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertFault(rig.translate(SID, 1, IOVA, Access.WRITE), FaultType.PERMISSION, EventType.F_PERMISSION);
        rig.assertNoEvents();
        assertThat(rig.smmu.stats().faults()).isEqualTo(2);
        assertThat(rig.smmu.stats().eventsLost()).as("not lost: never recorded").isZero();
        assertThat(slot).isNotZero();
    }

    @Test
    void cdRecordClearStillRecordsWalkExternalAborts() {
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, IOVA, rig.page(), 4096, Prot.READ | Prot.WRITE);
        rig.w64(SmmuTestRig.tableSlot(rig.ram, pt, IOVA, 2), SmmuTestRig.NOT_RAM | 3);
        stage1WithSubstream(pt, false);

        assertFault(rig.translate(SID, 1, IOVA, 0), FaultType.EXTERNAL_ABORT, EventType.F_WALK_EABT);
        assertThat(rig.onlyEvent().type()).isEqualTo(EventType.F_WALK_EABT);
    }

    // ------------------------------------------------------------------ stage 2

    private PageTable stage2(boolean record, int prot) {
        PageTable pt = rig.stage2(12, 40);
        rig.map(pt, IOVA, rig.page(), 4096, prot);
        rig.installSte(SID, SmmuTestRig.s2Ste(7, pt).toBuilder().s2R(record).build());
        return pt;
    }

    @Test
    void stage2TranslationFaultRecordsTheIpaPage() {
        stage2(true, Prot.READ | Prot.WRITE);
        long ipa = IOVA + 0x3000 + 0x9A8;

        assertFault(rig.translate(SID, -1, ipa, Access.WRITE), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertRecord(rig.onlyEvent(), EventType.F_TRANSLATION, SID, false, 0, ipa, false, false, false, true,
                EventRecord.CLASS_IN, ipa & ~0xFFFL, 0);
    }

    @Test
    void stage2PermissionFaultRecordsTheIpaPage() {
        stage2(true, Prot.READ);

        assertThat(rig.translate(SID, -1, IOVA + 0x10, 0).isOk()).isTrue();
        assertFault(rig.translate(SID, -1, IOVA + 0x10, Access.WRITE), FaultType.PERMISSION,
                EventType.F_PERMISSION);
        assertRecord(rig.onlyEvent(), EventType.F_PERMISSION, SID, false, 0, IOVA + 0x10, false, false, false, true,
                EventRecord.CLASS_IN, IOVA, 0);
    }

    @Test
    void stage2PermissionFaultWithoutACachedTranslation() {
        stage2(true, Prot.READ);

        assertFault(rig.translate(SID, -1, IOVA + 0x10, Access.WRITE), FaultType.PERMISSION,
                EventType.F_PERMISSION);
        assertRecord(rig.onlyEvent(), EventType.F_PERMISSION, SID, false, 0, IOVA + 0x10, false, false, false, true,
                EventRecord.CLASS_IN, IOVA, 0);
    }

    @Test
    void stage2PermissionFaultInsideACachedBlockRecordsThePageOfTheIpa() {
        PageTable pt = rig.stage2(12, 40);
        long block = 0x4000_0000L;
        rig.map(pt, block, 0x1_0000_0000L, 2L << 20, Prot.READ); // one 2 MB block
        rig.installSte(SID, SmmuTestRig.s2Ste(7, pt));
        long ipa = block + 0x12_3456;

        assertThat(rig.pa(SID, -1, ipa, 0)).isEqualTo(0x1_0000_0000L + 0x12_3456);
        assertFault(rig.translate(SID, -1, ipa, Access.WRITE), FaultType.PERMISSION, EventType.F_PERMISSION);
        assertRecord(rig.onlyEvent(), EventType.F_PERMISSION, SID, false, 0, ipa, false, false, false, true,
                EventRecord.CLASS_IN, block + 0x12_3000, 0);
    }

    @Test
    void stage2AccessFlagFault() {
        PageTable pt = stage2(true, Prot.READ | Prot.WRITE);
        long slot = SmmuTestRig.leafSlot(pt, IOVA);
        rig.w64(slot, rig.r64(slot) & ~AF);

        assertFault(rig.translate(SID, -1, IOVA + 0x10, 0), FaultType.ACCESS_FLAG, EventType.F_ACCESS);
        assertRecord(rig.onlyEvent(), EventType.F_ACCESS, SID, false, 0, IOVA + 0x10, true, false, false, true,
                EventRecord.CLASS_IN, IOVA, 0);
    }

    @Test
    void stage2AddressSizeFaultForAnOutputBeyondS2ps() {
        PageTable pt = rig.stage2(12, 40);
        rig.map(pt, IOVA, 1L << 40, 4096, Prot.READ | Prot.WRITE);
        rig.installSte(SID, SmmuTestRig.s2Ste(7, pt).toBuilder().s2Ps(Encodings.oasEncoding(40)).build());

        assertFault(rig.translate(SID, -1, IOVA + 0x10, 0), FaultType.ADDRESS_SIZE, EventType.F_ADDR_SIZE);
        assertRecord(rig.onlyEvent(), EventType.F_ADDR_SIZE, SID, false, 0, IOVA + 0x10, true, false, false, true,
                EventRecord.CLASS_IN, IOVA, 0);
    }

    @Test
    void stage2WalkExternalAbort() {
        PageTable pt = stage2(true, Prot.READ | Prot.WRITE);
        // the level-2 descriptor (Arm level 2) of IOVA points outside RAM: the level-3 read aborts
        long l3 = SmmuTestRig.leafSlot(pt, IOVA);
        long l2 = findParent(pt, l3);
        rig.w64(l2, SmmuTestRig.NOT_RAM | 3);

        assertFault(rig.translate(SID, -1, IOVA + 0x10, 0), FaultType.EXTERNAL_ABORT, EventType.F_WALK_EABT);
        long index = (IOVA >>> 12) & 511;
        EventRecord e = rig.onlyEvent();
        assertThat(e.type()).isEqualTo(EventType.F_WALK_EABT);
        assertThat(e.s2()).as("S2").isTrue();
        assertThat(e.clazz()).as("CLASS").isEqualTo(EventRecord.CLASS_IN);
        assertThat(e.inputAddr()).isEqualTo(IOVA + 0x10);
        assertThat(e.rnw()).isTrue();
        assertThat(e.fetchAddr()).isEqualTo(SmmuTestRig.NOT_RAM + index * 8);
    }

    /** The slot of the table descriptor pointing at the table that holds {@code leafSlot} (brute force). */
    private long findParent(PageTable pt, long leafSlot) {
        long table = leafSlot & ~0xFFFL;
        long root = pt.root();
        for (long slot = root; slot < root + 8192; slot += 8) {
            long d = rig.r64(slot);
            if ((d & 3) == 3) {
                long next = d & 0xFFFF_FFFF_F000L;
                for (long s = next; s < next + 4096; s += 8) {
                    long d2 = rig.r64(s);
                    if ((d2 & 3) == 3 && (d2 & 0xFFFF_FFFF_F000L) == table) {
                        return s;
                    }
                }
            }
        }
        throw new AssertionError("no parent for " + Long.toHexString(leafSlot));
    }

    @Test
    void s2rClearFaultsWithoutARecord() {
        stage2(false, Prot.READ);

        assertFault(rig.translate(SID, -1, IOVA + 0x5000, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertFault(rig.translate(SID, -1, IOVA, Access.WRITE), FaultType.PERMISSION, EventType.F_PERMISSION);
        assertThat(rig.translate(SID, -1, IOVA, 0).isOk()).isTrue();
        assertFault(rig.translate(SID, -1, IOVA, Access.WRITE), FaultType.PERMISSION, EventType.F_PERMISSION);
        rig.assertNoEvents();
    }

    @Test
    void stage2InputAboveIasIsAStage1AddressSizeFault() {
        SmmuTestRig small = SmmuTestRig.started(SmmuTestRig.smallQueues().oasBits(40).build());
        PageTable pt = small.stage2(12, 40);
        small.installSte(SID, SmmuTestRig.s2Ste(7, pt).toBuilder().s2Ps(Encodings.oasEncoding(40)).build());

        assertFault(small.translate(SID, -1, 1L << 41, 0), FaultType.ADDRESS_SIZE, EventType.F_ADDR_SIZE);
        assertRecord(small.onlyEvent(), EventType.F_ADDR_SIZE, SID, false, 0, 1L << 41, true, false, false, false,
                EventRecord.CLASS_IN, 0, 0);
    }
}
