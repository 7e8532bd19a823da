package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Context;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.proto.v1.AttachReply;
import org.iommuemu.proto.v1.AttachRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * An Attach whose caller gave up (cancel or deadline) while the server was attaching must not leave its stream id
 * claimed: the client never learns the session id, so nobody could detach it before the connection closes.
 * Called directly on the service so that the cancellation is certain to happen before the reply is built.
 */
class AttachCancellationTest {
    private final Machine machine = new Machine(MachineConfig.defaults());
    private final SessionRegistry sessions = new SessionRegistry(machine.claims(), machine.limits().maxSessions(),
            machine.limits().maxSessionsPerConnection());
    private final BusTimer timer = new BusTimer();
    private final DmaService dma = new DmaService(machine, sessions, timer);
    private final Connection connection = new Connection(1, null);

    @AfterEach
    void close() {
        timer.close();
    }

    @Test
    void aCancelledAttachIsRolledBackAndItsStreamIdIsFreeAgain() {
        Recorder cancelled = attach(true, 0x42);
        assertThat(cancelled.replies).as("no session id is handed out").isEmpty();
        assertThat(cancelled.status.getCode()).isEqualTo(Status.Code.CANCELLED);
        assertThat(cancelled.status.getDescription()).contains("nothing is held");
        assertThat(sessions.live()).as("the session was detached again").isZero();
        assertThat(machine.claims().holder("smmu0", 0x42)).as("the stream id is not claimed").isNull();

        Recorder again = attach(false, 0x42);
        assertThat(again.status).as("the same stream id attaches again at once").isNull();
        assertThat(again.replies).hasSize(1);
        assertThat(again.replies.get(0).getStreamId()).isEqualTo(0x42);
        assertThat(sessions.live()).isEqualTo(1);
        assertThat(machine.claims().holder("smmu0", 0x42)).isNotNull();
    }

    private Recorder attach(boolean cancel, int stream) {
        Recorder r = new Recorder();
        AttachRequest request = AttachRequest.newBuilder().setName("dev").setIommu("smmu0").setStreamId(stream)
                .build();
        Context.CancellableContext call = Context.current().withValue(ConnectionTracker.CONTEXT, connection)
                .withCancellation();
        try {
            if (cancel) {
                call.cancel(null);
            }
            call.run(() -> dma.attach(request, r));
        } finally {
            call.cancel(null);
        }
        return r;
    }

    private static final class Recorder implements StreamObserver<AttachReply> {
        final List<AttachReply> replies = new ArrayList<>();
        Status status;

        @Override
        public void onNext(AttachReply value) {
            replies.add(value);
        }

        @Override
        public void onError(Throwable t) {
            status = Status.fromThrowable(t);
        }

        @Override
        public void onCompleted() {
        }
    }
}
