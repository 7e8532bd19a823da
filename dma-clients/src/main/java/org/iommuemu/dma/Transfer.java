package org.iommuemu.dma;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.util.ArrayDeque;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.iommuemu.proto.v1.DmaFault;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.DmaOp;
import org.iommuemu.proto.v1.TransferReply;
import org.iommuemu.proto.v1.TransferRequest;

/**
 * A pipelined DMA stream ({@code Dma.Transfer}) that keeps up to {@code window} requests in flight.
 *
 * <p>Each request gets a tag; the server answers in order, and each reply's tag is checked against the
 * request it answers. Submitting blocks while {@code window} requests await replies, and while gRPC
 * reports the stream not ready (its flow-control window is full), so a fast producer cannot make either
 * side buffer without bound. A request the server rejects completes its future exceptionally with a
 * {@link StatusRuntimeException} carrying the status a unary call would have returned; a DMA fault is a
 * normal {@link DmaResult}.
 *
 * <p>When its session is in ATC mode ({@link DmaSession#useAtc}) each request goes through the ATC: a hit is sent as
 * a translated request at the cached physical address, a miss first translates (a unary {@code Translate}, so the
 * submitting thread waits for it) and caches the answer, and a request that spans several cached regions is sent
 * as one translated request per region, its future completing when all have. A refused translation completes the
 * request's future at once with the fault (nothing was sent, nothing reached memory).
 *
 * <p>Submit from any thread, but not from a future's completion callback: those run on gRPC's threads,
 * and blocking there on a full window would stall the replies that free it.
 */
public final class Transfer implements AutoCloseable {
    private final DmaSession session;
    private final int window;
    private final Semaphore permits;
    private final ClientCallStreamObserver<TransferRequest> requests;
    private final ArrayDeque<Pending> pending = new ArrayDeque<>();
    private final Object readyLock = new Object();
    private final CompletableFuture<Void> finished = new CompletableFuture<>();
    private long nextTag = 1;
    private volatile Throwable failure;
    private boolean halfClosed;

    /** A request awaiting its reply. */
    private static class Pending {
        final long tag;
        final CompletableFuture<DmaResult> future;

        Pending(long tag, CompletableFuture<DmaResult> future) {
            this.tag = tag;
            this.future = future;
        }

        /** The fault as the caller sees it. */
        DmaFault fault(DmaFault f) {
            return f;
        }
    }

    /**
     * A translated request of ATC mode (a subclass, so an untranslated request's record stays as small as it was):
     * its fault is reported at the iova it stands for ({@code va}), after the {@code done} bytes of its request
     * before it.
     */
    private static final class TranslatedPending extends Pending {
        final long va;
        final int done;

        TranslatedPending(long tag, CompletableFuture<DmaResult> future, long va, int done) {
            super(tag, future);
            this.va = va;
            this.done = done;
        }

        @Override
        DmaFault fault(DmaFault f) {
            return DmaSession.atVa(f, va, done);
        }
    }

    Transfer(DmaGrpc.DmaStub stub, DmaSession session, int window) {
        if (window < 1) {
            throw new IllegalArgumentException("window must be at least 1, got " + window);
        }
        this.session = session;
        this.window = window;
        this.permits = new Semaphore(window);
        this.requests = (ClientCallStreamObserver<TransferRequest>) stub.transfer(new Replies());
    }

    /** Reads {@code length} bytes at {@code iova}. */
    public CompletableFuture<DmaResult> read(long iova, int length) throws InterruptedException {
        return read(iova, length, DmaOptions.DEFAULT);
    }

    /** Reads {@code length} bytes at {@code iova} (through the session's ATC in ATC mode). */
    public CompletableFuture<DmaResult> read(long iova, int length, DmaOptions options) throws InterruptedException {
        Atc atc = session.atc();
        if (atc != null) {
            return throughAtc(atc, false, iova, length, null, options);
        }
        return submit(TransferRequest.newBuilder().setOp(DmaOp.READ).setIova(iova).setLength(length), options);
    }

    /** Writes {@code data} at {@code iova}. */
    public CompletableFuture<DmaResult> write(long iova, ByteString data) throws InterruptedException {
        return write(iova, data, DmaOptions.DEFAULT);
    }

    /** Writes {@code data} at {@code iova} (through the session's ATC in ATC mode). */
    public CompletableFuture<DmaResult> write(long iova, ByteString data, DmaOptions options)
            throws InterruptedException {
        Atc atc = session.atc();
        if (atc != null) {
            return throughAtc(atc, true, iova, data.size(), data, options);
        }
        return submit(TransferRequest.newBuilder().setOp(DmaOp.WRITE).setIova(iova).setData(data), options);
    }

    private CompletableFuture<DmaResult> submit(TransferRequest.Builder b, DmaOptions options)
            throws InterruptedException {
        return submit(b, options, false, 0, 0);
    }

    /**
     * One request through {@code atc}: per cached region a translated request (translating on a miss); the pieces'
     * results joined into one.
     */
    private CompletableFuture<DmaResult> throughAtc(Atc atc, boolean write, long iova, int length, ByteString data,
            DmaOptions options) throws InterruptedException {
        int ssid = options.substreamId();
        java.util.List<CompletableFuture<DmaResult>> parts = null;
        DmaFault refused = null;
        int done = 0;
        while (done < length) {
            long va = iova + done;
            long pa = atc.lookup(ssid, va, write);
            if (pa == Atc.MISS) {
                refused = session.fill(atc, va, write, options, done);
                if (refused != null) {
                    break;
                }
                pa = atc.peek(ssid, va, write);
            }
            int chunk = DmaSession.chunk(atc, options, va, length - done);
            TransferRequest.Builder b = TransferRequest.newBuilder().setTranslated(true).setIova(pa);
            if (write) {
                b.setOp(DmaOp.WRITE).setData(chunk == length ? data : data.substring(done, done + chunk));
            } else {
                b.setOp(DmaOp.READ).setLength(chunk);
            }
            CompletableFuture<DmaResult> f = submit(b, options, true, va, done);
            if (chunk == length) {
                return f; // the common case: the whole request in one cached region
            }
            if (parts == null) {
                parts = new java.util.ArrayList<>();
            }
            parts.add(f);
            done += chunk;
        }
        if (parts == null) {
            return CompletableFuture.completedFuture(new DmaResult(ByteString.EMPTY, refused));
        }
        java.util.List<CompletableFuture<DmaResult>> pieces = parts;
        DmaFault tail = refused;
        return CompletableFuture.allOf(pieces.toArray(new CompletableFuture<?>[0])).thenApply(v -> {
            ByteString read = ByteString.EMPTY;
            for (CompletableFuture<DmaResult> p : pieces) {
                DmaResult r = p.join();
                read = read.concat(r.data());
                if (!r.isOk()) {
                    return new DmaResult(read, r.fault());
                }
            }
            return new DmaResult(read, tail);
        });
    }

    private CompletableFuture<DmaResult> submit(TransferRequest.Builder b, DmaOptions options, boolean translated,
            long atcVa, int atcDone) throws InterruptedException {
        b.setSessionId(session.id()).setAttributes(options.attributes());
        if (options.hasSubstream()) {
            b.setSubstreamId(options.substreamId());
        }
        checkOpen();
        permits.acquire();
        try {
            awaitReady();
        } catch (InterruptedException | RuntimeException e) {
            permits.release();
            throw e;
        }
        CompletableFuture<DmaResult> future = new CompletableFuture<>();
        synchronized (this) {
            checkOpen();
            long tag = nextTag++;
            pending.add(translated ? new TranslatedPending(tag, future, atcVa, atcDone) : new Pending(tag, future));
            requests.onNext(b.setTag(tag).build());
        }
        return future;
    }

    private void checkOpen() {
        Throwable f = failure;
        if (f != null) {
            throw new IllegalStateException("the Transfer stream has ended: " + f, f);
        }
        synchronized (this) {
            if (halfClosed) {
                throw new IllegalStateException("the Transfer stream was closed");
            }
        }
    }

    private void awaitReady() throws InterruptedException {
        if (requests.isReady()) {
            return;
        }
        synchronized (readyLock) {
            while (!requests.isReady()) {
                checkOpen();
                readyLock.wait(50);
            }
        }
    }

    /** Requests sent whose replies have not arrived. */
    public synchronized int inFlight() {
        return pending.size();
    }

    /** The window this stream was opened with. */
    public int window() {
        return window;
    }

    /**
     * Ends the stream after the replies to every request sent so far have arrived (waiting at most 30 s,
     * then cancelling).
     */
    @Override
    public void close() {
        synchronized (this) {
            if (halfClosed || failure != null) {
                return;
            }
            halfClosed = true;
            requests.onCompleted();
        }
        try {
            finished.get(30, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            requests.cancel("Transfer.close timed out waiting for replies", null);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            requests.cancel("interrupted while closing", e);
        } catch (java.util.concurrent.ExecutionException e) {
            // The stream failed; pending futures already carry the error.
        }
    }

    /** Abandons the stream at once; requests without a reply fail with CANCELLED. */
    public void cancel() {
        requests.cancel("cancelled by the client", null);
    }

    private void fail(Throwable t) {
        ArrayDeque<Pending> orphans;
        synchronized (this) {
            if (failure == null) {
                failure = t;
            }
            orphans = new ArrayDeque<>(pending);
            pending.clear();
        }
        for (Pending p : orphans) {
            p.future.completeExceptionally(t);
        }
        permits.release(window); // wake submitters so they see the failure
        synchronized (readyLock) {
            readyLock.notifyAll();
        }
        finished.completeExceptionally(t);
    }

    private final class Replies implements ClientResponseObserver<TransferRequest, TransferReply> {
        @Override
        public void beforeStart(ClientCallStreamObserver<TransferRequest> stream) {
            stream.setOnReadyHandler(() -> {
                synchronized (readyLock) {
                    readyLock.notifyAll();
                }
            });
        }

        @Override
        public void onNext(TransferReply reply) {
            Pending p;
            synchronized (Transfer.this) {
                p = pending.poll();
            }
            if (p == null || p.tag != reply.getTag()) {
                StatusRuntimeException e = Status.INTERNAL.withDescription("reply tag " + reply.getTag()
                        + " does not match the oldest request in flight ("
                        + (p == null ? "none" : String.valueOf(p.tag)) + ")").asRuntimeException();
                if (p != null) {
                    p.future.completeExceptionally(e);
                }
                requests.cancel("protocol violation: reply out of order", e);
                fail(e);
                return;
            }
            permits.release();
            if (reply.hasError()) {
                p.future.completeExceptionally(Status.fromCodeValue(reply.getError().getCode())
                        .withDescription(reply.getError().getMessage()).asRuntimeException());
            } else {
                p.future.complete(new DmaResult(reply.getData(), reply.hasFault() ? p.fault(reply.getFault()) : null));
            }
        }

        @Override
        public void onError(Throwable t) {
            fail(t);
        }

        @Override
        public void onCompleted() {
            boolean clean;
            synchronized (Transfer.this) {
                clean = pending.isEmpty();
            }
            if (clean) {
                finished.complete(null);
                synchronized (Transfer.this) {
                    if (failure == null) {
                        failure = new IllegalStateException("the server completed the stream");
                    }
                }
            } else {
                fail(Status.INTERNAL.withDescription("the server completed the stream with requests unanswered")
                        .asRuntimeException());
            }
        }
    }
}
