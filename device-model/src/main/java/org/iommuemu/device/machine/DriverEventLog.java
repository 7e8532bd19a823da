package org.iommuemu.device.machine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.iommuemu.core.driver.smmuv3.SmmuV3Listener;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;

/**
 * What the machine's driver has read from one instance since it took the instance over — SMMUv3 event records,
 * VT-d fault records: counts by type (SMMUv3 event type, VT-d fault reason), overflows, global and command errors
 * (SMMUv3 GERROR and command-queue errors, VT-d invalidation-queue errors), and the last {@link #KEPT} records
 * with sequence numbers, so that a client polling {@code Driver.Events} can page through them without missing
 * any it has not fallen too far behind on.
 *
 * <p>A listener on the driver: it is called with the driver's locks held, so it only updates its own state
 * under its own monitor. Thread-safe.
 */
public final class DriverEventLog implements SmmuV3Listener {
    /** Records kept for {@link #since}. */
    public static final int KEPT = 256;

    /**
     * One record as the bus reports it.
     *
     * @param type the SMMUv3 event type or the VT-d fault reason
     * @param typeName its name in the specification
     * @param substreamId the SubstreamID / PASID, or -1 when the record has none
     * @param read whether the faulting access was a read
     * @param stage2 whether the fault was in stage 2 (SMMUv3 S2)
     * @param ipa the intermediate address of a stage-2 fault
     */
    public record Event(int type, String typeName, int streamId, int substreamId, long inputAddress, boolean read,
            boolean stage2, long ipa) {
        static Event of(EventRecord r) {
            return new Event(r.type(), EventType.name(r.type()), r.streamId(), r.ssv() ? r.substreamId() : -1,
                    r.inputAddr(), r.rnw(), r.s2(), r.ipa());
        }
    }

    /** One record and its sequence number (1 for the first the driver read). */
    public record Entry(long sequence, Event event) {}

    /** A consistent copy of the log's counters. */
    public record Snapshot(Map<Integer, Long> countsByType, Map<Integer, String> typeNames, long overflows,
            long globalErrors, long commandErrors, List<Entry> records) {}

    private final Map<Integer, Long> counts = new TreeMap<>();
    private final Map<Integer, String> names = new TreeMap<>();
    private final ArrayDeque<Entry> recent = new ArrayDeque<>(KEPT);
    private long sequence;
    private long overflows;
    private long globalErrors;
    private long commandErrors;

    @Override
    public void onEvent(EventRecord event) {
        record(Event.of(event));
    }

    /** Logs one record. */
    public synchronized void record(Event event) {
        counts.merge(event.type(), 1L, Long::sum);
        names.putIfAbsent(event.type(), event.typeName());
        if (recent.size() == KEPT) {
            recent.removeFirst();
        }
        recent.addLast(new Entry(++sequence, event));
    }

    /** Records were lost (SMMUv3 event-queue overflow, VT-d fault overflow FSTS.PFO). */
    @Override
    public synchronized void onEventOverflow() {
        overflows++;
    }

    @Override
    public synchronized void onGlobalError(int bit) {
        globalErrors++;
    }

    @Override
    public synchronized void onCommandError(int cerror, int index, long dw0, long dw1) {
        commandErrors++;
    }

    /** The counters, and the kept records with a sequence number above {@code afterSequence}, oldest first. */
    public synchronized Snapshot since(long afterSequence) {
        List<Entry> records = new ArrayList<>();
        for (Entry e : recent) {
            if (Long.compareUnsigned(e.sequence(), afterSequence) > 0) {
                records.add(e);
            }
        }
        return new Snapshot(new TreeMap<>(counts), new TreeMap<>(names), overflows, globalErrors, commandErrors,
                records);
    }
}
