package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.device.FuzzWords;
import org.iommuemu.device.machine.DmaEngine;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.Translation;
import org.junit.jupiter.api.Timeout;

/**
 * Jazzer targets for the SMMUv3 model: arbitrary MMIO sequences, arbitrary command-queue entries, arbitrary STE
 * and CD words, arbitrary page-table memory under a walk. Each input starts from a freshly brought-up SMMU (the
 * {@link SmmuTestRig}: Linux's bring-up, a stage-1 stream on SID 1 and a stage-2 stream on SID 2), so the fuzzer
 * starts from a device that translates.
 *
 * <p>A finding is any exception or error escaping the device, or an input that runs past its timeout. Guest
 * mistakes must end in architected outcomes (GERROR, CERROR_*, events, translation faults). Without
 * {@code JAZZER_FUZZ} these run the committed corpus under {@code src/test/resources} as ordinary tests; see
 * docs/FUZZING.md.
 */
class SmmuV3FuzzTest {
    private static final long IOVA1 = 0x4000_0000L;
    private static final long IPA2 = 0x2000_0000L;
    private static final int[] OPCODES = {CommandOp.PREFETCH_CONFIG, CommandOp.PREFETCH_ADDR, CommandOp.CFGI_STE,
        CommandOp.CFGI_STE_RANGE, CommandOp.CFGI_CD, CommandOp.CFGI_CD_ALL, CommandOp.TLBI_NH_ALL,
        CommandOp.TLBI_NH_ASID, CommandOp.TLBI_NH_VA, CommandOp.TLBI_NH_VAA, CommandOp.TLBI_EL3_ALL,
        CommandOp.TLBI_EL3_VA, CommandOp.TLBI_EL2_ALL, CommandOp.TLBI_EL2_ASID, CommandOp.TLBI_EL2_VA,
        CommandOp.TLBI_EL2_VAA, CommandOp.TLBI_S12_VMALL, CommandOp.TLBI_S2_IPA, CommandOp.TLBI_NSNH_ALL,
        CommandOp.ATC_INV, CommandOp.PRI_RESP, CommandOp.RESUME, CommandOp.STALL_TERM, CommandOp.CMD_SYNC};

    /** The rig every input starts from. */
    private static SmmuTestRig rig() {
        SmmuTestRig rig = SmmuTestRig.started();
        rig.stage1Stream(1, 1, IOVA1, rig.page());
        rig.stage2Stream(2, 2, IPA2, rig.page());
        return rig;
    }

    /** Register writes and reads at arbitrary offsets and widths, with a translation or a DMA now and then. */
    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void mmio(FuzzedDataProvider data) {
        SmmuTestRig rig = rig();
        Ops ops = new Ops(rig);
        long size = rig.smmu.mmioSize();
        int n = data.consumeInt(1, 48);
        for (int i = 0; i < n && data.remainingBytes() > 0; i++) {
            int op = data.consumeInt(0, 9);
            if (op <= 6) {
                int width = data.consumeBoolean() ? 8 : 4;
                long offset = offset(data, size, width);
                if (op <= 4) {
                    long value = data.consumeLong();
                    rig.smmu.mmioWrite(offset, width, width == 4 ? value & 0xFFFF_FFFFL : value);
                } else {
                    long v = rig.smmu.mmioRead(offset, width);
                    assertThat(width == 8 || (v >>> 32) == 0).as("a 32-bit read fits 32 bits").isTrue();
                }
            } else if (op <= 8) {
                ops.translate(data);
            } else {
                ops.dma(data);
            }
        }
        // Whatever was programmed, a reset returns the device to a disabled, error-free state.
        rig.smmu.reset();
        assertThat(rig.read32(SmmuV3Registers.CR0ACK)).isZero();
        assertThat(rig.gerror() ^ rig.gerrorn()).isZero();
    }

    /**
     * Arbitrary 128-bit commands (opcode often a real one, the rest arbitrary) submitted in batches, with Linux's
     * recovery from a command error; at the end a CMD_SYNC must still drain the queue without a new error.
     */
    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void commandQueue(FuzzedDataProvider data) {
        SmmuTestRig rig = rig();
        Ops ops = new Ops(rig);
        int batches = data.consumeInt(1, 8);
        for (int b = 0; b < batches && data.remainingBytes() > 0; b++) {
            int n = data.consumeInt(1, 6);
            long[] words = new long[2 * n];
            for (int i = 0; i < n; i++) {
                long dw0 = data.consumeLong();
                if (data.consumeBoolean()) {
                    dw0 = (dw0 & ~0xFFL) | data.pickValue(OPCODES);
                }
                words[2 * i] = dw0;
                words[2 * i + 1] = data.consumeLong();
            }
            recover(rig);
            rig.submitWords(words);
            ops.translate(data);
        }
        recover(rig);
        rig.submit(Command.cmdSync(Command.CS_NONE));
        assertThat(rig.gerror() ^ rig.gerrorn()).as("GERROR after a final CMD_SYNC").isZero();
        assertThat(QueuePointer.indexAndWrap(rig.cmdqCons(), rig.cmdqLog2())).as("CMDQ_CONS after a final CMD_SYNC")
                .isEqualTo(QueuePointer.indexAndWrap(rig.cmdqProd(), rig.cmdqLog2()));
        rig.events();
    }

    /**
     * Arbitrary changes to the STEs of the stage-1 and stage-2 streams, to their CD and to an unused STE, then
     * (usually) CFGI_ALL and translations on the streams: every outcome must be an architected one.
     */
    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void descriptors(FuzzedDataProvider data) {
        SmmuTestRig rig = SmmuTestRig.started();
        SmmuTestRig.Stage1Stream s1 = rig.stage1Stream(1, 1, IOVA1, rig.page());
        rig.stage2Stream(2, 2, IPA2, rig.page());
        Ops ops = new Ops(rig);
        int rounds = data.consumeInt(1, 4);
        for (int r = 0; r < rounds && data.remainingBytes() > 0; r++) {
            int which = data.consumeInt(0, 3);
            long at = switch (which) {
                case 0 -> rig.steAddress(1);
                case 1 -> rig.steAddress(2);
                case 2 -> rig.steAddress(data.consumeInt(3, 255));
                default -> s1.cdTable() + (long) data.consumeInt(0, 1) * 64;
            };
            for (int w = 0; w < 8; w++) {
                rig.w64(at + 8L * w, FuzzWords.mutate(data, rig.r64(at + 8L * w)));
            }
            if (data.consumeInt(0, 3) != 0) {
                recover(rig);
                rig.submit(Command.cfgiAll(), Command.tlbiNhAll(0), Command.tlbiS12Vmall(2),
                        Command.cmdSync(Command.CS_NONE));
            }
            int t = data.consumeInt(1, 4);
            for (int i = 0; i < t; i++) {
                ops.translate(data);
            }
        }
        rig.events();
    }

    /**
     * Arbitrary page-table memory under a stage-1 (4 KB, 16 KB or 64 KB granule) or stage-2 walk: entries that point
     * at tables of a small pool, leaves with arbitrary attributes, arbitrary words, then translations, with or
     * without TLB invalidation in between.
     */
    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void pageTables(FuzzedDataProvider data) {
        SmmuTestRig rig = SmmuTestRig.started();
        int kind = data.consumeInt(0, 3);
        int granuleLg2 = kind == 1 ? 14 : kind == 2 ? 16 : 12;
        boolean stage2 = kind == 3;
        PageTable pt = stage2 ? rig.stage2(12, 40) : rig.stage1(granuleLg2, kind == 2 ? 42 : 48);
        long mapped = 0x1_0000_0000L;
        rig.map(pt, mapped, rig.pages(4, "data"), 1L << granuleLg2, Prot.READ | Prot.WRITE);
        int sid = 5;
        if (stage2) {
            rig.installSte(sid, SmmuTestRig.s2Ste(9, pt));
        } else {
            long cds = rig.cdTable(0);
            rig.writeCd(cds, 0, SmmuTestRig.cdFor(pt, 9));
            rig.installSte(sid, Ste.stage1(cds, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0));
        }
        long granule = 1L << granuleLg2;
        long pool = rig.pages(granuleLg2 - 12 + 2, "pool");
        long rootBytes = stage2 ? 2 * granule : granule;
        long ias = stage2 ? 40 : kind == 2 ? 42 : 48;
        Translation out = new Translation();
        int steps = data.consumeInt(1, 40);
        for (int i = 0; i < steps && data.remainingBytes() > 0; i++) {
            int op = data.consumeInt(0, 7);
            if (op <= 4) {
                long table = data.consumeBoolean() ? pt.root() : pool + granule * data.consumeInt(0, 3);
                long limit = table == pt.root() ? rootBytes : granule;
                long slot = table + 8L * data.consumeLong(0, limit / 8 - 1);
                long value = switch (data.consumeInt(0, 3)) {
                    case 0 -> (pool + granule * data.consumeInt(0, 3)) | 0b11
                            | (data.consumeLong() & 0xFFF8_0000_0000_0000L);
                    case 1 -> (pool + granule * data.consumeInt(0, 3)) | (data.consumeLong() & 0xFFF0_0000_0000_0FFFL);
                    case 2 -> 0;
                    default -> data.consumeLong();
                };
                rig.w64(slot, value);
            } else if (op == 5) {
                recover(rig);
                rig.submit(stage2 ? Command.tlbiS12Vmall(9) : Command.tlbiNhAll(0),
                        Command.cmdSync(Command.CS_NONE));
            } else {
                long iova = data.consumeBoolean() ? mapped + data.consumeLong(0, granule * 4)
                        : data.consumeLong() & ((1L << ias) - 1);
                Translation t = rig.smmu.translate(sid, -1, iova, data.consumeInt(0, 7), out);
                assertThat(t.outcome()).isNotNull();
            }
        }
        rig.events();
    }

    // ------------------------------------------------------------------------------------ helpers

    /** Translations and DMA on behalf of a master, without allocating per access. */
    private static final class Ops {
        private final SmmuTestRig rig;
        private final DmaEngine engine;
        private final DmaOutcome outcome = new DmaOutcome();
        private final Translation translation = new Translation();
        private final byte[] buffer = new byte[8192];

        Ops(SmmuTestRig rig) {
            this.rig = rig;
            this.engine = new DmaEngine(rig.ram);
        }

        void translate(FuzzedDataProvider data) {
            int sid = data.consumeInt(0, 300);
            int ssid = data.consumeInt(-1, 3);
            long iova = data.consumeBoolean() ? IOVA1 + data.consumeInt(0, 0x2000) : data.consumeLong();
            Translation t = rig.smmu.translate(sid, ssid, iova, data.consumeInt(0, 7), translation);
            assertThat(t.outcome()).isNotNull();
        }

        void dma(FuzzedDataProvider data) {
            int sid = data.consumeInt(0, 3);
            long iova = IOVA1 + data.consumeInt(-64, 0x1100);
            int len = data.consumeInt(0, buffer.length);
            if (data.consumeBoolean()) {
                engine.write(rig.smmu, sid, -1, iova, buffer, 0, len, data.consumeInt(0, 7), outcome);
            } else {
                engine.read(rig.smmu, sid, -1, iova, buffer, 0, len, data.consumeInt(0, 7), outcome);
            }
        }
    }

    /** An offset inside the window, aligned to {@code width}: usually near a register page, sometimes anywhere. */
    private static long offset(FuzzedDataProvider data, long size, int width) {
        long offset = switch (data.consumeInt(0, 3)) {
            case 0 -> data.consumeLong(0, 0x1FF) * 4;
            case 1 -> 0x10000 + data.consumeLong(0, 0x3F) * 4;
            case 2 -> 0xE00 + data.consumeLong(0, 0x7F) * 4;
            default -> data.consumeLong(0, size / 4 - 1) * 4;
        };
        offset &= ~(long) (width - 1);
        return Math.min(offset, size - width);
    }

    /**
     * Linux's recovery from a command error: replaces the entry CMDQ_CONS stops at with a CMD_SYNC, acknowledges
     * GERROR and moves PROD again; also acknowledges any other global error. Every refused command takes one round,
     * so a queue full of bad ones takes as many rounds as it has entries.
     */
    private static void recover(SmmuTestRig rig) {
        for (int i = 0; i <= 1 << rig.cmdqLog2(); i++) {
            // CMDQ_CONS.ERR only means something while GERROR.CMDQ_ERR is active; it keeps its value afterwards
            boolean error = (rig.gerror() ^ rig.gerrorn()) != 0;
            if (!error && QueuePointer.space(rig.cmdqProd(), rig.cmdqCons(), rig.cmdqLog2()) > 8) {
                return;
            }
            if ((rig.gerror() ^ rig.gerrorn()) != 0) {
                rig.replaceBadCommandAndAck(Command.cmdSync(Command.CS_NONE));
            }
            rig.write32(SmmuV3Registers.CMDQ_PROD, rig.cmdqProd());
        }
        throw new AssertionError("the command queue does not drain after recovery: CONS "
                + Integer.toHexString(rig.cmdqCons()) + ", PROD " + Integer.toHexString(rig.cmdqProd()));
    }
}
