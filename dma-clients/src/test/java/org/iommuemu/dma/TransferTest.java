package org.iommuemu.dma;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.iommuemu.proto.v1.AttachReply;
import org.iommuemu.proto.v1.AttachRequest;
import org.iommuemu.proto.v1.DetachReply;
import org.iommuemu.proto.v1.DetachRequest;
import org.iommuemu.proto.v1.DmaFault;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.DmaReadReply;
import org.iommuemu.proto.v1.DmaReadRequest;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.RequestError;
import org.iommuemu.proto.v1.TransferReply;
import org.iommuemu.proto.v1.TransferRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The client library against a scripted Dma service: what it sends, and how it treats what comes back. */
class TransferTest {
    private final String name = "fake-dma-" + UUID.randomUUID();
    private Server server;
    private ManagedChannel channel;

    /** A Dma service that holds Transfer requests until the test releases them. */
    private static final class FakeDma extends DmaGrpc.DmaImplBase {
        final LinkedBlockingQueue<TransferRequest> received = new LinkedBlockingQueue<>();
        volatile StreamObserver<TransferReply> replies;
        final AtomicInteger detaches = new AtomicInteger();
        volatile Status detachStatus;

        @Override
        public void attach(AttachRequest r, StreamObserver<AttachReply> out) {
            out.onNext(AttachReply.newBuilder().setSessionId(99).setIommu(r.getIommu()).setStreamId(r.getStreamId())
                    .build());
            out.onCompleted();
        }

        @Override
        public void detach(DetachRequest r, StreamObserver<DetachReply> out) {
            detaches.incrementAndGet();
            if (detachStatus != null) {
                out.onError(detachStatus.asRuntimeException());
                return;
            }
            out.onNext(DetachReply.getDefaultInstance());
            out.onCompleted();
        }

        @Override
        public void read(DmaReadRequest r, StreamObserver<DmaReadReply> out) {
            out.onNext(DmaReadReply.newBuilder().setData(ByteString.copyFromUtf8("ab"))
                    .setFault(DmaFault.newBuilder().setKind(FaultKind.TRANSLATION).setAddress(r.getIova() + 2)
                            .setCode(0x10).setBytesDone(2))
                    .build());
            out.onCompleted();
        }

        @Override
        public StreamObserver<TransferRequest> transfer(StreamObserver<TransferReply> out) {
            replies = out;
            return new StreamObserver<>() {
                @Override
                public void onNext(TransferRequest r) {
                    received.add(r);
                }

                @Override
                public void onError(Throwable t) {}

                @Override
                public void onCompleted() {
                    received.add(TransferRequest.newBuilder().setTag(-1).build());
                }
            };
        }

        void reply(long tag) {
            replies.onNext(TransferReply.newBuilder().setTag(tag).setData(ByteString.copyFromUtf8("t" + tag)).build());
        }
    }

    private FakeDma start() throws Exception {
        FakeDma fake = new FakeDma();
        server = InProcessServerBuilder.forName(name).addService(fake).build().start();
        channel = InProcessChannelBuilder.forName(name).build();
        return fake;
    }

    @AfterEach
    void tearDown() throws Exception {
        if (channel != null) {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
        if (server != null) {
            server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    @Test
    void theWindowBoundsRequestsInFlight() throws Exception {
        FakeDma fake = start();
        DmaSession s = DmaClient.over(channel).attach("x", "smmu0", 1);
        Transfer t = s.openTransfer(4);
        List<CompletableFuture<DmaResult>> futures = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            futures.add(t.read(0x1000L * i, 16));
        }
        CompletableFuture<CompletableFuture<DmaResult>> fifth = CompletableFuture.supplyAsync(() -> {
            try {
                return t.read(0x9000, 16);
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
        });
        List<TransferRequest> seen = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            seen.add(fake.received.poll(5, TimeUnit.SECONDS));
        }
        assertThat(fake.received.poll(300, TimeUnit.MILLISECONDS)).as("the fifth waits for a free slot").isNull();
        assertThat(fifth).isNotDone();
        assertThat(t.inFlight()).isEqualTo(4);
        assertThat(seen).extracting(TransferRequest::getSessionId).containsOnly(99L);
        assertThat(seen).extracting(TransferRequest::getIova).containsExactly(0L, 0x1000L, 0x2000L, 0x3000L);

        fake.reply(seen.get(0).getTag());
        assertThat(futures.get(0).get(5, TimeUnit.SECONDS).data().toStringUtf8()).isEqualTo("t" + seen.get(0).getTag());
        TransferRequest fifthSent = fake.received.poll(5, TimeUnit.SECONDS);
        assertThat(fifthSent).as("a reply freed a slot").isNotNull();
        assertThat(fifthSent.getIova()).isEqualTo(0x9000);
        for (int i = 1; i < 4; i++) {
            fake.reply(seen.get(i).getTag());
        }
        fake.reply(fifthSent.getTag());
        assertThat(fifth.get(5, TimeUnit.SECONDS).get(5, TimeUnit.SECONDS).isOk()).isTrue();
        t.cancel();
    }

    @Test
    void aReplyWithTheWrongTagFailsTheStreamLoudly() throws Exception {
        FakeDma fake = start();
        Transfer t = DmaClient.over(channel).attach("x", "smmu0", 1).openTransfer(8);
        CompletableFuture<DmaResult> a = t.read(0, 8);
        CompletableFuture<DmaResult> b = t.read(8, 8);
        TransferRequest first = fake.received.poll(5, TimeUnit.SECONDS);
        fake.received.poll(5, TimeUnit.SECONDS);
        fake.reply(first.getTag() + 1000);
        assertThatThrownBy(() -> a.get(5, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class)
                .hasMessageContaining("does not match the oldest request in flight");
        assertThatThrownBy(() -> b.get(5, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class);
        assertThatThrownBy(() -> t.read(0, 8)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("has ended");
    }

    @Test
    void perRequestErrorsBecomeTheirStatusAndAStreamErrorFailsEverythingPending() throws Exception {
        FakeDma fake = start();
        Transfer t = DmaClient.over(channel).attach("x", "smmu0", 1).openTransfer(8);
        CompletableFuture<DmaResult> a = t.read(0, 8);
        CompletableFuture<DmaResult> b = t.read(8, 8);
        long tagA = fake.received.poll(5, TimeUnit.SECONDS).getTag();
        fake.received.poll(5, TimeUnit.SECONDS);
        fake.replies.onNext(TransferReply.newBuilder().setTag(tagA).setError(RequestError.newBuilder()
                .setCode(Status.Code.OUT_OF_RANGE.value()).setMessage("length 9 exceeds")).build());
        assertThatThrownBy(() -> a.get(5, TimeUnit.SECONDS)).cause().isInstanceOf(StatusRuntimeException.class)
                .hasMessage("OUT_OF_RANGE: length 9 exceeds");
        fake.replies.onError(Status.UNAVAILABLE.withDescription("going away").asRuntimeException());
        assertThatThrownBy(() -> b.get(5, TimeUnit.SECONDS)).cause().hasMessageContaining("UNAVAILABLE: going away");
    }

    @Test
    void closeHalfClosesAndWaitsForTheRemainingReplies() throws Exception {
        FakeDma fake = start();
        Transfer t = DmaClient.over(channel).attach("x", "smmu0", 1).openTransfer(8);
        CompletableFuture<DmaResult> a = t.write(0, ByteString.copyFromUtf8("w"));
        long tag = fake.received.poll(5, TimeUnit.SECONDS).getTag();
        CompletableFuture<Void> closed = CompletableFuture.runAsync(t::close);
        assertThat(fake.received.poll(5, TimeUnit.SECONDS).getTag()).as("half-close reached the server").isEqualTo(-1);
        assertThat(closed).isNotDone();
        fake.reply(tag);
        fake.replies.onCompleted();
        closed.get(5, TimeUnit.SECONDS);
        assertThat(a.get().isOk()).isTrue();
        assertThatThrownBy(() -> t.read(0, 1)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void unaryFaultsAreResultsAndDetachIsIdempotent() throws Exception {
        FakeDma fake = start();
        DmaSession s = DmaClient.over(channel).attach("x", "smmu0", 1);
        DmaResult r = s.read(0x1000, 8);
        assertThat(r.faulted()).isTrue();
        assertThat(r.data().toStringUtf8()).isEqualTo("ab");
        assertThat(r.toString()).contains("TRANSLATION", "0x1002", "after 2 bytes");
        s.close();
        s.close();
        assertThat(fake.detaches).hasValue(1);
        fake.detachStatus = Status.NOT_FOUND;
        DmaClient.over(channel).attach("y", "smmu0", 2).close(); // already gone on the server: not an error
        fake.detachStatus = Status.PERMISSION_DENIED;
        DmaSession z = DmaClient.over(channel).attach("z", "smmu0", 3);
        assertThatThrownBy(z::close).isInstanceOf(StatusRuntimeException.class);
    }

    @Test
    void optionsAreValidated() {
        assertThatThrownBy(() -> DmaOptions.DEFAULT.withSubstream(-1)).isInstanceOf(IllegalArgumentException.class);
        assertThat(DmaOptions.DEFAULT.withSubstream(3).withPrivileged(true).attributes().getPrivileged()).isTrue();
    }
}
