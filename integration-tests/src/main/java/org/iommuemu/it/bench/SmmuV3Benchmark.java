package org.iommuemu.it.bench;

import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.core.smmuv3.StreamTableBase;
import org.iommuemu.device.machine.DmaEngine;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.InterruptHub;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.device.smmuv3.SmmuV3Device;
import org.iommuemu.device.smmuv3.SmmuV3Registers;
import org.iommuemu.device.trace.TraceReader;
import org.iommuemu.device.trace.Tracer;
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
import org.openjdk.jmh.annotations.TearDown;

/**
 * The SMMUv3 model, single thread: translate with an IOTLB hit; translate with an IOTLB miss (a) with the walk
 * cache warm (only the leaf read) and (b) with a full 4-level 4K stage-1 walk (IOTLB and walk cache of one
 * entry, addresses in different 512 GiB regions); command consumption for TLBI_NH_VA and CMD_SYNC (commands per
 * second, scored as ns per command). The SMMU is set up through its registers and guest memory, as a driver
 * would: a linear stream table, a stage-1 STE, one CD (48-bit VA, 4K granule) over a page table built with the
 * page-table library.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
public class SmmuV3Benchmark {
    static final int SID = 1;
    static final int BATCH = 256;
    static final int CMDQ_LOG2 = 12;
    static final int SPREAD = 64;

    private SparseRam ram;
    private SmmuV3Device warm;
    private SmmuV3Device walkCached;
    private SmmuV3Device cold;
    private final Translation out = new Translation();
    private long hitIova;
    private final long[] spreadIovas = new long[SPREAD];
    private int next;
    // DMA through the DmaEngine with the machine's trace off and on (a reader open that nobody drains: the ring wraps)
    private SmmuV3Device traced;
    private DmaEngine dmaUntraced;
    private DmaEngine dmaTraced;
    private TraceReader traceReader;
    private final DmaOutcome dmaOut = new DmaOutcome();
    private final byte[] dmaBuf = new byte[64];

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        ram = SparseRam.withDefaultRam();
        BuddyPageAllocator alloc = new BuddyPageAllocator(ram, SparseRam.DEFAULT_RAM_BASE, 1L << 30);
        PageTable pt = new PageTable(Arm64Lpae.stage1(12, 48, 48), ram, alloc);
        IotlbGather gather = new IotlbGather(g -> { }, alloc);
        long page = alloc.allocPages(0, "dma");
        hitIova = 0x1000_0000L;
        for (int i = 0; i < SPREAD; i++) {
            pt.map(hitIova + ((long) i << 12), page, 4096, Prot.READ | Prot.WRITE, gather);
        }
        for (int i = 0; i < SPREAD; i++) {
            // each in its own 512 GiB region: every level of the walk differs
            spreadIovas[i] = ((long) (i + 1) << 39) | ((long) i << 30) | ((long) i << 21) | ((long) i << 12);
            pt.map(spreadIovas[i], page, 4096, Prot.READ | Prot.WRITE, gather);
        }
        long strtab = alloc.allocPages(0, "strtab");
        long cdTable = alloc.allocPages(0, "cd");
        Cd cd = Cd.stage1(16, Encodings.tg0ForGranuleLg2(12), Encodings.oasEncoding(48), 1, pt.root(), Cd.LINUX_MAIR);
        ram.write64s(cdTable, cd.encode(), 0, 8);
        Ste ste = Ste.stage1(cdTable, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_TERMINATE);
        ram.write64s(strtab + (long) SID * Ste.SIZE, ste.encode(), 0, 8);
        InterruptHub irq = new InterruptHub(ram);
        warm = enable(new SmmuV3Device("warm", SmmuV3Config.defaults(), ram, irq), strtab, 0);
        walkCached = enable(new SmmuV3Device("walk-cached", SmmuV3Config.builder().iotlbCapacity(1).build(), ram,
                irq), strtab, 0);
        cold = enable(new SmmuV3Device("cold", SmmuV3Config.builder().iotlbCapacity(1).walkCacheCapacity(1).build(),
                ram, irq), strtab, 0);
        traced = enable(new SmmuV3Device("traced", SmmuV3Config.defaults(), ram, irq), strtab, 0);
        dmaUntraced = new DmaEngine(ram);
        dmaTraced = new DmaEngine(ram);
        Tracer tracer = new Tracer(List.of("traced"), new LongSupplier[] {traced::simTimeNs}, new Object[] {traced});
        traced.tracer(tracer, 0);
        dmaTraced.tracer(tracer);
        traceReader = tracer.open();
        // sanity: all translate
        for (SmmuV3Device d : new SmmuV3Device[] {warm, walkCached, cold, traced}) {
            if (!d.translate(SID, -1, hitIova, 0, out).isOk() || out.physicalAddress() != page) {
                throw new IllegalStateException("benchmark setup does not translate: " + out);
            }
        }
    }

    private static SmmuV3Device enable(SmmuV3Device d, long strtab, long cmdq) {
        d.mmioWrite(SmmuV3Registers.STRTAB_BASE, 8, StreamTableBase.encodeBase(strtab, true));
        d.mmioWrite(SmmuV3Registers.STRTAB_BASE_CFG, 4, StreamTableBase.encodeCfg(6, 0, StreamTableBase.FMT_LINEAR));
        int cr0 = 1;
        if (cmdq != 0) {
            d.mmioWrite(SmmuV3Registers.CMDQ_BASE, 8, new QueueBase(cmdq, CMDQ_LOG2, true).encode());
            cr0 |= 1 << 3;
        }
        d.mmioWrite(SmmuV3Registers.CR0, 4, cr0);
        return d;
    }

    /** The trace's reader is closed after the trial. */
    @TearDown(Level.Trial)
    public void closeTrace() {
        traceReader.close();
    }

    /** A 64-byte DMA read through the DmaEngine with an IOTLB hit, the machine's trace off (one branch per hook). */
    @Benchmark
    public long dmaIotlbHitTraceOff() {
        return dmaUntraced.read(warm, SID, -1, hitIova, dmaBuf, 0, 64, 0, dmaOut).bytesDone();
    }

    /** The same with the trace on: a TRANSLATE and a DMA record into the ring per request. */
    @Benchmark
    public long dmaIotlbHitTraceOn() {
        return dmaTraced.read(traced, SID, -1, hitIova, dmaBuf, 0, 64, 0, dmaOut).bytesDone();
    }

    @Benchmark
    public long translateIotlbHit() {
        return warm.translate(SID, -1, hitIova, 0, out).physicalAddress();
    }

    /**
     * An IOTLB miss whose upper levels come from the walk cache: one descriptor read. A one-entry IOTLB and 64
     * pages of one leaf table in turn.
     */
    @Benchmark
    public long translateMissWarmWalkCache() {
        long iova = hitIova + ((long) (next++ & (SPREAD - 1)) << 12);
        return walkCached.translate(SID, -1, iova, 0, out).physicalAddress();
    }

    /** An IOTLB miss with a full 4-level 4K walk: IOTLB and walk cache hold one entry, addresses differ at every level. */
    @Benchmark
    public long translateMiss4LevelWalk() {
        return cold.translate(SID, -1, spreadIovas[next++ & (SPREAD - 1)], 0, out).physicalAddress();
    }

    /** TLBI_NH_VA commands consumed from the queue, per command. */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public void consumeTlbiNhVa(Tlbis q) {
        q.device.mmioWrite(SmmuV3Registers.CMDQ_PROD, 4, q.prodAfter);
        q.checkConsumed();
    }

    /** CMD_SYNC (CS=NONE) commands consumed from the queue, per command. */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public void consumeCmdSync(Syncs q) {
        q.device.mmioWrite(SmmuV3Registers.CMDQ_PROD, 4, q.prodAfter);
        q.checkConsumed();
    }

    /** An SMMU with a command queue; a batch of commands is written before each invocation (not measured). */
    @State(Scope.Thread)
    public abstract static class CommandRig {
        SparseRam ram;
        SmmuV3Device device;
        long cmdq;
        int prod;
        int prodAfter;
        final long[] words = new long[2 * BATCH];

        abstract Command command(int i);

        @Setup(Level.Trial)
        public void open() {
            ram = SparseRam.withDefaultRam();
            BuddyPageAllocator alloc = new BuddyPageAllocator(ram, SparseRam.DEFAULT_RAM_BASE, 1L << 30);
            cmdq = alloc.allocBytes(16L << CMDQ_LOG2, "cmdq");
            device = new SmmuV3Device("cmdq", SmmuV3Config.defaults(), ram, new InterruptHub(ram));
            device.mmioWrite(SmmuV3Registers.CMDQ_BASE, 8, new QueueBase(cmdq, CMDQ_LOG2, true).encode());
            device.mmioWrite(SmmuV3Registers.CR0, 4, 1 << 3); // CMDQEN
        }

        @Setup(Level.Trial)
        public void encode() {
            for (int i = 0; i < BATCH; i++) {
                Command cmd = command(i);
                words[2 * i] = cmd.dw0();
                words[2 * i + 1] = cmd.dw1();
            }
        }

        @Setup(Level.Invocation)
        public void fill() throws Exception {
            int mask = (2 << CMDQ_LOG2) - 1;
            int index = prod & ((1 << CMDQ_LOG2) - 1);
            int first = Math.min(BATCH, (1 << CMDQ_LOG2) - index); // the batch may wrap round the ring
            ram.write64s(cmdq + 16L * index, words, 0, 2 * first);
            if (first < BATCH) {
                ram.write64s(cmdq, words, 2 * first, 2 * (BATCH - first));
            }
            prod = (prod + BATCH) & mask;
            prodAfter = prod;
        }

        /** The queue must have consumed the batch: an error would stop it and make the figure meaningless. */
        void checkConsumed() {
            long cons = device.mmioRead(SmmuV3Registers.CMDQ_CONS, 4);
            if (cons != prodAfter) {
                throw new IllegalStateException("command queue stopped: CONS " + Long.toHexString(cons) + ", PROD "
                        + Integer.toHexString(prodAfter) + ", GERROR " + Long.toHexString(device.mmioRead(0x60, 4)));
            }
        }
    }

    public static class Tlbis extends CommandRig {
        @Override
        Command command(int i) {
            return Command.tlbiNhVa(0, 1, 0x1000_0000L + ((long) i << 12), true);
        }
    }

    public static class Syncs extends CommandRig {
        @Override
        Command command(int i) {
            return Command.cmdSync(0);
        }
    }
}
