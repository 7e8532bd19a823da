package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.bus.BusFixture.assertStatus;

import io.grpc.Status;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.vtd.VtdConfig;
import org.iommuemu.dma.Atc;
import org.iommuemu.dma.AtcListener;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AtsStats;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CacheStats;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.IovaToPhysRequest;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.Prot;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.TranslateReply;
import org.iommuemu.proto.v1.UnmapRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * ATS end to end on the in-process bus with the emulator's VT-d driver ({@code Driver.AttachDevice{ats: true}} on a
 * unit with ECAP.DT), legacy and scalable mode: translated DMA from a warm device-side {@link Atc} without the unit
 * walking, the device-TLB invalidation that follows an unmap reaching the device (only the unmapped range), PASID
 * domains' PASID-based invalidations, a device that never answers (ITE, bounded retries, given up, the queue and
 * other streams keep working), a device that disconnects, and the refusal without ECAP.DT.
 */
class VtdAtsServiceTest {
    private static final int RID = 0x30;
    private static final int OTHER = 0x31;
    private static final int PASID = 5;
    private static final long IOVA = 0x2000_0000L;
    private static final Prot RW = Prot.newBuilder().setRead(true).setWrite(true).build();

    private BusFixture bus;
    private DriverGrpc.DriverBlockingStub driver;
    private TelemetryGrpc.TelemetryBlockingStub telemetry;
    private DmaClient dma;
    private final ExecutorService background = Executors.newCachedThreadPool();

    private void start(boolean scalable, int atcTimeoutMs) throws Exception {
        bus = new BusFixture(MachineConfig.defaults().withIommus(List.of(
                new IommuSpec("dmar0", IommuType.VTD, null, VtdConfig.builder().dt(true).smts(scalable)
                        .atcTimeoutMs(atcTimeoutMs).build()),
                new IommuSpec("plain", IommuType.VTD, null, VtdConfig.builder().dt(false).build()))));
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

    private long newDomain(String iommu, DomainStage stage, int pages) {
        long d = driver.createDomain(CreateDomainRequest.newBuilder().addIommus(iommu).setStage(stage)
                .setGranule(4096).build()).getDomain();
        if (pages > 0) {
            long pa = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(pages * 4096L).build()).getPa();
            driver.map(MapRequest.newBuilder().setDomain(d).setIova(IOVA).setPa(pa).setSize(pages * 4096L)
                    .setProt(RW).build());
        }
        return d;
    }

    /** A second-stage domain on dmar0 with {@code pages} pages at IOVA, attached to RID (with ATS if asked). */
    private long domain(int pages, boolean ats, int... moreDevices) {
        long d = newDomain("dmar0", DomainStage.STAGE_2, pages);
        driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(d).setIommu("dmar0").setStreamId(RID)
                .setAts(ats).build());
        for (int rid : moreDevices) {
            driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(d).setIommu("dmar0").setStreamId(rid)
                    .build());
        }
        return d;
    }

    private long pa(long domain, long iova) {
        return driver.iovaToPhys(IovaToPhysRequest.newBuilder().setDomain(domain).setIova(iova).build()).getPa();
    }

    private InstanceStats stats() {
        return telemetry.stats(StatsRequest.newBuilder().addIommus("dmar0").build()).getIommus(0);
    }

    private static CacheStats iotlb(InstanceStats s) {
        return s.getCachesList().stream().filter(c -> c.getCache().equals("iotlb")).findFirst().orElseThrow();
    }

    private static long descriptors(InstanceStats s, int type) {
        return s.getCommandsList().stream().filter(c -> c.getCode() == type).mapToLong(c -> c.getCount()).sum();
    }

    private void unmap(long d, long iova, long size) {
        assertThat(driver.unmap(UnmapRequest.newBuilder().setDomain(d).setIova(iova).setSize(size).build())
                .getUnmapped()).isEqualTo(size);
    }

    @Test
    void translatedDmaWithAWarmAtcNeitherWalksNorTouchesTheIotlb() throws Exception {
        start(false, 1000);
        long d = domain(2, true);
        Atc atc = new Atc(8);
        try (DmaSession dev = dma.attach("ats0", "dmar0", RID, false, true)) {
            byte[] data = new byte[6000];
            new Random(7).nextBytes(data);
            assertThat(dev.writeThroughAtc(atc, IOVA + 100, data, DmaOptions.DEFAULT).isOk()).isTrue();
            assertThat(atc.size()).as("two pages translated and cached").isEqualTo(2);
            InstanceStats warm = stats();
            for (int i = 0; i < 10; i++) {
                DmaResult r = dev.readThroughAtc(atc, IOVA + 100, data.length, DmaOptions.DEFAULT);
                assertThat(r.isOk()).isTrue();
                assertThat(r.data().toByteArray()).isEqualTo(data);
            }
            InstanceStats after = stats();
            assertThat(after.getTranslations()).as("no translation by the unit").isEqualTo(warm.getTranslations());
            assertThat(after.getWalks()).as("no walk").isEqualTo(warm.getWalks());
            assertThat(iotlb(after).getHits()).as("no IOTLB lookup").isEqualTo(iotlb(warm).getHits());
            assertThat(iotlb(after).getMisses()).isEqualTo(iotlb(warm).getMisses());
            assertThat(after.hasAts()).isTrue();
            assertThat(after.getAts().getTranslatedRequests() - warm.getAts().getTranslatedRequests())
                    .as("ten reads, each crossing one page boundary").isEqualTo(20);
            byte[] inRam = bus.cpu().memRead(MemReadRequest.newBuilder().setAddress(pa(d, IOVA) + 100)
                    .setLength(100).build()).getData().toByteArray();
            assertThat(inRam).isEqualTo(java.util.Arrays.copyOf(data, 100));
        }
    }

    @Test
    void legacyUnmapSendsADeviceTlbInvalidationOfTheRangeAndTheDeviceThenGetsNoAccess() throws Exception {
        unmapReachesTheDevice(false);
    }

    @Test
    void scalableUnmapSendsADeviceTlbInvalidationOfTheRangeAndTheDeviceThenGetsNoAccess() throws Exception {
        unmapReachesTheDevice(true);
    }

    private void unmapReachesTheDevice(boolean scalable) throws Exception {
        start(scalable, 5000);
        long d = domain(4, true);
        Atc atc = new Atc(8);
        try (DmaSession dev = dma.attach("ats0", "dmar0", RID, false, true);
                AtcListener listener = dev.listenForInvalidations(atc)) {
            assertThat(dev.readThroughAtc(atc, IOVA, 4 * 4096, DmaOptions.DEFAULT).isOk()).isTrue();
            assertThat(atc.size()).isEqualTo(4);
            long before = descriptors(stats(), InvDesc.TYPE_DEVICE_TLB);
            unmap(d, IOVA + 4096, 4096);
            assertThat(descriptors(stats(), InvDesc.TYPE_DEVICE_TLB) - before)
                    .as("the driver followed the IOTLB invalidation with a device-TLB invalidation").isEqualTo(1);
            assertThat(listener.received()).as("delivered before the unmap returned").isEqualTo(1);
            assertThat(listener.completed()).isEqualTo(1);
            assertThat(atc.size()).as("only the unmapped page is gone").isEqualTo(3);
            assertThat(atc.lookup(-1, IOVA, false)).isNotEqualTo(Atc.MISS);
            assertThat(atc.lookup(-1, IOVA + 4096, false)).isEqualTo(Atc.MISS);
            assertThat(atc.lookup(-1, IOVA + 8192, false)).isNotEqualTo(Atc.MISS);

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
    void aPasidDomainOfAnAtsDeviceInvalidatesOnlyThatPasidsEntries() throws Exception {
        start(true, 5000);
        domain(2, true);
        long fs = newDomain("dmar0", DomainStage.STAGE_1, 2);
        driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(fs).setIommu("dmar0").setStreamId(RID)
                .setSubstreamId(PASID).build());
        Atc atc = new Atc(8);
        DmaOptions withPasid = DmaOptions.DEFAULT.withSubstream(PASID);
        try (DmaSession dev = dma.attach("ats0", "dmar0", RID, true, true);
                AtcListener listener = dev.listenForInvalidations(atc)) {
            assertThat(dev.readThroughAtc(atc, IOVA, 8, DmaOptions.DEFAULT).isOk()).isTrue();
            assertThat(dev.readThroughAtc(atc, IOVA, 8, withPasid).isOk()).isTrue();
            assertThat(atc.size()).as("one region without PASID, one with").isEqualTo(2);
            long before = descriptors(stats(), InvDesc.TYPE_PASID_DEVICE_TLB);
            unmap(fs, IOVA, 4096);
            assertThat(descriptors(stats(), InvDesc.TYPE_PASID_DEVICE_TLB) - before).isEqualTo(1);
            assertThat(listener.completed()).isEqualTo(1);
            assertThat(atc.lookup(PASID, IOVA, false)).as("the PASID's entry is gone").isEqualTo(Atc.MISS);
            assertThat(atc.lookup(-1, IOVA, false)).as("the whole device's entry stays").isNotEqualTo(Atc.MISS);
            assertThat(dev.readThroughAtc(atc, IOVA, 8, withPasid).fault().getKind())
                    .isEqualTo(FaultKind.PERMISSION);
        }
    }

    @Test
    void aDeviceThatNeverAnswersGivesIteTheDriverGivesItsInvalidationUpAndOthersKeepWorking() throws Exception {
        start(false, 100);
        long d = domain(4, true, OTHER);
        Atc atc = new Atc(8);
        try (DmaSession dev = dma.attach("mute", "dmar0", RID, false, true);
                DmaSession other = dma.attach("other", "dmar0", OTHER);
                AtcListener listener = dev.listenForInvalidations(atc, AtcListener.Answer.NEVER, 0, null)) {
            assertThat(dev.readThroughAtc(atc, IOVA, 4096, DmaOptions.DEFAULT).isOk()).isTrue();
            unmap(d, IOVA, 4096);
            InstanceStats s = stats();
            assertThat(s.getAts().getInvalidationsSent()).as("the retry leaves the device that timed out out")
                    .isEqualTo(1);
            // (under load the 100 ms may pass before the listener's stream is bound: then nothing is delivered)
            assertThat(listener.received()).isLessThanOrEqualTo(1);
            assertThat(listener.completed()).isZero();
            assertThat(s.getAts().getInvalidationsTimedOut()).isEqualTo(1);
            assertThat(s.getGlobalErrors()).as("FSTS.ITE").isGreaterThanOrEqualTo(1);
            assertThat(s.getDriver().getCommandErrors()).as("the ITE and the invalidation given up").isEqualTo(2);
            assertThat(other.read(IOVA + 4096, 16).isOk()).as("another device keeps working").isTrue();
            assertThat(other.read(IOVA, 16).fault().getKind()).as("the unmap took effect in the IOTLB")
                    .isEqualTo(FaultKind.TRANSLATION);
            unmap(d, IOVA + 8192, 4096); // the queue works again (and this device still does not answer)
            assertThat(other.read(IOVA + 8192, 16).fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
            assertThat(stats().getAts().getInvalidationsSent()).isEqualTo(2);
            assertThat(stats().getAts().getInvalidationsTimedOut()).isEqualTo(2);
            assertThat(stats().getDriver().getCommandErrors()).isEqualTo(4);
        }
    }

    @Test
    void aDeviceThatDisconnectsWithAnOutstandingInvalidationDoesNotHangTheWait() throws Exception {
        start(true, 600_000);
        long d = domain(2, true);
        DmaClient own = DmaClient.over(bus.channel());
        Atc atc = new Atc(8);
        DmaSession dev = own.attach("leaver", "dmar0", RID, false, true);
        AtcListener listener = dev.listenForInvalidations(atc, AtcListener.Answer.NEVER, 0, null);
        assertThat(dev.readThroughAtc(atc, IOVA, 4096, DmaOptions.DEFAULT).isOk()).isTrue();
        Future<?> unmap = background.submit(() -> unmap(d, IOVA, 4096));
        while (listener.received() == 0) {
            Thread.sleep(5);
        }
        assertThat(unmap.isDone()).as("the wait waits for the device").isFalse();
        listener.close(); // what the device did not complete counts as timed out at once: ITE, and the retries
        unmap.get(60, TimeUnit.SECONDS);
        assertThat(stats().getAts().getInvalidationsTimedOut()).isGreaterThanOrEqualTo(1);
        dev.close();
    }

    @Test
    void withoutAtsTheContextRefusesTranslationAndAUnitWithoutEcapDtRefusesAts() throws Exception {
        start(false, 1000);
        domain(1, false);
        try (DmaSession dev = dma.attach("ats0", "dmar0", RID, false, true)) {
            TranslateReply r = dev.translate(IOVA, false, DmaOptions.DEFAULT);
            assertThat(r.hasFault()).as("TT=00: translation requests blocked").isTrue();
            assertThat(stats().getAts().getInvalidationsSent()).isZero();
        }
        long p = newDomain("plain", DomainStage.STAGE_2, 0);
        assertStatus(() -> driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(p).setIommu("plain")
                .setStreamId(2).setAts(true).build()), Status.Code.FAILED_PRECONDITION, "ECAP.DT=0");
    }

    @Test
    void movingTheDeviceToAnotherDomainInvalidatesItsWholeDeviceTlbAndDropsAts() throws Exception {
        start(false, 5000);
        domain(2, true);
        long other = newDomain("dmar0", DomainStage.STAGE_2, 2);
        Atc atc = new Atc(8);
        try (DmaSession dev = dma.attach("ats0", "dmar0", RID, false, true);
                AtcListener listener = dev.listenForInvalidations(atc)) {
            assertThat(dev.readThroughAtc(atc, IOVA, 8192, DmaOptions.DEFAULT).isOk()).isTrue();
            driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(other).setIommu("dmar0")
                    .setStreamId(RID).build());
            assertThat(listener.completed()).isEqualTo(1);
            assertThat(atc.size()).as("everything invalidated").isZero();
            TranslateReply r = dev.translate(IOVA, false, DmaOptions.DEFAULT);
            assertThat(r.hasFault()).as("attached without ats: TT=00").isTrue();
        }
    }
}
