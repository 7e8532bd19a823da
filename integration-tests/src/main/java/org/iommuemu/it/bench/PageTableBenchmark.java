package org.iommuemu.it.bench;

import java.util.concurrent.TimeUnit;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.PageTableException;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Formats;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Map and unmap through the page-table algorithms, per format, in the shape of the published Linux
 * generic_pt figures: one call that maps (or unmaps) 1 x 4K, 256 x 4K, or 256 x 2M. Each benchmark makes
 * several calls per invocation on distinct ranges; the opposite operation runs in the invocation set-up,
 * outside the measurement. Tables stay allocated between rounds (as between a driver's unmap and its next
 * map), so this measures writing entries into existing tables, as the kernel figures do.
 *
 * <p>Scores are nanoseconds per call. Each unmap call is followed by the gather's sync (its flush does nothing
 * here, but tables freed by the unmap go back to the allocator then, as with a strict driver). armv7s has no
 * 2M pages: its 256 x 2M rows map 256 x 1M sections.
 * {@code map1x4K} / {@code map1x4KGeneralPath} compare the single-page fast path with the general path.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
public class PageTableBenchmark {
    static final int RW = Prot.READ | Prot.WRITE;

    /** A table of one format and a set of equal, distinct ranges. */
    @State(Scope.Thread)
    public abstract static class Ranges {
        @Param({"arm64-lpae-s1-4k", "armv7s", "vtd-ss", "x86-64", "amdv1"})
        public String format;

        PageTable table;
        IotlbGather gather;
        long bytes;
        int calls;
        long base;

        /** Bytes per call and calls per invocation for this shape. */
        abstract void shape(boolean armv7s);

        boolean fastPath() {
            return true;
        }

        @Setup(Level.Trial)
        public void open() throws PageTableException {
            SparseRam ram = SparseRam.withDefaultRam();
            BuddyPageAllocator alloc = new BuddyPageAllocator(ram, SparseRam.DEFAULT_RAM_BASE, 1L << 30);
            table = new PageTable(Formats.byName(format), ram, alloc, PageTable.TAG, fastPath());
            gather = new IotlbGather(g -> { }, alloc);
            boolean armv7s = format.equals("armv7s");
            shape(armv7s);
            base = armv7s ? 0 : 1L << 36;
        }

        long slot(int i) {
            return base + i * bytes;
        }

        /**
         * Output addresses sit one 4K page off the iova, so a 256 x 4K call really writes 256 4K entries (an
         * aligned 1M would be one armv7s section or one AMD v1 1M page); 2M calls keep 2M alignment.
         */
        long oaOffset() {
            return bytes == 256 * 4096 ? 4096 : 0;
        }

        void mapAll() throws PageTableException {
            for (int i = 0; i < calls; i++) {
                long va = slot(i);
                table.map(va, (va & 0xFFFF_FFFFL) + oaOffset(), bytes, RW, gather);
            }
        }

        void unmapAll() throws PageTableException {
            for (int i = 0; i < calls; i++) {
                table.unmap(slot(i), bytes, gather);
            }
            gather.sync();
        }

        @TearDown(Level.Trial)
        public void close() throws PageTableException {
            table.destroy();
        }
    }

    /** Ranges that start each invocation unmapped. */
    public abstract static class Unmapped extends Ranges {
        @Setup(Level.Invocation)
        public void clear() throws PageTableException {
            unmapAll();
        }
    }

    /** Ranges that start each invocation mapped. */
    public abstract static class Mapped extends Ranges {
        @Setup(Level.Invocation)
        public void fill() throws PageTableException {
            mapAll();
        }
    }

    public static class Unmapped1x4K extends Unmapped {
        @Override
        void shape(boolean armv7s) {
            bytes = 4096;
            calls = 256;
        }
    }

    public static class Unmapped1x4KGeneralPath extends Unmapped1x4K {
        @Override
        boolean fastPath() {
            return false;
        }
    }

    public static class Unmapped256x4K extends Unmapped {
        @Override
        void shape(boolean armv7s) {
            bytes = 256 * 4096;
            calls = 64;
        }
    }

    public static class Unmapped256x2M extends Unmapped {
        @Override
        void shape(boolean armv7s) {
            bytes = 256L << (armv7s ? 20 : 21);
            calls = 16;
        }
    }

    public static class Mapped1x4K extends Mapped {
        @Override
        void shape(boolean armv7s) {
            bytes = 4096;
            calls = 256;
        }
    }

    public static class Mapped256x4K extends Mapped {
        @Override
        void shape(boolean armv7s) {
            bytes = 256 * 4096;
            calls = 64;
        }
    }

    public static class Mapped256x2M extends Mapped {
        @Override
        void shape(boolean armv7s) {
            bytes = 256L << (armv7s ? 20 : 21);
            calls = 16;
        }
    }

    @Benchmark
    @OperationsPerInvocation(256)
    public void map1x4K(Unmapped1x4K s) throws PageTableException {
        s.mapAll();
    }

    @Benchmark
    @OperationsPerInvocation(256)
    public void map1x4KGeneralPath(Unmapped1x4KGeneralPath s) throws PageTableException {
        s.mapAll();
    }

    @Benchmark
    @OperationsPerInvocation(64)
    public void map256x4K(Unmapped256x4K s) throws PageTableException {
        s.mapAll();
    }

    @Benchmark
    @OperationsPerInvocation(16)
    public void map256x2M(Unmapped256x2M s) throws PageTableException {
        s.mapAll();
    }

    @Benchmark
    @OperationsPerInvocation(256)
    public void unmap1x4K(Mapped1x4K s) throws PageTableException {
        for (int i = 0; i < s.calls; i++) {
            s.table.unmap(s.slot(i), s.bytes, s.gather);
            s.gather.sync(); // as a strict driver does after each unmap (the flush itself is a no-op here)
        }
    }

    @Benchmark
    @OperationsPerInvocation(64)
    public void unmap256x4K(Mapped256x4K s) throws PageTableException {
        for (int i = 0; i < s.calls; i++) {
            s.table.unmap(s.slot(i), s.bytes, s.gather);
            s.gather.sync(); // as a strict driver does after each unmap (the flush itself is a no-op here)
        }
    }

    @Benchmark
    @OperationsPerInvocation(16)
    public void unmap256x2M(Mapped256x2M s) throws PageTableException {
        for (int i = 0; i < s.calls; i++) {
            s.table.unmap(s.slot(i), s.bytes, s.gather);
            s.gather.sync(); // as a strict driver does after each unmap (the flush itself is a no-op here)
        }
    }
}
