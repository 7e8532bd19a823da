package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Command;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * TLB invalidation commands, observed the only way a driver can: a translation is cached, the page table is then
 * changed in memory without invalidating, so the SMMU keeps answering with the old output address; after the TLBI
 * the pages it covers answer with the new one, and everything it does not cover (neighbouring pages, other ASIDs,
 * other VMIDs, the other stage) still answers with the old one.
 */
class SmmuTlbiTest {
    static final long IOVA = 0x4000_0000L;
    static final long PAGE = 4096;

    private final SmmuTestRig rig = SmmuTestRig.started();
    private int domains;

    /**
     * A stream with {@code pages} consecutive pages at {@link #IOVA}, each translated once (so cached), then each
     * leaf pointed at a new output address without invalidation and checked to be stale.
     */
    final class Domain {
        final int sid;
        final PageTable pt;
        final long oldBase;
        final long newBase;
        final int pages;

        private Domain(int sid, PageTable pt, int pages) {
            this.sid = sid;
            this.pt = pt;
            this.pages = pages;
            int n = ++domains;
            this.oldBase = (1L << 36) + ((long) n << 28);
            this.newBase = oldBase + (1L << 27);
            rig.mapPages(pt, IOVA, oldBase, pages * granule(), Prot.READ | Prot.WRITE);
        }

        long granule() {
            return 1L << pt.minPageLg2();
        }

        long va(int page) {
            return IOVA + page * granule();
        }

        /** Translates every page (caching it), retargets every leaf, checks every page is stale. */
        Domain cachedThenChanged() {
            expect("o".repeat(pages));
            for (int i = 0; i < pages; i++) {
                rig.retarget(pt, va(i), newBase + i * granule());
            }
            expect("o".repeat(pages));
            return this;
        }

        /** One letter per page: o = the old (cached) output address, N = the new one. */
        void expect(String pattern) {
            assertThat(pattern).hasSize(pages);
            StringBuilder seen = new StringBuilder();
            for (int i = 0; i < pages; i++) {
                long pa = rig.pa(sid, -1, va(i) + 0x18, 0) - 0x18;
                seen.append(pa == oldBase + i * granule() ? 'o' : pa == newBase + i * granule() ? 'N' : '?');
            }
            assertThat(seen.toString()).as("stream %d, page by page (o = stale, N = new)", sid).isEqualTo(pattern);
        }
    }

    /** A stage-1 stream of {@code vmid} (STE.S2VMID) and {@code asid} with a 4 KB granule table. */
    Domain s1(int sid, int vmid, int asid, int pages) {
        return s1(sid, vmid, asid, pages, 12);
    }

    Domain s1(int sid, int vmid, int asid, int pages, int granuleLg2) {
        Domain d = new Domain(sid, rig.stage1(granuleLg2, 48), pages);
        rig.stage1Stream(sid, vmid, asid, d.pt);
        return d.cachedThenChanged();
    }

    /** A stage-2 stream of {@code vmid}: 4 KB granule, 40-bit IPA. */
    Domain s2(int sid, int vmid, int pages) {
        Domain d = new Domain(sid, rig.stage2(12, 40), pages);
        rig.installSte(sid, SmmuTestRig.s2Ste(vmid, d.pt));
        return d.cachedThenChanged();
    }

    // ------------------------------------------------------------------ TLBI_NH_VA

    @ParameterizedTest(name = "leaf={0}")
    @ValueSource(booleans = {true, false})
    void nhVaRemovesThatPageOfThatAsidOnly(boolean leaf) {
        Domain a = s1(1, 0, 1, 3);
        Domain b = s1(2, 0, 2, 3);

        rig.issue(Command.tlbiNhVa(0, 1, IOVA + PAGE, leaf));

        a.expect("oNo");
        b.expect("ooo");
    }

    @Test
    void nhVaOfAnotherVmidOrAsidRemovesNothing() {
        Domain a = s1(1, 3, 1, 2);

        rig.issue(Command.tlbiNhVa(4, 1, IOVA, false), Command.tlbiNhVa(3, 2, IOVA, false));
        a.expect("oo");

        rig.issue(Command.tlbiNhVa(3, 1, IOVA, false));
        a.expect("No");
    }

    @Test
    void nhVaOfAnyPageInsideABlockRemovesTheBlock() {
        PageTable pt = rig.stage1(12, 48);
        long block = 0x4020_0000L;
        long oldPa = 1L << 38;
        long newPa = oldPa + (4L << 20);
        rig.map(pt, block, oldPa, 2L << 20, Prot.READ | Prot.WRITE);
        rig.stage1Stream(1, 0, 1, pt);
        long inside = block + 0x12_3450;
        assertThat(rig.pa(1, -1, inside, 0)).isEqualTo(oldPa + 0x12_3450);
        rig.retarget(pt, block, newPa);
        assertThat(rig.pa(1, -1, block, 0)).as("stale block").isEqualTo(oldPa);

        rig.issue(Command.tlbiNhVa(0, 1, inside & ~0xFFFL, true));

        assertThat(rig.pa(1, -1, inside, 0)).isEqualTo(newPa + 0x12_3450);
    }

    @Test
    void nhVaAfterTheLeafWasClearedMakesThePageFault() {
        Domain a = s1(1, 0, 1, 2);
        rig.clearLeaf(a.pt, IOVA);
        a.expect("oo"); // still cached: the SMMU never re-reads a cached leaf

        rig.issue(Command.tlbiNhVa(0, 1, IOVA, true));

        rig.assertUnmapped(1, -1, IOVA);
        assertThat(rig.pa(1, -1, IOVA + PAGE, 0)).as("the other page, still cached").isEqualTo(a.oldBase + PAGE);
    }

    // ------------------------------------------------------------------ TLBI_NH_VAA

    @Test
    void nhVaaRemovesThatPageOfEveryAsidOfTheVmid() {
        Domain a = s1(1, 0, 1, 3);
        Domain b = s1(2, 0, 2, 3);
        Domain c = s1(3, 5, 1, 3);

        rig.issue(Command.tlbiNhVaa(0, IOVA + 2 * PAGE, true));

        a.expect("ooN");
        b.expect("ooN");
        c.expect("ooo");
    }

    // ------------------------------------------------------------------ TLBI_NH_ASID

    @Test
    void nhAsidRemovesEveryPageOfThatAsidInThatVmid() {
        Domain a = s1(1, 0, 1, 3);
        Domain b = s1(2, 0, 2, 3);
        Domain c = s1(3, 5, 1, 3);

        rig.issue(Command.tlbiNhAsid(0, 1));

        a.expect("NNN");
        b.expect("ooo");
        c.expect("ooo");
    }

    // ------------------------------------------------------------------ TLBI_NH_ALL

    @Test
    void nhAllRemovesTheStage1EntriesOfThatVmidOnly() {
        Domain a = s1(1, 3, 1, 2);
        Domain b = s1(2, 3, 2, 2);
        Domain c = s1(3, 4, 1, 2);
        Domain d = s2(4, 3, 2);

        rig.issue(Command.tlbiNhAll(3));

        a.expect("NN");
        b.expect("NN");
        c.expect("oo");
        d.expect("oo"); // stage 2 of VMID 3: not a stage-1 entry
    }

    // ------------------------------------------------------------------ TLBI_S2_IPA

    @ParameterizedTest(name = "leaf={0}")
    @ValueSource(booleans = {true, false})
    void s2IpaRemovesThatIpaOfThatVmidsStage2Only(boolean leaf) {
        Domain d = s2(1, 5, 3);
        Domain e = s2(2, 6, 3);
        Domain f = s1(3, 5, 1, 3); // stage 1 of the same VMID, same input address

        rig.issue(Command.tlbiS2Ipa(5, IOVA + PAGE, leaf));

        d.expect("oNo");
        e.expect("ooo");
        f.expect("ooo");
    }

    @Test
    void s2IpaAfterTheLeafWasClearedMakesTheIpaFault() {
        Domain d = s2(1, 5, 2);
        rig.clearLeaf(d.pt, IOVA + PAGE);
        d.expect("oo");

        rig.issue(Command.tlbiS2Ipa(5, IOVA + PAGE, true));

        rig.assertUnmapped(1, -1, IOVA + PAGE);
        assertThat(rig.pa(1, -1, IOVA, 0)).isEqualTo(d.oldBase);
    }

    // ------------------------------------------------------------------ TLBI_S12_VMALL

    @Test
    void s12VmallRemovesBothStagesOfThatVmidOnly() {
        Domain d = s2(1, 5, 2);
        Domain f = s1(2, 5, 1, 2);
        Domain e = s2(3, 6, 2);
        Domain g = s1(4, 6, 1, 2);

        rig.issue(Command.tlbiS12Vmall(5));

        d.expect("NN");
        f.expect("NN");
        e.expect("oo");
        g.expect("oo");
    }

    // ------------------------------------------------------------------ TLBI_NSNH_ALL

    @Test
    void nsnhAllRemovesEverything() {
        Domain a = s1(1, 0, 1, 2);
        Domain c = s1(2, 4, 7, 2);
        Domain d = s2(3, 5, 2);

        rig.issue(Command.tlbiNsnhAll());

        a.expect("NN");
        c.expect("NN");
        d.expect("NN");
    }

    // ------------------------------------------------------------------ nothing without a TLBI

    @Test
    void otherCommandsLeaveTranslationsCached() {
        Domain a = s1(1, 0, 1, 2);

        rig.issue(Command.cfgiSte(1, true), Command.cfgiCdAll(1), Command.prefetchConfig(1, false, 0),
                Command.cmdSync(Command.CS_NONE));

        a.expect("oo");
    }
}
