package org.iommuemu.it;

import java.util.concurrent.TimeUnit;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.Transfer;

/**
 * A DMA master in its own process, for tests that kill a client mid-stream: attaches, says so on standard
 * output, then streams pipelined reads until it is killed or its time is up (60 s at most).
 *
 * <p>Arguments: TARGET IOMMU STREAM_ID IOVA
 */
public final class StreamingClientMain {
    private StreamingClientMain() {}

    public static void main(String[] args) throws Exception {
        String target = args[0];
        String iommu = args[1];
        int sid = Integer.parseInt(args[2]);
        long iova = Long.decode(args[3]);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        try (DmaClient client = DmaClient.connect(target);
                DmaSession s = client.attach("doomed", iommu, sid);
                Transfer t = s.openTransfer(32)) {
            System.out.println("ATTACHED " + s.id());
            System.out.flush();
            long n = 0;
            while (System.nanoTime() < deadline) {
                t.read(iova, 4096);
                if (++n == 1000) {
                    System.out.println("STREAMING");
                    System.out.flush();
                }
            }
        }
    }
}
