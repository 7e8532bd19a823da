package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.dma.Atc;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AtcInvalidation;
import org.iommuemu.proto.v1.AtcInvalidationCompletion;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DetachDeviceRequest;
import org.iommuemu.proto.v1.DmaGrpc;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.Prot;
import org.iommuemu.proto.v1.TranslateReply;
import org.iommuemu.proto.v1.UnmapRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * ATS with substreams end to end on the in-process bus: an ATS device translating through a substream (PASID)
 * domain of its stream and through the whole-stream domain, with a device-side {@link Atc} fed by a recording
 * {@code AtcInvalidations} stream. An unmap in the substream's domain reaches the device as an invalidation of that
 * substream and range only; one in the whole-stream domain (SMMUv3 ATC_INV with SSV=0, a PCIe Invalidate Request
 * without PASID) drops the range whatever substream cached it; detaching a substream drops all of its entries.
 */
class AtsSubstreamTest {
    private static final int SID = 0x30;
    private static final int SSID = 5;
    private static final long IOVA = 0x2000_0000L;
    private static final Prot RW = Prot.newBuilder().setRead(true).setWrite(true).build();
    private static final DmaOptions PASID = DmaOptions.DEFAULT.withSubstream(SSID);

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
    }

    /** A stage-1 domain on smmu0 mapping two pages at IOVA to a fresh buffer. */
    private long domain() {
        long d = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0").setStage(DomainStage.STAGE_1)
                .setGranule(4096).build()).getDomain();
        long pa = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(8192).build()).getPa();
        driver.map(MapRequest.newBuilder().setDomain(d).setIova(IOVA).setPa(pa).setSize(8192).setProt(RW).build());
        return d;
    }

    /** A substream domain attached first, then the whole-stream domain with ATS: {whole, substream}. */
    private long[] atsStreamWithSubstream() {
        long pasid = domain();
        driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(pasid).setIommu("smmu0").setStreamId(SID)
                .setSubstreamId(SSID).build());
        long whole = domain();
        driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(whole).setIommu("smmu0").setStreamId(SID)
                .setAts(true).build());
        return new long[] {whole, pasid};
    }

    private void unmap(long d, long iova) {
        assertThat(driver.unmap(UnmapRequest.newBuilder().setDomain(d).setIova(iova).setSize(4096).build())
                .getUnmapped()).isEqualTo(4096);
    }

    /** The device's side of AtcInvalidations: applies each invalidation to its ATC, records it and completes it. */
    private static final class Recorder {
        final List<AtcInvalidation> got = new CopyOnWriteArrayList<>();
        private final StreamObserver<AtcInvalidationCompletion> out;

        volatile Throwable error;

        /** Opens the stream on {@code channel}, the connection that attached {@code session}. */
        Recorder(io.grpc.Channel channel, long session, Atc atc) {
            Object lock = new Object();
            StreamObserver<AtcInvalidationCompletion>[] self = new StreamObserver[1];
            out = DmaGrpc.newStub(channel).atcInvalidations(new StreamObserver<>() {
                @Override
                public void onNext(AtcInvalidation inv) {
                    atc.invalidate(inv);
                    got.add(inv);
                    synchronized (lock) {
                        self[0].onNext(AtcInvalidationCompletion.newBuilder().setSessionId(session)
                                .setId(inv.getId()).build());
                    }
                }

                @Override
                public void onError(Throwable t) {
                    error = t;
                }

                @Override
                public void onCompleted() {
                }
            });
            synchronized (lock) {
                self[0] = out;
                out.onNext(AtcInvalidationCompletion.newBuilder().setSessionId(session).build());
            }
        }
    }

    private static boolean cached(Atc atc, int ssid, long iova) {
        return atc.lookup(ssid, iova, false) != Atc.MISS;
    }

    @Test
    void anUnmapInTheSubstreamsDomainInvalidatesThatSubstreamsRangeAndTheDeviceMustRetranslate() throws Exception {
        start();
        long[] d = atsStreamWithSubstream();
        Atc atc = new Atc(16);
        io.grpc.ManagedChannel ch = bus.channel();
        try (DmaSession dev = DmaClient.over(ch).attach("ats-pasid", "smmu0", SID, true, true)) {
            Recorder rec = new Recorder(ch, dev.id(), atc);
            assertThat(dev.readThroughAtc(atc, IOVA, 8192, PASID).isOk()).isTrue();
            assertThat(dev.readThroughAtc(atc, IOVA, 8192, DmaOptions.DEFAULT).isOk()).isTrue();
            assertThat(atc.size()).as("two pages for the substream, two without").isEqualTo(4);

            unmap(d[1], IOVA + 4096);

            assertThat(rec.error).isNull();
            assertThat(rec.got).singleElement().satisfies(inv -> {
                assertThat(inv.hasSubstreamId()).as("SSV=1").isTrue();
                assertThat(inv.getSubstreamId()).isEqualTo(SSID);
                assertThat(inv.getGlobal()).isFalse();
                assertThat(inv.getAddress()).isEqualTo(IOVA + 4096);
                assertThat(inv.getSize()).isEqualTo(4096);
            });
            assertThat(cached(atc, SSID, IOVA + 4096)).as("the unmapped page's entry is gone").isFalse();
            assertThat(cached(atc, SSID, IOVA)).as("the substream's other page stays").isTrue();
            assertThat(cached(atc, -1, IOVA + 4096)).as("the whole stream's entry at that iova stays").isTrue();

            TranslateReply again = dev.translate(IOVA + 4096, false, PASID);
            assertThat(again.hasFault()).isFalse();
            assertThat(again.getPermissions().getRead()).as("re-translated: no access").isFalse();
            DmaResult r = dev.readThroughAtc(atc, IOVA + 4096, 8, PASID);
            assertThat(r.isOk()).isFalse();
            assertThat(r.fault().getKind()).isEqualTo(FaultKind.PERMISSION);
            assertThat(dev.readThroughAtc(atc, IOVA + 4096, 8, DmaOptions.DEFAULT).isOk())
                    .as("the whole stream's page is still mapped").isTrue();
        }
    }

    @Test
    void anUnmapInTheWholeStreamDomainDropsTheRangeForEverySubstream() throws Exception {
        start();
        long[] d = atsStreamWithSubstream();
        Atc atc = new Atc(16);
        io.grpc.ManagedChannel ch = bus.channel();
        try (DmaSession dev = DmaClient.over(ch).attach("ats-pasid", "smmu0", SID, true, true)) {
            Recorder rec = new Recorder(ch, dev.id(), atc);
            assertThat(dev.readThroughAtc(atc, IOVA, 8192, PASID).isOk()).isTrue();
            assertThat(dev.readThroughAtc(atc, IOVA, 8192, DmaOptions.DEFAULT).isOk()).isTrue();

            unmap(d[0], IOVA);

            assertThat(rec.error).isNull();
            assertThat(rec.got).singleElement().satisfies(inv -> {
                assertThat(inv.hasSubstreamId()).as("SSV=0").isFalse();
                assertThat(inv.getAddress()).isEqualTo(IOVA);
                assertThat(inv.getSize()).isEqualTo(4096);
            });
            assertThat(cached(atc, -1, IOVA)).isFalse();
            assertThat(cached(atc, SSID, IOVA)).as("an invalidation without PASID reaches PASID entries too")
                    .isFalse();
            assertThat(cached(atc, SSID, IOVA + 4096)).as("outside the range").isTrue();
            assertThat(dev.readThroughAtc(atc, IOVA, 8, PASID).isOk()).as("re-translated: still mapped there")
                    .isTrue();
        }
    }

    @Test
    void detachingTheSubstreamDropsAllItsEntries() throws Exception {
        start();
        atsStreamWithSubstream();
        Atc atc = new Atc(16);
        io.grpc.ManagedChannel ch = bus.channel();
        try (DmaSession dev = DmaClient.over(ch).attach("ats-pasid", "smmu0", SID, true, true)) {
            Recorder rec = new Recorder(ch, dev.id(), atc);
            assertThat(dev.readThroughAtc(atc, IOVA, 8192, PASID).isOk()).isTrue();
            assertThat(dev.readThroughAtc(atc, IOVA, 8192, DmaOptions.DEFAULT).isOk()).isTrue();

            driver.detachDevice(DetachDeviceRequest.newBuilder().setIommu("smmu0").setStreamId(SID)
                    .setSubstreamId(SSID).build());

            assertThat(rec.error).isNull();
            assertThat(rec.got).singleElement().satisfies(inv -> {
                assertThat(inv.getSubstreamId()).isEqualTo(SSID);
                assertThat(inv.getSize()).as("the whole space").isZero();
            });
            assertThat(cached(atc, SSID, IOVA)).isFalse();
            assertThat(cached(atc, SSID, IOVA + 4096)).isFalse();
            assertThat(cached(atc, -1, IOVA)).as("the whole stream's entries stay").isTrue();
            assertThat(dev.readThroughAtc(atc, IOVA, 8, PASID).isOk()).as("the substream has no CD any more")
                    .isFalse();
        }
    }
}
