package org.iommuemu.device.trace;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * The trace recorder of one machine: a bounded ring of primitive records that the IOMMU instances, the DMA
 * engine, the fault injector and the driver service write into, and that {@link TraceReader}s (the
 * {@code Telemetry.Trace} streams) drain.
 *
 * <p>Off (no reader open) a hook costs one volatile read of {@link #on()} and a predictable branch; the ring is not
 * even allocated. On, a record is a sequence claim ({@code LOCK XADD}), a dozen {@code long} stores and a release
 * store: no allocation, no boxing, no lock. Records are {@link #STRIDE} longs (see the {@code F_} offsets);
 * their meaning per kind is {@link TraceKind}'s.
 *
 * <p>Bounded: a writer never waits for a reader. When a reader falls more than the capacity behind, the records it
 * missed are gone and it counts them as dropped. Each slot carries the sequence number of the record in it (plus
 * one, published last), so a reader detects a slot that was overwritten while it copied it.
 */
public final class Tracer {
    /** Longs per record. */
    public static final int STRIDE = 12;
    /** Record field offsets. */
    public static final int F_KIND = 0;
    public static final int F_IOMMU = 1;
    public static final int F_SIM = 2;
    public static final int F_WALL = 3;
    public static final int F_STREAM = 4;
    public static final int F_SUBSTREAM = 5;
    public static final int F_ADDRESS = 6;
    public static final int F_SIZE = 7;
    public static final int F_CODE = 8;
    public static final int F_RESULT = 9;
    public static final int F_EXTRA = 10;
    /** Simulated duration (low 48 bits) and walk reads (high 16 bits). */
    public static final int F_DURATION = 11;

    /** Ring capacity in records unless {@link #capacity(int)} says otherwise. */
    public static final int DEFAULT_CAPACITY = 1 << 16;
    /** The largest ring capacity. */
    public static final int MAX_CAPACITY = 1 << 22;

    /** A tracer that never records (for devices outside a machine). */
    public static final Tracer NONE = new Tracer(List.of(), new LongSupplier[0], new Object[0]);

    private static final VarHandle SEQ = MethodHandles.arrayElementVarHandle(long[].class);

    /** The ring's storage, allocated when the first reader opens. */
    static final class Ring {
        final int capacity;
        final int mask;
        final long[] data;
        /** Per slot: the sequence of the record in it plus one, 0 while being written or never written. */
        final long[] seqs;

        Ring(int capacity) {
            this.capacity = capacity;
            this.mask = capacity - 1;
            this.data = new long[capacity * STRIDE];
            this.seqs = new long[capacity];
        }
    }

    private final List<String> names;
    private final LongSupplier[] clocks;
    private final Object[] keys;
    private final AtomicLong next = new AtomicLong();
    private volatile boolean on;
    private volatile Ring ring;
    private int capacity = DEFAULT_CAPACITY;
    private int readers;

    /**
     * A tracer for instances {@code names} (their index is their track), whose simulated clocks {@code clocks}
     * read, found by identity of {@code keys} (the device objects) in {@link #track}.
     */
    public Tracer(List<String> names, LongSupplier[] clocks, Object[] keys) {
        if (names.size() != clocks.length || names.size() != keys.length) {
            throw new IllegalArgumentException("one name, clock and key per instance");
        }
        this.names = List.copyOf(names);
        this.clocks = clocks.clone();
        this.keys = keys.clone();
    }

    /** Whether records are being taken: the one check every hook makes. */
    public boolean on() {
        return on;
    }

    /** The instance names, by track. */
    public List<String> names() {
        return names;
    }

    /** The track of {@code device} (compared by identity), or -1. Allocation-free. */
    public int track(Object device) {
        Object[] k = keys;
        for (int i = 0; i < k.length; i++) {
            if (k[i] == device) {
                return i;
            }
        }
        return -1;
    }

    /** The track of the instance named {@code name}, or -1. */
    public int track(String name) {
        return names.indexOf(name);
    }

    /** The simulated time of instance {@code track}; for -1, the latest of all instances. */
    public long simTime(int track) {
        if (track >= 0) {
            return clocks[track].getAsLong();
        }
        long max = 0;
        for (LongSupplier c : clocks) {
            max = Math.max(max, c.getAsLong());
        }
        return max;
    }

    /** Records a {@code kind} record of instance {@code track} (-1: none) at its simulated time now. */
    public void record(int kind, int track, long stream, long substream, long address, long size, long code,
            long result, long extra) {
        recordAt(simTime(track), kind, track, stream, substream, address, size, code, result, extra, 0);
    }

    /**
     * Records a record at simulated time {@code sim} with a simulated {@code duration} (48 bits; the high 16 bits
     * of that field carry a translation's walk reads). Does nothing when tracing is off.
     */
    public void recordAt(long sim, int kind, int track, long stream, long substream, long address, long size,
            long code, long result, long extra, long duration) {
        Ring r = ring;
        if (r == null || !on) {
            return;
        }
        long seq = next.getAndIncrement();
        int slot = (int) seq & r.mask;
        SEQ.setOpaque(r.seqs, slot, 0L);
        VarHandle.storeStoreFence();
        long[] d = r.data;
        int at = slot * STRIDE;
        d[at + F_KIND] = kind;
        d[at + F_IOMMU] = track;
        d[at + F_SIM] = sim;
        d[at + F_WALL] = System.nanoTime();
        d[at + F_STREAM] = stream;
        d[at + F_SUBSTREAM] = substream;
        d[at + F_ADDRESS] = address;
        d[at + F_SIZE] = size;
        d[at + F_CODE] = code;
        d[at + F_RESULT] = result;
        d[at + F_EXTRA] = extra;
        d[at + F_DURATION] = duration;
        SEQ.setRelease(r.seqs, slot, seq + 1);
    }

    /** Records written so far (the next sequence number), 0 before any reader opened. */
    public long written() {
        return next.get();
    }

    /** The ring's capacity in records (as allocated, or as it will be). */
    public synchronized int capacity() {
        Ring r = ring;
        return r != null ? r.capacity : capacity;
    }

    /**
     * Sets the ring's capacity (a power of two, {@link #MIN_CAPACITY} .. {@link #MAX_CAPACITY}); it takes effect
     * when the ring is next allocated (when no reader is open).
     *
     * @throws IllegalArgumentException for another value
     */
    public synchronized void capacity(int records) {
        capacity = checkCapacity("trace buffer", records);
        if (readers == 0) {
            ring = null;
        }
    }

    /** The smallest ring capacity. */
    public static final int MIN_CAPACITY = 16;
    /** Bytes of memory one record takes while the ring is allocated: its {@link #STRIDE} longs and its sequence. */
    public static final int BYTES_PER_RECORD = (STRIDE + 1) * Long.BYTES;

    /**
     * Checks a ring capacity a user gave: a power of two from {@link #MIN_CAPACITY} to {@link #MAX_CAPACITY}
     * records. {@code what} names the setting in the message (an option or a configuration key).
     *
     * @return {@code records} as an int
     * @throws IllegalArgumentException naming {@code what} for another value
     */
    public static int checkCapacity(String what, long records) {
        if (records < MIN_CAPACITY || records > MAX_CAPACITY || Long.bitCount(records) != 1) {
            throw new IllegalArgumentException(what + " must be a power of two from " + MIN_CAPACITY + " to "
                    + MAX_CAPACITY + " records, got " + records);
        }
        return (int) records;
    }

    /** Readers open now. */
    public synchronized int readers() {
        return readers;
    }

    /**
     * Opens a reader: recording is on while at least one is open. It starts at the next record written.
     */
    public synchronized TraceReader open() {
        if (ring == null) {
            ring = new Ring(capacity);
        }
        readers++;
        on = true;
        return new TraceReader(this, ring, next.get());
    }

    synchronized void close(TraceReader reader) {
        readers--;
        if (readers == 0) {
            on = false;
        }
    }

    long head() {
        return next.get();
    }

    static long seq(Ring r, int slot) {
        return (long) SEQ.getAcquire(r.seqs, slot);
    }
}
