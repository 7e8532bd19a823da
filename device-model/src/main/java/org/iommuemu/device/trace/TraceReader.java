package org.iommuemu.device.trace;

import java.lang.invoke.VarHandle;

/**
 * One consumer of a {@link Tracer}'s ring, with its own position: it copies records out in order and counts the
 * ones the ring overwrote before it got to them. Not thread-safe (one draining thread); {@link #close} it.
 */
public final class TraceReader implements AutoCloseable {
    private final Tracer tracer;
    private final Tracer.Ring ring;
    private long cursor;
    private long dropped;
    private boolean closed;

    TraceReader(Tracer tracer, Tracer.Ring ring, long start) {
        this.tracer = tracer;
        this.ring = ring;
        this.cursor = start;
    }

    /**
     * Copies up to {@code max} records into {@code dst} ({@link Tracer#STRIDE} longs each), oldest first, and
     * returns how many. Stops early at a record still being written.
     */
    public int poll(long[] dst, int max) {
        Tracer.Ring r = ring;
        int n = 0;
        while (n < max) {
            long head = tracer.head();
            if (cursor >= head) {
                break;
            }
            if (head - cursor > r.capacity) {
                long skip = head - r.capacity - cursor;
                dropped += skip;
                cursor += skip;
            }
            int slot = (int) cursor & r.mask;
            long s = Tracer.seq(r, slot);
            if (s == cursor + 1) {
                System.arraycopy(r.data, slot * Tracer.STRIDE, dst, n * Tracer.STRIDE, Tracer.STRIDE);
                VarHandle.loadLoadFence();
                if (Tracer.seq(r, slot) == cursor + 1) {
                    n++;
                } else {
                    dropped++; // overwritten while copied
                }
                cursor++;
            } else if (s > cursor + 1) {
                dropped++; // overwritten before we got to it
                cursor++;
            } else {
                break; // still being written
            }
        }
        return n;
    }

    /** The sequence read next: every record before it was returned or dropped. */
    public long cursor() {
        return cursor;
    }

    /** Records lost so far. */
    public long dropped() {
        return dropped;
    }

    /** Capacity of the ring in records. */
    public int capacity() {
        return ring.capacity;
    }

    /** Stops reading; recording stops when the last reader closes. Idempotent. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            tracer.close(this);
        }
    }
}
