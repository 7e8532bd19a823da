package org.iommuemu.it.examples;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.bus.security.BusSecurity;
import org.iommuemu.device.bus.security.TokenStore;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.scenario.ScenarioFile;
import org.iommuemu.device.scenario.ScenarioRunner;
import org.iommuemu.proto.v1.DmaSessionInfo;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.SessionsReply;
import org.iommuemu.proto.v1.SessionsRequest;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The JavaScript device model (examples/js-copy-engine, node with @grpc/grpc-js) against a real server over Netty
 * on loopback: standalone (it plays the host too), with bearer tokens, and in device-only mode driven by a scenario
 * that starts it as an external device.
 */
class JsCopyEngineIT {
    @BeforeEach
    void node() {
        NodeExample.require();
    }

    private static InstanceStats smmu0(ManagedChannel ch) {
        return TelemetryGrpc.newBlockingStub(ch).stats(StatsRequest.newBuilder().addIommus("smmu0").build())
                .getIommus(0);
    }

    @Test
    void standaloneCopiesThroughATranslatedDomainAndTheServerSeesItsSession() throws Exception {
        try (BusServer server = BusServer.netty(new Machine(MachineConfig.defaults()), "127.0.0.1", 0).start()) {
            ManagedChannel ch = NettyChannelBuilder.forTarget(server.target()).usePlaintext().build();
            try {
                long before = smmu0(ch).getTranslations();
                NodeExample.Ran r = NodeExample.run("--target", server.target(), "--stream", "0x20");
                assertThat(r.exit()).as(r.text()).isZero();
                assertThat(r.text()).contains("connected to " + server.target() + ": iommu-emu",
                        "host: domain 1 (stage 1) on smmu0",
                        "attached 'js-copy' on smmu0 stream 0x20",
                        "copied 65536 bytes from iova 0x10000000 to 0x20000000: 16 chunks of 4096 bytes, 8 in flight,"
                                + " 32 Transfer requests",
                        "check: read back 65536 bytes at 0x20000000: they match the source",
                        "fault: a read at unmapped iova 0x30000000 came back as a fault reply: TRANSLATION at"
                                + " 0x30000000 (code 0x10",
                        "detached",
                        "host: the destination in guest memory (Machine.MemRead) holds the 65536-byte source pattern",
                        "PASS: every check held",
                        "host: cleaned up (6 of 6 steps)");
                // the server's view: translations on smmu0 (49 DMA, each at least one translated chunk), and the
                // session, ended by its Detach, with the same counts
                InstanceStats after = smmu0(ch);
                assertThat(after.getTranslations() - before).isGreaterThanOrEqualTo(49);
                SessionsReply s = MachineGrpc.newBlockingStub(ch).sessions(SessionsRequest.getDefaultInstance());
                assertThat(s.getLiveList()).as("released").isEmpty();
                assertThat(s.getEndedList()).hasSize(1);
                DmaSessionInfo js = s.getEnded(0);
                assertThat(js.getName()).isEqualTo("js-copy");
                assertThat(js.getStreamId()).isEqualTo(0x20);
                assertThat(js.getEndReason()).isEqualTo("detached");
                assertThat(js.getReads()).isEqualTo(33);
                assertThat(js.getWrites()).isEqualTo(16);
                assertThat(js.getBytes()).isEqualTo(3 * 65536);
                assertThat(js.getFaults()).isEqualTo(1);
                assertThat(server.holdings().sessions()).isZero();
                assertThat(server.holdings().streamIds()).isZero();
            } finally {
                ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    @Test
    void itSendsTheBearerTokenOfItsTokenFile(@TempDir Path dir) throws Exception {
        String token = TokenStore.newToken();
        TokenStore store = TokenStore.parse("host " + token + " name=harness\n", "tokens");
        Path tokenFile = dir.resolve("host.token");
        Files.writeString(tokenFile, token + "\n");
        BusSecurity sec = BusSecurity.none().withTokens(store);
        try (BusServer server = BusServer.netty(new Machine(MachineConfig.defaults()), "127.0.0.1", 0, null, sec)
                .start()) {
            NodeExample.Ran without = NodeExample.run("--target", server.target());
            assertThat(without.exit()).as(without.text()).isEqualTo(1);
            assertThat(without.text()).contains("FAIL: Describe: UNAUTHENTICATED: no bearer token");
            NodeExample.Ran with = NodeExample.run("--target", server.target(), "--token-file", tokenFile.toString());
            assertThat(with.exit()).as(with.text()).isZero();
            assertThat(with.text()).contains("PASS: every check held");
        }
    }

    @Test
    void aScenarioStartsItAsAnExternalDeviceAndChecksWhatItDid() {
        Path file = NodeExample.root().resolve("scenarios").resolve("external").resolve("js-copy-engine.yaml");
        StringWriter out = new StringWriter();
        ScenarioRunner.Result r = ScenarioRunner.run(ScenarioFile.read(file), new PrintWriter(out, true),
                ScenarioRunner.Options.inProcess());
        assertThat(r.failures()).as(out.toString()).isEmpty();
        assertThat(r.expectsPassed()).isEqualTo(5);
        assertThat(out.toString()).contains("over Netty on loopback",
                "external device js-copy: started node ../../examples/js-copy-engine/index.js --target 127.0.0.1:",
                "external device js-copy attached: session 'js-copy'",
                "PASS expect memory dst 64 KiB equals seed 42",
                "PASS expect device_counter js-copy dma_ops = 49 (is 49)",
                "external device js-copy: its command exited with status 0",
                "scenario passed");
    }
}
