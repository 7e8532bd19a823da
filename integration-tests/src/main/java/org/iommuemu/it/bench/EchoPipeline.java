package org.iommuemu.it.bench;

import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.util.ArrayDeque;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import org.iommuemu.it.bench.proto.EchoGrpc;
import org.iommuemu.it.bench.proto.EchoReply;
import org.iommuemu.it.bench.proto.EchoRequest;

/**
 * A windowed client for {@code Echo.Stream} doing the same bookkeeping per request as the DMA client's
 * {@code Transfer} (a window permit, a tag, a future, readiness), so the two compare like for like.
 */
final class EchoPipeline implements AutoCloseable {
    private final Semaphore permits;
    private final ArrayDeque<CompletableFuture<EchoReply>> pending = new ArrayDeque<>();
    private final ClientCallStreamObserver<EchoRequest> requests;
    private final Object readyLock = new Object();
    private long nextTag = 1;

    EchoPipeline(EchoGrpc.EchoStub stub, int window) {
        permits = new Semaphore(window);
        requests = (ClientCallStreamObserver<EchoRequest>) stub.stream(new ClientResponseObserver<EchoRequest, EchoReply>() {
            @Override
            public void beforeStart(ClientCallStreamObserver<EchoRequest> r) {
                r.setOnReadyHandler(() -> {
                    synchronized (readyLock) {
                        readyLock.notifyAll();
                    }
                });
            }

            @Override
            public void onNext(EchoReply reply) {
                CompletableFuture<EchoReply> f;
                synchronized (EchoPipeline.this) {
                    f = pending.poll();
                }
                permits.release();
                f.complete(reply);
            }

            @Override
            public void onError(Throwable t) {
                synchronized (EchoPipeline.this) {
                    pending.forEach(f -> f.completeExceptionally(t));
                    pending.clear();
                }
            }

            @Override
            public void onCompleted() {}
        });
    }

    CompletableFuture<EchoReply> call(int length) throws InterruptedException {
        permits.acquire();
        if (!requests.isReady()) {
            synchronized (readyLock) {
                while (!requests.isReady()) {
                    readyLock.wait(50);
                }
            }
        }
        CompletableFuture<EchoReply> f = new CompletableFuture<>();
        synchronized (this) {
            pending.add(f);
            requests.onNext(EchoRequest.newBuilder().setTag(nextTag++).setLength(length).build());
        }
        return f;
    }

    @Override
    public void close() {
        requests.onCompleted();
    }
}
