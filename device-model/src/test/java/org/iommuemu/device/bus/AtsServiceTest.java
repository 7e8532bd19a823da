package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.bus.BusFixture.assertStatus;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.device.trace.TraceCollector;
import org.iommuemu.dma.Atc;
import org.iommuemu.dma.AtcListener;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AtcInvalidation;
import org.iommuemu.proto.v1.AtcInvalidationCompletion;
import org.iommuemu.proto.v1.AtsStats;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CacheStats;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.EventsRequest;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.Prot;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.TraceKind;
import org.iommuemu.proto.v1.TranslateReply;
import org.iommuemu.proto.v1.UnmapRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * ATS end to end on the in-process bus with the emulator's SMMUv3 driver: Dma.Translate, translated requests served
 * from a device-side {@link Atc} without the IOMMU walking, ATC_INV reaching the device over AtcInvalidations on
 * unmap, a device that never answers (CERROR_ATC_INV_SYNC, the driver recovers) or disconnects, and the refusals.
 */
class AtsServiceTest {
    private static final int SID = 0x30;
    private static final int OTHER = 0x31;
    private static final long IOVA = 0x2000_0000L;
    private static final Prot RW = Prot.newBuilder().setRead(true).setWrite(true).build();
    private static final int ATC_INV = 0x40;

    private BusFixture bus;
    private DriverGrpc.DriverBlockingStub driver;
    private TelemetryGrpc.TelemetryBlockingStub telemetry;
    private DmaClient dma;
    private final ExecutorService background = Executors.newCachedThreadPool();

    private void start(int atcTimeoutMs) throws Exception {
        bus = new BusFixture(MachineConfig.defaults().withIommus(List.of(new IommuSpec("smmu0", IommuType.SMMUV3,
                SmmuV3Config.builder().ats(true).atcTimeoutMs(atcTimeoutMs).build()),
                new IommuSpec("plain", IommuType.SMMUV3))));
        driver = DriverGrpc.newBlockingStub(bus.channel());
        telemetry = TelemetryGrpc.newBlockingStub(bus.channel());
        dma = bus.client();
    }

    @AfterEach
    void tearDown() {
        background.shutdownNow();
        if (bus != null) {
            bus.close();
        }
    }

    /** A stage-1 domain on smmu0 with {@code pages} pages mapped at IOVA, attached to SID (with ATS if asked). */
    private long domain(int pages, boolean ats, int... moreStreams) {
        long d = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0").setStage(DomainStage.STAGE_1)
                .setGranule(4096).build()).getDomain();
        long pa = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(pages * 4096L).build()).getPa();
        driver.map(MapRequest.newBuilder().setDomain(d).setIova(IOVA).setPa(pa).setSize(pages * 4096L).setProt(RW)
                .build());
        driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(d).setIommu("smmu0").setStreamId(SID)
                .setAts(ats).build());
        for (int sid : moreStreams) {
            driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(d).setIommu("smmu0").setStreamId(sid)
                    .build());
        }
        return d;
    }

    private long pa(long domain, long iova) {
        return driver.iovaToPhys(org.iommuemu.proto.v1.IovaToPhysRequest.newBuilder().setDomain(domain).setIova(iova)
                .build()).getPa();
    }

    private InstanceStats stats() {
        return telemetry.stats(StatsRequest.newBuilder().addIommus("smmu0").build()).getIommus(0);
    }

    private static CacheStats iotlb(InstanceStats s) {
        return s.getCachesList().stream().filter(c -> c.getCache().equals("iotlb")).findFirst().orElseThrow();
    }

    private static long commands(InstanceStats s, int opcode) {
        return s.getCommandsList().stream().filter(c -> c.getCode() == opcode).mapToLong(c -> c.getCount()).sum();
    }

    private static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    private void unmap(long d, long iova, long size) {
        assertThat(driver.unmap(UnmapRequest.newBuilder().setDomain(d).setIova(iova).setSize(size).build())
                .getUnmapped()).isEqualTo(size);
    }

    @Test
    void translateAnswersTheRegionItsPermissionsAndThePhysicalAddress() throws Exception {
        start(1000);
        long d = domain(4, true);
        try (DmaSession dev = dma.attach("ats0", "smmu0", SID, false, true)) {
            TranslateReply r = dev.translate(IOVA + 0x1234, true, DmaOptions.DEFAULT);
            assertThat(r.hasFault()).isFalse();
            assertThat(r.getPermissions().getRead()).isTrue();
            assertThat(r.getPermissions().getWrite()).isTrue();
            assertThat(r.getSize()).as("a 4 KB leaf").isEqualTo(4096);
            assertThat(r.getInputBase()).isEqualTo(IOVA + 0x1000);
            assertThat(r.getTranslatedAddress()).isEqualTo(pa(d, IOVA + 0x1000));

            TranslateReply none = dev.translate(IOVA + 0x10_0000, true, DmaOptions.DEFAULT);
            assertThat(none.hasFault()).as("an unmapped iova is 'no access', not a refusal").isFalse();
            assertThat(none.getPermissions().getRead()).isFalse();
            assertThat(none.getPermissions().getWrite()).isFalse();
            assertThat(stats().getEventsList()).as("ATS translation faults are not recorded")
                    .noneMatch(e -> e.getCode() == EventType.F_TRANSLATION);
            assertThat(stats().getAts().getTranslationRequests()).isEqualTo(2);
        }
    }

    @Test
    void aTranslationRequestIsOnTheTraceAsItsDevicesTranslation() throws Exception {
        start(1000);
        domain(2, true);
        try (TraceCollector trace = TraceCollector.start(bus.channel(), List.of("smmu0"),
                List.of(TraceKind.TRACE_TRANSLATE));
                DmaSession dev = dma.attach("ats0", "smmu0", SID, false, true)) {
            for (int i = 0; i < 1000 && bus.machine.tracer().readers() != 1; i++) {
                Thread.sleep(5);
            }
            assertThat(dev.translate(IOVA + 0x1234, false, DmaOptions.DEFAULT).getPermissions().getRead()).isTrue();
            long w = telemetry.stats(StatsRequest.getDefaultInstance()).getTraceWritten();
            assertThat(trace.awaitCaughtUp(w, 10_000)).isTrue();
            assertThat(trace.records()).singleElement().satisfies(r -> {
                assertThat(r.getStream()).isEqualTo(SID);
                assertThat(r.getAddress()).isEqualTo(IOVA + 0x1234);
                assertThat(r.getResult()).as("ok").isZero();
                assertThat(r.getExtra()).as("served by a walk").isEqualTo(2);
            });
        }
    }

    @Test
    void translatedDmaWithAWarmAtcNeitherWalksNorTouchesTheIotlb() throws Exception {
        start(1000);
        long d = domain(2, true);
        Atc atc = new Atc(8);
        try (DmaSession dev = dma.attach("ats0", "smmu0", SID, false, true)) {
            byte[] data = random(6000, 1);
            assertThat(dev.writeThroughAtc(atc, IOVA + 100, data, DmaOptions.DEFAULT).isOk()).isTrue();
            assertThat(atc.size()).as("two pages translated and cached").isEqualTo(2);
            InstanceStats warm = stats();
            for (int i = 0; i < 10; i++) {
                DmaResult r = dev.readThroughAtc(atc, IOVA + 100, data.length, DmaOptions.DEFAULT);
                assertThat(r.isOk()).isTrue();
                assertThat(r.data().toByteArray()).isEqualTo(data);
            }
            InstanceStats after = stats();
            assertThat(after.getTranslations()).as("no translation by the IOMMU").isEqualTo(warm.getTranslations());
            assertThat(after.getWalks()).as("no walk").isEqualTo(warm.getWalks());
            assertThat(iotlb(after).getHits()).as("no IOTLB lookup").isEqualTo(iotlb(warm).getHits());
            assertThat(iotlb(after).getMisses()).isEqualTo(iotlb(warm).getMisses());
            AtsStats ats = after.getAts();
            assertThat(ats.getTranslationRequests()).isEqualTo(warm.getAts().getTranslationRequests());
            assertThat(ats.getTranslatedRequests() - warm.getAts().getTranslatedRequests())
                    .as("ten reads, each crossing one page boundary").isEqualTo(20);
            assertThat(atc.hits()).isGreaterThanOrEqualTo(20);
            byte[] inRam = bus.cpu().memRead(MemReadRequest.newBuilder().setAddress(pa(d, IOVA) + 100)
                    .setLength(100).build()).getData().toByteArray();
            assertThat(inRam).as("the translated write reached the mapped page")
                    .isEqualTo(java.util.Arrays.copyOf(data, 100));
        }
    }

    @Test
    void unmapSendsAtcInvToTheDeviceWhichDropsItsEntryAndTheNextAccessRetranslatesAndFaults() throws Exception {
        start(5000);
        long d = domain(2, true);
        Atc atc = new Atc(8);
        try (DmaSession dev = dma.attach("ats0", "smmu0", SID, false, true);
                AtcListener listener = dev.listenForInvalidations(atc)) {
            assertThat(dev.readThroughAtc(atc, IOVA, 8192, DmaOptions.DEFAULT).isOk()).isTrue();
            assertThat(atc.size()).isEqualTo(2);
            long atcInv = commands(stats(), ATC_INV);
            unmap(d, IOVA + 4096, 4096);
            assertThat(commands(stats(), ATC_INV) - atcInv).as("the driver followed the TLBI with an ATC_INV")
                    .isEqualTo(1);
            assertThat(listener.received()).as("delivered before the unmap returned").isEqualTo(1);
            assertThat(listener.completed()).isEqualTo(1);
            assertThat(atc.size()).as("only the unmapped page's region is gone").isEqualTo(1);
            assertThat(atc.lookup(-1, IOVA, false)).isNotEqualTo(Atc.MISS);

            DmaResult gone = dev.readThroughAtc(atc, IOVA + 4096, 8, DmaOptions.DEFAULT);
            assertThat(gone.isOk()).isFalse();
            assertThat(gone.fault().getKind()).as("re-translated: no access any more").isEqualTo(FaultKind.PERMISSION);
            AtsStats ats = stats().getAts();
            assertThat(ats.getInvalidationsSent()).isEqualTo(1);
            assertThat(ats.getInvalidationsCompleted()).isEqualTo(1);
            assertThat(ats.getInvalidationsTimedOut()).isZero();
        }
    }

    @Test
    void aDeviceThatNeverAnswersFailsTheSyncWithCerrorAtcInvSyncTheDriverRecoversAndOthersKeepWorking()
            throws Exception {
        start(200);
        long d = domain(4, true, OTHER);
        Atc atc = new Atc(8);
        try (DmaSession dev = dma.attach("mute", "smmu0", SID, false, true);
                DmaSession other = dma.attach("other", "smmu0", OTHER);
                AtcListener listener = dev.listenForInvalidations(atc, AtcListener.Answer.NEVER, 0, null)) {
            assertThat(dev.readThroughAtc(atc, IOVA, 4096, DmaOptions.DEFAULT).isOk()).isTrue();
            unmap(d, IOVA, 4096);
            assertThat(listener.received()).isEqualTo(1);
            assertThat(listener.completed()).isZero();
            InstanceStats s = stats();
            assertThat(s.getAts().getInvalidationsTimedOut()).isEqualTo(1);
            assertThat(s.getDriver().getCommandErrors()).as("CERROR_ATC_INV_SYNC, skipped as Linux does")
                    .isGreaterThanOrEqualTo(1);
            assertThat(s.getGlobalErrors()).as("GERROR.CMDQ_ERR toggled").isGreaterThanOrEqualTo(1);
            assertThat(other.read(IOVA + 4096, 16).isOk()).as("another stream keeps working").isTrue();
            unmap(d, IOVA + 8192, 4096); // the queue works again (this ATC_INV times out too)
            assertThat(other.read(IOVA + 8192, 16).fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
            assertThat(stats().getAts().getInvalidationsTimedOut()).isEqualTo(2);
        }
    }

    @Test
    void aDeviceThatDisconnectsWithAnOutstandingInvalidationDoesNotHangTheSync() throws Exception {
        start(600_000);
        long d = domain(2, true);
        DmaClient own = DmaClient.over(bus.channel());
        Atc atc = new Atc(8);
        DmaSession dev = own.attach("leaver", "smmu0", SID, false, true);
        AtcListener listener = dev.listenForInvalidations(atc, AtcListener.Answer.NEVER, 0, null);
        assertThat(dev.readThroughAtc(atc, IOVA, 4096, DmaOptions.DEFAULT).isOk()).isTrue();
        Future<?> unmap = background.submit(() -> unmap(d, IOVA, 4096));
        while (listener.received() == 0) {
            Thread.sleep(5);
        }
        assertThat(unmap.isDone()).as("the sync waits for the device").isFalse();
        listener.close(); // the device stops listening: what it did not complete counts as timed out at once
        unmap.get(60, TimeUnit.SECONDS);
        assertThat(stats().getAts().getInvalidationsTimedOut()).isEqualTo(1);
        dev.close();
    }

    @Test
    void translateIsRefusedWhenTheSteDoesNotEnableAtsAndTranslatedRequestsAreForbidden() throws Exception {
        start(1000);
        domain(1, false);
        try (DmaSession dev = dma.attach("ats0", "smmu0", SID, false, true)) {
            TranslateReply r = dev.translate(IOVA, false, DmaOptions.DEFAULT);
            assertThat(r.getFault().getKind()).isEqualTo(FaultKind.ABORTED);
            assertThat(r.getFault().getCode()).isEqualTo(EventType.F_BAD_ATS_TREQ);
            assertThat(r.getFault().getDescription()).contains("EATS=0");
            DmaResult t = dev.readTranslated(0x8000_0000L, 8, DmaOptions.DEFAULT);
            assertThat(t.fault().getKind()).isEqualTo(FaultKind.ABORTED);
            assertThat(t.fault().getCode()).isEqualTo(EventType.F_TRANSL_FORBIDDEN);
            List<String> events = driver.events(EventsRequest.newBuilder().setIommu("smmu0").build())
                    .getRecordsList().stream().map(e -> e.getTypeName()).toList();
            assertThat(events).contains("F_BAD_ATS_TREQ", "F_TRANSL_FORBIDDEN");
        }
    }

    @Test
    void sessionsWithoutAtsMayNotTranslateNorIssueTranslatedRequests() throws Exception {
        start(1000);
        domain(1, true);
        try (DmaSession dev = dma.attach("plain", "smmu0", SID)) {
            assertStatus(() -> dev.translate(IOVA, false, DmaOptions.DEFAULT), Status.Code.FAILED_PRECONDITION,
                    "ats=true");
            assertStatus(() -> dev.readTranslated(0x8000_0000L, 8, DmaOptions.DEFAULT),
                    Status.Code.FAILED_PRECONDITION, "translated");
            assertStatus(() -> dev.writeTranslated(0x8000_0000L, ByteString.copyFromUtf8("x"), DmaOptions.DEFAULT),
                    Status.Code.FAILED_PRECONDITION, "translated");
        }
        assertStatus(() -> dma.attach("x", "plain", 1, false, true), Status.Code.FAILED_PRECONDITION,
                "does not implement ATS");
        assertStatus(() -> driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(domainOn("plain"))
                .setIommu("plain").setStreamId(2).setAts(true).build()), Status.Code.FAILED_PRECONDITION, "ATS");
    }

    private long domainOn(String iommu) {
        return driver.createDomain(CreateDomainRequest.newBuilder().addIommus(iommu).setStage(DomainStage.STAGE_1)
                .setGranule(4096).build()).getDomain();
    }

    /** Opens a raw AtcInvalidations stream and returns how it ended. */
    private Status rawStream(ManagedChannel channel, AtcInvalidationCompletion... messages) throws Exception {
        StreamRecorder<AtcInvalidation> got = new StreamRecorder<>();
        StreamObserver<AtcInvalidationCompletion> out = DmaGrpc.newStub(channel).atcInvalidations(got);
        for (AtcInvalidationCompletion m : messages) {
            out.onNext(m);
        }
        return got.end(30);
    }

    @Test
    void atcInvalidationsRefusesABadFirstMessageAndASecondStream() throws Exception {
        start(1000);
        ManagedChannel c = bus.channel();
        DmaClient client = DmaClient.over(c);
        DmaSession ats = client.attach("ats0", "smmu0", SID, false, true);
        DmaSession plain = client.attach("plain", "smmu0", OTHER);
        Status s = rawStream(c, AtcInvalidationCompletion.newBuilder().setSessionId(ats.id()).setId(5).build());
        assertThat(s.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(s.getDescription()).contains("first message");
        s = rawStream(c, AtcInvalidationCompletion.newBuilder().setSessionId(12345).build());
        assertThat(s.getCode()).isEqualTo(Status.Code.NOT_FOUND);
        s = rawStream(c, AtcInvalidationCompletion.newBuilder().setSessionId(plain.id()).build());
        assertThat(s.getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
        assertThat(s.getDescription()).contains("ats=true");
        s = rawStream(c, AtcInvalidationCompletion.newBuilder().setSessionId(ats.id()).build(),
                AtcInvalidationCompletion.newBuilder().setSessionId(ats.id()).setId(0).build());
        assertThat(s.getCode()).as("a completion must name an id").isEqualTo(Status.Code.INVALID_ARGUMENT);

        AtcListener first = ats.listenForInvalidations(new Atc(4));
        // an invalidation for the stream: once the listener receives it, its stream is bound to the session
        bus.machine.iommu("smmu0").atc().invalidate(SID, false, -1, 0, 12);
        while (first.received() == 0) {
            Thread.sleep(5);
        }
        s = rawStream(c, AtcInvalidationCompletion.newBuilder().setSessionId(ats.id()).build());
        assertThat(s.getCode()).isEqualTo(Status.Code.ALREADY_EXISTS);
        ats.close();
        assertThat(first.awaitEnd(30_000)).as("detaching the session ends its stream").isTrue();
        assertThat(first.endStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
    }
}
