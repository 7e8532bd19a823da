package org.iommuemu.dma;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.atomic.AtomicLong;
import org.iommuemu.proto.v1.DetachRequest;
import org.iommuemu.proto.v1.DmaReadReply;
import org.iommuemu.proto.v1.DmaReadRequest;
import org.iommuemu.proto.v1.DmaWriteReply;
import org.iommuemu.proto.v1.DmaWriteRequest;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.TranslateReply;
import org.iommuemu.proto.v1.TranslateRequest;
import org.iommuemu.proto.v1.DmaFault;

/**
 * An attached DMA master: reads and writes by I/O virtual address on its own stream id. Closing it
 * detaches. Thread-safe.
 *
 * <p>A session attached with ATS can be put in ATC mode ({@link #useAtc}): from then on its plain {@link #read} and
 * {@link #write} and the requests of its {@link #openTransfer Transfer} streams go through the ATC (a hit is a
 * translated request at the cached physical address, a miss translates first), so a master written against the
 * plain API (the NIC, the traffic generator...) becomes an ATS master without knowing it.
 */
public final class DmaSession implements AutoCloseable {
    private final DmaClient client;
    private final long id;
    private final String name;
    private final String iommu;
    private final int streamId;
    private final boolean substreams;
    private final boolean ats;
    private volatile boolean detached;
    /** The ATC every DMA goes through ({@link #useAtc}), or null. */
    private volatile Atc atc;
    private final AtomicLong atcTranslations = new AtomicLong();
    private final AtomicLong atcRefusals = new AtomicLong();

    DmaSession(DmaClient client, long id, String name, String iommu, int streamId, boolean substreams,
            boolean ats) {
        this.client = client;
        this.id = id;
        this.name = name;
        this.iommu = iommu;
        this.streamId = streamId;
        this.substreams = substreams;
        this.ats = ats;
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

    /** Whether the session was attached with ATS (it has an ATC: it may translate and issue translated requests). */
    public boolean ats() {
        return ats;
    }

    /**
     * Puts the session in ATC mode: every later {@link #read}, {@link #write} and {@link Transfer} request goes
     * through {@code atc} as {@link #readThroughAtc} / {@link #writeThroughAtc} do (null: back to untranslated
     * requests). Pair it with {@link #listenForInvalidations} on the same ATC, or the ATC goes stale.
     *
     * @throws IllegalStateException when the session was not attached with ATS
     */
    public void useAtc(Atc value) {
        if (value != null && !ats) {
            throw new IllegalStateException(this + " was not attached with ats = true: it has no ATC to use");
        }
        atc = value;
    }

    /** The ATC every DMA goes through ({@link #useAtc}), or null. */
    public Atc atc() {
        return atc;
    }

    /** ATS translation requests the through-ATC paths made (one per ATC miss). */
    public long atcTranslations() {
        return atcTranslations.get();
    }

    /**
     * Of {@link #atcTranslations}, those that gave nothing to cache: refused with a fault, or answered "no access"
     * (nothing mapped there, or not with the access asked); each ends its DMA with a fault.
     */
    public long atcRefusals() {
        return atcRefusals.get();
    }

    /** Reads {@code length} bytes at {@code iova}. */
    public DmaResult read(long iova, int length) {
        return read(iova, length, DmaOptions.DEFAULT);
    }

    /** Reads {@code length} bytes at {@code iova} (through the ATC in ATC mode, see {@link #useAtc}). */
    public DmaResult read(long iova, int length, DmaOptions options) {
        Atc a = atc;
        if (a != null) {
            return readThroughAtc(a, iova, length, options);
        }
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

    /** Writes {@code data} at {@code iova} (through the ATC in ATC mode, see {@link #useAtc}). */
    public DmaResult write(long iova, ByteString data, DmaOptions options) {
        Atc a = atc;
        if (a != null) {
            return writeThroughAtc(a, iova, data, options);
        }
        DmaWriteRequest.Builder b = DmaWriteRequest.newBuilder().setSessionId(id).setIova(iova).setData(data)
                .setAttributes(options.attributes());
        if (options.hasSubstream()) {
            b.setSubstreamId(options.substreamId());
        }
        DmaWriteReply reply = client.blocking().write(b.build());
        return new DmaResult(ByteString.EMPTY, reply.hasFault() ? reply.getFault() : null);
    }

    // ------------------------------------------------------------------ ATS (sessions attached with ats = true)

    /**
     * An ATS translation request for {@code iova}: read permission, and write permission when {@code write}
     * (execute when {@code options} say instruction). The reply carries the region, its permissions, or a fault.
     */
    public TranslateReply translate(long iova, boolean write, DmaOptions options) {
        TranslateRequest.Builder b = TranslateRequest.newBuilder().setSessionId(id).setIova(iova).setWrite(write)
                .setAttributes(options.attributes());
        if (options.hasSubstream()) {
            b.setSubstreamId(options.substreamId());
        }
        return client.blocking().translate(b.build());
    }

    /** A translated read: {@code length} bytes at physical address {@code pa} (from a translation). */
    public DmaResult readTranslated(long pa, int length, DmaOptions options) {
        DmaReadRequest.Builder b = DmaReadRequest.newBuilder().setSessionId(id).setIova(pa).setLength(length)
                .setAttributes(options.attributes()).setTranslated(true);
        if (options.hasSubstream()) {
            b.setSubstreamId(options.substreamId());
        }
        DmaReadReply reply = client.blocking().read(b.build());
        return new DmaResult(reply.getData(), reply.hasFault() ? reply.getFault() : null);
    }

    /** A translated write of {@code data} at physical address {@code pa} (from a translation). */
    public DmaResult writeTranslated(long pa, ByteString data, DmaOptions options) {
        DmaWriteRequest.Builder b = DmaWriteRequest.newBuilder().setSessionId(id).setIova(pa).setData(data)
                .setAttributes(options.attributes()).setTranslated(true);
        if (options.hasSubstream()) {
            b.setSubstreamId(options.substreamId());
        }
        DmaWriteReply reply = client.blocking().write(b.build());
        return new DmaResult(ByteString.EMPTY, reply.hasFault() ? reply.getFault() : null);
    }

    /**
     * Opens this session's ATC invalidation stream: each invalidation is applied to {@code atc} and answered as
     * {@code answer} says ({@code delayMs} on {@code scheduler} for {@link AtcListener.Answer#DELAYED}).
     */
    public AtcListener listenForInvalidations(Atc atc, AtcListener.Answer answer, long delayMs,
            ScheduledExecutorService scheduler) {
        return new AtcListener(client.async(), id, atc, answer, delayMs, scheduler);
    }

    /** {@link #listenForInvalidations(Atc, AtcListener.Answer, long, ScheduledExecutorService)}, answering at once. */
    public AtcListener listenForInvalidations(Atc atc) {
        return listenForInvalidations(atc, AtcListener.Answer.AT_ONCE, 0, null);
    }

    /**
     * Reads through the ATC: each region hit in {@code atc} is read with a translated request; a miss translates
     * first (and caches the reply). A translation refused, or one that grants no read permission, ends the read
     * with a fault (kind PERMISSION for "no access", with the bytes read before it). Each region-sized piece is one
     * ATC lookup: a hit or a miss in {@link Atc#hits()} / {@link Atc#misses()}.
     */
    public DmaResult readThroughAtc(Atc atc, long iova, int length, DmaOptions options) {
        ByteString.Output data = null;
        int done = 0;
        while (done < length) {
            long va = iova + done;
            long pa = atc.lookup(options.substreamId(), va, false);
            if (pa == Atc.MISS) {
                DmaFault fault = fill(atc, va, false, options, done);
                if (fault != null) {
                    return new DmaResult(data == null ? ByteString.EMPTY : data.toByteString(), fault);
                }
                pa = atc.peek(options.substreamId(), va, false);
            }
            int chunk = chunk(atc, options, va, length - done);
            DmaResult r = readTranslated(pa, chunk, options);
            if (chunk == length) { // the whole read in one region: its reply as it is
                return r.isOk() ? r : new DmaResult(r.data(), atVa(r.fault(), va, 0));
            }
            if (data == null) {
                data = ByteString.newOutput(length);
            }
            data.write(r.data().toByteArray(), 0, r.data().size());
            if (!r.isOk()) {
                return new DmaResult(data.toByteString(), atVa(r.fault(), va, done));
            }
            done += chunk;
        }
        return new DmaResult(data == null ? ByteString.EMPTY : data.toByteString(), null);
    }

    /** Writes through the ATC; see {@link #readThroughAtc}. */
    public DmaResult writeThroughAtc(Atc atc, long iova, byte[] bytes, DmaOptions options) {
        return writeThroughAtc(atc, iova, ByteString.copyFrom(bytes), options);
    }

    /** Writes {@code data} through the ATC; see {@link #readThroughAtc}. */
    public DmaResult writeThroughAtc(Atc atc, long iova, ByteString data, DmaOptions options) {
        int length = data.size();
        int done = 0;
        while (done < length) {
            long va = iova + done;
            long pa = atc.lookup(options.substreamId(), va, true);
            if (pa == Atc.MISS) {
                DmaFault fault = fill(atc, va, true, options, done);
                if (fault != null) {
                    return new DmaResult(ByteString.EMPTY, fault);
                }
                pa = atc.peek(options.substreamId(), va, true);
            }
            int chunk = chunk(atc, options, va, length - done);
            DmaResult r = writeTranslated(pa, chunk == length ? data : data.substring(done, done + chunk), options);
            if (!r.isOk()) {
                return new DmaResult(ByteString.EMPTY, atVa(r.fault(), va, done));
            }
            done += chunk;
        }
        return new DmaResult(ByteString.EMPTY, null);
    }

    /** A translated request's fault as the through-ATC caller sees it: at the iova, after the bytes done before. */
    static DmaFault atVa(DmaFault fault, long va, int done) {
        return fault.toBuilder().setAddress(va).setBytesDone(done + fault.getBytesDone()).build();
    }

    /**
     * After a miss in {@code atc} for {@code va}: translates it and caches the answer; null when {@code atc} can now
     * serve the access, else the fault that ends the DMA there ({@code done} bytes into it).
     */
    DmaFault fill(Atc atc, long va, boolean write, DmaOptions options, int done) {
        atcTranslations.incrementAndGet();
        TranslateReply reply = translate(va, write, options);
        if (reply.hasFault()) {
            atcRefusals.incrementAndGet();
            return reply.getFault().toBuilder().setAddress(va).setBytesDone(done).build();
        }
        atc.insert(options.substreamId(), reply);
        if (atc.peek(options.substreamId(), va, write) == Atc.MISS) {
            atcRefusals.incrementAndGet();
            return DmaFault.newBuilder().setKind(FaultKind.PERMISSION).setAddress(va).setBytesDone(done)
                    .setDescription("the ATS translation of " + Long.toHexString(va) + " grants no "
                            + (write ? "write" : "read") + " access").build();
        }
        return null;
    }

    /** The bytes of the next piece from {@code va}: up to the end of its cached region, at most {@code left}. */
    static int chunk(Atc atc, DmaOptions options, long va, int left) {
        long region = atc.remaining(options.substreamId(), va);
        return region == 0 || Long.compareUnsigned(region, left) >= 0 ? left : (int) region;
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
