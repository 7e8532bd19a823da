package org.iommuemu.it.bench;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.NettyServerBuilder;
import java.net.InetSocketAddress;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.Transfer;
import org.iommuemu.it.bench.proto.EchoGrpc;
import org.iommuemu.it.bench.proto.EchoReply;
import org.iommuemu.it.bench.proto.EchoRequest;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.infra.Blackhole;

/**
 * 4 KiB DMA reads in bypass over Netty on loopback, unary and pipelined ({@code Transfer}, window 64),
 * side by side with a plain gRPC echo service carrying the same payload over an identically configured
 * Netty server in the same JVM. Scores are operations per second; {@link BenchReport} adds MB/s and the
 * DMA/echo ratios.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
public class BusBenchmark {
    static final int SIZE = 4096;
    static final int BATCH = 1024;
    static final int WINDOW = 64;
    private static final int SLOTS = 16;

    /**
     * Where both servers run their calls: a thread pool (one hand-off per call or stream event, as gRPC's
     * default executor does) or directly on Netty's event loop (what {@code iommu-emu serve} does for DMA).
     */
    @Param({"pool", "direct"})
    public String dispatch;

    private java.util.concurrent.ExecutorService pool;

    private BusServer bus;
    private DmaClient client;
    private DmaSession session;
    private Transfer transfer;
    private long iova;

    private Server echoServer;
    private ManagedChannel echoChannel;
    private EchoGrpc.EchoBlockingStub echo;
    private EchoPipeline echoPipeline;
    private EchoRequest echoRequest;

    private final CompletableFuture<?>[] futures = new CompletableFuture<?>[BATCH];

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        Machine machine = new Machine(MachineConfig.defaults());
        pool = java.util.concurrent.Executors.newCachedThreadPool();
        java.util.concurrent.Executor executor = dispatch.equals("direct") ? Runnable::run : pool;
        bus = BusServer.netty(machine, "127.0.0.1", 0, executor).start();
        client = DmaClient.connect(bus.target());
        session = client.attach("bench", "smmu0", 1);
        iova = machine.memory().regions().get(0).base() + 0x100000;
        byte[] data = new byte[SIZE * SLOTS];
        new java.util.Random(1).nextBytes(data);
        DmaResult w = session.write(iova, data);
        if (!w.isOk()) {
            throw new IllegalStateException("benchmark setup write failed: " + w);
        }
        transfer = session.openTransfer(WINDOW);

        NettyServerBuilder echoBuilder = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
                .addService(new EchoService());
        if (executor != null) {
            echoBuilder.executor(executor);
        }
        echoServer = echoBuilder.build().start();
        echoChannel = NettyChannelBuilder.forAddress("127.0.0.1", echoServer.getPort()).usePlaintext().build();
        echo = EchoGrpc.newBlockingStub(echoChannel);
        echoPipeline = new EchoPipeline(EchoGrpc.newStub(echoChannel), WINDOW);
        echoRequest = EchoRequest.newBuilder().setTag(1).setLength(SIZE).build();
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        transfer.close();
        session.close();
        client.close();
        bus.close();
        echoPipeline.close();
        echoChannel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        echoServer.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        pool.shutdownNow();
    }

    Transfer transfer() {
        return transfer;
    }

    EchoPipeline echoPipeline() {
        return echoPipeline;
    }

    long iova() {
        return iova;
    }

    @Benchmark
    public ByteString dmaUnaryRead4k() {
        DmaResult r = session.read(iova, SIZE);
        if (r.faulted()) {
            throw new IllegalStateException(r.toString());
        }
        return r.data();
    }

    @Benchmark
    public ByteString echoUnary4k() {
        return echo.unary(echoRequest).getData();
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public void dmaTransferRead4k(Blackhole bh) throws Exception {
        for (int i = 0; i < BATCH; i++) {
            futures[i] = transfer.read(iova + (long) (i % SLOTS) * SIZE, SIZE);
        }
        for (int i = 0; i < BATCH; i++) {
            DmaResult r = (DmaResult) futures[i].get();
            if (r.faulted()) {
                throw new IllegalStateException(r.toString());
            }
            bh.consume(r.data());
        }
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public void echoStream4k(Blackhole bh) throws Exception {
        for (int i = 0; i < BATCH; i++) {
            futures[i] = echoPipeline.call(SIZE);
        }
        for (int i = 0; i < BATCH; i++) {
            bh.consume(((EchoReply) futures[i].get()).getData());
        }
    }
}
