package org.iommuemu.dma.masters;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.DmaFault;

/**
 * A simulated memory-to-memory copy engine (a DMA controller with one descriptor ring), driven entirely by
 * DMA on its session's stream id.
 *
 * <h2>Device ABI</h2>
 *
 * <p>The ring is {@code entries} descriptors of {@value CopyDescriptor#SIZE} bytes at consecutive iovas from
 * {@code ringBase} (aligned to 32 bytes, so no descriptor straddles a page); descriptor {@code i} is at
 * {@code ringBase + 32 * i}. See {@link CopyDescriptor} for the descriptor's words. The engine keeps two
 * indices in {@code [0, entries)}: HEAD, the next descriptor it will process, and TAIL, one past the last one
 * software has posted. HEAD == TAIL means the ring is empty, so software posts at most {@code entries - 1}
 * descriptors at a time. Both start at 0.
 *
 * <p>Software fills descriptors (STATUS = 0), then rings the doorbell with the new TAIL ({@link #doorbell}).
 * For each descriptor from HEAD up to TAIL the engine:
 * <ol>
 * <li>reads the 32 bytes with one DMA read (a fault here halts the engine with HEAD still on the descriptor;
 *     nothing is written back, since the descriptor cannot be reached);</li>
 * <li>checks LEN's reserved bits (set: completes with BAD_DESCRIPTOR);</li>
 * <li>copies LEN bytes in chunks of at most {@code maxTransfer}: a DMA read of the source chunk, then a DMA
 *     write of the bytes read to the destination. A read that faults part-way still writes the bytes it got, so
 *     the destination always holds exactly the first {@code copied} bytes;</li>
 * <li>writes the STATUS word (one 8-byte DMA write at descriptor + 0x18) and advances HEAD (wrapping at
 *     {@code entries}). If this write faults the engine halts with HEAD still on the descriptor.</li>
 * </ol>
 * A descriptor that completes with anything but OK halts the engine after its STATUS is written and HEAD has
 * moved past it. A halted engine ignores doorbells (it still records the new TAIL) until {@link #resume()};
 * {@link #error()} says why it halted. Faults never throw: they are statuses and counters. A gRPC failure of
 * the bus itself (session detached, server gone) does throw, as a {@link io.grpc.StatusRuntimeException}.
 *
 * <p>Thread-safe (one doorbell is processed at a time). The copy moves the bytes of each read reply straight
 * into the write request, without copying them in the client.
 */
public final class CopyEngine {
    /** Why the engine halted. */
    public enum Phase {
        /** Reading the descriptor faulted; HEAD stays on it. */
        DESCRIPTOR_READ,
        /** LEN had reserved bits set; completed with BAD_DESCRIPTOR. */
        BAD_DESCRIPTOR,
        /** Reading the source faulted; completed with READ_FAULT. */
        SOURCE_READ,
        /** Writing the destination faulted; completed with WRITE_FAULT. */
        DESTINATION_WRITE,
        /** Writing STATUS back faulted; HEAD stays on the descriptor. */
        STATUS_WRITE
    }

    /**
     * The error that halted the engine.
     *
     * @param index the descriptor's ring index
     * @param phase what failed
     * @param fault the DMA fault, or null for {@link Phase#BAD_DESCRIPTOR}
     */
    public record Error(int index, Phase phase, DmaFault fault) {}

    /**
     * Totals since construction.
     *
     * @param completed descriptors completed (STATUS written), with any code
     * @param bytesCopied bytes written to destinations
     * @param faults DMA faults met (descriptor, source, destination and status accesses)
     * @param badDescriptors descriptors completed with BAD_DESCRIPTOR
     */
    public record Counters(long completed, long bytesCopied, long faults, long badDescriptors) {}

    private final DmaSession session;
    private final long ringBase;
    private final int entries;
    private final int maxTransfer;
    private final DmaOptions options;
    private final byte[] descriptor = new byte[CopyDescriptor.SIZE];
    private final byte[] statusWord = new byte[8];
    private int head;
    private int tail;
    private Error error;
    private long completed;
    private long bytesCopied;
    private long faults;
    private long badDescriptors;

    /** An engine with a {@value Args#DEFAULT_MAX_TRANSFER}-byte chunk and default access options. */
    public CopyEngine(DmaSession session, long ringBase, int entries) {
        this(session, ringBase, entries, Args.DEFAULT_MAX_TRANSFER, DmaOptions.DEFAULT);
    }

    /**
     * @param session the attached master the engine issues its DMA as
     * @param ringBase iova of descriptor 0, 32-byte aligned
     * @param entries descriptors in the ring, 2 .. 2^20
     * @param maxTransfer the largest single DMA, 1 .. 64 MiB (keep it within the bus's max_dma_length)
     * @param options substream id and attributes for every access, descriptors included
     */
    public CopyEngine(DmaSession session, long ringBase, int entries, int maxTransfer, DmaOptions options) {
        this.session = Args.notNull("session", session);
        Args.ring("ringBase", ringBase, "entries", entries, CopyDescriptor.SIZE);
        this.ringBase = ringBase;
        this.entries = entries;
        this.maxTransfer = Args.range("maxTransfer", maxTransfer, 1, 64 << 20);
        this.options = Args.notNull("options", options);
    }

    /** The iova of descriptor {@code index}. */
    public long descriptorAddress(int index) {
        Args.range("index", index, 0, entries - 1);
        return ringBase + (long) index * CopyDescriptor.SIZE;
    }

    public int entries() {
        return entries;
    }

    public synchronized int head() {
        return head;
    }

    public synchronized int tail() {
        return tail;
    }

    public synchronized boolean halted() {
        return error != null;
    }

    /** What halted the engine, or null while it runs. */
    public synchronized Error error() {
        return error;
    }

    /** Clears the halt; the next doorbell continues from HEAD. */
    public synchronized void resume() {
        error = null;
    }

    /** Empties the ring: HEAD = TAIL = 0, no halt. Counters are kept. */
    public synchronized void reset() {
        head = 0;
        tail = 0;
        error = null;
    }

    public synchronized Counters counters() {
        return new Counters(completed, bytesCopied, faults, badDescriptors);
    }

    /**
     * Sets TAIL and processes descriptors from HEAD up to it (unless halted).
     *
     * @param newTail 0 .. entries - 1
     * @return descriptors completed by this call (with any code)
     */
    public synchronized int doorbell(int newTail) {
        Args.range("newTail", newTail, 0, entries - 1);
        tail = newTail;
        int done = 0;
        while (error == null && head != tail) {
            if (!processOne()) {
                break;
            }
            done++;
        }
        return done;
    }

    /** Processes the descriptor at HEAD; false if it could not be completed (HEAD stays). */
    private boolean processOne() {
        long at = ringBase + (long) head * CopyDescriptor.SIZE;
        DmaResult d = session.read(at, CopyDescriptor.SIZE, options);
        if (d.faulted()) {
            faults++;
            error = new Error(head, Phase.DESCRIPTOR_READ, d.fault());
            return false;
        }
        d.data().copyTo(descriptor, 0);
        long src = Le.get64(descriptor, CopyDescriptor.SRC);
        long dst = Le.get64(descriptor, CopyDescriptor.DST);
        long lenWord = Le.get64(descriptor, CopyDescriptor.LEN);

        CompletionCode code = CompletionCode.OK;
        DmaFault fault = null;
        long copied = 0;
        if ((lenWord & CopyDescriptor.LEN_RESERVED) != 0) {
            code = CompletionCode.BAD_DESCRIPTOR;
            badDescriptors++;
        } else {
            long len = lenWord;
            while (copied < len) {
                int chunk = (int) Math.min(maxTransfer, len - copied);
                DmaResult r = session.read(src + copied, chunk, options);
                ByteString data = r.data();
                if (!data.isEmpty()) {
                    DmaResult w = session.write(dst + copied, data, options);
                    if (w.faulted()) {
                        copied += w.fault().getBytesDone();
                        code = CompletionCode.WRITE_FAULT;
                        fault = w.fault();
                        break;
                    }
                    copied += data.size();
                }
                if (r.faulted()) {
                    code = CompletionCode.READ_FAULT;
                    fault = r.fault();
                    break;
                }
            }
            bytesCopied += copied;
        }
        if (fault != null) {
            faults++;
        }
        Le.put64(statusWord, 0, CopyDescriptor.status(code, fault == null ? null : fault.getKind(), copied));
        DmaResult s = session.write(at + CopyDescriptor.STATUS, UnsafeByteOperations.unsafeWrap(statusWord), options);
        if (s.faulted()) {
            faults++;
            error = new Error(head, Phase.STATUS_WRITE, s.fault());
            return false;
        }
        int index = head;
        head = head + 1 == entries ? 0 : head + 1;
        completed++;
        switch (code) {
            case OK -> { }
            case BAD_DESCRIPTOR -> error = new Error(index, Phase.BAD_DESCRIPTOR, null);
            case READ_FAULT -> error = new Error(index, Phase.SOURCE_READ, fault);
            default -> error = new Error(index, Phase.DESTINATION_WRITE, fault);
        }
        return true;
    }

    @Override
    public synchronized String toString() {
        return "CopyEngine[" + session.name() + ", ring 0x" + Long.toHexString(ringBase) + " x " + entries
                + ", head " + head + ", tail " + tail + (error == null ? "" : ", halted: " + error) + "]";
    }
}
