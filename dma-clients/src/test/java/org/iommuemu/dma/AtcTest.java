package org.iommuemu.dma;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.iommuemu.proto.v1.AtcInvalidation;
import org.iommuemu.proto.v1.AtsPermissions;
import org.iommuemu.proto.v1.DmaFault;
import org.iommuemu.proto.v1.TranslateReply;
import org.junit.jupiter.api.Test;

/** The device-side ATC: lookups, permissions, range and global invalidation, capacity and LRU eviction. */
class AtcTest {
    private static final int RW = Atc.READ | Atc.WRITE;

    @Test
    void looksUpInsideCachedRegionsOnlyAndHonoursPermissions() {
        Atc atc = new Atc(4);
        atc.insert(-1, 0x10_0000L, 0x1000, 0x8000_0000L, Atc.READ);
        assertThat(atc.lookup(-1, 0x10_0123L, false)).isEqualTo(0x8000_0123L);
        assertThat(atc.lookup(-1, 0x10_0FFFL, false)).isEqualTo(0x8000_0FFFL);
        assertThat(atc.lookup(-1, 0x10_1000L, false)).as("past the region").isEqualTo(Atc.MISS);
        assertThat(atc.lookup(-1, 0x0F_FFFFL, false)).as("before it").isEqualTo(Atc.MISS);
        assertThat(atc.lookup(-1, 0x10_0000L, true)).as("read-only: a write misses").isEqualTo(Atc.MISS);
        assertThat(atc.lookup(3, 0x10_0000L, false)).as("another substream").isEqualTo(Atc.MISS);
        assertThat(atc.remaining(-1, 0x10_0F00L)).isEqualTo(0x100);
        assertThat(atc.hits()).isEqualTo(2);
        assertThat(atc.misses()).isEqualTo(4);
    }

    @Test
    void rangeInvalidationDropsOverlappingRegions() {
        Atc atc = new Atc(8);
        atc.insert(-1, 0x1000, 0x1000, 0xA000, RW);
        atc.insert(-1, 0x2000, 0x1000, 0xB000, RW);
        atc.insert(-1, 0x20_0000, 0x20_0000, 0x4000_0000L, RW); // a 2 MB block
        atc.insert(5, 0x1000, 0x1000, 0xC000, RW);
        assertThat(atc.invalidate(false, -1, 0x2000, 0x1000)).isEqualTo(1);
        assertThat(atc.lookup(-1, 0x2000, false)).isEqualTo(Atc.MISS);
        assertThat(atc.lookup(-1, 0x1000, false)).isEqualTo(0xA000);
        assertThat(atc.invalidate(false, -1, 0x30_0000, 0x1000)).as("a page inside the block drops the block")
                .isEqualTo(1);
        assertThat(atc.lookup(5, 0x1000, false)).as("substream 5 untouched").isEqualTo(0xC000);
        assertThat(atc.invalidate(AtcInvalidation.newBuilder().setSubstreamId(5).setAddress(0).setSize(0).build()))
                .as("size 0: the whole address space of substream 5").isEqualTo(1);
        assertThat(atc.size()).isEqualTo(1);
        assertThat(atc.invalidated()).isEqualTo(3);
    }

    @Test
    void anInvalidationWithoutASubstreamDropsTheRangeWhateverSubstreamCachedIt() {
        Atc atc = new Atc(8);
        atc.insert(-1, 0x1000, 0x1000, 0xA000, RW);
        atc.insert(5, 0x1000, 0x1000, 0xC000, RW);
        atc.insert(5, 0x8000, 0x1000, 0xD000, RW);
        atc.insert(7, 0x1000, 0x1000, 0xE000, RW);
        assertThat(atc.invalidate(AtcInvalidation.newBuilder().setSubstreamId(5).setAddress(0x1000).setSize(0x1000)
                .build())).as("with a substream: that substream's region only").isEqualTo(1);
        assertThat(atc.lookup(-1, 0x1000, false)).isEqualTo(0xA000);
        assertThat(atc.lookup(7, 0x1000, false)).isEqualTo(0xE000);
        assertThat(atc.invalidate(AtcInvalidation.newBuilder().setAddress(0x1000).setSize(0x1000).build()))
                .as("without one (PCIe: no PASID prefix): every region in the range").isEqualTo(2);
        assertThat(atc.lookup(-1, 0x1000, false)).isEqualTo(Atc.MISS);
        assertThat(atc.lookup(7, 0x1000, false)).isEqualTo(Atc.MISS);
        assertThat(atc.lookup(5, 0x8000, false)).as("outside the range").isEqualTo(0xD000);
    }

    @Test
    void globalInvalidationDropsEverySubstream() {
        Atc atc = new Atc(8);
        atc.insert(-1, 0x1000, 0x1000, 0xA000, RW);
        atc.insert(1, 0x1000, 0x1000, 0xB000, RW);
        atc.insert(2, 0x9000, 0x1000, 0xC000, RW);
        assertThat(atc.invalidate(AtcInvalidation.newBuilder().setGlobal(true).setAddress(0).setSize(0x4000).build()))
                .isEqualTo(2);
        assertThat(atc.lookup(2, 0x9000, false)).as("outside the range").isEqualTo(0xC000);
        assertThat(atc.invalidate(true, -1, 0, 0)).isEqualTo(1);
        assertThat(atc.size()).isZero();
    }

    @Test
    void aFullAtcEvictsTheLeastRecentlyUsedRegion() {
        Atc atc = new Atc(2);
        atc.insert(-1, 0x1000, 0x1000, 0xA000, RW);
        atc.insert(-1, 0x2000, 0x1000, 0xB000, RW);
        assertThat(atc.lookup(-1, 0x1000, false)).isEqualTo(0xA000); // 0x2000 is now the least recent
        atc.insert(-1, 0x3000, 0x1000, 0xC000, RW);
        assertThat(atc.size()).isEqualTo(2);
        assertThat(atc.evictions()).isEqualTo(1);
        assertThat(atc.lookup(-1, 0x2000, false)).isEqualTo(Atc.MISS);
        assertThat(atc.lookup(-1, 0x1000, false)).isEqualTo(0xA000);
        assertThat(atc.lookup(-1, 0x3000, false)).isEqualTo(0xC000);
        assertThatThrownBy(() -> new Atc(0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new Atc(Atc.MAX_CAPACITY + 1)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void cachesTranslateRepliesButNotFaultsNorNoAccessAnswers() {
        Atc atc = new Atc(4);
        TranslateReply ok = TranslateReply.newBuilder().setInputBase(0x4000).setSize(0x1000)
                .setTranslatedAddress(0x9000).setPermissions(AtsPermissions.newBuilder().setRead(true)).build();
        assertThat(atc.insert(-1, ok)).isTrue();
        assertThat(atc.lookup(-1, 0x4010, false)).isEqualTo(0x9010);
        TranslateReply none = TranslateReply.newBuilder().setInputBase(0x5000).setSize(0x1000)
                .setPermissions(AtsPermissions.newBuilder().setPrivileged(true)).build();
        assertThat(atc.insert(-1, none)).isFalse();
        TranslateReply fault = TranslateReply.newBuilder().setFault(DmaFault.getDefaultInstance()).build();
        assertThat(atc.insert(-1, fault)).isFalse();
        assertThat(atc.size()).isEqualTo(1);
    }

    @Test
    void aRegionEndingAtTheTopOfTheAddressSpaceWorks() {
        Atc atc = new Atc(2);
        atc.insert(-1, 0, 0, 0, RW); // 2^64 bytes, identity
        assertThat(atc.lookup(-1, -4096L, true)).isEqualTo(-4096L);
        assertThat(atc.remaining(-1, -4096L)).isEqualTo(4096);
    }

    @Test
    void peekAnswersAsLookupWithoutCountingOrRefreshing() {
        Atc atc = new Atc();
        assertThat(atc.capacity()).isEqualTo(Atc.DEFAULT_CAPACITY);
        Atc two = new Atc(2);
        two.insert(-1, 0x1000, 0x1000, 0x9000, Atc.READ);
        two.insert(-1, 0x2000, 0x1000, 0xA000, RW);
        assertThat(two.peek(-1, 0x1010, false)).isEqualTo(0x9010);
        assertThat(two.peek(-1, 0x1010, true)).as("read-only").isEqualTo(Atc.MISS);
        assertThat(two.peek(-1, 0x5000, false)).isEqualTo(Atc.MISS);
        assertThat(two.hits()).isZero();
        assertThat(two.misses()).isZero();
        two.insert(-1, 0x3000, 0x1000, 0xB000, RW);
        assertThat(two.peek(-1, 0x1000, false)).as("a peek does not make a region recent: the oldest went")
                .isEqualTo(Atc.MISS);
    }
}
