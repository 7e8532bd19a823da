package org.iommuemu.device.bus;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * For tests of streaming calls: the client side of a stream that keeps every message the server sends, in order, and
 * how the stream ended (OK when the server completed it, else the status of its error).
 *
 * @param <T> the server's message type
 */
public final class StreamRecorder<T> implements StreamObserver<T> {
    private final LinkedBlockingQueue<T> messages = new LinkedBlockingQueue<>();
    private final CompletableFuture<Status> end = new CompletableFuture<>();

    @Override
    public void onNext(T value) {
        messages.add(value);
    }

    @Override
    public void onError(Throwable t) {
        end.complete(Status.fromThrowable(t));
    }

    @Override
    public void onCompleted() {
        end.complete(Status.OK);
    }

    /** The next message not taken yet, waiting up to {@code seconds}; null when none came in that time. */
    public T next(long seconds) throws InterruptedException {
        return messages.poll(seconds, TimeUnit.SECONDS);
    }

    /** The messages received and not taken by {@link #next} yet, in order. */
    public List<T> messages() {
        return new ArrayList<>(messages);
    }

    /** How the stream ended, waiting up to {@code seconds} for it; a {@link TimeoutException} if it did not. */
    public Status end(long seconds) throws Exception {
        return end.get(seconds, TimeUnit.SECONDS);
    }

    /** Whether the stream has ended. */
    public boolean ended() {
        return end.isDone();
    }
}
