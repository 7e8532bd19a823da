package org.iommuemu.it.bench;

import java.util.concurrent.TimeUnit;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.machine.InterruptHub;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.vtd.VtdConfig;
import org.iommuemu.device.vtd.VtdDevice;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * The VT-d model, single thread, set up through its registers and guest memory as a driver would (a legacy root
 * table, one context entry, a 4-level second-stage table built with the page-table library): translate with an
 * IOTLB hit; translate with an IOTLB miss (a) with the paging-structure cache warm and (b) with a full 4-level walk
 * (IOTLB and paging-structure cache of one entry, addresses differing at every level); queued-invalidation
 * descriptors consumed per second, scored as ns per descriptor, for page-selective IOTLB invalidations and for
 * invalidation waits with a status write.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
public class VtdBenchmark {
    static final int SID = 0x0108; // bus 1, devfn 8
    static final int DID = 5;
    static final int BATCH = 256;
    /** IQA.QS = 7: 2^15 128-bit descriptors. */
    static final int QS = 7;
    static final int ENTRIES = 1 << (QS + 8);
    static final int SPREAD = 64;

    private SparseRam ram;
    private VtdDevice warm;
    private VtdDevice walkCached;
    private VtdDevice cold;
    private final Translation out = new Translation();
    private long hitIova;
    private final long[] spreadIovas = new long[SPREAD];
    private int next;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        ram = SparseRam.withDefaultRam();
        BuddyPageAllocator alloc = new BuddyPageAllocator(ram, SparseRam.DEFAULT_RAM_BASE, 1L << 30);
        PageTable pt = new PageTable(VtdSs.levels(4), ram, alloc);
        IotlbGather gather = new IotlbGather(g -> { }, alloc);
        long page = alloc.allocPages(0, "dma");
        hitIova = 0x1000_0000L;
        for (int i = 0; i < SPREAD; i++) {
            pt.map(hitIova + ((long) i << 12), page, 4096, Prot.READ | Prot.WRITE, gather);
        }
        for (int i = 0; i < SPREAD; i++) {
            spreadIovas[i] = ((long) (i + 1) << 39) | ((long) i << 30) | ((long) i << 21) | ((long) i << 12);
            pt.map(spreadIovas[i], page, 4096, Prot.READ | Prot.WRITE, gather);
        }
        long root = alloc.allocPages(0, "root");
        long context = alloc.allocPages(0, "context");
        ram.write64(VtdTables.rootEntryAddress(root, VtdTables.bus(SID)), VtdTables.rootEntry(context));
        long ce = context + (long) VtdTables.CONTEXT_ENTRY_SIZE * VtdTables.devfn(SID);
        ram.write64(ce + 8, VtdTables.contextQw1(DID, 4));
        ram.write64(ce, VtdTables.contextQw0(pt.root(), VtdTables.TT_MULTI_LEVEL, false));
        InterruptHub irq = new InterruptHub(ram);
        VtdConfig legacy = VtdConfig.builder().smts(false).flts(false).slts(false).nest(false).pasid(false).pss(0)
                .rps(false).slads(false).build();
        warm = enable(new VtdDevice("warm", legacy, ram, irq), root);
        walkCached = enable(new VtdDevice("walk-cached", legacy.toBuilder().iotlbCapacity(1).build(), ram, irq), root);
        cold = enable(new VtdDevice("cold", legacy.toBuilder().iotlbCapacity(1).walkCacheCapacity(1).build(), ram,
                irq), root);
        for (VtdDevice d : new VtdDevice[] {warm, walkCached, cold}) {
            if (!d.translate(SID, -1, hitIova, 0, out).isOk() || out.physicalAddress() != page) {
                throw new IllegalStateException("benchmark setup does not translate: " + out);
            }
        }
    }

    private static VtdDevice enable(VtdDevice d, long root) {
        d.mmioWrite(VtdRegs.RTADDR, 8, root);
        d.mmioWrite(VtdRegs.GCMD, 4, 1L << VtdRegs.GCMD_SRTP);
        d.mmioWrite(VtdRegs.GCMD, 4, 1L << VtdRegs.GCMD_TE);
        return d;
    }

    @Benchmark
    public long translateIotlbHit() {
        return warm.translate(SID, -1, hitIova, 0, out).physicalAddress();
    }

    /** An IOTLB miss whose upper levels come from the paging-structure cache: one-entry IOTLB, 64 pages in turn. */
    @Benchmark
    public long translateMissWarmWalkCache() {
        long iova = hitIova + ((long) (next++ & (SPREAD - 1)) << 12);
        return walkCached.translate(SID, -1, iova, 0, out).physicalAddress();
    }

    /** An IOTLB miss with a full 4-level walk. */
    @Benchmark
    public long translateMiss4LevelWalk() {
        return cold.translate(SID, -1, spreadIovas[next++ & (SPREAD - 1)], 0, out).physicalAddress();
    }

    /** Page-selective IOTLB invalidation descriptors consumed, per descriptor. */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public void consumePageSelectiveIotlb(Psis q) {
        q.device.mmioWrite(VtdRegs.IQT, 8, (long) q.tail << 4);
        q.checkConsumed();
    }

    /** Invalidation wait descriptors (SW=1, a 32-bit status write each) consumed, per descriptor. */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public void consumeInvalidationWait(Waits q) {
        q.device.mmioWrite(VtdRegs.IQT, 8, (long) q.tail << 4);
        q.checkConsumed();
    }

    /** A unit with queued invalidation enabled; a batch is written before each invocation (not measured). */
    @State(Scope.Thread)
    public abstract static class QueueRig {
        SparseRam ram;
        VtdDevice device;
        long queue;
        long status;
        int tail;
        final long[] words = new long[2 * BATCH];

        abstract void encode(int i, long[] into);

        @Setup(Level.Trial)
        public void open() {
            ram = SparseRam.withDefaultRam();
            BuddyPageAllocator alloc = new BuddyPageAllocator(ram, SparseRam.DEFAULT_RAM_BASE, 1L << 30);
            queue = alloc.allocBytes(16L * ENTRIES, "iq");
            status = alloc.allocPages(0, "status");
            device = new VtdDevice("iq", VtdConfig.defaults(), ram, new InterruptHub(ram));
            device.mmioWrite(VtdRegs.IQA, 8, queue | QS);
            device.mmioWrite(VtdRegs.IQT, 8, 0);
            device.mmioWrite(VtdRegs.GCMD, 4, 1L << VtdRegs.GCMD_QIE);
            for (int i = 0; i < BATCH; i++) {
                encode(i, words);
            }
        }

        @Setup(Level.Invocation)
        public void fill() throws Exception {
            int first = Math.min(BATCH, ENTRIES - tail); // the batch may wrap round the ring
            ram.write64s(queue + 16L * tail, words, 0, 2 * first);
            if (first < BATCH) {
                ram.write64s(queue, words, 2 * first, 2 * (BATCH - first));
            }
            tail = (tail + BATCH) % ENTRIES;
        }

        /** The queue must have consumed the batch: an error would stop it and make the figure meaningless. */
        void checkConsumed() {
            long head = device.mmioRead(VtdRegs.IQH, 8) >>> 4;
            if (head != tail) {
                throw new IllegalStateException("invalidation queue stopped: IQH " + head + ", IQT " + tail + ", FSTS "
                        + Long.toHexString(device.mmioRead(VtdRegs.FSTS, 4)));
            }
        }
    }

    public static class Psis extends QueueRig {
        @Override
        void encode(int i, long[] into) {
            into[2 * i] = InvDesc.iotlb(VtdRegs.IOTLB_PAGE, DID, false, false);
            into[2 * i + 1] = InvDesc.addr(0x1000_0000L + ((long) i << 12), 0, true);
        }
    }

    public static class Waits extends QueueRig {
        @Override
        void encode(int i, long[] into) {
            into[2 * i] = InvDesc.waitQw0(true, false, false, InvDesc.STATUS_DONE);
            into[2 * i + 1] = InvDesc.waitQw1(status);
        }
    }
}
