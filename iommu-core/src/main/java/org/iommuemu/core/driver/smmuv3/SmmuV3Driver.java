package org.iommuemu.core.driver.smmuv3;

import java.lang.System.Logger.Level;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.GuestMemoryExhaustedException;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.core.smmuv3.StreamTableBase;

/**
 * An Arm SMMUv3 driver modelled on Linux's {@code arm-smmu-v3}, talking to its SMMU only through a
 * {@link SmmuHost} (registers, memory, interrupts).
 *
 * <ol>
 *   <li>{@link #probe}: reads IDR0, IDR1, IDR3 and IDR5 into {@link SmmuV3Features} and refuses an SMMU it cannot
 *       drive ({@link SmmuV3DriverException.Kind#UNSUPPORTED_HARDWARE}).</li>
 *   <li>{@link #init}: allocates the command queue, the event queue and the stream table and brings the SMMU up in
 *       the order of Linux's {@code arm_smmu_device_reset}: GBPA.ABORT if the SMMU was left enabled; CR0 = 0;
 *       CR1 (queues and tables write-back, inner shareable) and CR2 (PTM, RECINVSID); STRTAB_BASE(_CFG);
 *       CMDQ_BASE/PROD/CONS and CR0.CMDQEN; CFGI_ALL, (TLBI_EL2_ALL with HYP,) TLBI_NSNH_ALL, each with a CMD_SYNC;
 *       EVENTQ_BASE/PROD/CONS and CR0.EVENTQEN; IRQ_CTRL = 0, the MSI address registers cleared (wired
 *       interrupts, as Linux without an MSI domain), IRQ_CTRL = GERROR | EVENTQ; GBPA.ABORT set (or cleared when
 *       bypass is allowed) through the UPDATE handshake; SMMUEN (with ATSCHK when ATS exists). Each CR0 and
 *       IRQ_CTRL write polls its ACK register, at most {@link SmmuV3DriverOptions#ackPolls} times.</li>
 *   <li>Commands: {@link #submit} (batches of up to 64 with one CMD_SYNC each, waited for by MSI or by CMDQ_CONS,
 *       command errors recovered; see {@link CommandQueue}).</li>
 *   <li>Events and errors: {@link #drainEvents}, {@link #handleGlobalErrors}, both called by
 *       {@link #handleInterrupt} and callable directly; results go to {@link SmmuV3Listener}s.</li>
 *   <li>Streams: {@link #writeSte} (safe update, level-2 tables on demand), {@link #bypass}, {@link #abort}.</li>
 * </ol>
 *
 * <p>Domains, their CD tables and invalidation on behalf of the IOMMU API are {@link SmmuV3Domains}' (ATS per stream
 * too: {@link SmmuV3Domains#enableAts}). Not yet here: the PRI queue.
 */
public final class SmmuV3Driver {
    private static final System.Logger log = System.getLogger(SmmuV3Driver.class.getName());

    private final SmmuHost host;
    private final SmmuV3DriverOptions options;
    private final SmmuV3Features features;
    private final SmmuV3Listeners listeners = new SmmuV3Listeners();

    private volatile CommandQueue cmdq;
    private volatile EventQueue evtq;
    private volatile StreamTable strtab;
    private final AtomicLong globalErrors = new AtomicLong();

    private SmmuV3Driver(SmmuHost host, SmmuV3DriverOptions options, SmmuV3Features features) {
        this.host = host;
        this.options = options;
        this.features = features;
    }

    // ------------------------------------------------------------------ probe

    /**
     * Reads the ID registers and checks that the SMMU can be driven. Touches nothing but the ID registers.
     *
     * @throws SmmuV3DriverException {@link SmmuV3DriverException.Kind#UNSUPPORTED_HARDWARE} with every reason
     *     ({@link SmmuV3Features#refusal()})
     */
    public static SmmuV3Driver probe(SmmuHost host, SmmuV3DriverOptions options) {
        Objects.requireNonNull(host, "host");
        Objects.requireNonNull(options, "options");
        SmmuV3Features f = SmmuV3Features.fromIdRegisters(read32(host, SmmuRegs.IDR0), read32(host, SmmuRegs.IDR1),
                read32(host, SmmuRegs.IDR3), read32(host, SmmuRegs.IDR5));
        String refusal = f.refusal();
        if (refusal != null) {
            throw new SmmuV3DriverException(SmmuV3DriverException.Kind.UNSUPPORTED_HARDWARE,
                    "SMMUv3 not usable: " + refusal);
        }
        log.log(Level.DEBUG, () -> "SMMUv3 probed: " + f.names());
        return new SmmuV3Driver(host, options, f);
    }

    private static int read32(SmmuHost host, long offset) {
        return (int) host.mmioRead(offset, 4);
    }

    /** The host the driver reaches its SMMU through. */
    public SmmuHost host() {
        return host;
    }

    public SmmuV3Features features() {
        return features;
    }

    public SmmuV3DriverOptions options() {
        return options;
    }

    // ------------------------------------------------------------------ init

    /**
     * Allocates the queues and the stream table and enables the SMMU (see the class comment). Once only.
     *
     * @throws SmmuV3DriverException ACK_TIMEOUT when a control register does not acknowledge, QUEUE_TIMEOUT when
     *     the first invalidations do not complete, MEMORY when the allocator runs out, BAD_STATE when called twice
     */
    public synchronized void init() {
        if (cmdq != null) {
            throw new SmmuV3DriverException(SmmuV3DriverException.Kind.BAD_STATE, "SMMUv3 driver already initialised");
        }
        PageAllocator alloc = host.allocator();
        int cmdqLog2 = Math.min(features.cmdqLog2(), options.cmdqLog2());
        int eventqLog2 = Math.min(features.eventqLog2(), options.eventqLog2());
        int sidBits = Math.min(features.sidBits(), options.maxSidBits());
        boolean msiPolling = options.msiPolling() && features.msiPolling();
        CommandQueue commands;
        EventQueue events;
        StreamTable streams;
        try {
            long cmdqBase = alloc.allocBytes((long) QueuePointer.CMDQ_ENTRY_SIZE << cmdqLog2, "smmu-cmdq");
            long syncWord = msiPolling ? alloc.allocPages(0, "smmu-cmdq-sync") : 0;
            commands = new CommandQueue(host, listeners, cmdqBase, cmdqLog2, msiPolling, syncWord, features.sev(),
                    features.ats(), options.queuePolls());
            long eventqBase = alloc.allocBytes((long) QueuePointer.EVENTQ_ENTRY_SIZE << eventqLog2, "smmu-eventq");
            events = new EventQueue(host, listeners, eventqBase, eventqLog2);
            boolean twoLevel = features.twoLevelStreamTable() && sidBits > StreamTableBase.LINUX_SPLIT;
            streams = new StreamTable(host.memory(), alloc, commands, initialSte(), sidBits, twoLevel);
        } catch (GuestMemoryExhaustedException e) {
            throw new SmmuV3DriverException(SmmuV3DriverException.Kind.MEMORY,
                    "no memory for the SMMUv3 queues and stream table: " + e.getMessage(), e);
        }
        host.onInterrupt(this::handleInterrupt);

        if (Bits.bit(read32(SmmuRegs.CR0), SmmuRegs.CR0_SMMUEN)) {
            log.log(Level.WARNING, "SMMU enabled at init: aborting incoming traffic while it is reset");
            updateGbpa(1 << SmmuRegs.GBPA_ABORT, 0);
        }
        writeAcked(SmmuRegs.CR0, SmmuRegs.CR0ACK, "CR0", 0);

        write32(SmmuRegs.CR1, cr1());
        write32(SmmuRegs.CR2, 1 << SmmuRegs.CR2_PTM | 1 << SmmuRegs.CR2_RECINVSID);

        host.mmioWrite(SmmuRegs.STRTAB_BASE, 8, streams.baseRegister());
        write32(SmmuRegs.STRTAB_BASE_CFG, streams.cfgRegister());

        host.mmioWrite(SmmuRegs.CMDQ_BASE, 8, commands.baseRegister());
        write32(SmmuRegs.CMDQ_PROD, 0);
        write32(SmmuRegs.CMDQ_CONS, 0);
        int enables = 1 << SmmuRegs.CR0_CMDQEN;
        writeAcked(SmmuRegs.CR0, SmmuRegs.CR0ACK, "CR0", enables);
        this.cmdq = commands;

        commands.submit(List.of(Command.cfgiAll()));
        if (features.hyp()) {
            commands.submit(List.of(Command.tlbiEl2All()));
        }
        commands.submit(List.of(Command.tlbiNsnhAll()));

        host.mmioWrite(SmmuRegs.EVENTQ_BASE, 8, events.baseRegister());
        write32(SmmuRegs.EVENTQ_PROD, 0);
        write32(SmmuRegs.EVENTQ_CONS, 0);
        enables |= 1 << SmmuRegs.CR0_EVENTQEN;
        writeAcked(SmmuRegs.CR0, SmmuRegs.CR0ACK, "CR0", enables);
        this.evtq = events;
        this.strtab = streams;

        writeAcked(SmmuRegs.IRQ_CTRL, SmmuRegs.IRQ_CTRLACK, "IRQ_CTRL", 0);
        if (features.msi()) {
            host.mmioWrite(SmmuRegs.GERROR_IRQ_CFG0, 8, 0);
            host.mmioWrite(SmmuRegs.EVENTQ_IRQ_CFG0, 8, 0);
            if (features.pri()) {
                host.mmioWrite(SmmuRegs.PRIQ_IRQ_CFG0, 8, 0);
            }
        }
        writeAcked(SmmuRegs.IRQ_CTRL, SmmuRegs.IRQ_CTRLACK, "IRQ_CTRL",
                1 << SmmuRegs.IRQ_CTRL_GERROR_IRQEN | 1 << SmmuRegs.IRQ_CTRL_EVENTQ_IRQEN);

        if (options.disableBypass()) {
            updateGbpa(1 << SmmuRegs.GBPA_ABORT, 0);
        } else {
            updateGbpa(0, 1 << SmmuRegs.GBPA_ABORT);
        }
        if (features.ats()) {
            enables |= 1 << SmmuRegs.CR0_ATSCHK;
        }
        enables |= 1 << SmmuRegs.CR0_SMMUEN;
        writeAcked(SmmuRegs.CR0, SmmuRegs.CR0ACK, "CR0", enables);
    }

    /** CR1 as Linux writes it: queues and tables write-back cacheable (inner and outer), inner shareable. */
    static int cr1() {
        long v = 0;
        v = Bits.deposit(v, SmmuRegs.CR1_TABLE_SH, SmmuRegs.CR1_FIELD_WIDTH, Encodings.SH_ISH);
        v = Bits.deposit(v, SmmuRegs.CR1_TABLE_OC, SmmuRegs.CR1_FIELD_WIDTH, SmmuRegs.CR1_CACHE_WB);
        v = Bits.deposit(v, SmmuRegs.CR1_TABLE_IC, SmmuRegs.CR1_FIELD_WIDTH, SmmuRegs.CR1_CACHE_WB);
        v = Bits.deposit(v, SmmuRegs.CR1_QUEUE_SH, SmmuRegs.CR1_FIELD_WIDTH, Encodings.SH_ISH);
        v = Bits.deposit(v, SmmuRegs.CR1_QUEUE_OC, SmmuRegs.CR1_FIELD_WIDTH, SmmuRegs.CR1_CACHE_WB);
        v = Bits.deposit(v, SmmuRegs.CR1_QUEUE_IC, SmmuRegs.CR1_FIELD_WIDTH, SmmuRegs.CR1_CACHE_WB);
        return (int) v;
    }

    /** The STE every stream starts with: abort, or bypass when bypass is allowed (Linux's initial STEs). */
    private Ste initialSte() {
        return options.disableBypass() ? Ste.abort() : bypassSte();
    }

    private Ste bypassSte() {
        Ste bypass = Ste.bypass();
        return features.attrTypesOverride() ? bypass.toBuilder().shcfg(Ste.SHCFG_INCOMING).build() : bypass;
    }

    /**
     * Disables the SMMU (CR0 = 0, acknowledged): translation, queues and interrupts stop, and incoming traffic
     * aborts or bypasses as GBPA says. The driver's memory stays allocated.
     */
    public synchronized void disable() {
        writeAcked(SmmuRegs.CR0, SmmuRegs.CR0ACK, "CR0", 0);
    }

    // ------------------------------------------------------------------ control-register protocol

    /** Writes {@code reg} and polls {@code ack} until it reads the same value, at most ackPolls times. */
    private void writeAcked(long reg, long ack, String name, int value) {
        write32(reg, value);
        int last = 0;
        for (int i = 0; i < options.ackPolls(); i++) {
            last = read32(ack);
            if (last == value) {
                return;
            }
            Thread.onSpinWait();
        }
        throw new SmmuV3DriverException(SmmuV3DriverException.Kind.ACK_TIMEOUT,
                name + "ACK did not acknowledge " + name + "=0x" + Integer.toHexString(value) + " after "
                        + options.ackPolls() + " polls (last read 0x" + Integer.toHexString(last) + ")");
    }

    /**
     * Linux's {@code arm_smmu_update_gbpa}: waits for UPDATE to clear, writes the value with {@code set} bits set
     * and {@code clear} bits cleared together with UPDATE, and waits for UPDATE to clear again.
     */
    private void updateGbpa(int set, int clear) {
        int reg = waitGbpaUpdated("before the update");
        write32(SmmuRegs.GBPA, (reg & ~clear) | set | 1 << SmmuRegs.GBPA_UPDATE);
        waitGbpaUpdated("after writing 0x" + Integer.toHexString((reg & ~clear) | set) + " with UPDATE");
    }

    private int waitGbpaUpdated(String when) {
        int reg = 0;
        for (int i = 0; i < options.ackPolls(); i++) {
            reg = read32(SmmuRegs.GBPA);
            if (!Bits.bit(Integer.toUnsignedLong(reg), SmmuRegs.GBPA_UPDATE)) {
                return reg;
            }
            Thread.onSpinWait();
        }
        throw new SmmuV3DriverException(SmmuV3DriverException.Kind.ACK_TIMEOUT,
                "GBPA.UPDATE did not clear " + when + " after " + options.ackPolls() + " polls (GBPA=0x"
                        + Integer.toHexString(reg) + ")");
    }

    private int read32(long offset) {
        return (int) host.mmioRead(offset, 4);
    }

    private void write32(long offset, int value) {
        host.mmioWrite(offset, 4, Integer.toUnsignedLong(value));
    }

    // ------------------------------------------------------------------ commands

    /**
     * Issues {@code commands} in order and returns when all have completed: batches of at most 64 (fewer with a
     * small queue), each followed by a CMD_SYNC. An empty list issues a CMD_SYNC alone. Thread-safe.
     *
     * @throws SmmuV3DriverException QUEUE_TIMEOUT if the queue stays full or a CMD_SYNC does not complete
     */
    public void submit(List<Command> commands) {
        cmdq().submit(commands);
    }

    /** {@link #submit(List)} of the arguments. */
    public void submit(Command... commands) {
        cmdq().submit(Arrays.asList(commands));
    }

    /** Issues a CMD_SYNC alone and waits for it. */
    public void sync() {
        cmdq().sync();
    }

    /**
     * Issues one command given as raw words, without {@link Command}'s validation, followed by a CMD_SYNC: a hook
     * for tests and fault campaigns (an unknown opcode, a reserved encoding) to exercise command-error recovery.
     */
    public void submitRaw(long dw0, long dw1) {
        cmdq().submitRaw(dw0, dw1);
    }

    /** The command queue, for the domain layer's batched invalidations; throws before {@link #init}. */
    CommandQueue commandQueue() {
        return cmdq();
    }

    private CommandQueue cmdq() {
        CommandQueue q = cmdq;
        if (q == null) {
            throw notInitialised();
        }
        return q;
    }

    private static SmmuV3DriverException notInitialised() {
        return new SmmuV3DriverException(SmmuV3DriverException.Kind.BAD_STATE, "SMMUv3 driver not initialised (init)");
    }

    // ------------------------------------------------------------------ interrupts, events, errors

    /**
     * The interrupt handler the host calls: drains events, handles global errors; CMD_SYNC and PRI need nothing.
     *
     * <p>An event interrupt taken on a thread that is draining the event queue already (a host delivering it
     * after one of the drain's own register accesses) is left to that drain, which reads EVENTQ_PROD again
     * before it stops. A GERROR interrupt is handled even inside a command submission: recovery takes the same
     * re-entrant lock.
     */
    public void handleInterrupt(SmmuHost.Irq irq) {
        switch (irq) {
            case EVENTQ -> {
                EventQueue q = evtq;
                if (q != null && !Thread.holdsLock(q)) {
                    q.drain();
                }
            }
            case GERROR -> {
                if (cmdq != null) {
                    handleGlobalErrors();
                }
            }
            case CMD_SYNC, PRIQ -> { }
        }
    }

    /**
     * Reads every pending event record, decodes it and hands it to the listeners; notices, reports and
     * acknowledges an overflow. Returns the number of records read.
     */
    public int drainEvents() {
        EventQueue q = evtq;
        if (q == null) {
            throw notInitialised();
        }
        return q.drain();
    }

    /**
     * Handles the active global errors (GERROR XOR GERRORN): reports each to the listeners, recovers a command
     * error ({@link CommandQueue}) and acknowledges them all through GERRORN. Returns the active errors found, as a
     * mask of {@link Gerror} bits.
     */
    public int handleGlobalErrors() {
        CommandQueue q = cmdq();
        int gerror = read32(SmmuRegs.GERROR);
        int gerrorn = read32(SmmuRegs.GERRORN);
        int active = Gerror.active(gerror, gerrorn);
        if (active == 0) {
            return 0;
        }
        for (int bit = 0; bit < Integer.SIZE; bit++) {
            if ((active & 1 << bit) != 0) {
                int b = bit;
                log.log(Level.WARNING, () -> "SMMU global error " + Gerror.name(b));
                listeners.globalError(bit);
            }
        }
        globalErrors.addAndGet(Integer.bitCount(active));
        int others = active & ~(1 << Gerror.CMDQ_ERR);
        if (others != 0) {
            // acknowledge by toggling exactly the bits reported; CMDQ_ERR is acknowledged by the recovery
            write32(SmmuRegs.GERRORN, read32(SmmuRegs.GERRORN) ^ others);
        }
        if ((active & 1 << Gerror.CMDQ_ERR) != 0) {
            q.recoverError();
        }
        return active;
    }

    /** Adds a listener for events and errors; closing the handle removes it. */
    public AutoCloseable addListener(SmmuV3Listener listener) {
        return listeners.add(Objects.requireNonNull(listener, "listener"));
    }

    // ------------------------------------------------------------------ stream table

    /**
     * Installs {@code ste} for {@code streamId} without the SMMU ever seeing a torn entry, allocating the
     * stream's level-2 table first in a 2-level stream table, and invalidates the SMMU's cached copy (CFGI_STE,
     * CMD_SYNC). See {@link StreamTable} for the order of the writes.
     *
     * @throws SmmuV3DriverException BAD_ARGUMENT for a StreamID outside the table
     */
    public void writeSte(int streamId, Ste ste) {
        streams().write(streamId, Objects.requireNonNull(ste, "ste"));
    }

    /** Lets the stream's traffic through untranslated (a bypass STE; SHCFG incoming with ATTR_TYPES_OVR). */
    public void bypass(int streamId) {
        writeSte(streamId, bypassSte());
    }

    /** Aborts the stream's traffic (an abort STE: no translation, no event). */
    public void abort(int streamId) {
        writeSte(streamId, Ste.abort());
    }

    /** The STE of {@code streamId} in memory, or null when its level-2 table does not exist yet. */
    public Ste readSte(int streamId) {
        return streams().read(streamId);
    }

    private StreamTable streams() {
        StreamTable t = strtab;
        if (t == null) {
            throw notInitialised();
        }
        return t;
    }

    // ------------------------------------------------------------------ state

    /**
     * What the driver set up: queue sizes, the stream table's format and reach, how CMD_SYNCs are waited for.
     *
     * @param cmdqLog2 command queue entries, log2
     * @param eventqLog2 event queue records, log2
     * @param maxBatch commands per CMD_SYNC
     * @param msiPolling CMD_SYNC completion polled through its MSI write (else through CMDQ_CONS)
     * @param twoLevelStreamTable the stream table is 2-level (SPLIT 8)
     * @param streamTableSidBits StreamID bits the stream table covers
     * @param streamTableBase the stream table (or its L1 table)
     */
    public record Layout(int cmdqLog2, int eventqLog2, int maxBatch, boolean msiPolling, boolean twoLevelStreamTable,
            int streamTableSidBits, long streamTableBase) {}

    /** The layout {@link #init} chose. */
    public Layout layout() {
        CommandQueue q = cmdq();
        StreamTable t = streams();
        return new Layout(q.log2(), evtq.log2(), q.maxBatch(), q.msiPolling(), t.twoLevel(), t.sidBits(), t.base());
    }

    /**
     * Counters.
     *
     * @param commands commands issued (CMD_SYNCs not included)
     * @param syncs CMD_SYNCs issued (one per batch)
     * @param commandErrors command errors recovered
     * @param events event records drained
     * @param eventOverflows event-queue overflows noticed
     * @param globalErrors global errors handled
     * @param l2StreamTables level-2 stream tables allocated
     */
    public record Stats(long commands, long syncs, long commandErrors, long events, long eventOverflows,
            long globalErrors, int l2StreamTables) {}

    /** The counters now; zeros before {@link #init}. */
    public Stats stats() {
        CommandQueue q = cmdq;
        EventQueue e = evtq;
        StreamTable t = strtab;
        long g = globalErrors.get();
        return new Stats(q == null ? 0 : q.commands(), q == null ? 0 : q.syncs(), q == null ? 0 : q.commandErrors(),
                e == null ? 0 : e.events(), e == null ? 0 : e.overflows(), g, t == null ? 0 : t.l2TablesAllocated());
    }
}
