package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.junit.jupiter.api.Test;

/**
 * The event queue as Linux's arm_smmu_evtq_thread sees it (spec SMMUV3.md §4, §8): records land at EVENTQ_PROD in
 * guest memory, PROD and CONS wrap with their wrap bit, a full queue discards records and toggles
 * EVENTQ_PROD.OVFLG once until software copies it into EVENTQ_CONS.OVACKFLG, and nothing is written while
 * CR0.EVENTQEN is clear. Register values and record words are written out here from the spec's field tables.
 */
class SmmuEventQueueTest {
    private static final long OVFLG = 1L << 31;
    private static final long OVACKFLG = 1L << 31;
    private static final int C_BAD_STE = 0x04;

    /** A started SMMU with an event queue of 2^log2 records. */
    private static SmmuTestRig withEventQueue(int log2) {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(8).eventQueue(log2).linearStreamTable(8).enable();
        return rig;
    }

    @Test
    void fullQueueDiscardsRecordsAndTogglesOvflgOnce() {
        SmmuTestRig rig = withEventQueue(2); // 4 records

        rig.badSteFaults(10, 10);

        // 4 written (slots 0..3), then full: PROD index 0 with the wrap bit (bit 2) set, and OVFLG toggled once
        assertThat(rig.read32(SmmuV3Registers.EVENTQ_PROD)).as("EVENTQ_PROD").isEqualTo(OVFLG | 0b100);
        assertThat(rig.read32(SmmuV3Registers.EVENTQ_CONS)).as("EVENTQ_CONS").isZero();
        for (int i = 0; i < 4; i++) {
            assertThat(rig.rawEvent(i)[0]).as("slot %d dw0", i).isEqualTo(C_BAD_STE | (long) (10 + i) << 32);
        }
        assertThat(rig.stats().eventsLost()).as("records discarded").isEqualTo(6);
        assertThat(rig.eventsOfType(C_BAD_STE)).as("records written").isEqualTo(4);
        assertThat(rig.stats().faults()).isEqualTo(10);
    }

    @Test
    void driverConsumesAndAcknowledgesTheOverflowThenRecordsFlowAgain() {
        SmmuTestRig rig = withEventQueue(2);
        rig.badSteFaults(10, 6);

        // Linux: read every record, then CONS := PROD's index and wrap, OVACKFLG := PROD.OVFLG
        assertThat(rig.eventStreams()).containsExactly(10, 11, 12, 13);
        assertThat(rig.read32(SmmuV3Registers.EVENTQ_CONS)).as("CONS after the acknowledgement")
                .isEqualTo(OVACKFLG | 0b100);

        rig.badSteFaults(30, 2);

        assertThat(rig.read32(SmmuV3Registers.EVENTQ_PROD)).as("OVFLG stays as it was; two more records")
                .isEqualTo(OVFLG | 0b110);
        assertThat(rig.rawEvent(0)[0]).as("slot 0, second lap").isEqualTo(C_BAD_STE | 30L << 32);
        assertThat(rig.rawEvent(1)[0]).as("slot 1, second lap").isEqualTo(C_BAD_STE | 31L << 32);
        assertThat(rig.eventStreams()).containsExactly(30, 31);
        assertThat(rig.stats().eventsLost()).isEqualTo(2);
    }

    @Test
    void secondOverflowTogglesOvflgBack() {
        SmmuTestRig rig = withEventQueue(1); // 2 records
        rig.badSteFaults(10, 3);
        assertThat(rig.read32(SmmuV3Registers.EVENTQ_PROD) & OVFLG).as("first overflow").isEqualTo(OVFLG);
        assertThat(rig.eventStreams()).containsExactly(10, 11);

        rig.badSteFaults(20, 3);

        assertThat(rig.read32(SmmuV3Registers.EVENTQ_PROD)).as("second overflow: OVFLG back to 0, PROD lapped")
                .isEqualTo(0b000);
        assertThat(rig.eventStreams()).containsExactly(20, 21);
        assertThat(rig.read32(SmmuV3Registers.EVENTQ_CONS)).as("acknowledged with OVACKFLG 0").isZero();
        assertThat(rig.stats().eventsLost()).isEqualTo(2);
    }

    @Test
    void unacknowledgedOverflowDoesNotToggleAgainButRecordsStillLandWhenThereIsSpace() {
        SmmuTestRig rig = withEventQueue(1);
        rig.badSteFaults(10, 3);
        // a driver that consumes without acknowledging: CONS moves, OVACKFLG stays 0
        rig.write32(SmmuV3Registers.EVENTQ_CONS, 0b10);

        rig.badSteFaults(20, 3); // two fit, the third overflows while the overflow condition is still present

        assertThat(rig.read32(SmmuV3Registers.EVENTQ_PROD)).as("OVFLG not toggled a second time")
                .isEqualTo(OVFLG | 0b00);
        assertThat(rig.rawEvent(0)[0]).isEqualTo(C_BAD_STE | 20L << 32);
        assertThat(rig.rawEvent(1)[0]).isEqualTo(C_BAD_STE | 21L << 32);
        assertThat(rig.stats().eventsLost()).isEqualTo(2);
    }

    @Test
    void noRecordIsLostWithoutTheOverflowFlag() {
        SmmuTestRig rig = withEventQueue(2);
        List<Integer> seen = new ArrayList<>();
        long lost = 0;
        for (int sid = 0; sid < 100; sid++) {
            rig.badSteFaults(sid, 1);
            long nowLost = rig.stats().eventsLost();
            if (nowLost != lost) {
                assertThat(rig.read32(SmmuV3Registers.EVENTQ_PROD) & OVFLG)
                        .as("record of stream %d dropped: overflow must be flagged", sid)
                        .isNotEqualTo(rig.read32(SmmuV3Registers.EVENTQ_CONS) & OVACKFLG);
                lost = nowLost;
            }
            if (sid % 7 == 6) { // the driver drains now and then
                seen.addAll(rig.eventStreams());
            }
        }
        seen.addAll(rig.eventStreams());
        assertThat(seen.size() + lost).as("written + lost = faults").isEqualTo(100);
        assertThat(lost).as("a 4-entry queue drained every 7 faults overflows").isPositive();
        assertThat(seen).as("records in fault order").isSorted().doesNotHaveDuplicates();
    }

    @Test
    void producerWrapsAroundTheQueueManyTimes() {
        SmmuTestRig rig = withEventQueue(2);
        for (int lap = 0; lap < 10; lap++) {
            rig.badSteFaults(lap * 3, 3);
            assertThat(rig.eventStreams()).containsExactly(lap * 3, lap * 3 + 1, lap * 3 + 2);
        }
        // 30 records: index 30 mod 4 = 2, wrap bit = (30 / 4) & 1 = 1
        assertThat(rig.read32(SmmuV3Registers.EVENTQ_PROD)).isEqualTo(0b110);
        assertThat(rig.read32(SmmuV3Registers.EVENTQ_CONS)).isEqualTo(0b110);
        assertThat(rig.rawEvent(1)[0]).as("record 29 went to slot 1").isEqualTo(C_BAD_STE | 29L << 32);
        assertThat(rig.stats().eventsLost()).isZero();
    }

    @Test
    void log2SizeAboveEventqsIsCappedToTheAdvertisedMaximum() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().eventqLog2(2).build());
        rig.commandQueue(8).eventQueue(6).linearStreamTable(8).enable(); // asks for 64, gets 4
        assertThat((rig.read32(SmmuV3Registers.IDR1) >>> 16) & 0x1F).as("IDR1.EVENTQS").isEqualTo(2);

        rig.badSteFaults(10, 5);

        assertThat(rig.read32(SmmuV3Registers.EVENTQ_PROD)).as("full after 4: index 0, wrap set, OVFLG")
                .isEqualTo(OVFLG | 0b100);
        assertThat(rig.stats().eventsLost()).isEqualTo(1);
    }

    @Test
    void eventsAreDiscardedWithoutOverflowWhileEventqenIsClear() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(8).eventQueue(2).linearStreamTable(8);
        rig.cr0(SmmuTestRig.CR0_CMDQEN);
        rig.issue(Command.cfgiAll());
        rig.irqCtrl(SmmuTestRig.IRQ_EVENTQ | SmmuTestRig.IRQ_GERROR);
        rig.cr0(SmmuTestRig.CR0_CMDQEN | SmmuTestRig.CR0_SMMUEN); // translating, events off

        rig.badSteFaults(10, 6); // more than the queue holds

        assertThat(rig.read32(SmmuV3Registers.EVENTQ_PROD)).as("nothing written, no overflow").isZero();
        assertThat(rig.rawEvent(0)).as("slot 0 untouched").containsOnly(0L);
        assertThat(rig.interruptsFrom("eventq")).isZero();
        assertThat(rig.eventsOfType(C_BAD_STE)).isZero();
        assertThat(rig.stats().eventsLost()).as("counted as lost").isEqualTo(6);

        rig.cr0(SmmuTestRig.CR0_CMDQEN | SmmuTestRig.CR0_EVENTQEN | SmmuTestRig.CR0_SMMUEN);
        assertThat(rig.read32(SmmuV3Registers.EVENTQ_PROD)).as("earlier events are not replayed").isZero();
        rig.badSteFaults(40, 1);

        assertThat(rig.read32(SmmuV3Registers.EVENTQ_PROD)).isEqualTo(1);
        assertThat(rig.eventStreams()).containsExactly(40);
        assertThat(rig.interruptsFrom("eventq")).isEqualTo(1);
    }

    @Test
    void disablingEventqenStopsRecordsAgain() {
        SmmuTestRig rig = withEventQueue(3);
        rig.badSteFaults(1, 1);
        rig.cr0(SmmuTestRig.CR0_CMDQEN | SmmuTestRig.CR0_SMMUEN);
        rig.badSteFaults(2, 1);
        rig.cr0(SmmuTestRig.CR0_CMDQEN | SmmuTestRig.CR0_EVENTQEN | SmmuTestRig.CR0_SMMUEN);
        rig.badSteFaults(3, 1);

        assertThat(rig.eventStreams()).containsExactly(1, 3);
        assertThat(rig.stats().eventsLost()).isEqualTo(1);
    }

    // ------------------------------------------------------------------ record layout, raw words

    @Test
    void badSteRecordWords() {
        SmmuTestRig rig = withEventQueue(3);
        rig.translate(0x9A, 5, 0x1000, 0); // with a substream: SSV and SubstreamID are recorded

        long[] w = rig.rawEvent(0);
        // dw0: EventType[7:0] = 0x04, SSV bit 11, SubstreamID[31:12] = 5, StreamID[63:32] = 0x9A
        assertThat(w[0]).isEqualTo(0x04L | 1L << 11 | 5L << 12 | 0x9AL << 32);
        assertThat(w[1]).isZero();
        assertThat(w[2]).isZero();
        assertThat(w[3]).isZero();
    }

    @Test
    void stage1TranslationFaultRecordWords() {
        SmmuTestRig rig = withEventQueue(3);
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, 0x4000_0000L, rig.page(), 4096, Prot.READ | Prot.WRITE);
        long cds = rig.cdTable(2);
        rig.writeCd(cds, 3, SmmuTestRig.cdFor(pt, 9));
        rig.installSte(0x77, Ste.stage1(cds, Ste.S1FMT_LINEAR, 2, Ste.S1DSS_SSID0));
        long va = 0x0000_7ABC_DEF0_1238L;

        rig.translate(0x77, 3, va, Access.PRIVILEGED); // a privileged data read of an unmapped page

        long[] w = rig.rawEvent(0);
        assertThat(w[0]).as("F_TRANSLATION, SSV, SSID 3, SID 0x77").isEqualTo(0x10L | 1L << 11 | 3L << 12 | 0x77L << 32);
        // dw1: PnU bit 33, InD bit 34 clear, RnW bit 35 (read), S2 bit 39 clear, CLASS[41:40] = IN (2)
        assertThat(w[1]).isEqualTo(1L << 33 | 1L << 35 | 2L << 40);
        assertThat(w[2]).as("InputAddr").isEqualTo(va);
        assertThat(w[3]).as("no IPA for a stage-1 fault").isZero();
        assertThat(rig.onlyEvent().type()).isEqualTo(EventType.F_TRANSLATION);
    }

    @Test
    void stage2PermissionFaultRecordWordsCarryTheIpa() {
        SmmuTestRig rig = withEventQueue(3);
        PageTable pt = rig.stage2(12, 40);
        rig.map(pt, 0x12_3456_7000L, rig.page(), 4096, Prot.READ);
        rig.installSte(0x55, SmmuTestRig.s2Ste(3, pt));
        long ipa = 0x12_3456_7ABCL;

        rig.translate(0x55, -1, ipa, Access.WRITE | Access.PRIVILEGED);

        long[] w = rig.rawEvent(0);
        assertThat(w[0]).as("F_PERMISSION, no SSV, SID 0x55").isEqualTo(0x13L | 0x55L << 32);
        // write: RnW clear; PnU bit 33; S2 bit 39; CLASS IN
        assertThat(w[1]).isEqualTo(1L << 33 | 1L << 39 | 2L << 40);
        assertThat(w[2]).isEqualTo(ipa);
        assertThat(w[3]).as("IPA[51:12]").isEqualTo(0x12_3456_7000L);
    }

    @Test
    void steFetchRecordWordsCarryTheFetchAddress() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(8).eventQueue(3).linearStreamTableAt(SmmuTestRig.NOT_RAM, 8).enable();

        rig.translate(3, -1, 0x1000, 0);

        long[] w = rig.rawEvent(0);
        assertThat(w[0]).as("F_STE_FETCH, SID 3").isEqualTo(0x03L | 3L << 32);
        assertThat(w[1]).isZero();
        assertThat(w[2]).isZero();
        assertThat(w[3]).as("FetchAddr[51:3]: the STE of stream 3").isEqualTo(SmmuTestRig.NOT_RAM + 3 * 64);
    }

    @Test
    void eventQueueOutsideRamRaisesEventqAbtErr() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(8).eventQueueAt(SmmuTestRig.NOT_RAM, 3).linearStreamTable(8).enable();

        rig.badSteFaults(10, 2);

        assertThat(rig.gerror()).as("GERROR.EVENTQ_ABT_ERR (bit 2) toggled once").isEqualTo(1 << 2);
        assertThat(rig.read32(SmmuV3Registers.EVENTQ_PROD)).as("PROD does not move past an aborted write").isZero();
        assertThat(rig.stats().eventsLost()).isEqualTo(2);
        assertThat(rig.stats().globalErrors()).isEqualTo(1);
        assertThat(rig.interruptsFrom("gerror")).isEqualTo(1);
        assertThat(rig.interruptsFrom("eventq")).isZero();
    }
}
