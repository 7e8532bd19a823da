package org.iommuemu.it.bench;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.stub.StreamObserver;
import org.iommuemu.it.bench.proto.EchoGrpc;
import org.iommuemu.it.bench.proto.EchoReply;
import org.iommuemu.it.bench.proto.EchoRequest;

/**
 * The benchmark baseline: answers each request with {@code length} bytes, allocating a fresh buffer per
 * reply as the DMA path does, and nothing else.
 */
public final class EchoService extends EchoGrpc.EchoImplBase {
    private static ByteString payload(int length) {
        return UnsafeByteOperations.unsafeWrap(new byte[length]);
    }

    @Override
    public void unary(EchoRequest request, StreamObserver<EchoReply> responses) {
        responses.onNext(EchoReply.newBuilder().setTag(request.getTag()).setData(payload(request.getLength())).build());
        responses.onCompleted();
    }

    @Override
    public StreamObserver<EchoRequest> stream(StreamObserver<EchoReply> responses) {
        return new StreamObserver<>() {
            @Override
            public void onNext(EchoRequest request) {
                responses.onNext(EchoReply.newBuilder().setTag(request.getTag())
                        .setData(payload(request.getLength())).build());
            }

            @Override
            public void onError(Throwable t) {
                // The client went away; nothing to clean up.
            }

            @Override
            public void onCompleted() {
                responses.onCompleted();
            }
        };
    }
}
