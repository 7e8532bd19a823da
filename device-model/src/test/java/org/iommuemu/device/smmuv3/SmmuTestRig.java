package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.PageTableException;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtLookup;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.L1CdDescriptor;
import org.iommuemu.core.smmuv3.L1StreamDescriptor;
import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.core.smmuv3.StreamTableBase;
import org.iommuemu.device.machine.DeviceStats;
import org.iommuemu.device.machine.InterruptHub;
import org.iommuemu.device.machine.InterruptRecord;
import org.iommuemu.device.machine.Translation;

/**
 * Plays the Linux arm-smmu-v3 driver against one {@link SmmuV3Device}: everything goes through MMIO at the
 * architected offsets and through guest memory. The rig allocates the command queue, the event queue, the stream
 * table, CD tables and page tables from a {@link BuddyPageAllocator} in a {@link SparseRam}, writes STEs and CDs with
 * the iommu-core encoders, submits commands by writing 16-byte entries at CMDQ_PROD and moving PROD, and reads
 * event records at EVENTQ_CONS. Interrupts go through an {@link InterruptHub} (which performs MSI writes into RAM)
 * and are recorded in {@link #interrupts}.
 *
 * <p>Nothing here peeks into the device: the device is only ever told things by registers and memory.
 */
final class SmmuTestRig {
    /** Guest RAM: 64 MiB at 2 GiB. */
    static final long RAM_BASE = 0x8000_0000L;
    static final long RAM_SIZE = 64L << 20;
    /** An address well inside the 48-bit output range that is not RAM: every access to it aborts. */
    static final long NOT_RAM = 0x40_0000_0000L;
    /** An MSI doorbell outside RAM (an interrupt controller, say): MSIs to it only reach subscribers. */
    static final long DOORBELL = 0x0800_0040L;

    static final int CR0_SMMUEN = 1;
    static final int CR0_EVENTQEN = 1 << 2;
    static final int CR0_CMDQEN = 1 << 3;
    static final int IRQ_GERROR = 1;
    static final int IRQ_EVENTQ = 1 << 2;

    final SmmuV3Config config;
    final SparseRam ram;
    final BuddyPageAllocator alloc;
    final InterruptHub hub;
    final List<InterruptRecord> interrupts = new CopyOnWriteArrayList<>();
    final SmmuV3Device smmu;

    private long cmdqBase;
    private int cmdqLog2;
    private int cmdqProd;
    private long eventqBase;
    private int eventqLog2;
    private long strtab;
    private int strtabLog2;
    private boolean twoLevel;
    private int split;
    private final Map<Long, Long> l2Tables = new HashMap<>();

    SmmuTestRig(SmmuV3Config config) {
        this.config = config;
        this.ram = new SparseRam(List.of(new RamRegion(RAM_BASE, RAM_SIZE)));
        this.alloc = new BuddyPageAllocator(ram, RAM_BASE, RAM_SIZE);
        this.hub = new InterruptHub(ram);
        hub.subscribe(interrupts::add);
        this.smmu = new SmmuV3Device("smmu0", config, ram, hub);
    }

    /** A default SMMU (MSIs, both stages, HTTU...) with small queues. */
    static SmmuV3Config.Builder smallQueues() {
        return SmmuV3Config.builder().cmdqLog2(8).eventqLog2(8);
    }

    /**
     * Linux's bring-up with a linear stream table of 2^8 entries, a 2^8-entry command queue and a 2^6-entry event
     * queue, event and GERROR interrupts enabled, the SMMU enabled.
     */
    static SmmuTestRig started() {
        return started(smallQueues().build());
    }

    static SmmuTestRig started(SmmuV3Config config) {
        SmmuTestRig rig = new SmmuTestRig(config);
        rig.commandQueue(8).eventQueue(6).linearStreamTable(8).enable();
        return rig;
    }

    // ------------------------------------------------------------------ MMIO

    long read32(long offset) {
        return smmu.mmioRead(offset, 4);
    }

    long read64(long offset) {
        return smmu.mmioRead(offset, 8);
    }

    void write32(long offset, long value) {
        smmu.mmioWrite(offset, 4, value & 0xFFFF_FFFFL);
    }

    void write64(long offset, long value) {
        smmu.mmioWrite(offset, 8, value);
    }

    // ------------------------------------------------------------------ memory

    /** 2^order zeroed pages. */
    long pages(int order, String tag) {
        return alloc.allocPages(order, tag);
    }

    /** One zeroed 4 KB page for DMA data. */
    long page() {
        return alloc.allocPages(0, "dma");
    }

    /** The smallest aligned zeroed block of at least {@code bytes}. */
    long bytes(long bytes, String tag) {
        return alloc.allocBytes(bytes, tag);
    }

    long r64(long pa) {
        try {
            return ram.read64(pa);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }

    int r32(long pa) {
        try {
            return ram.read32(pa);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }

    void w64(long pa, long value) {
        try {
            ram.write64(pa, value);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }

    void w32(long pa, int value) {
        try {
            ram.write32(pa, value);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }

    void w64s(long pa, long[] words) {
        for (int i = 0; i < words.length; i++) {
            w64(pa + 8L * i, words[i]);
        }
    }

    // ------------------------------------------------------------------ bring-up

    /** Allocates a command queue of 2^log2 entries and programs CMDQ_BASE (RA set, as Linux), PROD and CONS. */
    SmmuTestRig commandQueue(int log2) {
        cmdqLog2 = log2;
        cmdqBase = bytes((long) QueuePointer.CMDQ_ENTRY_SIZE << log2, "cmdq");
        write64(SmmuV3Registers.CMDQ_BASE, new QueueBase(cmdqBase, log2, true).encode());
        cmdqProd = 0;
        write32(SmmuV3Registers.CMDQ_PROD, 0);
        write32(SmmuV3Registers.CMDQ_CONS, 0);
        return this;
    }

    /** Points CMDQ_BASE at {@code base} (for instance outside RAM) without allocating. */
    SmmuTestRig commandQueueAt(long base, int log2) {
        cmdqLog2 = log2;
        cmdqBase = base;
        write64(SmmuV3Registers.CMDQ_BASE, new QueueBase(base, log2, true).encode());
        cmdqProd = 0;
        write32(SmmuV3Registers.CMDQ_PROD, 0);
        write32(SmmuV3Registers.CMDQ_CONS, 0);
        return this;
    }

    /** Allocates an event queue of 2^log2 records and programs EVENTQ_BASE (WA set) and the page-1 PROD/CONS. */
    SmmuTestRig eventQueue(int log2) {
        return eventQueueAt(bytes((long) QueuePointer.EVENTQ_ENTRY_SIZE << log2, "eventq"), log2);
    }

    SmmuTestRig eventQueueAt(long base, int log2) {
        eventqLog2 = log2;
        eventqBase = base;
        write64(SmmuV3Registers.EVENTQ_BASE, new QueueBase(base, log2, true).encode());
        write32(SmmuV3Registers.EVENTQ_PROD, 0);
        write32(SmmuV3Registers.EVENTQ_CONS, 0);
        return this;
    }

    /** A linear stream table of 2^log2 STEs (all invalid). */
    SmmuTestRig linearStreamTable(int log2) {
        strtabLog2 = log2;
        twoLevel = false;
        strtab = bytes((long) Ste.SIZE << log2, "strtab");
        write64(SmmuV3Registers.STRTAB_BASE, StreamTableBase.encodeBase(strtab, true));
        write32(SmmuV3Registers.STRTAB_BASE_CFG, StreamTableBase.encodeCfg(log2, 0, StreamTableBase.FMT_LINEAR));
        return this;
    }

    /** A 2-level stream table for 2^log2 stream ids split at {@code split}, every L1 descriptor invalid. */
    SmmuTestRig twoLevelStreamTable(int log2, int split) {
        strtabLog2 = log2;
        twoLevel = true;
        this.split = split;
        strtab = bytes(Math.max(64, (long) L1StreamDescriptor.SIZE << (log2 - split)), "strtab-l1");
        write64(SmmuV3Registers.STRTAB_BASE, StreamTableBase.encodeBase(strtab, true));
        write32(SmmuV3Registers.STRTAB_BASE_CFG, StreamTableBase.encodeCfg(log2, split, StreamTableBase.FMT_2LVL));
        return this;
    }

    /** Points STRTAB_BASE at {@code base} (for instance outside RAM) with a linear table of 2^log2 entries. */
    SmmuTestRig linearStreamTableAt(long base, int log2) {
        strtabLog2 = log2;
        twoLevel = false;
        strtab = base;
        write64(SmmuV3Registers.STRTAB_BASE, StreamTableBase.encodeBase(base, true));
        write32(SmmuV3Registers.STRTAB_BASE_CFG, StreamTableBase.encodeCfg(log2, 0, StreamTableBase.FMT_LINEAR));
        return this;
    }

    long strtab() {
        return strtab;
    }

    /**
     * Linux's arm_smmu_device_reset order: enable the command queue, invalidate every cached configuration and
     * TLB entry, enable the event queue, the interrupts (GERROR and event queue), then SMMUEN; each CR0 and
     * IRQ_CTRL write is followed by polling its ACK register.
     */
    SmmuTestRig enable() {
        cr0(CR0_CMDQEN);
        issue(Command.cfgiAll(), Command.tlbiNsnhAll());
        cr0(CR0_CMDQEN | CR0_EVENTQEN);
        irqCtrl(IRQ_GERROR | IRQ_EVENTQ);
        cr0(CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
        return this;
    }

    /** Writes CR0 and polls CR0ACK until it matches, as the driver does. */
    void cr0(int value) {
        write32(SmmuV3Registers.CR0, value);
        assertThat(read32(SmmuV3Registers.CR0ACK)).as("CR0ACK after writing CR0").isEqualTo(value);
    }

    /** Writes IRQ_CTRL and polls IRQ_CTRLACK. */
    void irqCtrl(int value) {
        write32(SmmuV3Registers.IRQ_CTRL, value);
        assertThat(read32(SmmuV3Registers.IRQ_CTRLACK)).as("IRQ_CTRLACK after writing IRQ_CTRL").isEqualTo(value);
    }

    /** Programs GERROR_IRQ_CFG0/1 (MSI address and data). */
    void gerrorMsi(long address, int data) {
        write64(SmmuV3Registers.GERROR_IRQ_CFG0, address);
        write32(SmmuV3Registers.GERROR_IRQ_CFG1, data);
        write32(SmmuV3Registers.GERROR_IRQ_CFG2, Encodings.SH_ISH << 4 | 0x1);
    }

    /** Programs EVENTQ_IRQ_CFG0/1 (MSI address and data). */
    void eventqMsi(long address, int data) {
        write64(SmmuV3Registers.EVENTQ_IRQ_CFG0, address);
        write32(SmmuV3Registers.EVENTQ_IRQ_CFG1, data);
        write32(SmmuV3Registers.EVENTQ_IRQ_CFG2, Encodings.SH_ISH << 4 | 0x1);
    }

    // ------------------------------------------------------------------ stream table

    /** The address of the STE of {@code sid}; for a 2-level table, allocates its L2 table on first use. */
    long steAddress(int sid) {
        if (!twoLevel) {
            return StreamTableBase.linearSteAddress(strtab, sid);
        }
        long l1 = StreamTableBase.l1DescriptorAddress(strtab, sid, split);
        Long l2 = l2Tables.get(l1);
        if (l2 == null) {
            l2 = bytes((long) Ste.SIZE << split, "strtab-l2");
            l2Tables.put(l1, l2);
            w64(l1, L1StreamDescriptor.forSplit(l2, split).encode());
        }
        return l2 + StreamTableBase.l2Index(sid, split) * Ste.SIZE;
    }

    /** The address of the L1 descriptor of {@code sid} in the 2-level table. */
    long l1Address(int sid) {
        return StreamTableBase.l1DescriptorAddress(strtab, sid, split);
    }

    /** Writes the STE of {@code sid} (no invalidation). */
    void writeSte(int sid, Ste ste) {
        w64s(steAddress(sid), ste.encode());
    }

    /** Writes the STE of {@code sid} and issues CFGI_STE + CMD_SYNC, as Linux does after installing one. */
    void installSte(int sid, Ste ste) {
        writeSte(sid, ste);
        issue(Command.cfgiSte(sid, true));
    }

    // ------------------------------------------------------------------ context descriptors

    /** A linear CD table of 2^lg2 CDs (at least one 4 KB page). */
    long cdTable(int lg2) {
        return bytes((long) Cd.SIZE << lg2, "cd");
    }

    void writeCd(long address, Cd cd) {
        w64s(address, cd.encode());
    }

    /** Writes the CD of substream {@code ssid} of a linear CD table. */
    void writeCd(long table, int ssid, Cd cd) {
        writeCd(table + (long) ssid * Cd.SIZE, cd);
    }

    /**
     * A stage-1 CD for {@code pt} as Linux writes it (TTB0 only, EPD1, R, A, ASET), IPS the table's output size.
     */
    static Cd cdFor(PageTable pt, int asid) {
        Arm64Lpae f = (Arm64Lpae) pt.format();
        return Cd.stage1(f.t0sz(), Encodings.tg0ForGranuleLg2(f.granuleLg2()),
                Encodings.oasEncoding(f.config().oasBits()), asid, pt.root(), Cd.LINUX_MAIR);
    }

    /** A 2-level CD table with 64 KB leaves: the L1 table of 2^(cdMax-10) descriptors (at least one). */
    long l1CdTable(int cdMax) {
        return bytes(Math.max(64, (long) L1CdDescriptor.SIZE << Math.max(0, cdMax - 10)), "cd-l1");
    }

    /** Allocates the 64 KB leaf table of substream group {@code ssid >> 10} and writes its L1 descriptor. */
    long cdLeaf(long l1Table, int ssid) {
        long leaf = bytes(64 << 10, "cd-l2");
        w64(l1Table + (long) (ssid >>> 10) * L1CdDescriptor.SIZE, L1CdDescriptor.of(leaf).encode());
        return leaf;
    }

    /** A stage-1 stream as {@link #stage1Stream} built it. */
    record Stage1Stream(int sid, int asid, PageTable pt, long cdTable) {}

    /**
     * Linux's stage-1 domain for stream {@code sid}: a 4 KB-granule 48-bit table mapping {@code iova} to {@code pa}
     * (one read-write page), a one-entry CD table with {@code asid} (S1CDMax 0), the STE written and CFGI_STE issued.
     */
    Stage1Stream stage1Stream(int sid, int asid, long iova, long pa) {
        PageTable pt = stage1(12, 48);
        map(pt, iova, pa, 4096, Prot.READ | Prot.WRITE);
        long cds = cdTable(0);
        writeCd(cds, 0, cdFor(pt, asid));
        installSte(sid, Ste.stage1(cds, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0));
        return new Stage1Stream(sid, asid, pt, cds);
    }

    /** A stage-2 stream as {@link #stage2Stream} built it. */
    record Stage2Stream(int sid, int vmid, PageTable pt) {}

    /**
     * Linux's stage-2 domain for stream {@code sid}: a 4 KB-granule 40-bit IPA table (two concatenated level-1
     * tables, SL0 = 1), {@code ipa} mapped to {@code pa} read-write, the STE written and CFGI_STE issued.
     */
    Stage2Stream stage2Stream(int sid, int vmid, long ipa, long pa) {
        PageTable pt = stage2(12, 40);
        map(pt, ipa, pa, 4096, Prot.READ | Prot.WRITE);
        installSte(sid, s2Ste(vmid, pt));
        return new Stage2Stream(sid, vmid, pt);
    }

    /** The stage-2 STE Linux writes for {@code pt}. */
    static Ste s2Ste(int vmid, PageTable pt) {
        Arm64Lpae f = (Arm64Lpae) pt.format();
        return Ste.stage2(vmid, f.t0sz(), f.stage2Sl0(), Encodings.tg0ForGranuleLg2(f.granuleLg2()),
                Encodings.oasEncoding(48), pt.root());
    }

    // ------------------------------------------------------------------ page tables

    static final IotlbGather.Flusher NO_FLUSH = g -> { };

    IotlbGather gather() {
        return new IotlbGather(NO_FLUSH, alloc);
    }

    /** An empty stage-1 table in RAM: granule 2^granuleLg2, {@code ias}-bit VAs, 48-bit output. */
    PageTable stage1(int granuleLg2, int ias) {
        return table(Arm64Lpae.stage1(granuleLg2, ias, 48), ram, alloc);
    }

    /** An empty stage-2 table in RAM. */
    PageTable stage2(int granuleLg2, int ias) {
        return table(Arm64Lpae.stage2(granuleLg2, ias, 48), ram, alloc);
    }

    static PageTable table(Arm64Lpae fmt, PhysicalMemory mem, PageAllocator alloc) {
        try {
            return new PageTable(fmt, mem, alloc);
        } catch (PageTableException e) {
            throw new AssertionError(e);
        }
    }

    void map(PageTable pt, long iova, long pa, long size, int prot) {
        try {
            pt.map(iova, pa, size, prot, gather());
        } catch (PageTableException e) {
            throw new AssertionError(e);
        }
    }

    /** Maps with pages of exactly the table's smallest size. */
    void mapPages(PageTable pt, long iova, long pa, long size, int prot) {
        try {
            pt.map(iova, pa, size, prot, 1L << pt.minPageLg2(), gather());
        } catch (PageTableException e) {
            throw new AssertionError(e);
        }
    }

    /** The physical address of the leaf descriptor that maps {@code iova} in {@code pt} (which must live in RAM). */
    static long leafSlot(PageTable pt, long iova) {
        PtLookup l = new PtLookup();
        try {
            assertThat(pt.lookup(iova, l)).as("%s maps %s", pt, Bits.hex(iova)).isTrue();
        } catch (PageTableException e) {
            throw new AssertionError(e);
        }
        return l.slot();
    }

    /**
     * The address of the table descriptor at Arm level {@code armLevel} on the walk of {@code va} through a
     * stage-1 table whose tables live in {@code mem} at the addresses they hold.
     */
    static long tableSlot(PhysicalMemory mem, PageTable pt, long va, int armLevel) {
        Arm64Lpae f = (Arm64Lpae) pt.format();
        int g = f.granuleLg2();
        int stride = g - 3;
        int ias = 64 - f.t0sz();
        int top = 3 - pt.topLevel();
        long table = pt.root();
        try {
            for (int level = top; ; level++) {
                int shift = g + (3 - level) * stride;
                int bits = level == top ? ias - shift : stride;
                long slot = table + (((va >>> shift) & ((1L << bits) - 1)) << 3);
                if (level == armLevel) {
                    return slot;
                }
                long d = mem.read64(slot);
                assertThat(d & 3).as("table descriptor at level %d for %s", level, Bits.hex(va)).isEqualTo(3L);
                table = d & Bits.maskHiLo(47, g);
            }
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }

    // ------------------------------------------------------------------ commands

    int cmdqLog2() {
        return cmdqLog2;
    }

    long cmdqBase() {
        return cmdqBase;
    }

    /** The producer index the rig last wrote (index and wrap). */
    int cmdqProd() {
        return cmdqProd;
    }

    int cmdqCons() {
        return (int) read32(SmmuV3Registers.CMDQ_CONS);
    }

    /** The address of the command-queue slot of pointer {@code ptr}. */
    long cmdqSlot(int ptr) {
        return cmdqBase + QueuePointer.entryOffset(ptr, cmdqLog2, QueuePointer.CMDQ_ENTRY_SIZE);
    }

    /** Writes commands at PROD and moves CMDQ_PROD past them, as arm_smmu_cmdq_issue_cmdlist does. */
    void submit(Command... commands) {
        for (Command c : commands) {
            place(c.dw0(), c.dw1());
        }
        write32(SmmuV3Registers.CMDQ_PROD, cmdqProd);
    }

    /** Writes one raw 16-byte entry and moves CMDQ_PROD past it. */
    void submitRaw(long dw0, long dw1) {
        place(dw0, dw1);
        write32(SmmuV3Registers.CMDQ_PROD, cmdqProd);
    }

    private void place(long dw0, long dw1) {
        int cons = cmdqCons();
        assertThat(QueuePointer.space(cmdqProd, cons, cmdqLog2)).as("command queue space").isPositive();
        long at = cmdqSlot(cmdqProd);
        if (Long.compareUnsigned(at, RAM_BASE) >= 0 && Long.compareUnsigned(at, RAM_BASE + RAM_SIZE) < 0) {
            w64(at, dw0);
            w64(at + 8, dw1);
        }
        cmdqProd = QueuePointer.inc(cmdqProd, cmdqLog2);
    }

    /** Submits the commands and a CMD_SYNC (CS=NONE) and checks that the SMMU consumed all of them. */
    void issue(Command... commands) {
        Command[] all = new Command[commands.length + 1];
        System.arraycopy(commands, 0, all, 0, commands.length);
        all[commands.length] = Command.cmdSync(Command.CS_NONE);
        submit(all);
        assertDrained();
    }

    void assertDrained() {
        int cons = cmdqCons();
        assertThat(QueuePointer.cmdqError(cons)).as("CMDQ_CONS.ERR").isZero();
        assertThat(QueuePointer.indexAndWrap(cons, cmdqLog2)).as("CMDQ_CONS after CMD_SYNC")
                .isEqualTo(QueuePointer.indexAndWrap(cmdqProd, cmdqLog2));
    }

    // ------------------------------------------------------------------ events

    long eventqBase() {
        return eventqBase;
    }

    int eventqProd() {
        return (int) read32(SmmuV3Registers.EVENTQ_PROD);
    }

    int eventqCons() {
        return (int) read32(SmmuV3Registers.EVENTQ_CONS);
    }

    /**
     * Reads every record between EVENTQ_CONS and EVENTQ_PROD, then moves CONS past them, copying PROD.OVFLG into
     * CONS.OVACKFLG as Linux's arm_smmu_evtq_thread does.
     */
    List<EventRecord> events() {
        int prod = eventqProd();
        int cons = eventqCons();
        List<EventRecord> list = new ArrayList<>();
        long[] words = new long[EventRecord.DWORDS];
        while (!QueuePointer.isEmpty(prod, cons, eventqLog2)) {
            long at = eventqBase + QueuePointer.entryOffset(cons, eventqLog2, QueuePointer.EVENTQ_ENTRY_SIZE);
            for (int i = 0; i < words.length; i++) {
                words[i] = r64(at + 8L * i);
            }
            list.add(EventRecord.decode(words));
            cons = QueuePointer.inc(cons, eventqLog2);
        }
        write32(SmmuV3Registers.EVENTQ_CONS, QueuePointer.acknowledgeOverflow(cons, prod));
        return list;
    }

    /** The one record the queue holds (consumed). */
    EventRecord onlyEvent() {
        List<EventRecord> list = events();
        assertThat(list).as("event records").hasSize(1);
        return list.get(0);
    }

    void assertNoEvents() {
        assertThat(events()).as("event records").isEmpty();
    }

    // ------------------------------------------------------------------ DMA

    /** Translates one access in a fresh holder. */
    Translation translate(int sid, int ssid, long iova, int access) {
        return smmu.translate(sid, ssid, iova, access, new Translation());
    }

    /** Translates and expects success; returns the physical address. */
    long pa(int sid, int ssid, long iova, int access) {
        Translation t = translate(sid, ssid, iova, access);
        assertThat(t.outcome()).as("translation of %s: %s", Bits.hex(iova), t).isEqualTo(Translation.Outcome.OK);
        return t.physicalAddress();
    }

    /** Counts of the interrupts recorded from {@code source}. */
    long interruptsFrom(String source) {
        return interrupts.stream().filter(r -> r.source().equals(source)).count();
    }

    // ------------------------------------------------------------------ event queue, interrupts, stats helpers

    int eventqLog2() {
        return eventqLog2;
    }

    /** The address of event-queue slot {@code index} (index only, no wrap bit). */
    long eventSlot(int index) {
        return eventqBase + (long) index * QueuePointer.EVENTQ_ENTRY_SIZE;
    }

    /** The four raw dwords of event-queue slot {@code index}, as they are in memory. */
    long[] rawEvent(int index) {
        long[] words = new long[EventRecord.DWORDS];
        for (int i = 0; i < words.length; i++) {
            words[i] = r64(eventSlot(index) + 8L * i);
        }
        return words;
    }

    /**
     * One access on each of the streams {@code first .. first+n-1}, whose STEs are all zero (V=0): one C_BAD_STE
     * each, never cached, so every access produces one event record.
     */
    void badSteFaults(int first, int n) {
        for (int sid = first; sid < first + n; sid++) {
            Translation t = translate(sid, -1, 0x1000, 0);
            assertThat(t.code()).as("stream %d faults with C_BAD_STE", sid).isEqualTo(0x04);
        }
    }

    /** The stream IDs of the records between CONS and PROD, consumed as {@link #events()} does. */
    List<Integer> eventStreams() {
        return events().stream().map(EventRecord::streamId).toList();
    }

    DeviceStats stats() {
        return smmu.stats();
    }

    /** The counters of cache {@code name} ("iotlb", "config", "walk"). */
    DeviceStats.CacheStat cache(String name) {
        return smmu.stats().caches().stream().filter(c -> c.cache().equals(name)).findFirst().orElseThrow();
    }

    /** How many events of {@code type} the device counted. */
    long eventsOfType(int type) {
        return smmu.stats().events().stream().filter(c -> c.code() == type).mapToLong(DeviceStats.CodeCount::count)
                .sum();
    }

    /** How many commands with {@code opcode} the device consumed. */
    long commandsOf(int opcode) {
        return smmu.stats().commands().stream().filter(c -> c.code() == opcode)
                .mapToLong(DeviceStats.CodeCount::count).sum();
    }

    /** GERROR as read through MMIO. */
    int gerror() {
        return (int) read32(SmmuV3Registers.GERROR);
    }

    /** GERRORN as read through MMIO. */
    int gerrorn() {
        return (int) read32(SmmuV3Registers.GERRORN);
    }

    /** Acknowledges every active global error as Linux's arm_smmu_gerror_handler does: GERRORN := GERROR. */
    void acknowledgeGerror() {
        write32(SmmuV3Registers.GERRORN, read32(SmmuV3Registers.GERROR));
    }

    /** The interrupts recorded from {@code source}. */
    List<InterruptRecord> interruptList(String source) {
        return interrupts.stream().filter(r -> r.source().equals(source)).toList();
    }

    // ------------------------------------------------------------------ command-queue helpers

    /**
     * Linux's recovery from a command error (arm_smmu_cmdq_skip_err, then the GERRORN write of
     * arm_smmu_gerror_handler): overwrites the entry CMDQ_CONS points at with {@code replacement} and acknowledges.
     */
    void replaceBadCommandAndAck(Command replacement) {
        long at = cmdqSlot(cmdqCons());
        w64(at, replacement.dw0());
        w64(at + 8, replacement.dw1());
        acknowledgeGerror();
    }

    /** CMDQ_CONS index and wrap (ERR dropped). */
    int cmdqConsPointer() {
        return QueuePointer.indexAndWrap(cmdqCons(), cmdqLog2);
    }

    /**
     * Points the leaf descriptor that maps {@code iova} in {@code pt} at {@code newPa}, every attribute kept,
     * without any invalidation: what a buggy (or not yet synchronised) driver leaves the SMMU to find.
     */
    void retarget(PageTable pt, long iova, long newPa) {
        int g = ((Arm64Lpae) pt.format()).granuleLg2();
        long slot = leafSlot(pt, iova);
        long mask = Bits.maskHiLo(47, g);
        w64(slot, (r64(slot) & ~mask) | (newPa & mask));
    }

    /** Clears the leaf descriptor that maps {@code iova} in {@code pt}, without any invalidation. */
    void clearLeaf(PageTable pt, long iova) {
        w64(leafSlot(pt, iova), 0);
    }

    /**
     * A stage-1 stream whose STE carries {@code vmid} in S2VMID (which tags stage-1-only TLB entries when stage 2
     * is implemented), translating through {@code pt} with {@code asid}; one-entry CD table, CFGI_STE issued.
     */
    Stage1Stream stage1Stream(int sid, int vmid, int asid, PageTable pt) {
        long cds = cdTable(0);
        writeCd(cds, 0, cdFor(pt, asid));
        installSte(sid, Ste.stage1(cds, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0).toBuilder().s2Vmid(vmid).build());
        return new Stage1Stream(sid, asid, pt, cds);
    }

    /** Expects a translation fault (the walk found nothing) for {@code iova}; drops the event it recorded. */
    void assertUnmapped(int sid, int ssid, long iova) {
        Translation t = translate(sid, ssid, iova, 0);
        assertThat(t.outcome()).as("translation of %s: %s", Bits.hex(iova), t).isNotEqualTo(Translation.Outcome.OK);
        assertThat(t.code()).as("fault code of %s", Bits.hex(iova)).isEqualTo(EventType.F_TRANSLATION);
        events();
    }

    /**
     * Writes raw entries ({@code dw0, dw1} pairs) from PROD on and moves CMDQ_PROD past all of them with one write,
     * as one batch of arm_smmu_cmdq_issue_cmdlist.
     */
    void submitWords(long... words) {
        assertThat(words.length % 2).as("whole entries").isZero();
        for (int i = 0; i < words.length; i += 2) {
            place(words[i], words[i + 1]);
        }
        write32(SmmuV3Registers.CMDQ_PROD, cmdqProd);
    }
}
