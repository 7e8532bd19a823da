package org.iommuemu.dma;

import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.iommuemu.proto.v1.AtcInvalidation;
import org.iommuemu.proto.v1.AtcInvalidationCompletion;
import org.iommuemu.proto.v1.DmaGrpc;

/**
 * A device's end of {@code Dma.AtcInvalidations}: opens the stream for an ATS session, applies every invalidation
 * the IOMMU sends to an {@link Atc}, then answers with its completion, as {@link Answer} says: at once (a well
 * behaved device), after a delay (a slow one), or never (a broken one, whose IOMMU's sync then times out). Closing
 * it ends the stream (the server then counts the invalidations not yet completed as timed out).
 */
public final class AtcListener implements AutoCloseable {
    /** How the device answers invalidations. */
    public enum Answer {
        /** Completes each invalidation as soon as it is applied. */
        AT_ONCE,
        /** Completes each after the configured delay (on the given scheduler). */
        DELAYED,
        /** Applies invalidations but never completes them. */
        NEVER
    }

    private final Atc atc;
    private final long sessionId;
    private final Answer answer;
    private final long delayMs;
    private final ScheduledExecutorService scheduler;
    private final AtomicLong received = new AtomicLong();
    private final AtomicLong completed = new AtomicLong();
    private final CountDownLatch ended = new CountDownLatch(1);
    private volatile ClientCallStreamObserver<AtcInvalidationCompletion> requests;
    private volatile Status endStatus;

    AtcListener(DmaGrpc.DmaStub stub, long sessionId, Atc atc, Answer answer, long delayMs,
            ScheduledExecutorService scheduler) {
        if (answer == Answer.DELAYED && scheduler == null) {
            throw new IllegalArgumentException("a DELAYED answer needs a scheduler");
        }
        this.atc = atc;
        this.sessionId = sessionId;
        this.answer = answer;
        this.delayMs = delayMs;
        this.scheduler = scheduler;
        stub.atcInvalidations(new Replies());
        requests.onNext(AtcInvalidationCompletion.newBuilder().setSessionId(sessionId).build());
    }

    private final class Replies implements ClientResponseObserver<AtcInvalidationCompletion, AtcInvalidation> {
        @Override
        public void beforeStart(ClientCallStreamObserver<AtcInvalidationCompletion> r) {
            requests = r;
        }

        @Override
        public void onNext(AtcInvalidation inv) {
            received.incrementAndGet();
            atc.invalidate(inv);
            switch (answer) {
                case AT_ONCE -> complete(inv.getId());
                case DELAYED -> scheduler.schedule(() -> complete(inv.getId()), delayMs, TimeUnit.MILLISECONDS);
                case NEVER -> { }
            }
        }

        @Override
        public void onError(Throwable t) {
            endStatus = Status.fromThrowable(t);
            ended.countDown();
        }

        @Override
        public void onCompleted() {
            endStatus = Status.OK;
            ended.countDown();
        }
    }

    /** Sends the completion of invalidation {@code id} (ignored once the stream has ended). */
    public void complete(long id) {
        if (ended.getCount() == 0) {
            return;
        }
        synchronized (this) {
            try {
                requests.onNext(AtcInvalidationCompletion.newBuilder().setSessionId(sessionId).setId(id).build());
                completed.incrementAndGet();
            } catch (IllegalStateException e) {
                // the stream was closed meanwhile: nothing to complete
            }
        }
    }

    /** Invalidations received so far. */
    public long received() {
        return received.get();
    }

    /** Completions sent so far. */
    public long completed() {
        return completed.get();
    }

    /** The ATC the invalidations are applied to. */
    public Atc atc() {
        return atc;
    }

    /** How the stream ended (null while it is open). */
    public Status endStatus() {
        return endStatus;
    }

    /** Waits up to {@code ms} for the stream to end; returns whether it has. */
    public boolean awaitEnd(long ms) throws InterruptedException {
        return ended.await(ms, TimeUnit.MILLISECONDS);
    }

    /** Ends the stream (half-close); the server ends its side and forgets this device's outstanding ones. */
    @Override
    public synchronized void close() {
        if (ended.getCount() == 0) {
            return;
        }
        try {
            requests.onCompleted();
        } catch (IllegalStateException e) {
            // already closed
        }
    }
}
