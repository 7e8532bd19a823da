package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.bus.BusFixture.assertStatus;

import io.grpc.Status;
import org.iommuemu.proto.v1.StatsReply;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class TelemetryServiceTest {
    private BusFixture bus;
    private TelemetryGrpc.TelemetryBlockingStub telemetry;

    @BeforeEach
    void setUp() throws Exception {
        bus = new BusFixture();
        telemetry = TelemetryGrpc.newBlockingStub(bus.channel());
    }

    @AfterEach
    void tearDown() {
        bus.close();
    }

    @Test
    void statsNameEveryInstanceOrTheOnesAskedFor() {
        StatsReply all = telemetry.stats(StatsRequest.getDefaultInstance());
        assertThat(all.getIommusList()).extracting(s -> s.getIommu()).containsExactly("smmu0", "dmar0");
        StatsReply one = telemetry.stats(StatsRequest.newBuilder().addIommus("dmar0").build());
        assertThat(one.getIommusList()).extracting(s -> s.getIommu()).containsExactly("dmar0");
    }

    @Test
    void anUnknownInstanceIsNotFound() {
        assertStatus(() -> telemetry.stats(StatsRequest.newBuilder().addIommus("smmu7").build()),
                Status.Code.NOT_FOUND, "iommu 'smmu7' not found");
    }
}
