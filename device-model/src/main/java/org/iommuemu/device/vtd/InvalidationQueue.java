package org.iommuemu.device.vtd;

import static org.iommuemu.core.vtd.InvDesc.ADDR_IH;
import static org.iommuemu.core.vtd.InvDesc.CC_FM;
import static org.iommuemu.core.vtd.InvDesc.CC_SID;
import static org.iommuemu.core.vtd.InvDesc.DID;
import static org.iommuemu.core.vtd.InvDesc.G;
import static org.iommuemu.core.vtd.InvDesc.PASID;
import static org.iommuemu.core.vtd.InvDesc.WAIT_DATA;
import static org.iommuemu.core.vtd.InvDesc.WAIT_IF;
import static org.iommuemu.core.vtd.InvDesc.WAIT_PD;
import static org.iommuemu.core.vtd.InvDesc.WAIT_SW;
import static org.iommuemu.core.vtd.VtdRegs.FSTS_IQE;
import static org.iommuemu.core.vtd.VtdRegs.FSTS_ITE;
import static org.iommuemu.core.vtd.VtdRegs.ICS_IWC;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.machine.AtcPort;
import org.iommuemu.device.regs.Field;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.trace.TraceKind;
import org.iommuemu.device.trace.Tracer;
import org.iommuemu.device.xlate.XlateStats;

/**
 * The VT-d invalidation queue ({@code spec/VTD.md} §5; VT-d "Queued Invalidation"): a ring of 128- or 256-bit
 * descriptors at IQA, consumed from IQH up to IQT.
 *
 * <p>Queued invalidation is enabled by GCMD.QIE; IQA (base, QS, DW) is latched then, and IQH starts at 0. Every
 * write of IQT while it is enabled consumes the descriptors between IQH and IQT at once, under the register-file
 * lock, in order: every invalidation has completed before the next descriptor is read, so a fence (FN) holds
 * trivially and an invalidation wait completes when it is reached — SW writes its status data (a 32-bit write),
 * IF sets ICS.IWC and raises the invalidation completion event (unless IWC is already set).
 *
 * <p>Errors stop the queue with IQH at the offending descriptor, set FSTS.IQE (raising the fault event) and record
 * IQERCD.IQEI; nothing is consumed until software clears IQE, then processing resumes from IQH: a tail beyond the
 * queue or misaligned for 256-bit descriptors, a descriptor that cannot be read, an unknown type or one the unit
 * does not support (PASID-based descriptors without scalable mode, device-TLB ones without ECAP.DT, page-group
 * responses without ECAP.PRS), reserved bits set, an invalidation wait with none of SW, IF, FN, or a status write
 * that aborts. Device-TLB descriptors go to the instance's {@link AtcPort}: the devices' ATCs (docs/ATS.md); the next
 * invalidation wait stays on the queue (IQH on it) until each has been completed by its device, and is aborted with
 * ITE (IQERCD.ITESID naming the source id) when one times out. ICE is never raised (a completion for an unknown id
 * is ignored). Interrupt-entry-cache
 * descriptors are accepted and do nothing: interrupt remapping is not modelled (ECAP.IR=0 by default). Page-group
 * responses do nothing either: no page request is ever made.
 *
 * <p>Fault injection ({@link InstanceFaults}): QUEUE_READ_ABORT makes a fetch abort (IQE, IQEI fetch error);
 * COMMAND_CORRUPT flips one bit of the descriptor as read (memory unchanged) before it is decoded; COMMAND_DROP
 * consumes a descriptor without decoding or carrying it out (IQH moves past it, a dropped wait writes no status);
 * SYNC_NEVER_COMPLETES stops the queue at an invalidation wait (IQH stays on it: no status write, no IWC) until a
 * later IQT write finds the fault no longer firing; COMMAND_DELAY charges extra simulated time; COMMAND_REORDER
 * consumes a descriptor but carries it out just before the next wait; SYNC_LATE leaves a wait incomplete until the
 * unit's clock passes its deadline (register accesses retry it); ATC_INVALIDATION_TIMEOUT on a device-TLB
 * descriptor aborts the next wait and raises ITE (IQERCD.ITESID, IQH past the aborted wait, no fetching until ITE
 * is cleared); IGNORE_IOTLB_INVALIDATION makes IOTLB and PASID-based IOTLB descriptors, and
 * IGNORE_CONFIG_INVALIDATION context- and PASID-cache descriptors, complete and drop nothing. Command kinds select
 * by type and by the source id ({@link #streamOf}) and address ({@link #hasAddress}) the descriptor carries.
 */
final class InvalidationQueue {
    private final VtdConfig config;
    private final PhysicalMemory memory;
    private final CacheInvalidation caches;
    private final FaultRecording faults;
    private final EventInterrupt completion;
    private final XlateStats stats;
    private final InstanceFaults injected;
    private final Register iqh;
    private final Register iqt;
    private Tracer tracer = Tracer.NONE;
    private int track = -1;
    private final Register iqa;
    private final Register iqercd;
    private final Field iwc;
    private final Field qies;

    private boolean enabled;
    private long base;
    private int entries;
    private volatile boolean wide;

    /** Descriptors COMMAND_REORDER held back: {qw0, qw1, entry address, source id}, run before the next wait. */
    private final List<long[]> held = new ArrayList<>();
    /** SYNC_LATE: the simulated time the wait at {@link #lateAt} completes at, or -1. */
    private volatile long lateDeadline = -1;
    private long lateAt;
    /** ATC_INVALIDATION_TIMEOUT fired: the next wait is aborted and ITE raised, naming this source id. */
    private boolean iteTimedOut;
    private long iteStream;
    /** Where device-TLB invalidations go: the devices' ATCs, whose completions a wait descriptor waits for. */
    private final AtcPort atc;
    /** The invalidation wait (entry address) stalled until the device-TLB invalidations before it end, or -1. */
    private volatile long atcWaitAt = -1;

    /** Whether the queue currently reads 256-bit descriptors (IQA.DW latched at enable). */
    boolean wide() {
        return wide;
    }

    /** Descriptors consumed (errors excluded). */
    final LongAdder processed = new LongAdder();

    InvalidationQueue(VtdConfig config, VtdRegisters regs, PhysicalMemory memory, CacheInvalidation caches,
            FaultRecording faults, EventInterrupt completion, XlateStats stats, InstanceFaults injected, AtcPort atc) {
        this.config = config;
        this.atc = atc;
        this.injected = injected;
        this.memory = memory;
        this.caches = caches;
        this.faults = faults;
        this.completion = completion;
        this.stats = stats;
        this.iqh = regs.file.register("IQH");
        this.iqt = regs.file.register("IQT");
        this.iqa = regs.file.register("IQA");
        this.iqercd = regs.file.register("IQERCD");
        this.iwc = regs.file.register("ICS").fieldHandle("IWC");
        this.qies = regs.gsts.fieldHandle("QIES");
        iqt.afterWrite((oldValue, newValue, written, mask) -> process());
        regs.fsts.afterWrite((oldValue, newValue, written, mask) -> {
            long errors = 1L << FSTS_IQE | 1L << FSTS_ITE;
            if ((oldValue & errors) != 0 && (newValue & errors) == 0) {
                process();
            }
        });
        regs.file.register("ICS").afterWrite((oldValue, newValue, written, mask) -> {
            if (!iwc.isSet()) {
                completion.statusCleared();
            }
        });
    }

    /** GCMD.QIE changed to {@code on}: latch IQA and start at IQH = 0, or stop. The caller holds the lock. */
    void enable(boolean on) {
        if (on) {
            long a = iqa.value();
            base = Bits.alignDown(a, VtdRegs.IQA_IQA);
            wide = config.smts() && Bits.bit(a, VtdRegs.IQA_DW);
            int qs = (int) Bits.extract(a, VtdRegs.IQA_QS, 3);
            entries = 1 << (qs + (wide ? 7 : 8));
            iqh.set(0);
            enabled = true;
            qies.set(true);
            process();
        } else {
            enabled = false;
            held.clear(); // a disabled queue forgets what injected faults held back
            lateDeadline = -1;
            iteTimedOut = false;
            atcWaitAt = -1;
            atc.reset();
            qies.set(false);
            iqh.set(0);
        }
    }

    private int shift() {
        return wide ? VtdRegs.IQ_INDEX_SHIFT_256 : VtdRegs.IQ_INDEX_SHIFT_128;
    }

    /** Records queue occupancy (IQT - IQH) into {@code tracer} as instance {@code track}. Set once. */
    void tracer(Tracer tracer, int track) {
        this.tracer = tracer;
        this.track = track;
    }

    /** Consumes descriptors from IQH to IQT (tracing occupancy before and after). The caller holds the lock. */
    /** Counts the descriptor at {@code head} as processed and moves IQH past it; returns the new head. */
    private int advance(int head) {
        processed.increment();
        int next = head + 1 == entries ? 0 : head + 1;
        iqh.set((long) next << shift());
        return next;
    }

    /**
     * Carries out a wait the queue had stopped at (one that waited for device-TLB completions, or an injected late
     * one whose time has come); false when that raised IQE.
     */
    private boolean resume(long qw0, long qw1, long rest, long at) {
        int reason = execute(qw0, qw1, rest, at, -1, false, 0);
        if (reason >= 0) {
            error(reason);
            return false;
        }
        return true;
    }

    private void process() {
        Tracer t = tracer;
        if (t.on() && enabled) {
            traceOccupancy(t);
            consume();
            traceOccupancy(t);
        } else {
            consume();
        }
    }

    private void traceOccupancy(Tracer t) {
        long head = iqh.value() >>> shift();
        long tail = iqt.value() >>> shift();
        long waiting = Math.floorMod(tail - head, (long) entries);
        t.record(TraceKind.QUEUE, track, 0, -1, 0, waiting, TraceKind.QUEUE_INVALIDATION, entries, 0);
    }

    /** Consumes descriptors from IQH to IQT. The caller holds the register-file lock. */
    private void consume() {
        if (!enabled) {
            return;
        }
        if (faults.status(FSTS_IQE) || faults.status(FSTS_ITE)) {
            return; // nothing is fetched until software clears the error
        }
        if (lateDeadline >= 0 && stats.clock().now() < lateDeadline) {
            return; // a late wait (fetched already) is not complete yet: nothing moves
        }
        long tailValue = iqt.value();
        if (wide && (tailValue & 0x10) != 0) {
            error(VtdRegs.IQEI_TAIL_MISALIGNED);
            return;
        }
        int tail = (int) (tailValue >>> shift());
        if (tail >= entries) {
            error(VtdRegs.IQEI_TAIL_BEYOND_SIZE);
            return;
        }
        int head = (int) (iqh.value() >>> shift());
        int size = wide ? 32 : 16;
        while (head != tail) {
            long at = base + (long) head * size;
            long qw0;
            long qw1;
            long qw2 = 0;
            long qw3 = 0;
            try {
                qw0 = memory.read64(at);
                qw1 = memory.read64(at + 8);
                if (wide) {
                    qw2 = memory.read64(at + 16);
                    qw3 = memory.read64(at + 24);
                }
            } catch (MemoryAccessException e) {
                error(VtdRegs.IQEI_FETCH_ABORT);
                return;
            }
            if (at == atcWaitAt) {
                // an invalidation wait waiting for device-TLB invalidation completions, already fetched and counted
                int state = atcWait();
                if (state == AtcPort.PENDING) {
                    return;
                }
                if (state == AtcPort.TIMED_OUT) {
                    advance(head);
                    timeOut();
                    return;
                }
                if (!resume(qw0, qw1, qw2 | qw3, at)) {
                    return;
                }
                head = advance(head);
                continue;
            }
            stats.queueRead();
            int type = InvDesc.type(qw0);
            if (lateDeadline >= 0 && at == lateAt) {
                // an injected late invalidation wait whose deadline simulated time has reached: it completes now
                lateDeadline = -1;
                if (!resume(qw0, qw1, qw2 | qw3, at)) {
                    return;
                }
                head = advance(head);
                continue;
            }
            long stream = -1;
            boolean hasAddress = false;
            long address = 0;
            if (injected.any()) {
                if (injected.firing(InjectionKind.QUEUE_READ_ABORT, type, -1, true, at, at, "IQ descriptor") != null) {
                    error(VtdRegs.IQEI_FETCH_ABORT); // injected: the fetch aborted; IQH stays on the descriptor
                    return;
                }
                stream = streamOf(qw0);
                hasAddress = hasAddress(qw0);
                address = hasAddress ? qw1 & ~0xFFFL : 0;
                FaultSpec.Params flip = injected.firing(InjectionKind.COMMAND_CORRUPT, type, stream, hasAddress,
                        address, at, "IQ descriptor");
                if (flip != null) { // injected: one bit flipped as the descriptor is read (memory unchanged)
                    int bit = flip.bit();
                    switch (bit >>> 6) {
                        case 0 -> qw0 ^= 1L << bit;
                        case 1 -> qw1 ^= 1L << bit;
                        case 2 -> qw2 ^= wide ? 1L << bit : 0; // a 128-bit descriptor has no bits 128..255
                        default -> qw3 ^= wide ? 1L << bit : 0;
                    }
                    type = InvDesc.type(qw0);
                    stream = streamOf(qw0);
                    hasAddress = hasAddress(qw0);
                    address = hasAddress ? qw1 & ~0xFFFL : 0;
                }
            }
            if (type == InvDesc.TYPE_WAIT
                    && injected.fires(InjectionKind.SYNC_NEVER_COMPLETES, type, at, "IQ descriptor")) {
                return; // injected: the wait never completes; IQH stays on it, nothing after it is consumed
            }
            boolean dropped = injected.any() && injected.firing(InjectionKind.COMMAND_DROP, type, stream, hasAddress,
                    address, at, "IQ descriptor") != null;
            if (!dropped) { // else injected: consumed, never decoded nor carried out
                int reason = check(qw0, qw1, qw2 | qw3);
                if (reason >= 0) {
                    error(reason);
                    return;
                }
                boolean hold = false;
                if (injected.any()) {
                    FaultSpec.Params delay = injected.firing(InjectionKind.COMMAND_DELAY, type, stream, hasAddress,
                            address, at, "IQ descriptor");
                    if (delay != null) {
                        stats.charge(delay.delayNs()); // injected: the descriptor takes this much longer
                    }
                    hold = type != InvDesc.TYPE_WAIT && injected.firing(InjectionKind.COMMAND_REORDER, type, stream,
                            hasAddress, address, at, "IQ descriptor") != null;
                }
                if (hold) {
                    held.add(new long[] {qw0, qw1, at, stream}); // injected: carried out before the next wait
                } else {
                    if (type == InvDesc.TYPE_WAIT) {
                        runHeld();
                        if (iteTimedOut) {
                            // a device-TLB invalidation before this wait got no completion: the wait is aborted
                            // (no status write, no IWC), IQH moves past it, ITE stops fetching
                            advance(head);
                            timeOut();
                            return;
                        }
                        atcWaitAt = at;
                        int state = atcWait();
                        if (state == AtcPort.PENDING) {
                            return; // IQH stays on the wait until the devices answer or time runs out
                        }
                        if (state == AtcPort.TIMED_OUT) {
                            // a device-TLB invalidation got no completion: the wait is aborted as above, ITE
                            advance(head);
                            timeOut();
                            return;
                        }
                        FaultSpec.Params late = injected.any()
                                ? injected.firing(InjectionKind.SYNC_LATE, type, at, "IQ descriptor") : null;
                        if (late != null) {
                            // injected: the wait stays incomplete (IQH on it) until simulated time has advanced
                            // delay_ns; register accesses (the driver's polls) advance time and retry it
                            lateAt = at;
                            lateDeadline = stats.clock().now() + late.delayNs();
                            return;
                        }
                    }
                    reason = execute(qw0, qw1, qw2 | qw3, at, stream, hasAddress, address);
                    if (reason >= 0) {
                        error(reason);
                        return;
                    }
                }
            }
            head = advance(head);
        }
        if (iteTimedOut) {
            timeOut(); // no wait followed the timed-out device-TLB invalidation in this batch
        }
    }

    /**
     * The wait at {@link #atcWaitAt} asks the ATS port about the device-TLB invalidations before it: COMPLETE (the
     * wait completes), PENDING (IQH stays on it) or TIMED_OUT (the wait is aborted with ITE naming the stream).
     */
    private int atcWait() {
        int state = atc.syncState();
        if (state != AtcPort.PENDING) {
            atcWaitAt = -1;
        }
        if (state == AtcPort.TIMED_OUT) {
            iteStream = atc.failedStream() & 0xFFFFL;
        }
        return state;
    }

    /** Whether a wait descriptor waits for device-TLB invalidation completions (register accesses retry it). */
    boolean atcPending() {
        return atcWaitAt >= 0;
    }

    /** Whether an invalidation wait is waiting for simulated time to reach an injected SYNC_LATE deadline. */
    boolean latePending() {
        return lateDeadline >= 0;
    }

    /** Retries a late invalidation wait. The caller holds the register-file lock. */
    void retryLate() {
        process();
    }

    /** Carries out the descriptors COMMAND_REORDER held back, in the order they were consumed. */
    private void runHeld() {
        for (int i = 0; i < held.size(); i++) {
            long[] h = held.get(i);
            boolean hasAddress = hasAddress(h[0]);
            execute(h[0], h[1], 0, h[2], h[3], hasAddress, hasAddress ? h[1] & ~0xFFFL : 0);
        }
        held.clear();
    }

    /** FSTS.ITE with IQERCD.ITESID: an injected device-TLB invalidation timed out. */
    private void timeOut() {
        iteTimedOut = false;
        iqercd.setBits(0xFFFFL << VtdRegs.IQERCD_ITESID, (iteStream & 0xFFFFL) << VtdRegs.IQERCD_ITESID);
        stats.gerror();
        faults.raiseQueueError(FSTS_ITE);
    }

    /**
     * The source id a descriptor carries (device-selective context-cache invalidation, device-TLB and PASID
     * device-TLB invalidations, page-group responses), or -1: what a fault's {@code target.stream_ids} compares.
     */
    static long streamOf(long qw0) {
        return switch (InvDesc.type(qw0)) {
            case InvDesc.TYPE_CONTEXT_CACHE -> ((qw0 >>> G) & 3) == VtdRegs.CC_DEVICE ? (qw0 >>> CC_SID) & 0xFFFF : -1;
            case InvDesc.TYPE_DEVICE_TLB -> (qw0 >>> InvDesc.DEV_SID) & 0xFFFF;
            case InvDesc.TYPE_PASID_DEVICE_TLB, InvDesc.TYPE_PAGE_GROUP_RESPONSE -> (qw0 >>> 16) & 0xFFFF;
            default -> -1;
        };
    }

    /** Whether a descriptor carries an address: page-selective (PASID-based) IOTLB, (PASID) device-TLB. */
    static boolean hasAddress(long qw0) {
        int g = (int) ((qw0 >>> G) & 3);
        return switch (InvDesc.type(qw0)) {
            case InvDesc.TYPE_IOTLB -> g == VtdRegs.IOTLB_PAGE;
            case InvDesc.TYPE_PASID_IOTLB -> g == InvDesc.PIOTLB_PAGE;
            case InvDesc.TYPE_DEVICE_TLB, InvDesc.TYPE_PASID_DEVICE_TLB -> true;
            default -> false;
        };
    }

    private void error(int iqei) {
        iqercd.setBits(0xFL << VtdRegs.IQERCD_IQEI, (long) iqei << VtdRegs.IQERCD_IQEI);
        stats.gerror();
        faults.raiseQueueError(FSTS_IQE);
    }

    /**
     * Checks one descriptor before it is carried out or held back: returns -1, or the IQEI reason it is refused
     * with ({@link #execute} checks the same).
     */
    private int check(long qw0, long qw1, long upper) {
        int type = InvDesc.type(qw0);
        if (upper != 0) {
            return VtdRegs.IQEI_RESERVED;
        }
        int g = (int) ((qw0 >>> G) & 3);
        boolean reserved = switch (type) {
            case InvDesc.TYPE_CONTEXT_CACHE -> (qw0 & InvDesc.CC_RSVD0) != 0 || qw1 != 0 || g == 0;
            case InvDesc.TYPE_IOTLB -> (qw0 & InvDesc.IOTLB_RSVD0) != 0 || (qw1 & InvDesc.ADDR_RSVD1) != 0 || g == 0;
            case InvDesc.TYPE_DEVICE_TLB -> (qw0 & InvDesc.DEV_RSVD0) != 0 || (qw1 & InvDesc.DEV_RSVD1) != 0;
            case InvDesc.TYPE_PASID_DEVICE_TLB -> (qw0 & InvDesc.PDEV_RSVD0) != 0 || (qw1 & InvDesc.PDEV_RSVD1) != 0;
            case InvDesc.TYPE_IEC -> (qw0 & InvDesc.IEC_RSVD0) != 0 || qw1 != 0;
            case InvDesc.TYPE_WAIT -> (qw0 & (InvDesc.WAIT_RSVD0 | 1L << WAIT_PD)) != 0
                    || (qw1 & InvDesc.WAIT_RSVD1) != 0
                    || (qw0 & (1L << WAIT_SW | 1L << WAIT_IF | 1L << InvDesc.WAIT_FN)) == 0;
            case InvDesc.TYPE_PASID_IOTLB -> (qw0 & InvDesc.PIOTLB_RSVD0) != 0 || (qw1 & InvDesc.ADDR_RSVD1) != 0
                    || (g != InvDesc.PIOTLB_PASID && g != InvDesc.PIOTLB_PAGE);
            case InvDesc.TYPE_PASID_CACHE -> (qw0 & InvDesc.PC_RSVD0) != 0 || qw1 != 0 || g == 2;
            default -> false;
        };
        boolean supported = switch (type) {
            case InvDesc.TYPE_CONTEXT_CACHE, InvDesc.TYPE_IOTLB, InvDesc.TYPE_IEC, InvDesc.TYPE_WAIT -> true;
            case InvDesc.TYPE_DEVICE_TLB -> config.dt();
            case InvDesc.TYPE_PASID_DEVICE_TLB -> config.dt() && config.smts();
            case InvDesc.TYPE_PASID_IOTLB, InvDesc.TYPE_PASID_CACHE -> config.smts();
            case InvDesc.TYPE_PAGE_GROUP_RESPONSE -> config.prs();
            default -> false;
        };
        return !supported ? VtdRegs.IQEI_INVALID_TYPE : reserved ? VtdRegs.IQEI_RESERVED : -1;
    }

    /** Carries out one descriptor; returns -1, or the IQEI reason it is refused with. */
    private int execute(long qw0, long qw1, long upper, long at, long stream, boolean hasAddress, long address) {
        int type = InvDesc.type(qw0);
        if (upper != 0) {
            return VtdRegs.IQEI_RESERVED;
        }
        int g = (int) ((qw0 >>> G) & 3);
        int did = (int) ((qw0 >>> DID) & 0xFFFF);
        int pasid = (int) ((qw0 >>> PASID) & 0xFFFFF);
        switch (type) {
            case InvDesc.TYPE_CONTEXT_CACHE -> {
                if ((qw0 & InvDesc.CC_RSVD0) != 0 || qw1 != 0 || g == 0) {
                    return VtdRegs.IQEI_RESERVED;
                }
                if (ignoredConfig(type, stream, at)) {
                    g = -1; // injected: the stale-configuration bug, consumed and dropping nothing
                }
                switch (g) {
                    case -1 -> { }
                    case VtdRegs.CC_GLOBAL -> caches.invalidateContextAll();
                    case VtdRegs.CC_DOMAIN -> caches.invalidateContextDomain(did);
                    default -> caches.invalidateContextDevice((int) ((qw0 >>> CC_SID) & 0xFFFF),
                            (int) ((qw0 >>> CC_FM) & 3));
                }
            }
            case InvDesc.TYPE_IOTLB -> {
                if ((qw0 & InvDesc.IOTLB_RSVD0) != 0 || (qw1 & InvDesc.ADDR_RSVD1) != 0 || g == 0) {
                    return VtdRegs.IQEI_RESERVED;
                }
                if (injected.any() && injected.firing(InjectionKind.IGNORE_IOTLB_INVALIDATION, type, stream, hasAddress,
                        address, at, "IQ descriptor") != null) {
                    g = -1; // injected: the stale-TLB bug, consumed and dropping nothing
                }
                switch (g) {
                    case -1 -> { }
                    case VtdRegs.IOTLB_GLOBAL -> caches.invalidateIotlbAll();
                    case VtdRegs.IOTLB_DOMAIN -> caches.invalidateIotlbDomain(did);
                    default -> pageSelective(did, qw1);
                }
            }
            case InvDesc.TYPE_DEVICE_TLB, InvDesc.TYPE_PASID_DEVICE_TLB -> {
                if (!config.dt() || (type == InvDesc.TYPE_PASID_DEVICE_TLB && !config.smts())) {
                    return VtdRegs.IQEI_INVALID_TYPE;
                }
                long r0 = type == InvDesc.TYPE_DEVICE_TLB ? InvDesc.DEV_RSVD0 : InvDesc.PDEV_RSVD0;
                long r1 = type == InvDesc.TYPE_DEVICE_TLB ? InvDesc.DEV_RSVD1 : InvDesc.PDEV_RSVD1;
                if ((qw0 & r0) != 0 || (qw1 & r1) != 0) {
                    return VtdRegs.IQEI_RESERVED;
                }
                deviceTlb(type, qw0, qw1);
                if (injected.any() && injected.firing(InjectionKind.ATC_INVALIDATION_TIMEOUT, type, stream,
                        hasAddress, address, at, "IQ descriptor") != null) {
                    iteTimedOut = true; // injected: no completion; the next wait is aborted with ITE
                    iteStream = stream;
                }
            }
            case InvDesc.TYPE_IEC -> {
                if ((qw0 & InvDesc.IEC_RSVD0) != 0 || qw1 != 0) {
                    return VtdRegs.IQEI_RESERVED;
                }
                // interrupt remapping is not modelled: there is no interrupt entry cache
            }
            case InvDesc.TYPE_WAIT -> {
                return invalidationWait(qw0, qw1);
            }
            case InvDesc.TYPE_PASID_IOTLB -> {
                if (!config.smts()) {
                    return VtdRegs.IQEI_INVALID_TYPE;
                }
                if ((qw0 & InvDesc.PIOTLB_RSVD0) != 0 || (qw1 & InvDesc.ADDR_RSVD1) != 0
                        || (g != InvDesc.PIOTLB_PASID && g != InvDesc.PIOTLB_PAGE)) {
                    return VtdRegs.IQEI_RESERVED;
                }
                if (injected.any() && injected.firing(InjectionKind.IGNORE_IOTLB_INVALIDATION, type, stream, hasAddress,
                        address, at, "IQ descriptor") != null) {
                    g = -1; // injected: the stale-TLB bug
                }
                if (g == -1) {
                    // nothing invalidated
                } else if (g == InvDesc.PIOTLB_PASID) {
                    caches.invalidatePasidIotlb(did, pasid);
                } else {
                    caches.invalidatePasidIotlbPage(did, pasid, qw1 & ~0xFFFL, (int) (qw1 & 0x3F),
                            Bits.bit(qw1, ADDR_IH));
                }
            }
            case InvDesc.TYPE_PASID_CACHE -> {
                if (!config.smts()) {
                    return VtdRegs.IQEI_INVALID_TYPE;
                }
                if ((qw0 & InvDesc.PC_RSVD0) != 0 || qw1 != 0 || g == 2) {
                    return VtdRegs.IQEI_RESERVED;
                }
                if (ignoredConfig(type, stream, at)) {
                    g = -2; // injected: the stale-configuration bug
                }
                switch (g) {
                    case -2 -> { }
                    case InvDesc.PC_DOMAIN -> caches.invalidatePasidCacheDomain(did);
                    case InvDesc.PC_PASID -> caches.invalidatePasidCache(did, pasid);
                    default -> caches.invalidatePasidCacheAll();
                }
            }
            case InvDesc.TYPE_PAGE_GROUP_RESPONSE -> {
                if (!config.prs()) {
                    return VtdRegs.IQEI_INVALID_TYPE;
                }
                // no page request is ever made: nothing to respond to
            }
            default -> {
                return VtdRegs.IQEI_INVALID_TYPE;
            }
        }
        stats.command(type);
        return -1;
    }

    /**
     * Hands a device-TLB invalidation to the ATS port: source id, PASID (type 8; with G=1 every PASID), and the
     * range: S=0 one 4 KB page at ADDR; S=1 2^(N+1) bytes where N is the lowest clear bit of ADDR at or above bit
     * 12 (all set: the whole address space).
     */
    private void deviceTlb(int type, long qw0, long qw1) {
        boolean pasidBased = type == InvDesc.TYPE_PASID_DEVICE_TLB;
        int sid = (int) (pasidBased ? (qw0 >>> 16) & 0xFFFF : (qw0 >>> InvDesc.DEV_SID) & 0xFFFF);
        boolean sizeBit = pasidBased ? Bits.bit(qw1, 11) : Bits.bit(qw1, InvDesc.DEV_S);
        long addr = qw1 & ~0xFFFL;
        int lg2 = 12;
        if (sizeBit) {
            long ones = ~(addr >>> 12);
            lg2 = ones == 0 ? 64 : 12 + Long.numberOfTrailingZeros(ones) + 1;
        }
        boolean global = pasidBased && Bits.bit(qw1, 0);
        int pasid = pasidBased && !global ? (int) ((qw0 >>> PASID) & 0xFFFFF) : -1;
        atc.invalidate(sid, global, pasid, addr, Math.min(lg2, 64));
    }

    /** Whether an injected IGNORE_CONFIG_INVALIDATION swallows this context- or PASID-cache invalidation. */
    private boolean ignoredConfig(int type, long stream, long at) {
        return injected.any() && injected.firing(InjectionKind.IGNORE_CONFIG_INVALIDATION, type, stream, false, 0, at,
                "IQ descriptor") != null;
    }

    /** IOTLB page-selective invalidation; without CAP.PSI, or with AM beyond CAP.MAMV, the whole domain. */
    private void pageSelective(int did, long qw1) {
        int am = (int) (qw1 & 0x3F);
        if (!config.psi() || am > config.mamv()) {
            caches.invalidateIotlbDomain(did);
        } else {
            caches.invalidateIotlbPage(did, qw1 & ~0xFFFL, am, Bits.bit(qw1, ADDR_IH));
        }
    }

    private int invalidationWait(long qw0, long qw1) {
        long reserved = InvDesc.WAIT_RSVD0 | 1L << WAIT_PD; // PD needs ECAP.PDS, which this model never sets
        if ((qw0 & reserved) != 0 || (qw1 & InvDesc.WAIT_RSVD1) != 0) {
            return VtdRegs.IQEI_RESERVED;
        }
        boolean sw = Bits.bit(qw0, WAIT_SW);
        boolean irq = Bits.bit(qw0, WAIT_IF);
        boolean fence = Bits.bit(qw0, InvDesc.WAIT_FN);
        if (!sw && !irq && !fence) {
            return VtdRegs.IQEI_RESERVED;
        }
        stats.command(InvDesc.TYPE_WAIT);
        stats.sync();
        if (sw) {
            try {
                memory.write32(qw1, (int) (qw0 >>> WAIT_DATA));
            } catch (MemoryAccessException e) {
                return VtdRegs.IQEI_INFO_UNAVAILABLE;
            }
            stats.msiWrite();
        }
        if (irq && !iwc.isSet()) {
            iwc.set(true);
            completion.raise();
        }
        return -1;
    }

    /** Power-on state. The caller holds the lock. */
    void reset() {
        held.clear();
        lateDeadline = -1;
        iteTimedOut = false;
        atcWaitAt = -1;
        atc.reset();
        enabled = false;
        base = 0;
        entries = 0;
        wide = false;
    }
}
