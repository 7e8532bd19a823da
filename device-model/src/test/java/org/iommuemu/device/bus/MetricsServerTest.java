package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.dma.Atc;
import org.iommuemu.dma.AtcListener;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AtsStats;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CacheStats;
import org.iommuemu.proto.v1.CodeCount;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.Prot;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.UnmapRequest;
import org.junit.jupiter.api.Test;

/** {@code /metrics} scraped over HTTP, compared with Telemetry.Stats. */
class MetricsServerTest {
    private static final long IOVA = 0x1000_0000L;

    /** Parses the text exposition format: "name{labels}" to value. */
    static Map<String, Double> parse(String body) {
        Map<String, Double> m = new HashMap<>();
        for (String line : body.split("\n")) {
            if (line.isBlank() || line.startsWith("#")) {
                continue;
            }
            int sp = line.lastIndexOf(' ');
            m.put(line.substring(0, sp), Double.parseDouble(line.substring(sp + 1)));
        }
        return m;
    }

    @Test
    void scrapedValuesEqualTelemetryStats() throws Exception {
        try (BusFixture bus = new BusFixture();
                MetricsServer metrics = MetricsServer.start(bus.machine, "127.0.0.1", 0);
                DmaClient dma = bus.client()) {
            DriverGrpc.DriverBlockingStub driver = DriverGrpc.newBlockingStub(bus.channel());
            long d = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                    .setStage(DomainStage.STAGE_1).setGranule(4096).build()).getDomain();
            long pa = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(64 << 10).build()).getPa();
            driver.map(MapRequest.newBuilder().setDomain(d).setIova(IOVA).setPa(pa).setSize(64 << 10)
                    .setProt(Prot.newBuilder().setRead(true).setWrite(true)).build());
            driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(d).setIommu("smmu0").setStreamId(0x20)
                    .build());
            try (DmaSession nic = dma.attach("nic0", "smmu0", 0x20)) {
                for (int i = 0; i < 10; i++) {
                    nic.read(IOVA + i * 4096L, 64);
                }
                nic.read(IOVA + (1 << 20), 8);
            }
            driver.unmap(UnmapRequest.newBuilder().setDomain(d).setIova(IOVA).setSize(64 << 10).build());

            HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + metrics.port() + "/metrics")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(r.statusCode()).isEqualTo(200);
            assertThat(r.headers().firstValue("content-type").orElse("")).startsWith("text/plain");
            assertThat(r.body()).contains("# TYPE iommu_emu_translations_total counter");
            Map<String, Double> m = parse(r.body());
            List<InstanceStats> stats = TelemetryGrpc.newBlockingStub(bus.channel())
                    .stats(StatsRequest.getDefaultInstance()).getIommusList();
            for (InstanceStats s : stats) {
                String i = "iommu=\"" + s.getIommu() + "\"";
                assertThat(m.get("iommu_emu_translations_total{" + i + "}")).isEqualTo((double) s.getTranslations());
                assertThat(m.get("iommu_emu_translation_faults_total{" + i + "}")).isEqualTo((double) s.getFaults());
                assertThat(m.get("iommu_emu_walks_total{" + i + "}")).isEqualTo((double) s.getWalks());
                assertThat(m.get("iommu_emu_interrupts_total{" + i + "}")).isEqualTo((double) s.getInterrupts());
                assertThat(m.get("iommu_emu_sim_time_seconds_total{" + i + "}"))
                        .isCloseTo(s.getSimTimeNs() / 1e9, org.assertj.core.data.Offset.offset(1e-12));
                for (CacheStats c : s.getCachesList()) {
                    String l = "{cache=\"" + c.getCache() + "\"," + i + "}";
                    assertThat(m.get("iommu_emu_cache_hits_total" + l)).as(l).isEqualTo((double) c.getHits());
                    assertThat(m.get("iommu_emu_cache_misses_total" + l)).isEqualTo((double) c.getMisses());
                    assertThat(m.get("iommu_emu_cache_capacity" + l)).isEqualTo((double) c.getCapacity());
                }
                for (CodeCount c : s.getCommandsList()) {
                    assertThat(m.get("iommu_emu_commands_total{" + i + ",opcode=\"" + c.getName() + "\"}"))
                            .as(c.getName()).isEqualTo((double) c.getCount());
                }
                for (CodeCount c : s.getEventsList()) {
                    assertThat(m.get("iommu_emu_events_total{" + i + ",type=\"" + c.getName() + "\"}"))
                            .isEqualTo((double) c.getCount());
                }
            }
            InstanceStats smmu = stats.get(0);
            assertThat(smmu.getTranslations()).as("the DMA above was counted").isEqualTo(11);
            assertThat(m.get("iommu_emu_commands_total{iommu=\"smmu0\",opcode=\"CMD_SYNC\"}")).isPositive();
            assertThat(m.get("iommu_emu_events_total{iommu=\"smmu0\",type=\"F_TRANSLATION\"}")).isEqualTo(1.0);
        }
    }

    @Test
    void atsCountersAreScrapedForTheInstancesThatImplementAts() throws Exception {
        MachineConfig config = MachineConfig.defaults().withIommus(List.of(
                new IommuSpec("smmu0", IommuType.SMMUV3, SmmuV3Config.builder().ats(true).atcTimeoutMs(5000).build()),
                new IommuSpec("plain", IommuType.SMMUV3, SmmuV3Config.builder().build())));
        try (BusFixture bus = new BusFixture(config);
                MetricsServer metrics = MetricsServer.start(bus.machine, "127.0.0.1", 0);
                DmaClient dma = bus.client()) {
            DriverGrpc.DriverBlockingStub driver = DriverGrpc.newBlockingStub(bus.channel());
            long d = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                    .setStage(DomainStage.STAGE_1).setGranule(4096).build()).getDomain();
            long pa = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(16 << 10).build()).getPa();
            driver.map(MapRequest.newBuilder().setDomain(d).setIova(IOVA).setPa(pa).setSize(16 << 10)
                    .setProt(Prot.newBuilder().setRead(true).setWrite(true)).build());
            driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(d).setIommu("smmu0").setStreamId(0x20)
                    .setAts(true).build());
            try (DmaSession dev = dma.attach("ats0", "smmu0", 0x20, false, true)) {
                Atc atc = new Atc(8);
                try (AtcListener listener = dev.listenForInvalidations(atc)) {
                    for (int i = 0; i < 8; i++) {
                        assertThat(dev.readThroughAtc(atc, IOVA + (i % 4) * 4096L, 64, DmaOptions.DEFAULT).isOk())
                                .isTrue();
                    }
                    driver.unmap(UnmapRequest.newBuilder().setDomain(d).setIova(IOVA).setSize(4096).build());
                }
            }
            Map<String, Double> m = parse(HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + metrics.port() + "/metrics")).build(),
                    HttpResponse.BodyHandlers.ofString()).body());
            List<InstanceStats> stats = TelemetryGrpc.newBlockingStub(bus.channel())
                    .stats(StatsRequest.getDefaultInstance()).getIommusList();
            AtsStats ats = stats.stream().filter(s -> s.getIommu().equals("smmu0")).findFirst().orElseThrow()
                    .getAts();
            assertThat(ats.getTranslationRequests()).as("four pages translated once each").isEqualTo(4);
            assertThat(ats.getTranslatedRequests()).isEqualTo(8);
            assertThat(ats.getInvalidationsSent()).isPositive();
            String l = "{iommu=\"smmu0\"}";
            assertThat(m.get("iommu_emu_ats_translation_requests_total" + l)).isEqualTo(4.0);
            assertThat(m.get("iommu_emu_ats_translated_requests_total" + l)).isEqualTo(8.0);
            assertThat(m.get("iommu_emu_ats_invalidations_sent_total" + l))
                    .isEqualTo((double) ats.getInvalidationsSent());
            assertThat(m.get("iommu_emu_ats_invalidations_completed_total" + l))
                    .isEqualTo((double) ats.getInvalidationsCompleted());
            assertThat(m.get("iommu_emu_ats_invalidations_timed_out_total" + l)).isEqualTo(0.0);
            assertThat(m).as("an instance without ATS has no ATS samples")
                    .doesNotContainKey("iommu_emu_ats_translation_requests_total{iommu=\"plain\"}");
        }
    }
}
