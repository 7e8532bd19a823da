package org.iommuemu.it;

import static org.assertj.core.api.Assertions.assertThat;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.AppenderBase;
import com.google.protobuf.ByteString;
import io.grpc.Deadline;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.util.ResourceLeakDetector;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.Transfer;
import org.iommuemu.proto.v1.AttachRequest;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.Interrupt;
import org.iommuemu.proto.v1.InterruptsRequest;
import org.iommuemu.proto.v1.MachineGrpc;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.slf4j.LoggerFactory;

/**
 * Churn: 1,000 clients connect to one server over Netty on loopback, attach, stream DMA and interrupts, and vanish
 * in five ways (cleanly, channel shut down abruptly mid-stream, Transfer cancelled mid-stream, abandoned with an
 * Interrupts stream open, an Attach whose deadline expires). Afterwards the server holds nothing for them (sessions,
 * stream ids, streams, subscribers, connections: {@link BusServer#holdings()}), its heap is back to its baseline
 * within {@link #HEAP_TOLERANCE}, nothing was logged as an error, and Netty's leak detector, at PARANOID level for
 * this class, reported no leaked buffer.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ChurnIT {
    private static final int CLIENTS = 1000;
    private static final int WARM_UP = 100;
    private static final int PARALLEL = 16;
    private static final int OPS = 16;
    private static final int OP_BYTES = 4096;
    /** Every client moves OPS * OP_BYTES bytes each way; clients share 16 windows of that size. */
    private static final long WINDOW = (long) OPS * OP_BYTES;
    /**
     * 8 MiB: after a full GC the heap of this JVM varies by a few hundred KiB between identical measurements, and
     * the server keeps per-client state of well under 1 KiB once a client has gone. 8 MiB over 1,000 clients is 8
     * KiB per client: anything the server kept of each client's 64 KiB of traffic (a reply, a buffer, a stream's
     * queue), or of its session and call objects beyond a few KiB, fails the test.
     */
    private static final long HEAP_TOLERANCE = 8L << 20;

    private static final Capture CAPTURE = new Capture();
    private static ResourceLeakDetector.Level previousLevel;
    private static Machine machine;
    private static BusServer server;
    private static long ram;

    /** Keeps the log events the test cares about: Netty's leak reports and every ERROR. */
    static final class Capture extends AppenderBase<ILoggingEvent> {
        final ConcurrentLinkedQueue<String> leaks = new ConcurrentLinkedQueue<>();
        final ConcurrentLinkedQueue<String> errors = new ConcurrentLinkedQueue<>();

        @Override
        protected void append(ILoggingEvent e) {
            String message = e.getFormattedMessage();
            if (message != null && message.contains("LEAK")) {
                leaks.add(e.getLoggerName() + ": " + message);
            } else if (e.getLevel().isGreaterOrEqual(Level.ERROR)) {
                errors.add(e.getLoggerName() + ": " + message);
            }
        }
    }

    @BeforeAll
    static void start() throws Exception {
        // -Dio.netty.leakDetection.level=paranoid for this class: every buffer is tracked
        previousLevel = ResourceLeakDetector.getLevel();
        ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.PARANOID);
        Logger root = (Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
        CAPTURE.start();
        root.addAppender(CAPTURE);
        machine = new Machine(MachineConfig.defaults());
        server = BusServer.netty(machine, "127.0.0.1", 0).start();
        ram = machine.memory().regions().get(0).base() + 0x100_0000;
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
        ((Logger) LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME)).detachAppender(CAPTURE);
        ResourceLeakDetector.setLevel(previousLevel);
    }

    @Test
    @Order(1)
    void theLeakCaptureSeesADeliberateLeak() throws Exception {
        // Proves the detector is on and its report reaches the capture: otherwise "no LEAK line" would prove nothing
        leakOneBuffer();
        for (int i = 0; i < 50 && CAPTURE.leaks.isEmpty(); i++) {
            System.gc();
            Thread.sleep(20);
            ByteBufAllocator.DEFAULT.buffer(16).release(); // tracking a buffer reports what the GC found
        }
        assertThat(CAPTURE.leaks).as("the deliberately leaked buffer is reported").isNotEmpty();
        CAPTURE.leaks.clear();
    }

    private static void leakOneBuffer() {
        ByteBuf leaked = ByteBufAllocator.DEFAULT.directBuffer(64);
        leaked.writeLong(42);
    }

    @Test
    @Order(2)
    void aThousandClientsComeAndGoAndLeaveNothingBehind() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(PARALLEL);
        // Interrupts keep coming while clients come and go, so Interrupts streams (read or not) carry traffic
        Thread interrupter = new Thread(() -> {
            while (!Thread.currentThread().isInterrupted()) {
                machine.interrupts().wired("smmu0", "gerror");
                try {
                    Thread.sleep(1);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "interrupter");
        interrupter.setDaemon(true);
        interrupter.start();
        try {
            Stats warm = run(pool, 0, WARM_UP);
            assertThat(warm.failures).as("warm-up clients").isEmpty();
            awaitNothingHeld();
            long baseline = settledHeap();

            Stats churn = run(pool, WARM_UP, WARM_UP + CLIENTS);
            assertThat(churn.failures).as("unexpected client-side failures").isEmpty();
            assertThat(churn.verified.get()).as("clean clients read back what they wrote").isEqualTo(CLIENTS / 5);
            BusServer.Holdings held = awaitNothingHeld();
            assertThat(held.isEmpty()).as("everything released: %s", held).isTrue();

            interrupter.interrupt();
            interrupter.join();
            long after = settledHeap();
            System.out.printf("churn: %d clients, heap baseline %d KiB, after %d KiB (growth %d KiB, tolerance %d "
                    + "KiB)%n", CLIENTS, baseline >> 10, after >> 10, (after - baseline) >> 10, HEAP_TOLERANCE >> 10);
            assertThat(after - baseline).as("heap growth after %d clients", CLIENTS).isLessThan(HEAP_TOLERANCE);

            // The server still serves, and its buffers are tracked: what the GC found is reported now
            for (int i = 0; i < 5; i++) {
                System.gc();
                ByteBufAllocator.DEFAULT.buffer(16).release();
                try (DmaClient c = DmaClient.connect(server.target())) {
                    DmaSession s = c.attach("after", "smmu0", 5000);
                    assertThat(s.write(ram, new byte[64]).isOk()).isTrue();
                }
            }
            awaitNothingHeld();
            assertThat(CAPTURE.leaks).as("Netty leak reports").isEmpty();
            assertThat(CAPTURE.errors).as("errors logged").isEmpty();
        } finally {
            interrupter.interrupt();
            pool.shutdownNow();
        }
    }

    /** Outcome of a batch of clients. */
    private static final class Stats {
        final ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
        final AtomicInteger verified = new AtomicInteger();
    }

    private static Stats run(ExecutorService pool, int from, int to) throws Exception {
        Stats stats = new Stats();
        List<Future<?>> done = new ArrayList<>();
        for (int i = from; i < to; i++) {
            int client = i;
            done.add(pool.submit(() -> {
                try {
                    client(client, stats);
                } catch (Exception | AssertionError e) {
                    stats.failures.add("client " + client + ": " + e);
                }
            }));
        }
        for (Future<?> f : done) {
            f.get(60, TimeUnit.SECONDS);
        }
        return stats;
    }

    /** One client's life; how it ends depends on {@code i % 5}. */
    private static void client(int i, Stats stats) throws Exception {
        ManagedChannel ch = NettyChannelBuilder.forTarget(server.target()).usePlaintext()
                .maxInboundMessageSize(DmaClient.MAX_INBOUND_MESSAGE).build();
        try {
            DmaClient client = DmaClient.over(ch);
            long base = ram + (i % 16) * WINDOW;
            byte[] data = new byte[OP_BYTES];
            java.util.Arrays.fill(data, (byte) i);
            switch (i % 5) {
                case 0 -> { // clean: stream, read back, detach, close
                    DmaSession s = client.attach("clean-" + i, "smmu0", i);
                    List<CompletableFuture<DmaResult>> writes = new ArrayList<>();
                    try (Transfer t = s.openTransfer(8)) {
                        for (int k = 0; k < OPS; k++) {
                            writes.add(t.write(base + (long) k * OP_BYTES, ByteString.copyFrom(data)));
                        }
                        for (CompletableFuture<DmaResult> w : writes) {
                            assertThat(w.get(30, TimeUnit.SECONDS).isOk()).isTrue();
                        }
                        // Others write the same window concurrently: check only what DMA read returns is whole
                        DmaResult r = t.read(base, OP_BYTES).get(30, TimeUnit.SECONDS);
                        assertThat(r.isOk()).isTrue();
                        assertThat(r.data().size()).isEqualTo(OP_BYTES);
                    }
                    s.close();
                    stats.verified.incrementAndGet();
                    ch.shutdown();
                }
                case 1 -> { // vanishes mid-stream: requests in flight, channel shut down at once
                    DmaSession s = client.attach("abrupt-" + i, "smmu0", i);
                    Transfer t = s.openTransfer(8);
                    for (int k = 0; k < OPS / 2; k++) {
                        t.write(base + (long) k * OP_BYTES, ByteString.copyFrom(data));
                        t.read(base, OP_BYTES);
                    }
                    ch.shutdownNow();
                }
                case 2 -> { // cancels its Transfer mid-stream, then closes the channel
                    DmaSession s = client.attach("cancel-" + i, "smmu0", i);
                    Transfer t = s.openTransfer(8);
                    for (int k = 0; k < OPS; k++) {
                        t.read(base + (long) k * OP_BYTES, OP_BYTES);
                    }
                    t.cancel();
                    ch.shutdown();
                }
                case 3 -> { // holds an Interrupts stream and a session, then disappears
                    MachineGrpc.newStub(ch).interrupts(InterruptsRequest.getDefaultInstance(), new Subscriber());
                    DmaSession s = client.attach("listener-" + i, "smmu0", i);
                    assertThat(s.read(base, 64).isOk()).isTrue();
                    ch.shutdownNow();
                }
                default -> { // an Attach the client gives up on, then a Transfer it never ends
                    try {
                        DmaGrpc.newBlockingStub(ch).withDeadline(Deadline.after(1, TimeUnit.MICROSECONDS))
                                .attach(AttachRequest.newBuilder().setName("late-" + i).setIommu("smmu0")
                                        .setStreamId(i).build());
                    } catch (io.grpc.StatusRuntimeException expected) {
                        // DEADLINE_EXCEEDED, on the client or the server: either way nothing must stay held
                    }
                    DmaSession s = client.attach("late2-" + i, "smmu0", i + 20_000);
                    Transfer t = s.openTransfer(4);
                    t.write(base, ByteString.copyFrom(data));
                    ch.shutdownNow();
                }
            }
        } finally {
            ch.shutdownNow();
            ch.awaitTermination(10, TimeUnit.SECONDS);
        }
    }

    /** An Interrupts subscriber that never reads what it is sent. */
    private static final class Subscriber implements ClientResponseObserver<InterruptsRequest, Interrupt> {
        @Override
        public void beforeStart(ClientCallStreamObserver<InterruptsRequest> stream) {
            stream.disableAutoRequestWithInitial(0); // never reads: the server must not care
        }

        @Override
        public void onNext(Interrupt value) {
        }

        @Override
        public void onError(Throwable t) {
        }

        @Override
        public void onCompleted() {
        }
    }

    private static BusServer.Holdings awaitNothingHeld() throws InterruptedException {
        BusServer.Holdings h = server.holdings();
        for (int i = 0; i < 300 && !h.isEmpty(); i++) {
            Thread.sleep(100);
            h = server.holdings();
        }
        return h;
    }

    /** Heap in use after full collections, the least of a few measurements. */
    private static long settledHeap() throws InterruptedException {
        long least = Long.MAX_VALUE;
        for (int i = 0; i < 4; i++) {
            System.gc();
            Thread.sleep(200);
            least = Math.min(least, ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed());
        }
        return least;
    }
}
