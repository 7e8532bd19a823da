package org.iommuemu.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Random;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.dma.Atc;
import org.iommuemu.dma.AtcListener;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.Prot;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.UnmapRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** ATS over real Netty on loopback: a device with an ATC translates, hits its ATC, and hears the unmap's ATC_INV. */
class AtsNettyIT {
    private static final long IOVA = 0x4000_0000L;
    private static final int SID = 0x42;

    private Machine machine;
    private BusServer server;
    private DmaClient client;

    @BeforeEach
    void setUp() throws Exception {
        machine = new Machine(MachineConfig.defaults().withIommus(List.of(new IommuSpec("smmu0", IommuType.SMMUV3,
                SmmuV3Config.builder().ats(true).build()))));
        server = BusServer.netty(machine, "127.0.0.1", 0).start();
        client = DmaClient.connect(server.target());
    }

    @AfterEach
    void tearDown() {
        client.close();
        server.close();
    }

    @Test
    void warmAtcThenUnmapInvalidatesTheDevicesEntryOverTcp() {
        DriverGrpc.DriverBlockingStub driver = DriverGrpc.newBlockingStub(client.channel());
        long d = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                .setStage(DomainStage.STAGE_1).setGranule(4096).build()).getDomain();
        long pa = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(8192).build()).getPa();
        driver.map(MapRequest.newBuilder().setDomain(d).setIova(IOVA).setPa(pa).setSize(8192)
                .setProt(Prot.newBuilder().setRead(true).setWrite(true)).build());
        driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(d).setIommu("smmu0").setStreamId(SID)
                .setAts(true).build());

        Atc atc = new Atc(16);
        try (DmaSession dev = client.attach("ats-nic", "smmu0", SID, false, true);
                AtcListener listener = dev.listenForInvalidations(atc)) {
            byte[] data = new byte[8192];
            new Random(9).nextBytes(data);
            assertThat(dev.writeThroughAtc(atc, IOVA, data, DmaOptions.DEFAULT).isOk()).isTrue();
            long translations = stats().getTranslations();
            DmaResult r = dev.readThroughAtc(atc, IOVA, data.length, DmaOptions.DEFAULT);
            assertThat(r.data().toByteArray()).isEqualTo(data);
            assertThat(stats().getTranslations()).as("served from the ATC").isEqualTo(translations);

            assertThat(driver.unmap(UnmapRequest.newBuilder().setDomain(d).setIova(IOVA).setSize(8192).build())
                    .getUnmapped()).isEqualTo(8192);
            assertThat(listener.received()).isEqualTo(1);
            assertThat(atc.size()).isZero();
            assertThat(dev.readThroughAtc(atc, IOVA, 8, DmaOptions.DEFAULT).fault().getKind())
                    .isEqualTo(FaultKind.PERMISSION);
            assertThat(stats().getAts().getInvalidationsCompleted()).isEqualTo(1);
        }
    }

    private org.iommuemu.proto.v1.InstanceStats stats() {
        return TelemetryGrpc.newBlockingStub(client.channel()).stats(StatsRequest.newBuilder().addIommus("smmu0")
                .build()).getIommus(0);
    }
}
