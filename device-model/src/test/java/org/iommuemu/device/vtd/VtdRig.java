package org.iommuemu.device.vtd;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.xlate.XlateStats;

/**
 * A VT-d translator over 4 GiB of RAM at 0x8000_0000 with root, context and PASID tables written by hand, the way
 * a driver lays them out (VtdTables encoders), and a fault reporter that records what it is told. Table pages come
 * from 0x8100_0000 up; test data addresses are best taken from 0x9000_0000 up.
 */
final class VtdRig {
    static final long RAM = SparseRam.DEFAULT_RAM_BASE;
    /** An address below RAM: reads abort. */
    static final long NOT_RAM = 0x1000_0000L;

    /** What the translator reported. */
    record Fault(int sid, int pasid, long address, int reason, boolean write, boolean priv, boolean exec) {}

    /** A fault reporter that keeps every report. */
    static final class Recorder implements FaultReporter {
        final List<Fault> faults = new ArrayList<>();

        @Override
        public synchronized void report(int sourceId, int pasid, long address, int reason, boolean write,
                boolean priv, boolean exec) {
            faults.add(new Fault(sourceId, pasid, address, reason, write, priv, exec));
        }

        synchronized List<Fault> take() {
            List<Fault> copy = List.copyOf(faults);
            faults.clear();
            return copy;
        }
    }

    final SparseRam ram = SparseRam.withDefaultRam();
    final VtdConfig config;
    final VtdCaches caches;
    final XlateStats stats = new XlateStats();
    final Recorder recorder = new Recorder();
    final VtdTranslator translator;
    final long rootTable;
    final int ttm;
    private long nextPage = RAM + 0x0100_0000L;

    private VtdRig(VtdConfig config, int ttm, FaultReporter reporter) {
        this.config = config;
        this.caches = new VtdCaches(config);
        this.translator = new VtdTranslator("dmar-test", config, ram, caches, stats,
                reporter == null ? recorder : reporter);
        this.ttm = ttm;
        this.rootTable = page();
    }

    static VtdRig legacy(VtdConfig config) {
        return new VtdRig(config, VtdRegs.TTM_LEGACY, null);
    }

    static VtdRig scalable(VtdConfig config) {
        return new VtdRig(config, VtdRegs.TTM_SCALABLE, null);
    }

    /** A rig whose faults go to {@code reporter} instead of the recorder (which allocates). */
    static VtdRig withReporter(VtdConfig config, int ttm, FaultReporter reporter) {
        return new VtdRig(config, ttm, reporter);
    }

    /** A fresh zeroed 4 KB page. */
    long page() {
        long p = nextPage;
        nextPage += 4096;
        return p;
    }

    void write(long pa, long value) {
        try {
            ram.write64(pa, value);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }

    /** Whether the 8 bytes at {@code pa} are RAM. */
    boolean isRam(long pa) {
        try {
            ram.read64(pa);
            return true;
        } catch (MemoryAccessException e) {
            return false;
        }
    }

    long read(long pa) {
        try {
            return ram.read64(pa);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }

    Translation translate(int sid, int pasid, long iova, int access) {
        return translator.translate(rootTable, ttm, sid, pasid, iova, access, new Translation());
    }

    List<Fault> faults() {
        return recorder.take();
    }

    // ------------------------------------------------------------------------------------ legacy

    /** The legacy context table of {@code bus}, made present in the root table on first use. */
    long contextTable(int bus) {
        long rootEntry = VtdTables.rootEntryAddress(rootTable, bus);
        long lo = read(rootEntry);
        if ((lo & 1) == 0) {
            long table = page();
            write(rootEntry, VtdTables.rootEntry(table));
            return table;
        }
        return lo & VtdTables.PTR_MASK;
    }

    /** The address of the legacy context entry of {@code sid}. */
    long contextEntryAddress(int sid) {
        return contextTable(VtdTables.bus(sid)) + (long) VtdTables.CONTEXT_ENTRY_SIZE * VtdTables.devfn(sid);
    }

    /** Writes the legacy context entry of {@code sid}. */
    void context(int sid, long qw0, long qw1) {
        long a = contextEntryAddress(sid);
        write(a, qw0);
        write(a + 8, qw1);
    }

    /** A legacy context entry translating through {@code ssRoot} ({@code levels} levels) in domain {@code did}. */
    void context(int sid, long ssRoot, int levels, int did) {
        context(sid, VtdTables.contextQw0(ssRoot, VtdTables.TT_MULTI_LEVEL, false),
                VtdTables.contextQw1(did, levels));
    }

    // ------------------------------------------------------------------------------------ scalable

    /** The address of the scalable-mode context entry of {@code sid}, its context table present on first use. */
    long smContextEntryAddress(int sid) {
        int devfn = VtdTables.devfn(sid);
        long rootEntry = VtdTables.rootEntryAddress(rootTable, VtdTables.bus(sid)) + (devfn < 128 ? 0 : 8);
        long half = read(rootEntry);
        long table;
        if ((half & 1) == 0) {
            table = page();
            write(rootEntry, table | 1);
        } else {
            table = half & VtdTables.PTR_MASK;
        }
        return table + (long) VtdTables.SM_CONTEXT_ENTRY_SIZE * (devfn & 127);
    }

    /** Writes the scalable-mode context entry of {@code sid} (qw2, qw3 zero). */
    void smContext(int sid, long qw0, long qw1) {
        long a = smContextEntryAddress(sid);
        write(a, qw0);
        write(a + 8, qw1);
    }

    /**
     * A scalable-mode context entry with a new PASID directory of 128 entries (PDTS 0: PASIDs below 8192), PASIDE
     * set; returns the directory.
     */
    long smContext(int sid, int ridPasid) {
        long dir = page();
        smContext(sid, VtdTables.smContextQw0(dir, 0, true, false), ridPasid);
        return dir;
    }

    /** The address of the PASID-table entry of {@code pasid} under {@code dir}, its table present on first use. */
    long pasidEntryAddress(long dir, int pasid) {
        long dirEntry = dir + 8L * (pasid >>> 6);
        long pde = read(dirEntry);
        long table;
        if ((pde & 1) == 0) {
            table = page();
            write(dirEntry, VtdTables.pasidDirEntry(table));
        } else {
            table = pde & VtdTables.PTR_MASK;
        }
        return table + 64L * (pasid & 63);
    }

    /** Writes a PASID-table entry (qw3..qw7 zero). */
    void pasidEntry(long dir, int pasid, long qw0, long qw1, long qw2) {
        long a = pasidEntryAddress(dir, pasid);
        write(a, qw0);
        write(a + 8, qw1);
        write(a + 16, qw2);
    }

    /** A first-stage-only PASID entry (supervisor requests enabled, WPE) in domain {@code did}. */
    void firstStage(long dir, int pasid, int did, FsTable fs) {
        pasidEntry(dir, pasid, VtdTables.pasidQw0(VtdTables.PGTT_FIRST_STAGE, 0, 0, false),
                VtdTables.pasidQw1(did, false), VtdTables.pasidQw2(fs.root, fs.levels, true, true));
    }

    /** A second-stage-only PASID entry. */
    void secondStage(long dir, int pasid, int did, SsTable ss) {
        pasidEntry(dir, pasid, VtdTables.pasidQw0(VtdTables.PGTT_SECOND_STAGE, ss.root, ss.levels, false),
                VtdTables.pasidQw1(did, false), 0);
    }

    /** A nested PASID entry: {@code fs} in the guest-physical space {@code ss} translates. */
    void nested(long dir, int pasid, int did, FsTable fs, SsTable ss) {
        pasidEntry(dir, pasid, VtdTables.pasidQw0(VtdTables.PGTT_NESTED, ss.root, ss.levels, false),
                VtdTables.pasidQw1(did, false), VtdTables.pasidQw2(fs.root, fs.levels, true, true));
    }

    // ------------------------------------------------------------------------------------ paging structures

    /** Hand-built paging structures: entries written one by one, tables allocated as needed. */
    abstract class Tables {
        final int levels;
        final long root;

        Tables(int levels) {
            this.levels = levels;
            this.root = page();
        }

        /** How a table entry pointing at {@code table} is written. */
        abstract long tableEntry(long table);

        abstract boolean present(long entry);

        /** The address of the entry for {@code va} at {@code level} (0 = PTE), tables made on the way. */
        long entryAddress(long va, int level) {
            long table = root;
            for (int l = levels - 1; ; l--) {
                long a = table + 8L * ((va >>> (12 + 9 * l)) & 511);
                if (l == level) {
                    return a;
                }
                long e = read(a);
                if (!present(e)) {
                    long next = page();
                    e = tableEntry(next);
                    write(a, e);
                }
                table = e & VtdTables.PTR_MASK & ((1L << 52) - 1);
            }
        }

        /** Writes the leaf {@code leafBits | pa} at the level of a {@code 2^lg2} page; returns its address. */
        long map(long va, long pa, int lg2, long leafBits) {
            int level = (lg2 - 12) / 9;
            long a = entryAddress(va, level);
            write(a, pa | leafBits | (level > 0 ? 1L << 7 : 0));
            return a;
        }

        /** Overwrites the entry for {@code va} at {@code level}. */
        void set(long va, int level, long entry) {
            write(entryAddress(va, level), entry);
        }

        long get(long va, int level) {
            return read(entryAddress(va, level));
        }
    }

    /** Second-stage tables: tables R|W, present = R or W. */
    final class SsTable extends Tables {
        SsTable(int levels) {
            super(levels);
        }

        @Override
        long tableEntry(long table) {
            return table | 3;
        }

        @Override
        boolean present(long entry) {
            return (entry & 3) != 0;
        }
    }

    /** First-stage (x86-64) tables: tables P|RW|US, A clear. */
    final class FsTable extends Tables {
        FsTable(int levels) {
            super(levels);
        }

        @Override
        long tableEntry(long table) {
            return table | 0b111;
        }

        @Override
        boolean present(long entry) {
            return (entry & 1) != 0;
        }
    }

    SsTable ss(int levels) {
        return new SsTable(levels);
    }

    FsTable fs(int levels) {
        return new FsTable(levels);
    }
}
