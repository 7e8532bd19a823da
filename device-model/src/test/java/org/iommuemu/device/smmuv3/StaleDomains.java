package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;

/**
 * Streams whose translations are cached and then made stale: each maps consecutive pages at {@link #IOVA}, is
 * translated once (caching every page), then has every leaf pointed at a new output address without any
 * invalidation. {@link Domain#expect} then tells, page by page, whether the SMMU still answers with the old
 * (cached) address or with the new one, i.e. whether an invalidation removed the page's IOTLB entry.
 */
final class StaleDomains {
    static final long IOVA = 0x4000_0000L;
    static final long PAGE = 4096;

    final SmmuTestRig rig;
    private int domains;

    StaleDomains(SmmuTestRig rig) {
        this.rig = rig;
    }

    /**
     * A stream with {@code pages} consecutive pages at {@link #IOVA}, each translated once (so cached), then each
     * leaf pointed at a new output address without invalidation and checked to be stale.
     */
    final class Domain {
        final int sid;
        final PageTable pt;
        final long oldBase;
        final long newBase;
        final int pages;

        private Domain(int sid, PageTable pt, int pages) {
            this.sid = sid;
            this.pt = pt;
            this.pages = pages;
            int n = ++domains;
            this.oldBase = (1L << 36) + ((long) n << 28);
            this.newBase = oldBase + (1L << 27);
            rig.mapPages(pt, IOVA, oldBase, pages * granule(), Prot.READ | Prot.WRITE);
        }

        long granule() {
            return 1L << pt.minPageLg2();
        }

        long va(int page) {
            return IOVA + page * granule();
        }

        /** Translates every page (caching it), retargets every leaf, checks every page is stale. */
        Domain cachedThenChanged() {
            expect("o".repeat(pages));
            for (int i = 0; i < pages; i++) {
                rig.retarget(pt, va(i), newBase + i * granule());
            }
            expect("o".repeat(pages));
            return this;
        }

        /** One letter per page: o = the old (cached) output address, N = the new one. */
        void expect(String pattern) {
            assertThat(pattern).hasSize(pages);
            StringBuilder seen = new StringBuilder();
            for (int i = 0; i < pages; i++) {
                long pa = rig.pa(sid, -1, va(i) + 0x18, 0) - 0x18;
                seen.append(pa == oldBase + i * granule() ? 'o' : pa == newBase + i * granule() ? 'N' : '?');
            }
            assertThat(seen.toString()).as("stream %d, page by page (o = stale, N = new)", sid).isEqualTo(pattern);
        }
    }

    /** A stage-1 stream of {@code vmid} (STE.S2VMID) and {@code asid} with a 4 KB granule table. */
    Domain s1(int sid, int vmid, int asid, int pages) {
        return s1(sid, vmid, asid, pages, 12);
    }

    Domain s1(int sid, int vmid, int asid, int pages, int granuleLg2) {
        Domain d = new Domain(sid, rig.stage1(granuleLg2, 48), pages);
        rig.stage1Stream(sid, vmid, asid, d.pt);
        return d.cachedThenChanged();
    }

    /** A stage-2 stream of {@code vmid}: 4 KB granule, 40-bit IPA. */
    Domain s2(int sid, int vmid, int pages) {
        Domain d = new Domain(sid, rig.stage2(12, 40), pages);
        rig.installSte(sid, SmmuTestRig.s2Ste(vmid, d.pt));
        return d.cachedThenChanged();
    }
}
