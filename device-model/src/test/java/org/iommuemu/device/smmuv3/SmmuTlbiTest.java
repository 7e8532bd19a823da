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
    private static final long IOVA = StaleDomains.IOVA;
    private static final long PAGE = StaleDomains.PAGE;

    private final SmmuTestRig rig = SmmuTestRig.started();
    private final StaleDomains domains = new StaleDomains(rig);

    private StaleDomains.Domain s1(int sid, int vmid, int asid, int pages) {
        return domains.s1(sid, vmid, asid, pages);
    }

    private StaleDomains.Domain s2(int sid, int vmid, int pages) {
        return domains.s2(sid, vmid, pages);
    }

    // ------------------------------------------------------------------ TLBI_NH_VA

    @ParameterizedTest(name = "leaf={0}")
    @ValueSource(booleans = {true, false})
    void nhVaRemovesThatPageOfThatAsidOnly(boolean leaf) {
        StaleDomains.Domain a = s1(1, 0, 1, 3);
        StaleDomains.Domain b = s1(2, 0, 2, 3);

        rig.issue(Command.tlbiNhVa(0, 1, IOVA + PAGE, leaf));

        a.expect("oNo");
        b.expect("ooo");
    }

    @Test
    void nhVaOfAnotherVmidOrAsidRemovesNothing() {
        StaleDomains.Domain a = s1(1, 3, 1, 2);

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
        StaleDomains.Domain a = s1(1, 0, 1, 2);
        rig.clearLeaf(a.pt, IOVA);
        a.expect("oo"); // still cached: the SMMU never re-reads a cached leaf

        rig.issue(Command.tlbiNhVa(0, 1, IOVA, true));

        rig.assertUnmapped(1, -1, IOVA);
        assertThat(rig.pa(1, -1, IOVA + PAGE, 0)).as("the other page, still cached").isEqualTo(a.oldBase + PAGE);
    }

    // ------------------------------------------------------------------ TLBI_NH_VAA

    @Test
    void nhVaaRemovesThatPageOfEveryAsidOfTheVmid() {
        StaleDomains.Domain a = s1(1, 0, 1, 3);
        StaleDomains.Domain b = s1(2, 0, 2, 3);
        StaleDomains.Domain c = s1(3, 5, 1, 3);

        rig.issue(Command.tlbiNhVaa(0, IOVA + 2 * PAGE, true));

        a.expect("ooN");
        b.expect("ooN");
        c.expect("ooo");
    }

    // ------------------------------------------------------------------ TLBI_NH_ASID

    @Test
    void nhAsidRemovesEveryPageOfThatAsidInThatVmid() {
        StaleDomains.Domain a = s1(1, 0, 1, 3);
        StaleDomains.Domain b = s1(2, 0, 2, 3);
        StaleDomains.Domain c = s1(3, 5, 1, 3);

        rig.issue(Command.tlbiNhAsid(0, 1));

        a.expect("NNN");
        b.expect("ooo");
        c.expect("ooo");
    }

    // ------------------------------------------------------------------ TLBI_NH_ALL

    @Test
    void nhAllRemovesTheStage1EntriesOfThatVmidOnly() {
        StaleDomains.Domain a = s1(1, 3, 1, 2);
        StaleDomains.Domain b = s1(2, 3, 2, 2);
        StaleDomains.Domain c = s1(3, 4, 1, 2);
        StaleDomains.Domain d = s2(4, 3, 2);

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
        StaleDomains.Domain d = s2(1, 5, 3);
        StaleDomains.Domain e = s2(2, 6, 3);
        StaleDomains.Domain f = s1(3, 5, 1, 3); // stage 1 of the same VMID, same input address

        rig.issue(Command.tlbiS2Ipa(5, IOVA + PAGE, leaf));

        d.expect("oNo");
        e.expect("ooo");
        f.expect("ooo");
    }

    @Test
    void s2IpaAfterTheLeafWasClearedMakesTheIpaFault() {
        StaleDomains.Domain d = s2(1, 5, 2);
        rig.clearLeaf(d.pt, IOVA + PAGE);
        d.expect("oo");

        rig.issue(Command.tlbiS2Ipa(5, IOVA + PAGE, true));

        rig.assertUnmapped(1, -1, IOVA + PAGE);
        assertThat(rig.pa(1, -1, IOVA, 0)).isEqualTo(d.oldBase);
    }

    // ------------------------------------------------------------------ TLBI_S12_VMALL

    @Test
    void s12VmallRemovesBothStagesOfThatVmidOnly() {
        StaleDomains.Domain d = s2(1, 5, 2);
        StaleDomains.Domain f = s1(2, 5, 1, 2);
        StaleDomains.Domain e = s2(3, 6, 2);
        StaleDomains.Domain g = s1(4, 6, 1, 2);

        rig.issue(Command.tlbiS12Vmall(5));

        d.expect("NN");
        f.expect("NN");
        e.expect("oo");
        g.expect("oo");
    }

    // ------------------------------------------------------------------ TLBI_NSNH_ALL

    @Test
    void nsnhAllRemovesEverything() {
        StaleDomains.Domain a = s1(1, 0, 1, 2);
        StaleDomains.Domain c = s1(2, 4, 7, 2);
        StaleDomains.Domain d = s2(3, 5, 2);

        rig.issue(Command.tlbiNsnhAll());

        a.expect("NN");
        c.expect("NN");
        d.expect("NN");
    }

    // ------------------------------------------------------------------ nothing without a TLBI

    @Test
    void otherCommandsLeaveTranslationsCached() {
        StaleDomains.Domain a = s1(1, 0, 1, 2);

        rig.issue(Command.cfgiSte(1, true), Command.cfgiCdAll(1), Command.prefetchConfig(1, false, 0),
                Command.cmdSync(Command.CS_NONE));

        a.expect("oo");
    }

    /**
     * Without stage 2 there is no VMID: stage-1 entries are tagged with VMID 0 whatever STE.S2VMID holds, and Linux's
     * TLBIs (VMID 0) reach them.
     */
    @Test
    void withoutStage2Stage1EntriesBelongToVmid0() {
        SmmuTestRig s1Only = SmmuTestRig.started(SmmuTestRig.smallQueues().stage2(false).vmid16(false).build());
        StaleDomains.Domain a = new StaleDomains(s1Only).s1(1, 0x55, 1, 2);

        s1Only.issue(Command.tlbiNhVa(0, 1, a.va(0), true));
        a.expect("No");

        s1Only.issue(Command.tlbiNhAsid(0, 1));
        a.expect("NN");
    }
}
