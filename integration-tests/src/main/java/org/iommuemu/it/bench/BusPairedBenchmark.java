package org.iommuemu.it.bench;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.iommuemu.dma.DmaResult;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.infra.Blackhole;

/**
 * The DMA/echo comparison of {@link BusBenchmark}, paired: every invocation runs a batch of 4 KiB DMA reads
 * and a batch of echo calls carrying the same payload, alternating which goes first, and adds each batch's
 * elapsed nanoseconds to its own counter. The two paths are thus measured in the same time window, so noise
 * from the machine (which on a shared virtual machine dwarfs the difference between them) hits both alike.
 * {@link BenchReport} prints the ratio of their throughputs, {@code echoNanos / dmaNanos} for equal work.
 * Servers use the default dispatch of {@code iommu-emu serve} for DMA (on the transport's threads) and the
 * same for the echo server.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
public class BusPairedBenchmark {
    static final int UNARY_BATCH = 32;
    static final int PIPELINED_BATCH = 512;

    /** Nanoseconds spent in each path; JMH sums them per iteration. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.EVENTS)
    public static class Nanos {
        public long dmaNanos;
        public long echoNanos;

        @Setup(Level.Iteration)
        public void clear() {
            dmaNanos = 0;
            echoNanos = 0;
        }
    }

    private final BusBenchmark servers = new BusBenchmark();
    private final CompletableFuture<?>[] futures = new CompletableFuture<?>[PIPELINED_BATCH];
    private boolean dmaFirst;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        servers.dispatch = "direct";
        servers.setUp();
    }

    @org.openjdk.jmh.annotations.TearDown(Level.Trial)
    public void tearDown() throws Exception {
        servers.tearDown();
    }

    @Benchmark
    public void unaryPair(Nanos n, Blackhole bh) {
        dmaFirst = !dmaFirst;
        for (int side = 0; side < 2; side++) {
            boolean dma = (side == 0) == dmaFirst;
            long t0 = System.nanoTime();
            for (int i = 0; i < UNARY_BATCH; i++) {
                bh.consume(dma ? servers.dmaUnaryRead4k() : servers.echoUnary4k());
            }
            long dt = System.nanoTime() - t0;
            if (dma) {
                n.dmaNanos += dt;
            } else {
                n.echoNanos += dt;
            }
        }
    }

    @Benchmark
    public void pipelinedPair(Nanos n, Blackhole bh) throws Exception {
        dmaFirst = !dmaFirst;
        for (int side = 0; side < 2; side++) {
            boolean dma = (side == 0) == dmaFirst;
            long t0 = System.nanoTime();
            for (int i = 0; i < PIPELINED_BATCH; i++) {
                futures[i] = dma ? servers.transfer().read(servers.iova() + (long) (i % 16) * BusBenchmark.SIZE,
                        BusBenchmark.SIZE) : servers.echoPipeline().call(BusBenchmark.SIZE);
            }
            for (int i = 0; i < PIPELINED_BATCH; i++) {
                Object r = futures[i].get();
                if (r instanceof DmaResult d && d.faulted()) {
                    throw new IllegalStateException(d.toString());
                }
                bh.consume(r);
            }
            long dt = System.nanoTime() - t0;
            if (dma) {
                n.dmaNanos += dt;
            } else {
                n.echoNanos += dt;
            }
        }
    }
}
