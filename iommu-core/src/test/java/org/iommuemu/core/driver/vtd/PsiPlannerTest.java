package org.iommuemu.core.driver.vtd;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;
import org.junit.jupiter.api.Test;

class PsiPlannerTest {
    private static final long K4 = 1L << 12;

    private final List<long[]> out = new ArrayList<>();
    private final DescriptorSink sink = (qw0, qw1) -> out.add(new long[] {qw0, qw1});

    /** The reference: the smallest AM whose aligned block holds both pages (found by trying every AM). */
    private static int referenceMask(long first, long last) {
        for (int am = 0; am < 64; am++) {
            if ((first >>> am) == (last >>> am)) {
                return am;
            }
        }
        return 64;
    }

    @Test
    void addressMaskOfSmallRanges() {
        assertThat(PsiPlanner.addressMask(0, 0)).isEqualTo(0);
        assertThat(PsiPlanner.addressMask(5, 5)).isEqualTo(0);
        assertThat(PsiPlanner.addressMask(0, 1)).isEqualTo(1);
        assertThat(PsiPlanner.addressMask(1, 2)).isEqualTo(2); // two pages straddling a 2-page boundary
        assertThat(PsiPlanner.addressMask(3, 4)).isEqualTo(3); // straddling an 8-page boundary
        assertThat(PsiPlanner.addressMask(0, 2)).isEqualTo(2); // three pages round up to four
        assertThat(PsiPlanner.addressMask(0x200, 0x3FF)).isEqualTo(9); // an aligned 2 MB
        assertThat(PsiPlanner.addressMask(0x1FF, 0x200)).isEqualTo(10);
    }

    @Test
    void addressMaskIsTheSmallestAlignedBlockCoveringTheRange() {
        Random r = new Random(42);
        for (int i = 0; i < 20_000; i++) {
            long first = r.nextLong() >>> (13 + r.nextInt(40));
            long last = first + (r.nextInt(4) == 0 ? r.nextInt(1 << 20) : r.nextInt(64));
            int am = PsiPlanner.addressMask(first, last);
            assertThat(am).as("pages %x..%x", first, last).isEqualTo(referenceMask(first, last));
            assertThat(1L << am).isGreaterThanOrEqualTo(last - first + 1);
            long base = PsiPlanner.alignedBase(first << 12, am) >>> 12;
            assertThat(base).isLessThanOrEqualTo(first);
            assertThat(base + (1L << am) - 1).isGreaterThanOrEqualTo(last);
        }
    }

    @Test
    void pageSelectiveIotlbCarriesDidAddressMaskAndHint() {
        PsiPlanner p = new PsiPlanner(true, 18, PsiPlanner.NO_THRESHOLD, false, false);
        p.iotlb(7, 0x1000 * K4 + 3 * K4, 0x1000 * K4 + 5 * K4 - 1, true, sink); // pages 0x1003..0x1004
        long qw0 = out.get(0)[0];
        long qw1 = out.get(0)[1];
        assertThat(InvDesc.type(qw0)).isEqualTo(InvDesc.TYPE_IOTLB);
        assertThat(Bits.extract(qw0, InvDesc.G, 2)).isEqualTo(VtdRegs.IOTLB_PAGE);
        assertThat(Bits.extract(qw0, InvDesc.DID, 16)).isEqualTo(7);
        assertThat(Bits.extract(qw1, InvDesc.ADDR_AM, 6)).isEqualTo(3);
        assertThat(Bits.bit(qw1, InvDesc.ADDR_IH)).isTrue();
        assertThat(qw1 & ~0xFFFL).isEqualTo(0x1000 * K4);
    }

    @Test
    void domainSelectiveWithoutPsiBeyondMamvOrThreshold() {
        new PsiPlanner(false, 18, PsiPlanner.NO_THRESHOLD, false, false).iotlb(3, 0, K4 - 1, true, sink);
        new PsiPlanner(true, 4, PsiPlanner.NO_THRESHOLD, false, false).iotlb(3, 0, 32 * K4 - 1, true, sink);
        new PsiPlanner(true, 18, 8, false, false).iotlb(3, 0, 9 * K4 - 1, true, sink);
        for (long[] d : out) {
            assertThat(Bits.extract(d[0], InvDesc.G, 2)).isEqualTo(VtdRegs.IOTLB_DOMAIN);
            assertThat(d[1]).isZero();
        }
        out.clear();
        new PsiPlanner(true, 4, PsiPlanner.NO_THRESHOLD, false, false).iotlb(3, 0, 16 * K4 - 1, true, sink);
        new PsiPlanner(true, 18, 8, false, false).iotlb(3, 0, 8 * K4 - 1, true, sink);
        assertThat(out).allSatisfy(d -> assertThat(Bits.extract(d[0], InvDesc.G, 2)).isEqualTo(VtdRegs.IOTLB_PAGE));
    }

    @Test
    void pasidIotlbIsPageSelectiveWithinThePasidOrPasidWide() {
        PsiPlanner p = new PsiPlanner(true, 2, PsiPlanner.NO_THRESHOLD, false, false);
        p.pasidIotlb(9, 0x55, 4 * K4, 8 * K4 - 1, false, sink);
        p.pasidIotlb(9, 0x55, 0, 64 * K4 - 1, true, sink);
        long[] psi = out.get(0);
        assertThat(InvDesc.type(psi[0])).isEqualTo(InvDesc.TYPE_PASID_IOTLB);
        assertThat(Bits.extract(psi[0], InvDesc.G, 2)).isEqualTo(InvDesc.PIOTLB_PAGE);
        assertThat(Bits.extract(psi[0], InvDesc.PASID, 20)).isEqualTo(0x55);
        assertThat(Bits.extract(psi[0], InvDesc.DID, 16)).isEqualTo(9);
        assertThat(Bits.extract(psi[1], 0, 6)).isEqualTo(2);
        assertThat(Bits.bit(psi[1], InvDesc.ADDR_IH)).isFalse();
        assertThat(Bits.extract(out.get(1)[0], InvDesc.G, 2)).isEqualTo(InvDesc.PIOTLB_PASID);
    }

    @Test
    void drainBitsFollowTheCapabilities() {
        new PsiPlanner(true, 18, PsiPlanner.NO_THRESHOLD, true, true).iotlbDomain(1, sink);
        assertThat(Bits.bit(out.get(0)[0], InvDesc.IOTLB_DR)).isTrue();
        assertThat(Bits.bit(out.get(0)[0], InvDesc.IOTLB_DW)).isTrue();
    }
}
