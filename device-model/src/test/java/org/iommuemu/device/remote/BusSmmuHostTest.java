package org.iommuemu.device.remote;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.smmuv3.SmmuHost.Irq;
import org.iommuemu.core.driver.smmuv3.SmmuV3Domains;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.driver.smmuv3.SmmuV3Listener;
import org.iommuemu.core.driver.smmuv3.TlbiPlanner;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.DescribeReply;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.Interrupt;
import org.iommuemu.proto.v1.InterruptsRequest;
import org.iommuemu.proto.v1.MachineGrpc;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

/** The SMMUv3 driver's host over Netty: memory, MMIO, interrupts, and what happens when the server goes away. */
class BusSmmuHostTest {
    private Machine machine;
    private BusServer server;
    private ManagedChannel channel;
    private long heapBase;
    private long heapSize;

    @BeforeEach
    void setUp() throws Exception {
        machine = new Machine(MachineConfig.defaults());
        server = BusServer.netty(machine, "127.0.0.1", 0).start();
        channel = NettyChannelBuilder.forTarget(server.target()).usePlaintext().build();
        var d = MachineGrpc.newBlockingStub(channel).describe(DescribeRequest.getDefaultInstance());
        heapBase = d.getDriverHeapBase();
        heapSize = d.getDriverHeapSize();
    }

    @AfterEach
    void tearDown() throws Exception {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.close();
    }

    @Test
    void memoryOverTheBusIsTheMachinesAndSplitsLongAccesses() throws Exception {
        BusPhysicalMemory mem = new BusPhysicalMemory(MachineGrpc.newBlockingStub(channel));
        assertThat(mem.regions()).isEqualTo(machine.memory().regions());
        long pa = heapBase + 0x1000;
        mem.write64(pa, 0x0123_4567_89AB_CDEFL);
        assertThat(machine.memory().read64(pa)).isEqualTo(0x0123_4567_89AB_CDEFL);
        assertThat(mem.read32(pa)).isEqualTo(0x89AB_CDEF);
        assertThat(mem.read16(pa + 6)).isEqualTo(0x0123);
        assertThat(mem.read8(pa + 1)).isEqualTo(0xCD);
        byte[] big = new byte[(int) machine.limits().maxMemAccessLength() * 2 + 100]; // three RPCs each way
        new Random(1).nextBytes(big);
        mem.write(pa, big, 0, big.length);
        byte[] back = new byte[big.length];
        machine.memory().read(pa, back, 0, back.length);
        assertThat(back).isEqualTo(big);
        long[] words = new long[4];
        mem.read64s(pa, words, 0, 4);
        assertThat(words[1]).isEqualTo(machine.memory().read64(pa + 8));
        mem.zero(pa, big.length);
        assertThat(machine.memory().read64(pa + big.length - 8)).isZero();
        assertThat(mem.compareAndExchange64(pa, 0, 7)).isZero();
        assertThat(mem.compareAndExchange64(pa, 0, 9)).as("the witness of a failed exchange").isEqualTo(7);
        long end = machine.memory().regions().get(0).base() + machine.memory().regions().get(0).size();
        assertThatThrownBy(() -> mem.read64(end - 4)).isInstanceOf(MemoryAccessException.class);
        assertThatThrownBy(() -> mem.compareAndExchange64(pa + 4, 0, 1))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not 8-byte aligned");
    }

    @Test
    void theDriverProgramsTheSmmuOverTheBusAndItsInterruptsArrive() throws Exception {
        try (BusSmmuHost host = BusSmmuHost.connect(channel, "smmu0", heapBase, heapSize);
                DmaClient dma = DmaClient.over(channel)) {
            SmmuV3Driver driver = SmmuV3Driver.probe(host, SmmuV3DriverOptions.defaults());
            java.util.List<EventRecord> events = new java.util.concurrent.CopyOnWriteArrayList<>();
            driver.addListener(new SmmuV3Listener() {
                @Override
                public void onEvent(EventRecord e) {
                    events.add(e);
                }
            });
            driver.init();
            SmmuV3Domains domains = new SmmuV3Domains(driver, "smmu0", TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD);
            IommuDomain d = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 48), host.memory(), host.allocator())
                    .flushPolicy(FlushPolicy.STRICT).build();
            long buf = host.allocator().allocPages(0, "test buffer");
            d.map(0x1000_0000L, buf, 4096, Prot.READ | Prot.WRITE);
            domains.attachStream(d, SmmuV3Domains.Stage.S1, 0x42);
            try (DmaSession s = dma.attach("dev", "smmu0", 0x42)) {
                assertThat(s.write(0x1000_0010L, new byte[] {1, 2, 3}).isOk()).isTrue();
                assertThat(machine.memory().read8(buf + 0x11)).isEqualTo(2);
                d.unmap(0x1000_0000L, 4096);
                DmaResult r = s.read(0x1000_0010L, 4);
                assertThat(r.faulted()).isTrue();
                assertThat(r.fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (events.isEmpty() && System.nanoTime() < deadline) {
                Thread.sleep(5); // the event-queue interrupt arrives on the stream and the driver drains
            }
            assertThat(events).as("the EVENTQ interrupt reached the driver over the stream").hasSize(1);
            assertThat(events.get(0).streamId()).isEqualTo(0x42);
            assertThat(events.get(0).inputAddr()).isEqualTo(0x1000_0010L);
            assertThat(host.deliveredInterrupts()).isPositive();
            domains.detachStream(0x42);
            d.destroy();
        }
    }

    @Test
    void aServerThatGoesAwayIsAClearErrorNotAHang() throws Exception {
        BusSmmuHost host = BusSmmuHost.connect(channel, "smmu0", heapBase, heapSize);
        SmmuV3Driver driver = SmmuV3Driver.probe(host, SmmuV3DriverOptions.defaults());
        server.close();
        assertThatThrownBy(driver::init).as("init's first bus access fails").isInstanceOf(BusUnavailableException.class)
                .hasMessageContaining("failed: UNAVAILABLE");
        assertThatThrownBy(() -> host.mmioRead(0, 4)).isInstanceOf(BusUnavailableException.class)
                .hasMessageContaining("Machine.MmioRead smmu0 at 0x0 failed: UNAVAILABLE");
        assertThatThrownBy(() -> host.memory().read64(heapBase)).isInstanceOf(BusUnavailableException.class)
                .hasMessageContaining("Machine.MemRead at " + org.iommuemu.core.bits.Bits.hex(heapBase));
        host.close();
    }

    /** The interrupts a handler was given, in order. */
    private static final class Taken implements java.util.function.Consumer<Irq> {
        final java.util.concurrent.BlockingQueue<Irq> irqs =
                new java.util.concurrent.LinkedBlockingQueue<>();

        @Override
        public void accept(Irq irq) {
            irqs.add(irq);
        }

        /** The next {@code n}, waiting at most 10 s for each. */
        java.util.List<Irq> next(int n) throws InterruptedException {
            java.util.List<Irq> out = new java.util.ArrayList<>();
            for (int i = 0; i < n; i++) {
                var irq = irqs.poll(10, TimeUnit.SECONDS);
                if (irq == null) {
                    throw new AssertionError("only " + out + " arrived");
                }
                out.add(irq);
            }
            return out;
        }
    }

    /** What a device of the machine can raise for smmu0, and one of another instance the filter must keep out. */
    private void raiseOneOfEach() {
        var hub = machine.interrupts();
        long ram = heapBase; // a CMD_SYNC MSI to RAM: a completed poll
        long doorbell = hub.doorbellBase() + 0x40; // one to the doorbell window: an interrupt
        hub.wired("smmu0", "eventq");
        hub.msi("smmu0", "cmd-sync", ram, 1);
        hub.wired("dmar0", "fault-event");
        hub.wired("smmu0", "gerror");
        hub.wired("smmu0", "sev");
        hub.msi("smmu0", "cmd-sync", doorbell, 2);
        hub.msi("smmu0", "eventq", ram + 8, 3); // an event MSI is an interrupt wherever it lands
        hub.wired("smmu0", "priq");
        hub.wired("smmu0", "cmd-sync");
    }

    @Test
    void interruptsAreTheInProcessHostsOnesInTheSameOrder() throws Exception {
        var expected = java.util.List.of(Irq.EVENTQ, Irq.GERROR, Irq.CMD_SYNC, Irq.EVENTQ, Irq.PRIQ, Irq.CMD_SYNC);
        Taken remote = new Taken();
        Taken local = new Taken();
        try (BusSmmuHost host = BusSmmuHost.connect(channel, "smmu0", heapBase, heapSize);
                var inProcess = org.iommuemu.device.machine.InProcessSmmuHost.of(machine, "smmu0",
                        new org.iommuemu.core.memory.BuddyPageAllocator(machine.memory(), heapBase, heapSize))) {
            host.onInterrupt(remote);
            inProcess.onInterrupt(local);
            raiseOneOfEach(); // right after the constructor: the subscription is already in place
            inProcess.deliverPendingInterrupts();
            assertThat(local.next(expected.size())).isEqualTo(expected);
            assertThat(remote.next(expected.size())).as("over the bus").isEqualTo(expected);
            machine.interrupts().wired("smmu0", "gerror"); // a marker: nothing else came before it
            assertThat(remote.next(1)).containsExactly(Irq.GERROR);
            assertThat(host.deliveredInterrupts()).isEqualTo(expected.size() + 1);
        }
    }

    @Test
    void aHandlerThatThrowsIsLoggedAndTheStreamGoesOn() throws Exception {
        ListAppender<ILoggingEvent> logged = capture();
        Taken taken = new Taken();
        try (BusSmmuHost host = BusSmmuHost.connect(channel, "smmu0", heapBase, heapSize)) {
            host.onInterrupt(irq -> {
                taken.accept(irq);
                if (irq == Irq.EVENTQ) {
                    throw new IllegalStateException("handler bug");
                }
            });
            machine.interrupts().wired("smmu0", "eventq");
            machine.interrupts().wired("smmu0", "gerror");
            assertThat(taken.next(2)).containsExactly(Irq.EVENTQ, Irq.GERROR);
            assertThat(logged.list).anySatisfy(e -> {
                assertThat(e.getFormattedMessage()).isEqualTo("smmu0: interrupt handler failed on EVENTQ");
                assertThat(e.getThrowableProxy().getMessage()).isEqualTo("handler bug");
            });
        } finally {
            release(logged);
        }
    }

    @Test
    void aHandlerThatFallsBehindIsToldHowManyInterruptsTheServerDropped() throws Exception {
        ListAppender<ILoggingEvent> logged = capture();
        // the in-process transport buffers nothing beyond what the client asked for, so the server's buffer fills
        String name = "bus-host-" + java.util.UUID.randomUUID();
        Machine m = new Machine(MachineConfig.defaults());
        try (BusServer s = BusServer.inProcess(m, name).start()) {
            ManagedChannel ch = io.grpc.inprocess.InProcessChannelBuilder.forName(name).build();
            java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
            try (BusSmmuHost host = BusSmmuHost.connect(ch, "smmu0", heapBase, heapSize)) {
                host.onInterrupt(irq -> {
                    try {
                        release.await(10, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                });
                int raised = 4096 + 500; // the server buffers 4096 per subscriber
                for (int i = 0; i < raised; i++) {
                    m.interrupts().wired("smmu0", "eventq");
                }
                release.countDown();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                while (host.deliveredInterrupts() + host.droppedInterrupts() < raised && System.nanoTime() < deadline) {
                    Thread.sleep(5);
                }
                assertThat(host.droppedInterrupts()).isPositive();
                assertThat(host.deliveredInterrupts() + host.droppedInterrupts()).isEqualTo(raised);
                assertThat(logged.list).anySatisfy(e -> assertThat(e.getFormattedMessage())
                        .startsWith("smmu0: the server dropped " + host.droppedInterrupts() + " interrupt(s) after #"));
            } finally {
                ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        } finally {
            release(logged);
        }
    }

    @Test
    void closeEndsTheSubscriptionAndAServerThatEndsItIsLogged() throws Exception {
        ListAppender<ILoggingEvent> logged = capture();
        try {
            BusSmmuHost host = BusSmmuHost.connect(channel, "smmu0", heapBase, heapSize);
            assertThat(machine.interrupts().subscribers()).isEqualTo(1);
            host.close();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (machine.interrupts().subscribers() > 0 && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertThat(machine.interrupts().subscribers()).as("the server saw the cancel").isZero();
            assertThat(host.mmioRead(0, 4)).as("MMIO goes on after close").isNotZero();

            BusSmmuHost second = BusSmmuHost.connect(channel, "smmu0", heapBase, heapSize);
            server.close(); // a graceful shutdown completes the stream
            deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (logged.list.stream().noneMatch(e -> e.getFormattedMessage().contains("ended the interrupt stream"))
                    && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertThat(logged.list).anySatisfy(e -> assertThat(e.getFormattedMessage())
                    .isEqualTo("smmu0: the server ended the interrupt stream; the driver goes on by polling"));
            assertThat(logged.list).noneSatisfy(e -> assertThat(e.getFormattedMessage()).contains("failed"));
            second.close();
        } finally {
            release(logged);
        }
    }

    @Test
    void aServerThatNeverConfirmsTheSubscriptionFailsTheConstructorInTime() throws Exception {
        String name = "silent-machine-" + java.util.UUID.randomUUID();
        DescribeReply described = MachineGrpc.newBlockingStub(channel).describe(DescribeRequest.getDefaultInstance());
        boolean[] ended = {false};
        io.grpc.Server silent = io.grpc.inprocess.InProcessServerBuilder.forName(name)
                .addService(new MachineGrpc.MachineImplBase() {
                    @Override
                    public void describe(DescribeRequest request, StreamObserver<DescribeReply> out) {
                        out.onNext(described);
                        out.onCompleted();
                    }

                    @Override
                    public void interrupts(InterruptsRequest request, StreamObserver<Interrupt> out) {
                        if (ended[0]) {
                            out.onCompleted(); // as a server shutting down answers
                        } // else: no headers, no message, ever
                    }
                }).build().start();
        ManagedChannel ch = io.grpc.inprocess.InProcessChannelBuilder.forName(name).build();
        try {
            BusPhysicalMemory mem = new BusPhysicalMemory(MachineGrpc.newBlockingStub(ch), described);
            var alloc = new org.iommuemu.core.memory.BuddyPageAllocator(machine.memory(), heapBase, 1 << 20);
            long start = System.nanoTime();
            assertThatThrownBy(() -> new BusSmmuHost(ch, "smmu0", mem, alloc, java.time.Duration.ofMillis(300)))
                    .isInstanceOf(BusUnavailableException.class)
                    .hasMessage("Machine.Interrupts for smmu0: the server did not confirm the subscription within"
                            + " 300 ms");
            assertThat(System.nanoTime() - start).as("bounded").isLessThan(TimeUnit.SECONDS.toNanos(10));
            ended[0] = true;
            assertThatThrownBy(() -> new BusSmmuHost(ch, "smmu0", mem, alloc))
                    .isInstanceOf(BusUnavailableException.class).hasMessageContaining("ended the stream at once");
        } finally {
            ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            silent.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    private static ListAppender<ILoggingEvent> capture() {
        ListAppender<ILoggingEvent> a = new ListAppender<>();
        a.start();
        ((ch.qos.logback.classic.Logger) LoggerFactory.getLogger(BusIommuHost.class)).addAppender(a);
        return a;
    }

    private static void release(ListAppender<ILoggingEvent> a) {
        ((ch.qos.logback.classic.Logger) LoggerFactory.getLogger(BusIommuHost.class)).detachAppender(a);
    }

    @Test
    void anInstanceThatIsNotAnSmmuIsRefused() {
        assertThatThrownBy(() -> BusSmmuHost.connect(channel, "dmar0", heapBase, heapSize))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dmar0 is VTD, not an SMMUv3");
        assertThatThrownBy(() -> BusSmmuHost.connect(channel, "nope", heapBase, heapSize))
                .hasMessageContaining("no IOMMU instance 'nope'");
    }
}
