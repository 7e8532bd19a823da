package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.device.machine.InterruptRecord;
import org.junit.jupiter.api.Test;

/**
 * The event-queue and GERROR interrupts (spec SMMUV3.md §1, §3, §4): an MSI of IRQ_CFG1's data to IRQ_CFG0's address
 * when the SMMU implements MSIs and the address is programmed, the wired line otherwise; IRQ_CTRL gating; global
 * errors toggling GERROR against GERRORN, acknowledged as Linux's arm_smmu_gerror_handler does; MSI writes that
 * abort reported as MSI_*_ABT_ERR. GERROR bit positions are written out from the spec's table.
 */
class SmmuInterruptTest {
    private static final int CMDQ_ERR = 1;
    private static final int MSI_CMDQ_ABT_ERR = 1 << 4;
    private static final int MSI_EVENTQ_ABT_ERR = 1 << 5;
    private static final int MSI_GERROR_ABT_ERR = 1 << 7;
    /**
     * Neither RAM nor the machine's MSI doorbell window: nothing answers an MSI written there, so the machine's
     * interrupt hub aborts it.
     */
    private static final long ABORTING = 0x0900_0000L;

    private static SmmuTestRig startedWithAbortingMsis() {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(8).eventQueue(6).linearStreamTable(8).enable();
        return rig;
    }

    /** Puts an illegal command (opcode 0xFF) on the queue: CMDQ_ERR. */
    private static void illegalCommand(SmmuTestRig rig) {
        rig.submitRaw(0xFF, 0);
        assertThat(QueuePointer.cmdqError(rig.cmdqCons())).as("CMDQ_CONS.ERR = CERROR_ILL")
                .isEqualTo(QueuePointer.CERROR_ILL);
    }

    private static void assertMsi(InterruptRecord r, long address, int data, boolean inRam) {
        assertThat(r.iommu()).isEqualTo("smmu0");
        assertThat(r.msi()).as("message-signalled").isTrue();
        assertThat(r.msiAddress()).as("MSI address").isEqualTo(address);
        assertThat(r.msiData()).as("MSI data").isEqualTo(data);
        assertThat(r.landedInRam()).as("landed in RAM").isEqualTo(inRam);
    }

    // ------------------------------------------------------------------ event queue interrupt

    @Test
    void eventInterruptIsAnMsiWrittenToGuestMemory() {
        SmmuTestRig rig = SmmuTestRig.started();
        long doorbell = rig.bytes(64, "msi");
        rig.eventqMsi(doorbell, 0x1234_ABCD);

        rig.badSteFaults(5, 1);

        assertThat(rig.r32(doorbell)).as("MSI data in RAM").isEqualTo(0x1234_ABCD);
        List<InterruptRecord> irqs = rig.interruptList("eventq");
        assertThat(irqs).hasSize(1);
        assertMsi(irqs.get(0), doorbell, 0x1234_ABCD, true);
        assertThat(rig.stats().interrupts()).isEqualTo(1);
    }

    @Test
    void eventInterruptToAnInterruptControllerDoorbell() {
        SmmuTestRig rig = SmmuTestRig.started();
        rig.eventqMsi(SmmuTestRig.DOORBELL, 42);

        rig.badSteFaults(5, 1);

        List<InterruptRecord> irqs = rig.interruptList("eventq");
        assertThat(irqs).hasSize(1);
        assertMsi(irqs.get(0), SmmuTestRig.DOORBELL, 42, false);
    }

    @Test
    void eventInterruptIsWiredWhileNoMsiAddressIsProgrammed() {
        SmmuTestRig rig = SmmuTestRig.started(); // EVENTQ_IRQ_CFG0 = 0

        rig.badSteFaults(5, 1);

        List<InterruptRecord> irqs = rig.interruptList("eventq");
        assertThat(irqs).hasSize(1);
        assertThat(irqs.get(0).msi()).as("wired").isFalse();
    }

    @Test
    void eventInterruptIsWiredOnAnSmmuWithoutMsis() {
        SmmuTestRig rig = SmmuTestRig.started(SmmuTestRig.smallQueues().msi(false).build());
        long doorbell = rig.bytes(64, "msi");
        rig.eventqMsi(doorbell, 0x55); // RES0 without IDR0.MSI: ignored

        rig.badSteFaults(5, 1);

        assertThat(rig.read64(SmmuV3Registers.EVENTQ_IRQ_CFG0)).as("EVENTQ_IRQ_CFG0 RES0").isZero();
        assertThat(rig.r32(doorbell)).as("no memory write").isZero();
        List<InterruptRecord> irqs = rig.interruptList("eventq");
        assertThat(irqs).hasSize(1);
        assertThat(irqs.get(0).msi()).isFalse();
    }

    @Test
    void eventqIrqenGatesTheInterruptButNotTheRecord() {
        SmmuTestRig rig = SmmuTestRig.started();
        long doorbell = rig.bytes(64, "msi");
        rig.eventqMsi(doorbell, 7);
        rig.irqCtrl(SmmuTestRig.IRQ_GERROR);

        rig.badSteFaults(5, 1);

        assertThat(rig.eventStreams()).containsExactly(5);
        assertThat(rig.interruptsFrom("eventq")).isZero();
        assertThat(rig.r32(doorbell)).isZero();

        rig.irqCtrl(SmmuTestRig.IRQ_GERROR | SmmuTestRig.IRQ_EVENTQ);
        rig.badSteFaults(6, 1);

        assertThat(rig.interruptsFrom("eventq")).isEqualTo(1);
        assertThat(rig.r32(doorbell)).isEqualTo(7);
    }

    @Test
    void interruptsReachEverySubscriberOfTheHubInOrder() throws Exception {
        SmmuTestRig rig = SmmuTestRig.started();
        List<InterruptRecord> other = new CopyOnWriteArrayList<>();
        try (AutoCloseable sub = rig.hub.subscribe(other::add)) {
            rig.eventqMsi(SmmuTestRig.DOORBELL, 1);
            rig.gerrorMsi(SmmuTestRig.DOORBELL + 4, 2);
            rig.badSteFaults(5, 1);
            illegalCommand(rig);
        }
        assertThat(other).extracting(InterruptRecord::source).containsExactly("eventq", "gerror");
        assertThat(other).extracting(InterruptRecord::msiData).containsExactly(1, 2);
        assertThat(other.get(1).sequence()).isGreaterThan(other.get(0).sequence());
        assertThat(rig.interrupts).containsAll(other);
    }

    // ------------------------------------------------------------------ GERROR

    @Test
    void commandErrorTogglesGerrorAndSignalsItsMsi() {
        SmmuTestRig rig = SmmuTestRig.started();
        long doorbell = rig.bytes(64, "msi");
        rig.gerrorMsi(doorbell, 0xBEEF);

        illegalCommand(rig);

        assertThat(rig.gerror()).as("GERROR.CMDQ_ERR").isEqualTo(CMDQ_ERR);
        assertThat(rig.gerrorn()).isZero();
        assertThat(rig.r32(doorbell)).isEqualTo(0xBEEF);
        List<InterruptRecord> irqs = rig.interruptList("gerror");
        assertThat(irqs).hasSize(1);
        assertMsi(irqs.get(0), doorbell, 0xBEEF, true);
        assertThat(rig.stats().globalErrors()).isEqualTo(1);
    }

    @Test
    void gerrorIsWiredWithoutAnMsiAddressAndGatedByGerrorIrqen() {
        SmmuTestRig rig = SmmuTestRig.started();
        illegalCommand(rig);
        assertThat(rig.interruptList("gerror")).singleElement().extracting(InterruptRecord::msi).isEqualTo(false);

        // Linux: replace the bad command by a CMD_SYNC, then acknowledge
        long slot = rig.cmdqSlot(rig.cmdqCons());
        Command sync = Command.cmdSync(Command.CS_NONE);
        rig.w64(slot, sync.dw0());
        rig.w64(slot + 8, sync.dw1());
        rig.acknowledgeGerror();
        rig.irqCtrl(SmmuTestRig.IRQ_EVENTQ); // GERROR_IRQEN off

        illegalCommand(rig);

        assertThat(rig.gerror() ^ rig.gerrorn()).as("CMDQ_ERR active again").isEqualTo(CMDQ_ERR);
        assertThat(rig.interruptsFrom("gerror")).as("no interrupt with GERROR_IRQEN clear").isEqualTo(1);
        assertThat(rig.stats().globalErrors()).isEqualTo(2);
    }

    @Test
    void acknowledgingThroughGerrornResumesTheCommandQueue() {
        SmmuTestRig rig = SmmuTestRig.started();
        illegalCommand(rig);
        int stoppedAt = rig.cmdqCons() & 0xFF_FFFF;
        rig.submit(Command.tlbiNsnhAll());
        assertThat(rig.cmdqCons() & 0xFF_FFFF).as("stopped while CMDQ_ERR is active").isEqualTo(stoppedAt);

        long slot = rig.cmdqSlot(stoppedAt);
        Command sync = Command.cmdSync(Command.CS_NONE);
        rig.w64(slot, sync.dw0());
        rig.w64(slot + 8, sync.dw1());
        rig.acknowledgeGerror();

        assertThat(rig.gerror()).isEqualTo(rig.gerrorn());
        assertThat(rig.cmdqCons() & 0xFF_FFFF).as("consumed up to PROD").isEqualTo(rig.cmdqProd());
    }

    @Test
    void anActiveErrorIsNotToggledOrSignalledAgain() {
        SmmuTestRig rig = SmmuTestRig.started();
        illegalCommand(rig);
        int gerror = rig.gerror();

        // the queue is stopped; kick it again (CMDQ_PROD write, CR0 write) without acknowledging
        rig.submit(Command.tlbiNsnhAll());
        rig.cr0(SmmuTestRig.CR0_CMDQEN | SmmuTestRig.CR0_EVENTQEN | SmmuTestRig.CR0_SMMUEN);

        assertThat(rig.gerror()).isEqualTo(gerror);
        assertThat(rig.interruptsFrom("gerror")).isEqualTo(1);
        assertThat(rig.stats().globalErrors()).isEqualTo(1);
    }

    // ------------------------------------------------------------------ MSIs that abort

    @Test
    void abortedEventMsiRaisesMsiEventqAbtErr() {
        SmmuTestRig rig = startedWithAbortingMsis();
        rig.eventqMsi(ABORTING, 1);
        long doorbell = rig.bytes(64, "msi");
        rig.gerrorMsi(doorbell, 9);

        rig.badSteFaults(5, 1);

        assertThat(rig.eventStreams()).as("the record itself was written").containsExactly(5);
        assertThat(rig.gerror() ^ rig.gerrorn()).as("GERROR.MSI_EVENTQ_ABT_ERR").isEqualTo(MSI_EVENTQ_ABT_ERR);
        assertThat(rig.r32(doorbell)).as("the GERROR MSI reports it").isEqualTo(9);
        assertThat(rig.interruptsFrom("eventq")).as("an aborted MSI reaches no subscriber").isZero();

        rig.acknowledgeGerror();
        assertThat(rig.gerror() ^ rig.gerrorn()).isZero();
    }

    @Test
    void abortedGerrorMsiRaisesMsiGerrorAbtErr() {
        SmmuTestRig rig = startedWithAbortingMsis();
        rig.gerrorMsi(ABORTING, 1);

        illegalCommand(rig);

        assertThat(rig.gerror() ^ rig.gerrorn()).isEqualTo(CMDQ_ERR | MSI_GERROR_ABT_ERR);
        assertThat(rig.interruptsFrom("gerror")).isZero();
    }

    @Test
    void abortedCmdSyncMsiRaisesMsiCmdqAbtErrWithoutStoppingTheQueue() {
        SmmuTestRig rig = startedWithAbortingMsis();
        long doorbell = rig.bytes(64, "msi");
        rig.gerrorMsi(doorbell, 3);

        rig.submit(Command.cmdSync(Command.CS_IRQ, 3, 0xF, 0x77, ABORTING));

        assertThat(QueuePointer.cmdqError(rig.cmdqCons())).as("not a command error").isZero();
        assertThat(rig.cmdqCons() & 0xFF_FFFF).as("the CMD_SYNC completed").isEqualTo(rig.cmdqProd());
        assertThat(rig.gerror() ^ rig.gerrorn()).as("GERROR.MSI_CMDQ_ABT_ERR").isEqualTo(MSI_CMDQ_ABT_ERR);
        assertThat(rig.r32(doorbell)).isEqualTo(3);
    }

    @Test
    void cmdSyncMsiPollingAsLinuxDoesIt() {
        SmmuTestRig rig = SmmuTestRig.started();
        long slot = rig.cmdqSlot(rig.cmdqProd());

        rig.submit(Command.cmdSyncAsLinux(slot));

        assertThat(rig.r32(slot)).as("MSIData 0 written over the CMD_SYNC's first word").isZero();
        assertThat(rig.interruptList("cmd-sync")).singleElement()
                .satisfies(r -> assertMsi(r, slot, 0, true));
    }

    @Test
    void cmdSyncWithCsIrqIsWiredWithoutMsis() {
        SmmuTestRig rig = SmmuTestRig.started(SmmuTestRig.smallQueues().msi(false).build());

        rig.submit(Command.cmdSync(Command.CS_IRQ));

        assertThat(rig.interruptList("cmd-sync")).singleElement().extracting(InterruptRecord::msi).isEqualTo(false);
        assertThat(rig.gerror()).isZero();
    }
}
