package org.iommuemu.device.vtd;

import java.util.concurrent.atomic.LongAdder;
import org.iommuemu.device.machine.InterruptSink;
import org.iommuemu.device.regs.Field;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.xlate.XlateStats;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One VT-d interrupt event and its control, data and address registers (the fault event: FECTL, FEDATA, FEADDR,
 * FEUADDR; the invalidation completion event: IECTL, IEDATA, IEADDR, IEUADDR). VT-d signals events only as MSIs.
 *
 * <p>Semantics ({@code spec/VTD.md} §4, "Event semantics"): when the event is raised, IP is set; with IM clear the
 * MSI is sent at once and IP cleared; with IM set IP stays set and the MSI is sent when software clears IM. IP also
 * clears when software clears the status that caused it ({@link #statusCleared}). All methods run under the
 * register-file lock.
 */
final class EventInterrupt {
    private static final Logger LOG = LoggerFactory.getLogger(EventInterrupt.class);

    private final String iommu;
    private final String source;
    private final Field ip;
    private final Field im;
    private final Register data;
    private final Register addr;
    private final Register upper;
    private final InterruptSink sink;
    private final XlateStats stats;
    private final LongAdder interrupts;
    /** MSI writes that aborted (no architected report in VT-d: counted and logged). */
    final LongAdder aborted = new LongAdder();

    EventInterrupt(String iommu, String source, Register control, Register data, Register addr, Register upper,
            InterruptSink sink, XlateStats stats, LongAdder interrupts) {
        this.iommu = iommu;
        this.source = source;
        this.ip = control.fieldHandle("IP");
        this.im = control.fieldHandle("IM");
        this.data = data;
        this.addr = addr;
        this.upper = upper;
        this.sink = sink;
        this.stats = stats;
        this.interrupts = interrupts;
        control.afterWrite((oldValue, newValue, written, mask) -> {
            if (im.isSet(oldValue) && !im.isSet(newValue) && ip.isSet()) {
                send();
            }
        });
    }

    /** The event occurred. */
    void raise() {
        if (im.isSet()) {
            ip.set(true);
        } else {
            send();
        }
    }

    /** Software cleared every status condition of this event: a pending, masked event is dropped. */
    void statusCleared() {
        ip.set(false);
    }

    /** An MSI with nothing behind it (INTERRUPT_SPURIOUS): IP and the mask are left as they are. */
    void spurious() {
        msi();
    }

    private void send() {
        ip.set(false);
        msi();
    }

    private void msi() {
        long address = (upper.value() << 32) | (addr.value() & ~3L & 0xFFFF_FFFFL);
        interrupts.increment();
        stats.msiWrite();
        if (!sink.msi(iommu, source, address, (int) data.value())) {
            aborted.increment();
            if (LOG.isDebugEnabled()) {
                LOG.debug("{}: {} MSI to {} aborted", iommu, source, Long.toHexString(address));
            }
        }
    }

    /** Whether the event is pending behind its mask. */
    boolean pending() {
        return ip.isSet();
    }
}
