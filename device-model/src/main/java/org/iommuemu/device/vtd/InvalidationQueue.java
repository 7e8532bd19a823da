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
import static org.iommuemu.core.vtd.VtdRegs.ICS_IWC;

import java.util.concurrent.atomic.LongAdder;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.regs.Field;
import org.iommuemu.device.regs.Register;
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
 * that aborts. Device-TLB descriptors are accepted and invalidate nothing: no device has an ATC yet (ATS is not
 * modelled), so ITE and ICE are never raised. Interrupt-entry-cache descriptors are accepted and do nothing:
 * interrupt remapping is not modelled (ECAP.IR=0 by default). Page-group responses do nothing either: no page
 * request is ever made.
 *
 * <p>Fault injection ({@link InstanceFaults}): COMMAND_DROP consumes a descriptor without decoding or carrying it
 * out (IQH moves past it, a dropped wait writes no status); SYNC_NEVER_COMPLETES stops the queue at an invalidation
 * wait (IQH stays on it: no status write, no IWC) until a later IQT write finds the fault no longer firing;
 * IGNORE_IOTLB_INVALIDATION makes IOTLB and PASID-based IOTLB descriptors complete and drop nothing.
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
    private final Register iqa;
    private final Register iqercd;
    private final Field iwc;
    private final Field qies;

    private boolean enabled;
    private long base;
    private int entries;
    private boolean wide;

    /** Descriptors consumed (errors excluded). */
    final LongAdder processed = new LongAdder();

    InvalidationQueue(VtdConfig config, VtdRegisters regs, PhysicalMemory memory, CacheInvalidation caches,
            FaultRecording faults, EventInterrupt completion, XlateStats stats, InstanceFaults injected) {
        this.config = config;
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
            if ((oldValue & 1L << FSTS_IQE) != 0 && (newValue & 1L << FSTS_IQE) == 0) {
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
            qies.set(false);
            iqh.set(0);
        }
    }

    private int shift() {
        return wide ? VtdRegs.IQ_INDEX_SHIFT_256 : VtdRegs.IQ_INDEX_SHIFT_128;
    }

    /** Consumes descriptors from IQH to IQT. The caller holds the register-file lock. */
    private void process() {
        if (!enabled || faults.status(FSTS_IQE)) {
            return;
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
            stats.queueRead();
            int type = InvDesc.type(qw0);
            if (type == InvDesc.TYPE_WAIT
                    && injected.fires(InjectionKind.SYNC_NEVER_COMPLETES, type, at, "IQ descriptor")) {
                return; // injected: the wait never completes; IQH stays on it, nothing after it is consumed
            }
            if (!injected.fires(InjectionKind.COMMAND_DROP, type, at, "IQ descriptor")) {
                int reason = execute(qw0, qw1, qw2 | qw3, at);
                if (reason >= 0) {
                    error(reason);
                    return;
                }
            } // else injected: consumed, never decoded nor carried out
            processed.increment();
            head = head + 1 == entries ? 0 : head + 1;
            iqh.set((long) head << shift());
        }
    }

    private void error(int iqei) {
        iqercd.setBits(0xFL << VtdRegs.IQERCD_IQEI, (long) iqei << VtdRegs.IQERCD_IQEI);
        stats.gerror();
        faults.raiseQueueError(FSTS_IQE);
    }

    /** Carries out one descriptor; returns -1, or the IQEI reason it is refused with. */
    private int execute(long qw0, long qw1, long upper, long at) {
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
                switch (g) {
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
                if (injected.fires(InjectionKind.IGNORE_IOTLB_INVALIDATION, type, at, "IQ descriptor")) {
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
                // no device has an ATC (ATS is not modelled): nothing to invalidate, nothing to wait for
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
                if (injected.fires(InjectionKind.IGNORE_IOTLB_INVALIDATION, type, at, "IQ descriptor")) {
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
                switch (g) {
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
        enabled = false;
        base = 0;
        entries = 0;
        wide = false;
    }
}
