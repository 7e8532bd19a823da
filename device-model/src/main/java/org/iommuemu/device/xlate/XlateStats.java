package org.iommuemu.device.xlate;

import java.util.Collections;
import java.util.Objects;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import org.iommuemu.device.trace.TraceKind;
import org.iommuemu.device.trace.Tracer;

/**
 * The per-instance hardware counters the Telemetry service reports, each of which also charges its
 * {@link CostModel} cost to the instance's {@link SimClock}: one call per unit of work, from whichever thread
 * does it (bus threads for translations, the command processor for commands).
 *
 * <p>Commands are counted by opcode (SMMUv3 command opcode, VT-d descriptor type) and events by type (SMMUv3
 * event code, VT-d fault reason), each in a 256-entry array indexed by the low 8 bits.
 *
 * <p>Thread-safe and allocation-free: atomic counters only; {@link #snapshot()} allocates the immutable
 * {@link Snapshot}. Counters are read one after another, so a snapshot taken while work runs may show one
 * counter a unit ahead of another; each counter on its own is exact.
 */
public final class XlateStats {
    private final CostModel cost;
    private final SimClock clock;
    private final AtomicLong mmioAccesses = new AtomicLong();
    private final AtomicLong tableReads = new AtomicLong();
    private final AtomicLong tableWrites = new AtomicLong();
    private final AtomicLong queueReads = new AtomicLong();
    private final AtomicLong cacheHits = new AtomicLong();
    private final AtomicLong cacheMisses = new AtomicLong();
    private final AtomicLongArray commandsByOpcode = new AtomicLongArray(256);
    private final AtomicLong syncs = new AtomicLong();
    private final AtomicLongArray eventsByType = new AtomicLongArray(256);
    private final AtomicLong msiWrites = new AtomicLong();
    private final AtomicLong gerrors = new AtomicLong();
    /** The machine's trace recorder and this instance's track in it; set once, before the device is shared. */
    private Tracer tracer = Tracer.NONE;
    private int track = -1;

    /** Counters charging {@code cost} to {@code clock}. */
    public XlateStats(CostModel cost, SimClock clock) {
        this.cost = Objects.requireNonNull(cost, "cost");
        this.clock = Objects.requireNonNull(clock, "clock");
    }

    /** Counters with the default costs and a new clock. */
    public XlateStats() {
        this(CostModel.DEFAULTS, new SimClock());
    }

    /** Records commands, events and global errors into {@code tracer} as instance {@code track}. */
    public void tracer(Tracer tracer, int track) {
        this.tracer = Objects.requireNonNull(tracer, "tracer");
        this.track = track;
    }

    public CostModel cost() {
        return cost;
    }

    public SimClock clock() {
        return clock;
    }

    /** One register read or write by the driver. */
    public void mmioAccess() {
        mmioAccesses.incrementAndGet();
        clock.advance(cost.mmioAccessNs());
    }

    /** One table / configuration read by the walker or the configuration fetcher (one memory transaction). */
    public void tableRead() {
        tableReads.incrementAndGet();
        clock.advance(cost.tableReadNs());
    }

    /** One descriptor written back (access / dirty flag update). */
    public void tableWrite() {
        tableWrites.incrementAndGet();
        clock.advance(cost.tableWriteNs());
    }

    /** One command / invalidation-queue entry read. */
    public void queueRead() {
        queueReads.incrementAndGet();
        clock.advance(cost.queueReadNs());
    }

    /** One cache lookup (IOTLB, walk or configuration cache) that hit. */
    public void cacheHit() {
        cacheHits.incrementAndGet();
        clock.advance(cost.cacheHitNs());
    }

    /** One cache lookup that missed. */
    public void cacheMiss() {
        cacheMisses.incrementAndGet();
        clock.advance(cost.cacheMissNs());
    }

    /** One command processed; {@code opcode} is counted by its low 8 bits. */
    public void command(int opcode) {
        commandsByOpcode.incrementAndGet(opcode & 0xFF);
        clock.advance(cost.commandNs());
        Tracer t = tracer;
        if (t.on()) {
            t.record(TraceKind.COMMAND, track, 0, -1, 0, 0, opcode & 0xFF, 0, 0);
        }
    }

    /**
     * One CMD_SYNC / invalidation wait completed. The sync is also a command: count it with
     * {@link #command} as well, and its MSI or status write with {@link #msiWrite}.
     */
    public void sync() {
        syncs.incrementAndGet();
        clock.advance(cost.syncNs());
    }

    /** One event / fault record written; {@code type} is counted by its low 8 bits. */
    public void event(int type) {
        eventsByType.incrementAndGet(type & 0xFF);
        clock.advance(cost.eventWriteNs());
        Tracer t = tracer;
        if (t.on()) {
            t.record(TraceKind.EVENT, track, 0, -1, 0, 0, type & 0xFF, 0, 0);
        }
    }

    /** One MSI (or completion-status) write. */
    public void msiWrite() {
        msiWrites.incrementAndGet();
        clock.advance(cost.msiWriteNs());
    }

    /** One global error raised (SMMUv3 GERROR, VT-d IQE/ITE/ICE). Costs no time. */
    public void gerror() {
        gerrors.incrementAndGet();
        Tracer t = tracer;
        if (t.on()) {
            t.record(TraceKind.GLOBAL_ERROR, track, 0, -1, 0, 0, 0, 0, 0);
        }
    }

    /** Charges time the counters do not cover. */
    public void charge(long ns) {
        clock.advance(ns);
    }

    /** The counters now, with the simulated time. */
    public Snapshot snapshot() {
        SortedMap<Integer, Long> commands = nonZero(commandsByOpcode);
        SortedMap<Integer, Long> events = nonZero(eventsByType);
        return new Snapshot(clock.now(), mmioAccesses.get(), tableReads.get(), tableWrites.get(), queueReads.get(),
                cacheHits.get(), cacheMisses.get(), sum(commands), commands, syncs.get(), sum(events), events,
                msiWrites.get(), gerrors.get());
    }

    private static SortedMap<Integer, Long> nonZero(AtomicLongArray counts) {
        TreeMap<Integer, Long> map = new TreeMap<>();
        for (int i = 0; i < counts.length(); i++) {
            long n = counts.get(i);
            if (n != 0) {
                map.put(i, n);
            }
        }
        return map;
    }

    private static long sum(SortedMap<Integer, Long> counts) {
        long total = 0;
        for (long n : counts.values()) {
            total += n;
        }
        return total;
    }

    /**
     * An immutable copy of the counters.
     *
     * @param simNanos         simulated nanoseconds of the instance's {@link SimClock}
     * @param commands         every command counted, all opcodes together
     * @param commandsByOpcode the non-zero command counts, by opcode
     * @param events           every event counted, all types together
     * @param eventsByType     the non-zero event counts, by type
     */
    public record Snapshot(
            long simNanos,
            long mmioAccesses,
            long tableReads,
            long tableWrites,
            long queueReads,
            long cacheHits,
            long cacheMisses,
            long commands,
            SortedMap<Integer, Long> commandsByOpcode,
            long syncs,
            long events,
            SortedMap<Integer, Long> eventsByType,
            long msiWrites,
            long gerrors) {

        /** Copies the maps, so that a snapshot stays what it was. */
        public Snapshot {
            commandsByOpcode = Collections.unmodifiableSortedMap(new TreeMap<>(commandsByOpcode));
            eventsByType = Collections.unmodifiableSortedMap(new TreeMap<>(eventsByType));
        }

        /** How many commands with this opcode were counted. */
        public long commands(int opcode) {
            return commandsByOpcode.getOrDefault(opcode & 0xFF, 0L);
        }

        /** How many events of this type were counted. */
        public long events(int type) {
            return eventsByType.getOrDefault(type & 0xFF, 0L);
        }
    }
}
