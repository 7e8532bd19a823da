package org.iommuemu.dma.masters;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.StatusRuntimeException;
import java.util.EnumMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.Transfer;
import org.iommuemu.proto.v1.DmaFault;
import org.iommuemu.proto.v1.FaultKind;

/**
 * A DMA traffic generator: issues the requests a {@link TrafficSpec} describes (address pattern, read/write mix,
 * request size, bound) on one pipelined {@code Dma.Transfer} stream with {@code window} requests in flight, and
 * counts what came back. The sequence of requests depends only on the spec (its seed included), never on timing.
 *
 * <p>Writes carry a fixed pattern of {@code requestSize} bytes derived from the seed (byte {@code j} of every
 * write is the same), built once per generator; reads' data is discarded. Replies are accounted on the calling
 * thread, oldest first, so a run keeps exactly {@code window} futures alive and allocates nothing per request
 * beyond what the client library needs. Faults are counted, never thrown.
 */
public final class TrafficGenerator {
    private final DmaSession session;
    private final TrafficSpec spec;
    private final DmaOptions options;
    private final ByteString payload;

    public TrafficGenerator(DmaSession session, TrafficSpec spec) {
        this(session, spec, DmaOptions.DEFAULT);
    }

    /**
     * @param session the attached master the requests are issued as
     * @param spec what to issue
     * @param options substream id and attributes for every request
     */
    public TrafficGenerator(DmaSession session, TrafficSpec spec, DmaOptions options) {
        this.session = Args.notNull("session", session);
        this.spec = Args.notNull("spec", spec);
        this.options = Args.notNull("options", options);
        byte[] b = new byte[spec.requestSize()];
        new SplittableRandom(spec.seed() ^ 0x5DEECE66DL).nextBytes(b);
        this.payload = UnsafeByteOperations.unsafeWrap(b); // never modified after this
    }

    /** The bytes every write carries. */
    public ByteString payload() {
        return payload;
    }

    /** Told how far a long run has got (on the thread calling {@link #run(Progress, long)}). */
    @FunctionalInterface
    public interface Progress {
        /**
         * @param answered requests whose replies have been accounted so far
         * @param fraction how much of the spec's bound has been issued, 0 .. 1 (the larger of ops and bytes)
         * @param elapsedNanos wall time since the run started
         */
        void update(long answered, double fraction, long elapsedNanos);
    }

    /**
     * Runs the spec to its bound, blocking until every reply has arrived.
     *
     * @throws InterruptedException if interrupted while waiting for the window or a reply (the stream is
     *     cancelled)
     */
    public TrafficStats run() throws InterruptedException {
        return run(null, 0);
    }

    /**
     * {@link #run()}, calling {@code progress} about every {@code intervalNanos} of wall time (never when the run
     * is shorter than that). The clock is read once every 64 requests, so a slow server does not make progress
     * lag by more than 64 replies.
     */
    public TrafficStats run(Progress progress, long intervalNanos) throws InterruptedException {
        int window = spec.window();
        @SuppressWarnings({"unchecked", "rawtypes"})
        CompletableFuture<DmaResult>[] inFlight = new CompletableFuture[window];
        boolean[] isRead = new boolean[window];
        Counts c = new Counts();
        TrafficPlan plan = new TrafficPlan(spec);
        long start = System.nanoTime();
        long nextReport = start + intervalNanos;
        long issued = 0;
        Transfer t = session.openTransfer(window);
        boolean done = false;
        try {
            int head = 0; // oldest in flight
            int count = 0;
            while (plan.next()) {
                if (count == window) {
                    c.account(inFlight[head], isRead[head], spec.requestSize());
                    inFlight[head] = null;
                    head = head + 1 == window ? 0 : head + 1;
                    count--;
                }
                int slot = (head + count) % window;
                isRead[slot] = plan.read();
                inFlight[slot] = plan.read() ? t.read(plan.iova(), plan.size(), options)
                        : t.write(plan.iova(), payload, options);
                count++;
                if (progress != null && (++issued & 63) == 0) {
                    long now = System.nanoTime();
                    if (now - nextReport >= 0) {
                        nextReport = now + intervalNanos;
                        progress.update(c.reads + c.writes + c.rejected, fraction(issued), now - start);
                    }
                }
            }
            while (count > 0) {
                c.account(inFlight[head], isRead[head], spec.requestSize());
                inFlight[head] = null;
                head = head + 1 == window ? 0 : head + 1;
                count--;
            }
            done = true;
        } finally {
            if (done) {
                t.close();
            } else {
                t.cancel();
            }
        }
        long elapsed = System.nanoTime() - start;
        Map<FaultKind, Long> byKind = new EnumMap<>(FaultKind.class);
        for (FaultKind k : FaultKind.values()) {
            if (k != FaultKind.UNRECOGNIZED && c.byKind[k.getNumber()] != 0) {
                byKind.put(k, c.byKind[k.getNumber()]);
            }
        }
        return new TrafficStats(c.reads + c.writes, c.reads, c.writes, c.bytes, c.faults, byKind, c.rejected,
                elapsed);
    }

    private double fraction(long issued) {
        double ops = spec.maxOps() == 0 ? 0 : (double) issued / spec.maxOps();
        double bytes = spec.maxBytes() == 0 ? 0 : (double) issued * spec.requestSize() / spec.maxBytes();
        return Math.min(1.0, Math.max(ops, bytes));
    }

    private static final class Counts {
        long reads;
        long writes;
        long bytes;
        long faults;
        long rejected;
        final long[] byKind = new long[16];

        void account(CompletableFuture<DmaResult> f, boolean read, int size) throws InterruptedException {
            DmaResult r;
            try {
                r = f.get();
            } catch (ExecutionException e) {
                if (e.getCause() instanceof StatusRuntimeException) {
                    rejected++;
                    return;
                }
                throw new IllegalStateException("the Transfer stream failed: " + e.getCause(), e.getCause());
            }
            if (read) {
                reads++;
            } else {
                writes++;
            }
            DmaFault fault = r.fault();
            if (fault == null) {
                bytes += size;
            } else {
                faults++;
                bytes += fault.getBytesDone();
                int k = fault.getKindValue();
                byKind[k >= 0 && k < byKind.length ? k : 0]++;
            }
        }
    }
}
