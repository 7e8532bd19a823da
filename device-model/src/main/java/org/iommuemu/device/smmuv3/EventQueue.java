package org.iommuemu.device.smmuv3;

import java.util.concurrent.atomic.LongAdder;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.regs.Field;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.regs.RegisterFile;
import org.iommuemu.device.xlate.XlateStats;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The event queue (spec §4, §8): records written at EVENTQ_PROD in guest memory while CR0.EVENTQEN is set.
 * When the queue is full the record is discarded and EVENTQ_PROD.OVFLG toggles, once, until software
 * acknowledges by copying it into EVENTQ_CONS.OVACKFLG; records are never lost without that flag. A write that
 * aborts raises GERROR.EVENTQ_ABT_ERR. After a record, the event interrupt fires if IRQ_CTRL.EVENTQ_IRQEN.
 *
 * <p>An injected {@link InjectionKind#EVENT_QUEUE_OVERFLOW} makes the queue behave as full for the record at hand:
 * it is discarded through the same overflow path.
 */
final class EventQueue {
    private static final Logger log = LoggerFactory.getLogger(EventQueue.class);

    private final PhysicalMemory memory;
    private final XlateStats stats;
    private final Signals signals;
    private final Object lock;
    private final int maxLog2;
    private final Field enabled;
    private final Field irqEnabled;
    private final Register base;
    private final Register prod;
    private final Register cons;
    private final Register cfg0;
    private final Register cfg1;
    private final InstanceFaults faults;
    private final long[] words = new long[4];
    final LongAdder written = new LongAdder();
    final LongAdder lost = new LongAdder();

    EventQueue(PhysicalMemory memory, XlateStats stats, Signals signals, RegisterFile f, int maxLog2,
            InstanceFaults faults) {
        this.faults = faults;
        this.memory = memory;
        this.stats = stats;
        this.signals = signals;
        this.lock = f.lock();
        this.maxLog2 = maxLog2;
        this.enabled = f.register("CR0ACK").fieldHandle("EVENTQEN");
        this.irqEnabled = f.register("IRQ_CTRLACK").fieldHandle("EVENTQ_IRQEN");
        this.base = f.register("EVENTQ_BASE");
        this.prod = f.register("EVENTQ_PROD");
        this.cons = f.register("EVENTQ_CONS");
        this.cfg0 = f.register("EVENTQ_IRQ_CFG0");
        this.cfg1 = f.register("EVENTQ_IRQ_CFG1");
    }

    /** Records {@code event}; returns whether it reached the queue. */
    boolean write(EventRecord event) {
        synchronized (lock) {
            if (!enabled.isSet()) {
                lost.increment();
                return false;
            }
            long b = base.value();
            int log2 = QueueBase.effectiveLog2Size(b, maxLog2);
            int p = (int) prod.value();
            int c = (int) cons.value();
            if (QueuePointer.isFull(p, c, log2) || faults.any() && faults.firing(InjectionKind.EVENT_QUEUE_OVERFLOW,
                    event.type(), Integer.toUnsignedLong(event.streamId()), false, 0,
                    QueueBase.entryAddress(b, log2, p, QueuePointer.EVENTQ_ENTRY_SIZE), "event queue entry") != null) {
                if (!QueuePointer.overflowActive(p, c)) {
                    prod.set(Integer.toUnsignedLong(QueuePointer.toggleOverflow(p)));
                }
                lost.increment();
                return false;
            }
            event.encode(words);
            long at = QueueBase.entryAddress(b, log2, p, QueuePointer.EVENTQ_ENTRY_SIZE);
            try {
                memory.write64s(at, words, 0, 4);
            } catch (MemoryAccessException e) {
                log.debug("event queue write at {} aborted", Long.toHexString(at));
                lost.increment();
                signals.raise(Gerror.EVENTQ_ABT_ERR);
                return false;
            }
            prod.set(Integer.toUnsignedLong(QueuePointer.inc(p, log2)));
            written.increment();
            stats.event(event.type());
            if (irqEnabled.isSet()) {
                signals.signal("eventq", cfg0, cfg1, Gerror.MSI_EVENTQ_ABT_ERR);
            }
            return true;
        }
    }
}
