package org.iommuemu.device.smmuv3;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.machine.AtcPort;
import org.iommuemu.device.regs.Field;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.regs.RegisterFile;
import org.iommuemu.device.trace.TraceKind;
import org.iommuemu.device.trace.Tracer;
import org.iommuemu.device.xlate.ConfigCache;
import org.iommuemu.device.xlate.Iotlb;
import org.iommuemu.device.xlate.Stage;
import org.iommuemu.device.xlate.TranslationCaches;
import org.iommuemu.device.xlate.XlateStats;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The command queue (spec §4, §7). Commands are consumed when CMDQ_PROD moves (and when the queue is enabled,
 * or a command error is acknowledged), in order, each read from guest memory; by the time CMDQ_CONS moves past a
 * command its effect is complete, so a CMD_SYNC completes as soon as it is reached.
 *
 * <p>Errors stop the queue at the failing command: CMDQ_CONS points at it with ERR set (CERROR_ILL for an unknown
 * or illegal command, CERROR_ABT when reading it aborts), GERROR.CMDQ_ERR toggles and its interrupt fires.
 * Consumption resumes, from CMDQ_CONS, once software acknowledges through GERRORN (Linux first overwrites the bad
 * slot with a CMD_SYNC).
 *
 * <p>ATC_INV goes to the devices' ATCs through the {@link AtcPort}; the next CMD_SYNC stays unconsumed (CONS on it)
 * until every invalidation before it has been completed by its device, and stops the queue with CERROR_ATC_INV_SYNC
 * when one timed out ({@link #atcPending}: register accesses, completions and the port's timer re-run the queue).
 *
 * <p>Invalidations: CFGI_* drop configuration-cache entries (CFGI_STE also the stream's CDs, as QEMU does);
 * TLBI_* drop IOTLB and walk-cache entries (Leaf=1 spares the walk cache; a TTL level hint narrows IOTLB
 * invalidation by address). TLBI_S2_IPA drops stage-2 entries only: combined nested entries stay, as the
 * architecture allows, until a stage-1 invalidation of their VMID, so a driver that forgets it sees them. Commands the SMMU does not implement ({@link Command#check}) are CERROR_ILL;
 * PREFETCH_*, RESUME and STALL_TERM do nothing (no prefetching, no stall model). Called with the register file's
 * lock held.
 *
 * <p>Fault injection ({@link InstanceFaults}): QUEUE_READ_ABORT makes a fetch abort (CERROR_ABT);
 * COMMAND_CORRUPT flips one bit of the command as read (memory unchanged) before it is decoded; COMMAND_DROP
 * consumes a command without decoding or carrying it out (CONS moves past it); SYNC_NEVER_COMPLETES stops the
 * queue at a CMD_SYNC (CONS stays on it, no MSI), until a later doorbell finds the fault no longer firing;
 * COMMAND_DELAY charges extra simulated time; COMMAND_REORDER consumes a command but carries it out just before
 * the next CMD_SYNC (held across doorbells); SYNC_LATE leaves a CMD_SYNC incomplete until the instance's clock
 * passes its deadline (register accesses retry it, {@link #latePending}); ATC_INVALIDATION_TIMEOUT makes the
 * CMD_SYNC after an ATC_INV fail with CERROR_ATC_INV_SYNC; IGNORE_IOTLB_INVALIDATION and
 * IGNORE_CONFIG_INVALIDATION make a TLBI_* / CFGI_* count as executed and drop nothing. Command kinds select by
 * opcode and by the StreamID ({@link #streamOf}) and address ({@link #hasAddress}) the command carries. With no
 * fault active each check is one volatile read.
 */
final class CommandQueue {
    private static final Logger log = LoggerFactory.getLogger(CommandQueue.class);

    private final PhysicalMemory memory;
    private final XlateStats stats;
    private final Signals signals;
    private final TranslationCaches caches;
    private final ConfigCache<SmmuConfig> configs;
    private final Command.Features features;
    private final int maxLog2;
    private final Field enabled;
    private final Register base;
    private final Register prod;
    private final Register cons;
    private Tracer tracer = Tracer.NONE;
    private int track = -1;
    private final InstanceFaults faults;
    /** Commands COMMAND_REORDER held back: {dw0, dw1, entry address}, carried out before the next CMD_SYNC. */
    private final List<long[]> held = new ArrayList<>();
    /** SYNC_LATE: the simulated time the CMD_SYNC at {@link #lateAt} completes at, or -1. */
    private volatile long lateDeadline = -1;
    private long lateAt;
    /** ATC_INVALIDATION_TIMEOUT fired since the last CMD_SYNC: that sync fails. */
    private boolean atcTimedOut;
    private long atcStream;
    /** Where ATC_INV goes: the devices' ATCs, whose completions a CMD_SYNC waits for. */
    private final AtcPort atc;
    /** The CMD_SYNC (entry address) stalled until the ATC invalidations before it complete or time out, or -1. */
    private volatile long atcSyncAt = -1;

    CommandQueue(PhysicalMemory memory, XlateStats stats, Signals signals, TranslationCaches caches,
            ConfigCache<SmmuConfig> configs, Command.Features features, RegisterFile f, int maxLog2,
            InstanceFaults faults, AtcPort atc) {
        this.faults = faults;
        this.atc = atc;
        this.memory = memory;
        this.stats = stats;
        this.signals = signals;
        this.caches = caches;
        this.configs = configs;
        this.features = features;
        this.maxLog2 = maxLog2;
        this.enabled = f.register("CR0ACK").fieldHandle("CMDQEN");
        this.base = f.register("CMDQ_BASE");
        this.prod = f.register("CMDQ_PROD");
        this.cons = f.register("CMDQ_CONS");
    }

    /** Records queue occupancy (PROD - CONS) into {@code tracer} as instance {@code track}. Set once. */
    void tracer(Tracer tracer, int track) {
        this.tracer = tracer;
        this.track = track;
    }

    /** Consumes commands from CMDQ_CONS up to CMDQ_PROD, unless disabled or stopped by an unacknowledged error. */
    void process() {
        Tracer t = tracer;
        if (t.on()) {
            traceOccupancy(t);
            consume();
            traceOccupancy(t);
        } else {
            consume();
        }
    }

    private void traceOccupancy(Tracer t) {
        int log2 = QueueBase.effectiveLog2Size(base.value(), maxLog2);
        int mask = (int) ((2L << log2) - 1);
        long waiting = ((int) prod.value() - (int) cons.value()) & mask;
        t.record(TraceKind.QUEUE, track, 0, -1, 0, waiting, TraceKind.QUEUE_COMMAND, 1L << log2, 0);
    }

    private void consume() {
        if (!enabled.isSet()) {
            resetInjected(); // a disabled queue forgets what injected faults held back
            return;
        }
        if (signals.active(Gerror.CMDQ_ERR)) {
            return;
        }
        if (lateDeadline >= 0 && stats.clock().now() < lateDeadline) {
            return; // a late CMD_SYNC (fetched already) is not complete yet: nothing moves
        }
        long b = base.value();
        int log2 = QueueBase.effectiveLog2Size(b, maxLog2);
        int mask = (int) ((2L << log2) - 1); // index and wrap bit
        int p = (int) prod.value() & mask;
        int consValue = (int) cons.value();
        int c = consValue & mask;
        int errorBits = consValue & ~mask; // ERR stays until the next error
        while (c != p) {
            long at = QueueBase.entryAddress(b, log2, c, QueuePointer.CMDQ_ENTRY_SIZE);
            long dw0;
            long dw1;
            try {
                dw0 = memory.read64(at);
                dw1 = memory.read64(at + 8);
            } catch (MemoryAccessException e) {
                stop(c, QueuePointer.CERROR_ABT, "reading the command at " + Long.toHexString(at) + " aborted");
                return;
            }
            if (at == atcSyncAt) {
                // a CMD_SYNC waiting for ATC invalidation completions, already fetched and counted
                if (!atcSync(c, log2, at)) {
                    return;
                }
                execute(dw0, dw1, at);
                c = QueuePointer.inc(c, log2) & mask;
                cons.set(Integer.toUnsignedLong(errorBits | c));
                continue;
            }
            stats.queueRead();
            int op = Command.opcode(dw0);
            if (lateDeadline >= 0 && at == lateAt) {
                // an injected late CMD_SYNC whose deadline simulated time has reached: it completes now
                lateDeadline = -1;
                execute(dw0, dw1, at);
                c = QueuePointer.inc(c, log2) & mask;
                cons.set(Integer.toUnsignedLong(errorBits | c));
                continue;
            }
            long stream = -1;
            boolean hasAddress = false;
            long address = 0;
            if (faults.any()) {
                if (faults.firing(InjectionKind.QUEUE_READ_ABORT, op, -1, true, at, at, "CMDQ entry") != null) {
                    stop(c, QueuePointer.CERROR_ABT, "injected: reading the command at " + Long.toHexString(at)
                            + " aborted");
                    return;
                }
                stream = streamOf(op, dw0, dw1);
                hasAddress = hasAddress(op);
                address = hasAddress ? Command.address(dw0, dw1) : 0;
                FaultSpec.Params flip = faults.firing(InjectionKind.COMMAND_CORRUPT, op, stream, hasAddress, address,
                        at, "CMDQ entry");
                if (flip != null) { // injected: one bit flipped as the command is read (memory unchanged)
                    if (flip.bit() < 64) {
                        dw0 ^= 1L << flip.bit();
                    } else {
                        dw1 ^= 1L << (flip.bit() - 64);
                    }
                    op = Command.opcode(dw0);
                    stream = streamOf(op, dw0, dw1);
                    hasAddress = hasAddress(op);
                    address = hasAddress ? Command.address(dw0, dw1) : 0;
                }
            }
            if (op == CommandOp.CMD_SYNC && faults.fires(InjectionKind.SYNC_NEVER_COMPLETES, op, at, "CMDQ entry")) {
                return; // injected: the CMD_SYNC never completes; CONS stays on it, nothing after it is consumed
            }
            if (faults.any() && faults.firing(InjectionKind.COMMAND_DROP, op, stream, hasAddress, address, at,
                    "CMDQ entry") != null) {
                c = QueuePointer.inc(c, log2) & mask; // injected: consumed, never decoded nor carried out
                cons.set(Integer.toUnsignedLong(errorBits | c));
                continue;
            }
            String illegal = Command.check(dw0, dw1, features);
            if (illegal != null) {
                stop(c, QueuePointer.CERROR_ILL, illegal + " (opcode 0x" + Integer.toHexString(Command.opcode(dw0))
                        + " at index " + QueuePointer.index(c, log2) + ")");
                return;
            }
            if (faults.any()) {
                FaultSpec.Params delay = faults.firing(InjectionKind.COMMAND_DELAY, op, stream, hasAddress, address,
                        at, "CMDQ entry");
                if (delay != null) {
                    stats.charge(delay.delayNs()); // injected: the command takes this much longer
                }
                if (op != CommandOp.CMD_SYNC && faults.firing(InjectionKind.COMMAND_REORDER, op, stream, hasAddress,
                        address, at, "CMDQ entry") != null) {
                    held.add(new long[] {dw0, dw1, at}); // injected: carried out just before the next CMD_SYNC
                    c = QueuePointer.inc(c, log2) & mask;
                    cons.set(Integer.toUnsignedLong(errorBits | c));
                    continue;
                }
            }
            if (op == CommandOp.CMD_SYNC) {
                runHeld();
                if (atcTimedOut) {
                    // an ATC invalidation before this CMD_SYNC got no completion: the sync fails (spec §4.7.3)
                    atcTimedOut = false;
                    stop(c, QueuePointer.CERROR_ATC_INV_SYNC, "an ATC invalidation for stream 0x"
                            + Long.toHexString(atcStream) + " timed out before the CMD_SYNC at index "
                            + QueuePointer.index(c, log2));
                    return;
                }
                if (!atcSync(c, log2, at)) {
                    return;
                }
                FaultSpec.Params late = faults.any() ? faults.firing(InjectionKind.SYNC_LATE, op, at, "CMDQ entry")
                        : null;
                if (late != null) {
                    // injected: the CMD_SYNC stays incomplete (CONS on it) until simulated time has advanced
                    // delay_ns; register accesses (the driver's polls) advance time and retry it
                    lateAt = at;
                    lateDeadline = stats.clock().now() + late.delayNs();
                    return;
                }
            }
            execute(dw0, dw1, at, stream, hasAddress, address);
            c = QueuePointer.inc(c, log2) & mask;
            cons.set(Integer.toUnsignedLong(errorBits | c));
        }
    }

    /**
     * The CMD_SYNC at index {@code c} (entry address {@code at}) waits for the ATC invalidations before it: returns
     * true when they have all
     * completed (the sync may complete); false when some are outstanding (CONS stays on the sync until a
     * completion, a timeout or a register access re-runs the queue) or one timed out (the queue stops with
     * CERROR_ATC_INV_SYNC; the driver's retried CMD_SYNC then completes, as the abandoned invalidations are
     * forgotten).
     */
    private boolean atcSync(int c, int log2, long at) {
        int state = atc.syncState();
        if (state == AtcPort.COMPLETE) {
            if (atcSyncAt >= 0) {
                atcSyncAt = -1;
            }
            return true;
        }
        if (state == AtcPort.PENDING) {
            atcSyncAt = at;
            return false;
        }
        atcSyncAt = -1;
        stop(c, QueuePointer.CERROR_ATC_INV_SYNC, "an ATC invalidation for stream 0x"
                + Integer.toHexString(atc.failedStream()) + " got no completion before the CMD_SYNC at index "
                + QueuePointer.index(c, log2) + " (timed out, not delivered, or the device went away)");
        return false;
    }

    /** Whether a CMD_SYNC waits for ATC invalidation completions (register accesses re-run the queue then). */
    boolean atcPending() {
        return atcSyncAt >= 0;
    }

    /** Whether a CMD_SYNC is waiting for simulated time to reach an injected SYNC_LATE deadline. */
    boolean latePending() {
        return lateDeadline >= 0;
    }

    /** Carries out the commands COMMAND_REORDER held back, in the order they were consumed. */
    private void runHeld() {
        for (int i = 0; i < held.size(); i++) {
            long[] h = held.get(i);
            execute(h[0], h[1], h[2]);
        }
        held.clear();
    }

    /** Forgets injection state: held commands and a pending late sync (reset, queue disabled). */
    void resetInjected() {
        held.clear();
        lateDeadline = -1;
        atcTimedOut = false;
        atcSyncAt = -1;
        atc.reset();
    }

    /**
     * The StreamID a command carries (CFGI_STE, CFGI_STE_RANGE except CFGI_ALL, CFGI_CD, CFGI_CD_ALL, ATC_INV,
     * PRI_RESP, PREFETCH_*, RESUME, STALL_TERM), or -1: what a fault's {@code target.stream_ids} compares.
     */
    static long streamOf(int op, long dw0, long dw1) {
        return switch (op) {
            case CommandOp.CFGI_STE_RANGE -> Command.range(dw1) >= 31 ? -1 : Command.streamId(dw0) & 0xFFFF_FFFFL;
            case CommandOp.CFGI_STE, CommandOp.CFGI_CD, CommandOp.CFGI_CD_ALL, CommandOp.ATC_INV,
                    CommandOp.PRI_RESP, CommandOp.PREFETCH_CONFIG, CommandOp.PREFETCH_ADDR, CommandOp.RESUME,
                    CommandOp.STALL_TERM -> Command.streamId(dw0) & 0xFFFF_FFFFL;
            default -> -1;
        };
    }

    /** Whether a command carries an address (TLBI by VA or IPA, ATC_INV, PREFETCH_ADDR). */
    static boolean hasAddress(int op) {
        return CommandOp.isTlbiByAddress(op) || op == CommandOp.ATC_INV || op == CommandOp.PREFETCH_ADDR;
    }

    private void stop(int at, int cerror, String why) {
        log.debug("command queue stopped: {}", why);
        cons.set(Integer.toUnsignedLong(QueuePointer.withCmdqError(at, cerror)));
        signals.raise(Gerror.CMDQ_ERR);
    }

    private void execute(long dw0, long dw1, long at) {
        int op = Command.opcode(dw0);
        boolean hasAddress = faults.any() && hasAddress(op);
        execute(dw0, dw1, at, faults.any() ? streamOf(op, dw0, dw1) : -1, hasAddress,
                hasAddress ? Command.address(dw0, dw1) : 0);
    }

    private void execute(long dw0, long dw1, long at, long stream, boolean hasAddress, long selected) {
        int op = Command.opcode(dw0);
        stats.command(op);
        if (faults.any()) {
            if (isTlbi(op) && faults.firing(InjectionKind.IGNORE_IOTLB_INVALIDATION, op, stream, hasAddress,
                    selected, at, "CMDQ entry") != null) {
                return; // injected: the stale-TLB bug, the invalidation is consumed and does nothing
            }
            if (isCfgi(op) && faults.firing(InjectionKind.IGNORE_CONFIG_INVALIDATION, op, stream, hasAddress,
                    selected, at, "CMDQ entry") != null) {
                return; // injected: the stale-configuration bug, consumed and doing nothing
            }
            if (op == CommandOp.ATC_INV && faults.firing(InjectionKind.ATC_INVALIDATION_TIMEOUT, op, stream,
                    hasAddress, selected, at, "CMDQ entry") != null) {
                atcTimedOut = true; // injected: no ATC answers; the next CMD_SYNC fails with CERROR_ATC_INV_SYNC
                atcStream = stream;
            }
        }
        switch (op) {
            case CommandOp.CFGI_STE -> configs.invalidateStream(Command.streamId(dw0));
            case CommandOp.CFGI_STE_RANGE -> configs.invalidateStreamRange(Command.streamId(dw0),
                    ConfigCache.steRangeLg2(Command.range(dw1)));
            case CommandOp.CFGI_CD -> configs.invalidate(Command.streamId(dw0), Command.substreamId(dw0));
            case CommandOp.CFGI_CD_ALL -> configs.invalidateSubstreams(Command.streamId(dw0));
            case CommandOp.TLBI_NH_ALL -> caches.invalidateVmid(Command.vmid(dw0), Stage.S1 | Stage.NESTED);
            case CommandOp.TLBI_NH_ASID -> caches.invalidateAsid(Command.vmid(dw0), Command.asid(dw0));
            case CommandOp.TLBI_NH_VA -> byVa(dw0, dw1, Command.asid(dw0));
            case CommandOp.TLBI_NH_VAA -> byVa(dw0, dw1, Iotlb.ANY_ASID);
            case CommandOp.TLBI_S12_VMALL -> caches.invalidateVmid(Command.vmid(dw0), Stage.ALL);
            case CommandOp.TLBI_S2_IPA -> {
                long ipa = Command.address(dw0, dw1);
                // strict: combined stage 1 + stage 2 entries stay until a stage-1 invalidation (TLBI_NH_ALL,
                // TLBI_S12_VMALL...), which the architecture allows and Linux issues after it for a nesting parent
                caches.invalidateIpa(Command.vmid(dw0), ipa, length(dw0, dw1, ipa), level(dw1),
                        Command.leaf(dw1), false);
            }
            case CommandOp.TLBI_NSNH_ALL -> caches.invalidateAll();
            case CommandOp.CMD_SYNC -> sync(dw0, dw1);
            case CommandOp.ATC_INV -> {
                int size = Command.size(dw0, dw1);
                atc.invalidate(Command.streamId(dw0), Command.GLOBAL.isSet(dw0),
                        Command.ssv(dw0) ? Command.substreamId(dw0) : -1,
                        Command.atcStart(Command.address(dw0, dw1), size), Command.atcSpanLg2(size));
            }
            default -> {
                // PREFETCH_CONFIG, PREFETCH_ADDR (no prefetching), RESUME and STALL_TERM (no stall model): nothing
                // to do. Everything else was refused by Command.check.
            }
        }
    }

    private static boolean isCfgi(int op) {
        return op == CommandOp.CFGI_STE || op == CommandOp.CFGI_STE_RANGE || op == CommandOp.CFGI_CD
                || op == CommandOp.CFGI_CD_ALL;
    }

    private static boolean isTlbi(int op) {
        return switch (op) {
            case CommandOp.TLBI_NH_ALL, CommandOp.TLBI_NH_ASID, CommandOp.TLBI_NH_VA, CommandOp.TLBI_NH_VAA,
                    CommandOp.TLBI_S12_VMALL, CommandOp.TLBI_S2_IPA, CommandOp.TLBI_NSNH_ALL,
                    CommandOp.TLBI_EL2_ALL, CommandOp.TLBI_EL2_ASID, CommandOp.TLBI_EL2_VA,
                    CommandOp.TLBI_EL2_VAA -> true;
            default -> false;
        };
    }

    private void byVa(long dw0, long dw1, int asid) {
        long address = Command.address(dw0, dw1);
        caches.invalidateVa(Command.vmid(dw0), asid, address, length(dw0, dw1, address), level(dw1),
                Command.leaf(dw1), Stage.S1 | Stage.NESTED);
    }

    /** Bytes a TLBI by address covers from {@code address}: one for a single address (TG=0), whatever its leaf size. */
    private static long length(long dw0, long dw1, long address) {
        long length = Command.tlbiRangeLength(Command.tg(dw1), Command.num(dw0), Command.scale(dw0));
        if (length == 0) {
            return 1;
        }
        return Long.compareUnsigned(address + length - 1, address) < 0 ? -address : length; // cut at 2^64
    }

    /** The level a TTL hint names (range TLBIs only), or any level. */
    private static int level(long dw1) {
        int tg = Command.tg(dw1);
        int ttl = Command.ttl(dw1);
        return tg != 0 && ttl != 0 && Encodings.granuleLg2ForRangeTg(tg) > 0 ? Iotlb.levelFromArmTtl(ttl)
                : Iotlb.ANY_LEVEL;
    }

    private void sync(long dw0, long dw1) {
        stats.sync();
        switch (Command.syncSignal(Command.syncCs(dw0), features)) {
            case MSI_WRITE -> signals.msi("cmd-sync", Command.syncMsiAddr(dw1), Command.syncMsiData(dw0));
            case WIRED_IRQ -> signals.wired("cmd-sync");
            case SEV -> signals.wired("sev");
            case NONE -> { }
        }
    }
}
