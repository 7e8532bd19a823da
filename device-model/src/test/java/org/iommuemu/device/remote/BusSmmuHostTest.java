package org.iommuemu.device.remote;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuDomain;
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
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.MachineGrpc;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

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

    @Test
    void anInstanceThatIsNotAnSmmuIsRefused() {
        assertThatThrownBy(() -> BusSmmuHost.connect(channel, "dmar0", heapBase, heapSize))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("dmar0 is VTD, not an SMMUv3");
        assertThatThrownBy(() -> BusSmmuHost.connect(channel, "nope", heapBase, heapSize))
                .hasMessageContaining("no IOMMU instance 'nope'");
    }
}
