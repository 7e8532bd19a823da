package org.iommuemu.core.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.management.ManagementFactory;
import java.util.Random;
import java.util.stream.Stream;
import org.iommuemu.core.smmuv3.Command.Features;
import org.iommuemu.core.smmuv3.Command.SyncSignal;
import org.iommuemu.core.smmuv3.Command.TlbiRange;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Command against spec SMMUV3.md §7: every factory against words worked out by hand from the table, the
 * per-opcode layouts, range and ATC helpers, CMD_SYNC, the legality rules of {@link Command#check} one by
 * one, seeded random round trips and allocation-free raw-word decoding.
 */
class CommandTest {

    private static final Features NONE = new Features(false, false, false, false, false, false, false, false);

    // ------------------------------------------------------------------ every factory, bit-exact

    static Stream<Arguments> factories() {
        return Stream.of(
                // dw0: opcode | SSV bit 11 | SSID [31:12] | SID [63:32]
                row("PREFETCH_CONFIG", Command.prefetchConfig(9, true, 3), 0x0000_0009_0000_3801L, 0),
                // dw1: Size [4:0] | Addr [63:12]
                row("PREFETCH_ADDR", Command.prefetchAddr(9, false, 0, 0x1234_5000L, 4),
                        0x0000_0009_0000_0002L, 0x1234_5004L),
                // dw1: Leaf bit 0
                row("CFGI_STE", Command.cfgiSte(0x10, true), 0x0000_0010_0000_0003L, 1),
                // dw1: Range [4:0]
                row("CFGI_STE_RANGE", Command.cfgiSteRange(0x123, 3), 0x0000_0123_0000_0004L, 3),
                row("CFGI_ALL", Command.cfgiAll(), 0x4L, 31),
                row("CFGI_CD", Command.cfgiCd(7, 0x12345, true), 0x0000_0007_1234_5005L, 1),
                row("CFGI_CD_ALL", Command.cfgiCdAll(7), 0x0000_0007_0000_0006L, 0),
                // dw0: VMID [47:32] | ASID [63:48]
                row("TLBI_NH_ALL", Command.tlbiNhAll(5), 0x0000_0005_0000_0010L, 0),
                row("TLBI_NH_ASID", Command.tlbiNhAsid(5, 0x77), 0x0077_0005_0000_0011L, 0),
                // dw1: Leaf | VA [63:12]
                row("TLBI_NH_VA", Command.tlbiNhVa(5, 0x77, 0x0000_FFFF_8000_0000L, true),
                        0x0077_0005_0000_0012L, 0x0000_FFFF_8000_0001L),
                // 96 pages of 4K, as Linux splits them: SCALE = ctz(96) = 5, NUM = (96 >> 5) - 1 = 2;
                // dw0 NUM [16:12], SCALE [24:20]; dw1 TTL 3 [9:8], TG 1 [11:10]
                row("TLBI_NH_VA range", Command.tlbiNhVa(5, 0x77, 0x8000_0000L, true).withRange(1, 3, 2, 5),
                        0x0077_0005_0050_2012L, 0x8000_0701L),
                row("TLBI_NH_VAA", Command.tlbiNhVaa(5, 0x4000_0000L, false), 0x0000_0005_0000_0013L, 0x4000_0000L),
                row("TLBI_EL3_ALL", Command.tlbiEl3All(), 0x18L, 0),
                row("TLBI_EL3_VA", Command.tlbiEl3Va(0x1000L, true), 0x1AL, 0x1001L),
                row("TLBI_EL2_ALL", Command.tlbiEl2All(), 0x20L, 0),
                row("TLBI_EL2_ASID", Command.tlbiEl2Asid(3), 0x0003_0000_0000_0021L, 0),
                row("TLBI_EL2_VA", Command.tlbiEl2Va(3, 0x2000L, true), 0x0003_0000_0000_0022L, 0x2001L),
                row("TLBI_EL2_VAA", Command.tlbiEl2Vaa(0x3000L, false), 0x23L, 0x3000L),
                row("TLBI_S12_VMALL", Command.tlbiS12Vmall(0xBEEF), 0x0000_BEEF_0000_0028L, 0),
                // dw1: IPA [51:12]
                row("TLBI_S2_IPA", Command.tlbiS2Ipa(1, 0x000F_FFFF_FFFF_F000L, true),
                        0x0000_0001_0000_002AL, 0x000F_FFFF_FFFF_F001L),
                // 64K granule (TG 3), level 2 hint, NUM 31, SCALE 0
                row("TLBI_S2_IPA range", Command.tlbiS2Ipa(1, 0x4000_0000L, false).withRange(3, 2, 31, 0),
                        0x0000_0001_0001_F02AL, 0x4000_0E00L),
                row("TLBI_NSNH_ALL", Command.tlbiNsnhAll(), 0x30L, 0),
                // dw0: Global bit 9 | SSV | SSID | SID; dw1: Size [5:0] | Addr [63:12]
                row("ATC_INV", Command.atcInv(0x20, true, 5, false, 0x10000L, 4), 0x0000_0020_0000_5840L, 0x10004L),
                row("ATC_INV global", Command.atcInv(0x20, false, 0, true, 0, 0), 0x0000_0020_0000_0240L, 0),
                row("ATC_INV all", Command.atcInvAll(0x20), 0x0000_0020_0000_0040L, 52),
                // dw1: PRGI [8:0] | Resp [13:12]
                row("PRI_RESP", Command.priResp(0x20, true, 5, 0x1FF, Command.PRI_RESP_SUCCESS),
                        0x0000_0020_0000_5841L, 0x21FFL),
                // dw0: Resp [13:12] (1 = retry); dw1: STAG [15:0]
                row("RESUME", Command.resume(0x20, 0xABCD, Command.RESUME_RETRY), 0x0000_0020_0000_1044L, 0xABCDL),
                row("RESUME abort", Command.resume(1, 0, Command.RESUME_ABORT), 0x0000_0001_0000_2044L, 0),
                row("STALL_TERM", Command.stallTerm(0x20), 0x0000_0020_0000_0045L, 0),
                // dw0: CS [13:12] | MSH [23:22] | MSIAttr [27:24] | MSIData [63:32]; dw1: MSIAddr [51:2]
                row("CMD_SYNC none", Command.cmdSync(Command.CS_NONE), 0x46L, 0),
                row("CMD_SYNC Linux SEV", Command.cmdSyncAsLinux(0), 0x0FC0_2046L, 0),
                row("CMD_SYNC Linux MSI poll", Command.cmdSyncAsLinux(0x8000_0120L), 0x0FC0_1046L, 0x8000_0120L),
                row("CMD_SYNC all MSI fields", Command.cmdSync(Command.CS_IRQ, 2, 0x1, 0xDEAD_BEEF, 0x000F_FFFF_FFFF_FFFCL),
                        0xDEAD_BEEF_0180_1046L, 0x000F_FFFF_FFFF_FFFCL));
    }

    private static Arguments row(String name, Command c, long dw0, long dw1) {
        return Arguments.of(name, c, dw0, dw1);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("factories")
    void factoryEncodesAsTheTableSays(String name, Command c, long dw0, long dw1) {
        assertThat(c.dw0()).as("dw0 %s", Long.toHexString(c.dw0())).isEqualTo(dw0);
        assertThat(c.dw1()).as("dw1 %s", Long.toHexString(c.dw1())).isEqualTo(dw1);
        assertThat(Command.decode(dw0, dw1)).isEqualTo(c);
        long[] words = new long[4];
        c.encode(words, 2);
        assertThat(Command.decode(words, 2)).isEqualTo(c);
        assertThat(c.encode()).containsExactly(dw0, dw1);
        assertThat(c.check(Features.ALL) == null || c.opcode() == CommandOp.TLBI_EL3_ALL
                || c.opcode() == CommandOp.TLBI_EL3_VA).as("legal with every feature").isTrue();
    }

    @Test
    void everyKnownOpcodeHasAFactoryRow() {
        var covered = factories().map(a -> ((Command) a.get()[1]).opcode()).distinct().sorted().mapToInt(i -> i)
                .toArray();
        assertThat(covered).containsExactly(CommandOp.all());
    }

    // ------------------------------------------------------------------ raw-word accessors

    @ParameterizedTest(name = "{0}")
    @MethodSource("factories")
    void rawWordAccessorsAgreeWithTheRecord(String name, Command c, long dw0, long dw1) {
        assertThat(Command.opcode(dw0)).isEqualTo(c.opcode());
        assertThat(Command.address(dw0, dw1)).isEqualTo(c.address());
        assertThat(Command.size(dw0, dw1)).isEqualTo(c.size());
        if (c.streamId() != 0) {
            assertThat(Command.streamId(dw0)).isEqualTo(c.streamId());
        }
        if (c.ssv()) {
            assertThat(Command.ssv(dw0)).isTrue();
            assertThat(Command.substreamId(dw0)).isEqualTo(c.substreamId());
        }
        if (CommandOp.isTlbiByAddress(c.opcode())) {
            assertThat(Command.num(dw0)).isEqualTo(c.num());
            assertThat(Command.scale(dw0)).isEqualTo(c.scale());
            assertThat(Command.leaf(dw1)).isEqualTo(c.leaf());
            assertThat(Command.ttl(dw1)).isEqualTo(c.ttl());
            assertThat(Command.tg(dw1)).isEqualTo(c.tg());
            assertThat(Command.vmid(dw0)).isEqualTo(c.vmid());
            assertThat(Command.asid(dw0)).isEqualTo(c.asid());
        }
        if (c.opcode() == CommandOp.CMD_SYNC) {
            assertThat(Command.syncCs(dw0)).isEqualTo(c.cs());
            assertThat(Command.syncMsiData(dw0)).isEqualTo(c.msiData());
            assertThat(Command.syncMsiAddr(dw1)).isEqualTo(c.msiAddr());
        }
        if (c.opcode() == CommandOp.CFGI_STE_RANGE) {
            assertThat(Command.range(dw1)).isEqualTo(c.range());
        }
    }

    @Test
    void rawWordDecodingAllocatesNothing() {
        java.lang.management.ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        Assumptions.assumeTrue(mx instanceof com.sun.management.ThreadMXBean,
                "needs com.sun.management.ThreadMXBean to count allocated bytes");
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) mx;
        Assumptions.assumeTrue(threads.isThreadAllocatedMemorySupported() && threads.isThreadAllocatedMemoryEnabled());
        long[] words = factories().flatMapToLong(a -> java.util.stream.LongStream.of((long) a.get()[2], (long) a.get()[3]))
                .toArray();
        int rounds = 20_000;
        long sink = exercise(words, rounds);
        long tid = Thread.currentThread().getId();
        long before = threads.getThreadAllocatedBytes(tid);
        sink += exercise(words, rounds);
        long allocated = threads.getThreadAllocatedBytes(tid) - before;
        assertThat(allocated).as("bytes allocated by %d rounds (sink %d)", rounds, sink).isLessThan(rounds);
    }

    private static long exercise(long[] words, int rounds) {
        long sink = 0;
        for (int r = 0; r < rounds; r++) {
            for (int i = 0; i < words.length; i += 2) {
                long dw0 = words[i];
                long dw1 = words[i + 1];
                sink += Command.opcode(dw0) + Command.streamId(dw0) + Command.address(dw0, dw1) + Command.tg(dw1)
                        + Command.size(dw0, dw1) + Command.tlbiRangeLength(Command.tg(dw1), Command.num(dw0),
                        Command.scale(dw0));
                String reason = Command.check(dw0, dw1, Features.ALL);
                sink += reason == null ? 1 : reason.length();
            }
        }
        return sink;
    }

    // ------------------------------------------------------------------ layouts and validation

    @Test
    void fieldsOutsideTheOpcodesLayoutAreRejected() {
        assertThatThrownBy(() -> new Command(CommandOp.TLBI_NH_ALL, false, false, 0, 7, 1, 0, 0, 0, false, 0, 0, 0, 0,
                0, false, 0, 0, 0, 0, 0, 0, 0, 0))
                .hasMessageContaining("TLBI_NH_ALL has no StreamID field");
        assertThatThrownBy(() -> Command.tlbiNhAll(1).withRange(1, 0, 0, 0))
                .hasMessageContaining("TLBI_NH_ALL has no TG field");
        assertThatThrownBy(() -> Command.cfgiSte(1, false).withRange(1, 0, 0, 0))
                .hasMessageContaining("CFGI_STE has no TG field");
        assertThatThrownBy(() -> new Command(0x7F, false, false, 0, 0, 0, 0, 0, 0, true, 0, 0, 0, 0, 0, false, 0, 0, 0,
                0, 0, 0, 0, 0))
                .hasMessageContaining("UNKNOWN_0x7f has no Leaf field");
        assertThatThrownBy(() -> Command.cmdSync(Command.CS_IRQ, 0, 0, 0, 0x1001L)).hasMessageContaining("MSIAddr");
        assertThatThrownBy(() -> Command.tlbiS2Ipa(1, 1L << 52, false)).hasMessageContaining("IPA");
        assertThatThrownBy(() -> Command.tlbiNhVa(1, 1, 0x1800L, false)).hasMessageContaining("VA");
        assertThatThrownBy(() -> Command.cfgiSteRange(0, 32)).hasMessageContaining("Range");
        assertThatThrownBy(() -> Command.prefetchAddr(0, false, 0, 0, 32)).hasMessageContaining("PREFETCH Size");
        assertThatThrownBy(() -> Command.atcInv(0, true, 1 << 20, false, 0, 0)).hasMessageContaining("SubstreamID");
    }

    @Test
    void decodeDropsBitsOutsideTheLayout() {
        // TLBI_NH_ALL with every other bit set: only the opcode and VMID survive.
        Command c = Command.decode(-1L << 8 | CommandOp.TLBI_NH_ALL, -1L);
        assertThat(c).isEqualTo(Command.tlbiNhAll(0xFFFF));
        // An unknown opcode keeps its opcode and nothing else.
        Command unknown = Command.decode(0xFFFF_FFFF_FFFF_FF07L, -1L);
        assertThat(unknown.opcode()).isEqualTo(0x07);
        assertThat(unknown.dw0()).isEqualTo(0x07);
        assertThat(unknown.dw1()).isZero();
        assertThat(unknown.toString()).startsWith("UNKNOWN_0x7[");
    }

    @Test
    void ssvAndSsecExistOnlyWhereTheTableHasThem() {
        // SSec (bit 10) is a CFGI field; on a TLBI the bit is RES0 and is dropped.
        assertThat(Command.decode(1L << 10 | CommandOp.CFGI_STE, 0).ssec()).isTrue();
        assertThat(Command.decode(1L << 10 | CommandOp.TLBI_NSNH_ALL, 0).ssec()).isFalse();
        // SSV (bit 11) exists on ATC_INV, not on CFGI_CD.
        assertThat(Command.decode(1L << 11 | CommandOp.ATC_INV, 0).ssv()).isTrue();
        assertThat(Command.decode(1L << 11 | CommandOp.CFGI_CD, 0).ssv()).isFalse();
    }

    @Test
    void definedMasks() {
        assertThat(Command.definedMask(CommandOp.CMD_SYNC, 0)).isEqualTo(0xFFFF_FFFF_0FC0_30FFL);
        assertThat(Command.definedMask(CommandOp.CMD_SYNC, 1)).isEqualTo(0x000F_FFFF_FFFF_FFFCL);
        assertThat(Command.definedMask(CommandOp.TLBI_NH_VA, 0)).isEqualTo(0xFFFF_FFFF_01F1_F0FFL);
        assertThat(Command.definedMask(CommandOp.TLBI_NH_VA, 1)).isEqualTo(0xFFFF_FFFF_FFFF_FF01L);
        assertThat(Command.definedMask(CommandOp.TLBI_S2_IPA, 1)).isEqualTo(0x000F_FFFF_FFFF_FF01L);
        assertThat(Command.definedMask(0x99, 0)).isEqualTo(0xFF);
        assertThat(Command.definedMask(0x99, 1)).isZero();
    }

    // ------------------------------------------------------------------ meaning helpers

    @Test
    void rangeTlbiSpan() {
        // The Linux-style 96-page range above: 3 * 2^5 pages of 4 KB from 0x80000000, leaf, level 3 hint.
        TlbiRange r = Command.tlbiNhVa(5, 0x77, 0x8000_0000L, true).withRange(1, 3, 2, 5).tlbiRange();
        assertThat(r).isEqualTo(new TlbiRange(0x8000_0000L, 96L << 12, 12, 3, true));
        assertThat(r.isSingleAddress()).isFalse();
        // 16K: (NUM+1) * 2^SCALE granules of 2^14
        assertThat(Command.tlbiRangeLength(2, 0, 0)).isEqualTo(1L << 14);
        assertThat(Command.tlbiRangeLength(3, 31, 0)).isEqualTo(32L << 16);
        // Largest: 32 * 2^31 * 64K = 2^52
        assertThat(Command.tlbiRangeLength(3, 31, 31)).isEqualTo(1L << 52);
        // TG = 0: a single address; NUM and SCALE are ignored.
        TlbiRange single = Command.tlbiNhVaa(1, 0x5000L, false).withRange(0, 2, 7, 3).tlbiRange();
        assertThat(single.isSingleAddress()).isTrue();
        assertThat(single.length()).isZero();
        assertThat(single.address()).isEqualTo(0x5000L);
        assertThat(single.leaf()).isFalse();
    }

    @Test
    void rangeRunningPast2To64IsCutAt2To64() {
        TlbiRange r = Command.tlbiEl2Vaa(0xFFFF_FFFF_FFFF_0000L, false).withRange(1, 0, 31, 31).tlbiRange();
        assertThat(r.length()).isEqualTo(0x1_0000L);
        assertThat(r.address() + r.length()).isZero();
    }

    @Test
    void steRangeHelpers() {
        Command c = Command.cfgiSteRange(0x123, 3); // 16 SIDs from 0x120
        assertThat(c.steRangeLg2()).isEqualTo(4);
        assertThat(c.steRangeFirst()).isEqualTo(0x120);
        assertThat(c.isCfgiAll()).isFalse();
        Command all = Command.cfgiAll();
        assertThat(all.isCfgiAll()).isTrue();
        assertThat(all.steRangeLg2()).isEqualTo(32);
        assertThat(Command.steRangeFirst(0xFFFF_FFFF, 31)).isZero();
        assertThat(Command.steRangeFirst(0xFFFF_FFFF, 0)).isEqualTo(0xFFFF_FFFE);
    }

    @Test
    void atcInvSpan() {
        Command c = Command.atcInv(1, false, 0, false, 0x12_3000L, 4); // 16 pages: 64 KB aligned
        assertThat(c.atcSpanLg2()).isEqualTo(16);
        assertThat(c.atcStart()).isEqualTo(0x12_0000L);
        Command all = Command.atcInvAll(1);
        assertThat(all.atcSpanLg2()).isEqualTo(64);
        assertThat(all.atcStart()).isZero();
        assertThat(Command.atcSpanLg2(63)).isEqualTo(64);
        assertThat(Command.atcStart(0xFFFF_F000L, 0)).isEqualTo(0xFFFF_F000L);
    }

    @Test
    void atcInvWordsAreTheWordsOfTheEncodedCommand() {
        Random r = new Random(9);
        for (int i = 0; i < 200; i++) {
            int sid = r.nextInt();
            boolean ssv = r.nextBoolean();
            int ssid = ssv ? r.nextInt(1 << 20) : 0;
            boolean global = r.nextBoolean();
            int size = r.nextInt(53);
            long address = r.nextLong() & -(1L << 12);
            long[] w = Command.atcInv(sid, ssv, ssid, global, address, size).encode();
            assertThat(Command.atcInvWord0(sid, ssv, ssid, global)).as("dw0 of case %s", i).isEqualTo(w[0]);
            assertThat(Command.atcInvWord1(address, size)).as("dw1 of case %s", i).isEqualTo(w[1]);
        }
        long[] all = Command.atcInvAll(0x20).encode();
        assertThat(Command.atcInvWord0(0x20, false, 0, false)).isEqualTo(all[0]);
        assertThat(Command.atcInvWord1(0, Command.ATC_INV_SIZE_ALL)).isEqualTo(all[1]);
        assertThat(Command.ssv(Command.atcInvWord0(7, true, 5, false))).isTrue();
        assertThat(Command.substreamId(Command.atcInvWord0(7, true, 5, false))).isEqualTo(5);
    }

    @Test
    void syncSignal() {
        Features qemuLike = new Features(true, false, true, false, false, false, false, false);
        assertThat(Command.syncSignal(Command.CS_NONE, Features.ALL)).isEqualTo(SyncSignal.NONE);
        assertThat(Command.syncSignal(Command.CS_IRQ, Features.ALL)).isEqualTo(SyncSignal.MSI_WRITE);
        assertThat(Command.syncSignal(Command.CS_IRQ, qemuLike)).isEqualTo(SyncSignal.WIRED_IRQ);
        assertThat(Command.syncSignal(Command.CS_SEV, Features.ALL)).isEqualTo(SyncSignal.SEV);
        assertThat(Command.syncSignal(Command.CS_SEV, qemuLike)).isEqualTo(SyncSignal.NONE);
    }

    @Test
    void featuresFromIdRegisters() {
        // IDR0: S2P 0, S1P 1, HYP 9, ATS 10, MSI 13, SEV 14, PRI 16; IDR3: RIL 10
        Features f = Features.fromIdRegisters(1 << 1 | 1 << 10 | 1 << 13, 1 << 10);
        assertThat(f).isEqualTo(new Features(true, false, true, true, false, false, true, false));
        Features g = Features.fromIdRegisters(1 | 1 << 9 | 1 << 14 | 1 << 16, 0);
        assertThat(g).isEqualTo(new Features(false, true, false, false, true, true, false, true));
    }

    // ------------------------------------------------------------------ legality, rule by rule

    @Test
    void legalCommandsPass() {
        Features s1Only = new Features(true, false, false, false, false, false, false, false);
        assertThat(Command.cfgiAll().check(NONE)).isNull();
        assertThat(Command.tlbiNsnhAll().check(NONE)).isNull();
        assertThat(Command.cmdSyncAsLinux(0).check(NONE)).as("CS=SEV without SEV, as Linux on QEMU").isNull();
        assertThat(Command.cmdSyncAsLinux(0x1000).check(NONE)).as("CS=IRQ without MSI").isNull();
        assertThat(Command.tlbiNhVa(0, 1, 0x1000, true).check(s1Only)).isNull();
        assertThat(Command.prefetchConfig(1, false, 0).check(NONE)).isNull();
        assertThat(Command.resume(1, 2, Command.RESUME_TERMINATE).check(NONE)).isNull();
        assertThat(Command.stallTerm(1).check(NONE)).isNull();
        // TG = 0 with NUM/SCALE/TTL set is a single-address TLBI: ignored fields, not illegal.
        assertThat(Command.tlbiNhVa(0, 1, 0x1000, true).withRange(0, 3, 31, 31).check(s1Only)).isNull();
    }

    @Test
    void unknownOpcode() {
        for (int op = 0; op < 256; op++) {
            String reason = Command.check(op, 0, Features.ALL);
            if (CommandOp.isKnown(op)) {
                assertThat(reason).as("opcode 0x%x", op).isNotEqualTo(Command.ILL_UNKNOWN_OPCODE);
            } else {
                assertThat(reason).as("opcode 0x%x", op).isEqualTo(Command.ILL_UNKNOWN_OPCODE);
            }
        }
        // QEMU's enum value for CFGI_ALL is not an opcode (§9.1).
        assertThat(Command.check(0x07, 0x1F, Features.ALL)).isEqualTo(Command.ILL_UNKNOWN_OPCODE);
    }

    @Test
    void ssecOnTheNonSecureQueue() {
        long ssec = 1L << 10;
        for (int op : new int[] {CommandOp.CFGI_STE, CommandOp.CFGI_STE_RANGE, CommandOp.CFGI_CD,
            CommandOp.CFGI_CD_ALL, CommandOp.PREFETCH_CONFIG, CommandOp.PREFETCH_ADDR, CommandOp.RESUME,
            CommandOp.STALL_TERM}) {
            assertThat(Command.check(op | ssec, 0, Features.ALL)).as(CommandOp.name(op)).isEqualTo(Command.ILL_SSEC);
            assertThat(Command.check(op, 0, Features.ALL)).as(CommandOp.name(op)).isNull();
        }
        // Bit 10 is RES0 on commands without SSec: not looked at.
        assertThat(Command.check(CommandOp.TLBI_NSNH_ALL | ssec, 0, Features.ALL)).isNull();
    }

    @Test
    void el3InvalidationsAreSecureOnly() {
        assertThat(Command.tlbiEl3All().check(Features.ALL)).isEqualTo(Command.ILL_EL3);
        assertThat(Command.tlbiEl3Va(0x1000, true).check(Features.ALL)).isEqualTo(Command.ILL_EL3);
    }

    @Test
    void el2InvalidationsNeedHyp() {
        Features noHyp = new Features(true, true, true, true, true, true, true, false);
        for (Command c : new Command[] {Command.tlbiEl2All(), Command.tlbiEl2Asid(1), Command.tlbiEl2Va(1, 0, false),
            Command.tlbiEl2Vaa(0, false)}) {
            assertThat(c.check(noHyp)).as(c.toString()).isEqualTo(Command.ILL_NO_HYP);
            assertThat(c.check(Features.ALL)).as(c.toString()).isNull();
        }
    }

    @Test
    void stage1InvalidationsNeedS1() {
        Features s2Only = new Features(false, true, true, true, true, true, true, true);
        for (Command c : new Command[] {Command.tlbiNhAll(0), Command.tlbiNhAsid(0, 1), Command.tlbiNhVa(0, 1, 0, true),
            Command.tlbiNhVaa(0, 0, true)}) {
            assertThat(c.check(s2Only)).as(c.toString()).isEqualTo(Command.ILL_NO_S1);
            assertThat(c.check(Features.ALL)).as(c.toString()).isNull();
        }
    }

    @Test
    void stage2InvalidationsNeedS2() {
        Features s1Only = new Features(true, false, true, true, true, true, true, true);
        for (Command c : new Command[] {Command.tlbiS12Vmall(1), Command.tlbiS2Ipa(1, 0x1000, true)}) {
            assertThat(c.check(s1Only)).as(c.toString()).isEqualTo(Command.ILL_NO_S2);
            assertThat(c.check(Features.ALL)).as(c.toString()).isNull();
        }
    }

    @Test
    void rangeInvalidationNeedsRil() {
        Features noRil = new Features(true, true, false, true, true, true, true, true);
        for (Command c : new Command[] {Command.tlbiNhVa(0, 1, 0, true), Command.tlbiNhVaa(0, 0, true),
            Command.tlbiEl2Va(1, 0, true), Command.tlbiEl2Vaa(0, true), Command.tlbiS2Ipa(1, 0, true)}) {
            for (int tg = 1; tg <= 3; tg++) {
                Command range = c.withRange(tg, 0, 0, 0);
                assertThat(range.check(noRil)).as(range.toString()).isEqualTo(Command.ILL_NO_RIL);
                assertThat(range.check(Features.ALL)).as(range.toString()).isNull();
            }
            assertThat(c.check(noRil)).as(c.toString()).isNull();
        }
    }

    @Test
    void atcInvNeedsAtsAndPriRespNeedsPri() {
        Features noAtsNoPri = new Features(true, true, true, false, false, true, true, true);
        assertThat(Command.atcInvAll(1).check(noAtsNoPri)).isEqualTo(Command.ILL_NO_ATS);
        assertThat(Command.atcInvAll(1).check(Features.ALL)).isNull();
        Command resp = Command.priResp(1, false, 0, 3, Command.PRI_RESP_DENY);
        assertThat(resp.check(noAtsNoPri)).isEqualTo(Command.ILL_NO_PRI);
        assertThat(resp.check(Features.ALL)).isNull();
    }

    @Test
    void cmdSyncReservedCs() {
        assertThat(Command.cmdSync(3).check(Features.ALL)).isEqualTo(Command.ILL_SYNC_CS);
        for (int cs = 0; cs < 3; cs++) {
            assertThat(Command.cmdSync(cs).check(Features.ALL)).isNull();
        }
    }

    @Test
    void unknownOpcodeWinsOverEverythingAndSsecOverFeatures() {
        // CFGI_STE with SSec on an SMMU without anything: SSec is the reason.
        assertThat(Command.check(CommandOp.CFGI_STE | 1L << 10, 0, NONE)).isEqualTo(Command.ILL_SSEC);
        assertThat(Command.check(0xFF | 1L << 10, 0, NONE)).isEqualTo(Command.ILL_UNKNOWN_OPCODE);
    }

    // ------------------------------------------------------------------ random round trips

    @Test
    void randomRoundTripsForEveryOpcode() {
        int[] opcodes = new int[CommandOp.all().length + 3];
        System.arraycopy(CommandOp.all(), 0, opcodes, 0, CommandOp.all().length);
        opcodes[opcodes.length - 3] = 0x00;
        opcodes[opcodes.length - 2] = 0x07;
        opcodes[opcodes.length - 1] = 0xFF;
        for (long seed = 0; seed < 300; seed++) {
            Random rnd = new Random(seed);
            for (int op : opcodes) {
                long dw0 = (rnd.nextLong() & Command.definedMask(op, 0) & ~Command.OPCODE.mask()) | op;
                long dw1 = rnd.nextLong() & Command.definedMask(op, 1);
                Command c = Command.decode(dw0, dw1);
                String what = "seed " + seed + " " + CommandOp.name(op);
                assertThat(c.dw0()).as("%s: dw0", what).isEqualTo(dw0);
                assertThat(c.dw1()).as("%s: dw1", what).isEqualTo(dw1);
                assertThat(Command.decode(c.dw0(), c.dw1())).as("%s: decode(encode(x))", what).isEqualTo(c);
                // Undefined bits are dropped, never folded into a field.
                long noise0 = rnd.nextLong() & ~Command.definedMask(op, 0);
                long noise1 = rnd.nextLong() & ~Command.definedMask(op, 1);
                assertThat(Command.decode(dw0 | noise0, dw1 | noise1)).as("%s: RES0 noise", what).isEqualTo(c);
            }
        }
    }
}
