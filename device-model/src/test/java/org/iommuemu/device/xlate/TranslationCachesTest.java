package org.iommuemu.device.xlate;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class TranslationCachesTest {
    private final TranslationCaches caches = new TranslationCaches(32, 32);
    private final Iotlb tlb = caches.iotlb();
    private final WalkCache walk = caches.walkCache();
    private final IotlbEntry e = new IotlbEntry();
    private final WalkEntry w = new WalkEntry();

    /** A stage 1 context (VMID 1, ASID 7): a 4K leaf at 0x20_3000 and the walk that led to it. */
    private void stage1Context() {
        tlb.insert(e.set(1, 7, false, 0x20_3000, 12, 0, 0x9_3000, 0, Perm.RW, Stage.S1));
        walk.insert(1, 7, Stage.S1, 3, 39, 0x20_3000, 0x1003);
        walk.insert(1, 7, Stage.S1, 2, 30, 0x20_3000, 0x2003);
        walk.insert(1, 7, Stage.S1, 1, 21, 0x20_3000, 0x3003);
    }

    /** Stage 2 of VMID 1: a 4K leaf at IPA 0x5000 and the walk to it. */
    private void stage2Context() {
        tlb.insert(e.set(1, -1, false, 0x5000, 12, 0, 0x7_5000, 0x5000, Perm.RW, Stage.S2));
        walk.insert(1, -1, Stage.S2, 1, 21, 0x5000, 0x4003);
    }

    @Test
    void leafOnlyKeepsTheWalkCache() {
        stage1Context();
        assertThat(caches.invalidateVa(1, 7, 0x20_3000, 0x1000, Iotlb.ANY_LEVEL, true, Stage.ALL)).isEqualTo(1);
        assertThat(tlb.size()).isZero();
        assertThat(walk.size()).isEqualTo(3);
    }

    @Test
    void withoutLeafOnlyTheTablesAboveTheAddressGoToo() {
        stage1Context();
        walk.insert(1, 7, Stage.S1, 1, 21, 0x40_0000, 0x5003); // another 2M region
        stage2Context();
        assertThat(caches.invalidateVa(1, 7, 0x20_3000, 0x1000, Iotlb.ANY_LEVEL, false, Stage.S1 | Stage.NESTED))
                .isEqualTo(4);
        assertThat(walk.entries()).extracting(WalkEntry::descriptor).containsExactlyInAnyOrder(0x5003L, 0x4003L);
        assertThat(tlb.size()).isEqualTo(1);
    }

    @Test
    void aLevelHintDoesNotProtectTheTablesAboveTheLeaf() {
        stage1Context();
        // TTL says the leaf is at level 1 (a 2M block): the 4K leaf stays, the walk entries go
        assertThat(caches.invalidateVa(1, 7, 0x20_3000, 0x1000, 1, false, Stage.ALL)).isEqualTo(3);
        assertThat(tlb.size()).isEqualTo(1);
        assertThat(walk.size()).isZero();
    }

    @Test
    void ipaInvalidationDropsStage2LeavesAndTablesButNotStage1Walks() {
        stage1Context();
        stage2Context();
        assertThat(caches.invalidateIpa(1, 0x5000, 0x1000, Iotlb.ANY_LEVEL, true, false)).isEqualTo(1);
        assertThat(walk.lookup(1, -1, Stage.S2, 21, 0x5000, w)).isTrue();
        stage2Context();
        assertThat(caches.invalidateIpa(1, 0x5000, 0x1000, Iotlb.ANY_LEVEL, false, false)).isEqualTo(2);
        assertThat(walk.lookup(1, -1, Stage.S2, 21, 0x5000, w)).isFalse();
        assertThat(walk.size()).isEqualTo(3);
        assertThat(tlb.size()).isEqualTo(1);
    }

    @Test
    void asidAndVmidInvalidationsCoverBothCaches() {
        stage1Context();
        stage2Context();
        assertThat(caches.invalidateAsid(1, 7)).isEqualTo(4);
        stage1Context();
        // TLBI_NH_ALL: stage 1 only; the stage 2 leaf and walk stay
        assertThat(caches.invalidateVmid(1, Stage.S1 | Stage.NESTED)).isEqualTo(4);
        assertThat(tlb.size()).isEqualTo(1);
        assertThat(walk.size()).isEqualTo(1);
        stage1Context();
        assertThat(caches.invalidateVmid(1, Stage.ALL)).isEqualTo(6);
        stage1Context();
        stage2Context();
        assertThat(caches.invalidateVmid(1, Stage.S2)).isEqualTo(2);
        assertThat(caches.invalidateAll()).isEqualTo(4);
    }

    @Test
    void vtdPageSelectiveHonoursTheInvalidationHint() {
        stage2Context();
        walk.insert(1, -1, Stage.S2, 2, 30, 0x5000, 0x6003);
        // IH=1: leaves only
        assertThat(caches.invalidatePageSelective(1, -1, 0x5000, 0, true, Stage.ALL)).isEqualTo(1);
        assertThat(walk.size()).isEqualTo(2);
        // IH=0, AM=9 (2 MB at 0): the stage 2 walk entries covering it go
        assertThat(caches.invalidatePageSelective(1, -1, 0x1F_F000, 9, false, Stage.ALL)).isEqualTo(2);
        assertThat(walk.size()).isZero();
        // the whole space
        stage2Context();
        assertThat(caches.invalidatePageSelective(1, -1, 0, 52, false, Stage.ALL)).isEqualTo(2);
    }
}
