package org.iommuemu.device.smmuv3.driver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Consumer;
import org.iommuemu.core.driver.smmuv3.SmmuHost;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverException;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/** Command submission against the real device: batching, both ways of waiting for CMD_SYNC, errors, full queues. */
class SmmuV3DriverCommandQueueTest {
    private static List<Command> cfgiStes(int n) {
        List<Command> list = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            list.add(Command.cfgiSte(i, true));
        }
        return list;
    }

    private static void assertQueueIdle(DriverRig rig) {
        int prod = (int) rig.read32(SmmuRegs.CMDQ_PROD);
        int cons = (int) rig.read32(SmmuRegs.CMDQ_CONS);
        assertThat(QueuePointer.isEmpty(prod, cons, rig.driver.layout().cmdqLog2())).as("CMDQ_CONS reached PROD")
                .isTrue();
    }

    @Test
    void batchesOfMoreThan64CommandsAreSplitWithOneSyncEach() {
        DriverRig rig = DriverRig.started();
        SmmuV3Driver.Stats before = rig.driver.stats();
        long syncsBefore = rig.executed(CommandOp.CMD_SYNC);

        rig.driver.submit(cfgiStes(200));

        SmmuV3Driver.Stats after = rig.driver.stats();
        assertThat(after.commands() - before.commands()).isEqualTo(200);
        assertThat(after.syncs() - before.syncs()).as("64 + 64 + 64 + 8").isEqualTo(4);
        assertThat(rig.executed(CommandOp.CFGI_STE)).isEqualTo(200);
        assertThat(rig.executed(CommandOp.CMD_SYNC) - syncsBefore).isEqualTo(4);
        assertQueueIdle(rig);
    }

    @Test
    void aSmallQueueWrapsAndTakesSmallerBatches() {
        DriverRig rig = DriverRig.started(SmmuV3Config.builder().cmdqLog2(3).build());
        assertThat(rig.driver.layout().maxBatch()).as("8 entries: 7 commands and a CMD_SYNC").isEqualTo(7);
        long syncsBefore = rig.driver.stats().syncs();

        rig.driver.submit(cfgiStes(50));
        rig.driver.submit(Command.tlbiNhAll(0), Command.tlbiS12Vmall(3));

        assertThat(rig.driver.stats().syncs() - syncsBefore).isEqualTo(8 + 1);
        assertThat(rig.executed(CommandOp.CFGI_STE)).isEqualTo(50);
        assertThat(rig.executed(CommandOp.TLBI_NH_ALL)).isEqualTo(1);
        assertThat(rig.executed(CommandOp.TLBI_S12_VMALL)).isEqualTo(1);
        assertQueueIdle(rig);
    }

    @Test
    void syncCompletionIsPolledThroughItsMsiWrite() {
        DriverRig rig = DriverRig.started();
        assertThat(rig.driver.layout().msiPolling()).isTrue();
        long msisBefore = rig.interruptsFrom("cmd-sync");

        rig.driver.submit(cfgiStes(3));
        rig.driver.sync();

        assertThat(rig.interruptsFrom("cmd-sync") - msisBefore).as("one MSI per CMD_SYNC").isEqualTo(2);
        assertThat(rig.interrupts).filteredOn(r -> r.source().equals("cmd-sync"))
                .allSatisfy(r -> assertThat(r.msi() && r.landedInRam()).isTrue());
    }

    @Test
    void withoutMsiSyncCompletionIsPolledThroughCons() {
        DriverRig rig = DriverRig.started(SmmuV3Config.builder().msi(false).build());
        assertThat(rig.driver.layout().msiPolling()).isFalse();
        long syncsBefore = rig.driver.stats().syncs();

        rig.driver.submit(cfgiStes(100));

        assertThat(rig.driver.stats().syncs() - syncsBefore).isEqualTo(2);
        assertThat(rig.interruptsFrom("cmd-sync")).isZero();
        assertThat(rig.interruptsFrom("sev")).as("CS=SEV on an SMMU with SEV").isEqualTo(rig.driver.stats().syncs());
        assertQueueIdle(rig);

        DriverRig plain = DriverRig.started(SmmuV3Config.builder().msi(false).sev(false).build());
        plain.driver.submit(cfgiStes(5));
        assertThat(plain.interrupts).as("CS=NONE: no signal at all").isEmpty();
        assertThat(plain.executed(CommandOp.CFGI_STE)).isEqualTo(5);

        DriverRig optedOut = DriverRig.started(SmmuV3Config.defaults(),
                SmmuV3DriverOptions.defaults().withMsiPolling(false));
        assertThat(optedOut.driver.layout().msiPolling()).isFalse();
        optedOut.driver.submit(cfgiStes(5));
        assertThat(optedOut.interruptsFrom("cmd-sync")).isZero();
    }

    /** A host that never delivers interrupts: recovery then rests on the submitter's own polling. */
    private static SmmuHost withoutInterrupts(SmmuHost host) {
        return new ForwardingHost(host) {
            @Override
            public void onInterrupt(Consumer<Irq> handler) {
                // no interrupt path
            }
        };
    }

    @ParameterizedTest(name = "interrupts delivered: {0}")
    @ValueSource(booleans = {true, false})
    void anIllegalCommandIsReportedSkippedAndTheQueueGoesOn(boolean interrupts) {
        for (boolean msi : new boolean[] {true, false}) {
            DriverRig rig = new DriverRig(SmmuV3Config.builder().msi(msi).build());
            rig.start(interrupts ? rig.host : withoutInterrupts(rig.host), SmmuV3DriverOptions.defaults());
            long badDw0 = 0xFF; // no such opcode

            rig.driver.submitRaw(badDw0, 0x1234);

            assertThat(rig.commandErrors).as("msi=%s", msi).hasSize(1);
            long[] e = rig.commandErrors.get(0);
            assertThat(e[0]).isEqualTo(QueuePointer.CERROR_ILL);
            assertThat(e[2]).isEqualTo(badDw0);
            assertThat(e[3]).isEqualTo(0x1234);
            assertThat(rig.driver.stats().commandErrors()).isEqualTo(1);
            assertThat(Gerror.active((int) rig.read32(SmmuRegs.GERROR), (int) rig.read32(SmmuRegs.GERRORN)))
                    .as("CMDQ_ERR acknowledged").isZero();
            assertQueueIdle(rig);

            rig.driver.submit(Command.cfgiSte(9, true), Command.tlbiNsnhAll());
            assertThat(rig.executed(CommandOp.CFGI_STE)).isEqualTo(1);
            assertThat(rig.executed(CommandOp.TLBI_NSNH_ALL)).isEqualTo(2);
            assertThat(rig.commandErrors).hasSize(1);
        }
    }

    @Test
    void aCommandTheSmmuDoesNotImplementInTheMiddleOfABatchIsSkippedAlone() {
        DriverRig rig = DriverRig.started();
        long nsnhBefore = rig.executed(CommandOp.TLBI_NSNH_ALL);

        // TLBI_EL2_ALL without IDR0.HYP is CERROR_ILL
        rig.driver.submit(Command.cfgiSte(1, true), Command.tlbiEl2All(), Command.tlbiNsnhAll());

        assertThat(rig.commandErrors).hasSize(1);
        assertThat(Command.opcode(rig.commandErrors.get(0)[2])).isEqualTo(CommandOp.TLBI_EL2_ALL);
        assertThat(rig.commandErrors.get(0)[1]).as("queue index of the bad command").isEqualTo(2 * 2 + 1);
        assertThat(rig.executed(CommandOp.CFGI_STE)).isEqualTo(1);
        assertThat(rig.executed(CommandOp.TLBI_NSNH_ALL) - nsnhBefore).as("the command after it ran").isEqualTo(1);
        assertThat(rig.globalErrors).as("reported through the GERROR interrupt").contains(Gerror.CMDQ_ERR);
    }

    @Test
    void aSlowConsumerIsWaitedFor() {
        DriverRig rig = new DriverRig(SmmuV3Config.builder().cmdqLog2(3).msi(false).build());
        int[] staleReads = {0};
        int[] lastCons = {0};
        rig.start(new ForwardingHost(rig.host) {
            @Override
            public long mmioRead(long offset, int width) {
                long v = super.mmioRead(offset, width);
                if (offset == SmmuRegs.CMDQ_CONS && staleReads[0] > 0) {
                    staleReads[0]--;
                    return lastCons[0]; // CONS seen late, as from a device still working
                }
                if (offset == SmmuRegs.CMDQ_CONS) {
                    lastCons[0] = (int) v;
                }
                return v;
            }
        }, SmmuV3DriverOptions.defaults());
        staleReads[0] = 5;

        rig.driver.submit(cfgiStes(20));

        assertThat(staleReads[0]).isZero();
        assertThat(rig.executed(CommandOp.CFGI_STE)).isEqualTo(20);
        assertQueueIdle(rig);
    }

    @ParameterizedTest(name = "msi: {0}")
    @ValueSource(booleans = {true, false})
    void aQueueThatIsNeverConsumedTimesOutClearly(boolean msi) {
        DriverRig rig = new DriverRig(SmmuV3Config.builder().cmdqLog2(3).msi(msi).build());
        boolean[] stuck = {false};
        rig.start(new ForwardingHost(rig.host) {
            @Override
            public void mmioWrite(long offset, int width, long value) {
                if (!(stuck[0] && offset == SmmuRegs.CMDQ_PROD)) {
                    super.mmioWrite(offset, width, value);
                }
            }
        }, SmmuV3DriverOptions.defaults().withQueuePolls(20));
        stuck[0] = true;

        assertThatThrownBy(() -> rig.driver.submit(cfgiStes(3)))
                .isInstanceOfSatisfying(SmmuV3DriverException.class,
                        e -> assertThat(e.kind()).isEqualTo(SmmuV3DriverException.Kind.QUEUE_TIMEOUT))
                .hasMessageStartingWith("CMD_SYNC did not complete after 20 polls of "
                        + (msi ? "its MSI word" : "CMDQ_CONS"))
                .hasMessageContaining("PROD=0x8, CONS=0x4");
        // 4 entries still pending in an 8-entry queue: 5 commands and a sync do not fit
        assertThatThrownBy(() -> rig.driver.submit(cfgiStes(5)))
                .isInstanceOfSatisfying(SmmuV3DriverException.class,
                        e -> assertThat(e.kind()).isEqualTo(SmmuV3DriverException.Kind.QUEUE_TIMEOUT))
                .hasMessage("command queue full: no room for 6 entries after 20 polls of CMDQ_CONS"
                        + " (PROD=0x8, CONS=0x4, 2^3 entries)");
    }

    @Test
    void concurrentSubmittersAreSerialised() throws Exception {
        DriverRig rig = DriverRig.started(SmmuV3Config.builder().cmdqLog2(6).build());
        long before = rig.driver.stats().commands();
        ExecutorService pool = Executors.newFixedThreadPool(3);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < 3; t++) {
                done.add(pool.submit(() -> {
                    for (int i = 0; i < 50; i++) {
                        rig.driver.submit(cfgiStes(10));
                    }
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
        } finally {
            pool.shutdown();
        }
        assertThat(rig.driver.stats().commands() - before).isEqualTo(3 * 50 * 10);
        assertThat(rig.executed(CommandOp.CFGI_STE)).isEqualTo(3 * 50 * 10);
        assertThat(rig.commandErrors).isEmpty();
        assertQueueIdle(rig);
    }
}
