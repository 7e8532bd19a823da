package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.groups.Tuple.tuple;

import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.device.machine.InterruptRecord;
import org.junit.jupiter.api.Test;

/**
 * CMD_SYNC completion signals (spec §7 "CMD_SYNC completion semantics"): CONS moving past the SYNC always; with
 * CS=IRQ an MSI write of MSIData to MSIAddr when the SMMU implements MSIs (the Linux MSI-polling pattern relies on
 * it), its wired "cmd-sync" interrupt when it does not; with CS=SEV a send-event when IDR0.SEV.
 */
class SmmuCmdSyncTest {
    private SmmuTestRig rig = SmmuTestRig.started();

    private void startWith(SmmuV3Config config) {
        rig = SmmuTestRig.started(config);
        rig.interrupts.clear();
    }

    /** The slot the {@code n}-th entry of the next batch lands in. */
    private long nextSlot(int n) {
        return rig.cmdqSlot(QueuePointer.inc(rig.cmdqProd(), rig.cmdqLog2(), n));
    }

    @Test
    void csNoneOnlyMovesCons() {
        rig.interrupts.clear();
        long slot = nextSlot(1);

        rig.issue(Command.tlbiNsnhAll()); // + CMD_SYNC CS=NONE, CONS checked

        assertThat(rig.interrupts).isEmpty();
        assertThat(rig.r64(slot)).as("the SYNC's own slot is untouched").isEqualTo(Command.cmdSync(0).dw0());
    }

    @Test
    void csIrqWithMsiWritesZeroOverTheSyncItselfAsLinuxPolls() {
        StaleDomains domains = new StaleDomains(rig);
        StaleDomains.Domain a = domains.s1(1, 0, 1, 2);
        rig.interrupts.clear();
        long slot = nextSlot(1);
        Command sync = Command.cmdSyncAsLinux(slot);
        assertThat(sync.cs()).isEqualTo(Command.CS_IRQ);

        rig.submit(Command.tlbiNhVa(0, 1, a.va(1), true), sync);

        assertThat(rig.r32(slot)).as("first word of the CMD_SYNC, overwritten with MSIData").isZero();
        assertThat(rig.r64(slot + 8)).as("dw1 untouched (a 32-bit write)").isEqualTo(sync.dw1());
        assertThat(rig.cmdqConsPointer()).isEqualTo(rig.cmdqProd());
        assertThat(rig.interrupts).singleElement().satisfies(r -> {
            assertThat(r.iommu()).isEqualTo("smmu0");
            assertThat(r.source()).isEqualTo("cmd-sync");
            assertThat(r.msi()).isTrue();
            assertThat(r.msiAddress()).isEqualTo(slot);
            assertThat(r.msiData()).isZero();
            assertThat(r.landedInRam()).isTrue();
        });
        a.expect("oN"); // what the SYNC completed is done
    }

    @Test
    void csIrqWritesMsiDataAtMsiAddr() {
        rig.interrupts.clear();
        long page = rig.page();
        rig.w64(page + 0x40, 0x1111_2222_3333_4444L);

        rig.issue(Command.tlbiNsnhAll(),
                Command.cmdSync(Command.CS_IRQ, Encodings.SH_ISH, Command.MSIATTR_OIWB, 0xCAFE_F00D, page + 0x44));

        assertThat(rig.r64(page + 0x40)).as("only the 32 bits at MSIAddr").isEqualTo(0xCAFE_F00D_3333_4444L);
        assertThat(rig.interrupts).extracting(InterruptRecord::source, InterruptRecord::msiAddress,
                InterruptRecord::msiData).containsExactly(tuple("cmd-sync", page + 0x44,
                        0xCAFE_F00D));
    }

    @Test
    void everySyncOfABatchSignalsInOrder() {
        rig.interrupts.clear();
        long page = rig.page();

        rig.submit(Command.cmdSync(Command.CS_IRQ, 0, 0, 1, page), Command.tlbiNsnhAll(),
                Command.cmdSync(Command.CS_IRQ, 0, 0, 2, page + 4));

        assertThat(rig.interrupts).extracting(InterruptRecord::msiData).containsExactly(1, 2);
        assertThat(rig.r32(page)).isEqualTo(1);
        assertThat(rig.r32(page + 4)).isEqualTo(2);
    }

    @Test
    void csIrqToAnAddressOutsideRamReachesTheInterruptControllerOnly() {
        rig.interrupts.clear();

        rig.issue(Command.cmdSync(Command.CS_IRQ, 0, 0, 77, SmmuTestRig.DOORBELL));

        assertThat(rig.interrupts).singleElement().satisfies(r -> {
            assertThat(r.msi()).isTrue();
            assertThat(r.msiAddress()).isEqualTo(SmmuTestRig.DOORBELL);
            assertThat(r.msiData()).isEqualTo(77);
            assertThat(r.landedInRam()).isFalse();
        });
        assertThat(Gerror.active(rig.gerror(), rig.gerrorn())).as("no MSI abort").isZero();
    }

    @Test
    void csIrqWithoutMsiSupportRaisesTheWiredCmdSyncInterrupt() {
        startWith(SmmuTestRig.smallQueues().msi(false).build());
        long page = rig.page();
        rig.w32(page, 0x5A5A_5A5A);

        rig.issue(Command.cmdSync(Command.CS_IRQ, Encodings.SH_ISH, Command.MSIATTR_OIWB, 0, page));

        assertThat(rig.r32(page)).as("no memory write").isEqualTo(0x5A5A_5A5A);
        assertThat(rig.interrupts).singleElement().satisfies(r -> {
            assertThat(r.source()).isEqualTo("cmd-sync");
            assertThat(r.msi()).isFalse();
        });
    }

    @Test
    void csSevSendsAnEventWhenSevIsImplemented() {
        rig.interrupts.clear();

        rig.issue(Command.cmdSyncAsLinux(0)); // CS=SEV, as Linux without MSI polling

        assertThat(rig.interrupts).singleElement().satisfies(r -> {
            assertThat(r.source()).isEqualTo("sev");
            assertThat(r.msi()).isFalse();
        });
    }

    @Test
    void csSevWithoutSevCompletesWithoutSignal() {
        startWith(SmmuTestRig.smallQueues().sev(false).build());

        rig.issue(Command.cmdSync(Command.CS_SEV));

        assertThat(rig.interrupts).isEmpty();
    }

    @Test
    void reservedCsIsIllegal() {
        rig.interrupts.clear();
        int at = rig.cmdqProd();
        long page = rig.page();
        long dw0 = Command.cmdSync(Command.CS_IRQ, 0, 0, 9, page).dw0() | 3L << 12;

        rig.submitWords(dw0, Command.cmdSync(Command.CS_IRQ, 0, 0, 9, page).dw1());

        assertThat(QueuePointer.cmdqError(rig.cmdqCons())).isEqualTo(QueuePointer.CERROR_ILL);
        assertThat(rig.cmdqConsPointer()).isEqualTo(at);
        assertThat(rig.r32(page)).as("no MSI").isZero();
        assertThat(rig.interrupts).extracting(InterruptRecord::source).containsExactly("gerror");
    }
}
