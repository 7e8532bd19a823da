package org.iommuemu.core.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedList;
import java.util.List;
import org.iommuemu.core.pgtable.PageTableException;
import org.iommuemu.core.pgtable.PtLookup;
import org.junit.jupiter.api.Test;

/** mapSg: coalescing, unwinding, and what CPU pages the IOMMU's page sizes can and cannot express. */
class IommuDomainMapSgTest extends Fixture {
    private static final long IOVA = 0x4000_0000L;
    private static final long PA = 0x2_0000_0000L;

    private final FakeInstance caching = new FakeInstance("vtd0", ALL_4K_SIZES, true);

    @Test
    void physicallyContiguousEntriesAreCoalescedIntoLargePages() throws Exception {
        IommuDomain d = strict();
        d.attach(caching);
        List<SgEntry> sg = new ArrayList<>();
        for (int i = 0; i < 512; i++) {
            sg.add(SgEntry.of(PA + i * K4, K4));
        }
        assertThat(d.mapSg(IOVA, sg, RW)).isEqualTo(M2);
        PtLookup l = new PtLookup();
        assertThat(d.pageTable().lookup(IOVA + M2 - 1, l)).isTrue();
        assertThat(l.size()).as("one 2M leaf from 512 entries").isEqualTo(M2);
        assertThat(l.iova()).isEqualTo(IOVA);
        assertThat(l.oa()).isEqualTo(PA);
        assertThat(caching.syncMaps()).as("one map-side sync for the whole list")
                .containsExactly(new FakeInstance.SyncMap(IOVA, M2));
        assertThat(d.mapSyncs()).isEqualTo(1);
        assertThat(d.mappedBytes()).isEqualTo(M2);
    }

    @Test
    void scatteredEntriesAreMappedBackToBackEachWithItsOwnLeaves() throws Exception {
        IommuDomain d = strict();
        // 3 pages, 16 pages (a 64K run), 1 page; the first two are contiguous in iova, not in pa
        List<SgEntry> sg = List.of(SgEntry.of(0x9000_3000L, 3 * K4), SgEntry.of(0xA000_0000L, K64),
                new SgEntry(0xB000_0000L, 0x5000, K4));
        assertThat(d.mapSg(IOVA, sg, RW)).isEqualTo(3 * K4 + K64 + K4);
        assertThat(d.iovaToPhys(IOVA)).isEqualTo(0x9000_3000L);
        assertThat(d.iovaToPhys(IOVA + 3 * K4 - 1)).isEqualTo(0x9000_5FFFL);
        assertThat(d.iovaToPhys(IOVA + 3 * K4)).isEqualTo(0xA000_0000L);
        assertThat(d.iovaToPhys(IOVA + 3 * K4 + K64 + 5)).isEqualTo(0xB000_5005L);
        assertThat(d.iovaToPhys(IOVA + 4 * K4 + K64)).isEqualTo(IommuDomain.NO_MAPPING);
        assertThat(IommuDomainMapTest.leafSizes(d, IOVA, 4 * K4 + K64)).containsExactly(K4, K4, K4,
                K4, K4, K4, K4, K4, K4, K4, K4, K4, K4, K4, K4, K4, K4, K4, K4, K4);
    }

    @Test
    void aFailureInTheMiddleUnmapsEverythingTheCallMapped() throws Exception {
        IommuDomain d = strict();
        d.attach(caching);
        // entry 3 would land on an iova that is mapped already
        d.map(IOVA + 3 * K4 + K4, 0x7000_0000L, K4, RW);
        caching.clear();
        List<SgEntry> sg = List.of(SgEntry.of(0x9000_0000L, K4), SgEntry.of(0x9100_0000L, K4),
                SgEntry.of(0x9200_0000L, K4), SgEntry.of(0x9300_0000L, 2 * K4), SgEntry.of(0x9400_0000L, K4));
        assertThatThrownBy(() -> d.mapSg(IOVA, sg, RW)).isInstanceOfSatisfying(IommuApiException.class, e -> {
            assertThat(e.kind()).isEqualTo(IommuApiException.Kind.PAGE_TABLE);
            assertThat(e.pageTableKind()).isEqualTo(PageTableException.Kind.ADDRESS_IN_USE);
            assertThat(e.sgIndex()).isEqualTo(3);
        }).hasMessageContaining("sg entry 3 at iova 0x40003000 -> pa 0x93000000, 0x2000 bytes, could not be mapped")
                .hasMessageContaining("the 0x3000 bytes mapped before it were unmapped again");
        for (int i = 0; i < 6; i++) {
            long expected = i == 4 ? 0x7000_0000L : IommuDomain.NO_MAPPING;
            assertThat(d.iovaToPhys(IOVA + i * K4)).as("page %d", i).isEqualTo(expected);
        }
        assertThat(caching.syncMaps()).as("no map-side sync").isEmpty();
        assertThat(caching.syncs()).as("the unwinding was invalidated").hasSize(1);
        assertThat(d.mappedBytes()).isEqualTo(K4);
    }

    @Test
    void aFailedCoalescedRunNamesItsEntries() throws Exception {
        IommuDomain d = strict();
        d.map(IOVA + 2 * K4, 0x7000_0000L, K4, RW);
        List<SgEntry> sg = List.of(SgEntry.of(0x9000_0000L, K4), SgEntry.of(0x9000_1000L, K4),
                SgEntry.of(0x9000_2000L, K4), SgEntry.of(0x9800_0000L, K4));
        assertThatThrownBy(() -> d.mapSg(IOVA, sg, RW))
                .isInstanceOfSatisfying(IommuApiException.class, e -> assertThat(e.sgIndex()).isZero())
                .hasMessageContaining("sg entries 0..2 (one physically contiguous run) at iova 0x40000000");
        assertThat(d.iovaToPhys(IOVA)).isEqualTo(IommuDomain.NO_MAPPING);
    }

    @Test
    void cpuPagesOf64KOnA4KIommuMapExactlyTheBytesAskedFor() throws Exception {
        IommuDomain d = strict();
        List<SgEntry> sg = List.of(SgEntry.of(0x9001_0000L, K64), SgEntry.of(0x9005_0000L, K64),
                SgEntry.of(0x9003_0000L, K64));
        long total = d.mapSg(IOVA, sg, RW);
        assertThat(total).isEqualTo(3 * K64);
        assertThat(d.iovaToPhys(IOVA + total - 1)).as("the last byte").isEqualTo(0x9003_0000L + K64 - 1);
        assertThat(d.iovaToPhys(IOVA + total)).as("nothing beyond").isEqualTo(IommuDomain.NO_MAPPING);
        assertThat(d.iovaToPhys(IOVA + K64)).isEqualTo(0x9005_0000L);
    }

    @Test
    void aPartialPageOnA4KIommuIsRefusedNamingTheEntry() throws Exception {
        IommuDomain d = strict();
        List<SgEntry> offset = List.of(SgEntry.of(0x9000_0000L, K4), new SgEntry(0x9001_0000L, 0x200, K4));
        assertThatThrownBy(() -> d.mapSg(IOVA, offset, RW)).isInstanceOfSatisfying(IommuApiException.class, e -> {
            assertThat(e.kind()).isEqualTo(IommuApiException.Kind.MISALIGNED);
            assertThat(e.sgIndex()).isEqualTo(1);
        }).hasMessageContaining("sg entry 1 starts at physical address 0x90010200 (address 0x90010000 + offset 0x200),"
                + " not a multiple of the minimum page size 0x1000");
        List<SgEntry> length = List.of(SgEntry.of(0x9000_0000L, 0x1800));
        assertThatThrownBy(() -> d.mapSg(IOVA, length, RW)).isInstanceOfSatisfying(IommuApiException.class, e -> {
            assertThat(e.kind()).isEqualTo(IommuApiException.Kind.MISALIGNED);
            assertThat(e.sgIndex()).isZero();
        }).hasMessageContaining("sg entry 0 has length 0x1800, not a multiple of the minimum page size 0x1000");
        assertThat(d.iovaToPhys(IOVA)).as("nothing mapped").isEqualTo(IommuDomain.NO_MAPPING);
        assertThat(d.mappedBytes()).isZero();
    }

    @Test
    void a4KEntryOnA64KIommuIsRefused() throws Exception {
        IommuDomain d = IommuDomain.builder(TestFormat.sixtyFourK(), ram, alloc).name("g64").build();
        assertThat(d.minPageSize()).isEqualTo(K64);
        List<SgEntry> sg = List.of(SgEntry.of(0x9000_0000L, K64), SgEntry.of(0x9010_0000L, K4));
        assertThatThrownBy(() -> d.mapSg(0x100_0000L, sg, RW)).isInstanceOfSatisfying(IommuApiException.class, e -> {
            assertThat(e.kind()).isEqualTo(IommuApiException.Kind.MISALIGNED);
            assertThat(e.sgIndex()).isEqualTo(1);
        }).hasMessageContaining("sg entry 1 has length 0x1000, not a multiple of the minimum page size 0x10000");
        // 64K-aligned data maps
        assertThat(d.mapSg(0x100_0000L, List.of(SgEntry.of(0x9010_0000L, 2 * K64)), RW)).isEqualTo(2 * K64);
        assertThat(d.iovaToPhys(0x100_0000L + 2 * K64 - 1)).isEqualTo(0x9010_0000L + 2 * K64 - 1);
        d.unmap(0x100_0000L, 2 * K64);
        d.destroy();
        assertThat(tablePages()).isZero();
    }

    @Test
    void malformedListsAreRefusedWithClearErrors() throws Exception {
        IommuDomain d = strict();
        assertSg(d, null, IommuApiException.Kind.BAD_ARGUMENT, "the scatter-gather list is null", -1);
        assertSg(d, List.of(), IommuApiException.Kind.BAD_ARGUMENT, "the scatter-gather list is empty", -1);
        assertSg(d, Arrays.asList(SgEntry.of(PA, K4), null), IommuApiException.Kind.BAD_ARGUMENT,
                "sg entry 1 is null", 1);
        assertSg(d, List.of(SgEntry.of(PA, K4), SgEntry.of(PA, 0)), IommuApiException.Kind.BAD_ARGUMENT,
                "sg entry 1 has length 0", 1);
        assertSg(d, List.of(new SgEntry(-K4, K4, K4)), IommuApiException.Kind.BAD_ARGUMENT,
                "sg entry 0: address 0xfffffffffffff000 + offset 0x1000 wraps past 2^64", 0);
        assertSg(d, List.of(SgEntry.of(-K4, M2)), IommuApiException.Kind.BAD_ARGUMENT,
                "sg entry 0 (0x200000 bytes at 0xfffffffffffff000) wraps past 2^64", 0);
        assertSg(d, List.of(SgEntry.of(0, 1L << 63), SgEntry.of(0, 1L << 63)), IommuApiException.Kind.BAD_ARGUMENT,
                "the total length overflows 2^64 at sg entry 1", 1);
        assertSg(d, List.of(SgEntry.of(PA, 1L << 48)), IommuApiException.Kind.OUT_OF_APERTURE,
                "[0x40000000, 0x100003fffffff] in domain 'strict': outside the aperture [0x0, 0xffffffffffff]", -1);
        assertThat(d.mappedBytes()).isZero();
    }

    private static void assertSg(IommuDomain d, List<SgEntry> sg, IommuApiException.Kind kind, String text,
            int index) {
        assertThatThrownBy(() -> d.mapSg(IOVA, sg, RW)).isInstanceOfSatisfying(IommuApiException.class, e -> {
            assertThat(e.kind()).isEqualTo(kind);
            assertThat(e.sgIndex()).isEqualTo(index);
        }).hasMessageContaining(text).hasMessageContaining("mapSg").hasMessageContaining("domain 'strict'");
    }

    @Test
    void anyListImplementationWorks() throws Exception {
        IommuDomain d = strict();
        LinkedList<SgEntry> sg = new LinkedList<>();
        for (int i = 0; i < 16; i++) {
            sg.add(SgEntry.of(PA + K64 + i * K4, K4));
        }
        assertThat(d.mapSg(IOVA + K64, sg, RW)).isEqualTo(K64);
        PtLookup l = new PtLookup();
        assertThat(d.pageTable().lookup(IOVA + K64, l)).isTrue();
        assertThat(l.size()).as("16 contiguous entries, aligned: one 64K run").isEqualTo(K64);
    }
}
