package org.iommuemu.dma;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import org.iommuemu.proto.v1.DetachRequest;
import org.iommuemu.proto.v1.DmaReadReply;
import org.iommuemu.proto.v1.DmaReadRequest;
import org.iommuemu.proto.v1.DmaWriteReply;
import org.iommuemu.proto.v1.DmaWriteRequest;

/**
 * An attached DMA master: reads and writes by I/O virtual address on its own stream id. Closing it
 * detaches. Thread-safe.
 */
public final class DmaSession implements AutoCloseable {
    private final DmaClient client;
    private final long id;
    private final String name;
    private final String iommu;
    private final int streamId;
    private final boolean substreams;
    private volatile boolean detached;

    DmaSession(DmaClient client, long id, String name, String iommu, int streamId, boolean substreams) {
        this.client = client;
        this.id = id;
        this.name = name;
        this.iommu = iommu;
        this.streamId = streamId;
        this.substreams = substreams;
    }

    public long id() {
        return id;
    }

    public String name() {
        return name;
    }

    public String iommu() {
        return iommu;
    }

    public int streamId() {
        return streamId;
    }

    public boolean substreams() {
        return substreams;
    }

    /** Reads {@code length} bytes at {@code iova}. */
    public DmaResult read(long iova, int length) {
        return read(iova, length, DmaOptions.DEFAULT);
    }

    public DmaResult read(long iova, int length, DmaOptions options) {
        DmaReadRequest.Builder b = DmaReadRequest.newBuilder().setSessionId(id).setIova(iova).setLength(length)
                .setAttributes(options.attributes());
        if (options.hasSubstream()) {
            b.setSubstreamId(options.substreamId());
        }
        DmaReadReply reply = client.blocking().read(b.build());
        return new DmaResult(reply.getData(), reply.hasFault() ? reply.getFault() : null);
    }

    /** Writes {@code data} at {@code iova}. */
    public DmaResult write(long iova, byte[] data) {
        return write(iova, ByteString.copyFrom(data), DmaOptions.DEFAULT);
    }

    public DmaResult write(long iova, ByteString data, DmaOptions options) {
        DmaWriteRequest.Builder b = DmaWriteRequest.newBuilder().setSessionId(id).setIova(iova).setData(data)
                .setAttributes(options.attributes());
        if (options.hasSubstream()) {
            b.setSubstreamId(options.substreamId());
        }
        DmaWriteReply reply = client.blocking().write(b.build());
        return new DmaResult(ByteString.EMPTY, reply.hasFault() ? reply.getFault() : null);
    }

    /**
     * Opens a pipelined {@code Transfer} stream that keeps up to {@code window} requests in flight.
     *
     * @param window 1 .. the server's limits.max_transfer_in_flight is a sensible range; more is allowed but
     *     the server reads ahead only up to its limit
     */
    public Transfer openTransfer(int window) {
        return new Transfer(client.async(), this, window);
    }

    /** Ends the session and frees its stream id. Idempotent. */
    @Override
    public void close() {
        if (detached) {
            return;
        }
        detached = true;
        try {
            client.blocking().detach(DetachRequest.newBuilder().setSessionId(id).build());
        } catch (StatusRuntimeException e) {
            // Already gone (connection closed, server restarted): nothing left to release.
            if (e.getStatus().getCode() != Status.Code.NOT_FOUND
                    && e.getStatus().getCode() != Status.Code.UNAVAILABLE) {
                throw e;
            }
        }
    }

    @Override
    public String toString() {
        return "DmaSession[" + name + " on " + iommu + " stream " + streamId + "]";
    }
}
