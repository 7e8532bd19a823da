package org.iommuemu.device.machine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.iommuemu.core.driver.smmuv3.SmmuV3Listener;
import org.iommuemu.core.smmuv3.EventRecord;

/**
 * What the machine's driver has read from one SMMUv3 instance's event queue since it took the instance over:
 * counts by event type, overflows, global and command errors, and the last {@link #KEPT} records with sequence
 * numbers, so that a client polling {@code Driver.Events} can page through them without missing any it has not
 * fallen too far behind on.
 *
 * <p>A listener on the driver: it is called with the driver's queue lock held, so it only updates its own state
 * under its own monitor. Thread-safe.
 */
public final class DriverEventLog implements SmmuV3Listener {
    /** Records kept for {@link #since}. */
    public static final int KEPT = 256;

    /** One record and its sequence number (1 for the first the driver read). */
    public record Entry(long sequence, EventRecord record) {}

    /** A consistent copy of the log's counters. */
    public record Snapshot(Map<Integer, Long> countsByType, long overflows, long globalErrors, long commandErrors,
            List<Entry> records) {}

    private final Map<Integer, Long> counts = new TreeMap<>();
    private final ArrayDeque<Entry> recent = new ArrayDeque<>(KEPT);
    private long sequence;
    private long overflows;
    private long globalErrors;
    private long commandErrors;

    @Override
    public synchronized void onEvent(EventRecord event) {
        counts.merge(event.type(), 1L, Long::sum);
        if (recent.size() == KEPT) {
            recent.removeFirst();
        }
        recent.addLast(new Entry(++sequence, event));
    }

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
        return new Snapshot(new TreeMap<>(counts), overflows, globalErrors, commandErrors, records);
    }
}
