package org.iommuemu.device.inject;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.device.trace.TraceKind;
import org.iommuemu.device.trace.Tracer;

/**
 * Every firing of every fault of one machine, numbered from 1; the last {@link #KEPT} records are kept for
 * {@link #since} (older ones are counted in the sequence numbers only). Thread-safe.
 */
public final class InjectionLog {
    /** Records kept. */
    public static final int KEPT = 1024;

    /**
     * One firing.
     *
     * @param sequence  from 1, over all faults
     * @param faultId   the fault that fired
     * @param kind      its kind
     * @param iommu     the instance it happened on, or empty
     * @param simTimeNs the instance's simulated time then (0 without an instance)
     * @param code      the opcode / descriptor type involved, or 0
     * @param address   the guest physical address involved (queue entry, corrupted word)
     * @param detail    what was done, for people
     */
    public record Record(long sequence, long faultId, InjectionKind kind, String iommu, long simTimeNs, int code,
            long address, String detail) {}

    private final Record[] ring = new Record[KEPT];
    private long last;
    private volatile Tracer tracer = Tracer.NONE;

    /** Records every firing into {@code tracer} too. */
    void tracer(Tracer tracer) {
        this.tracer = tracer;
    }

    synchronized Record add(long faultId, InjectionKind kind, String iommu, long simTimeNs, int code, long address,
            String detail) {
        Record r = new Record(++last, faultId, kind, iommu, simTimeNs, code, address, detail);
        ring[(int) ((last - 1) % KEPT)] = r;
        Tracer t = tracer;
        if (t.on()) {
            int track = t.track(iommu);
            t.recordAt(track >= 0 ? t.simTime(track) : simTimeNs, TraceKind.INJECTION, track, 0, -1, address, 0,
                    kind.number(), 0, faultId, 0);
        }
        return r;
    }

    /** The sequence number of the newest record, 0 before any. */
    public synchronized long lastSequence() {
        return last;
    }

    /**
     * Kept records with a sequence number above {@code after} (unsigned, as the bus's uint64 gives it: any value
     * at or above the newest sequence gives none), oldest first.
     */
    public synchronized List<Record> since(long after) {
        List<Record> out = new ArrayList<>();
        if (Long.compareUnsigned(after, last) >= 0) {
            return out;
        }
        long first = Math.max(Math.max(after + 1, last - KEPT + 1), 1);
        for (long s = first; s <= last; s++) {
            out.add(ring[(int) ((s - 1) % KEPT)]);
        }
        return out;
    }
}
