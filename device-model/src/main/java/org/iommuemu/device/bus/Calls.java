package org.iommuemu.device.bus;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Runs unary handlers so that refusals become their status and a bug becomes INTERNAL, never a crash. */
final class Calls {
    private static final Logger log = LoggerFactory.getLogger(Calls.class);

    private Calls() {}

    static <R> void unary(StreamObserver<R> responses, Supplier<R> handler) {
        R reply;
        try {
            reply = handler.get();
        } catch (BusError e) {
            responses.onError(e.toStatus());
            return;
        } catch (RuntimeException e) {
            log.error("bug while serving a request", e);
            responses.onError(Status.INTERNAL.withDescription("internal error: " + e).asRuntimeException());
            return;
        }
        responses.onNext(reply);
        responses.onCompleted();
    }
}
