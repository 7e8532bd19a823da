package org.iommuemu.core.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.iommuemu.core.pgtable.PageTableException;
import org.iommuemu.core.pgtable.PtLookup;
import org.junit.jupiter.api.Test;

/** Unmap through the domain: the gather semantics (one sync per call, freed tables after the sync). */
class IommuDomainUnmapTest extends Fixture {
    private static final long IOVA = 0x4000_0000L;
    /** Not congruent with IOVA modulo 8K: only 4K leaves fit. */
    private static final long PA = 0x1_0000_1000L;

    private final FakeInstance a = new FakeInstance("smmu0", ALL_4K_SIZES, false);
    private final FakeInstance b = new FakeInstance("smmu1", ALL_4K_SIZES, false);

    @Test
    void aStrictUnmapOf1024PagesIsOneSyncPerInstanceCoveringTheWholeRange() throws Exception {
        IommuDomain d = strict();
        d.attach(a);
        d.attach(b);
        a.sampleWith(this::tablePages);
        b.sampleWith(this::tablePages);
        d.map(IOVA, PA, M4, RW);
        PtLookup leaf = new PtLookup();
        for (long off = 0; off < M4; off += 97 * K4) {
            assertThat(d.pageTable().lookup(IOVA + off, leaf)).isTrue();
            assertThat(leaf.size()).as("leaf at +%x", off).isEqualTo(K4);
        }
        long tablesMapped = tablePages();
        assertThat(tablesMapped).as("top, level 2, level 1 and two level-0 tables").isEqualTo(5);

        assertThat(d.unmap(IOVA, M4)).isEqualTo(M4);

        for (FakeInstance i : new FakeInstance[] {a, b}) {
            assertThat(i.syncs()).as("%s", i).containsExactly(
                    new FakeInstance.Sync(IOVA, IOVA + M4 - 1, 12, true, true, tablesMapped));
            assertThat(i.flushAlls()).isZero();
        }
        assertThat(tablePages()).as("both level-0 tables released after the sync").isEqualTo(tablesMapped - 2);
        assertThat(d.unmapSyncs()).isEqualTo(1);
        assertThat(d.tablePagesFreed()).isEqualTo(2);
        assertThat(d.mappedBytes()).isZero();
        assertThat(d.iovaToPhys(IOVA)).isEqualTo(IommuDomain.NO_MAPPING);
        assertThat(d.iovaToPhys(IOVA + M4 - 1)).isEqualTo(IommuDomain.NO_MAPPING);
    }

    @Test
    void aSecondUnmapOfADisjointRangeIsAnotherSync() throws Exception {
        IommuDomain d = strict();
        d.attach(a);
        d.attach(b);
        d.map(IOVA, PA, 8 * K4, RW);
        d.map(IOVA + G1, PA, 2 * K4, RW);
        d.unmap(IOVA, 8 * K4);
        d.unmap(IOVA + G1, 2 * K4);
        for (FakeInstance i : new FakeInstance[] {a, b}) {
            assertThat(i.syncs()).as("%s", i).containsExactly(
                    new FakeInstance.Sync(IOVA, IOVA + 8 * K4 - 1, 12, false, true, 0),
                    new FakeInstance.Sync(IOVA + G1, IOVA + G1 + 2 * K4 - 1, 12, false, true, 0));
        }
        assertThat(d.unmapSyncs()).isEqualTo(2);
        assertThat(d.tablePagesFreed()).as("partly covered tables stay").isZero();
    }

    @Test
    void theGatheredPageSizeIsTheSmallestLeafRemoved() throws Exception {
        IommuDomain d = strict();
        d.attach(a);
        d.map(IOVA, 0x2_0000_0000L, M2, RW); // one 2M leaf
        d.map(IOVA + M2, 0x2_0000_0000L + M2 + K64, K64, RW); // one 64K run
        assertThat(d.unmap(IOVA, M2 + K64)).isEqualTo(M2 + K64);
        assertThat(a.syncs()).containsExactly(new FakeInstance.Sync(IOVA, IOVA + M2 + K64 - 1, 16, false, true, 0));
    }

    @Test
    void anUnmapOfAHoleRemovesNothingAndSyncsNothing() throws Exception {
        IommuDomain d = strict();
        d.attach(a);
        assertThat(d.unmap(IOVA, M2)).isZero();
        assertThat(a.syncs()).isEmpty();
        assertThat(d.unmapSyncs()).isZero();
    }

    @Test
    void unmappingFromInsideALargeLeafIsRefusedAndChangesNothing() throws Exception {
        IommuDomain d = strict();
        d.attach(a);
        d.map(IOVA, 0x2_0000_0000L, M2, RW);
        assertThatThrownBy(() -> d.unmap(IOVA + K4, K4))
                .isInstanceOfSatisfying(IommuApiException.class, e -> {
                    assertThat(e.kind()).isEqualTo(IommuApiException.Kind.PAGE_TABLE);
                    assertThat(e.pageTableKind()).isEqualTo(PageTableException.Kind.UNMAP_SPLIT);
                })
                .hasMessageContaining("unmap of 0x1000 bytes at iova 0x40001000 in domain 'strict'")
                .hasMessageContaining("starts inside the 0x200000-byte mapping at 0x40000000");
        assertThat(d.iovaToPhys(IOVA + K4)).isEqualTo(0x2_0000_0000L + K4);
        assertThat(a.syncs()).isEmpty();
    }

    @Test
    void badUnmapsAreRefusedNamingTheirValues() throws Exception {
        IommuDomain d = domain().name("d").aperture(0x10_0000L, 0xFFFF_FFFFL).build();
        assertKind(() -> d.unmap(0x10_0000L, 0), IommuApiException.Kind.BAD_ARGUMENT, "must not be zero");
        assertKind(() -> d.unmap(0x10_0000L, 0x1800), IommuApiException.Kind.MISALIGNED,
                "size 0x1800 is not a multiple of the minimum page size 0x1000");
        assertKind(() -> d.unmap(0x10_0800L, K4), IommuApiException.Kind.MISALIGNED, "iova 0x100800 is");
        assertKind(() -> d.unmap(0, K4), IommuApiException.Kind.OUT_OF_APERTURE,
                "[0x0, 0xfff] in domain 'd': outside the aperture [0x100000, 0xffffffff]");
        assertKind(() -> d.unmap(0xFFFF_F000L, M2), IommuApiException.Kind.OUT_OF_APERTURE, "0x1001fefff");
        assertKind(() -> d.unmap(-K4, M2), IommuApiException.Kind.BAD_ARGUMENT, "wraps past 2^64");
    }

    @Test
    void aFailingSyncReachesTheCallerAndKeepsTheTablesItWasToRelease() throws Exception {
        IommuDomain d = strict();
        d.attach(a);
        d.map(IOVA, PA, M2, RW);
        long before = tablePages();
        a.failNext(new IllegalStateException("CMD_SYNC timed out"));
        assertThatThrownBy(() -> d.unmap(IOVA, M2)).isInstanceOf(IllegalStateException.class)
                .hasMessage("CMD_SYNC timed out");
        assertThat(tablePages()).as("the level-0 table is never reused: it may still be cached").isEqualTo(before);
        // the domain goes on working with a fresh gather
        d.map(IOVA, PA, K4, RW);
        assertThat(d.unmap(IOVA, K4)).isEqualTo(K4);
        assertThat(a.syncs()).hasSize(1);
        assertThat(a.syncs().get(0).start()).isEqualTo(IOVA);
    }

    static void assertKind(org.assertj.core.api.ThrowableAssert.ThrowingCallable call, IommuApiException.Kind kind,
            String text) {
        assertThatThrownBy(call).isInstanceOfSatisfying(IommuApiException.class,
                e -> assertThat(e.kind()).isEqualTo(kind)).hasMessageContaining(text);
    }
}
