package org.iommuemu.core.driver.vtd;

import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;

/**
 * Turns an invalidated iova range into IOTLB or PASID-IOTLB invalidation descriptors, as Linux's
 * {@code cache_tag_flush_range} does (pure logic: no hardware access).
 *
 * <p><b>Page-selective (PSI).</b> A descriptor invalidates 2^AM 4 KB pages from an address aligned to that span.
 * The span for {@code [first, last]} is found as Linux's {@code calculate_psi_aligned_address} specifies it: the page
 * count rounded up to a power of two gives the smallest AM, and while the aligned 2^AM-page block containing the
 * first page does not also contain the last one, AM grows. The descriptor covers that block ({@link #addressMask},
 * {@link #alignedBase}). IH (only leaf entries changed, keep the paging-structure caches) is set unless tables were
 * freed.
 *
 * <p><b>Domain-selective (DSI).</b> Instead of PSI the planner asks for every entry of the domain (IOTLB G=2) — or of
 * the PASID (PASID-IOTLB G=2, "all non-global entries of the PASID") for first-stage domains — when the unit lacks
 * CAP.PSI, when AM would exceed CAP.MAMV, or when the range covers more than {@code dsiThresholdPages} pages (a
 * policy knob Linux does not have: its default here, {@link #NO_THRESHOLD}, keeps Linux's behaviour).
 *
 * <p>IOTLB descriptors carry DR/DW when the unit reports read/write draining (CAP.DRD/DWD), as Linux sets them.
 * Nothing is allocated: descriptors go straight to a {@link DescriptorSink}.
 */
public final class PsiPlanner {
    /** No page-count threshold: PSI whenever PSI and MAMV allow it (Linux). */
    public static final long NO_THRESHOLD = Long.MAX_VALUE;

    private static final int PAGE_LG2 = 12;

    private final boolean psi;
    private final int mamv;
    private final long dsiThresholdPages;
    private final boolean drainReads;
    private final boolean drainWrites;

    /**
     * @param psi               CAP.PSI
     * @param mamv              CAP.MAMV
     * @param dsiThresholdPages ranges of more 4 KB pages than this are invalidated domain- (or PASID-) wide
     * @param drainReads        CAP.DRD: set DR in IOTLB descriptors
     * @param drainWrites       CAP.DWD: set DW in IOTLB descriptors
     */
    public PsiPlanner(boolean psi, int mamv, long dsiThresholdPages, boolean drainReads, boolean drainWrites) {
        if (mamv < 0 || mamv > 63) {
            throw new IllegalArgumentException("MAMV must be 0..63, was " + mamv);
        }
        if (dsiThresholdPages < 1) {
            throw new IllegalArgumentException("the DSI threshold must be at least 1 page, was " + dsiThresholdPages);
        }
        this.psi = psi;
        this.mamv = mamv;
        this.dsiThresholdPages = dsiThresholdPages;
        this.drainReads = drainReads;
        this.drainWrites = drainWrites;
    }

    /** The planner for a unit's features. */
    public static PsiPlanner of(VtdFeatures f, long dsiThresholdPages) {
        return new PsiPlanner(f.psi(), f.mamv(), dsiThresholdPages, f.drd(), f.dwd());
    }

    /**
     * The smallest AM such that the 2^AM-page block aligned to 2^AM pages that contains page {@code firstPfn} also
     * contains page {@code lastPfn} ({@code firstPfn ≤ lastPfn}, unsigned page numbers). At most 52.
     */
    public static int addressMask(long firstPfn, long lastPfn) {
        long pages = lastPfn - firstPfn + 1;
        // the page count rounded up to a power of two
        int am = pages <= 1 ? 0 : 64 - Long.numberOfLeadingZeros(pages - 1);
        while (am < 52 && (firstPfn >>> am) != (lastPfn >>> am)) {
            am++; // the aligned block holding the first page stops short of the last: widen it
        }
        return am;
    }

    /** The first byte of the 2^{@code am}-page block containing {@code address}. */
    public static long alignedBase(long address, int am) {
        return address & -(1L << (PAGE_LG2 + am));
    }

    /** Whether {@code [start, last]} (bytes, inclusive) is invalidated page-selectively (else domain-/PASID-wide). */
    public boolean pageSelective(long start, long last) {
        return pageSelectiveMask(start, last) >= 0;
    }

    /** The AM of a page-selective invalidation of {@code [start, last]}, or -1 when it must be domain-/PASID-wide. */
    int pageSelectiveMask(long start, long last) {
        if (!psi) {
            return -1;
        }
        long firstPfn = start >>> PAGE_LG2;
        long lastPfn = last >>> PAGE_LG2;
        if (Long.compareUnsigned(lastPfn - firstPfn, dsiThresholdPages - 1) > 0) {
            return -1;
        }
        int am = addressMask(firstPfn, lastPfn);
        return am > mamv ? -1 : am;
    }

    /**
     * One IOTLB invalidation of {@code [start, last]} of domain {@code did}: page-selective (G=3) or domain-selective
     * (G=2). Returns the descriptors emitted (1).
     */
    public int iotlb(int did, long start, long last, boolean leafOnly, DescriptorSink sink) {
        int am = pageSelectiveMask(start, last);
        if (am < 0) {
            sink.descriptor(InvDesc.iotlb(VtdRegs.IOTLB_DOMAIN, did, drainReads, drainWrites), 0);
        } else {
            sink.descriptor(InvDesc.iotlb(VtdRegs.IOTLB_PAGE, did, drainReads, drainWrites),
                    InvDesc.addr(alignedBase(start, am), am, leafOnly));
        }
        return 1;
    }

    /** A domain-selective IOTLB invalidation of {@code did}. */
    public int iotlbDomain(int did, DescriptorSink sink) {
        sink.descriptor(InvDesc.iotlb(VtdRegs.IOTLB_DOMAIN, did, drainReads, drainWrites), 0);
        return 1;
    }

    /**
     * One PASID-based IOTLB invalidation of {@code [start, last]} of {@code (did, pasid)}: page-selective within the
     * PASID (G=3) or every non-global entry of the PASID (G=2). Returns the descriptors emitted (1).
     */
    public int pasidIotlb(int did, int pasid, long start, long last, boolean leafOnly, DescriptorSink sink) {
        int am = pageSelectiveMask(start, last);
        if (am < 0) {
            sink.descriptor(InvDesc.pasidIotlb(InvDesc.PIOTLB_PASID, did, pasid), 0);
        } else {
            sink.descriptor(InvDesc.pasidIotlb(InvDesc.PIOTLB_PAGE, did, pasid),
                    InvDesc.addr(alignedBase(start, am), am, leafOnly));
        }
        return 1;
    }

    /** Every non-global entry of {@code (did, pasid)}. */
    public int pasidIotlbAll(int did, int pasid, DescriptorSink sink) {
        sink.descriptor(InvDesc.pasidIotlb(InvDesc.PIOTLB_PASID, did, pasid), 0);
        return 1;
    }

    public long dsiThresholdPages() {
        return dsiThresholdPages;
    }

    @Override
    public String toString() {
        return "PsiPlanner[" + (psi ? "PSI, MAMV " + mamv : "no PSI")
                + (dsiThresholdPages == NO_THRESHOLD ? "" : ", DSI beyond " + dsiThresholdPages + " pages") + "]";
    }
}
