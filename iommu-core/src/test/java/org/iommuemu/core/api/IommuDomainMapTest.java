package org.iommuemu.core.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.iommuemu.core.api.IommuDomainUnmapTest.assertKind;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.pgtable.PageTableException;
import org.iommuemu.core.pgtable.PtLookup;
import org.junit.jupiter.api.Test;

/** Map through the domain: one map-side sync per call, unwinding, page sizes of the instances. */
class IommuDomainMapTest extends Fixture {
    private static final long IOVA = 0x4000_0000L;
    private static final long PA = 0x2_0000_0000L;

    private final List<String> events = new ArrayList<>();
    /** Caches invalid entries (VT-d caching mode): needs a sync after map. */
    private final FakeInstance caching = new FakeInstance("vtd0", ALL_4K_SIZES, true, events);
    private final FakeInstance plain = new FakeInstance("smmu0", ALL_4K_SIZES, false, events);

    @Test
    void eachMapIsOneMapSideSyncOnInstancesThatNeedItAndNoneOnOthers() throws Exception {
        IommuDomain d = strict();
        d.attach(caching);
        d.attach(plain);
        assertThat(d.map(IOVA, PA, K4, RW)).isEqualTo(K4);
        assertThat(d.map(IOVA + G1, PA + K4, M4, RW)).as("1024 leaves, one sync").isEqualTo(M4);
        assertThat(d.map(IOVA + 2 * G1, PA, M2 + K64 + K4, RW)).isEqualTo(M2 + K64 + K4);
        assertThat(caching.syncMaps()).containsExactly(new FakeInstance.SyncMap(IOVA, K4),
                new FakeInstance.SyncMap(IOVA + G1, M4), new FakeInstance.SyncMap(IOVA + 2 * G1, M2 + K64 + K4));
        assertThat(plain.syncMaps()).isEmpty();
        assertThat(caching.syncs()).as("a map invalidates nothing on the unmap side").isEmpty();
        assertThat(d.mapSyncs()).isEqualTo(3);
        assertThat(d.unmapSyncs()).isZero();
        assertThat(d.mappedBytes()).isEqualTo(K4 + M4 + M2 + K64 + K4);
        assertThat(d.iovaToPhys(IOVA + G1 + M4 - 1)).isEqualTo(PA + K4 + M4 - 1);
    }

    @Test
    void withoutAnInstanceThatNeedsItThereIsNoMapSideSync() throws Exception {
        IommuDomain d = strict();
        d.attach(plain);
        d.map(IOVA, PA, M2, RW);
        assertThat(d.mapSyncs()).isZero();
        assertThat(events).isEmpty();
    }

    @Test
    void aMapOverAPartlyMappedRangeFailsAndLeavesEverythingAsItWas() throws Exception {
        IommuDomain d = strict();
        d.attach(caching);
        d.map(IOVA + 5 * K4, 0x9000_0000L, K4, RW);
        assertThatThrownBy(() -> d.map(IOVA, PA, 16 * K4, RW))
                .isInstanceOfSatisfying(IommuApiException.class, e -> {
                    assertThat(e.kind()).isEqualTo(IommuApiException.Kind.PAGE_TABLE);
                    assertThat(e.pageTableKind()).isEqualTo(PageTableException.Kind.ADDRESS_IN_USE);
                })
                .hasMessageContaining("map of 0x10000 bytes at iova 0x40000000 -> pa 0x200000000 in domain 'strict'")
                .hasMessageContaining("0x40005000 is already mapped");
        for (int i = 0; i < 16; i++) {
            long expected = i == 5 ? 0x9000_0000L : IommuDomain.NO_MAPPING;
            assertThat(d.iovaToPhys(IOVA + i * K4)).as("page %d", i).isEqualTo(expected);
        }
        assertThat(caching.syncMaps()).as("no map-side sync for a failed map").hasSize(1);
        assertThat(d.mappedBytes()).isEqualTo(K4);
    }

    @Test
    void aFailureAfterSomeEntriesWereWrittenUnwindsThemAndSyncsTheUnwinding() throws Exception {
        // 32 pages across a 2M boundary: the 16 below it go into one leaf table, then the conflict in the next
        // table (page 21 of the range) fails the map after those 16 entries were written
        FakeInstance no64k = new FakeInstance("smmu1", K4 | M2 | G1, true, events);
        IommuDomain d = strict();
        d.attach(no64k);
        long start = IOVA + M2 - 16 * K4;
        d.map(start + 21 * K4, 0x9000_0000L, K4, RW);
        events.clear();
        assertKind(() -> d.map(start, PA, 32 * K4, RW), IommuApiException.Kind.PAGE_TABLE,
                Long.toHexString(start + 21 * K4) + " is already mapped");
        for (int i = 0; i < 32; i++) {
            long expected = i == 21 ? 0x9000_0000L : IommuDomain.NO_MAPPING;
            assertThat(d.iovaToPhys(start + i * K4)).as("page %d", i).isEqualTo(expected);
        }
        assertThat(events).as("the unwinding is invalidated, strictly").containsExactly("smmu1:sync");
        assertThat(no64k.syncs().get(0).start()).isEqualTo(start);
        assertThat(no64k.syncs().get(0).last()).as("the 16 pages written below the boundary")
                .isEqualTo(start + 16 * K4 - 1);
    }

    @Test
    void aConflictInsideOneRunIsFoundBeforeAnythingIsWritten() throws Exception {
        FakeInstance no64k = new FakeInstance("smmu1", K4 | M2 | G1, true, events);
        IommuDomain d = strict();
        d.attach(no64k);
        d.map(IOVA + 20 * K4, 0x9000_0000L, K4, RW);
        events.clear();
        assertKind(() -> d.map(IOVA, PA, 32 * K4, RW), IommuApiException.Kind.PAGE_TABLE,
                "0x40014000 is already mapped");
        assertThat(events).as("nothing was written, so nothing to invalidate").isEmpty();
        assertThat(d.iovaToPhys(IOVA)).isEqualTo(IommuDomain.NO_MAPPING);
    }

    @Test
    void mapsUseOnlyThePageSizesEveryAttachedInstanceSupports() throws Exception {
        IommuDomain d = strict();
        FakeInstance no64k = new FakeInstance("smmu1", K4 | M2 | G1, false);
        d.attach(no64k);
        assertThat(d.pageSizes()).isEqualTo(K4 | M2 | G1);
        d.map(IOVA, PA, M2 + M2 / 2, RW); // a 2M leaf then 1M that would be 64K runs
        assertThat(leafSizes(d, IOVA, M2 + M2 / 2)).containsOnly(M2, K4).contains(M2);

        IommuDomain e = strict();
        FakeInstance no2m = new FakeInstance("smmu2", K4 | K64 | G1, false);
        e.attach(no2m);
        e.map(IOVA, PA, M2, RW);
        assertThat(leafSizes(e, IOVA, M2)).as("32 runs of 64K instead of one 2M leaf").hasSize(32).containsOnly(K64);

        IommuDomain f = strict();
        f.attach(plain);
        f.map(IOVA, PA, M2 + M2 / 2, RW);
        assertThat(leafSizes(f, IOVA, M2 + M2 / 2)).as("every format size when the instance has them all")
                .hasSize(17).containsOnly(M2, K64);
    }

    static List<Long> leafSizes(IommuDomain d, long iova, long size) throws Exception {
        List<Long> sizes = new ArrayList<>();
        PtLookup l = new PtLookup();
        for (long at = iova; at < iova + size; at += l.size()) {
            assertThat(d.pageTable().lookup(at, l)).as("mapped at %x", at).isTrue();
            sizes.add(l.size());
        }
        return sizes;
    }

    @Test
    void aLargeLeafReplacingAnEmptyTableSyncsTheWalkCachesBeforeTheTableIsFreed() throws Exception {
        IommuDomain d = strict();
        d.attach(caching);
        caching.sampleWith(this::tablePages);
        d.map(IOVA, PA, K4, RW);
        d.unmap(IOVA, K4); // the level-0 table stays, empty
        long before = tablePages();
        events.clear();
        caching.clear();

        d.map(IOVA, PA, M2, RW);

        assertThat(events).as("walk caches first, then the map-side sync").containsExactly("vtd0:sync", "vtd0:syncMap");
        assertThat(caching.syncs()).containsExactly(new FakeInstance.Sync(IOVA, IOVA + M2 - 1, 12, true, true, before));
        assertThat(tablePages()).isEqualTo(before - 1);
        assertThat(d.tablePagesFreed()).isEqualTo(1);
        assertThat(d.pageTable().lookup(IOVA, new PtLookup())).isTrue();
        assertThat(d.iovaToPhys(IOVA + M2 - 1)).isEqualTo(PA + M2 - 1);
    }

    @Test
    void aFailingMapSideSyncUnmapsTheRangeAgain() throws Exception {
        IommuDomain d = strict();
        d.attach(caching);
        caching.failNext(new IllegalStateException("invalidation wait timed out"));
        assertThatThrownBy(() -> d.map(IOVA, PA, M2, RW)).isInstanceOf(IllegalStateException.class)
                .hasMessage("invalidation wait timed out");
        assertThat(d.iovaToPhys(IOVA)).isEqualTo(IommuDomain.NO_MAPPING);
        assertThat(d.mappedBytes()).isZero();
        assertThat(d.mapSyncs()).isZero();
        d.map(IOVA, PA, M2, RW);
        assertThat(d.iovaToPhys(IOVA)).isEqualTo(PA);
    }

    @Test
    void badMapsAreRefusedNamingTheirValues() throws Exception {
        IommuDomain d = domain().name("d").aperture(0x10_0000L, 0xFFFF_FFFFL).build();
        assertKind(() -> d.map(0x10_0000L, PA, 0, RW), IommuApiException.Kind.BAD_ARGUMENT, "must not be zero");
        assertKind(() -> d.map(0x10_0000L, PA, 0x1800, RW), IommuApiException.Kind.MISALIGNED,
                "map of 0x1800 bytes at iova 0x100000 -> pa 0x200000000 in domain 'd': size 0x1800 is not a "
                        + "multiple of the minimum page size 0x1000");
        assertKind(() -> d.map(0x10_0200L, PA + 0x10, K4, RW), IommuApiException.Kind.MISALIGNED,
                "iova 0x100200 and pa 0x200000010 are not a multiple");
        assertKind(() -> d.map(0, PA, K4, RW), IommuApiException.Kind.OUT_OF_APERTURE,
                "map of iova range [0x0, 0xfff] in domain 'd': outside the aperture [0x100000, 0xffffffff]");
        assertKind(() -> d.map(0xFFFF_F000L, PA, M2, RW), IommuApiException.Kind.OUT_OF_APERTURE, "0x1001fefff");
        assertKind(() -> d.map(-K4, PA, M2, RW), IommuApiException.Kind.BAD_ARGUMENT, "wraps past 2^64");
        assertKind(() -> d.map(0x10_0000L, -K4, M2, RW), IommuApiException.Kind.BAD_ARGUMENT,
                "the physical range wraps past 2^64");
        assertThatThrownBy(() -> d.map(0x10_0000L, PA, K4, 0)).isInstanceOfSatisfying(IommuApiException.class,
                e -> assertThat(e.pageTableKind()).isEqualTo(PageTableException.Kind.BAD_PROT));
        assertThatThrownBy(() -> d.map(0x10_0000L, 1L << 52, K4, RW)).isInstanceOfSatisfying(IommuApiException.class,
                e -> assertThat(e.pageTableKind()).isEqualTo(PageTableException.Kind.OA_TOO_WIDE));
        assertThat(d.iovaToPhys(0)).as("outside the aperture").isEqualTo(IommuDomain.NO_MAPPING);
        assertThat(d.mappedBytes()).isZero();
    }

    @Test
    void domainsAreNumberedAndNamedByDefault() throws Exception {
        IommuDomain.Builder builder = domain();
        IommuDomain d = builder.build();
        IommuDomain e = builder.build();
        assertThat(e.id()).isNotEqualTo(d.id());
        assertThat(d.name()).isEqualTo("domain" + d.id());
        assertThat(d.flushPolicy()).isEqualTo(FlushPolicy.STRICT);
        assertThat(d.flushQueueCapacity()).isZero();
        assertThat(domain().flushPolicy(FlushPolicy.LAZY).build().flushQueueCapacity())
                .isEqualTo(IommuDomain.DEFAULT_FLUSH_QUEUE_CAPACITY);
        assertThat(d.toString()).isEqualTo("IommuDomain[" + d.name() + ", STRICT, test 4K]");
    }

    @Test
    void theBuilderNamesAMissingArgument() {
        assertThatThrownBy(() -> IommuDomain.builder(null, ram, alloc)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("IommuDomain.builder: the format is null");
        assertThatThrownBy(() -> IommuDomain.builder(null, alloc)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("IommuDomain.builder: the page table is null");
        assertThatThrownBy(() -> domain().clock(null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("IommuDomain.builder: the clock is null");
        assertThatThrownBy(() -> domain().flushQueueCapacity(0)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("must be at least 1");
        assertThatThrownBy(() -> domain().flushQueueTimeoutNanos(0)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("must be positive");
    }

    @Test
    void theDefaultApertureIsTheFormatsInputRange() throws Exception {
        IommuDomain d = strict();
        assertThat(d.apertureStart()).isZero();
        assertThat(d.apertureLast()).isEqualTo((1L << 48) - 1);
        d.map((1L << 48) - K4, PA, K4, RW);
        assertKind(() -> d.map(1L << 48, PA, K4, RW), IommuApiException.Kind.OUT_OF_APERTURE, "0x1000000000000");
        assertThatThrownBy(() -> domain().aperture(0, 1L << 48).build()).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("multiples of the minimum page size 0x1000");
        assertThatThrownBy(() -> domain().aperture(0, (1L << 49) - 1).build())
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("outside the 48-bit input range");
        assertThatThrownBy(() -> domain().aperture(M2, K4 - 1).build())
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("start is above last");
    }

    @Test
    void aDomainCanTakeOverAnExistingPageTable() throws Exception {
        var table = new org.iommuemu.core.pgtable.PageTable(TestFormat.fourK(), ram, alloc);
        IommuDomain.Builder builder = IommuDomain.builder(table, alloc).name("adopted");
        IommuDomain d = builder.build();
        assertThat(d.pageTable()).isSameAs(table);
        assertThatThrownBy(builder::build).as("a table belongs to one domain")
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("belongs to a domain already");
        d.map(IOVA, PA, K4, RW);
        assertThat(table.iovaToPhys(IOVA)).isEqualTo(PA);
        d.unmap(IOVA, K4);
        d.destroy();
        assertThat(tablePages()).isZero();
    }
}
