package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Range TLBIs (IDR3.RIL, spec §7 "Range TLBI"): TG ≠ 0 makes a TLBI by address cover (NUM+1)·2^SCALE granules of
 * the size TG names, starting at the address; TTL names the level of the entries to remove. Observed with
 * {@link StaleDomains}: the pages inside the range answer with their new address, the page before the start and the
 * page after the end stay stale.
 */
class SmmuRangeTlbiTest {
    private static final long IOVA = StaleDomains.IOVA;

    private final SmmuTestRig rig = SmmuTestRig.started();
    private final StaleDomains domains = new StaleDomains(rig);

    @ParameterizedTest(name = "granule 2^{0}: TG={1}, TTL={2}")
    @CsvSource({"12, 1, 0", "12, 1, 3", "14, 2, 0", "14, 2, 3", "16, 3, 0", "16, 3, 3"})
    void rangeIsNumPlusOneTimesTwoToTheScaleGranulesFromTheAddress(int granuleLg2, int tg, int ttl) {
        StaleDomains.Domain a = domains.s1(1, 0, 1, 12, granuleLg2);
        StaleDomains.Domain b = domains.s1(2, 0, 2, 12, granuleLg2);

        // NUM = 2, SCALE = 1: 3 * 2 = 6 granules from page 3, i.e. pages 3..8
        rig.issue(Command.tlbiNhVa(0, 1, a.va(3), true).withRange(tg, ttl, 2, 1));

        a.expect("oooNNNNNNooo");
        b.expect("oooooooooooo");
    }

    @Test
    void scaleAloneCountsAPowerOfTwoOfGranules() {
        StaleDomains.Domain a = domains.s1(1, 0, 1, 12);
        StaleDomains.Domain b = domains.s1(2, 0, 2, 12);

        // TLBI_NH_VAA, NUM = 0, SCALE = 2: 4 pages from page 4, every ASID
        rig.issue(Command.tlbiNhVaa(0, a.va(4), true).withRange(1, 3, 0, 2));

        a.expect("ooooNNNNoooo");
        b.expect("ooooNNNNoooo");
    }

    @Test
    void largestNumWithoutScaleCovers32Granules() {
        StaleDomains.Domain a = domains.s1(1, 0, 1, 40);

        rig.issue(Command.tlbiNhVa(0, 1, a.va(5), false).withRange(1, 0, 31, 0));

        a.expect("ooooo" + "N".repeat(32) + "ooo");
    }

    @Test
    void aGranuleLargerThanTheTablesCountsInItsOwnSize() {
        StaleDomains.Domain a = domains.s1(1, 0, 1, 12); // 4 KB pages

        // TG = 16 KB, NUM = 1, SCALE = 0: 32 KB = 8 pages of 4 KB from page 2
        rig.issue(Command.tlbiNhVa(0, 1, a.va(2), true).withRange(2, 0, 1, 0));

        a.expect("ooNNNNNNNNoo");
    }

    @Test
    void stage2IpaRange() {
        StaleDomains.Domain d = domains.s2(1, 5, 8);
        StaleDomains.Domain e = domains.s2(2, 6, 8);

        // NUM = 1, SCALE = 1: 4 pages from page 2
        rig.issue(Command.tlbiS2Ipa(5, d.va(2), true).withRange(1, 3, 1, 1));

        d.expect("ooNNNNoo");
        e.expect("oooooooo");
    }

    /**
     * TTL is a hint naming the level of the leaf entries (Arm level 3: pages, 2: 2 MB blocks with 4 KB granules). An
     * SMMU need not remove entries of other levels; this model keeps them, as QEMU does.
     */
    @ParameterizedTest(name = "TTL={0}: pages removed {1}, block removed {2}")
    @CsvSource({"3, true, false", "2, false, true", "0, true, true"})
    void ttlNamesTheLevelOfTheLeavesToRemove(int ttl, boolean pagesGo, boolean blockGoes) {
        PageTable pt = rig.stage1(12, 48);
        long block = IOVA + (2L << 20);
        long pagesPa = 1L << 38;
        long blockPa = (1L << 38) + (64L << 20);
        long moved = 1L << 30;
        rig.mapPages(pt, IOVA, pagesPa, 2 * 4096, Prot.READ | Prot.WRITE);
        rig.map(pt, block, blockPa, 2L << 20, Prot.READ | Prot.WRITE);
        rig.stage1Stream(1, 0, 1, pt);
        assertThat(rig.pa(1, -1, IOVA + 4096, 0)).isEqualTo(pagesPa + 4096);
        assertThat(rig.pa(1, -1, block + 0x5000, 0)).isEqualTo(blockPa + 0x5000);
        rig.retarget(pt, IOVA + 4096, pagesPa + moved + 4096);
        rig.retarget(pt, block, blockPa + moved);

        // 2^10 pages of 4 KB: 4 MB from IOVA, the pages and the whole block
        rig.issue(Command.tlbiNhVa(0, 1, IOVA, true).withRange(1, ttl, 0, 10));

        assertThat(rig.pa(1, -1, IOVA + 4096, 0)).as("page").isEqualTo(pagesPa + 4096 + (pagesGo ? moved : 0));
        assertThat(rig.pa(1, -1, block + 0x5000, 0)).as("block").isEqualTo(blockPa + 0x5000 + (blockGoes ? moved : 0));
    }

    /**
     * With TG = 0 the command names one address; NUM and SCALE then mean nothing and are ignored, as QEMU does
     * (this model's choice: the fact sheet does not make them illegal).
     */
    @Test
    void numAndScaleWithoutTgAreIgnored() {
        StaleDomains.Domain a = domains.s1(1, 0, 1, 4);

        rig.issue(Command.tlbiNhVa(0, 1, a.va(1), true).withRange(0, 0, 5, 3));

        a.expect("oNoo");
    }

    @Test
    void rangeTlbiWithoutRilIsIllegalAndStopsTheQueue() {
        SmmuTestRig noRil = SmmuTestRig.started(SmmuTestRig.smallQueues().rangeInvalidation(false).build());
        StaleDomains noRilDomains = new StaleDomains(noRil);
        StaleDomains.Domain a = noRilDomains.s1(1, 0, 1, 4);
        int at = noRil.cmdqProd();

        noRil.submit(Command.tlbiNhVa(0, 1, a.va(0), true).withRange(1, 0, 3, 0), Command.cmdSync(Command.CS_NONE));

        assertThat(QueuePointer.cmdqError(noRil.cmdqCons())).isEqualTo(QueuePointer.CERROR_ILL);
        assertThat(noRil.cmdqConsPointer()).isEqualTo(at);
        assertThat(Gerror.isActive(noRil.gerror(), noRil.gerrorn(), Gerror.CMDQ_ERR)).isTrue();
        a.expect("oooo");

        // Linux never sends one without RIL; it sends one TLBI per page (TG = 0), which works
        noRil.replaceBadCommandAndAck(Command.tlbiNhVa(0, 1, a.va(2), true));
        assertThat(noRil.cmdqConsPointer()).isEqualTo(noRil.cmdqProd());
        a.expect("ooNo");
    }
}
