package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.FaultInjectionGrpc;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.TransferReply;
import org.junit.jupiter.api.Timeout;

/**
 * Jazzer target for the bus: every request message of every RPC of every service, parsed from fuzz bytes (so every
 * field, known or not, takes arbitrary values), sent in process to a fresh machine, several calls per input on one
 * or two connections so that state (attached sessions, domains, buffers, injected faults) carries from call to call.
 * Streaming RPCs get a few messages and a short deadline.
 *
 * <p>A finding is a status outside the documented ones: UNKNOWN, INTERNAL or DATA_LOSS (a handler threw), or a
 * unary call that runs into its deadline (a hang). Without {@code JAZZER_FUZZ} this runs the committed corpus under
 * {@code src/test/resources} as an ordinary test; see docs/FUZZING.md.
 */
class BusRequestFuzzTest {
    /** What a service may answer: OK or a documented error. */
    private static final Set<Status.Code> DOCUMENTED = Set.of(Status.Code.OK, Status.Code.INVALID_ARGUMENT,
            Status.Code.OUT_OF_RANGE, Status.Code.FAILED_PRECONDITION, Status.Code.PERMISSION_DENIED,
            Status.Code.UNAUTHENTICATED, Status.Code.RESOURCE_EXHAUSTED, Status.Code.NOT_FOUND,
            Status.Code.ALREADY_EXISTS, Status.Code.UNAVAILABLE, Status.Code.ABORTED, Status.Code.UNIMPLEMENTED);

    /** Every method of every bus service, in a stable order (the first fuzz byte picks one). */
    private static final List<MethodDescriptor<?, ?>> METHODS = methods();

    private static List<MethodDescriptor<?, ?>> methods() {
        List<MethodDescriptor<?, ?>> all = new ArrayList<>();
        for (var service : List.of(MachineGrpc.getServiceDescriptor(), DmaGrpc.getServiceDescriptor(),
                DriverGrpc.getServiceDescriptor(), FaultInjectionGrpc.getServiceDescriptor(),
                TelemetryGrpc.getServiceDescriptor())) {
            all.addAll(service.getMethods());
        }
        all.sort((a, b) -> a.getFullMethodName().compareTo(b.getFullMethodName()));
        return List.copyOf(all);
    }

    /** Up to eight calls, each to a method picked by the input with a request parsed from the input. */
    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void requests(FuzzedDataProvider data) throws IOException {
        try (BusFixture bus = new BusFixture()) {
            ManagedChannel[] channels = {bus.channel(), bus.channel()};
            int calls = data.consumeInt(1, 8);
            for (int i = 0; i < calls && data.remainingBytes() > 0; i++) {
                MethodDescriptor<?, ?> method = METHODS.get(data.consumeInt(0, METHODS.size() - 1));
                ManagedChannel channel = channels[data.consumeInt(0, 1)];
                int messages = method.getType().clientSendsOneMessage() ? 1 : data.consumeInt(0, 4);
                List<Object> requests = new ArrayList<>();
                for (int m = 0; m < messages; m++) {
                    Object request = parse(method, data.consumeBytes(data.consumeInt(0, 512)));
                    if (request != null) {
                        requests.add(request);
                    }
                }
                if (method.getType().clientSendsOneMessage() && requests.isEmpty()) {
                    continue;
                }
                Status status = call(channel, method, requests);
                assertThat(DOCUMENTED).as("%s answered %s: %s", method.getFullMethodName(), status.getCode(),
                        status.getDescription()).contains(status.getCode());
            }
        }
    }

    /** The request type of {@code method} parsed from {@code bytes}; null when they are no valid encoding. */
    private static Object parse(MethodDescriptor<?, ?> method, byte[] bytes) {
        var marshaller = (MethodDescriptor.PrototypeMarshaller<?>) method.getRequestMarshaller();
        Message prototype = (Message) marshaller.getMessagePrototype();
        try {
            return prototype.getParserForType().parseFrom(bytes);
        } catch (InvalidProtocolBufferException e) {
            return null;
        }
    }

    /**
     * Sends {@code requests} on a call of {@code method} and returns its final status. Unary calls get a generous
     * deadline (running into it is a hang); streaming calls a short one, after which the client cancels (a stream
     * may legitimately stay open, like the interrupt subscription).
     */
    @SuppressWarnings({"unchecked", "rawtypes"})
    private static Status call(ManagedChannel channel, MethodDescriptor method, List<Object> requests) {
        boolean unary = method.getType() == MethodDescriptor.MethodType.UNARY;
        CallOptions options = CallOptions.DEFAULT.withDeadlineAfter(unary ? 10_000 : 300, TimeUnit.MILLISECONDS);
        ClientCall call = channel.newCall(method, options);
        if (unary) {
            try {
                ClientCalls.blockingUnaryCall(call, requests.get(0));
                return Status.OK;
            } catch (StatusRuntimeException e) {
                return e.getStatus();
            }
        }
        CompletableFuture<Status> done = new CompletableFuture<>();
        StreamObserver<Object> replies = new StreamObserver<>() {
            @Override
            public void onNext(Object value) {
                // A Transfer request rejected inside the stream carries the status a unary call would have had.
                if (value instanceof TransferReply reply && reply.hasError()) {
                    Status.Code code = Status.fromCodeValue(reply.getError().getCode()).getCode();
                    if (!DOCUMENTED.contains(code)) {
                        done.completeExceptionally(new AssertionError("Transfer request " + reply.getTag()
                                + " rejected with " + code + ": " + reply.getError().getMessage()));
                    }
                }
            }

            @Override
            public void onError(Throwable t) {
                done.complete(Status.fromThrowable(t));
            }

            @Override
            public void onCompleted() {
                done.complete(Status.OK);
            }
        };
        if (method.getType().clientSendsOneMessage()) {
            ClientCalls.asyncServerStreamingCall(call, requests.get(0), replies);
        } else {
            StreamObserver<Object> out = ClientCalls.asyncBidiStreamingCall(call, replies);
            for (Object r : requests) {
                out.onNext(r);
            }
            out.onCompleted();
        }
        Status status = done.join();
        // A stream that was still open when its deadline passed is not a finding.
        return status.getCode() == Status.Code.DEADLINE_EXCEEDED || status.getCode() == Status.Code.CANCELLED
                ? Status.OK : status;
    }
}
