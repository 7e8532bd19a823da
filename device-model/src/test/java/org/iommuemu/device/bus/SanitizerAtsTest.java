package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.dma.Atc;
import org.iommuemu.dma.AtcListener;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.FlushMode;
import org.iommuemu.proto.v1.FlushRequest;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.Prot;
import org.iommuemu.proto.v1.SanitizerReport;
import org.iommuemu.proto.v1.SanitizerReportKind;
import org.iommuemu.proto.v1.SanitizerReportsReply;
import org.iommuemu.proto.v1.SanitizerReportsRequest;
import org.iommuemu.proto.v1.TranslateReply;
import org.iommuemu.proto.v1.UnmapRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The sanitizer on translated (ATS) requests, through the bus with the emulator's SMMUv3 driver: the physical
 * address a translated request carries must be reached by a live mapping of one of the stream's domains (whole
 * stream or substream); one that a mapping reached until an unmap whose ATC invalidation completed is
 * TRANSLATED_STALE_ATC (the device ignored the invalidation), one no mapping ever reached
 * TRANSLATED_UNMAPPED_MEMORY; legal use (live mappings of any of the stream's domains, a lazy unmap not flushed
 * yet) reports nothing.
 */
class SanitizerAtsTest {
    private static final int SID = 0x40;
    private static final int SSID = 3;
    private static final long IOVA = 0x1000_0000L;
    private static final Prot RW = Prot.newBuilder().setRead(true).setWrite(true).build();

    private BusFixture bus;
    private DriverGrpc.DriverBlockingStub driver;

    @AfterEach
    void tearDown() {
        if (bus != null) {
            bus.close();
        }
    }

    private void start() throws Exception {
        bus = new BusFixture(MachineConfig.defaults().withIommus(List.of(new IommuSpec("smmu0", IommuType.SMMUV3,
                SmmuV3Config.builder().ats(true).atcTimeoutMs(5000).build()))));
        driver = DriverGrpc.newBlockingStub(bus.channel());
        assertThat(driver.sanitizerReports(SanitizerReportsRequest.newBuilder().setEnable(true).build())
                .getEnabled()).isTrue();
    }

    private SanitizerReportsReply reports() {
        return driver.sanitizerReports(SanitizerReportsRequest.getDefaultInstance());
    }

    /** A stage-1 domain on smmu0 ({@code flush}; LAZY without a time bound) mapping two fresh pages at IOVA. */
    private long domain(FlushMode flush) {
        CreateDomainRequest.Builder b = CreateDomainRequest.newBuilder().addIommus("smmu0")
                .setStage(DomainStage.STAGE_1).setGranule(4096).setFlush(flush);
        if (flush == FlushMode.LAZY) {
            b.setFlushTimeoutNs(0); // no time bound: an unmap stays legal until the queue is flushed
        }
        long d = driver.createDomain(b.build()).getDomain();
        long pa = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(8192).build()).getPa();
        driver.map(MapRequest.newBuilder().setDomain(d).setIova(IOVA).setPa(pa).setSize(8192).setProt(RW).build());
        return d;
    }

    private void attach(long d, Integer ssid, boolean ats) {
        AttachDeviceRequest.Builder b = AttachDeviceRequest.newBuilder().setDomain(d).setIommu("smmu0")
                .setStreamId(SID).setAts(ats);
        if (ssid != null) {
            b.setSubstreamId(ssid);
        }
        driver.attachDevice(b.build());
    }

    private void unmap(long d, long iova) {
        driver.unmap(UnmapRequest.newBuilder().setDomain(d).setIova(iova).setSize(4096).build());
    }

    /** The physical address the device is given for {@code iova}, as a device with an ATC would remember it. */
    private static long translate(DmaSession dev, long iova, DmaOptions o) {
        TranslateReply r = dev.translate(iova, true, o);
        assertThat(r.getPermissions().getWrite()).as("translated %s", r).isTrue();
        return r.getTranslatedAddress() + (iova - r.getInputBase());
    }

    @Test
    void aTranslatedAccessAfterTheUnmapAndItsAtcInvalidationCompletedIsAStaleAtcEntry() throws Exception {
        start();
        long whole = domain(FlushMode.STRICT);
        attach(whole, null, true);
        try (DmaSession dev = bus.client().attach("ats", "smmu0", SID, true, true);
                AtcListener listener = dev.listenForInvalidations(new Atc(4))) {
            long pa = translate(dev, IOVA + 4096, DmaOptions.DEFAULT);
            assertThat(dev.readTranslated(pa, 64, DmaOptions.DEFAULT).isOk()).isTrue();
            assertThat(reports().getReportsList()).as("a legal translated access").isEmpty();

            unmap(whole, IOVA + 4096);
            assertThat(listener.completed()).as("the device answered the invalidation").isEqualTo(1);
            // ... but goes on using the address it had cached
            assertThat(dev.readTranslated(pa + 8, 8, DmaOptions.DEFAULT).isOk()).as("EATS=1: passed through")
                    .isTrue();

            assertThat(reports().getReportsList()).singleElement().satisfies(r -> {
                assertThat(r.getKind()).isEqualTo(SanitizerReportKind.SANITIZER_TRANSLATED_STALE_ATC);
                assertThat(r.getPa()).isEqualTo(pa + 8);
                assertThat(r.getIova()).as("the iova that mapped it").isEqualTo(IOVA + 4096 + 8);
                assertThat(r.getCauseFirst()).isEqualTo(IOVA + 4096);
                assertThat(r.getCauseFlushed()).isTrue();
                assertThat(r.getServedBy()).contains("ATC");
                assertThat(r.getDetail()).contains("translated read", "ATC_INV");
            });
        }
    }

    @Test
    void aTranslatedAccessToMemoryNoDomainOfTheStreamEverMappedIsReported() throws Exception {
        start();
        attach(domain(FlushMode.STRICT), null, true);
        long stray = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(4096).build()).getPa();
        try (DmaSession dev = bus.client().attach("ats", "smmu0", SID, true, true)) {
            assertThat(dev.writeTranslated(stray, com.google.protobuf.ByteString.copyFromUtf8("x"),
                    DmaOptions.DEFAULT).isOk()).isTrue();
        }
        SanitizerReport r = reports().getReports(0);
        assertThat(r.getKind()).isEqualTo(SanitizerReportKind.SANITIZER_TRANSLATED_UNMAPPED_MEMORY);
        assertThat(r.getPa()).isEqualTo(stray);
        assertThat(r.getWrite()).isTrue();
        assertThat(reports().getCountsList()).singleElement().satisfies(c -> {
            assertThat(c.getName()).isEqualTo("TRANSLATED_UNMAPPED_MEMORY");
            assertThat(c.getCount()).isEqualTo(1);
        });
    }

    @Test
    void legalTranslatedAccessesThroughAnyDomainOfTheStreamAndALazyWindowReportNothing() throws Exception {
        start();
        long pasid = domain(FlushMode.STRICT);
        attach(pasid, SSID, false);
        long lazy = domain(FlushMode.LAZY);
        attach(lazy, null, true);
        DmaOptions sub = DmaOptions.DEFAULT.withSubstream(SSID);
        try (DmaSession dev = bus.client().attach("ats", "smmu0", SID, true, true);
                AtcListener listener = dev.listenForInvalidations(new Atc(4))) {
            long viaSub = translate(dev, IOVA, sub);
            long viaWhole = translate(dev, IOVA + 4096, DmaOptions.DEFAULT);
            // a translated request carries no substream the SMMU checks: either domain's address is legal, with or
            // without a substream id on the request
            assertThat(dev.readTranslated(viaSub, 4096, DmaOptions.DEFAULT).isOk()).isTrue();
            assertThat(dev.readTranslated(viaWhole, 4096, sub).isOk()).isTrue();
            unmap(lazy, IOVA + 4096); // queued, not flushed: the device may still hold the translation
            assertThat(dev.readTranslated(viaWhole, 64, DmaOptions.DEFAULT).isOk()).isTrue();
            assertThat(reports().getReportsList()).isEmpty();

            driver.flush(FlushRequest.newBuilder().setDomain(lazy).build());
            assertThat(dev.readTranslated(viaWhole, 64, DmaOptions.DEFAULT).isOk()).isTrue();
            assertThat(reports().getReportsList()).as("after the flush (its ATC_INV done) the same access is stale")
                    .singleElement().satisfies(r -> assertThat(r.getKind())
                            .isEqualTo(SanitizerReportKind.SANITIZER_TRANSLATED_STALE_ATC));
        }
    }
}
