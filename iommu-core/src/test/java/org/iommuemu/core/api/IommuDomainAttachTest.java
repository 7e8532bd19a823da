package org.iommuemu.core.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.iommuemu.core.api.IommuDomainUnmapTest.assertKind;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Domains shared by instances, page-size compatibility, detach and destroy. */
class IommuDomainAttachTest extends Fixture {
    private static final long IOVA = 0x4000_0000L;
    private static final long PA = 0x2_0000_1000L;

    private final FakeInstance a = new FakeInstance("smmu0", ALL_4K_SIZES, true);
    private final FakeInstance b = new FakeInstance("smmu1", ALL_4K_SIZES, true);

    @Test
    void aSharedDomainFlushesEveryInstanceAndADetachedOneNoLonger() throws Exception {
        IommuDomain d = strict();
        d.attach(a);
        d.attach(b);
        assertThat(d.instances()).containsExactly(a, b);
        d.map(IOVA, PA, K4, RW);
        d.unmap(IOVA, K4);
        d.flushAll();
        for (FakeInstance i : List.of(a, b)) {
            assertThat(i.syncMaps()).as("%s", i).hasSize(1);
            assertThat(i.syncs()).as("%s", i).hasSize(1);
            assertThat(i.flushAlls()).as("%s", i).isEqualTo(1);
        }
        d.detach(b);
        assertThat(d.isAttached(b)).isFalse();
        d.map(IOVA, PA, K4, RW);
        d.unmap(IOVA, K4);
        d.flushAll();
        assertThat(a.syncMaps()).hasSize(2);
        assertThat(a.syncs()).hasSize(2);
        assertThat(a.flushAlls()).isEqualTo(2);
        assertThat(b.syncMaps()).hasSize(1);
        assertThat(b.syncs()).hasSize(1);
        assertThat(b.flushAlls()).isEqualTo(1);
    }

    @Test
    void detachingFromALazyDomainFlushesTheQueueFirst() throws Exception {
        IommuDomain d = domain().flushPolicy(FlushPolicy.LAZY).build();
        d.attach(a);
        d.attach(b);
        d.map(IOVA, PA, K4, RW);
        d.unmap(IOVA, K4);
        d.detach(b);
        assertThat(b.flushAlls()).as("b leaves with nothing queued still cached").isEqualTo(1);
        assertThat(a.flushAlls()).isEqualTo(1);
        assertThat(d.queuedRanges()).isZero();
        d.map(IOVA, PA, K4, RW);
        d.unmap(IOVA, K4);
        d.flushQueue();
        assertThat(a.flushAlls()).isEqualTo(2);
        assertThat(b.flushAlls()).isEqualTo(1);
    }

    @Test
    void anInstanceWithoutTheMinimumPageSizeCannotBeAttached() throws Exception {
        IommuDomain d = domain().name("d").build();
        FakeInstance granule64k = new FakeInstance("smmu64", K64 | (1L << 29), false);
        assertThatThrownBy(() -> d.attach(granule64k)).isInstanceOfSatisfying(IommuApiException.class,
                e -> assertThat(e.kind()).isEqualTo(IommuApiException.Kind.INCOMPATIBLE_INSTANCE))
                .hasMessageContaining("cannot attach smmu64 to domain 'd': it supports page sizes 64 KiB, 512 MiB")
                .hasMessageContaining("needs its minimum page size 4 KiB");
        assertThat(d.instances()).isEmpty();
        assertThat(d.pageSizes()).isEqualTo(ALL_4K_SIZES);
    }

    @Test
    void anInstanceLackingLargerSizesNarrowsTheDomainButOnlyWhileNothingIsMapped() throws Exception {
        IommuDomain d = domain().name("d").build();
        FakeInstance no64k = new FakeInstance("smmu2", K4 | M2 | G1, false);
        d.attach(no64k);
        assertThat(d.pageSizes()).isEqualTo(K4 | M2 | G1);
        d.map(IOVA, PA, K4, RW);
        FakeInstance no1g = new FakeInstance("smmu3", K4 | K64 | M2, false);
        assertKind(() -> d.attach(no1g), IommuApiException.Kind.INCOMPATIBLE_INSTANCE,
                "cannot attach smmu3 to domain 'd': it lacks page sizes 1 GiB that the domain's existing mappings");
        d.unmap(IOVA, K4);
        d.attach(no1g);
        assertThat(d.pageSizes()).isEqualTo(K4 | M2);
        d.detach(no64k);
        assertThat(d.pageSizes()).as("grows back on detach").isEqualTo(K4 | K64 | M2);
        d.detach(no1g);
        assertThat(d.pageSizes()).isEqualTo(ALL_4K_SIZES);
    }

    @Test
    void attachAndDetachRefuseWhatDoesNotMakeSense() throws Exception {
        IommuDomain d = domain().name("d").build();
        d.attach(a);
        assertKind(() -> d.attach(a), IommuApiException.Kind.ALREADY_ATTACHED, "smmu0 is attached to domain 'd'");
        assertKind(() -> d.detach(b), IommuApiException.Kind.NOT_ATTACHED, "smmu1 is not attached to domain 'd'");
        assertKind(() -> d.attach(null), IommuApiException.Kind.BAD_ARGUMENT, "the instance is null");
        assertKind(() -> d.detach(null), IommuApiException.Kind.BAD_ARGUMENT, "the instance is null");
    }

    @Test
    void aDomainStillAttachedCannotBeDestroyed() throws Exception {
        IommuDomain d = domain().name("d").build();
        d.attach(a);
        d.attach(b);
        d.map(IOVA, PA, M2, RW);
        long tables = tablePages();
        assertKind(d::destroy, IommuApiException.Kind.STILL_ATTACHED,
                "cannot destroy domain 'd': it is still attached to smmu0, smmu1; detach it first");
        assertThat(d.isDestroyed()).isFalse();
        assertThat(tablePages()).isEqualTo(tables);
        assertThat(d.iovaToPhys(IOVA)).isEqualTo(PA);
    }

    @Test
    void destroyFreesEveryTablePageEvenWithMappingsLeft() throws Exception {
        IommuDomain d = domain().name("d").build();
        d.attach(a);
        d.map(IOVA, PA, M4, RW);
        d.map(IOVA + 7 * G1, PA, K4, RW);
        d.unmap(IOVA, M2);
        d.detach(a);
        d.destroy();
        assertThat(tablePages()).isZero();
        assertThat(alloc.outstandingByTag()).isEmpty();
        assertThat(d.isDestroyed()).isTrue();
        d.destroy(); // twice is fine
        assertKind(() -> d.map(IOVA, PA, K4, RW), IommuApiException.Kind.DESTROYED,
                "map: domain 'd' has been destroyed");
        assertKind(() -> d.unmap(IOVA, K4), IommuApiException.Kind.DESTROYED, "unmap");
        assertKind(() -> d.mapSg(IOVA, List.of(SgEntry.of(PA, K4)), RW), IommuApiException.Kind.DESTROYED, "mapSg");
        assertKind(() -> d.iovaToPhys(IOVA), IommuApiException.Kind.DESTROYED, "iovaToPhys");
        assertKind(() -> d.attach(a), IommuApiException.Kind.DESTROYED, "attach smmu0");
        assertKind(d::flushAll, IommuApiException.Kind.DESTROYED, "flushAll");
        assertThat(d.flushQueueIfExpired()).isFalse();
    }

    @Test
    void destroyingALazyDomainReleasesTheQueuedTables() throws Exception {
        IommuDomain d = domain().flushPolicy(FlushPolicy.LAZY).build();
        d.map(IOVA, PA, M4, RW);
        d.unmap(IOVA, M4);
        assertThat(d.queuedTablePages()).isEqualTo(2);
        d.destroy();
        assertThat(tablePages()).isZero();
    }

    @Test
    void destroyingA64KGranuleDomainFreesItsMultiPageTables() throws Exception {
        IommuDomain d = IommuDomain.builder(TestFormat.sixtyFourK(), ram, alloc).build();
        d.map(0, 0x9000_0000L, 4 * K64, RW);
        assertThat(tablePages()).as("two tables of 16 pages").isEqualTo(32);
        d.unmap(0, 1L << 29);
        assertThat(d.tablePagesFreed()).isEqualTo(16);
        d.destroy();
        assertThat(tablePages()).isZero();
    }
}
