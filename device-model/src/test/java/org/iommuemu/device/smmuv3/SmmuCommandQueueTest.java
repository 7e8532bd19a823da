package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.junit.jupiter.api.Test;

/**
 * Command-queue mechanics (spec §4): CONS follows PROD, index and wrap flag, around the end of the queue; nothing
 * is consumed while CR0.CMDQEN is clear, and what is waiting is consumed when it is set.
 */
class SmmuCommandQueueTest {

    @Test
    void nothingIsConsumedWhileCmdqenIsClearAndEverythingWhenItIsSet() {
        SmmuTestRig rig = SmmuTestRig.started();
        StaleDomains.Domain a = new StaleDomains(rig).s1(1, 0, 1, 2);
        int cons = rig.cmdqConsPointer();
        rig.cr0(SmmuTestRig.CR0_EVENTQEN | SmmuTestRig.CR0_SMMUEN);

        rig.submit(Command.tlbiNhVa(0, 1, a.va(1), true), Command.cmdSync(Command.CS_NONE));

        assertThat(rig.cmdqConsPointer()).isEqualTo(cons);
        a.expect("oo");

        rig.cr0(SmmuTestRig.CR0_CMDQEN | SmmuTestRig.CR0_EVENTQEN | SmmuTestRig.CR0_SMMUEN);

        rig.assertDrained();
        a.expect("oN");
    }

    @Test
    void consFollowsProdAroundTheQueueWithTheWrapFlag() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(2).eventQueue(6).linearStreamTable(8).enable(); // 4 entries; 3 used by the bring-up
        StaleDomains.Domain a = new StaleDomains(rig).s1(1, 0, 1, 4);
        int log2 = rig.cmdqLog2();
        boolean sawWrap = false;
        boolean sawWrapBack = false;

        for (int page = 0; page < 4; page++) {
            boolean wrapBefore = QueuePointer.wrap(rig.cmdqProd(), log2);
            rig.issue(Command.tlbiNhVa(0, 1, a.va(page), true)); // two entries each
            int cons = rig.cmdqCons();
            assertThat(cons).as("CONS is index and wrap only").isEqualTo(QueuePointer.indexAndWrap(cons, log2));
            assertThat(cons).isEqualTo(rig.cmdqProd());
            boolean wrapAfter = QueuePointer.wrap(cons, log2);
            sawWrap |= !wrapBefore && wrapAfter;
            sawWrapBack |= wrapBefore && !wrapAfter;
        }

        assertThat(sawWrap).as("wrap flag set").isTrue();
        assertThat(sawWrapBack).as("wrap flag cleared again").isTrue();
        a.expect("NNNN"); // every TLBI ran, wherever its slot was
    }

    @Test
    void aBatchThatStraddlesTheEndOfTheQueueRunsInOrder() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(2).eventQueue(6).linearStreamTable(8).enable();
        StaleDomains.Domain a = new StaleDomains(rig).s1(1, 0, 1, 2);
        while (QueuePointer.index(rig.cmdqProd(), 2) != 3) {
            rig.issue(); // a lone CMD_SYNC
        }

        // slots 3, 0, 1: across the end of the queue
        rig.submit(Command.tlbiNhVa(0, 1, a.va(0), true), Command.tlbiNhVa(0, 1, a.va(1), true),
                Command.cmdSync(Command.CS_NONE));

        rig.assertDrained();
        a.expect("NN");
    }

    @Test
    void writingProdWithoutNewEntriesConsumesNothing() {
        SmmuTestRig rig = SmmuTestRig.started();
        StaleDomains.Domain a = new StaleDomains(rig).s1(1, 0, 1, 1);
        long next = rig.cmdqSlot(rig.cmdqProd());
        Command tlbi = Command.tlbiNhVa(0, 1, a.va(0), true);
        rig.w64(next, tlbi.dw0()); // written, PROD not moved
        rig.w64(next + 8, tlbi.dw1());

        rig.write32(SmmuV3Registers.CMDQ_PROD, rig.cmdqProd());

        assertThat(rig.cmdqConsPointer()).isEqualTo(rig.cmdqProd());
        a.expect("o");
    }
}
