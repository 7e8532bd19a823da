package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.L1StreamDescriptor;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.junit.jupiter.api.Test;

/** Finding a stream's STE: linear and 2-level stream tables and every way the lookup can fail (spec §5, §8). */
class SmmuStreamTableTest {
    private static final long IOVA = 0x1234_5000L;

    /** Asserts the configuration event's fields: type, StreamID, SSV/SSID, and nothing else set. */
    static void assertConfigEvent(EventRecord e, int type, int sid, boolean ssv, int ssid) {
        assertThat(e.type()).as("EventType").isEqualTo(type);
        assertThat(e.streamId()).as("StreamID").isEqualTo(sid);
        assertThat(e.ssv()).as("SSV").isEqualTo(ssv);
        assertThat(e.substreamId()).as("SubstreamID").isEqualTo(ssid);
        assertThat(e.inputAddr()).as("InputAddr").isZero();
        assertThat(e.rnw()).as("RnW").isFalse();
        assertThat(e.s2()).as("S2").isFalse();
        assertThat(e.stall()).as("Stall").isFalse();
    }

    static void assertFault(Translation t, FaultType type, int code) {
        assertThat(t.outcome()).as("%s", t).isEqualTo(Translation.Outcome.FAULT);
        assertThat(t.faultType()).as("fault type of %s", t).isEqualTo(type);
        assertThat(t.code()).as("code of %s", t).isEqualTo(code);
    }

    @Test
    void linearTableGivesEachStreamItsOwnSte() {
        SmmuTestRig rig = SmmuTestRig.started();
        long pa3 = rig.page();
        long pa4 = rig.page();
        rig.stage1Stream(3, 1, IOVA, pa3);
        rig.stage1Stream(4, 2, IOVA, pa4);

        assertThat(rig.pa(3, -1, IOVA + 0x18, 0)).isEqualTo(pa3 + 0x18);
        assertThat(rig.pa(4, -1, IOVA + 0x18, Access.WRITE)).isEqualTo(pa4 + 0x18);
        assertThat(rig.steAddress(4)).isEqualTo(rig.strtab() + 4 * 64);
        rig.assertNoEvents();
    }

    @Test
    void twoLevelTableWithSplit8FindsStesThroughL1DescriptorsOfSpan9() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(8).eventQueue(6).twoLevelStreamTable(16, 8).enable();
        int sidA = 0x0123;
        int sidB = 0x3456;
        long paA = rig.page();
        long paB = rig.page();
        rig.stage1Stream(sidA, 1, IOVA, paA);
        rig.stage1Stream(sidB, 2, IOVA, paB);

        long l1 = rig.r64(rig.l1Address(sidB));
        assertThat(rig.l1Address(sidB)).isEqualTo(rig.strtab() + 0x34 * 8);
        assertThat(L1StreamDescriptor.span(l1)).as("SPAN = SPLIT + 1").isEqualTo(9);
        assertThat(rig.steAddress(sidB)).isEqualTo(L1StreamDescriptor.l2Ptr(l1) + 0x56 * 64);
        assertThat(rig.pa(sidA, -1, IOVA + 8, 0)).isEqualTo(paA + 8);
        assertThat(rig.pa(sidB, -1, IOVA + 8, 0)).isEqualTo(paB + 8);
        rig.assertNoEvents();
    }

    @Test
    void invalidL1DescriptorIsBadSte() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(8).eventQueue(6).twoLevelStreamTable(16, 8).enable();
        rig.stage1Stream(0x0101, 1, IOVA, rig.page()); // L1 descriptor 1 valid; descriptor 2 stays SPAN 0

        Translation t = rig.translate(0x0205, 7, IOVA, 0);

        assertFault(t, FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
        assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_STE, 0x0205, true, 7);
    }

    @Test
    void streamBeyondTheSpanOfItsL2TableIsBadSte() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(8).eventQueue(6).twoLevelStreamTable(16, 8).enable();
        rig.installSte(0x0301, Ste.bypass());
        long l2 = L1StreamDescriptor.l2Ptr(rig.r64(rig.l1Address(0x0301)));
        // SPAN 2: the L2 table holds 2^(2-1) = 2 STEs, ids 0x300 and 0x301
        rig.w64(rig.l1Address(0x0301), new L1StreamDescriptor(2, l2).encode());
        rig.writeSte(0x0302, Ste.bypass()); // present in memory, but beyond SPAN

        assertThat(rig.pa(0x0301, -1, IOVA, 0)).as("within SPAN").isEqualTo(IOVA);
        assertFault(rig.translate(0x0302, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
        assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_STE, 0x0302, false, 0);
    }

    @Test
    void streamIdBeyondLog2SizeIsBadStreamId() {
        SmmuTestRig rig = SmmuTestRig.started(); // LOG2SIZE 8
        rig.installSte(255, Ste.bypass());

        assertThat(rig.pa(255, -1, IOVA, 0)).isEqualTo(IOVA);
        Translation t = rig.translate(256, 3, IOVA, Access.WRITE);

        assertFault(t, FaultType.BAD_CONFIGURATION, EventType.C_BAD_STREAMID);
        assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_STREAMID, 256, true, 3);
    }

    @Test
    void streamIdBeyondSidSizeIsBadStreamIdEvenInsideLog2Size() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().sidBits(6).build());
        rig.commandQueue(8).eventQueue(6).linearStreamTable(8).enable();
        rig.writeSte(63, Ste.bypass());
        rig.writeSte(64, Ste.bypass());

        assertThat(rig.pa(63, -1, IOVA, 0)).isEqualTo(IOVA);
        assertFault(rig.translate(64, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STREAMID);
        assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_STREAMID, 64, false, 0);
    }

    @Test
    void steFetchOutsideRamIsSteFetchWithTheSteAddress() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(8).eventQueue(6).linearStreamTableAt(SmmuTestRig.NOT_RAM, 8).enable();

        Translation t = rig.translate(5, -1, IOVA, 0);

        assertFault(t, FaultType.EXTERNAL_ABORT, EventType.F_STE_FETCH);
        EventRecord e = rig.onlyEvent();
        assertThat(e.type()).isEqualTo(EventType.F_STE_FETCH);
        assertThat(e.streamId()).isEqualTo(5);
        assertThat(e.ssv()).isFalse();
        assertThat(e.fetchAddr()).as("FetchAddr").isEqualTo(SmmuTestRig.NOT_RAM + 5 * 64);
    }

    @Test
    void l2TableOutsideRamIsSteFetchWithTheSteAddress() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(8).eventQueue(6).twoLevelStreamTable(16, 8).enable();
        rig.w64(rig.l1Address(0x0407), L1StreamDescriptor.forSplit(SmmuTestRig.NOT_RAM, 8).encode());

        Translation t = rig.translate(0x0407, 2, IOVA, 0);

        assertFault(t, FaultType.EXTERNAL_ABORT, EventType.F_STE_FETCH);
        EventRecord e = rig.onlyEvent();
        assertThat(e.type()).isEqualTo(EventType.F_STE_FETCH);
        assertThat(e.streamId()).isEqualTo(0x0407);
        assertThat(e.ssv()).isTrue();
        assertThat(e.substreamId()).isEqualTo(2);
        assertThat(e.fetchAddr()).isEqualTo(SmmuTestRig.NOT_RAM + 7 * 64);
    }

    @Test
    void l1TableOutsideRamIsSteFetchWithTheL1DescriptorAddress() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(8).eventQueue(6).enable();
        rig.write64(SmmuV3Registers.STRTAB_BASE, SmmuTestRig.NOT_RAM);
        rig.write32(SmmuV3Registers.STRTAB_BASE_CFG, 16 | 8 << 6 | 1 << 16);

        assertFault(rig.translate(0x0203, -1, IOVA, 0), FaultType.EXTERNAL_ABORT, EventType.F_STE_FETCH);
        assertThat(rig.onlyEvent().fetchAddr()).isEqualTo(SmmuTestRig.NOT_RAM + 2 * 8);
    }

    @Test
    void invalidSteIsBadSteAndIsNotCached() {
        SmmuTestRig rig = SmmuTestRig.started();
        rig.writeSte(9, Ste.bypass().toBuilder().valid(false).build());

        assertFault(rig.translate(9, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
        assertFault(rig.translate(9, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
        assertThat(rig.events()).extracting(EventRecord::type).as("reported on every access")
                .containsExactly(EventType.C_BAD_STE, EventType.C_BAD_STE);

        rig.writeSte(9, Ste.bypass()); // the bad STE was not cached: no CFGI_STE needed
        assertThat(rig.pa(9, -1, IOVA, 0)).isEqualTo(IOVA);
    }

    @Test
    void allZeroTableIsBadSteForEveryStream() {
        SmmuTestRig rig = SmmuTestRig.started();
        for (int sid : new int[] {0, 17, 255}) {
            assertFault(rig.translate(sid, -1, IOVA, 0), FaultType.BAD_CONFIGURATION, EventType.C_BAD_STE);
            assertConfigEvent(rig.onlyEvent(), EventType.C_BAD_STE, sid, false, 0);
        }
    }
}
