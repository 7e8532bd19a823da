package org.iommuemu.device.vtd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.mockito.Mockito.doAnswer;
import static org.mockito.Mockito.mock;

import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Formats;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.vtd.VtdRig.FsTable;
import org.iommuemu.device.vtd.VtdRig.SsTable;
import org.iommuemu.device.xlate.XlateStats;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.mockito.AdditionalAnswers;

/**
 * The caches are real: context entries, PASID entries, leaves and paging-structure entries stay in force after
 * memory changes until the invalidation that covers them, and no further; with CAP.CM=1 not-present entries are
 * cached too. Invalidations are {@link VtdCaches}' methods, as the device calls them for CCMD, the IOTLB register
 * and queued descriptors.
 */
class VtdCachingTest {
    static final int SID = 0x0210;
    static final int DID = 5;
    static final int PASID = 3;
    static final long OLD = 0x9000_0000L;
    static final long NEW = 0xA000_0000L;
    static final long SRW = 3;
    static final long USER_RW = 0x67; // P RW US A D
    static final long G = 1L << 8;

    private VtdRig rig = VtdRig.legacy(VtdConfig.defaults());

    private long pa(int sid, int pasid, long iova) {
        Translation t = rig.translate(sid, pasid, iova, 0);
        assertThat(t.isOk()).as("%s", t).isTrue();
        return t.physicalAddress();
    }

    private long pa(long iova) {
        return pa(SID, -1, iova);
    }

    private int reason(int sid, int pasid, long iova) {
        Translation t = rig.translate(sid, pasid, iova, 0);
        assertThat(t.outcome()).as("%s", t).isEqualTo(Translation.Outcome.FAULT);
        return t.code();
    }

    @Nested
    class Iotlb {
        @Test
        void staleTranslationSurvivesUntilPageSelectiveInvalidation() throws Exception {
            // the page table as a driver keeps it, with the library and the VT-d second-stage format
            BuddyPageAllocator alloc = new BuddyPageAllocator(rig.ram, 0x1_0000_0000L, 1L << 28);
            PageTable pt = new PageTable(Formats.byName("vtd-ss"), rig.ram, alloc);
            IotlbGather gather = new IotlbGather(g -> { }, alloc); // a driver that forgets to invalidate
            rig.context(SID, pt.root(), 4, DID);
            pt.map(0x10_0000L, OLD, 0x1000, Prot.READ | Prot.WRITE, gather);
            assertThat(pa(0x10_0010L)).isEqualTo(OLD + 0x10);
            pt.unmap(0x10_0000L, 0x1000, gather);
            gather.sync();
            pt.map(0x10_0000L, NEW, 0x1000, Prot.READ | Prot.WRITE, gather);
            assertThat(pa(0x10_0010L)).as("stale").isEqualTo(OLD + 0x10);
            assertThat(rig.caches.invalidateIotlbPage(DID + 1, 0x10_0000L, 0, false)).isZero();
            assertThat(pa(0x10_0010L)).as("another domain's invalidation").isEqualTo(OLD + 0x10);
            assertThat(rig.caches.invalidateIotlbPage(DID, 0x10_0000L, 0, true)).isEqualTo(1);
            assertThat(pa(0x10_0010L)).isEqualTo(NEW + 0x10);
        }

        @Test
        void addressMaskSpansAreAlignedAndExact() {
            SsTable ss = rig.ss(4);
            rig.context(SID, ss.root, 4, DID);
            long[] pages = {0x1F_F000L, 0x20_0000L, 0x20_1000L, 0x3F_F000L, 0x40_0000L};
            for (long page : pages) {
                ss.map(page, OLD + page, 12, SRW);
                assertThat(pa(page)).isEqualTo(OLD + page);
            }
            for (long page : pages) {
                ss.map(page, NEW + page, 12, SRW);
            }
            // AM=0: the one page
            rig.caches.invalidateIotlbPage(DID, 0x20_1000L, 0, true);
            assertThat(pa(0x20_1000L)).isEqualTo(NEW + 0x20_1000L);
            assertThat(pa(0x20_0000L)).isEqualTo(OLD + 0x20_0000L);
            // AM=9: the 2 MB span the address lies in, aligned down; the pages on either side stay stale
            rig.caches.invalidateIotlbPage(DID, 0x2A_B000L, 9, true);
            assertThat(pa(0x20_0000L)).isEqualTo(NEW + 0x20_0000L);
            assertThat(pa(0x3F_F000L)).isEqualTo(NEW + 0x3F_F000L);
            assertThat(pa(0x1F_F000L)).as("just below the span").isEqualTo(OLD + 0x1F_F000L);
            assertThat(pa(0x40_0000L)).as("just above the span").isEqualTo(OLD + 0x40_0000L);
            // AM=1 at the page below: [0x1F_E000, 0x20_0000) holds it
            rig.caches.invalidateIotlbPage(DID, 0x1F_F000L, 1, true);
            assertThat(pa(0x1F_F000L)).isEqualTo(NEW + 0x1F_F000L);
            assertThat(pa(0x40_0000L)).isEqualTo(OLD + 0x40_0000L);
        }

        @Test
        void pageSelectiveInvalidationRemovesALargePageItOverlaps() {
            SsTable ss = rig.ss(4);
            rig.context(SID, ss.root, 4, DID);
            ss.map(0x4000_0000L, 0xC000_0000L, 30, SRW);
            assertThat(pa(0x4123_4567L)).isEqualTo(0xC123_4567L);
            ss.map(0x4000_0000L, 0x1_0000_0000L, 30, SRW);
            rig.caches.invalidateIotlbPage(DID, 0x7FFF_F000L, 0, true); // the last 4 KB of the 1 GB page
            assertThat(pa(0x4123_4567L)).isEqualTo(0x1_0123_4567L);
        }

        @Test
        void invalidationHintKeepsThePagingStructureCache() {
            SsTable ss = rig.ss(4);
            rig.context(SID, ss.root, 4, DID);
            ss.map(0x1000, OLD, 12, SRW);
            assertThat(pa(0x1000)).isEqualTo(OLD);
            // the driver replaces the last-level table: a non-leaf entry changes
            long table = rig.page();
            rig.write(table + 8, NEW | SRW);
            ss.set(0x1000, 1, table | SRW);
            rig.caches.invalidateIotlbPage(DID, 0x1000, 0, true);
            assertThat(pa(0x1000)).as("IH=1: the cached PDE still points at the old table").isEqualTo(OLD);
            rig.caches.invalidateIotlbPage(DID, 0x1000, 0, false);
            assertThat(pa(0x1000)).isEqualTo(NEW);
        }

        @Test
        void domainSelectiveAndGlobalInvalidation() {
            SsTable a = rig.ss(4);
            SsTable b = rig.ss(4);
            rig.context(SID, a.root, 4, 1);
            rig.context(SID + 1, b.root, 4, 2);
            a.map(0x1000, OLD, 12, SRW);
            b.map(0x1000, OLD + 0x1000, 12, SRW);
            assertThat(pa(SID, -1, 0x1000)).isEqualTo(OLD);
            assertThat(pa(SID + 1, -1, 0x1000)).isEqualTo(OLD + 0x1000);
            a.map(0x1000, NEW, 12, SRW);
            b.map(0x1000, NEW + 0x1000, 12, SRW);
            assertThat(rig.caches.invalidateIotlbDomain(1)).as("one leaf, three paging-structure entries")
                    .isEqualTo(4);
            assertThat(pa(SID, -1, 0x1000)).isEqualTo(NEW);
            assertThat(pa(SID + 1, -1, 0x1000)).isEqualTo(OLD + 0x1000);
            assertThat(rig.caches.invalidateIotlbAll()).isEqualTo(8);
            assertThat(pa(SID + 1, -1, 0x1000)).isEqualTo(NEW + 0x1000);
        }

        @Test
        void walkRacingAnInvalidationDoesNotCacheItsResult() throws Exception {
            SsTable ss = rig.ss(4);
            rig.context(SID, ss.root, 4, DID);
            long leaf = ss.map(0x1000, OLD, 12, SRW);
            // an invalidation lands while the walk reads the leaf
            PhysicalMemory racing = mock(PhysicalMemory.class, AdditionalAnswers.delegatesTo(rig.ram));
            doAnswer(call -> {
                rig.caches.invalidateIotlbAll();
                return rig.ram.read64(leaf);
            }).when(racing).read64(leaf);
            VtdTranslator translator = new VtdTranslator("racing", rig.config, racing, rig.caches, new XlateStats(),
                    rig.recorder);
            Translation t = translator.translate(rig.rootTable, rig.ttm, SID, -1, 0x1000, 0, new Translation());
            assertThat(t.physicalAddress()).isEqualTo(OLD);
            assertThat(rig.caches.iotlbStats().entries()).as("the walk's leaf").isZero();
            assertThat(rig.caches.walkStats().entries()).as("the walk's table entries").isZero();
            assertThat(rig.caches.iotlbStats().staleInserts()).isEqualTo(1);
        }
    }

    @Nested
    class PasidBased {
        private FsTable one;
        private FsTable two;

        /** PASIDs 1 and 2 in one domain, each with its table; PASID 1 maps a global page at 0x2000. */
        private void twoPasids() {
            rig = VtdRig.scalable(VtdConfig.defaults());
            one = rig.fs(4);
            two = rig.fs(4);
            long dir = rig.smContext(SID, 0);
            rig.firstStage(dir, 1, DID, one);
            rig.firstStage(dir, 2, DID, two);
            one.map(0x1000, OLD, 12, USER_RW);
            one.map(0x2000, OLD + 0x2000, 12, USER_RW | G);
            two.map(0x1000, OLD + 0x10_0000L, 12, USER_RW);
            assertThat(pa(SID, 1, 0x1000)).isEqualTo(OLD);
            assertThat(pa(SID, 1, 0x2000)).isEqualTo(OLD + 0x2000);
            assertThat(pa(SID, 2, 0x1000)).isEqualTo(OLD + 0x10_0000L);
            one.map(0x1000, NEW, 12, USER_RW);
            one.map(0x2000, NEW + 0x2000, 12, USER_RW | G);
            two.map(0x1000, NEW + 0x10_0000L, 12, USER_RW);
        }

        @Test
        void aGlobalPageServesEveryPasidOfTheDomain() {
            twoPasids();
            assertThat(pa(SID, 2, 0x2000)).as("PASID 2 has no mapping there").isEqualTo(OLD + 0x2000);
        }

        @Test
        void pasidSelectiveKeepsGlobalPagesAndOtherPasids() {
            twoPasids();
            rig.caches.invalidatePasidIotlb(DID, 1);
            assertThat(pa(SID, 1, 0x1000)).isEqualTo(NEW);
            assertThat(pa(SID, 1, 0x2000)).as("global").isEqualTo(OLD + 0x2000);
            assertThat(pa(SID, 2, 0x1000)).isEqualTo(OLD + 0x10_0000L);
        }

        @Test
        void pageSelectiveWithinPasidIncludesGlobalPages() {
            twoPasids();
            rig.caches.invalidatePasidIotlbPage(DID, 1, 0x1000, 1, false); // 0x0000..0x1FFF
            assertThat(pa(SID, 1, 0x1000)).isEqualTo(NEW);
            assertThat(pa(SID, 1, 0x2000)).isEqualTo(OLD + 0x2000);
            rig.caches.invalidatePasidIotlbPage(DID, 1, 0x2000, 0, false);
            assertThat(pa(SID, 1, 0x2000)).isEqualTo(NEW + 0x2000);
            assertThat(pa(SID, 2, 0x1000)).isEqualTo(OLD + 0x10_0000L);
        }

        @Test
        void secondStageInvalidationsLeaveFirstStageEntries() {
            twoPasids();
            rig.caches.invalidateIotlbPage(DID, 0x1000, 0, false);
            assertThat(pa(SID, 1, 0x1000)).isEqualTo(OLD);
            rig.caches.invalidateIotlbDomain(DID);
            assertThat(pa(SID, 1, 0x1000)).isEqualTo(NEW);
            assertThat(pa(SID, 2, 0x1000)).isEqualTo(NEW + 0x10_0000L);
        }

        @Test
        void nestedEntriesGoWithTheirSecondStagePageOrFirstStagePage() {
            rig = VtdRig.scalable(VtdConfig.defaults());
            FsTable fs = rig.fs(4);
            SsTable ss = rig.ss(4);
            long ipa = 0x4000_0000L;
            fs.map(0x7000, ipa, 12, USER_RW);
            long[] tables = {fs.root, fs.get(0x7000, 3) & VtdTables.PTR_MASK, fs.get(0x7000, 2) & VtdTables.PTR_MASK,
                fs.get(0x7000, 1) & VtdTables.PTR_MASK};
            for (long t : tables) {
                ss.map(t, t, 12, SRW);
            }
            ss.map(ipa, OLD, 12, SRW);
            rig.nested(rig.smContext(SID, 0), PASID, DID, fs, ss);
            assertThat(pa(SID, PASID, 0x7000)).isEqualTo(OLD);
            ss.map(ipa, NEW, 12, SRW);
            rig.caches.invalidatePasidIotlbPage(DID, PASID, 0x2000, 0, true); // another page
            assertThat(pa(SID, PASID, 0x7000)).isEqualTo(OLD);
            rig.caches.invalidateIotlbPage(DID, ipa, 0, true); // matched by its IPA
            assertThat(pa(SID, PASID, 0x7000)).isEqualTo(NEW);
            ss.map(ipa, OLD, 12, SRW);
            rig.caches.invalidatePasidIotlbPage(DID, PASID, 0x7000, 0, true); // or by its input address
            assertThat(pa(SID, PASID, 0x7000)).isEqualTo(OLD);
        }
    }

    @Nested
    class ConfigurationCaches {
        @Test
        void contextEntryStaysCachedUntilAContextInvalidation() {
            SsTable a = rig.ss(4);
            SsTable b = rig.ss(4);
            a.map(0x1000, OLD, 12, SRW);
            b.map(0x1000, NEW, 12, SRW);
            rig.context(SID, a.root, 4, DID);
            assertThat(pa(0x1000)).isEqualTo(OLD);
            rig.context(SID, b.root, 4, DID);
            rig.caches.invalidateIotlbAll();
            assertThat(pa(0x1000)).as("the cached context still names table a").isEqualTo(OLD);
            assertThat(rig.caches.invalidateContextDomain(DID + 1)).isZero();
            assertThat(rig.caches.invalidateContextDevice(SID ^ 0b101, 1)).as("FM=1 ignores bit 2 only").isZero();
            assertThat(rig.caches.invalidateContextDevice(SID ^ 0b101, 3)).as("FM=3 ignores bits 2:0").isEqualTo(1);
            rig.caches.invalidateIotlbAll();
            assertThat(pa(0x1000)).isEqualTo(NEW);

            rig.context(SID, a.root, 4, DID);
            rig.caches.invalidateIotlbAll();
            assertThat(pa(0x1000)).isEqualTo(NEW);
            assertThat(rig.caches.invalidateContextDomain(DID)).isEqualTo(1);
            rig.caches.invalidateIotlbAll();
            assertThat(pa(0x1000)).isEqualTo(OLD);
            assertThat(rig.caches.invalidateContextAll()).isEqualTo(1);
        }

        @Test
        void pasidEntryStaysCachedUntilAPasidCacheInvalidation() {
            rig = VtdRig.scalable(VtdConfig.defaults());
            FsTable a = rig.fs(4);
            FsTable b = rig.fs(4);
            a.map(0x1000, OLD, 12, USER_RW);
            b.map(0x1000, NEW, 12, USER_RW);
            long dir = rig.smContext(SID, 0);
            rig.firstStage(dir, PASID, DID, a);
            assertThat(pa(SID, PASID, 0x1000)).isEqualTo(OLD);
            rig.firstStage(dir, PASID, DID, b);
            rig.caches.invalidateIotlbAll();
            rig.caches.invalidateContextAll();
            assertThat(pa(SID, PASID, 0x1000)).as("context invalidation leaves PASID entries").isEqualTo(OLD);
            assertThat(rig.caches.invalidatePasidCache(DID, PASID + 1)).isZero();
            assertThat(rig.caches.invalidatePasidCache(DID + 1, PASID)).isZero();
            assertThat(rig.caches.invalidatePasidCache(DID, PASID)).isEqualTo(1);
            rig.caches.invalidateIotlbAll();
            assertThat(pa(SID, PASID, 0x1000)).isEqualTo(NEW);

            rig.firstStage(dir, PASID, DID, a);
            rig.caches.invalidatePasidIotlb(DID, PASID);
            assertThat(pa(SID, PASID, 0x1000)).isEqualTo(NEW);
            assertThat(rig.caches.invalidatePasidCacheDomain(DID)).isEqualTo(1);
            rig.caches.invalidatePasidIotlb(DID, PASID);
            assertThat(pa(SID, PASID, 0x1000)).isEqualTo(OLD);
            assertThat(rig.caches.invalidatePasidCacheAll()).isEqualTo(1);
        }

        @Test
        void scalableContextEntriesGoWithAnyDomainSelectiveInvalidation() {
            rig = VtdRig.scalable(VtdConfig.defaults());
            FsTable fs = rig.fs(4);
            fs.map(0x1000, OLD, 12, USER_RW);
            rig.firstStage(rig.smContext(SID, 0), PASID, DID, fs);
            assertThat(pa(SID, PASID, 0x1000)).isEqualTo(OLD);
            assertThat(rig.caches.invalidateContextDomain(1234)).isEqualTo(1);
        }
    }

    @Nested
    class CachingMode {
        private final VtdConfig cm = VtdConfig.builder().cm(true).build();

        @Test
        void notPresentContextEntryIsCachedInDomainZero() {
            rig = VtdRig.legacy(cm);
            SsTable ss = rig.ss(4);
            ss.map(0x1000, OLD, 12, SRW);
            rig.contextTable(2); // a present root entry, an empty context table
            assertThat(reason(SID, -1, 0x1000)).isEqualTo(0x2);
            rig.context(SID, ss.root, 4, DID);
            assertThat(reason(SID, -1, 0x1000)).as("the cached not-present entry").isEqualTo(0x2);
            assertThat(rig.caches.invalidateContextDomain(DID)).isZero();
            assertThat(rig.caches.invalidateContextDomain(0)).isEqualTo(1);
            assertThat(pa(0x1000)).isEqualTo(OLD);

            rig = VtdRig.legacy(VtdConfig.defaults()); // without CM nothing not-present is cached
            ss = rig.ss(4);
            ss.map(0x1000, OLD, 12, SRW);
            rig.contextTable(2); // a present root entry, an empty context table
            assertThat(reason(SID, -1, 0x1000)).isEqualTo(0x2);
            rig.context(SID, ss.root, 4, DID);
            assertThat(pa(0x1000)).isEqualTo(OLD);
        }

        @Test
        void notPresentLeafRepeatsFromTheIotlbUntilInvalidated() {
            rig = VtdRig.legacy(cm);
            SsTable ss = rig.ss(4);
            rig.context(SID, ss.root, 4, DID);
            ss.map(0x1000, OLD, 12, SRW);
            assertThat(reason(SID, -1, 0x2000)).isEqualTo(0x6);
            long reads = rig.stats.snapshot().tableReads();
            ss.map(0x2000, NEW, 12, SRW);
            assertThat(reason(SID, -1, 0x2000)).isEqualTo(0x6);
            Translation w = rig.translate(SID, -1, 0x2000, Access.WRITE);
            assertThat(w.code()).as("the same fault, by the request's direction").isEqualTo(0x5);
            assertThat(w.faultType()).isEqualTo(FaultType.TRANSLATION);
            assertThat(rig.stats.snapshot().tableReads()).as("from the IOTLB").isEqualTo(reads);
            assertThat(rig.faults()).hasSize(3);
            rig.caches.invalidateIotlbPage(DID, 0x2000, 0, true);
            assertThat(pa(0x2000)).isEqualTo(NEW);

            rig = VtdRig.legacy(VtdConfig.defaults());
            ss = rig.ss(4);
            rig.context(SID, ss.root, 4, DID);
            ss.map(0x1000, OLD, 12, SRW);
            assertThat(reason(SID, -1, 0x2000)).isEqualTo(0x6);
            ss.map(0x2000, NEW, 12, SRW);
            assertThat(pa(0x2000)).isEqualTo(NEW);
        }

        @Test
        void notPresentTableEntryCoversItsWholeRegion() {
            rig = VtdRig.legacy(cm);
            SsTable ss = rig.ss(4);
            rig.context(SID, ss.root, 4, DID);
            ss.map(0x1000, OLD, 12, SRW);
            assertThat(reason(SID, -1, 0x20_0000L)).as("no page table under this PDE").isEqualTo(0x6);
            ss.map(0x3F_F000L, NEW, 12, SRW);
            assertThat(reason(SID, -1, 0x3F_F000L)).as("within the 2 MB the PDE stands for").isEqualTo(0x6);
            rig.caches.invalidateIotlbPage(DID, 0x3F_F000L, 0, false);
            assertThat(pa(0x3F_F000L)).isEqualTo(NEW);
        }

        @Test
        void notPresentFirstStageLeaf() {
            rig = VtdRig.scalable(cm);
            FsTable fs = rig.fs(4);
            rig.firstStage(rig.smContext(SID, 0), PASID, DID, fs);
            fs.map(0x1000, OLD, 12, USER_RW);
            assertThat(reason(SID, PASID, 0x2000)).isEqualTo(0x71);
            fs.map(0x2000, NEW, 12, USER_RW);
            assertThat(reason(SID, PASID, 0x2000)).isEqualTo(0x71);
            rig.caches.invalidatePasidIotlbPage(DID, PASID, 0x2000, 0, true);
            assertThat(pa(SID, PASID, 0x2000)).isEqualTo(NEW);
        }

        @Test
        void notPresentPasidEntry() {
            rig = VtdRig.scalable(cm);
            FsTable fs = rig.fs(4);
            fs.map(0x1000, OLD, 12, USER_RW);
            long dir = rig.smContext(SID, 0);
            assertThat(reason(SID, PASID, 0x1000)).isEqualTo(0x51);
            rig.firstStage(dir, PASID, DID, fs);
            assertThat(reason(SID, PASID, 0x1000)).isEqualTo(0x51);
            // what Linux issues after making a PASID entry present: PASID-selective with the entry's domain
            assertThat(rig.caches.invalidatePasidCache(DID, PASID)).isEqualTo(1);
            assertThat(pa(SID, PASID, 0x1000)).isEqualTo(OLD);
        }
    }

    @Test
    void countsAndCosts() {
        SsTable ss = rig.ss(4);
        rig.context(SID, ss.root, 4, DID);
        ss.map(0x1000, OLD, 12, SRW);
        ss.map(0x2000, OLD, 12, SRW);
        pa(0x1000); // context miss (root + context read), IOTLB miss, walk-cache miss, 4 entries read
        XlateStats.Snapshot s = rig.stats.snapshot();
        assertThat(s.cacheMisses()).isEqualTo(3);
        assertThat(s.cacheHits()).isZero();
        assertThat(s.tableReads()).isEqualTo(6);
        pa(0x1008); // micro-TLB
        pa(0x2000); // context memo, IOTLB miss, walk cache hit for the PDE, the PTE read
        s = rig.stats.snapshot();
        assertThat(s.cacheHits()).isEqualTo(3);
        assertThat(s.cacheMisses()).isEqualTo(4);
        assertThat(s.tableReads()).isEqualTo(7);
        assertThat(s.simNanos()).isEqualTo(3 * rig.stats.cost().cacheHitNs() + 4 * rig.stats.cost().cacheMissNs()
                + 7 * rig.stats.cost().tableReadNs());
        VtdTranslator t = rig.translator;
        assertThat(t.translations()).isEqualTo(3);
        assertThat(t.walks()).isEqualTo(2);
        assertThat(t.walkReads()).isEqualTo(5);
        assertThat(t.microTlbHits()).isEqualTo(1);
        assertThat(t.contextMemoHits()).isEqualTo(1);
        assertThat(t.pasidMemoHits()).isZero();
        assertThat(rig.caches.iotlbStats().entries()).isEqualTo(2);
        assertThat(rig.caches.walkStats().entries()).isEqualTo(3);
        assertThat(rig.caches.contextStats().misses()).isEqualTo(1);
        // any invalidation empties the micro-TLBs, which refill on the next translation
        rig.caches.invalidatePasidCacheAll();
        pa(0x2000);
        pa(0x2008);
        assertThat(t.microTlbHits()).isEqualTo(2);
    }
}
