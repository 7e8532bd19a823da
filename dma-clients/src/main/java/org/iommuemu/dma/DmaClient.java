package org.iommuemu.dma;

import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.inprocess.InProcessChannelBuilder;
import java.util.concurrent.TimeUnit;
import org.iommuemu.proto.v1.AttachReply;
import org.iommuemu.proto.v1.AttachRequest;
import org.iommuemu.proto.v1.DmaGrpc;

/**
 * A connection to an iommu-emu bus from the point of view of a DMA master. Uses only the {@code Dma}
 * service of the bus API, so it is exactly what an external device model written in Java needs.
 *
 * <pre>{@code
 * try (DmaClient client = DmaClient.connect("127.0.0.1:7400");
 *      DmaSession nic = client.attach("nic0", "smmu0", 0x10)) {
 *     nic.write(0x8000_0000L, payload);
 *     DmaResult r = nic.read(0x8000_0000L, payload.length);
 * }
 * }</pre>
 *
 * Sessions live as long as the connection: closing the client (or the process dying) releases them.
 */
public final class DmaClient implements AutoCloseable {
    /** Replies carry at most a max-size DMA plus framing; the server reports its bound in Machine.Describe. */
    public static final int MAX_INBOUND_MESSAGE = 64 << 20;

    private final Channel channel;
    private final ManagedChannel owned;
    private final DmaGrpc.DmaBlockingStub blocking;
    private final DmaGrpc.DmaStub async;

    private DmaClient(Channel channel, ManagedChannel owned) {
        this.channel = channel;
        this.owned = owned;
        this.blocking = DmaGrpc.newBlockingStub(channel).withMaxInboundMessageSize(MAX_INBOUND_MESSAGE);
        this.async = DmaGrpc.newStub(channel).withMaxInboundMessageSize(MAX_INBOUND_MESSAGE);
    }

    /** Connects over TCP (plaintext, no token) to {@code host:port}. */
    public static DmaClient connect(String target) {
        return connect(target, ClientSecurity.NONE);
    }

    /** Connects over TCP to {@code host:port} with {@code security}'s token and TLS settings. */
    public static DmaClient connect(String target, ClientSecurity security) {
        ManagedChannel ch = security.channel(target, MAX_INBOUND_MESSAGE);
        return new DmaClient(ch, ch);
    }

    /** Connects to a server on grpc's in-process transport. */
    public static DmaClient inProcess(String name) {
        return inProcess(name, ClientSecurity.NONE);
    }

    /** Connects to a server on grpc's in-process transport, sending {@code security}'s token (TLS does not apply). */
    public static DmaClient inProcess(String name, ClientSecurity security) {
        ManagedChannel ch = security.apply(InProcessChannelBuilder.forName(name)).build();
        return new DmaClient(ch, ch);
    }

    /** Uses a channel the caller owns (and closes). */
    public static DmaClient over(Channel channel) {
        return new DmaClient(channel, null);
    }

    /** Attaches a master without substreams. */
    public DmaSession attach(String name, String iommu, int streamId) {
        return attach(name, iommu, streamId, false);
    }

    /**
     * Attaches a master named {@code name} on {@code streamId} of {@code iommu}.
     *
     * @throws io.grpc.StatusRuntimeException ALREADY_EXISTS when the stream id is held, NOT_FOUND for an
     *     unknown instance, OUT_OF_RANGE for a stream id too wide, RESOURCE_EXHAUSTED past the session limit
     */
    public DmaSession attach(String name, String iommu, int streamId, boolean substreams) {
        return attach(name, iommu, streamId, substreams, false);
    }

    /**
     * Attaches a master; with {@code ats} it implements ATS (has an ATC): it may translate, issue translated
     * requests and receive ATC invalidations (docs/ATS.md).
     *
     * @throws io.grpc.StatusRuntimeException as {@link #attach(String, String, int, boolean)}, and
     *     FAILED_PRECONDITION for {@code ats} on an instance without ATS
     */
    public DmaSession attach(String name, String iommu, int streamId, boolean substreams, boolean ats) {
        AttachReply reply = blocking.attach(AttachRequest.newBuilder()
                .setName(name).setIommu(iommu).setStreamId(streamId).setSubstreams(substreams).setAts(ats).build());
        return new DmaSession(this, reply.getSessionId(), name, reply.getIommu(), reply.getStreamId(), substreams,
                ats);
    }

    DmaGrpc.DmaBlockingStub blocking() {
        return blocking;
    }

    DmaGrpc.DmaStub async() {
        return async;
    }

    /** The channel the client talks over. */
    public Channel channel() {
        return channel;
    }

    /** Closes the connection if this client opened it; its sessions end with it. */
    @Override
    public void close() {
        if (owned != null) {
            owned.shutdownNow();
            try {
                owned.awaitTermination(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
