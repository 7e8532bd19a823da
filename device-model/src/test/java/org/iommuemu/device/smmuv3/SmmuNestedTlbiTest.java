package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.Ste;
import org.junit.jupiter.api.Test;

/**
 * TLBIs on nested streams, whose IOTLB entries combine both stages: a change to either stage's tables stays
 * invisible until an invalidation that covers the combined entry, and TLBIs of another ASID or VMID leave it.
 */
class SmmuNestedTlbiTest {
    private static final int SID = 51;
    private static final int VMID = 6;
    private static final int ASID = 9;
    private static final long IOVA = 0x7_0000_5000L;
    private static final long OA_MASK = 0x0000_FFFF_FFFF_F000L;

    private final SmmuTestRig rig = SmmuTestRig.started();
    private final GuestSpace guest = new GuestSpace(rig, 8);
    private final PageTable s1 = guest.stage1();
    private final long ipaA = guest.page();
    private final long ipaB = guest.page();

    {
        guest.map(s1, IOVA, ipaA, 4096, Prot.READ | Prot.WRITE);
        long cd = guest.cdTable(SmmuTestRig.cdFor(s1, ASID));
        rig.installSte(SID, guest.nestedSte(VMID, cd, 0, Ste.S1DSS_SSID0));
        assertThat(rig.pa(SID, -1, IOVA, 0)).as("cached").isEqualTo(guest.paOf(ipaA));
    }

    /** Points the guest's stage-1 leaf of IOVA at {@code ipa}, without invalidating. */
    private void retargetStage1(long ipa) {
        long slot = SmmuTestRig.leafSlot(s1, IOVA);
        guest.w64(slot, (guest.r64(slot) & ~OA_MASK) | ipa);
    }

    /** Points the stage-2 leaf of {@code ipa} at {@code pa}, without invalidating. */
    private void retargetStage2(long ipa, long pa) {
        long slot = SmmuTestRig.leafSlot(guest.s2, ipa);
        rig.w64(slot, (rig.r64(slot) & ~OA_MASK) | pa);
    }

    @Test
    void aStage1ChangeStaysStaleUntilTlbiNhVaOfItsAsid() {
        retargetStage1(ipaB);
        assertThat(rig.pa(SID, -1, IOVA, 0)).as("stale").isEqualTo(guest.paOf(ipaA));

        rig.issue(Command.tlbiNhAsid(VMID, ASID + 1), Command.tlbiNhVa(VMID, ASID, IOVA + 0x1000, true),
                Command.tlbiNhVa(VMID + 1, ASID, IOVA, true));
        assertThat(rig.pa(SID, -1, IOVA, 0)).as("another ASID, page or VMID").isEqualTo(guest.paOf(ipaA));

        rig.issue(Command.tlbiNhVa(VMID, ASID, IOVA, true));
        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(guest.paOf(ipaB));
    }

    @Test
    void aStage2ChangeNeedsTlbiS2IpaAndThenAStage1InvalidationForTheCombinedEntry() {
        long before = guest.paOf(ipaA);
        long moved = rig.page();
        retargetStage2(ipaA, moved);
        assertThat(rig.pa(SID, -1, IOVA, 0)).as("stale").isEqualTo(before);

        // TLBI_S2_IPA removes stage-2 entries only; the architecture lets combined entries stay, and Linux
        // follows it with TLBI_NH_ALL for a nesting parent. A driver that stops at TLBI_S2_IPA sees this:
        rig.issue(Command.tlbiS2Ipa(VMID, ipaA, true));
        assertThat(rig.pa(SID, -1, IOVA, 0)).as("combined entry still cached").isEqualTo(before);

        rig.issue(Command.tlbiNhAll(VMID + 1));
        assertThat(rig.pa(SID, -1, IOVA, 0)).as("another VMID").isEqualTo(before);

        rig.issue(Command.tlbiNhAll(VMID));
        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(moved);
    }

    @Test
    void tlbiNhAllAndS12VmallOfTheVmidRemoveNestedEntries() {
        retargetStage1(ipaB);
        rig.issue(Command.tlbiNhAll(VMID + 1));
        assertThat(rig.pa(SID, -1, IOVA, 0)).as("another VMID").isEqualTo(guest.paOf(ipaA));
        rig.issue(Command.tlbiNhAll(VMID));
        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(guest.paOf(ipaB));

        retargetStage1(ipaA);
        rig.issue(Command.tlbiS12Vmall(VMID + 1));
        assertThat(rig.pa(SID, -1, IOVA, 0)).as("another VMID").isEqualTo(guest.paOf(ipaB));
        rig.issue(Command.tlbiS12Vmall(VMID));
        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(guest.paOf(ipaA));
    }
}
