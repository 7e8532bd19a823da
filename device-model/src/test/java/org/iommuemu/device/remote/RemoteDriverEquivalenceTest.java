package org.iommuemu.device.remote;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.tuple;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.grpc.ManagedChannel;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.netty.NettyChannelBuilder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.smmuv3.SmmuHost;
import org.iommuemu.core.driver.smmuv3.SmmuV3Domains;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.driver.smmuv3.SmmuV3Listener;
import org.iommuemu.core.driver.smmuv3.TlbiPlanner;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtFormat;
import org.iommuemu.core.pgtable.PtLookup;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.DeviceStats;
import org.iommuemu.device.machine.InProcessSmmuHost;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.DescribeReply;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.MachineGrpc;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The same SMMUv3 driver sequence run twice on two identical machines — once with the driver beside the device
 * ({@link InProcessSmmuHost}), once with it in this process talking to a served machine over the bus
 * ({@link BusSmmuHost}) — must give the same results: DMA data and faults, the event records the driver decoded,
 * the commands the device consumed, the translations the page tables hold and the pages the driver's allocator
 * has out. Both allocators manage the same range of the same RAM layout, so even physical addresses agree.
 */
class RemoteDriverEquivalenceTest {
    private static final String SMMU = "smmu0";
    private static final int SID_S1 = 0x10;
    private static final int SID_S2 = 0x20;
    private static final long MIB2 = 2L << 20;

    /** How the driver reaches the machine in a run. */
    enum Side {
        /** InProcessSmmuHost: the driver calls the device directly. */
        IN_PROCESS_HOST,
        /** BusSmmuHost over gRPC's in-process transport. */
        BUS_IN_PROCESS,
        /** BusSmmuHost over Netty on loopback. */
        BUS_NETTY
    }

    /** A machine served on the bus (DMA always goes through it) and a driver for its smmu0 on the given side. */
    private static final class Rig implements AutoCloseable {
        final Machine machine = new Machine(MachineConfig.defaults());
        final BusServer server;
        final ManagedChannel channel;
        final SmmuHost host;
        final SmmuV3Driver driver;
        final SmmuV3Domains domains;
        final List<EventRecord> events = new CopyOnWriteArrayList<>();

        Rig(Side side) throws Exception {
            String name = "equivalence-" + UUID.randomUUID();
            if (side == Side.BUS_NETTY) {
                server = BusServer.netty(machine, "127.0.0.1", 0).start();
                channel = NettyChannelBuilder.forTarget(server.target()).usePlaintext()
                        .maxInboundMessageSize(DmaClient.MAX_INBOUND_MESSAGE).build();
            } else {
                server = BusServer.inProcess(machine, name).start();
                channel = InProcessChannelBuilder.forName(name).build();
            }
            if (side == Side.IN_PROCESS_HOST) {
                PageAllocator heap = new BuddyPageAllocator(machine.memory(), machine.driverHost().heapBase(),
                        machine.driverHost().heapSize());
                host = InProcessSmmuHost.of(machine, SMMU, heap);
            } else { // everything the driver knows of the machine comes over the bus
                DescribeReply d = MachineGrpc.newBlockingStub(channel).describe(DescribeRequest.getDefaultInstance());
                host = BusSmmuHost.connect(channel, SMMU, d.getDriverHeapBase(), d.getDriverHeapSize());
            }
            driver = SmmuV3Driver.probe(host, SmmuV3DriverOptions.defaults());
            driver.addListener(new SmmuV3Listener() {
                @Override
                public void onEvent(EventRecord e) {
                    events.add(e);
                }
            });
            driver.init();
            domains = new SmmuV3Domains(driver, SMMU, TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD);
        }

        /** Takes every event record the SMMU has written so far, whichever thread was draining. */
        void drainEvents() {
            if (host instanceof InProcessSmmuHost h) {
                h.deliverPendingInterrupts();
            }
            driver.drainEvents(); // waits for a drain running on the interrupt thread, then reads the rest
        }

        DeviceStats stats() {
            return machine.iommu(SMMU).stats();
        }

        @Override
        public void close() throws Exception {
            if (host instanceof AutoCloseable c) {
                c.close();
            }
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            server.close();
        }
    }

    /** Where one domain's mappings are, and the buffers behind them. */
    private record Layout(long iova4k, long iova2m, long iovaRo, long unmapped) {}

    private static final Layout S1 = new Layout(0x1000_0000L, 0x4000_0000L, 0x2000_0000L, 0x7000_0000L);
    private static final Layout S2 = new Layout(0x3000_0000L, 0x6000_0000L, 0x5000_0000L, 0x7800_0000L);

    /** One observation of a run: what was done, and what came of it. */
    private record Step(String what, Object result) {}

    /** Everything a run observed, in order. */
    private static final class Transcript {
        final List<Step> steps = new ArrayList<>();

        void add(String what, Object result) {
            steps.add(new Step(what, result));
        }

        Object get(String what) {
            return steps.stream().filter(s -> s.what().equals(what)).findFirst()
                    .orElseThrow(() -> new AssertionError("no step " + what)).result();
        }
    }

    private static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (i * 31 + seed * 7 + (i >>> 8));
        }
        return b;
    }

    /** The sequence: two domains, maps, DMA, faults, unmaps, events, detach. */
    private static Transcript run(Side side) throws Exception {
        Transcript t = new Transcript();
        try (Rig rig = new Rig(side); DmaClient client = DmaClient.over(rig.channel)) {
            PageAllocator alloc = rig.host.allocator();
            int oas = Math.min(48, rig.driver.features().oasBits());
            IommuDomain s1 = IommuDomain.builder(Arm64Lpae.stage1(12, 48, oas), rig.host.memory(), alloc).name("s1")
                    .flushPolicy(FlushPolicy.STRICT).build();
            IommuDomain s2 = IommuDomain.builder(Arm64Lpae.stage2(12, 48, oas), rig.host.memory(), alloc).name("s2")
                    .flushPolicy(FlushPolicy.STRICT).build();
            rig.domains.attachStream(s1, SmmuV3Domains.Stage.S1, SID_S1);
            rig.domains.attachStream(s2, SmmuV3Domains.Stage.S2, SID_S2);
            t.add("context ids", List.of(rig.domains.contextId(s1), rig.domains.contextId(s2)));

            List<Long> buffers = new ArrayList<>();
            try (DmaSession d1 = client.attach("dev-s1", SMMU, SID_S1);
                    DmaSession d2 = client.attach("dev-s2", SMMU, SID_S2)) {
                exercise("s1", rig, s1, S1, d1, alloc, buffers, t);
                exercise("s2", rig, s2, S2, d2, alloc, buffers, t);
            }
            rig.drainEvents();
            t.add("events", List.copyOf(rig.events));
            DeviceStats st = rig.stats();
            t.add("commands", st.commands());
            t.add("events written", st.events());
            t.add("translations", List.of(st.translations(), st.faults(), st.walks()));

            rig.domains.detachStream(SID_S1);
            rig.domains.detachStream(SID_S2);
            s1.destroy();
            s2.destroy();
            for (long b : buffers) {
                alloc.free(b);
            }
            t.add("pages after teardown", alloc.outstandingByTag());
            t.add("commands after detach", rig.stats().commands());
            t.add("driver stats", List.of(rig.driver.stats().commands(), rig.driver.stats().syncs(),
                    rig.driver.stats().events(), rig.driver.stats().commandErrors()));
        }
        return t;
    }

    /** One domain: map 4K pages, a 2M block and a read-only page; DMA through them; unmap; fault. */
    private static void exercise(String n, Rig rig, IommuDomain dom, Layout at, DmaSession dev, PageAllocator alloc,
            List<Long> buffers, Transcript t) throws Exception {
        long buf4k = alloc.allocPages(2, "dma-buffer"); // 16 KiB
        long buf2m = alloc.allocPages(9, "dma-buffer"); // 2 MiB, 2 MiB aligned (a buddy block)
        long bufRo = alloc.allocPages(0, "dma-buffer");
        buffers.addAll(List.of(buf4k, buf2m, bufRo));
        t.add(n + " buffers", List.of(buf4k, buf2m, bufRo));
        rig.machine.memory().write(bufRo, pattern(4096, 9), 0, 4096); // what the device will read there

        dom.map(at.iova4k(), buf4k, 0x4000, Prot.READ | Prot.WRITE);
        dom.map(at.iova2m(), buf2m, MIB2, Prot.READ | Prot.WRITE);
        dom.map(at.iovaRo(), bufRo, 0x1000, Prot.READ);
        PtLookup leaf = new PtLookup();
        PageTable pt = dom.pageTable();
        assertThat(pt.lookup(at.iova2m() + 0x12_3456, leaf)).isTrue();
        t.add(n + " leaf sizes", List.of(leaf.size(), lookupSize(pt, at.iova4k() + 0x2345)));
        t.add(n + " pages after map", alloc.outstandingByTag());

        // writes then reads, across page boundaries of the 4K run and inside the block
        byte[] a = pattern(0x3000, n.hashCode());
        byte[] b = pattern(0x2800, n.hashCode() + 1);
        t.add(n + " write 4k", dev.write(at.iova4k() + 0x800, a));
        t.add(n + " write 2m", dev.write(at.iova2m() + 0x1F_D400, b));
        DmaResult ra = dev.read(at.iova4k() + 0x800, a.length);
        DmaResult rb = dev.read(at.iova2m() + 0x1F_D400, b.length);
        assertThat(ra.isOk()).as("%s: %s", n, ra).isTrue();
        assertSameBytes(n + " read back through the 4K pages", ra.data().toByteArray(), a);
        assertSameBytes(n + " read back through the 2M block", rb.data().toByteArray(), b);
        byte[] landed = new byte[a.length];
        rig.machine.memory().read(buf4k + 0x800, landed, 0, landed.length);
        assertSameBytes(n + ": the data is where the driver mapped it", landed, a);
        t.add(n + " read 4k", ra);
        t.add(n + " read 2m", rb);
        t.add(n + " read ro", dev.read(at.iovaRo() + 0x40, 64));
        t.add(n + " write ro", dev.write(at.iovaRo() + 0x80, new byte[] {1, 2, 3, 4}));
        t.add(n + " iova to phys", List.of(dom.iovaToPhys(at.iova4k()), dom.iovaToPhys(at.iova4k() + 0x3FFF),
                dom.iovaToPhys(at.iova2m() + 0x1A_BCDE), dom.iovaToPhys(at.iovaRo() + 8),
                dom.iovaToPhys(at.unmapped())));

        t.add(n + " unmapped bytes", List.of(dom.unmap(at.iova4k(), 0x4000), dom.unmap(at.iova2m(), MIB2)));
        t.add(n + " read after unmap", dev.read(at.iova4k() + 0x800, 16)); // the IOTLB entries went with the unmap
        t.add(n + " write after unmap", dev.write(at.iova2m() + 0x10, new byte[] {9}));
        t.add(n + " iova to phys after unmap", List.of(dom.iovaToPhys(at.iova4k()), dom.iovaToPhys(at.iova2m()),
                dom.iovaToPhys(at.iovaRo())));
        t.add(n + " pages after unmap", alloc.outstandingByTag());
    }

    /** Byte arrays compared without printing kilobytes: the first difference and where it is. */
    private static void assertSameBytes(String what, byte[] actual, byte[] expected) {
        int at = java.util.Arrays.mismatch(actual, expected);
        assertThat(at).as("%s: first difference at byte %s (lengths %d, %d)", what,
                at < 0 ? "-" : Integer.toHexString(at), actual.length, expected.length).isEqualTo(-1);
    }

    private static long lookupSize(PageTable pt, long iova) throws Exception {
        PtLookup l = new PtLookup();
        return pt.lookup(iova, l) ? l.size() : -1;
    }

    @SuppressWarnings("unchecked")
    private static List<Long> longs(Transcript t, String what) {
        return (List<Long>) t.get(what);
    }

    private static void assertSequenceDidWhatItSays(Transcript t) {
        for (String n : List.of("s1", "s2")) {
            Layout at = n.equals("s1") ? S1 : S2;
            assertThat(longs(t, n + " leaf sizes")).as("a 2M block and 4K pages").containsExactly(MIB2, 4096L);
            assertThat(((DmaResult) t.get(n + " read ro")).isOk()).isTrue();
            DmaResult ro = (DmaResult) t.get(n + " write ro");
            assertThat(ro.fault().getKind()).isEqualTo(FaultKind.PERMISSION);
            assertThat(ro.fault().getAddress()).isEqualTo(at.iovaRo() + 0x80);
            DmaResult gone = (DmaResult) t.get(n + " read after unmap");
            assertThat(gone.fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
            assertThat(gone.fault().getAddress()).isEqualTo(at.iova4k() + 0x800);
            assertThat(((DmaResult) t.get(n + " write after unmap")).fault().getKind())
                    .isEqualTo(FaultKind.TRANSLATION);
            assertThat(longs(t, n + " iova to phys after unmap")).startsWith(IommuDomain.NO_MAPPING,
                    IommuDomain.NO_MAPPING);
            assertThat(longs(t, n + " unmapped bytes")).containsExactly(0x4000L, MIB2);
        }
        @SuppressWarnings("unchecked")
        List<EventRecord> events = (List<EventRecord>) t.get("events");
        assertThat(events).extracting(EventRecord::type, EventRecord::streamId, EventRecord::inputAddr)
                .containsExactly(
                        tuple(EventType.F_PERMISSION, SID_S1, S1.iovaRo() + 0x80),
                        tuple(EventType.F_TRANSLATION, SID_S1, S1.iova4k() + 0x800),
                        tuple(EventType.F_TRANSLATION, SID_S1, S1.iova2m() + 0x10),
                        tuple(EventType.F_PERMISSION, SID_S2, S2.iovaRo() + 0x80),
                        tuple(EventType.F_TRANSLATION, SID_S2, S2.iova4k() + 0x800),
                        tuple(EventType.F_TRANSLATION, SID_S2, S2.iova2m() + 0x10));
        @SuppressWarnings("unchecked")
        Map<String, Long> after = (Map<String, Long>) t.get("pages after teardown");
        assertThat(after).as("no page table or buffer page left").doesNotContainKeys(PageTable.TAG, "dma-buffer");
        @SuppressWarnings("unchecked")
        List<DeviceStats.CodeCount> commands = (List<DeviceStats.CodeCount>) t.get("commands");
        assertThat(commands).extracting(DeviceStats.CodeCount::name).contains("CMD_SYNC", "CFGI_STE");
    }

    @ParameterizedTest
    @EnumSource(value = Side.class, names = {"BUS_IN_PROCESS", "BUS_NETTY"})
    void theDriverOverTheBusGivesTheInProcessDriversResults(Side remote) throws Exception {
        Transcript local = run(Side.IN_PROCESS_HOST);
        assertSequenceDidWhatItSays(local);
        Transcript overTheBus = run(remote);
        assertSequenceDidWhatItSays(overTheBus);
        assertThat(overTheBus.steps).containsExactlyElementsOf(local.steps);
    }

    @Test
    void aServerThatGoesAwayFailsTheDriversNextCallClearlyAndPromptly() throws Exception {
        Rig rig = new Rig(Side.BUS_NETTY);
        try {
            PageAllocator alloc = rig.host.allocator();
            PtFormat fmt = Arm64Lpae.stage1(12, 48, Math.min(48, rig.driver.features().oasBits()));
            IommuDomain s1 = IommuDomain.builder(fmt, rig.host.memory(), alloc).flushPolicy(FlushPolicy.STRICT)
                    .build();
            rig.domains.attachStream(s1, SmmuV3Domains.Stage.S1, SID_S1);
            long buf = alloc.allocPages(0, "dma-buffer");
            s1.map(S1.iova4k(), buf, 0x1000, Prot.READ | Prot.WRITE);
            rig.server.close();
            assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
                // the unmap clears the entry (memory RPCs) and then invalidates (MMIO): the first RPC fails
                assertThatThrownBy(() -> s1.unmap(S1.iova4k(), 0x1000)).isInstanceOf(BusUnavailableException.class)
                        .hasMessageMatching("Machine\\.(MemRead|MemWrite|MemCompareExchange|MmioRead smmu0"
                                + "|MmioWrite smmu0) at 0x[0-9a-f]+ failed: UNAVAILABLE.*");
                assertThatThrownBy(() -> rig.domains.detachStream(SID_S1)).isInstanceOf(BusUnavailableException.class);
            });
        } finally {
            rig.close();
        }
    }
}
