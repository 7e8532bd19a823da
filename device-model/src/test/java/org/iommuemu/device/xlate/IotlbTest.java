package org.iommuemu.device.xlate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

class IotlbTest {
    private static final int K4 = 12;
    private static final int K64 = 16;
    private static final int M2 = 21;
    private static final int G1 = 30;
    private static final int ANY = Iotlb.ANY_LEVEL;

    private final IotlbEntry in = new IotlbEntry();
    private final IotlbEntry out = new IotlbEntry();

    // ---- helpers ----

    private static int levelOf(int sizeLg2) {
        return sizeLg2 >= G1 ? 2 : sizeLg2 >= M2 ? 1 : 0;
    }

    /** A stage 1 entry of (vmid, asid) at va, size, with oa = va + 0x1_0000_0000. */
    private void s1(Iotlb tlb, int vmid, int asid, long va, int sizeLg2) {
        tlb.insert(in.set(vmid, asid, false, va, sizeLg2, levelOf(sizeLg2), va + 0x1_0000_0000L, 0, Perm.RW, Stage.S1));
    }

    private void global(Iotlb tlb, int vmid, int asid, long va, int sizeLg2) {
        tlb.insert(in.set(vmid, asid, true, va, sizeLg2, levelOf(sizeLg2), va + 0x2_0000_0000L, 0, Perm.RW, Stage.S1));
    }

    private void s2(Iotlb tlb, int vmid, long ipa, int sizeLg2) {
        tlb.insert(in.set(vmid, -1, false, ipa, sizeLg2, levelOf(sizeLg2), ipa + 0x3_0000_0000L, ipa, Perm.RW, Stage.S2));
    }

    private void nested(Iotlb tlb, int vmid, int asid, long va, long ipa, int sizeLg2) {
        tlb.insert(in.set(vmid, asid, false, va, sizeLg2, levelOf(sizeLg2), ipa + 0x3_0000_0000L, ipa, Perm.RW,
                Stage.NESTED));
    }

    private boolean hit(Iotlb tlb, int vmid, int asid, long va) {
        return tlb.lookup(vmid, asid, va, false, out);
    }

    /** The (vmid, asid, global, va, size) of every entry, as text, sorted. */
    private static TreeSet<String> keys(Iotlb tlb) {
        TreeSet<String> keys = new TreeSet<>();
        for (IotlbEntry e : tlb.entries()) {
            keys.add(key(e.vmid(), e.global() ? "g" : String.valueOf(e.asid()), e.va(), e.sizeLg2()));
        }
        return keys;
    }

    private static String key(int vmid, String asid, long va, int sizeLg2) {
        return vmid + "/" + asid + "/" + Long.toHexString(va) + "/" + sizeLg2;
    }

    // ---- lookup ----

    @Test
    void pagesOfDifferentSizesCoexistAndTheRightOneIsFound() {
        Iotlb tlb = new Iotlb(16);
        s1(tlb, 1, 5, 0x1000_3000L, K4);
        s1(tlb, 1, 5, 0x4020_0000L, M2);
        s1(tlb, 1, 5, 0x8000_0000L, G1);

        assertThat(hit(tlb, 1, 5, 0x1000_3ABCL)).isTrue();
        assertThat(out.sizeLg2()).isEqualTo(K4);
        assertThat(out.outputAddress(0x1000_3ABCL)).isEqualTo(0x1_1000_3ABCL);
        assertThat(out.contiguousBytes(0x1000_3ABCL)).isEqualTo(0x1000 - 0xABC);

        assertThat(hit(tlb, 1, 5, 0x4030_1234L)).isTrue();
        assertThat(out.sizeLg2()).isEqualTo(M2);
        assertThat(out.level()).isEqualTo(1);
        assertThat(out.outputAddress(0x4030_1234L)).isEqualTo(0x1_4030_1234L);

        assertThat(hit(tlb, 1, 5, 0xBFFF_FFFFL)).isTrue();
        assertThat(out.sizeLg2()).isEqualTo(G1);
        assertThat(out.va()).isEqualTo(0x8000_0000L);
        assertThat(out.covers(0xC000_0000L)).isFalse();

        assertThat(hit(tlb, 1, 5, 0x1000_4000L)).isFalse();
        assertThat(hit(tlb, 1, 5, 0x4040_0000L)).isFalse();
        assertThat(hit(tlb, 1, 5, 0xC000_0000L)).isFalse();
        assertThat(hit(tlb, 1, 5, 0x1000_2FFFL)).isFalse();
    }

    @Test
    void overlappingEntriesGiveTheSmallest() {
        Iotlb tlb = new Iotlb(16);
        s1(tlb, 1, 5, 0x20_0000L, M2);
        tlb.insert(in.set(1, 5, false, 0x20_1000L, K4, 0, 0x9_9000L, 0, Perm.READ, Stage.S1));
        assertThat(hit(tlb, 1, 5, 0x20_1234L)).isTrue();
        assertThat(out.sizeLg2()).isEqualTo(K4);
        assertThat(out.outputAddress(0x20_1234L)).isEqualTo(0x9_9234L);
        assertThat(hit(tlb, 1, 5, 0x20_5000L)).isTrue();
        assertThat(out.sizeLg2()).isEqualTo(M2);
    }

    @Test
    void insertAlignsAddressesToTheEntrySize() {
        Iotlb tlb = new Iotlb(4);
        tlb.insert(in.set(0, 0, false, 0x20_1234L, M2, 1, 0x4_0056_7000L, 0, Perm.RW, Stage.S1));
        assertThat(hit(tlb, 0, 0, 0x3F_FFFFL)).isTrue();
        assertThat(out.va()).isEqualTo(0x20_0000L);
        assertThat(out.oa()).isEqualTo(0x4_0040_0000L);
        assertThat(out.outputAddress(0x3F_FFFFL)).isEqualTo(0x4_005F_FFFFL);
    }

    @Test
    void tagsMustMatch() {
        Iotlb tlb = new Iotlb(16);
        s1(tlb, 1, 5, 0x1000, K4);
        assertThat(hit(tlb, 1, 5, 0x1000)).isTrue();
        assertThat(hit(tlb, 1, 6, 0x1000)).as("other ASID").isFalse();
        assertThat(hit(tlb, 2, 5, 0x1000)).as("other VMID").isFalse();
        assertThat(hit(tlb, -1, 5, 0x1000)).as("no VMID").isFalse();
        assertThat(hit(tlb, 1, -1, 0x1000)).as("no ASID").isFalse();
    }

    @Test
    void globalEntriesServeEveryAsidOfTheirVmid() {
        Iotlb tlb = new Iotlb(16);
        global(tlb, 1, 5, 0x7000, K4);
        assertThat(hit(tlb, 1, 5, 0x7010)).isTrue();
        assertThat(out.global()).isTrue();
        assertThat(out.asid()).isEqualTo(5);
        assertThat(hit(tlb, 1, 9, 0x7010)).isTrue();
        assertThat(hit(tlb, 1, 0, 0x7010)).isTrue();
        assertThat(hit(tlb, 2, 5, 0x7010)).as("other VMID").isFalse();
        assertThat(hit(tlb, 1, -1, 0x7010)).as("a context without ASIDs").isFalse();
    }

    @Test
    void anAsidSpecificEntryWinsOverAGlobalOneOfTheSameSize() {
        Iotlb tlb = new Iotlb(16);
        global(tlb, 1, 5, 0x7000, K4);
        s1(tlb, 1, 6, 0x7000, K4);
        assertThat(hit(tlb, 1, 6, 0x7000)).isTrue();
        assertThat(out.global()).isFalse();
        assertThat(hit(tlb, 1, 7, 0x7000)).isTrue();
        assertThat(out.global()).isTrue();
        assertThat(tlb.size()).isEqualTo(2);
    }

    @Test
    void stage2EntriesAreFoundWithoutAsid() {
        Iotlb tlb = new Iotlb(16);
        s2(tlb, 3, 0x5000, K4);
        assertThat(hit(tlb, 3, -1, 0x5008)).isTrue();
        assertThat(out.stage()).isEqualTo(Stage.S2);
        assertThat(out.ipa()).isEqualTo(0x5000);
        assertThat(hit(tlb, 3, 0, 0x5008)).isFalse();
    }

    @Test
    void aWriteThroughADirtyWritableEntryMissesUntilTheWalkerRefreshesIt() {
        Iotlb tlb = new Iotlb(4);
        tlb.insert(in.set(1, 1, false, 0x9000, K4, 0, 0xA000, 0, Perm.RW | Perm.DIRTY_WRITABLE, Stage.S1));
        assertThat(tlb.lookup(1, 1, 0x9000, false, out)).isTrue();
        assertThat(tlb.lookup(1, 1, 0x9000, true, out)).isFalse();
        tlb.insert(in.set(1, 1, false, 0x9000, K4, 0, 0xA000, 0, Perm.RW, Stage.S1));
        assertThat(tlb.lookup(1, 1, 0x9000, true, out)).isTrue();
        assertThat(out.perms()).isEqualTo(Perm.RW);
        assertThat(tlb.size()).isEqualTo(1);
        CacheStats st = tlb.stats();
        assertThat(st.hits()).isEqualTo(2);
        assertThat(st.misses()).isEqualTo(1);
        assertThat(st.inserts()).isEqualTo(2);
    }

    @Test
    void aMissLeavesTheHolderAlone() {
        Iotlb tlb = new Iotlb(4);
        out.set(9, 9, false, 0x9000, K4, 0, 0, 0, 0, Stage.S1);
        assertThat(hit(tlb, 1, 1, 0x1000)).isFalse();
        assertThat(out.vmid()).isEqualTo(9);
    }

    // ---- eviction ----

    @Test
    void evictsTheLeastRecentlyUsedEntryWhenFull() {
        Iotlb tlb = new Iotlb(3);
        s1(tlb, 0, 0, 0xA000, K4);
        s1(tlb, 0, 0, 0xB000, K4);
        s1(tlb, 0, 0, 0xC000, K4);
        assertThat(hit(tlb, 0, 0, 0xA000)).isTrue(); // order now A, C, B
        s1(tlb, 0, 0, 0xD000, K4); // evicts B
        assertThat(keys(tlb)).containsExactlyInAnyOrder(key(0, "0", 0xA000, K4), key(0, "0", 0xC000, K4),
                key(0, "0", 0xD000, K4));
        s1(tlb, 0, 0, 0xC000, K4); // replaces C, which becomes most recent: order C, D, A
        assertThat(tlb.stats().evictions()).isEqualTo(1);
        s1(tlb, 0, 0, 0xE000, K4); // evicts A
        assertThat(tlb.entries()).extracting(IotlbEntry::va).containsExactly(0xE000L, 0xC000L, 0xD000L);
        assertThat(tlb.stats().evictions()).isEqualTo(2);
        assertThat(tlb.stats().entries()).isEqualTo(3);
        // a miss does not reorder
        assertThat(hit(tlb, 0, 0, 0xF000)).isFalse();
        assertThat(tlb.entries()).extracting(IotlbEntry::va).containsExactly(0xE000L, 0xC000L, 0xD000L);
    }

    @Test
    void evictionKeepsTheSizeBookkeeping() {
        Iotlb tlb = new Iotlb(1);
        s1(tlb, 0, 0, 0x20_0000, M2);
        s1(tlb, 0, 0, 0x1000, K4); // evicts the 2M entry
        assertThat(hit(tlb, 0, 0, 0x20_0000)).isFalse();
        assertThat(hit(tlb, 0, 0, 0x1000)).isTrue();
    }

    // ---- invalidation ----

    @Test
    void invalidateAllEmptiesTheCache() {
        Iotlb tlb = new Iotlb(8);
        s1(tlb, 0, 0, 0x1000, K4);
        global(tlb, 0, 0, 0x20_0000, M2);
        s2(tlb, 1, 0x1000, K4);
        assertThat(tlb.invalidateAll()).isEqualTo(3);
        assertThat(tlb.size()).isZero();
        assertThat(hit(tlb, 0, 0, 0x1000)).isFalse();
        assertThat(hit(tlb, 0, 0, 0x20_0000)).isFalse();
        s1(tlb, 0, 0, 0x1000, K4);
        assertThat(hit(tlb, 0, 0, 0x1000)).isTrue();
    }

    @Test
    void invalidateVmidHonoursTheStageMask() {
        Iotlb tlb = new Iotlb(16);
        s1(tlb, 1, 1, 0x1000, K4);
        global(tlb, 1, 1, 0x2000, K4);
        nested(tlb, 1, 2, 0x3000, 0x8000, K4);
        s2(tlb, 1, 0x4000, K4);
        s1(tlb, 2, 1, 0x1000, K4);
        // TLBI_NH_ALL: stage 1 of VMID 1, global entries included; stage 2 stays
        assertThat(tlb.invalidateVmid(1, Stage.S1 | Stage.NESTED)).isEqualTo(3);
        assertThat(keys(tlb)).containsExactlyInAnyOrder(key(1, "-1", 0x4000, K4), key(2, "1", 0x1000, K4));
        // TLBI_S12_VMALL
        assertThat(tlb.invalidateVmid(1, Stage.ALL)).isEqualTo(1);
        assertThat(keys(tlb)).containsExactly(key(2, "1", 0x1000, K4));
    }

    @Test
    void invalidateAsidKeepsGlobalEntriesAndOtherContexts() {
        Iotlb tlb = new Iotlb(16);
        s1(tlb, 1, 3, 0x1000, K4);
        s1(tlb, 1, 3, 0x20_0000, M2);
        nested(tlb, 1, 3, 0x40_0000, 0x9000, K4);
        global(tlb, 1, 3, 0x2000, K4);
        s1(tlb, 1, 4, 0x1000, K4);
        s1(tlb, 2, 3, 0x1000, K4);
        assertThat(tlb.invalidateAsid(1, 3)).isEqualTo(3);
        assertThat(keys(tlb)).containsExactlyInAnyOrder(key(1, "g", 0x2000, K4), key(1, "4", 0x1000, K4),
                key(2, "3", 0x1000, K4));
    }

    @Test
    void invalidateVaRemovesEveryOverlappingEntryAndNothingOutside() {
        Iotlb tlb = new Iotlb(64);
        for (long va = 0x1000; va <= 0x5000; va += 0x1000) {
            s1(tlb, 1, 1, va, K4);
        }
        s1(tlb, 1, 1, 0x20_0000, M2);
        s1(tlb, 1, 1, 0x40_0000, M2);
        // [0x1800, 0x3800): 0x1000 and 0x3000 only partly inside, 0x2000 wholly; 0x4000 just outside
        assertThat(tlb.invalidateVa(1, 1, 0x1800, 0x2000, ANY, Stage.ALL)).isEqualTo(3);
        assertThat(keys(tlb)).containsExactlyInAnyOrder(key(1, "1", 0x4000, K4), key(1, "1", 0x5000, K4),
                key(1, "1", 0x20_0000, M2), key(1, "1", 0x40_0000, M2));
        // the last byte of the 2M block takes the whole block; the next block starts just outside
        assertThat(tlb.invalidateVa(1, 1, 0x3F_FFFF, 1, ANY, Stage.ALL)).isEqualTo(1);
        // a range ending just before an entry starts leaves it; one more byte takes it
        assertThat(tlb.invalidateVa(1, 1, 0x3F_0000, 0x1_0000, ANY, Stage.ALL)).isZero();
        assertThat(tlb.invalidateVa(1, 1, 0x3FFF, 1, ANY, Stage.ALL)).isZero();
        assertThat(tlb.invalidateVa(1, 1, 0x3FFF, 2, ANY, Stage.ALL)).isEqualTo(1);
        s1(tlb, 1, 1, 0x4000, K4);
        assertThat(tlb.invalidateVa(1, 1, 0x6000, 0x10_0000, ANY, Stage.ALL)).isZero();
        assertThat(tlb.invalidateVa(1, 1, 0x4000, 0, ANY, Stage.ALL)).as("empty range").isZero();
        assertThat(keys(tlb)).containsExactlyInAnyOrder(key(1, "1", 0x4000, K4), key(1, "1", 0x5000, K4),
                key(1, "1", 0x40_0000, M2));
    }

    @Test
    void aLargeRangeScansAndRemovesTheSameAsProbing() {
        Iotlb tlb = new Iotlb(8);
        s1(tlb, 1, 1, 0x1000, K4);
        s1(tlb, 1, 1, 0x7FFF_F000L, K4);
        s1(tlb, 1, 1, 0x8000_0000L, K4);
        s1(tlb, 1, 2, 0x2000, K4);
        assertThat(tlb.invalidateVa(1, 1, 0x1000, 0x7FFF_F000L, ANY, Stage.ALL)).isEqualTo(2);
        assertThat(keys(tlb)).containsExactlyInAnyOrder(key(1, "1", 0x8000_0000L, K4), key(1, "2", 0x2000, K4));
    }

    @Test
    void aRangeRunningPastTheTopOfTheAddressSpaceStopsThere() {
        Iotlb tlb = new Iotlb(8);
        s1(tlb, 1, 1, 0xFFFF_FFFF_FFFF_F000L, K4);
        s1(tlb, 1, 1, 0x0, K4);
        assertThat(tlb.invalidateVa(1, 1, 0xFFFF_FFFF_FFFF_F800L, 0x10_0000, ANY, Stage.ALL)).isEqualTo(1);
        assertThat(keys(tlb)).containsExactly(key(1, "1", 0, K4));
    }

    @Test
    void invalidateVaWithAnAsidAlsoRemovesGlobalEntriesForTheAddress() {
        Iotlb tlb = new Iotlb(16);
        s1(tlb, 1, 3, 0x1000, K4);
        s1(tlb, 1, 4, 0x1000, K4);
        global(tlb, 1, 4, 0x1000, K4);
        global(tlb, 2, 4, 0x1000, K4);
        s2(tlb, 1, 0x1000, K4);
        assertThat(tlb.invalidateVa(1, 3, 0x1000, 0x1000, ANY, Stage.ALL)).isEqualTo(2);
        assertThat(keys(tlb)).containsExactlyInAnyOrder(key(1, "4", 0x1000, K4), key(2, "g", 0x1000, K4),
                key(1, "-1", 0x1000, K4));
    }

    @Test
    void invalidateVaWithAnyAsidRemovesEveryAsidOfTheStagesGiven() {
        Iotlb tlb = new Iotlb(16);
        s1(tlb, 1, 3, 0x1000, K4);
        s1(tlb, 1, 4, 0x1000, K4);
        global(tlb, 1, 4, 0x1000, K4);
        nested(tlb, 1, 5, 0x1000, 0x7000, K4);
        s2(tlb, 1, 0x1000, K4);
        s1(tlb, 2, 3, 0x1000, K4);
        // TLBI_NH_VAA: stage 1 and nested entries, any ASID; the stage 2 entry at the same address stays
        assertThat(tlb.invalidateVa(1, Iotlb.ANY_ASID, 0x1000, 0x1000, ANY, Stage.S1 | Stage.NESTED)).isEqualTo(4);
        assertThat(keys(tlb)).containsExactlyInAnyOrder(key(1, "-1", 0x1000, K4), key(2, "3", 0x1000, K4));
    }

    @Test
    void invalidateVaWithoutAsidRemovesOnlyEntriesWithoutAsid() {
        Iotlb tlb = new Iotlb(16);
        s2(tlb, 7, 0x1000, K4);
        s1(tlb, 7, 0, 0x1000, K4);
        global(tlb, 7, 0, 0x1000, K4);
        assertThat(tlb.invalidateVa(7, -1, 0x1000, 0x1000, ANY, Stage.ALL)).isEqualTo(1);
        assertThat(keys(tlb)).containsExactlyInAnyOrder(key(7, "0", 0x1000, K4), key(7, "g", 0x1000, K4));
    }

    @Test
    void aLevelHintLimitsTheInvalidationToThatLevel() {
        Iotlb tlb = new Iotlb(16);
        s1(tlb, 1, 1, 0x20_0000, M2); // level 1
        s1(tlb, 1, 1, 0x20_1000, K4); // level 0
        tlb.insert(in.set(1, 1, false, 0x21_0000, K64, 0, 0x5_0000, 0, Perm.RW, Stage.S1)); // contiguous, level 0
        assertThat(tlb.invalidateVa(1, 1, 0x20_0000, 0x20_0000, 1, Stage.ALL)).isEqualTo(1);
        assertThat(keys(tlb)).containsExactlyInAnyOrder(key(1, "1", 0x20_1000, K4), key(1, "1", 0x21_0000, K64));
        assertThat(tlb.invalidateVa(1, 1, 0x20_0000, 0x20_0000, 2, Stage.ALL)).isZero();
        assertThat(tlb.invalidateVa(1, 1, 0x20_0000, 0x20_0000, 0, Stage.ALL)).isEqualTo(2);
        assertThat(tlb.size()).isZero();
    }

    @Test
    void armTtlHintsMapToOurLevels() {
        assertThat(Iotlb.levelFromArmTtl(0)).isEqualTo(Iotlb.ANY_LEVEL);
        assertThat(Iotlb.levelFromArmTtl(1)).isEqualTo(2);
        assertThat(Iotlb.levelFromArmTtl(2)).isEqualTo(1);
        assertThat(Iotlb.levelFromArmTtl(3)).isEqualTo(0);
    }

    @Test
    void armRangeFieldsGiveTheLengthInBytes() {
        assertThat(Iotlb.armRangeLength(0, 7, 3)).as("TG=0: one address").isEqualTo(1);
        assertThat(Iotlb.armRangeLength(1, 0, 0)).isEqualTo(0x1000);
        assertThat(Iotlb.armRangeLength(1, 3, 2)).isEqualTo(16 * 0x1000);
        assertThat(Iotlb.armRangeLength(2, 1, 0)).isEqualTo(2 * 0x4000);
        assertThat(Iotlb.armRangeLength(3, 31, 31)).isEqualTo(1L << 52);
    }

    @Test
    void aSingleAddressTlbiRemovesEveryEntryContainingIt() {
        Iotlb tlb = new Iotlb(8);
        s1(tlb, 1, 1, 0x20_0000, M2);
        s1(tlb, 1, 1, 0x20_5000, K4);
        s1(tlb, 1, 1, 0x20_6000, K4);
        assertThat(tlb.invalidateVa(1, 1, 0x20_5000, Iotlb.armRangeLength(0, 0, 0), ANY, Stage.ALL)).isEqualTo(2);
        assertThat(keys(tlb)).containsExactly(key(1, "1", 0x20_6000, K4));
    }

    @Test
    void pageSelectiveInvalidationCoversTheAlignedSpanOfTheAddressMask() {
        Iotlb tlb = new Iotlb(32);
        s2(tlb, 4, 0x1F_F000, K4);
        s2(tlb, 4, 0x20_0000, K4);
        s2(tlb, 4, 0x3F_F000, K4);
        s2(tlb, 4, 0x40_0000, K4);
        s2(tlb, 5, 0x20_0000, K4);
        // AM=9: 512 pages = 2 MB, ADDR 0x2A_B000 aligned down to 0x20_0000
        assertThat(tlb.invalidatePageSelective(4, -1, 0x2A_B000, 9, Stage.ALL)).isEqualTo(2);
        assertThat(keys(tlb)).containsExactlyInAnyOrder(key(4, "-1", 0x1F_F000, K4), key(4, "-1", 0x40_0000, K4),
                key(5, "-1", 0x20_0000, K4));
        // AM=0: one page
        assertThat(tlb.invalidatePageSelective(4, -1, 0x40_0FFF, 0, Stage.ALL)).isEqualTo(1);
        // AM past the address width: the whole space of the domain
        assertThat(tlb.invalidatePageSelective(4, -1, 0x1234_5000, 60, Stage.ALL)).isEqualTo(1);
        assertThat(keys(tlb)).containsExactly(key(5, "-1", 0x20_0000, K4));
        assertThatThrownBy(() -> tlb.invalidatePageSelective(4, -1, 0, -1, Stage.ALL))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void invalidateIpaRemovesStage2EntriesAndOptionallyNestedOnes() {
        Iotlb tlb = new Iotlb(16);
        s2(tlb, 1, 0x8000, K4);
        s2(tlb, 1, 0x20_0000, M2);
        nested(tlb, 1, 5, 0xDEAD_0000L, 0x8000, K4);
        nested(tlb, 1, 5, 0xBEEF_0000L, 0x9000, K4);
        s1(tlb, 1, 5, 0x8000, K4); // stage 1 VA that equals the IPA: not a stage 2 entry
        s2(tlb, 2, 0x8000, K4);

        assertThat(tlb.invalidateIpa(1, 0x8000, 0x1000, ANY, false)).isEqualTo(1);
        assertThat(hit(tlb, 1, 5, 0xDEAD_0000L)).as("nested entry kept by a strict TLBI_S2_IPA").isTrue();
        s2(tlb, 1, 0x8000, K4);
        assertThat(tlb.invalidateIpa(1, 0x8000, 0x1000, ANY, true)).isEqualTo(2);
        assertThat(hit(tlb, 1, 5, 0xDEAD_0000L)).isFalse();
        assertThat(hit(tlb, 1, 5, 0xBEEF_0000L)).isTrue();
        assertThat(hit(tlb, 1, 5, 0x8000)).isTrue();
        assertThat(hit(tlb, 2, -1, 0x8000)).isTrue();

        // level hint: the 2M stage 2 block is at level 1
        assertThat(tlb.invalidateIpa(1, 0x20_0000, 0x1000, 0, false)).isZero();
        assertThat(tlb.invalidateIpa(1, 0x20_0000, 0x1000, 1, false)).isEqualTo(1);
    }

    // ---- counters, epochs, validation ----

    @Test
    void countersAddUp() {
        Iotlb tlb = new Iotlb(2);
        s1(tlb, 0, 0, 0x1000, K4);
        s1(tlb, 0, 0, 0x2000, K4);
        s1(tlb, 0, 0, 0x3000, K4); // evicts 0x1000
        hit(tlb, 0, 0, 0x1000);
        hit(tlb, 0, 0, 0x2000);
        hit(tlb, 0, 0, 0x3000);
        tlb.invalidateVa(0, 0, 0x2000, 0x1000, ANY, Stage.ALL);
        tlb.invalidateAsid(0, 9);
        assertThat(tlb.stats()).isEqualTo(new CacheStats(2, 1, 2, 1, 3, 0, 1, 1, 2));
        assertThat(tlb.stats().hitRate()).isEqualTo(2.0 / 3);
        assertThat(tlb.toString()).contains("1/2");
    }

    @Test
    void anInsertFromAWalkThatRacedAnInvalidationIsDropped() {
        Iotlb tlb = new Iotlb(4);
        long epoch = tlb.epoch();
        tlb.invalidateVa(0, 0, 0x1000, 0x1000, ANY, Stage.ALL); // removes nothing, still an invalidation
        assertThat(tlb.insert(in.set(0, 0, false, 0x1000, K4, 0, 0x5000, 0, Perm.RW, Stage.S1), epoch)).isFalse();
        assertThat(tlb.size()).isZero();
        assertThat(tlb.stats().staleInserts()).isEqualTo(1);
        assertThat(tlb.insert(in, tlb.epoch())).isTrue();
        assertThat(hit(tlb, 0, 0, 0x1000)).isTrue();
    }

    @Test
    void malformedEntriesAreRejected() {
        Iotlb tlb = new Iotlb(4);
        assertThatThrownBy(() -> tlb.insert(in.set(0, 0, false, 0, 11, 0, 0, 0, 0, Stage.S1)))
                .hasMessageContaining("size");
        assertThatThrownBy(() -> tlb.insert(in.set(0, 0, false, 0, 64, 0, 0, 0, 0, Stage.S1)))
                .hasMessageContaining("size");
        assertThatThrownBy(() -> tlb.insert(in.set(0, 0, false, 0, K4, 8, 0, 0, 0, Stage.S1)))
                .hasMessageContaining("level");
        assertThatThrownBy(() -> tlb.insert(in.set(0, 0, false, 0, K4, 0, 0, 0, 0, Stage.S1 | Stage.S2)))
                .hasMessageContaining("stage");
        assertThatThrownBy(() -> tlb.insert(in.set(0, -2, false, 0, K4, 0, 0, 0, 0, Stage.S1)))
                .hasMessageContaining("asid");
        assertThatThrownBy(() -> tlb.insert(in.set(0, -1, true, 0, K4, 0, 0, 0, 0, Stage.S1)))
                .hasMessageContaining("global");
        assertThatThrownBy(() -> tlb.insert(in.set(0, 1, false, 0, K4, 0, 0, 0, 0, Stage.S2)))
                .hasMessageContaining("stage 2");
        assertThatThrownBy(() -> tlb.insert(in.set(0, 1, false, 0, K4, 0, 0, 0, 1 << 14, Stage.S1)))
                .hasMessageContaining("permission");
        assertThatThrownBy(() -> tlb.insert(in.set(0, 1, false, 0, K4, 0, 0, 0, Perm.withFirstStage(0, Perm.READ),
                Stage.S1))).hasMessageContaining("first-stage");
        assertThatThrownBy(() -> new Iotlb(0)).isInstanceOf(IllegalArgumentException.class);
        assertThat(tlb.size()).isZero();
    }

    @Test
    void theHugestEntryCoversHalfTheAddressSpace() {
        Iotlb tlb = new Iotlb(4);
        tlb.insert(in.set(0, 0, false, 0x8000_0000_0000_1234L, 63, 7, 0, 0, Perm.READ, Stage.S1));
        assertThat(hit(tlb, 0, 0, -1L)).isTrue();
        assertThat(out.va()).isEqualTo(Long.MIN_VALUE);
        assertThat(out.contiguousBytes(Long.MIN_VALUE)).isEqualTo(Long.MIN_VALUE); // 2^63 unsigned
        assertThat(hit(tlb, 0, 0, 0x7FFF_FFFF_FFFF_FFFFL)).isFalse();
        assertThat(tlb.invalidateVa(0, 0, -2L, 1, ANY, Stage.ALL)).isEqualTo(1);
    }

    // ---- model-based ----

    /** One entry of the reference model. */
    private record Ref(int vmid, int asid, boolean global, long va, int sizeLg2, int level, long oa, long ipa,
            int perms, int stage) {
        boolean sameKey(Ref o) {
            return vmid == o.vmid && global == o.global && (global || asid == o.asid) && va == o.va
                    && sizeLg2 == o.sizeLg2;
        }

        long last() {
            return va + ((1L << sizeLg2) - 1);
        }

        boolean overlaps(long first, long last, boolean byIpa) {
            long base = byIpa ? ipa : va;
            long baseLast = base + ((1L << sizeLg2) - 1);
            return Long.compareUnsigned(base, last) <= 0 && Long.compareUnsigned(baseLast, first) >= 0;
        }
    }

    /** The reference: a list, most recently used first; every operation is a linear pass over it. */
    private static final class Model {
        final int capacity;
        final List<Ref> list = new ArrayList<>();

        Model(int capacity) {
            this.capacity = capacity;
        }

        void insert(Ref r) {
            for (int i = 0; i < list.size(); i++) {
                if (list.get(i).sameKey(r)) {
                    list.remove(i);
                    list.add(0, r);
                    return;
                }
            }
            if (list.size() == capacity) {
                list.remove(list.size() - 1);
            }
            list.add(0, r);
        }

        Ref lookup(int vmid, int asid, long va, boolean write) {
            Ref best = null;
            for (Ref r : list) {
                boolean tagOk = r.vmid == vmid && (r.global ? asid >= 0 : r.asid == asid);
                boolean covers = Long.compareUnsigned(r.va, va) <= 0 && Long.compareUnsigned(va, r.last()) <= 0;
                if (tagOk && covers && (best == null || r.sizeLg2 < best.sizeLg2
                        || (r.sizeLg2 == best.sizeLg2 && best.global && !r.global))) {
                    best = r;
                }
            }
            if (best == null || (write && (best.perms & Perm.DIRTY_WRITABLE) != 0)) {
                return null;
            }
            list.remove(best);
            list.add(0, best);
            return best;
        }

        int removeIf(java.util.function.Predicate<Ref> p) {
            int before = list.size();
            list.removeIf(p);
            return before - list.size();
        }
    }

    private static final long[] REGIONS = {0, 0x4000_0000L, 0xFFFF_FFFF_C000_0000L};
    private static final int[] SIZES = {K4, K4, K4, K64, M2, G1};

    private static long address(Random r) {
        return REGIONS[r.nextInt(REGIONS.length)] + ((long) r.nextInt(1 << 10) << 12)
                + (r.nextBoolean() ? (long) r.nextInt(4) << 21 : 0) + r.nextInt(1 << 12);
    }

    @Test
    void agreesWithAListModelUnderRandomOperations() {
        for (long seed = 1; seed <= 6; seed++) {
            runModel(seed, seed % 2 == 0 ? 64 : 13, 6000);
        }
    }

    private void runModel(long seed, int capacity, int steps) {
        Random r = new Random(seed);
        Iotlb tlb = new Iotlb(capacity);
        Model model = new Model(capacity);
        for (int step = 0; step < steps; step++) {
            String where = "seed " + seed + " step " + step;
            int vmid = r.nextInt(3) - 1;
            int asid = r.nextInt(4) - 1;
            int op = r.nextInt(100);
            if (op < 45) {
                int stage = asid == -1 ? (r.nextBoolean() ? Stage.S2 : Stage.S1) : (r.nextInt(3) == 0 ? Stage.NESTED : Stage.S1);
                boolean global = asid >= 0 && r.nextInt(5) == 0;
                int size = SIZES[r.nextInt(SIZES.length)];
                long mask = -(1L << size);
                long va = address(r) & mask;
                long ipa = stage == Stage.S1 ? 0 : stage == Stage.S2 ? va : address(r) & mask;
                int perms = r.nextInt(4) == 0 ? Perm.READ | Perm.DIRTY_WRITABLE : Perm.RW;
                Ref ref = new Ref(vmid, asid, global, va, size, levelOf(size), address(r) & mask, ipa, perms, stage);
                tlb.insert(in.set(vmid, asid, global, va, size, ref.level, ref.oa, ipa, perms, stage));
                model.insert(ref);
            } else if (op < 80) {
                long va = r.nextInt(4) == 0 || model.list.isEmpty() ? address(r)
                        : model.list.get(r.nextInt(model.list.size())).va + r.nextInt(1 << 12);
                boolean write = r.nextBoolean();
                Ref expected = model.lookup(vmid, asid, va, write);
                boolean found = tlb.lookup(vmid, asid, va, write, out);
                assertThat(found).as(where).isEqualTo(expected != null);
                if (found) {
                    assertThat(out.vmid()).as(where).isEqualTo(expected.vmid);
                    assertThat(out.asid()).as(where).isEqualTo(expected.asid);
                    assertThat(out.global()).as(where).isEqualTo(expected.global);
                    assertThat(out.va()).as(where).isEqualTo(expected.va);
                    assertThat(out.sizeLg2()).as(where).isEqualTo(expected.sizeLg2);
                    assertThat(out.oa()).as(where).isEqualTo(expected.oa);
                }
            } else {
                int removed;
                int expected;
                int stages = 1 + r.nextInt(Stage.ALL);
                long from = address(r);
                long length = switch (r.nextInt(4)) {
                    case 0 -> 1 + r.nextInt(0x1000);
                    case 1 -> (long) (1 + r.nextInt(8)) << 12;
                    case 2 -> (long) (1 + r.nextInt(4)) << 21;
                    default -> r.nextLong() >>> r.nextInt(64);
                };
                if (!model.list.isEmpty() && r.nextInt(3) == 0) {
                    // boundaries: start or end on the first or last byte of a cached entry, or just beside it
                    Ref e = model.list.get(r.nextInt(model.list.size()));
                    long edge = (r.nextBoolean() ? e.va : e.last()) + r.nextInt(3) - 1;
                    from = r.nextBoolean() ? edge : edge - length + 1;
                }
                long start = from;
                long last = start + length - 1;
                long clampedLast = Long.compareUnsigned(last, start) < 0 ? -1L : last;
                int level = r.nextInt(3) == 0 ? r.nextInt(3) : ANY;
                switch (op % 6) {
                    case 0 -> {
                        if (r.nextInt(10) == 0) {
                            expected = model.removeIf(x -> true);
                            removed = tlb.invalidateAll();
                        } else {
                            expected = model.removeIf(x -> x.vmid == vmid && (x.stage & stages) != 0);
                            removed = tlb.invalidateVmid(vmid, stages);
                        }
                    }
                    case 1 -> {
                        expected = model.removeIf(x -> x.vmid == vmid && !x.global && x.asid == asid);
                        removed = tlb.invalidateAsid(vmid, asid);
                    }
                    case 2, 3 -> {
                        int a = r.nextInt(4) == 0 ? Iotlb.ANY_ASID : asid;
                        expected = length == 0 ? 0 : model.removeIf(x -> x.vmid == vmid && (x.stage & stages) != 0
                                && (level == ANY || x.level == level)
                                && (a == Iotlb.ANY_ASID || (x.global ? a >= 0 : x.asid == a))
                                && x.overlaps(start, clampedLast, false));
                        removed = tlb.invalidateVa(vmid, a, start, length, level, stages);
                    }
                    case 4 -> {
                        int am = r.nextInt(12);
                        long span = 1L << (12 + am);
                        long first = start & -span;
                        expected = model.removeIf(x -> x.vmid == vmid && (x.stage & stages) != 0
                                && (asid == Iotlb.ANY_ASID || (x.global ? asid >= 0 : x.asid == asid))
                                && x.overlaps(first, first + span - 1, false));
                        removed = tlb.invalidatePageSelective(vmid, asid, start, am, stages);
                    }
                    default -> {
                        boolean withNested = r.nextBoolean();
                        expected = length == 0 ? 0 : model.removeIf(x -> x.vmid == vmid
                                && ((x.stage == Stage.S2 && (level == ANY || x.level == level)
                                        && x.overlaps(start, clampedLast, false))
                                    || (withNested && x.stage == Stage.NESTED && x.overlaps(start, clampedLast, true))));
                        removed = tlb.invalidateIpa(vmid, start, length, level, withNested);
                    }
                }
                assertThat(removed).as(where + " op " + op).isEqualTo(expected);
            }
            if (step % 16 == 0 || step == steps - 1) {
                List<IotlbEntry> actual = tlb.entries();
                assertThat(actual).as(where).hasSize(model.list.size());
                for (int i = 0; i < actual.size(); i++) {
                    IotlbEntry a = actual.get(i);
                    Ref m = model.list.get(i);
                    assertThat(new Ref(a.vmid(), a.asid(), a.global(), a.va(), a.sizeLg2(), a.level(), a.oa(), a.ipa(),
                            a.perms(), a.stage())).as(where + " entry " + i).isEqualTo(m);
                }
            }
        }
    }
}
