package org.iommuemu.core.driver.smmuv3;

import java.lang.System.Logger.Level;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.core.smmuv3.SmmuRegs;

/**
 * The driver's side of the event queue ({@code spec/SMMUV3.md} §4, §8), consumed as Linux's
 * {@code arm_smmu_evtq_thread} does: records between CONS and PROD are read, decoded with {@link EventRecord}
 * and handed to the listeners; EVENTQ_CONS is written after each record so the SMMU can reuse the slot; PROD is
 * read again until the queue is empty. An overflow (EVENTQ_PROD.OVFLG differing from the OVACKFLG the driver
 * last wrote) is reported once and acknowledged at the end by copying OVFLG into EVENTQ_CONS.OVACKFLG.
 *
 * <p>One drain at a time (a lock); the words of a record are read into a preallocated buffer, so a drain
 * allocates only the decoded records it hands out.
 */
final class EventQueue {
    private static final System.Logger log = System.getLogger(EventQueue.class.getName());

    private final SmmuHost host;
    private final PhysicalMemory memory;
    private final SmmuV3Listeners listeners;
    private final long base;
    private final int log2;
    private final long[] words = new long[EventRecord.DWORDS];

    /** The CONS value last written: index, wrap and OVACKFLG. */
    private int cons;
    private long events;
    private long overflows;

    EventQueue(SmmuHost host, SmmuV3Listeners listeners, long base, int log2) {
        this.host = host;
        this.memory = host.memory();
        this.listeners = listeners;
        this.base = base;
        this.log2 = log2;
    }

    /** The EVENTQ_BASE value: the queue, its size and WA, as Linux programs it. */
    long baseRegister() {
        return new QueueBase(base, log2, true).encode();
    }

    int log2() {
        return log2;
    }

    /** Reads every record the SMMU has written, hands each to the listeners, and returns how many there were. */
    synchronized int drain() {
        int drained = 0;
        int prod = readProd();
        boolean overflowReported = false;
        while (true) {
            while (!QueuePointer.isEmpty(prod, cons, log2)) {
                long at = base + QueuePointer.entryOffset(cons, log2, QueuePointer.EVENTQ_ENTRY_SIZE);
                try {
                    memory.read64s(at, words, 0, EventRecord.DWORDS);
                } catch (MemoryAccessException e) {
                    throw new SmmuV3DriverException(SmmuV3DriverException.Kind.MEMORY,
                            "reading the event record at 0x" + Long.toHexString(at) + " failed: " + e.getMessage(), e);
                }
                cons = QueuePointer.inc(cons, log2); // OVACKFLG (bit 31) unchanged until the queue is drained
                host.mmioWrite(SmmuRegs.EVENTQ_CONS, 4, Integer.toUnsignedLong(cons));
                EventRecord event;
                try {
                    event = EventRecord.decode(words);
                } catch (IllegalArgumentException e) {
                    log.log(Level.WARNING, () -> "undecodable event record 0x" + Long.toHexString(words[0]) + ": "
                            + e.getMessage());
                    continue;
                }
                events++;
                drained++;
                if (log.isLoggable(Level.DEBUG)) {
                    log.log(Level.DEBUG, "event " + EventType.name(event.type()) + " " + event);
                }
                listeners.event(event);
            }
            if (!overflowReported && QueuePointer.overflowActive(prod, cons)) {
                overflowReported = true;
                overflows++;
                log.log(Level.WARNING, "event queue overflow: records were lost");
                listeners.eventOverflow();
            }
            prod = readProd();
            if (QueuePointer.isEmpty(prod, cons, log2)) {
                break;
            }
        }
        if (QueuePointer.overflowActive(prod, cons)) {
            if (!overflowReported) { // OVFLG toggled after the last look
                overflows++;
                log.log(Level.WARNING, "event queue overflow: records were lost");
                listeners.eventOverflow();
            }
            cons = QueuePointer.acknowledgeOverflow(cons, prod);
            host.mmioWrite(SmmuRegs.EVENTQ_CONS, 4, Integer.toUnsignedLong(cons));
        }
        return drained;
    }

    private int readProd() {
        return (int) host.mmioRead(SmmuRegs.EVENTQ_PROD, 4);
    }

    synchronized long events() {
        return events;
    }

    synchronized long overflows() {
        return overflows;
    }
}
