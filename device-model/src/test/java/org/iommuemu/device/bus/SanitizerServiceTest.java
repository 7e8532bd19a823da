package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CodeCount;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.FlushMode;
import org.iommuemu.proto.v1.FlushRequest;
import org.iommuemu.proto.v1.FreeBufferRequest;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.Prot;
import org.iommuemu.proto.v1.SanitizerReport;
import org.iommuemu.proto.v1.SanitizerReportKind;
import org.iommuemu.proto.v1.SanitizerReportsReply;
import org.iommuemu.proto.v1.SanitizerReportsRequest;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.UnmapRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The sanitizer through the bus: domains made, mapped and unmapped with the Driver service, DMA from the Dma
 * service, reports read with Driver.SanitizerReports and Telemetry.Stats. On SMMUv3 (stage 1, "smmu0") and VT-d
 * (second stage, "dmar0").
 */
class SanitizerServiceTest {
    private static final long IOVA = 0x1000_0000L;
    private static final Prot RW = Prot.newBuilder().setRead(true).setWrite(true).build();

    private BusFixture bus;
    private DriverGrpc.DriverBlockingStub driver;
    private DmaClient dma;

    private void start() throws Exception {
        bus = new BusFixture(MachineConfig.defaults().withIommus(List.of(new IommuSpec("smmu0", IommuType.SMMUV3),
                new IommuSpec("dmar0", IommuType.VTD))));
        driver = DriverGrpc.newBlockingStub(bus.channel());
        dma = bus.client();
        assertThat(sanitizer(SanitizerReportsRequest.newBuilder().setEnable(true)).getEnabled()).isTrue();
    }

    @AfterEach
    void tearDown() {
        if (bus != null) {
            bus.close();
        }
    }

    private SanitizerReportsReply sanitizer(SanitizerReportsRequest.Builder r) {
        return driver.sanitizerReports(r.build());
    }

    private SanitizerReportsReply reports() {
        return sanitizer(SanitizerReportsRequest.newBuilder());
    }

    private static int sid(String iommu) {
        return iommu.equals("smmu0") ? 0x20 : 0x0310;
    }

    private long domain(String iommu, FlushMode flush, Long timeoutNs) {
        CreateDomainRequest.Builder b = CreateDomainRequest.newBuilder().addIommus(iommu).setGranule(4096)
                .setStage(iommu.equals("smmu0") ? DomainStage.STAGE_1 : DomainStage.STAGE_2).setFlush(flush);
        if (timeoutNs != null) {
            b.setFlushTimeoutNs(timeoutNs);
        }
        return driver.createDomain(b.build()).getDomain();
    }

    private long attachedDomain(String iommu, FlushMode flush, Long timeoutNs, int sid) {
        long d = domain(iommu, flush, timeoutNs);
        driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(d).setIommu(iommu).setStreamId(sid).build());
        return d;
    }

    private long alloc() {
        return driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(4096).build()).getPa();
    }

    private void map(long d, long iova, long pa) {
        driver.map(MapRequest.newBuilder().setDomain(d).setIova(iova).setPa(pa).setSize(4096).setProt(RW).build());
    }

    private void unmap(long d, long iova) {
        driver.unmap(UnmapRequest.newBuilder().setDomain(d).setIova(iova).setSize(4096).build());
    }

    @ParameterizedTest
    @ValueSource(strings = {"smmu0", "dmar0"})
    void correctStrictAndLazyUseReportsNothing(String iommu) throws Exception {
        start();
        int sid = sid(iommu);
        long strict = attachedDomain(iommu, FlushMode.STRICT, null, sid);
        long buf = alloc();
        try (DmaSession dev = dma.attach("dev", iommu, sid)) {
            map(strict, IOVA, buf);
            assertThat(dev.read(IOVA, 64).isOk()).isTrue();
            assertThat(dev.write(IOVA + 8, "hello".getBytes()).isOk()).isTrue();
            unmap(strict, IOVA);
            assertThat(dev.read(IOVA, 64).faulted()).isTrue();
        }
        // lazy, no time bound: the unmapped page stays reachable until the flush, and that is allowed
        int lazySid = sid + 1;
        long lazy = attachedDomain(iommu, FlushMode.LAZY, 0L, lazySid);
        try (DmaSession dev = dma.attach("lazy", iommu, lazySid)) {
            map(lazy, IOVA, buf);
            assertThat(dev.read(IOVA, 64).isOk()).isTrue();
            unmap(lazy, IOVA);
            assertThat(dev.read(IOVA, 64).isOk()).as("the lazy window").isTrue();
            assertThat(driver.flush(FlushRequest.newBuilder().setDomain(lazy).build()).getFlushed()).isTrue();
            assertThat(dev.read(IOVA, 64).faulted()).isTrue();
            map(lazy, IOVA, buf); // iova reuse
            assertThat(dev.read(IOVA, 64).isOk()).isTrue();
        }
        SanitizerReportsReply r = reports();
        assertThat(r.getReportsList()).isEmpty();
        assertThat(r.getCountsList()).isEmpty();
        assertThat(r.getLastSequence()).isZero();
    }

    @ParameterizedTest
    @ValueSource(strings = {"smmu0", "dmar0"})
    void aDmaAfterAStrictUnmapWhoseInvalidationWasIgnoredIsAStaleTranslation(String iommu) throws Exception {
        start();
        int sid = sid(iommu);
        long d = attachedDomain(iommu, FlushMode.STRICT, null, sid);
        long buf = alloc();
        try (DmaSession dev = dma.attach("dev", iommu, sid)) {
            map(d, IOVA, buf);
            assertThat(dev.read(IOVA, 64).isOk()).isTrue(); // cached
            bus.machine.faults().inject(new FaultSpec(InjectionKind.IGNORE_IOTLB_INVALIDATION).iommu(iommu));
            unmap(d, IOVA);
            assertThat(reports().getReportsList()).isEmpty();
            assertThat(dev.read(IOVA + 0x10, 32).isOk()).as("the stale IOTLB entry serves it").isTrue();
        }
        SanitizerReportsReply r = reports();
        assertThat(r.getReportsList()).singleElement().satisfies(rep -> {
            assertThat(rep.getKind()).isEqualTo(SanitizerReportKind.SANITIZER_STALE_TRANSLATION);
            assertThat(rep.getIommu()).isEqualTo(iommu);
            assertThat(rep.getStreamId()).isEqualTo(sid);
            assertThat(rep.hasSubstreamId()).isFalse();
            assertThat(rep.getIova()).isEqualTo(IOVA + 0x10);
            assertThat(rep.getPa()).isEqualTo(buf + 0x10);
            assertThat(rep.getWrite()).isFalse();
            assertThat(rep.getCauseFirst()).isEqualTo(IOVA);
            assertThat(rep.getCauseLast()).isEqualTo(IOVA + 4095);
            assertThat(rep.getCauseFlushed()).isTrue();
            assertThat(rep.getCauseSequence()).isPositive();
            assertThat(rep.getDetail()).contains("stale translation").contains("0x10000000");
            assertThat(rep.getServedBy()).as("the cached entry that outlived the ignored invalidation")
                    .startsWith(iommu + " IOTLB entry for iova [" + org.iommuemu.core.bits.Bits.hex(IOVA) + ", ");
        });
        assertThat(r.getCountsList()).singleElement().satisfies(c -> {
            assertThat(c.getName()).isEqualTo("STALE_TRANSLATION");
            assertThat(c.getCount()).isEqualTo(1);
        });
        assertThat(reports().toBuilder().build().getReportsList()).hasSize(1);
        assertThat(sanitizer(SanitizerReportsRequest.newBuilder().setAfterSequence(1)).getReportsList()).isEmpty();
        InstanceStats stats = TelemetryGrpc.newBlockingStub(bus.channel())
                .stats(StatsRequest.newBuilder().addIommus(iommu).build()).getIommus(0);
        assertThat(stats.getSanitizerReportsList()).extracting(CodeCount::getName, CodeCount::getCount)
                .containsExactly(org.assertj.core.groups.Tuple.tuple("STALE_TRANSLATION", 1L));
    }

    @ParameterizedTest
    @ValueSource(strings = {"smmu0", "dmar0"})
    void aDmaThroughAMappingToAFreedBufferIsFreedMemory(String iommu) throws Exception {
        start();
        int sid = sid(iommu);
        long d = attachedDomain(iommu, FlushMode.STRICT, null, sid);
        long buf = alloc();
        try (DmaSession dev = dma.attach("dev", iommu, sid)) {
            map(d, IOVA, buf);
            assertThat(dev.read(IOVA, 8).isOk()).isTrue();
            driver.freeBuffer(FreeBufferRequest.newBuilder().setPa(buf).build());
            assertThat(dev.write(IOVA, "use after free".getBytes()).isOk())
                    .isTrue();
        }
        assertThat(reports().getReportsList()).singleElement().satisfies(rep -> {
            assertThat(rep.getKind()).isEqualTo(SanitizerReportKind.SANITIZER_FREED_MEMORY);
            assertThat(rep.getPa()).isEqualTo(buf);
            assertThat(rep.getWrite()).isTrue();
            assertThat(rep.getCauseFirst()).isEqualTo(buf);
            assertThat(rep.getCauseLast()).isEqualTo(buf + 4095);
            assertThat(rep.getDetail()).contains("freed memory");
        });
    }

    @ParameterizedTest
    @ValueSource(strings = {"smmu0", "dmar0"})
    void aDmaReachingAPageOnlyAnotherStreamsDomainMapsIsUnmappedMemory(String iommu) throws Exception {
        start();
        int sidA = sid(iommu);
        int sidB = sidA + 1;
        long a = attachedDomain(iommu, FlushMode.STRICT, null, sidA);
        long b = attachedDomain(iommu, FlushMode.STRICT, null, sidB);
        long bufA = alloc();
        long bufB = alloc();
        map(a, IOVA, bufA);
        map(b, IOVA, bufB);
        // A stray write into a's page table (as an injected PTE corruption would): IOVA + 4K now reaches b's
        // buffer, behind the IOMMU API's back, and with the matching invalidation so the device walks it.
        IommuDomain api = bus.machine.driverHost().owned(iommu).domainOf(sidA);
        api.pageTable().map(IOVA + 0x1000, bufB, 4096, org.iommuemu.core.pgtable.Prot.READ,
                new IotlbGather(g -> { }, bus.machine.driverHost().heap()));
        try (DmaSession devA = dma.attach("a", iommu, sidA); DmaSession devB = dma.attach("b", iommu, sidB)) {
            assertThat(devB.read(IOVA, 8).isOk()).isTrue();
            assertThat(devA.read(IOVA, 8).isOk()).isTrue();
            assertThat(reports().getReportsList()).as("both are what their drivers mapped").isEmpty();
            assertThat(devA.read(IOVA + 0x1000, 8).isOk()).isTrue();
        }
        assertThat(reports().getReportsList()).singleElement().satisfies(rep -> {
            assertThat(rep.getKind()).isEqualTo(SanitizerReportKind.SANITIZER_UNMAPPED_MEMORY);
            assertThat(rep.getStreamId()).isEqualTo(sidA);
            assertThat(rep.getIova()).isEqualTo(IOVA + 0x1000);
            assertThat(rep.getPa()).isEqualTo(bufB);
            assertThat(rep.getCauseSequence()).isZero();
            assertThat(rep.hasCauseFirst()).isFalse();
        });
    }

    @ParameterizedTest
    @ValueSource(strings = {"smmu0"})
    void domainsCreatedWhileTheSanitizerIsOffAreNotChecked(String iommu) throws Exception {
        start();
        assertThat(sanitizer(SanitizerReportsRequest.newBuilder().setEnable(false)).getEnabled()).isFalse();
        int sid = sid(iommu);
        long d = attachedDomain(iommu, FlushMode.STRICT, null, sid);
        long buf = alloc();
        sanitizer(SanitizerReportsRequest.newBuilder().setEnable(true));
        try (DmaSession dev = dma.attach("dev", iommu, sid)) {
            map(d, IOVA, buf);
            assertThat(dev.read(IOVA, 8).isOk()).isTrue();
            driver.freeBuffer(FreeBufferRequest.newBuilder().setPa(buf).build());
            assertThat(dev.read(IOVA, 8).isOk()).isTrue();
        }
        assertThat(reports().getReportsList()).as("the domain has no shadow").isEmpty();
        assertThat(bus.machine.sanitizer().isEnabled()).isTrue();
    }

    private org.iommuemu.proto.v1.SanitizerFeedReply feed(org.iommuemu.proto.v1.SanitizerEvent... events) {
        return driver.sanitizerFeed(org.iommuemu.proto.v1.SanitizerFeedRequest.newBuilder()
                .addAllEvents(List.of(events)).build());
    }

    private static org.iommuemu.proto.v1.SanitizerEvent.Builder ev() {
        return org.iommuemu.proto.v1.SanitizerEvent.newBuilder();
    }

    @org.junit.jupiter.api.Test
    void aFedDomainIsCheckedAsTheServicesOwnAndBadFeedsNameTheEvent() throws Exception {
        start();
        // the outside driver programs the unit itself; here the page table is the service's (its domain is the
        // one the device walks), and the feed says what an outside driver would have meant
        long d = attachedDomain("smmu0", FlushMode.STRICT, null, 0x20);
        long buf = alloc();
        long other = alloc();
        map(d, IOVA, buf);
        var r = feed(ev().setDomain(org.iommuemu.proto.v1.FeedDomain.newBuilder().setDomain(7).setName("outside"))
                        .build(),
                ev().setMapped(org.iommuemu.proto.v1.FeedRange.newBuilder().setDomain(7).setIova(IOVA + 0x1000)
                        .setPa(other).setSize(4096)).build(),
                ev().setAttached(org.iommuemu.proto.v1.FeedAttach.newBuilder().setIommu("smmu0").setStreamId(0x21)
                        .setDomain(7)).build());
        assertThat(r.getApplied()).isEqualTo(3);
        assertThat(r.getEnabled()).isTrue();
        // stream 0x21 reaches buf at IOVA although the feed says its driver mapped only IOVA + 4K, to another page:
        // the attachment below is the service's; the sanitizer judges by the fed domain
        driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(d).setIommu("smmu0").setStreamId(0x21)
                .build());
        feed(ev().setAttached(org.iommuemu.proto.v1.FeedAttach.newBuilder().setIommu("smmu0").setStreamId(0x21)
                .setDomain(7)).build());
        try (var dev = dma.attach("x", "smmu0", 0x21)) {
            assertThat(dev.read(IOVA, 8).isOk()).isTrue();
        }
        assertThat(reports().getReportsList()).singleElement().satisfies(rep -> {
            assertThat(rep.getKind()).isEqualTo(SanitizerReportKind.SANITIZER_UNMAPPED_MEMORY);
            assertThat(rep.getDomain()).isEqualTo("outside");
            assertThat(rep.getStreamId()).isEqualTo(0x21);
        });
        // bad feeds: named by event index, applied up to it
        assertThatThrownBy(() -> feed(ev().setFlushed(7).build(), ev().setMapped(org.iommuemu.proto.v1.FeedRange
                .newBuilder().setDomain(99).setIova(0).setPa(buf).setSize(4096)).build()))
                .isInstanceOf(io.grpc.StatusRuntimeException.class)
                .hasMessage("NOT_FOUND: events[1].mapped.domain: domain 99 was not created by the feed"
                        + " (1 event(s) applied)");
        assertThatThrownBy(() -> feed(ev().setDomain(org.iommuemu.proto.v1.FeedDomain.newBuilder().setDomain(7))
                .build())).hasMessageContaining("INVALID_ARGUMENT: events[0].domain.domain: id 7 is live already");
        assertThatThrownBy(() -> feed(ev().setMapped(org.iommuemu.proto.v1.FeedRange.newBuilder().setDomain(7)
                .setPa(buf).setSize(1L << 60)).build())).hasMessageContaining("OUT_OF_RANGE: events[0].mapped.size");
        assertThatThrownBy(() -> feed(ev().build())).hasMessageContaining("events[0].event is required");
        assertThatThrownBy(() -> feed(ev().setAttached(org.iommuemu.proto.v1.FeedAttach.newBuilder()
                .setIommu("nope").setDomain(7)).build())).hasMessageContaining("NOT_FOUND: events[0].attached.iommu");
        assertThat(feed(ev().setDestroyed(7).build()).getApplied()).isEqualTo(1);
        assertThat(feed(ev().setDomain(org.iommuemu.proto.v1.FeedDomain.newBuilder().setDomain(7)).build())
                .getApplied()).as("a destroyed id may be used again").isEqualTo(1);
    }
}
