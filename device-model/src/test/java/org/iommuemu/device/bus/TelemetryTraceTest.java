package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.iommuemu.device.trace.TraceCollector;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CodeCount;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.Prot;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.TraceBatch;
import org.iommuemu.proto.v1.TraceKind;
import org.iommuemu.proto.v1.TraceRecord;
import org.iommuemu.proto.v1.TraceRequest;
import org.iommuemu.proto.v1.UnmapRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Telemetry.Trace over the in-process bus: what arrives, filtering, a slow subscriber, bad requests. */
class TelemetryTraceTest {
    private static final int SID = 0x20;
    private static final long IOVA = 0x1000_0000L;
    private static final Prot RW = Prot.newBuilder().setRead(true).setWrite(true).build();

    private BusFixture bus;
    private TelemetryGrpc.TelemetryBlockingStub telemetry;
    private DriverGrpc.DriverBlockingStub driver;
    private DmaClient dma;

    @BeforeEach
    void setUp() throws Exception {
        bus = new BusFixture();
        telemetry = TelemetryGrpc.newBlockingStub(bus.channel());
        driver = DriverGrpc.newBlockingStub(bus.channel());
        dma = bus.client();
    }

    @AfterEach
    void tearDown() {
        dma.close();
        bus.close();
    }

    /** A domain on smmu0 with 64 KiB mapped at IOVA, stream SID attached. */
    private long domain() {
        long d = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                .setStage(DomainStage.STAGE_1).setGranule(4096).build()).getDomain();
        long pa = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(64 << 10).build()).getPa();
        driver.map(MapRequest.newBuilder().setDomain(d).setIova(IOVA).setPa(pa).setSize(64 << 10).setProt(RW)
                .build());
        driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(d).setIommu("smmu0").setStreamId(SID)
                .build());
        return d;
    }

    private long written() {
        return telemetry.stats(StatsRequest.getDefaultInstance()).getTraceWritten();
    }

    private static InstanceStats smmu(List<InstanceStats> all) {
        return all.stream().filter(s -> s.getIommu().equals("smmu0")).findFirst().orElseThrow();
    }

    private static long count(List<CodeCount> codes, String name) {
        return codes.stream().filter(c -> c.getName().equals(name)).mapToLong(CodeCount::getCount).sum();
    }

    @Test
    void recordsArriveForTranslationsDmaCommandsEventsAndTheDriver() throws Exception {
        assertThat(bus.machine.tracer().on()).as("off while nobody traces").isFalse();
        InstanceStats before = smmu(telemetry.stats(StatsRequest.getDefaultInstance()).getIommusList());
        try (TraceCollector all = TraceCollector.start(bus.channel(), List.of(), List.of());
                TraceCollector commandsOnly = TraceCollector.start(bus.channel(), List.of(),
                        List.of(TraceKind.TRACE_COMMAND))) {
            waitOn(bus, 2);
            long d = domain();
            try (DmaSession nic = dma.attach("nic0", "smmu0", SID)) {
                for (int i = 0; i < 4; i++) {
                    assertThat(nic.read(IOVA + i * 8, 8).isOk()).isTrue();
                }
                assertThat(nic.read(IOVA + (1 << 20), 8).faulted()).as("beyond the mapping").isTrue();
            }
            driver.unmap(UnmapRequest.newBuilder().setDomain(d).setIova(IOVA).setSize(64 << 10).build());
            long w = written();
            assertThat(all.awaitCaughtUp(w, 10_000)).isTrue();
            assertThat(commandsOnly.awaitCaughtUp(w, 10_000)).isTrue();
            InstanceStats after = smmu(telemetry.stats(StatsRequest.getDefaultInstance()).getIommusList());
            List<TraceRecord> records = all.records();

            List<TraceRecord> xlate = records.stream().filter(r -> r.getKind() == TraceKind.TRACE_TRANSLATE).toList();
            assertThat(xlate).hasSize(5).allSatisfy(r -> {
                assertThat(r.getIommu()).isEqualTo("smmu0");
                assertThat(r.getStream()).isEqualTo(SID);
            });
            assertThat(xlate.get(0).getExtra()).as("the first read walks").isEqualTo(2);
            assertThat(xlate.get(0).getWalkReads()).as("a cold 4-level walk reads descriptors").isPositive();
            assertThat(xlate.subList(1, 4)).as("then IOTLB hits").allSatisfy(r -> assertThat(r.getExtra())
                    .isEqualTo(1));
            assertThat(xlate.get(4).getResult()).as("a fault").isEqualTo(1);
            assertThat(xlate.get(4).getName()).isEqualTo("F_TRANSLATION");
            assertThat(xlate.get(4).getAddress()).isEqualTo(IOVA + (1 << 20));

            assertThat(records.stream().filter(r -> r.getKind() == TraceKind.TRACE_DMA)).hasSize(5)
                    .last().satisfies(r -> assertThat(r.getName()).isEqualTo("TRANSLATION"));
            assertThat(records.stream().filter(r -> r.getKind() == TraceKind.TRACE_EVENT).map(TraceRecord::getName))
                    .containsExactly("F_TRANSLATION");
            long syncs = count(after.getCommandsList(), "CMD_SYNC") - count(before.getCommandsList(), "CMD_SYNC");
            assertThat(syncs).isPositive();
            assertThat(records.stream().filter(r -> r.getKind() == TraceKind.TRACE_COMMAND
                    && r.getName().equals("CMD_SYNC"))).as("one record per CMD_SYNC Telemetry counted")
                    .hasSize((int) syncs);
            assertThat(records.stream().filter(r -> r.getKind() == TraceKind.TRACE_QUEUE)).isNotEmpty();
            assertThat(records.stream().filter(r -> r.getKind() == TraceKind.TRACE_DRIVER).map(TraceRecord::getName))
                    .contains("DOMAIN_ALLOC", "MAP", "ATTACH", "UNMAP");
            assertThat(records.stream().filter(r -> r.getKind() == TraceKind.TRACE_CACHE_SAMPLE)
                    .map(TraceRecord::getName)).contains("iotlb", "config", "walk");
            assertThat(records).allSatisfy(r -> assertThat(r.getWallTimeNs()).isNotZero());
            assertThat(all.dropped()).isZero();

            assertThat(commandsOnly.records()).isNotEmpty().allSatisfy(r -> assertThat(r.getKind())
                    .isEqualTo(TraceKind.TRACE_COMMAND));
            assertThat(commandsOnly.records()).hasSize((int) records.stream()
                    .filter(r -> r.getKind() == TraceKind.TRACE_COMMAND).count());
        }
        waitOn(bus, 0);
        assertThat(bus.machine.tracer().on()).as("off again once the streams are cancelled").isFalse();
    }

    /** Waits until {@code n} readers are open (a stream opens its reader as the server takes the call). */
    private static void waitOn(BusFixture bus, int n) throws InterruptedException {
        for (int i = 0; i < 1000 && bus.machine.tracer().readers() != n; i++) {
            Thread.sleep(5);
        }
        assertThat(bus.machine.tracer().readers()).isEqualTo(n);
    }

    @Test
    void aSubscriberThatDoesNotReadLosesRecordsAndTheServerCarriesOn() throws Exception {
        bus.machine.tracer().capacity(64);
        List<TraceBatch> got = new CopyOnWriteArrayList<>();
        CountDownLatch first = new CountDownLatch(1);
        ClientCallStreamObserver<?>[] call = new ClientCallStreamObserver<?>[1];
        TelemetryGrpc.newStub(bus.channel()).trace(TraceRequest.getDefaultInstance(),
                new ClientResponseObserver<TraceRequest, TraceBatch>() {
                    @Override
                    public void beforeStart(ClientCallStreamObserver<TraceRequest> s) {
                        call[0] = s;
                        s.disableAutoRequestWithInitial(0); // read nothing until told
                    }

                    @Override
                    public void onNext(TraceBatch b) {
                        got.add(b);
                        first.countDown();
                    }

                    @Override
                    public void onError(Throwable t) {
                    }

                    @Override
                    public void onCompleted() {
                    }
                });
        waitOn(bus, 1);
        domain();
        try (DmaSession nic = dma.attach("nic0", "smmu0", SID)) {
            for (int i = 0; i < 500; i++) {
                assertThat(nic.read(IOVA + (i % 16) * 4096L, 64).isOk()).as("DMA goes on").isTrue();
            }
        }
        long w = written();
        assertThat(w).as("every DMA was recorded, 2 records each at least").isGreaterThan(1000);
        assertThat(got).as("nothing was delivered while the subscriber read nothing").isEmpty();
        call[0].request(Integer.MAX_VALUE);
        assertThat(first.await(10, TimeUnit.SECONDS)).isTrue();
        for (int i = 0; i < 2000 && got.stream().noneMatch(b -> b.getIdle() && b.getCursor() >= w); i++) {
            Thread.sleep(5);
        }
        TraceBatch last = got.get(got.size() - 1);
        assertThat(last.getCursor()).isGreaterThanOrEqualTo(w);
        long records = got.stream().mapToLong(TraceBatch::getRecordsCount).sum();
        assertThat(last.getDropped()).as("the ring holds 64; the rest was dropped and counted")
                .isGreaterThanOrEqualTo(w - 64 - 16);
        assertThat(records - got.stream().flatMap(b -> b.getRecordsList().stream())
                .filter(r -> r.getKind() == TraceKind.TRACE_CACHE_SAMPLE).count()).isLessThanOrEqualTo(64 + 16);
        assertThat(last.getRingCapacity()).isEqualTo(64);
        call[0].cancel("done", null);
        waitOn(bus, 0);
    }

    @Test
    void aHugeMaxBatchIsCappedNotAnError() throws Exception {
        TelemetryGrpc.TelemetryBlockingStub t = TelemetryGrpc.newBlockingStub(bus.channel())
                .withDeadlineAfter(5, TimeUnit.SECONDS);
        var batches = t.trace(TraceRequest.newBuilder().setMaxBatch(-1).build());
        domain();
        assertThat(batches.next().getRingCapacity()).as("the stream works").isPositive();
    }

    @Test
    void badRequestsNameTheField() {
        TelemetryGrpc.TelemetryBlockingStub t = TelemetryGrpc.newBlockingStub(bus.channel());
        BusFixture.assertStatus(() -> t.trace(TraceRequest.newBuilder().addIommus("smmu7").build()).hasNext(),
                Status.Code.NOT_FOUND, "iommus[0]");
        BusFixture.assertStatus(() -> t.trace(TraceRequest.newBuilder().addKindsValue(99).build()).hasNext(),
                Status.Code.INVALID_ARGUMENT, "kinds[0]");
        BusFixture.assertStatus(() -> t.trace(TraceRequest.newBuilder().setSampleIntervalMs(60_001).build())
                .hasNext(), Status.Code.OUT_OF_RANGE, "sample_interval_ms");
        BusFixture.assertStatus(() -> t.trace(TraceRequest.newBuilder().setSampleIntervalMs(-1).build())
                .hasNext(), Status.Code.OUT_OF_RANGE, "4294967295");
        assertThat(bus.machine.tracer().readers()).isZero();
    }
}
