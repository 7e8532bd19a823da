package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.function.UnaryOperator;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.device.machine.InterruptRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Command errors (spec §4, §7): the SMMU stops at the failing command with CMDQ_CONS pointing at it and ERR set,
 * toggles GERROR.CMDQ_ERR and raises the GERROR interrupt; nothing after the bad entry runs, even when PROD moves
 * on, until software acknowledges through GERRORN, Linux having overwritten the bad slot with a CMD_SYNC first.
 */
class SmmuCommandErrorTest {
    private static final long UNKNOWN_OPCODE = 0x7F;

    private SmmuTestRig rig = SmmuTestRig.started();

    private boolean cmdqErrActive() {
        return Gerror.isActive(rig.gerror(), rig.gerrorn(), Gerror.CMDQ_ERR);
    }

    private void assertStoppedAt(int ptr, int cerror) {
        int cons = rig.cmdqCons();
        assertThat(QueuePointer.cmdqError(cons)).as("CMDQ_CONS.ERR").isEqualTo(cerror);
        assertThat(QueuePointer.indexAndWrap(cons, rig.cmdqLog2())).as("CMDQ_CONS").isEqualTo(ptr);
        assertThat(cmdqErrActive()).as("GERROR.CMDQ_ERR active").isTrue();
    }

    private static long[] words(Command... commands) {
        long[] w = new long[commands.length * 2];
        for (int i = 0; i < commands.length; i++) {
            w[2 * i] = commands[i].dw0();
            w[2 * i + 1] = commands[i].dw1();
        }
        return w;
    }

    @Test
    void unknownOpcodeStopsTheQueueAtItUntilLinuxSkipsIt() {
        StaleDomains.Domain a = new StaleDomains(rig).s1(1, 0, 1, 3);
        rig.interrupts.clear();
        int start = rig.cmdqProd();
        Command sync = Command.cmdSync(Command.CS_NONE);
        long[] before = words(Command.tlbiNhVa(0, 1, a.va(0), true));
        long[] after = words(Command.tlbiNhVa(0, 1, a.va(2), true), sync);

        rig.submitWords(before[0], before[1], UNKNOWN_OPCODE, 0, after[0], after[1], after[2], after[3]);

        int bad = QueuePointer.inc(start, rig.cmdqLog2());
        assertStoppedAt(bad, QueuePointer.CERROR_ILL);
        assertThat(rig.gerror() & 1).as("GERROR.CMDQ_ERR toggled from 0").isEqualTo(1);
        assertThat(rig.interrupts).extracting(InterruptRecord::source).containsExactly("gerror");
        a.expect("Noo"); // the TLBI before the bad entry ran, the one after it did not

        // more commands while the error is active: not consumed
        rig.submit(Command.tlbiNhVa(0, 1, a.va(1), true), sync);
        assertStoppedAt(bad, QueuePointer.CERROR_ILL);
        a.expect("Noo");

        // arm_smmu_cmdq_skip_err: overwrite with CMD_SYNC, then acknowledge in GERRORN
        rig.replaceBadCommandAndAck(sync);

        assertThat(cmdqErrActive()).isFalse();
        assertThat(rig.cmdqConsPointer()).isEqualTo(rig.cmdqProd());
        a.expect("NNN");
        assertThat(rig.interrupts).hasSize(1);
    }

    @Test
    void eachNewErrorTogglesGerrorAgain() {
        rig.submitWords(UNKNOWN_OPCODE, 0);
        assertThat(rig.gerror() & 1).isEqualTo(1);
        assertThat(rig.gerrorn() & 1).isZero();
        rig.replaceBadCommandAndAck(Command.cmdSync(Command.CS_NONE));
        assertThat(rig.gerrorn() & 1).isEqualTo(1);
        int at = rig.cmdqProd();

        rig.submitWords(UNKNOWN_OPCODE + 1, 0);

        assertStoppedAt(at, QueuePointer.CERROR_ILL);
        assertThat(rig.gerror() & 1).as("toggled back to 0, unlike GERRORN").isZero();
        rig.replaceBadCommandAndAck(Command.cmdSync(Command.CS_NONE));
        assertThat(cmdqErrActive()).isFalse();
        // consumption goes on (ERR is only meaningful while CMDQ_ERR is active, so it is not looked at)
        rig.submit(Command.tlbiNsnhAll(), Command.cmdSync(Command.CS_NONE));
        assertThat(rig.cmdqConsPointer()).isEqualTo(rig.cmdqProd());
    }

    @Test
    void gerrorInterruptIsAnMsiWhenProgrammed() {
        long page = rig.page();
        rig.gerrorMsi(page + 8, 0x6E77);
        rig.interrupts.clear();

        rig.submitWords(UNKNOWN_OPCODE, 0);

        assertThat(rig.r32(page + 8)).isEqualTo(0x6E77);
        assertThat(rig.interrupts).singleElement().satisfies(r -> {
            assertThat(r.source()).isEqualTo("gerror");
            assertThat(r.msi()).isTrue();
        });
    }

    @Test
    void commandQueueOutsideRamIsCerrorAbt() {
        rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueueAt(SmmuTestRig.NOT_RAM, 4).eventQueue(6).linearStreamTable(8);
        rig.irqCtrl(SmmuTestRig.IRQ_GERROR);
        rig.cr0(SmmuTestRig.CR0_CMDQEN);

        rig.submit(Command.cfgiAll(), Command.cmdSync(Command.CS_NONE));

        assertStoppedAt(0, QueuePointer.CERROR_ABT);
        assertThat(rig.interrupts).extracting(InterruptRecord::source).containsExactly("gerror");
    }

    // ------------------------------------------------------------------ commands the SMMU does not implement

    private void assertIllegal(Command c) {
        int at = rig.cmdqProd();
        rig.submit(c, Command.cmdSync(Command.CS_NONE));
        assertStoppedAt(at, QueuePointer.CERROR_ILL);
    }

    private void assertLegal(Command c) {
        rig.issue(c);
        assertThat(cmdqErrActive()).isFalse();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"TLBI_S2_IPA", "TLBI_S12_VMALL"})
    void stage2InvalidationWithoutStage2IsIllegal(String op) {
        rig = SmmuTestRig.started(SmmuTestRig.smallQueues().stage2(false).vmid16(false).build());
        assertLegal(Command.tlbiNhAll(0));
        assertIllegal(op.equals("TLBI_S2_IPA") ? Command.tlbiS2Ipa(0, 0x1000, true) : Command.tlbiS12Vmall(0));
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"TLBI_NH_ALL", "TLBI_NH_ASID", "TLBI_NH_VA", "TLBI_NH_VAA"})
    void stage1InvalidationWithoutStage1IsIllegal(String op) {
        rig = SmmuTestRig.started(SmmuTestRig.smallQueues().stage1(false).ssidBits(0).twoLevelCd(false)
                .asid16(false).build());
        assertLegal(Command.tlbiS12Vmall(3));
        assertIllegal(switch (op) {
            case "TLBI_NH_ALL" -> Command.tlbiNhAll(3);
            case "TLBI_NH_ASID" -> Command.tlbiNhAsid(3, 1);
            case "TLBI_NH_VA" -> Command.tlbiNhVa(3, 1, 0x1000, true);
            default -> Command.tlbiNhVaa(3, 0x1000, true);
        });
    }

    @Test
    void atcInvNeedsAts() {
        assertIllegal(Command.atcInvAll(1));
        rig = SmmuTestRig.started(SmmuTestRig.smallQueues().ats(true).build());
        assertLegal(Command.atcInvAll(1));
        assertLegal(Command.atcInv(1, true, 3, false, 0x4000, 2));
    }

    @Test
    void priRespNeedsPri() {
        assertIllegal(Command.priResp(1, false, 0, 5, Command.PRI_RESP_SUCCESS));
        rig = SmmuTestRig.started(SmmuTestRig.smallQueues().ats(true).pri(true).build());
        assertLegal(Command.priResp(1, false, 0, 5, Command.PRI_RESP_SUCCESS));
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"TLBI_EL2_ALL", "TLBI_EL2_ASID", "TLBI_EL2_VA", "TLBI_EL2_VAA", "TLBI_EL3_ALL",
        "TLBI_EL3_VA"})
    void hypervisorAndEl3InvalidationsAreIllegalWithoutHypOnTheNonSecureQueue(String op) {
        assertIllegal(switch (op) {
            case "TLBI_EL2_ALL" -> Command.tlbiEl2All();
            case "TLBI_EL2_ASID" -> Command.tlbiEl2Asid(1);
            case "TLBI_EL2_VA" -> Command.tlbiEl2Va(1, 0x1000, true);
            case "TLBI_EL2_VAA" -> Command.tlbiEl2Vaa(0x1000, true);
            case "TLBI_EL3_ALL" -> Command.tlbiEl3All();
            default -> Command.tlbiEl3Va(0x1000, true);
        });
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"CFGI_STE", "CFGI_STE_RANGE", "CFGI_CD", "CFGI_CD_ALL"})
    void secureCfgiOnTheNonSecureQueueIsIllegal(String op) {
        Command c = switch (op) {
            case "CFGI_STE" -> Command.cfgiSte(1, true);
            case "CFGI_STE_RANGE" -> Command.cfgiSteRange(1, 3);
            case "CFGI_CD" -> Command.cfgiCd(1, 2, true);
            default -> Command.cfgiCdAll(1);
        };
        int at = rig.cmdqProd();
        long sync = Command.cmdSync(Command.CS_NONE).dw0();

        rig.submitWords(c.dw0() | Command.SSEC.mask(), c.dw1(), sync, 0);

        assertStoppedAt(at, QueuePointer.CERROR_ILL);
    }

    @Test
    void prefetchResumeAndStallTermAreAcceptedAndDoNothingVisible() {
        StaleDomains.Domain a = new StaleDomains(rig).s1(1, 0, 1, 1);

        assertLegal(Command.prefetchConfig(1, false, 0));
        assertLegal(Command.prefetchAddr(1, false, 0, a.va(0), 0));
        assertLegal(Command.resume(1, 7, Command.RESUME_RETRY));
        assertLegal(Command.stallTerm(1));

        a.expect("o");
    }

    /**
     * Bits outside a command's fields (RES0) are not looked at: the command runs as if they were zero, as QEMU does
     * (this model's choice; Linux never sets them).
     */
    @Test
    void res0BitsAreIgnored() {
        StaleDomains.Domain a = new StaleDomains(rig).s1(1, 0, 1, 2);
        Command tlbi = Command.tlbiNhAsid(0, 1);
        UnaryOperator<Long> dirty0 = w -> w | ~Command.definedMask(tlbi.opcode(), 0);
        long dw1 = ~Command.definedMask(tlbi.opcode(), 1);
        assertThat(dw1).isEqualTo(-1L); // TLBI_NH_ASID has no dw1 field at all

        rig.submitWords(dirty0.apply(tlbi.dw0()), dw1, Command.cmdSync(Command.CS_NONE).dw0(), 0);

        assertThat(cmdqErrActive()).isFalse();
        assertThat(rig.cmdqConsPointer()).isEqualTo(rig.cmdqProd());
        a.expect("NN");
    }
}
