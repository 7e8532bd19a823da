package org.iommuemu.device.machine;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One IOMMU instance's side of ATS (docs/ATS.md): it hands the ATC invalidations its queue consumes (SMMUv3 ATC_INV,
 * VT-d device-TLB invalidations) to the devices that hold ATCs, tracks which are still without a completion, and
 * tells the queue, at its next CMD_SYNC / invalidation wait, whether every one has completed, some are still
 * outstanding (the queue stalls there) or one has timed out (the sync fails: CERROR_ATC_INV_SYNC / ITE).
 *
 * <p>A device with an ATC is an {@link Endpoint}: the bus registers one per DMA session attached with ATS, and the
 * device's AtcInvalidations stream reads from it. An invalidation for a stream with no endpoint completes at once
 * (there is no ATC to invalidate). An endpoint holds at most {@link #MAX_QUEUED} invalidations not yet sent to its
 * device; one more counts as not completed (the sync fails at once), so a device that does not read cannot make the
 * server buffer without bound. When a device goes away (its stream or session ends) its outstanding invalidations
 * count as timed out at once: no completion can come.
 *
 * <p>Waking: when the last outstanding invalidation completes or the earliest deadline passes, the port runs the
 * queue's waker on its own thread ({@link #EXECUTOR}), never on the caller's, so a gRPC thread never waits for the
 * device lock and the queue is never re-entered from inside its own processing. The queue also re-checks on every
 * register access, as for an injected late sync.
 *
 * <p>Thread-safe: one monitor guards the endpoints and the outstanding invalidations. Nothing here runs per DMA.
 */
public final class AtcPort {
    private static final Logger log = LoggerFactory.getLogger(AtcPort.class);

    /** Invalidations an endpoint holds before its device reads them; one more fails its sync. */
    public static final int MAX_QUEUED = 64;

    /** {@link #syncState}: every invalidation before the sync has completed. */
    public static final int COMPLETE = 0;
    /** {@link #syncState}: some are still outstanding and within their time. */
    public static final int PENDING = 1;
    /** {@link #syncState}: one timed out (or could not be delivered); the sync fails. */
    public static final int TIMED_OUT = 2;

    /** One daemon thread for every port of the JVM: wakes stalled queues. */
    private static final ScheduledThreadPoolExecutor EXECUTOR = executor();

    private static ScheduledThreadPoolExecutor executor() {
        ScheduledThreadPoolExecutor e = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "atc-wake");
            t.setDaemon(true);
            return t;
        });
        e.setRemoveOnCancelPolicy(true);
        return e;
    }

    private final String iommu;
    private final long timeoutNanos;
    private final Object lock = new Object();
    private final Map<Integer, Endpoint> endpoints = new HashMap<>();
    private final LinkedHashMap<Long, Outstanding> outstanding = new LinkedHashMap<>();
    private volatile Runnable waker = () -> { };
    private long nextId = 1;
    /** An invalidation failed (overflow, device gone): the next sync fails, naming {@link #failedStream}. */
    private boolean failed;
    private int failedStream;
    private int lastFailedStream;
    private boolean timerArmed;
    /** Nothing outstanding and nothing failed: a sync completes without taking the lock (the common case). */
    private volatile boolean idle = true;

    private final LongAdder translationRequests = new LongAdder();
    private final LongAdder translatedRequests = new LongAdder();
    private final LongAdder sent = new LongAdder();
    private final LongAdder completed = new LongAdder();
    private final LongAdder timedOut = new LongAdder();
    private final LongAdder withoutDevice = new LongAdder();

    /** What the device reads: one ATC invalidation. {@code sizeLg2} 64 means the whole address space. */
    public record Invalidation(long id, int streamId, boolean global, int substreamId, long address, int sizeLg2) {}

    private record Outstanding(int streamId, long deadline) {}

    /**
     * @param iommu the instance name, for messages
     * @param timeoutMs wall-clock milliseconds an invalidation may stay without completion
     */
    public AtcPort(String iommu, int timeoutMs) {
        this.iommu = iommu;
        this.timeoutNanos = TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    }

    /** The instance name. */
    public String iommu() {
        return iommu;
    }

    /** Sets what re-runs the queue (under the device's lock) when an invalidation completes or times out. */
    public void waker(Runnable waker) {
        this.waker = waker;
    }

    // ------------------------------------------------------------------ queue side (under the device lock)

    /**
     * An ATC invalidation the queue consumed for stream {@code streamId}: the entries of substream
     * {@code substreamId} unless {@code global} (-1: no substream, which drops the entries of every substream, as a
     * PCIe Invalidate Request without a PASID does), {@code 2^sizeLg2} bytes from {@code address} (aligned down to
     * that size; {@code sizeLg2} 64: everything).
     */
    public void invalidate(int streamId, boolean global, int substreamId, long address, int sizeLg2) {
        int lg2 = Math.max(12, Math.min(64, sizeLg2));
        long start = lg2 == 64 ? 0 : address & -(1L << lg2);
        Endpoint e;
        boolean arm = false;
        synchronized (lock) {
            e = endpoints.get(streamId);
            if (e == null) {
                withoutDevice.increment(); // no ATC behind this stream: nothing to invalidate, nothing to wait for
                return;
            }
            long id = nextId++;
            sent.increment();
            if (e.queued.size() >= MAX_QUEUED) {
                // the device does not read: this invalidation is not delivered and counts as not completed
                fail(streamId, 1);
                log.debug("{}: ATC invalidation for stream {} dropped, {} already queued", iommu, streamId,
                        MAX_QUEUED);
                arm = true;
            } else {
                e.queued.add(new Invalidation(id, streamId, global, substreamId, start, lg2));
                outstanding.put(id, new Outstanding(streamId, System.nanoTime() + timeoutNanos));
                if (!timerArmed) {
                    timerArmed = true;
                    EXECUTOR.schedule(this::deadline, timeoutNanos, TimeUnit.NANOSECONDS);
                }
            }
            settle();
        }
        if (arm) {
            wake();
        }
        Runnable ready = e.onQueued;
        if (ready != null) {
            EXECUTOR.execute(ready);
        }
    }

    /**
     * At a CMD_SYNC / invalidation wait: {@link #COMPLETE}, {@link #PENDING} (the queue stalls at the sync and is
     * woken later) or {@link #TIMED_OUT} (the sync fails; {@link #failedStream()} names the stream, and the port
     * forgets the outstanding invalidations, so a retried sync completes).
     */
    public int syncState() {
        if (idle) {
            return COMPLETE;
        }
        synchronized (lock) {
            if (!failed && outstanding.isEmpty()) {
                return COMPLETE;
            }
            if (!failed) {
                long now = System.nanoTime();
                for (Outstanding o : outstanding.values()) {
                    if (now - o.deadline >= 0) {
                        failed = true;
                        failedStream = o.streamId;
                        break;
                    }
                }
                if (!failed) {
                    return PENDING;
                }
            }
            timedOut.add(outstanding.size());
            outstanding.clear();
            failed = false;
            lastFailedStream = failedStream;
            settle();
            return TIMED_OUT;
        }
    }

    /** The stream whose invalidation failed the last {@link #TIMED_OUT} sync. */
    public int failedStream() {
        synchronized (lock) {
            return lastFailedStream;
        }
    }

    /** Forgets outstanding invalidations (queue disabled, device reset); their completions will be ignored. */
    public void reset() {
        synchronized (lock) {
            outstanding.clear();
            failed = false;
            settle();
        }
    }

    /** Recomputes {@link #idle}; called with the lock held after every change. */
    private void settle() {
        idle = outstanding.isEmpty() && !failed;
    }

    private void fail(int streamId, long count) {
        if (!failed) {
            failed = true;
            failedStream = streamId;
        }
        timedOut.add(count);
    }

    /** Timer: the earliest deadline may have passed; wake the queue, re-arm for what is left. */
    private void deadline() {
        synchronized (lock) {
            timerArmed = false;
            if (!outstanding.isEmpty()) {
                long next = Long.MAX_VALUE;
                long now = System.nanoTime();
                for (Outstanding o : outstanding.values()) {
                    next = Math.min(next, Math.max(0, o.deadline - now));
                }
                if (next > 0) {
                    timerArmed = true;
                    EXECUTOR.schedule(this::deadline, next, TimeUnit.NANOSECONDS);
                }
            }
        }
        wake();
    }

    private void wake() {
        EXECUTOR.execute(() -> {
            try {
                waker.run();
            } catch (RuntimeException e) {
                log.error("{}: waking the queue after an ATC invalidation failed", iommu, e);
            }
        });
    }

    // ------------------------------------------------------------------ bus side

    /**
     * Registers the ATC of the device on {@code streamId} (a DMA session attached with ATS).
     *
     * @throws IllegalStateException when the stream already has one (the bus's stream claims prevent it)
     */
    public Endpoint register(int streamId) {
        synchronized (lock) {
            if (endpoints.containsKey(streamId)) {
                throw new IllegalStateException(iommu + " stream " + streamId + " already has an ATC endpoint");
            }
            Endpoint e = new Endpoint(streamId);
            endpoints.put(streamId, e);
            return e;
        }
    }

    /** Counts one Dma.Translate request answered. */
    public void countTranslationRequest() {
        translationRequests.increment();
    }

    /** Counts one translated request checked. */
    public void countTranslatedRequest() {
        translatedRequests.increment();
    }

    /** The counters, for Telemetry.Stats. */
    public Stats stats() {
        return new Stats(translationRequests.sum(), translatedRequests.sum(), sent.sum(), completed.sum(),
                timedOut.sum(), withoutDevice.sum());
    }

    /** ATS counters of one instance; see telemetry.proto AtsStats. */
    public record Stats(long translationRequests, long translatedRequests, long sent, long completed, long timedOut,
            long withoutDevice) {}

    /** Outstanding invalidations now (tests). */
    public int outstanding() {
        synchronized (lock) {
            return outstanding.size();
        }
    }

    /**
     * The ATC of one device: the invalidations queued for it, in order, until its AtcInvalidations stream reads
     * them ({@link #poll}); the completions it sends ({@link #complete}).
     */
    public final class Endpoint {
        private final int streamId;
        private final ArrayDeque<Invalidation> queued = new ArrayDeque<>();
        private volatile Runnable onQueued;
        private boolean closed;

        private Endpoint(int streamId) {
            this.streamId = streamId;
        }

        public int streamId() {
            return streamId;
        }

        /**
         * Sets what runs (on the port's thread) when an invalidation is queued: the bus stream's send loop. Null
         * when no stream reads this endpoint.
         */
        public void onQueued(Runnable r) {
            this.onQueued = r;
        }

        /** The next invalidation to send to the device, or null. */
        public Invalidation poll() {
            synchronized (lock) {
                return queued.poll();
            }
        }

        /**
         * The device carried out invalidation {@code id}. Unknown ids (never sent to this device, already timed
         * out or completed) are ignored; returns whether it was outstanding.
         */
        public boolean complete(long id) {
            boolean last;
            synchronized (lock) {
                Outstanding o = outstanding.get(id);
                if (o == null || o.streamId != streamId || closed) {
                    return false;
                }
                outstanding.remove(id);
                completed.increment();
                last = outstanding.isEmpty();
                settle();
            }
            if (last) {
                wake();
            }
            return true;
        }

        /**
         * The device stopped reading (its stream ended) or went away ({@code unregister}): the invalidations it has
         * not completed count as timed out at once. With {@code unregister} the stream has no ATC any more, so later
         * invalidations complete at once; without it they queue for the next stream the device opens.
         */
        public void disconnect(boolean unregister) {
            boolean any = false;
            synchronized (lock) {
                if (closed) {
                    return;
                }
                onQueued = null;
                queued.clear();
                int n = 0;
                for (Iterator<Outstanding> it = outstanding.values().iterator(); it.hasNext(); ) {
                    if (it.next().streamId == streamId) {
                        it.remove();
                        n++;
                    }
                }
                if (n > 0) {
                    fail(streamId, n);
                    any = true;
                }
                if (unregister) {
                    closed = true;
                    endpoints.remove(streamId, this);
                }
                settle();
            }
            if (any) {
                wake();
            }
        }
    }

    @Override
    public String toString() {
        return "AtcPort[" + iommu + "]";
    }
}
