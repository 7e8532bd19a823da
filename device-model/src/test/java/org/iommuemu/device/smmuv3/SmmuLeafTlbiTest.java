package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.function.IntFunction;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Command;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Leaf flag of TLBIs by address and the walk cache. After a translation the SMMU holds the leaf (IOTLB) and the
 * table descriptors it walked through (walk cache). The tests then point the level-2 table descriptor at a new
 * level-3 table mapping the page elsewhere, without invalidating. Leaf=1 promises only leaves changed, so the SMMU
 * may keep the table descriptor: this model does, and the next walk still reaches the old level-3 table. Leaf=0 (and
 * every TLBI that is not by address) removes the table descriptors too, and the next walk reads the new table.
 */
class SmmuLeafTlbiTest {
    private static final long IOVA = 0x4000_0000L;
    private static final long OLD_PA = 1L << 38;
    private static final long NEW_PA = (1L << 38) + (1L << 30);
    private static final int SID = 3;
    private static final int ASID = 9;
    private static final int VMID = 5;

    private final SmmuTestRig rig = SmmuTestRig.started();

    /**
     * Maps IOVA through {@code pt}, translates it once, then swaps the level-2 table descriptor for one pointing at a
     * fresh level-3 table that maps IOVA to NEW_PA. Checks the old translation is still in force.
     */
    private void swapLevel3Table(PageTable pt, int stream) {
        assertThat(rig.pa(stream, -1, IOVA, 0)).isEqualTo(OLD_PA);
        long l2Slot = SmmuTestRig.tableSlot(rig.ram, pt, IOVA, 2);
        long mask = Bits.maskHiLo(47, 12);
        long oldL3 = rig.r64(l2Slot) & mask;
        long index = (IOVA >>> 12) & 511;
        long leaf = rig.r64(oldL3 + index * 8);
        assertThat(leaf & mask).isEqualTo(OLD_PA);
        long newL3 = rig.pages(0, "l3");
        rig.w64(newL3 + index * 8, (leaf & ~mask) | NEW_PA);
        rig.w64(l2Slot, (rig.r64(l2Slot) & ~mask) | newL3);
        assertThat(rig.pa(stream, -1, IOVA, 0)).as("no invalidation yet").isEqualTo(OLD_PA);
    }

    private void stage1() {
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, IOVA, OLD_PA, 4096, Prot.READ | Prot.WRITE);
        rig.stage1Stream(SID, VMID, ASID, pt);
        swapLevel3Table(pt, SID);
    }

    private void stage2() {
        PageTable pt = rig.stage2(12, 40);
        rig.map(pt, IOVA, OLD_PA, 4096, Prot.READ | Prot.WRITE);
        rig.installSte(SID, SmmuTestRig.s2Ste(VMID, pt));
        swapLevel3Table(pt, SID);
    }

    private long pa() {
        return rig.pa(SID, -1, IOVA, 0);
    }

    @ParameterizedTest(name = "TLBI_NH_VA{0}")
    @ValueSource(strings = {"", "A"})
    void leafTlbiKeepsTheTableDescriptorAndNonLeafRemovesIt(String form) {
        stage1();
        IntFunction<Command> tlbi = leaf -> form.isEmpty() ? Command.tlbiNhVa(VMID, ASID, IOVA, leaf == 1)
                : Command.tlbiNhVaa(VMID, IOVA, leaf == 1);

        rig.issue(tlbi.apply(1));
        assertThat(pa()).as("Leaf=1: walked again through the cached level-2 descriptor").isEqualTo(OLD_PA);

        rig.issue(tlbi.apply(0));
        assertThat(pa()).as("Leaf=0: the level-2 descriptor was read again").isEqualTo(NEW_PA);
    }

    @Test
    void nonLeafRangeTlbiRemovesTheTableDescriptorsItOverlaps() {
        stage1();

        rig.issue(Command.tlbiNhVa(VMID, ASID, IOVA, false).withRange(1, 3, 0, 0));

        assertThat(pa()).isEqualTo(NEW_PA);
    }

    @Test
    void nonLeafTlbiOutsideTheTablesSpanKeepsIt() {
        stage1();

        // Leaf=0 4 MB away: the level-2 descriptor covers IOVA's 2 MB only; Leaf=1 at IOVA drops the leaf
        rig.issue(Command.tlbiNhVa(VMID, ASID, IOVA + (4L << 20), false), Command.tlbiNhVa(VMID, ASID, IOVA, true));

        assertThat(pa()).isEqualTo(OLD_PA);
    }

    @Test
    void tlbiOfAnotherAsidKeepsTheTableDescriptor() {
        stage1();

        rig.issue(Command.tlbiNhVa(VMID, ASID + 1, IOVA, false), Command.tlbiNhAsid(VMID, ASID + 1),
                Command.tlbiNhVa(VMID, ASID, IOVA, true));

        assertThat(pa()).isEqualTo(OLD_PA);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"TLBI_NH_ASID", "TLBI_NH_ALL", "TLBI_S12_VMALL", "TLBI_NSNH_ALL"})
    void invalidationsNotByAddressRemoveTableDescriptors(String op) {
        stage1();
        Command c = switch (op) {
            case "TLBI_NH_ASID" -> Command.tlbiNhAsid(VMID, ASID);
            case "TLBI_NH_ALL" -> Command.tlbiNhAll(VMID);
            case "TLBI_S12_VMALL" -> Command.tlbiS12Vmall(VMID);
            default -> Command.tlbiNsnhAll();
        };

        rig.issue(c);

        assertThat(pa()).isEqualTo(NEW_PA);
    }

    @Test
    void stage2IpaLeafKeepsTheStage2TableDescriptorAndNonLeafRemovesIt() {
        stage2();

        rig.issue(Command.tlbiS2Ipa(VMID, IOVA, true));
        assertThat(pa()).isEqualTo(OLD_PA);

        rig.issue(Command.tlbiS2Ipa(VMID, IOVA, false));
        assertThat(pa()).isEqualTo(NEW_PA);
    }

    @Test
    void stage1TlbiDoesNotRemoveStage2TableDescriptors() {
        stage2();

        rig.issue(Command.tlbiNhAll(VMID), Command.tlbiS2Ipa(VMID, IOVA, true));

        assertThat(pa()).isEqualTo(OLD_PA);
    }
}
