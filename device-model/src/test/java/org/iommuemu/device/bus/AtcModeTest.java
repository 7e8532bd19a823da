package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.dma.Atc;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.Transfer;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.Prot;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A session in ATC mode ({@link DmaSession#useAtc}): its plain reads and writes and its pipelined {@link Transfer}
 * requests go through the ATC as translated requests, so masters written against the plain API do ATS unchanged.
 */
class AtcModeTest {
    private static final int SID = 0x40;
    private static final long IOVA = 0x3000_0000L;

    private BusFixture bus;
    private DmaClient dma;
    private TelemetryGrpc.TelemetryBlockingStub telemetry;

    @BeforeEach
    void start() throws Exception {
        bus = new BusFixture(MachineConfig.defaults().withIommus(List.of(new IommuSpec("smmu0", IommuType.SMMUV3,
                SmmuV3Config.builder().ats(true).build()))));
        DriverGrpc.DriverBlockingStub driver = DriverGrpc.newBlockingStub(bus.channel());
        telemetry = TelemetryGrpc.newBlockingStub(bus.channel());
        dma = bus.client();
        long d = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0").setStage(DomainStage.STAGE_1)
                .setGranule(4096).build()).getDomain();
        long pa = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(4 * 4096).build()).getPa();
        driver.map(MapRequest.newBuilder().setDomain(d).setIova(IOVA).setPa(pa).setSize(3 * 4096L)
                .setProt(Prot.newBuilder().setRead(true).setWrite(true)).build()); // the fourth page stays unmapped
        driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(d).setIommu("smmu0").setStreamId(SID)
                .setAts(true).build());
    }

    @AfterEach
    void stop() {
        bus.close();
    }

    private InstanceStats stats() {
        return telemetry.stats(StatsRequest.newBuilder().addIommus("smmu0").build()).getIommus(0);
    }

    private static ByteString random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return ByteString.copyFrom(b);
    }

    @Test
    void onlyASessionAttachedWithAtsHasAnAtcToUse() {
        try (DmaSession plain = dma.attach("plain", "smmu0", SID + 1)) {
            assertThat(plain.ats()).isFalse();
            assertThatThrownBy(() -> plain.useAtc(new Atc(4))).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("was not attached with ats = true");
            plain.useAtc(null);
            assertThat(plain.atc()).isNull();
        }
    }

    @Test
    void plainReadsAndWritesOfASessionInAtcModeAreTranslatedRequests() {
        try (DmaSession dev = dma.attach("ats", "smmu0", SID, false, true)) {
            Atc atc = new Atc(8);
            dev.useAtc(atc);
            ByteString data = random(6000, 3);
            InstanceStats before = stats();
            assertThat(dev.write(IOVA + 100, data, DmaOptions.DEFAULT).isOk()).isTrue();
            DmaResult r = dev.read(IOVA + 100, data.size(), DmaOptions.DEFAULT);
            assertThat(r.isOk()).isTrue();
            assertThat(r.data()).isEqualTo(data);
            InstanceStats after = stats();
            assertThat(after.getAts().getTranslationRequests() - before.getAts().getTranslationRequests())
                    .as("two pages, translated for write (which grants read too)").isEqualTo(2);
            assertThat(after.getAts().getTranslatedRequests() - before.getAts().getTranslatedRequests())
                    .as("each access split at the page boundary").isEqualTo(4);
            assertThat(atc.misses()).isEqualTo(2);
            assertThat(atc.hits()).as("one lookup per piece: the write's two missed, the read's two hit").isEqualTo(2);
            assertThat(dev.atcTranslations()).isEqualTo(2);
            assertThat(dev.atcRefusals()).isZero();

            DmaResult past = dev.read(IOVA + 3 * 4096 - 16, 32, DmaOptions.DEFAULT);
            assertThat(past.fault().getKind()).as("the fourth page is not mapped: no access")
                    .isEqualTo(FaultKind.PERMISSION);
            assertThat(past.fault().getAddress()).isEqualTo(IOVA + 3 * 4096);
            assertThat(past.fault().getBytesDone()).isEqualTo(16);
            assertThat(past.data().size()).as("the bytes before the fault").isEqualTo(16);
            assertThat(dev.atcRefusals()).isEqualTo(1);
        }
    }

    @Test
    void aTransferOfASessionInAtcModePipelinesTranslatedRequestsAndSplitsAtRegions() throws Exception {
        try (DmaSession dev = dma.attach("ats", "smmu0", SID, false, true)) {
            Atc atc = new Atc(8);
            dev.useAtc(atc);
            ByteString data = random(3 * 4096, 5);
            InstanceStats before = stats();
            try (Transfer t = dev.openTransfer(4)) {
                CompletableFuture<DmaResult> w = t.write(IOVA, data);
                CompletableFuture<DmaResult> inPage = t.read(IOVA + 4096 + 8, 64);
                CompletableFuture<DmaResult> across = t.read(IOVA + 4000, 4096 + 200);
                CompletableFuture<DmaResult> past = t.read(IOVA + 2 * 4096 + 4000, 200);
                assertThat(w.get(10, TimeUnit.SECONDS).isOk()).isTrue();
                assertThat(inPage.get(10, TimeUnit.SECONDS).data()).isEqualTo(data.substring(4096 + 8, 4096 + 72));
                assertThat(across.get(10, TimeUnit.SECONDS).data()).isEqualTo(data.substring(4000, 4000 + 4296));
                DmaResult p = past.get(10, TimeUnit.SECONDS);
                assertThat(p.fault().getKind()).isEqualTo(FaultKind.PERMISSION);
                assertThat(p.fault().getAddress()).isEqualTo(IOVA + 3 * 4096);
                assertThat(p.fault().getBytesDone()).isEqualTo(96);
                assertThat(p.data()).isEqualTo(data.substring(2 * 4096 + 4000));
            }
            InstanceStats after = stats();
            assertThat(after.getAts().getTranslatedRequests() - before.getAts().getTranslatedRequests())
                    .as("write: 3 pages, in page: 1, across: 3 pages, past: 1 before the unmapped page").isEqualTo(8);
            assertThat(after.getTranslations() - before.getTranslations())
                    .as("only the translation requests reach the IOTLB (three pages, and the unmapped one)")
                    .isLessThanOrEqualTo(2 * 4);
            assertThat(dev.atcTranslations()).isEqualTo(4);
        }
    }
}
