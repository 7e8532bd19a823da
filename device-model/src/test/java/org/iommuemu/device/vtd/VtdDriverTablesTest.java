package org.iommuemu.device.vtd;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.PageTableException;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;
import org.iommuemu.core.pgtable.PtLookup;
import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.core.pgtable.fmt.X86Pt;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.Translation;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The device walks what the driver side's page-table library writes: random mappings (4 KB runs, 2 MB and 1 GB
 * pages) made with {@link PageTable} in the VT-d second-stage and x86-64 formats, translated by the device and
 * compared with the library's own lookup, output address, page extent and permissions.
 */
class VtdDriverTablesTest {
    private static final int SID = 0x0100;
    private static final int PASID = 77;
    private static final int DID = 3;
    private static final int[] FS_PROTS = {Prot.READ, Prot.READ | Prot.WRITE, Prot.READ | Prot.NOEXEC,
        Prot.READ | Prot.WRITE | Prot.PRIV, Prot.READ | Prot.PRIV | Prot.NOEXEC};
    private static final int[] SS_PROTS = {Prot.READ, Prot.WRITE, Prot.READ | Prot.WRITE};

    /** One mapped range. */
    record Range(long iova, long size, int prot) {}

    private static List<Range> mapRandom(PageTable pt, BuddyPageAllocator alloc, Random rnd, int vaBits, int[] prots)
            throws PageTableException {
        IotlbGather gather = new IotlbGather(g -> { }, alloc);
        List<Range> ranges = new ArrayList<>();
        for (int i = 0; i < 60; i++) {
            int kind = rnd.nextInt(6);
            int alignLg2 = kind == 0 ? 30 : kind == 1 ? 21 : 12;
            long size = kind <= 1 ? 1L << alignLg2 : (1 + rnd.nextInt(3)) * 4096L;
            long iova = (rnd.nextLong() & ((1L << (vaBits - 1)) - 1)) & -(1L << alignLg2);
            long oa = 0x1_0000_0000L + ((rnd.nextLong() & ((1L << 40) - 1)) & -(1L << alignLg2));
            int prot = prots[rnd.nextInt(prots.length)];
            try {
                pt.map(iova, oa, size, prot, gather);
                ranges.add(new Range(iova, size, prot));
            } catch (PageTableException e) {
                if (e.kind() != PageTableException.Kind.ADDRESS_IN_USE) {
                    throw e;
                }
            }
        }
        return ranges;
    }

    private static long[] probes(Range r, Random rnd) {
        return new long[] {r.iova, r.iova + r.size - 1, r.iova + (rnd.nextLong() & Long.MAX_VALUE) % r.size};
    }

    /** Checks one translation against the library's view of the same address. */
    private static void check(PageTable pt, long iova, Translation t, int expectedReason) throws PageTableException {
        if (expectedReason != 0) {
            assertThat(t.outcome()).as("%x: %s", iova, t).isEqualTo(Translation.Outcome.FAULT);
            assertThat(t.code()).as("%x: %s", iova, t).isEqualTo(expectedReason);
            return;
        }
        PtLookup leaf = new PtLookup();
        assertThat(pt.lookup(iova, leaf)).isTrue();
        assertThat(t.isOk()).as("%x: %s", iova, t).isTrue();
        assertThat(t.physicalAddress()).as("%x", iova).isEqualTo(pt.iovaToPhys(iova));
        assertThat(t.contiguousBytes()).as("%x", iova).isEqualTo(leaf.size() - (iova & (leaf.size() - 1)));
    }

    @ParameterizedTest(name = "{0} levels")
    @ValueSource(ints = {4, 5})
    void firstStageTables(int levels) throws Exception {
        VtdRig rig = VtdRig.scalable(VtdConfig.builder().fl5lp(true).build());
        BuddyPageAllocator alloc = new BuddyPageAllocator(rig.ram, 0x1_0000_0000L, 1L << 28);
        PtFormat fmt = X86Pt.levels(levels).withOaBits(48);
        PageTable pt = new PageTable(fmt, rig.ram, alloc);
        long dir = rig.smContext(SID, 0);
        rig.pasidEntry(dir, PASID, VtdTables.pasidQw0(VtdTables.PGTT_FIRST_STAGE, 0, 0, false),
                VtdTables.pasidQw1(DID, false), VtdTables.pasidQw2(pt.root(), levels, true, true) | 2 /* ERE */);
        Random rnd = new Random(levels);
        List<Range> ranges = mapRandom(pt, alloc, rnd, fmt.vaBits(), FS_PROTS);
        assertThat(ranges).hasSizeGreaterThan(30);
        for (Range r : ranges) {
            boolean priv = (r.prot & Prot.PRIV) != 0;
            boolean writable = (r.prot & Prot.WRITE) != 0;
            boolean noExec = (r.prot & Prot.NOEXEC) != 0;
            for (long iova : probes(r, rnd)) {
                check(pt, iova, rig.translate(SID, PASID, iova, 0), priv ? 0x81 : 0);
                check(pt, iova, rig.translate(SID, PASID, iova, Access.PRIVILEGED), 0);
                check(pt, iova, rig.translate(SID, PASID, iova, Access.WRITE), priv ? 0x81 : writable ? 0 : 0x85);
                check(pt, iova, rig.translate(SID, PASID, iova, Access.WRITE | Access.PRIVILEGED),
                        writable ? 0 : 0x85);
                check(pt, iova, rig.translate(SID, PASID, iova, Access.INSTRUCTION),
                        priv ? 0x81 : noExec ? 0x82 : 0);
            }
        }
        for (int i = 0; i < 200; i++) {
            long iova = rnd.nextLong() & ((1L << (fmt.vaBits() - 1)) - 1);
            if (pt.iovaToPhys(iova) == PageTable.NO_MAPPING) {
                check(pt, iova, rig.translate(SID, PASID, iova, 0), 0x71);
            }
        }
    }

    @ParameterizedTest(name = "{0} levels")
    @ValueSource(ints = {3, 4})
    void secondStageTables(int levels) throws Exception {
        VtdRig rig = VtdRig.legacy(VtdConfig.defaults());
        BuddyPageAllocator alloc = new BuddyPageAllocator(rig.ram, 0x1_0000_0000L, 1L << 28);
        PtFormat fmt = VtdSs.levels(levels).withSnoop(true);
        PageTable pt = new PageTable(fmt, rig.ram, alloc);
        rig.context(SID, pt.root(), levels, DID);
        Random rnd = new Random(levels);
        List<Range> ranges = mapRandom(pt, alloc, rnd, fmt.vaBits() + 1, SS_PROTS);
        assertThat(ranges).hasSizeGreaterThan(30);
        for (Range r : ranges) {
            boolean readable = (r.prot & Prot.READ) != 0;
            boolean writable = (r.prot & Prot.WRITE) != 0;
            for (long iova : probes(r, rnd)) {
                check(pt, iova, rig.translate(SID, -1, iova, 0), readable ? 0 : 0x6);
                check(pt, iova, rig.translate(SID, -1, iova, Access.WRITE), writable ? 0 : 0x5);
            }
        }
        for (int i = 0; i < 200; i++) {
            long iova = rnd.nextLong() & ((1L << fmt.vaBits()) - 1);
            if (pt.iovaToPhys(iova) == PageTable.NO_MAPPING) {
                check(pt, iova, rig.translate(SID, -1, iova, 0), 0x6);
            }
        }
    }
}
