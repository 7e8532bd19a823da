package org.iommuemu.it.soak;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import org.iommuemu.core.bits.Sizes;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.Transfer;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.FaultInjectionGrpc;
import org.iommuemu.proto.v1.FaultParams;
import org.iommuemu.proto.v1.FaultSpec;
import org.iommuemu.proto.v1.FaultStatus;
import org.iommuemu.proto.v1.FaultTarget;
import org.iommuemu.proto.v1.FaultTrigger;
import org.iommuemu.proto.v1.InjectRequest;
import org.iommuemu.proto.v1.InjectionKind;
import org.iommuemu.proto.v1.ListFaultsRequest;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.Prot;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.UnmapRequest;

/**
 * The soak run (docs/ROBUSTNESS.md): one server over Netty on loopback, and for a chosen time worker clients that
 * map a page through the Driver service, stream DMA to it over a Transfer stream, read it back, unmap it and check
 * that DMA now faults, reconnecting every few hundred rounds, while injected faults (table-walk aborts, random IOTLB
 * evictions, refused RPCs, cut streams, corrupted read data) strike with small probabilities. At the end it reports
 * operations served, faults survived, and whether anything leaked: sessions, stream ids, streams and connections the
 * server still holds once every client has gone, and the heap's growth after GC. Exit code 1 on a leak or when a
 * worker met an error the faults do not explain.
 *
 * <p>Not in CI. Run: {@code mvn -B -Psoak -pl integration-tests -am verify -DskipTests -Dsoak.duration=5m}, or this
 * class's {@code main} with {@code --duration 60s --workers 4 --seed 1}.
 */
public final class Soak {
    private static final int PAGE = 4096;
    private static final int PAGES_PER_WORKER = 16;
    private static final long IOVA_BASE = 0x1000_0000L;
    private static final int RECONNECT_EVERY = 250;

    private final Duration duration;
    private final int workers;
    private final long seed;
    private final LongAdder rounds = new LongAdder();
    private final LongAdder dmaOps = new LongAdder();
    private final LongAdder driverOps = new LongAdder();
    private final LongAdder dmaFaults = new LongAdder();
    private final LongAdder corruptReads = new LongAdder();
    private final LongAdder reconnects = new LongAdder();
    private final Map<String, AtomicLong> rpcErrors = new ConcurrentHashMap<>();
    private final List<String> unexplained = java.util.Collections.synchronizedList(new ArrayList<>());

    private Soak(Duration duration, int workers, long seed) {
        this.duration = duration;
        this.workers = workers;
        this.seed = seed;
    }

    /**
     * Runs the soak; see the class comment for the options.
     *
     * @param args {@code --duration D} (e.g. 60s, 5m), {@code --workers N}, {@code --seed S}
     */
    public static void main(String[] args) throws Exception {
        Duration duration = Duration.ofSeconds(60);
        int workers = 4;
        long seed = 1;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--duration" -> duration = parseDuration(args[i + 1]);
                case "--workers" -> workers = Integer.parseInt(args[i + 1]);
                case "--seed" -> seed = Long.parseLong(args[i + 1]);
                default -> throw new IllegalArgumentException("unknown option " + args[i]
                        + " (--duration D, --workers N, --seed S)");
            }
        }
        if (workers < 1 || workers > 64) {
            throw new IllegalArgumentException("--workers must be 1..64, got " + workers);
        }
        System.exit(new Soak(duration, workers, seed).run() ? 0 : 1);
    }

    static Duration parseDuration(String text) {
        String t = text.trim().toLowerCase(java.util.Locale.ROOT);
        if (t.endsWith("ms")) {
            return Duration.ofMillis(Long.parseLong(t.substring(0, t.length() - 2)));
        }
        long n = Long.parseLong(t.substring(0, t.length() - 1));
        return switch (t.charAt(t.length() - 1)) {
            case 's' -> Duration.ofSeconds(n);
            case 'm' -> Duration.ofMinutes(n);
            case 'h' -> Duration.ofHours(n);
            default -> Duration.ofSeconds(Long.parseLong(t));
        };
    }

    private boolean run() throws Exception {
        Machine machine = new Machine(MachineConfig.defaults());
        BusServer server = BusServer.netty(machine, "127.0.0.1", 0).start();
        ManagedChannel host = channel(server);
        try {
            DriverGrpc.DriverBlockingStub driver = DriverGrpc.newBlockingStub(host);
            long domain = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                    .setStage(DomainStage.STAGE_1).setGranule(PAGE).setName("soak").build()).getDomain();
            long[] buffers = new long[workers];
            for (int w = 0; w < workers; w++) {
                driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(domain).setIommu("smmu0")
                        .setStreamId(streamId(w)).build());
                buffers[w] = driver.allocBuffer(AllocBufferRequest.newBuilder()
                        .setSize((long) PAGE * PAGES_PER_WORKER).setAlignment(PAGE).build()).getPa();
            }
            long heapBefore = settledHeap();
            injectFaults(FaultInjectionGrpc.newBlockingStub(host));
            System.out.printf("soak: %d workers for %s on %s, seed %d, heap %s after set-up%n", workers, duration,
                    server.target(), seed, Sizes.format(heapBefore & ~1023));

            long end = System.nanoTime() + duration.toNanos();
            List<Thread> threads = new ArrayList<>();
            for (int w = 0; w < workers; w++) {
                int worker = w;
                Thread t = new Thread(() -> work(server, domain, worker, buffers[worker], end), "soak-" + w);
                t.start();
                threads.add(t);
            }
            long started = System.nanoTime();
            while (System.nanoTime() < end) {
                Thread.sleep(Math.min(10_000, Math.max(1, (end - System.nanoTime()) / 1_000_000)));
                System.out.printf("  %3ds: %d rounds, %d DMA ops, %d driver ops, %d RPC errors%n",
                        (System.nanoTime() - started) / 1_000_000_000, rounds.sum(), dmaOps.sum(), driverOps.sum(),
                        rpcErrors.values().stream().mapToLong(AtomicLong::get).sum());
            }
            for (Thread t : threads) {
                t.join(60_000);
            }

            Map<String, Long> fired = new TreeMap<>();
            FaultInjectionGrpc.FaultInjectionBlockingStub faults = FaultInjectionGrpc.newBlockingStub(host);
            for (FaultStatus f : faults.list(ListFaultsRequest.getDefaultInstance()).getFaultsList()) {
                fired.merge(f.getSpec().getKind().name(), f.getFires(), Long::sum);
            }
            faults.clear(org.iommuemu.proto.v1.ClearFaultsRequest.newBuilder().setAll(true).build());
            var stats = TelemetryGrpc.newBlockingStub(host).stats(StatsRequest.newBuilder().addIommus("smmu0")
                    .build()).getIommus(0);
            host.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);

            BusServer.Holdings held = server.holdings();
            for (int i = 0; i < 100 && !held.isEmpty(); i++) {
                Thread.sleep(100);
                held = server.holdings();
            }
            long heapAfter = settledHeap();
            long seconds = Math.max(1, duration.toSeconds());
            System.out.printf("soak report (%s, %d workers, seed %d)%n", duration, workers, seed);
            System.out.printf("  ops served: %d rounds, %d DMA requests (%d/s), %d driver map/unmap%n", rounds.sum(),
                    dmaOps.sum(), dmaOps.sum() / seconds, driverOps.sum());
            System.out.printf("  DMA faults answered: %d; corrupted reads seen: %d; reconnects: %d%n",
                    dmaFaults.sum(), corruptReads.sum(), reconnects.sum());
            System.out.printf("  injected faults fired: %s (total %d)%n", fired,
                    fired.values().stream().mapToLong(Long::longValue).sum());
            System.out.printf("  RPC errors survived: %s%n", new TreeMap<>(rpcErrors));
            System.out.printf("  smmu0: %d translations, %d faults, %d walks, %d events lost%n",
                    stats.getTranslations(), stats.getFaults(), stats.getWalks(), stats.getEventsLost());
            System.out.printf("  held after the clients left: %s%n", held);
            System.out.printf("  heap after GC: %s before, %s after (growth %d KiB)%n",
                    Sizes.format(heapBefore & ~1023), Sizes.format(heapAfter & ~1023),
                    (heapAfter - heapBefore) / 1024);
            boolean leak = !held.isEmpty();
            if (!unexplained.isEmpty()) {
                System.out.printf("  UNEXPLAINED (%d): %s%n", unexplained.size(),
                        unexplained.subList(0, Math.min(10, unexplained.size())));
            }
            System.out.println(leak || !unexplained.isEmpty() ? "soak FAILED" : "soak passed: nothing leaked");
            return !leak && unexplained.isEmpty();
        } finally {
            host.shutdownNow();
            server.close();
        }
    }

    private static int streamId(int worker) {
        return 0x100 + worker;
    }

    private void injectFaults(FaultInjectionGrpc.FaultInjectionBlockingStub faults) {
        inject(faults, InjectionKind.WALK_READ_ABORT, 0.002, FaultParams.getDefaultInstance());
        inject(faults, InjectionKind.CACHE_EVICT_RANDOM, 0.05, FaultParams.newBuilder().setCache("iotlb").build());
        inject(faults, InjectionKind.BUS_RPC_UNAVAILABLE, 0.001, FaultParams.getDefaultInstance());
        inject(faults, InjectionKind.BUS_STREAM_CUT, 0.0005, FaultParams.getDefaultInstance());
        inject(faults, InjectionKind.BUS_DMA_READ_CORRUPT, 0.001, FaultParams.newBuilder().setBit(5).build());
    }

    private void inject(FaultInjectionGrpc.FaultInjectionBlockingStub faults, InjectionKind kind, double p,
            FaultParams params) {
        faults.inject(InjectRequest.newBuilder().setSpec(FaultSpec.newBuilder().setKind(kind).setLabel("soak")
                .setTarget(FaultTarget.newBuilder().setIommu("smmu0"))
                .setTrigger(FaultTrigger.newBuilder().setProbability(p).setSeed(seed + kind.getNumber()))
                .setParams(params)).build());
    }

    /** One worker: rounds of map, stream, check, unmap, check-the-fault, until {@code end}; reconnects now and then. */
    private void work(BusServer server, long domain, int worker, long buffer, long end) {
        SplittableRandom random = new SplittableRandom(seed * 31 + worker);
        byte[] data = new byte[PAGE];
        while (System.nanoTime() < end) {
            ManagedChannel ch = channel(server);
            try {
                DriverGrpc.DriverBlockingStub driver = DriverGrpc.newBlockingStub(ch)
                        .withDeadlineAfter(30, TimeUnit.SECONDS);
                DmaSession session = attach(DmaClient.over(ch), worker);
                for (int r = 0; r < RECONNECT_EVERY && System.nanoTime() < end; r++) {
                    int page = random.nextInt(PAGES_PER_WORKER);
                    long iova = IOVA_BASE + (long) worker * PAGES_PER_WORKER * PAGE + (long) page * PAGE;
                    random.nextBytes(data);
                    if (!round(driver, session, domain, iova, buffer + (long) page * PAGE, data)) {
                        break; // the session is gone (a cut stream): reconnect
                    }
                    rounds.increment();
                }
            } catch (StatusRuntimeException e) {
                error(e.getStatus(), "worker " + worker);
            } catch (Exception e) {
                unexplained.add("worker " + worker + ": " + e);
            } finally {
                ch.shutdownNow();
                try {
                    ch.awaitTermination(10, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
                reconnects.increment();
            }
        }
    }

    /**
     * Attaches the worker's stream id. Its previous connection's session is released when the server sees that
     * transport terminate, which may come a moment after the client closed it: ALREADY_EXISTS is retried.
     */
    private DmaSession attach(DmaClient client, int worker) throws InterruptedException {
        for (int attempt = 0; ; attempt++) {
            try {
                return client.attach("soak-" + worker, "smmu0", streamId(worker));
            } catch (StatusRuntimeException e) {
                Status.Code code = e.getStatus().getCode();
                if (attempt >= 100 || (code != Status.Code.ALREADY_EXISTS && code != Status.Code.UNAVAILABLE)) {
                    throw e;
                }
                if (code == Status.Code.UNAVAILABLE) {
                    error(e.getStatus(), "attach");
                }
                Thread.sleep(20);
            }
        }
    }

    /** One round; false when the session was lost. */
    private boolean round(DriverGrpc.DriverBlockingStub driver, DmaSession session, long domain, long iova, long pa,
            byte[] data) throws Exception {
        try {
            driver.map(MapRequest.newBuilder().setDomain(domain).setIova(iova).setPa(pa).setSize(PAGE)
                    .setProt(Prot.newBuilder().setRead(true).setWrite(true)).build());
            driverOps.increment();
        } catch (StatusRuntimeException e) {
            error(e.getStatus(), "map");
            unmapQuietly(driver, domain, iova);
            return true;
        }
        boolean alive = true;
        try (Transfer t = session.openTransfer(8)) {
            List<CompletableFuture<DmaResult>> ops = new ArrayList<>();
            ops.add(t.write(iova, ByteString.copyFrom(data)));
            for (int k = 0; k < 4; k++) {
                ops.add(t.read(iova + k * 1024L, 1024));
            }
            for (int k = 0; k < ops.size(); k++) {
                DmaResult r;
                try {
                    r = ops.get(k).get(30, TimeUnit.SECONDS);
                } catch (java.util.concurrent.ExecutionException e) {
                    Status s = Status.fromThrowable(e.getCause());
                    error(s, "transfer");
                    alive = s.getCode() != Status.Code.UNAVAILABLE && s.getCode() != Status.Code.NOT_FOUND;
                    continue;
                }
                dmaOps.increment();
                if (!r.isOk()) {
                    dmaFaults.increment(); // a walk read abort, or a read after a failed write
                } else if (k > 0 && !Arrays.equals(r.data().toByteArray(),
                        Arrays.copyOfRange(data, (k - 1) * 1024, k * 1024))) {
                    corruptReads.increment(); // BUS_DMA_READ_CORRUPT, or a write that was refused
                }
            }
        }
        unmapQuietly(driver, domain, iova);
        if (alive) {
            try {
                DmaResult after = session.read(iova, 64);
                dmaOps.increment();
                if (after.isOk()) {
                    unexplained.add("DMA at iova 0x" + Long.toHexString(iova) + " succeeded after its unmap");
                } else {
                    dmaFaults.increment();
                }
            } catch (StatusRuntimeException e) {
                error(e.getStatus(), "read after unmap");
                alive = e.getStatus().getCode() != Status.Code.NOT_FOUND;
            }
        }
        return alive;
    }

    private void unmapQuietly(DriverGrpc.DriverBlockingStub driver, long domain, long iova) {
        for (int attempt = 0; attempt < 5; attempt++) {
            try {
                driver.unmap(UnmapRequest.newBuilder().setDomain(domain).setIova(iova).setSize(PAGE).build());
                driverOps.increment();
                return;
            } catch (StatusRuntimeException e) {
                error(e.getStatus(), "unmap");
                if (e.getStatus().getCode() != Status.Code.UNAVAILABLE) {
                    return;
                }
            }
        }
    }

    /** Counts an RPC error; one the injected faults cannot explain is recorded as unexplained. */
    private void error(Status status, String where) {
        rpcErrors.computeIfAbsent(status.getCode().name(), k -> new AtomicLong()).incrementAndGet();
        String d = String.valueOf(status.getDescription());
        boolean explained = switch (status.getCode()) {
            case UNAVAILABLE -> d.contains("injected fault") || d.contains("BUS_STREAM_CUT");
            case NOT_FOUND -> d.contains("not a live session"); // after a cut released the session
            case CANCELLED -> true; // requests of a cut stream
            default -> false;
        };
        if (!explained) {
            unexplained.add(where + ": " + status);
        }
    }

    private static ManagedChannel channel(BusServer server) {
        return NettyChannelBuilder.forTarget(server.target()).usePlaintext()
                .maxInboundMessageSize(DmaClient.MAX_INBOUND_MESSAGE).build();
    }

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
