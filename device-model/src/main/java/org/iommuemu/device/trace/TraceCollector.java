package org.iommuemu.device.trace;

import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.TraceBatch;
import org.iommuemu.proto.v1.TraceKind;
import org.iommuemu.proto.v1.TraceRecord;
import org.iommuemu.proto.v1.TraceRequest;

/**
 * The client side of {@code Telemetry.Trace}: subscribes, keeps the records that arrive (up to {@link #MAX_KEPT};
 * beyond that it counts them only), and lets the caller wait until it has everything the server recorded before a
 * point ({@link #awaitCaughtUp}). The scenario runner uses it for {@code --trace} and the HTML report in every
 * transport, since it is a bus client like any other.
 */
public final class TraceCollector implements AutoCloseable {
    /** Most records kept in memory. */
    public static final int MAX_KEPT = 2_000_000;

    private final List<TraceRecord> records = new ArrayList<>();
    private ClientCallStreamObserver<TraceRequest> call;
    private long idleCursor = -1;
    private long cursor;
    private long dropped;
    private long notKept;
    private long ringCapacity;
    private long batches;
    private StatusRuntimeException error;
    private boolean done;

    private TraceCollector() {
    }

    /**
     * Opens a trace of {@code iommus} (empty: all) and {@code kinds} (empty: all) on the server behind
     * {@code channel}, and waits (up to 10 s) until the server has started it.
     */
    public static TraceCollector start(Channel channel, List<String> iommus, List<TraceKind> kinds) {
        TraceCollector c = new TraceCollector();
        TelemetryGrpc.newStub(channel).trace(TraceRequest.newBuilder().addAllIommus(iommus).addAllKinds(kinds)
                .build(), c.new Observer());
        c.awaitFirstBatch(START_MILLIS);
        return c;
    }

    /** How long {@link #start} waits for the server to begin the stream (its first batch). */
    static final long START_MILLIS = 10_000;

    /**
     * Waits for the first batch: the server opens its reader before it sends one, so what happens after this
     * returns is in the trace. Returns early when the call fails (the error is reported by {@link #awaitCaughtUp}).
     */
    private synchronized void awaitFirstBatch(long timeoutMillis) {
        long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        try {
            while (batches == 0 && !done) {
                long left = end - System.nanoTime();
                if (left <= 0) {
                    return;
                }
                TimeUnit.NANOSECONDS.timedWait(this, left);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private final class Observer implements ClientResponseObserver<TraceRequest, TraceBatch> {
        @Override
        public void beforeStart(ClientCallStreamObserver<TraceRequest> requestStream) {
            synchronized (TraceCollector.this) {
                call = requestStream;
            }
        }

        @Override
        public void onNext(TraceBatch batch) {
            synchronized (TraceCollector.this) {
                for (TraceRecord r : batch.getRecordsList()) {
                    if (records.size() < MAX_KEPT) {
                        records.add(r);
                    } else {
                        notKept++;
                    }
                }
                batches++;
                cursor = batch.getCursor();
                dropped = batch.getDropped();
                ringCapacity = batch.getRingCapacity();
                if (batch.getIdle()) {
                    idleCursor = batch.getCursor();
                }
                TraceCollector.this.notifyAll();
            }
        }

        @Override
        public void onError(Throwable t) {
            synchronized (TraceCollector.this) {
                if (!done) {
                    error = t instanceof StatusRuntimeException s ? s : Status.fromThrowable(t).asRuntimeException();
                }
                done = true;
                TraceCollector.this.notifyAll();
            }
        }

        @Override
        public void onCompleted() {
            synchronized (TraceCollector.this) {
                done = true;
                TraceCollector.this.notifyAll();
            }
        }
    }

    /**
     * Waits until the server says this subscriber is caught up with sequence {@code written} (from
     * {@code StatsReply.trace_written}, read after the work to be seen), at most {@code timeoutMillis}.
     *
     * @return whether it got there
     * @throws StatusRuntimeException when the call failed (e.g. an older server without Trace: UNIMPLEMENTED)
     */
    public synchronized boolean awaitCaughtUp(long written, long timeoutMillis) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        while (idleCursor < written) {
            if (error != null) {
                throw error;
            }
            if (done) {
                return false;
            }
            long left = end - System.nanoTime();
            if (left <= 0) {
                return false;
            }
            TimeUnit.NANOSECONDS.timedWait(this, left);
        }
        return true;
    }

    /** The records so far, in arrival order (a copy). */
    public synchronized List<TraceRecord> records() {
        return List.copyOf(records);
    }

    /** Records the server dropped for this subscriber (the ring wrapped before they were sent). */
    public synchronized long dropped() {
        return dropped;
    }

    /** Records that arrived beyond {@link #MAX_KEPT} and were not kept. */
    public synchronized long notKept() {
        return notKept;
    }

    /** The server's ring capacity, in records (0 before the first batch). */
    public synchronized long ringCapacity() {
        return ringCapacity;
    }

    /** The last cursor the server reported. */
    public synchronized long cursor() {
        return cursor;
    }

    /** The call's error, or null. */
    public synchronized StatusRuntimeException error() {
        return error;
    }

    /** Cancels the call. */
    @Override
    public void close() {
        ClientCallStreamObserver<TraceRequest> c;
        synchronized (this) {
            done = true;
            c = call;
        }
        if (c != null) {
            c.cancel("trace collected", null);
        }
    }
}
