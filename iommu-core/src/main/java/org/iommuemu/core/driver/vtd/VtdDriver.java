package org.iommuemu.core.driver.vtd;

import java.lang.System.Logger.Level;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.GuestMemoryExhaustedException;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;

/**
 * An Intel VT-d DMA-remapping driver modelled on Linux's {@code intel-iommu} ({@code drivers/iommu/intel}), talking
 * to one remapping unit only through a {@link VtdHost} (registers, memory, interrupts).
 *
 * <ol>
 *   <li>{@link #probe}: reads VER, CAP and ECAP into {@link VtdFeatures} and refuses a unit it cannot drive
 *       ({@link VtdDriverException.Kind#UNSUPPORTED_HARDWARE}, every reason listed).</li>
 *   <li>{@link #init}: allocates the root table, the invalidation queue and its status words, and brings the unit up:
 *       <ol>
 *         <li>translation disabled if it was left on (GCMD.TE cleared, GSTS.TES polled), and queued invalidation
 *             likewise (after IQH reached IQT, as Linux's {@code dmar_disable_qi});</li>
 *         <li>the fault event: FEDATA, FEADDR, FEUADDR from the options, then FECTL.IM cleared (Linux's
 *             {@code dmar_msi_unmask}); IEDATA/IEADDR/IEUADDR are programmed but IECTL stays masked, since the driver
 *             polls status words and never asks for completion interrupts (as Linux); faults left from before are
 *             drained;</li>
 *         <li>the root table (4 KB, zeroed) in RTADDR with TTM legacy or scalable, GCMD.SRTP, GSTS.RTPS polled;</li>
 *         <li>queued invalidation: IQT = 0, IQA (256-bit descriptors, DW=1, whenever ECAP.SMTS, as Linux, even in legacy
 *             mode; QS for the queue size), GCMD.QIE, GSTS.QIES polled;</li>
 *         <li>global context-cache, (scalable mode:) global PASID-cache and global IOTLB invalidations, in one batch
 *             with one invalidation wait (skipped when CAP.ESRTPS says SRTP did it, as Linux's
 *             {@code iommu_set_root_entry});</li>
 *         <li>a write-buffer flush when CAP.RWBF (GCMD.WBF, GSTS.WBFS polled clear);</li>
 *         <li>GCMD.TE, GSTS.TES polled.</li>
 *       </ol>
 *       Linux's {@code init_dmars} enables queued invalidation before it sets the root table and programs the fault
 *       event after; the order here sets the fault event up first so that a fault during bring-up is reported, and
 *       issues the same invalidations after SRTP.</li>
 *   <li>GCMD protocol ({@code spec/VTD.md} §1): every write is GSTS's persistent bits (TES, QIES, IRES, AFLS, CFIS)
 *       plus the one command; the command's status bit is polled at most {@link VtdDriverOptions#ackPolls} times, and
 *       a command that is not acknowledged fails with {@link VtdDriverException.Kind#ACK_TIMEOUT} naming GSTS and the
 *       values.</li>
 *   <li>Invalidation: {@link #submit} and {@link #sync} through the {@code InvalidationQueue} (batches, one
 *       invalidation wait each, errors recovered as Linux's {@code qi_check_fault}).</li>
 *   <li>Faults: {@link #drainFaults}, called on each fault event and callable directly, walks the fault recording
 *       registers from FSTS.FRI round-robin while F=1, decodes each into a {@link VtdFault}, clears it (F, write 1) and
 *       reports it to the {@link VtdListener}s; then clears FSTS.PFO/PPF and counts overflows. As Linux's
 *       {@code dmar_fault}.</li>
 * </ol>
 *
 * <p>Root, context and PASID tables are kept by {@code ContextTables} and {@code PasidTable}; domains, attachment and
 * their invalidations by {@link VtdDomains}. Not modelled: register-based invalidation (CCMD/IOTLB registers; a unit
 * without ECAP.QI is refused), interrupt remapping, device TLBs (ATS) and page requests, advanced fault logging,
 * protected memory regions, pass-through and nested domains, copying tables left by a previous kernel (kdump).
 */
public final class VtdDriver {
    private static final System.Logger log = System.getLogger(VtdDriver.class.getName());

    /** GSTS bits that mirror persistent enables, written back with every GCMD command. */
    static final int GSTS_PERSISTENT = 1 << VtdRegs.GCMD_TE | 1 << VtdRegs.GCMD_QIE | 1 << VtdRegs.GCMD_IRE
            | 1 << VtdRegs.GCMD_EAFL | 1 << VtdRegs.GCMD_CFI;

    private final VtdHost host;
    private final VtdDriverOptions options;
    private final VtdFeatures features;
    private final boolean scalable;
    private final VtdListeners listeners = new VtdListeners();
    private final Object faultLock = new Object();

    private volatile InvalidationQueue queue;
    private volatile ContextTables tables;
    private final AtomicLong faults = new AtomicLong();
    private final AtomicLong faultOverflows = new AtomicLong();

    private VtdDriver(VtdHost host, VtdDriverOptions options, VtdFeatures features) {
        this.host = host;
        this.options = options;
        this.features = features;
        this.scalable = options.scalableMode() && features.scalableUsable();
    }

    // ------------------------------------------------------------------ probe

    /**
     * Reads VER, CAP and ECAP and checks that the unit can be driven. Touches nothing else.
     *
     * @throws VtdDriverException UNSUPPORTED_HARDWARE with every reason ({@link VtdFeatures#refusal})
     */
    public static VtdDriver probe(VtdHost host, VtdDriverOptions options) {
        Objects.requireNonNull(host, "host");
        Objects.requireNonNull(options, "options");
        VtdFeatures f = VtdFeatures.fromRegisters((int) host.mmioRead(VtdRegs.VER, 4), host.mmioRead(VtdRegs.CAP, 8),
                host.mmioRead(VtdRegs.ECAP, 8));
        String refusal = f.refusal(options.scalableMode());
        if (refusal != null) {
            throw new VtdDriverException(VtdDriverException.Kind.UNSUPPORTED_HARDWARE, "VT-d unit not usable: " + refusal);
        }
        log.log(Level.DEBUG, () -> "VT-d probed: " + f.names());
        return new VtdDriver(host, options, f);
    }

    public VtdHost host() {
        return host;
    }

    public VtdFeatures features() {
        return features;
    }

    public VtdDriverOptions options() {
        return options;
    }

    /** Whether the driver uses scalable-mode tables (decided at probe: the option and the unit's support). */
    public boolean scalableMode() {
        return scalable;
    }

    /** Whether the queue uses 256-bit descriptors: whenever the unit has ECAP.SMTS, as Linux. */
    public boolean wideDescriptors() {
        return features.smts();
    }

    // ------------------------------------------------------------------ init

    /**
     * Allocates the root table and the invalidation queue and enables translation (see the class comment). Once only.
     *
     * @throws VtdDriverException ACK_TIMEOUT when a GCMD command is not acknowledged, QUEUE_TIMEOUT when the first
     *     invalidations do not complete, MEMORY when the allocator runs out, BAD_STATE when called twice
     */
    public synchronized void init() {
        if (queue != null) {
            throw new VtdDriverException(VtdDriverException.Kind.BAD_STATE, "VT-d driver already initialised");
        }
        PageAllocator alloc = host.allocator();
        boolean wide = wideDescriptors();
        int entriesLog2 = options.queueEntriesLog2();
        if (entriesLog2 - (wide ? 7 : 8) < 0 || entriesLog2 - (wide ? 7 : 8) > 7) {
            throw new VtdDriverException(VtdDriverException.Kind.BAD_ARGUMENT, "an invalidation queue of 2^" + entriesLog2
                    + " " + (wide ? 256 : 128) + "-bit descriptors cannot be encoded: IQA.QS gives 2^(QS+"
                    + (wide ? 7 : 8) + ") entries, QS 0..7");
        }
        ContextTables t;
        InvalidationQueue q;
        try {
            t = new ContextTables(host.memory(), alloc, scalable);
            long qBase = alloc.allocBytes(InvalidationQueue.bytes(entriesLog2, wide), "vtd-qi");
            long status = alloc.allocBytes(4L << entriesLog2, "vtd-qi-status");
            q = new InvalidationQueue(host, listeners, qBase, entriesLog2, wide, status, features.dt(),
                    options.queuePolls());
        } catch (GuestMemoryExhaustedException e) {
            throw new VtdDriverException(VtdDriverException.Kind.MEMORY,
                    "no memory for the VT-d root table and invalidation queue: " + e.getMessage(), e);
        }
        host.onInterrupt(this::handleInterrupt);

        int gsts = readGsts();
        if (Bits.bit(gsts, VtdRegs.GCMD_TE)) {
            log.log(Level.WARNING, "VT-d translation was enabled at init: disabling it while the unit is reset");
            setEnable(VtdRegs.GCMD_TE, false, "TE");
        }
        if (Bits.bit(readGsts(), VtdRegs.GCMD_QIE)) {
            disableQueuedInvalidation();
        }

        // fault event: MSI address/data, then unmask
        write32(VtdRegs.FEDATA, options.faultMsiData());
        write32(VtdRegs.FEADDR, (int) options.faultMsiAddress());
        write32(VtdRegs.FEUADDR, (int) (options.faultMsiAddress() >>> 32));
        write32(VtdRegs.IEDATA, options.completionMsiData());
        write32(VtdRegs.IEADDR, (int) options.completionMsiAddress());
        write32(VtdRegs.IEUADDR, (int) (options.completionMsiAddress() >>> 32));
        write32(VtdRegs.FECTL, 0);
        this.tables = t;
        drainFaults();

        // root table
        host.mmioWrite(VtdRegs.RTADDR, 8, t.rtaddrRegister());
        oneShot(VtdRegs.GCMD_SRTP, true, "SRTP");

        // queued invalidation
        host.mmioWrite(VtdRegs.IQT, 8, 0);
        host.mmioWrite(VtdRegs.IQA, 8, q.iqaRegister());
        setEnable(VtdRegs.GCMD_QIE, true, "QIE");
        this.queue = q;

        if (!features.esrtps()) {
            synchronized (q) {
                q.openBatch();
                q.descriptor(InvDesc.contextCache(VtdRegs.CC_GLOBAL, 0, 0, 0), 0);
                if (scalable) {
                    q.descriptor(InvDesc.pasidCache(InvDesc.PC_GLOBAL, 0, 0), 0);
                }
                q.descriptor(InvDesc.iotlb(VtdRegs.IOTLB_GLOBAL, 0, features.drd(), features.dwd()), 0);
                q.closeBatch();
            }
        }
        flushWriteBuffer();
        setEnable(VtdRegs.GCMD_TE, true, "TE");
        log.log(Level.DEBUG, () -> "VT-d enabled: " + (scalable ? "scalable" : "legacy") + " mode, root table "
                + Bits.hex(t.root()) + ", " + (1 << entriesLog2) + "-entry invalidation queue");
    }

    /**
     * Linux's {@code dmar_disable_qi}: waits (bounded) until the unit has fetched everything (IQH == IQT), then clears
     * QIE and polls QIES clear.
     */
    private void disableQueuedInvalidation() {
        long iqh = 0;
        long iqt = 0;
        for (int i = 0; i < options.queuePolls(); i++) {
            iqh = host.mmioRead(VtdRegs.IQH, 8);
            iqt = host.mmioRead(VtdRegs.IQT, 8);
            if (iqh == iqt) {
                break;
            }
            Thread.onSpinWait();
        }
        if (iqh != iqt) {
            log.log(Level.WARNING, "VT-d queued invalidation left enabled with IQH " + Bits.hex(iqh) + " != IQT "
                    + Bits.hex(iqt) + "; disabling it anyway");
        }
        setEnable(VtdRegs.GCMD_QIE, false, "QIE");
    }

    /**
     * Disables translation (GCMD.TE cleared, TES polled): DMA passes untranslated. Queued invalidation stays enabled
     * and the driver's memory stays allocated.
     */
    public synchronized void disable() {
        setEnable(VtdRegs.GCMD_TE, false, "TE");
    }

    // ------------------------------------------------------------------ GCMD protocol

    private int readGsts() {
        return (int) host.mmioRead(VtdRegs.GSTS, 4);
    }

    /** A persistent enable (TE, QIE, ...): GSTS's persistent bits with {@code bit} set or cleared; polls until GSTS agrees. */
    private void setEnable(int bit, boolean on, String name) {
        int persistent = readGsts() & GSTS_PERSISTENT;
        int command = on ? persistent | 1 << bit : persistent & ~(1 << bit);
        write32(VtdRegs.GCMD, command);
        pollGsts(bit, on, name, command);
    }

    /** A one-shot command (SRTP, WBF...): persistent bits plus {@code bit}; polls its status until it reads {@code doneWhenSet}. */
    private void oneShot(int bit, boolean doneWhenSet, String name) {
        int command = readGsts() & GSTS_PERSISTENT | 1 << bit;
        write32(VtdRegs.GCMD, command);
        pollGsts(bit, doneWhenSet, name, command);
    }

    private void pollGsts(int bit, boolean want, String name, int command) {
        int gsts = 0;
        for (int i = 0; i < options.ackPolls(); i++) {
            gsts = readGsts();
            if (Bits.bit(Integer.toUnsignedLong(gsts), bit) == want) {
                return;
            }
            Thread.onSpinWait();
        }
        throw new VtdDriverException(VtdDriverException.Kind.ACK_TIMEOUT, "GSTS bit " + bit + " (status of GCMD."
                + name + ") did not become " + (want ? 1 : 0) + " after " + options.ackPolls() + " polls (GCMD written 0x"
                + Integer.toHexString(command) + ", GSTS last read 0x" + Integer.toHexString(gsts) + ")");
    }

    /**
     * Flushes the unit's write buffer when CAP.RWBF requires it (Linux's {@code iommu_flush_write_buffer}): GCMD.WBF,
     * then GSTS.WBFS polled clear. Does nothing on units without RWBF.
     */
    void flushWriteBuffer() {
        if (features.rwbf()) {
            synchronized (this) {
                oneShot(VtdRegs.GCMD_WBF, false, "WBF");
            }
        }
    }

    private void write32(long offset, int value) {
        host.mmioWrite(offset, 4, Integer.toUnsignedLong(value));
    }

    // ------------------------------------------------------------------ invalidation

    /**
     * Issues descriptors given as {@code qw0, qw1} pairs (qw2/qw3 zero), in batches each ended by an invalidation
     * wait, and returns when all have completed. An empty call issues a wait alone. No validation: a hook for tests and
     * fault campaigns as well as the domain layer. Thread-safe.
     *
     * @throws VtdDriverException QUEUE_TIMEOUT, QUEUE_ERROR (see {@code InvalidationQueue})
     */
    public void submit(long... qwords) {
        InvalidationQueue q = queue();
        if (qwords.length == 0) {
            q.sync();
        } else {
            q.submit(qwords);
        }
    }

    /** Issues an invalidation wait alone and waits for it. */
    public void sync() {
        queue().sync();
    }

    InvalidationQueue queue() {
        InvalidationQueue q = queue;
        if (q == null) {
            throw notInitialised();
        }
        return q;
    }

    ContextTables tables() {
        ContextTables t = tables;
        if (t == null) {
            throw notInitialised();
        }
        return t;
    }

    private static VtdDriverException notInitialised() {
        return new VtdDriverException(VtdDriverException.Kind.BAD_STATE, "VT-d driver not initialised (init)");
    }

    // ------------------------------------------------------------------ interrupts and faults

    /**
     * The interrupt handler the host calls: a fault event drains the fault recording registers (unless this thread is
     * draining already: that drain reads FSTS again before it stops); invalidation completion needs nothing (waits are
     * polled). Invalidation-queue errors, which also raise the fault event, are handled by the waiting submitter.
     */
    public void handleInterrupt(VtdHost.Irq irq) {
        if (irq == VtdHost.Irq.FAULT_EVENT && tables != null && !Thread.holdsLock(faultLock)) {
            drainFaults();
        }
    }

    /**
     * Reads every recorded fault (from FSTS.FRI, round-robin, while F=1), clears each and reports it to the listeners;
     * then clears FSTS.PFO and PPF, reporting an overflow (PFO). Repeats while FSTS.PPF is still set (a fault recorded
     * meanwhile), at most four rounds of all the registers. Returns the number of faults read.
     */
    public int drainFaults() {
        tables();
        synchronized (faultLock) {
            int n = features.faultRecords();
            long fro = features.faultRecordOffset();
            int read = 0;
            for (int round = 0; round < 4; round++) {
                int fsts = (int) host.mmioRead(VtdRegs.FSTS, 4);
                boolean ppf = Bits.bit(fsts, VtdRegs.FSTS_PPF);
                boolean pfo = Bits.bit(fsts, VtdRegs.FSTS_PFO);
                if (!ppf && !pfo) {
                    break;
                }
                if (ppf) {
                    int index = (int) Bits.extract(fsts, VtdRegs.FSTS_FRI, 8) % n;
                    for (int k = 0; k < n; k++) {
                        long at = fro + 16L * index;
                        long hi = host.mmioRead(at + 8, 8);
                        if (!Bits.bit(hi, VtdRegs.FRCD_HI_F)) {
                            break;
                        }
                        long lo = host.mmioRead(at, 8);
                        host.mmioWrite(at + 12, 4, 1L << (VtdRegs.FRCD_HI_F - 32));
                        VtdFault fault = VtdFault.decode(index, lo, hi);
                        read++;
                        faults.incrementAndGet();
                        log.log(Level.DEBUG, () -> "VT-d " + fault);
                        listeners.fault(fault);
                        index = (index + 1) % n;
                    }
                }
                if (pfo) {
                    faultOverflows.incrementAndGet();
                    log.log(Level.WARNING, "VT-d primary fault overflow (FSTS.PFO): faults were dropped");
                    listeners.faultOverflow();
                }
                // PFO and PPF (PPF is read-only: it follows the F bits) and the legacy PRO bit, as Linux writes them
                host.mmioWrite(VtdRegs.FSTS, 4, 1L << VtdRegs.FSTS_PFO | 1L << VtdRegs.FSTS_PPF | 1L << 7);
            }
            return read;
        }
    }

    /** Adds a listener for faults and queue errors; closing the handle removes it. */
    public AutoCloseable addListener(VtdListener listener) {
        return listeners.add(Objects.requireNonNull(listener, "listener"));
    }

    // ------------------------------------------------------------------ state

    /**
     * What {@link #init} set up.
     *
     * @param scalable scalable-mode tables (RTADDR.TTM=01)
     * @param rootTable the root table's address
     * @param queueBase the invalidation queue's address
     * @param queueEntriesLog2 log2 of its descriptors
     * @param wideDescriptors 256-bit descriptors (IQA.DW=1)
     * @param maxBatch descriptors per invalidation wait
     */
    public record Layout(boolean scalable, long rootTable, long queueBase, int queueEntriesLog2, boolean wideDescriptors,
            int maxBatch) {}

    public Layout layout() {
        InvalidationQueue q = queue();
        return new Layout(scalable, tables().root(), q.base(), q.entriesLog2(), q.wide(), q.maxBatch());
    }

    /**
     * Counters.
     *
     * @param descriptors invalidation descriptors issued (waits not counted)
     * @param waits invalidation waits issued (one per batch)
     * @param queueErrors IQE, ITE and ICE handled
     * @param faults fault records read
     * @param faultOverflows primary fault overflows seen
     * @param contextTables context tables allocated
     * @param iteRetries invalidation batches submitted again because an ITE aborted their wait
     * @param invalidationsAbandoned invalidation batches given up after their retries all ended in ITE
     */
    public record Stats(long descriptors, long waits, long queueErrors, long faults, long faultOverflows,
            int contextTables, long iteRetries, long invalidationsAbandoned) {}

    /** The counters now; zeros before {@link #init}. */
    public Stats stats() {
        InvalidationQueue q = queue;
        ContextTables t = tables;
        return new Stats(q == null ? 0 : q.descriptors(), q == null ? 0 : q.waits(), q == null ? 0 : q.queueErrors(),
                faults.get(), faultOverflows.get(), t == null ? 0 : t.contextTablesAllocated(),
                q == null ? 0 : q.iteRetries(), q == null ? 0 : q.abandoned());
    }
}
