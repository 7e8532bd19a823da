package org.iommuemu.device.vtd;

import static org.iommuemu.core.vtd.VtdRegs.FRCD_HI_F;
import static org.iommuemu.core.vtd.VtdRegs.FRCD_HI_FR;
import static org.iommuemu.core.vtd.VtdRegs.FRCD_HI_PP;
import static org.iommuemu.core.vtd.VtdRegs.FRCD_HI_PRIV;
import static org.iommuemu.core.vtd.VtdRegs.FRCD_HI_EXE;
import static org.iommuemu.core.vtd.VtdRegs.FRCD_HI_PV;
import static org.iommuemu.core.vtd.VtdRegs.FRCD_HI_SID;
import static org.iommuemu.core.vtd.VtdRegs.FRCD_HI_T;
import static org.iommuemu.core.vtd.VtdRegs.FSTS_FRI;
import static org.iommuemu.core.vtd.VtdRegs.FSTS_ICE;
import static org.iommuemu.core.vtd.VtdRegs.FSTS_IQE;
import static org.iommuemu.core.vtd.VtdRegs.FSTS_ITE;
import static org.iommuemu.core.vtd.VtdRegs.FSTS_PFO;
import static org.iommuemu.core.vtd.VtdRegs.FSTS_PPF;

import java.util.concurrent.atomic.LongAdder;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.xlate.XlateStats;

/**
 * Primary fault logging of a VT-d unit ({@code spec/VTD.md} §4; VT-d "Primary Fault Logging"): the fault recording
 * registers, FSTS and the fault event.
 *
 * <ul>
 *   <li>A fault is dropped while FSTS.PFO is set, and collapsed into a pending record (F=1) of the same source id
 *       (the repeated faults of one device fill no more records).</li>
 *   <li>Otherwise it goes to the next record in round-robin order; if that record still holds a fault, PFO is set
 *       and the fault dropped. A written record has FI (address bits 63:12), SID, FR, T (1 read, 0 write), PRIV,
 *       EXE, PP and PV (when the request carried a PASID), and F=1.</li>
 *   <li>FSTS.PPF is the OR of every record's F; when it goes from 0 to 1, FSTS.FRI names the record.</li>
 *   <li>The fault event (FECTL) is raised when a status condition (PPF, PFO, IQE, ICE, ITE) appears while none was
 *       pending; once software has cleared them all, a masked pending event is dropped.</li>
 * </ul>
 *
 * <p>An injected {@link InjectionKind#EVENT_QUEUE_OVERFLOW} fires where a fault would be written into a record: the
 * fault is dropped and PFO set, as when the next record is still full.
 *
 * <p>{@link #report} is called by translating threads and takes the register-file lock; it allocates nothing.
 */
final class FaultRecording implements FaultReporter {
    private static final long CONDITIONS =
            1L << FSTS_PPF | 1L << FSTS_PFO | 1L << FSTS_IQE | 1L << FSTS_ICE | 1L << FSTS_ITE;

    private final Object lock;
    private final Register fsts;
    private final Register[] lo;
    private final Register[] hi;
    private final EventInterrupt event;
    private final XlateStats stats;
    private final InstanceFaults injected;
    private int next;

    /** Faults written into a record. */
    final LongAdder recorded = new LongAdder();
    /** Faults absorbed by a pending record of the same source. */
    final LongAdder collapsed = new LongAdder();
    /** Faults dropped because the records were full or PFO was set. */
    final LongAdder dropped = new LongAdder();

    FaultRecording(VtdRegisters regs, EventInterrupt event, XlateStats stats, InstanceFaults injected) {
        this.injected = injected;
        this.lock = regs.file.lock();
        this.fsts = regs.fsts;
        this.lo = regs.frcdLo;
        this.hi = regs.frcdHi;
        this.event = event;
        this.stats = stats;
        fsts.afterWrite((oldValue, newValue, written, mask) -> statusChanged());
        for (Register r : hi) {
            r.afterWrite((oldValue, newValue, written, mask) -> statusChanged());
        }
    }

    @Override
    public void report(int sourceId, int pasid, long address, int reason, boolean write, boolean priv,
            boolean exec) {
        synchronized (lock) {
            long status = fsts.value();
            if ((status & 1L << FSTS_PFO) != 0) {
                dropped.increment();
                return;
            }
            for (Register r : hi) {
                long v = r.value();
                if ((v & 1L << FRCD_HI_F) != 0 && (int) ((v >>> FRCD_HI_SID) & 0xFFFF) == (sourceId & 0xFFFF)) {
                    collapsed.increment();
                    return;
                }
            }
            int n = next;
            if ((hi[n].value() & 1L << FRCD_HI_F) != 0 || injected.any() && injected.firing(
                    InjectionKind.EVENT_QUEUE_OVERFLOW, reason & 0xFF, sourceId & 0xFFFF, false, 0, address,
                    "fault record " + n + " for address") != null) {
                dropped.increment();
                setStatus(status, status | 1L << FSTS_PFO);
                return;
            }
            next = n + 1 == hi.length ? 0 : n + 1;
            lo[n].set(address & ~0xFFFL);
            long record = (long) (sourceId & 0xFFFF) << FRCD_HI_SID
                    | (long) (reason & 0xFF) << FRCD_HI_FR
                    | (write ? 0 : 1L << FRCD_HI_T)
                    | (priv ? 1L << FRCD_HI_PRIV : 0)
                    | (exec ? 1L << FRCD_HI_EXE : 0)
                    | 1L << FRCD_HI_F;
            if (pasid >= 0) {
                record |= 1L << FRCD_HI_PP | (long) (pasid & 0xFFFFF) << FRCD_HI_PV;
            }
            hi[n].set(record);
            recorded.increment();
            stats.event(reason);
            long now = status | 1L << FSTS_PPF;
            if ((status & 1L << FSTS_PPF) == 0) {
                now = (now & ~(0xFFL << FSTS_FRI)) | (long) n << FSTS_FRI;
            }
            setStatus(status, now);
        }
    }

    /**
     * Sets an invalidation-queue error condition (FSTS.IQE, ICE or ITE); raises the fault event when no condition
     * was pending. The caller holds the register-file lock.
     */
    void raiseQueueError(int fstsBit) {
        long status = fsts.value();
        setStatus(status, status | 1L << fstsBit);
    }

    /** Whether FSTS.{@code bit} is set. */
    boolean status(int bit) {
        return (fsts.value() & 1L << bit) != 0;
    }

    private void setStatus(long before, long after) {
        fsts.set(after);
        if ((before & CONDITIONS) == 0 && (after & CONDITIONS) != 0) {
            event.raise();
        }
    }

    /** After software cleared a record's F or an FSTS bit: PPF follows the records, and an idle event clears. */
    private void statusChanged() {
        boolean pending = false;
        for (Register r : hi) {
            pending |= (r.value() & 1L << FRCD_HI_F) != 0;
        }
        long status = fsts.value();
        long now = pending ? status | 1L << FSTS_PPF : status & ~(1L << FSTS_PPF);
        if (now != status) {
            fsts.set(now);
        }
        if ((now & CONDITIONS) == 0) {
            event.statusCleared();
        }
    }

    /** Power-on state: the round-robin pointer back to record 0. The caller holds the lock. */
    void reset() {
        next = 0;
    }
}
