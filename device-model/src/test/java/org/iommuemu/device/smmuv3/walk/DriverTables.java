package org.iommuemu.device.smmuv3.walk;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.PageTableException;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtLookup;

/** Fills driver-side page tables with random mappings and lists addresses worth walking. */
final class DriverTables {
    private DriverTables() {}

    private static final int[] S1_PROTS = {Prot.READ, Prot.READ | Prot.WRITE, Prot.READ | Prot.NOEXEC,
        Prot.READ | Prot.WRITE | Prot.NOEXEC, Prot.READ | Prot.PRIV, Prot.READ | Prot.WRITE | Prot.PRIV,
        Prot.READ | Prot.WRITE | Prot.CACHE, Prot.READ | Prot.MMIO | Prot.NOEXEC};
    private static final int[] S2_PROTS = {Prot.READ, Prot.WRITE, Prot.READ | Prot.WRITE,
        Prot.READ | Prot.WRITE | Prot.NOEXEC, Prot.READ | Prot.NOEXEC, Prot.READ | Prot.WRITE | Prot.CACHE,
        Prot.READ | Prot.WRITE | Prot.MMIO};

    /** A random protection the stage can express. */
    static int randomProt(Random rnd, boolean stage1) {
        int[] prots = stage1 ? S1_PROTS : S2_PROTS;
        return prots[rnd.nextInt(prots.length)];
    }

    /**
     * Maps {@code count} random ranges of [{@code vaLo}, {@code vaLo + 2^vaBits}) to random output addresses in
     * [{@code oaLo}, {@code oaLo + 2^oaBits}), with sizes of one or a few pages or a block of the format; ranges that collide with
     * earlier ones are skipped. Returns the mapped ranges as {iova, size} pairs.
     */
    static List<long[]> mapRandom(PageTable pt, Random rnd, int count, long vaLo, int vaBits, long oaLo, int oaBits,
            boolean stage1, IotlbGather gather) throws PageTableException {
        long sizes = pt.pageSizes();
        int page = pt.minPageLg2();
        List<Integer> blockLg2s = new ArrayList<>();
        for (int s = page + 1; s < 64; s++) {
            if ((sizes & (1L << s)) != 0 && s < vaBits - 1 && s < oaBits - 1) {
                blockLg2s.add(s);
            }
        }
        List<long[]> mapped = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            long size;
            int alignLg2;
            if (!blockLg2s.isEmpty() && rnd.nextInt(4) == 0) {
                alignLg2 = blockLg2s.get(rnd.nextInt(blockLg2s.size()));
                size = 1L << alignLg2;
            } else {
                alignLg2 = page;
                size = (1 + rnd.nextInt(3)) * (1L << page);
            }
            long iova = vaLo + Bits.alignDown(rnd.nextLong() & Bits.mask(0, vaBits), alignLg2);
            if (iova + size > vaLo + (1L << vaBits)) {
                continue;
            }
            long oa = oaLo + Bits.alignDown(rnd.nextLong() & Bits.mask(0, oaBits), alignLg2);
            if (oa + size > oaLo + (1L << oaBits)) {
                continue;
            }
            try {
                pt.map(iova, oa, size, randomProt(rnd, stage1), gather);
                mapped.add(new long[] {iova, size});
            } catch (PageTableException e) {
                if (e.kind() != PageTableException.Kind.ADDRESS_IN_USE) {
                    throw e;
                }
            }
        }
        return mapped;
    }

    /** First, last and a random byte of each mapped range, then random addresses of the input space. */
    static List<Long> probes(List<long[]> mapped, Random rnd, long vaLo, int vaBits, int randomCount) {
        List<Long> vas = new ArrayList<>();
        for (long[] r : mapped) {
            vas.add(r[0]);
            vas.add(r[0] + r[1] - 1);
            vas.add(r[0] + (rnd.nextLong() & Long.MAX_VALUE) % r[1]);
        }
        for (int i = 0; i < randomCount; i++) {
            vas.add(vaLo + (rnd.nextLong() & Bits.mask(0, vaBits)));
        }
        return vas;
    }

    /** The leaf that translates {@code va}, or null. */
    static PtLookup lookup(PageTable pt, long va) throws PageTableException {
        PtLookup l = new PtLookup();
        return pt.lookup(va, l) ? l : null;
    }

    /** The walker's permission bits a stage-1 leaf with this decoded {@link Prot} must give (no WXN, no HD). */
    static int stage1Perms(int prot) {
        boolean write = (prot & Prot.WRITE) != 0;
        boolean el0 = (prot & Prot.PRIV) == 0;
        boolean noexec = (prot & Prot.NOEXEC) != 0;
        int p = WalkResult.PRIV_READ;
        if (write) {
            p |= WalkResult.PRIV_WRITE;
        }
        if (el0) {
            p |= WalkResult.UNPRIV_READ;
        }
        if (el0 && write) {
            p |= WalkResult.UNPRIV_WRITE;
        }
        if (!noexec) {
            p |= WalkResult.UNPRIV_EXEC;
        }
        if (!noexec && !(el0 && write)) {
            p |= WalkResult.PRIV_EXEC; // memory EL0 can write is never executable when privileged
        }
        return p;
    }

    /** The walker's permission bits a stage-2 leaf with this decoded {@link Prot} must give (no HD). */
    static int stage2Perms(int prot) {
        int p = 0;
        if ((prot & Prot.READ) != 0) {
            p |= WalkResult.PRIV_READ | WalkResult.UNPRIV_READ;
        }
        if ((prot & Prot.WRITE) != 0) {
            p |= WalkResult.PRIV_WRITE | WalkResult.UNPRIV_WRITE;
        }
        if ((prot & Prot.NOEXEC) == 0) {
            p |= WalkResult.PRIV_EXEC | WalkResult.UNPRIV_EXEC;
        }
        return p;
    }
}
