package org.iommuemu.it.examples;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.iommuemu.dma.ClientSecurity;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.Transfer;

/**
 * The Java example of docs/DEVICE-MODELS.md: a copy engine as an external device model on the dma-clients library.
 * It attaches on a stream id, copies {@code len} bytes from {@code src} to {@code dst} with pipelined
 * {@code Transfer} requests, reads the destination back, reads an iova that must fault, and detaches. The
 * domain, the maps and the source data are someone else's business (a scenario, or the host part of a test).
 *
 * <p>{@code java ... JavaCopyEngine HOST:PORT IOMMU STREAM SRC DST LEN FAULT_IOVA [TOKEN_FILE]}; exit 0 when every
 * check held. {@code JavaCopyEngineIT} runs it, so the guide's example cannot rot.
 */
public final class JavaCopyEngine {
    private JavaCopyEngine() {}

    /** What a copy did: requests issued and the fault seen at the faulting iova. */
    public record Report(int requests, String fault) {}

    /** Copies and checks; throws IllegalStateException naming the first check that failed. */
    public static Report run(String target, ClientSecurity security, String iommu, int stream, long src, long dst,
            int len, long faultIova) throws Exception {
        int chunk = 4096;
        int window = 8; // at most Machine.Describe limits.max_transfer_in_flight
        try (DmaClient client = DmaClient.connect(target, security);
                DmaSession engine = client.attach("java-copy", iommu, stream)) {
            byte[] source = new byte[len];
            int requests = 0;
            try (Transfer t = engine.openTransfer(window)) {
                // pipelined: every read goes out at once (the Transfer keeps `window` in flight, waiting as needed)
                List<CompletableFuture<DmaResult>> reads = new ArrayList<>();
                for (int off = 0; off < len; off += chunk) {
                    reads.add(t.read(src + off, Math.min(chunk, len - off)));
                }
                List<CompletableFuture<DmaResult>> writes = new ArrayList<>();
                for (int i = 0; i < reads.size(); i++) {
                    DmaResult r = reads.get(i).get();
                    if (r.faulted()) {
                        throw new IllegalStateException("source chunk " + i + ": " + r); // a fault is a normal reply
                    }
                    r.data().copyTo(source, i * chunk);
                    writes.add(t.write(dst + (long) i * chunk, r.data()));
                }
                for (CompletableFuture<DmaResult> w : writes) {
                    if (w.get().faulted()) {
                        throw new IllegalStateException("destination: " + w.get());
                    }
                }
                requests = reads.size() + writes.size();
            }
            DmaResult back = engine.read(dst, len); // one unary read, up to limits.max_dma_length
            if (back.faulted() || !Arrays.equals(back.data().toByteArray(), source)) {
                throw new IllegalStateException("read-back of the destination differs from the source: " + back);
            }
            DmaResult fault = engine.read(faultIova, 64);
            if (!fault.faulted()) {
                throw new IllegalStateException("a read at unmapped iova 0x" + Long.toHexString(faultIova)
                        + " did not fault");
            }
            String what = fault.fault().getKind() + " at 0x" + Long.toHexString(fault.fault().getAddress());
            return new Report(requests, what);
        } // close(): Dma.Detach, then the channel; had the program died instead, the server would release it too
    }

    /** Command-line entry point. */
    public static void main(String[] args) throws Exception {
        if (args.length < 7) {
            System.err.println("usage: JavaCopyEngine HOST:PORT IOMMU STREAM SRC DST LEN FAULT_IOVA [TOKEN_FILE]");
            System.exit(2);
        }
        ClientSecurity sec = args.length > 7 ? ClientSecurity.NONE.withTokenFile(java.nio.file.Path.of(args[7]))
                : ClientSecurity.NONE;
        Report r = run(args[0], sec, args[1], Integer.decode(args[2]), Long.decode(args[3]), Long.decode(args[4]),
                Integer.decode(args[5]), Long.decode(args[6]));
        System.out.println("copied with " + r.requests() + " Transfer requests; fault: " + r.fault());
    }
}
