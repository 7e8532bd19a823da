package org.iommuemu.core.driver.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.junit.jupiter.api.Test;

class TlbiPlannerTest {
    private static final int VMID = 7;
    private static final int ASID = 0x1234;
    private static final long MIB = 1L << 20;

    private final List<Command> out = new ArrayList<>();
    private final TlbiPlanner.Sink sink = (dw0, dw1) -> {
        assertThat(Command.check(dw0, dw1, Command.Features.ALL)).as("a legal command").isNull();
        out.add(Command.decode(dw0, dw1));
    };

    @Test
    void fourMibOf4kPagesIsOneRangeCommand() {
        TlbiPlanner p = new TlbiPlanner(true, TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD);
        assertThat(p.stage1(VMID, ASID, 0x4000_0000L, 4 * MIB, 12, 12, true, sink)).isEqualTo(1);
        Command c = out.get(0);
        assertThat(c.opcode()).isEqualTo(CommandOp.TLBI_NH_VA);
        assertThat(c.vmid()).isEqualTo(VMID);
        assertThat(c.asid()).isEqualTo(ASID);
        assertThat(c.address()).isEqualTo(0x4000_0000L);
        assertThat(c.tg()).as("TG 4K").isEqualTo(1);
        assertThat(c.ttl()).as("4K leaves are level 3").isEqualTo(3);
        assertThat(c.leaf()).isTrue();
        // 1024 pages = 1 << 10: SCALE 10, NUM 0
        assertThat(c.scale()).isEqualTo(10);
        assertThat(c.num()).isZero();
        assertThat(Command.tlbiRangeLength(c.tg(), c.num(), c.scale())).isEqualTo(4 * MIB);
    }

    @Test
    void theSameWordsAsTheCommandRecordEncodes() {
        TlbiPlanner p = new TlbiPlanner(true, 512);
        long[] words = new long[2];
        p.stage1(VMID, ASID, 0x20_0000L, 3 * 4096, 12, 12, true, (dw0, dw1) -> {
            words[0] = dw0;
            words[1] = dw1;
        });
        Command expected = Command.tlbiNhVa(VMID, ASID, 0x20_0000L, true).withRange(1, 3, 2, 0);
        assertThat(words).containsExactly(expected.dw0(), expected.dw1());
    }

    @Test
    void rangeCommandsCoverExactlyTheRangeWithFewCommands() {
        Random random = new Random(4);
        TlbiPlanner p = new TlbiPlanner(true, 512);
        for (int tgLg2 : new int[] {12, 14, 16}) {
            for (int i = 0; i < 300; i++) {
                out.clear();
                long pages = 1 + random.nextInt(1 << 16);
                long start = (random.nextLong() & 0x0000_7FFF_FFFF_0000L) & -(1L << tgLg2);
                int n = p.stage2(VMID, start, pages << tgLg2, tgLg2, tgLg2, false, sink);
                assertThat(n).isEqualTo(out.size());
                // one command per 5-bit group of the page count, at most
                assertThat(n).isLessThanOrEqualTo((64 - Long.numberOfLeadingZeros(pages) + 4) / 5 + 1);
                long at = start;
                for (Command c : out) {
                    assertThat(c.opcode()).isEqualTo(CommandOp.TLBI_S2_IPA);
                    assertThat(c.address()).as("contiguous commands").isEqualTo(at);
                    assertThat(c.tg()).isEqualTo((tgLg2 - 10) / 2);
                    assertThat(c.ttl()).as("no level hint for a non-leaf invalidation").isZero();
                    assertThat(c.leaf()).isFalse();
                    at += Command.tlbiRangeLength(c.tg(), c.num(), c.scale());
                }
                assertThat(at).as("pages %d with TG 2^%d", pages, tgLg2).isEqualTo(start + (pages << tgLg2));
            }
        }
    }

    @Test
    void ttlNamesTheLevelOfTheGatheredPageSize() {
        TlbiPlanner p = new TlbiPlanner(true, 512);
        p.stage1(VMID, ASID, 0, 2 * MIB, 21, 12, true, sink);    // a 2M block of a 4K table: level 2
        p.stage1(VMID, ASID, 0, 1L << 30, 30, 12, true, sink);   // a 1G block: level 1
        p.stage1(VMID, ASID, 0, 32 * MIB, 25, 14, true, sink);   // a 32M block of a 16K table: level 2
        p.stage1(VMID, ASID, 0, 512 * MIB, 29, 16, true, sink);  // a 512M block of a 64K table: level 2
        p.stage1(VMID, ASID, 0, 64 * 1024, 16, 12, true, sink);  // a contiguous 64K run of 4K leaves: level 3
        assertThat(out).extracting(Command::ttl).containsExactly(2, 1, 2, 2, 3);
    }

    @Test
    void withoutRangeInvalidationOneCommandPerGatheredPage() {
        TlbiPlanner p = new TlbiPlanner(false, 512);
        assertThat(p.stage1(VMID, ASID, 0x10_0000L, 4 * 4096, 12, 12, true, sink)).isEqualTo(4);
        assertThat(out).extracting(Command::address).containsExactly(0x10_0000L, 0x10_1000L, 0x10_2000L, 0x10_3000L);
        assertThat(out).allSatisfy(c -> {
            assertThat(c.opcode()).isEqualTo(CommandOp.TLBI_NH_VA);
            assertThat(c.tg()).as("single-address form").isZero();
            assertThat(c.num()).isZero();
            assertThat(c.scale()).isZero();
            assertThat(c.asid()).isEqualTo(ASID);
        });
        out.clear();
        assertThat(p.stage1(VMID, ASID, 0, 4 * MIB, 21, 12, false, sink)).as("two 2M blocks").isEqualTo(2);
        assertThat(out).extracting(Command::address).containsExactly(0L, 2 * MIB);
    }

    @Test
    void beyondTheThresholdOneContextWideCommandReplacesThemAll() {
        TlbiPlanner p = new TlbiPlanner(false, 512);
        assertThat(p.stage1(VMID, ASID, 0, 512 * 4096, 12, 12, true, sink)).as("at the threshold").isEqualTo(512);
        out.clear();
        assertThat(p.stage1(VMID, ASID, 0, 513 * 4096, 12, 12, true, sink)).isEqualTo(1);
        assertThat(out.get(0).opcode()).isEqualTo(CommandOp.TLBI_NH_ASID);
        assertThat(out.get(0).asid()).isEqualTo(ASID);
        assertThat(out.get(0).vmid()).isEqualTo(VMID);
        out.clear();
        assertThat(p.stage2(VMID, 0, 4 * MIB, 12, 12, true, sink)).isEqualTo(1);
        assertThat(out.get(0).opcode()).isEqualTo(CommandOp.TLBI_S12_VMALL);
        assertThat(out.get(0).vmid()).isEqualTo(VMID);
    }

    @Test
    void badArgumentsAreRejectedByName() {
        TlbiPlanner p = new TlbiPlanner(true, 512);
        assertThatThrownBy(() -> p.stage1(0, 0, 0, 4096, 12, 13, true, sink)).hasMessageContaining("tgLg2");
        assertThatThrownBy(() -> p.stage1(0, 0, 0, 4096, 11, 12, true, sink)).hasMessageContaining("pageLg2");
        assertThatThrownBy(() -> p.stage1(0, 0, 0, 0, 12, 12, true, sink)).hasMessageContaining("size");
        assertThatThrownBy(() -> p.stage1(0, 0, 0x800, 4096, 12, 12, true, sink)).hasMessageContaining("aligned");
        assertThatThrownBy(() -> new TlbiPlanner(false, 0)).hasMessageContaining("contextThreshold");
        assertThat(out).isEmpty();
    }
}
