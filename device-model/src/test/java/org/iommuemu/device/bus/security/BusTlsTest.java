package org.iommuemu.device.bus.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.file.Path;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.ClientSecurity;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaSession;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * TLS and mutual TLS over Netty on loopback, with certificates keytool makes in the test: a client that trusts the
 * server's certificate connects, one that does not (or speaks plaintext) fails, and with a client CA a client
 * without a certificate is refused. Tokens and TLS together: DmaClient sends its token over the TLS connection.
 */
class BusTlsTest {
    private static final String DEV = "device-token-over-tls-0123456789";
    @TempDir
    static Path dir;
    static SelfSigned server;
    static SelfSigned client;
    static SelfSigned stranger;

    private BusServer bus;
    private long ram;

    @BeforeAll
    static void certificates() throws Exception {
        server = SelfSigned.create(dir, "server");
        client = SelfSigned.create(dir, "client");
        stranger = SelfSigned.create(dir, "stranger");
    }

    @AfterEach
    void stop() {
        if (bus != null) {
            bus.close();
        }
    }

    private String start(BusSecurity security) throws Exception {
        Machine m = new Machine(MachineConfig.defaults());
        ram = m.memory().regions().get(0).base();
        bus = BusServer.netty(m, "127.0.0.1", 0, null, security).start();
        return "127.0.0.1:" + bus.port();
    }

    /** Attaches, writes and reads back over a client with {@code sec}; closes it. */
    private void roundTrip(String target, ClientSecurity sec) {
        try (DmaClient c = DmaClient.connect(target, sec); DmaSession s = c.attach("nic", "smmu0", 7)) {
            assertThat(s.write(ram + 0x40, new byte[] {1, 2, 3}).isOk()).isTrue();
            assertThat(s.read(ram + 0x40, 3).data().toByteArray()).containsExactly(1, 2, 3);
        }
    }

    private static void assertFailsToConnect(String target, ClientSecurity sec) {
        try (DmaClient c = DmaClient.connect(target, sec)) {
            assertThatThrownBy(() -> c.attach("nic", "smmu0", 7))
                    .isInstanceOfSatisfying(StatusRuntimeException.class,
                            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE));
        }
    }

    @Test
    void aClientThatTrustsTheServerCertificateConnectsAndOthersDoNot() throws Exception {
        String target = start(BusSecurity.none().withTls(server.cert(), server.key(), null));
        roundTrip(target, ClientSecurity.NONE.withTls(server.cert()));
        assertFailsToConnect(target, ClientSecurity.NONE.withTls(stranger.cert()));
        assertFailsToConnect(target, ClientSecurity.NONE);
        assertThat(bus.liveSessions()).isZero();
    }

    @Test
    void mutualTlsRefusesAClientWithoutACertificateTheCaSigned() throws Exception {
        String target = start(BusSecurity.none().withTls(server.cert(), server.key(), client.cert()));
        ClientSecurity trusting = ClientSecurity.NONE.withTls(server.cert());
        assertFailsToConnect(target, trusting);
        assertFailsToConnect(target, trusting.withClientCertificate(stranger.cert(), stranger.key()));
        roundTrip(target, trusting.withClientCertificate(client.cert(), client.key()));
    }

    @Test
    void tokensTravelOverTls() throws Exception {
        TokenStore tokens = TokenStore.parse("device " + DEV + " iommu=smmu0 streams=7\n", "t");
        String target = start(BusSecurity.none().withTokens(tokens).withTls(server.cert(), server.key(), null));
        ClientSecurity tls = ClientSecurity.NONE.withTls(server.cert());
        roundTrip(target, tls.withToken(DEV));
        try (DmaClient c = DmaClient.connect(target, tls)) {
            assertThatThrownBy(() -> c.attach("nic", "smmu0", 7)).isInstanceOfSatisfying(
                    StatusRuntimeException.class,
                    e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED));
        }
        try (DmaClient c = DmaClient.connect(target, tls.withToken(DEV))) {
            assertThatThrownBy(() -> c.attach("nic", "smmu0", 8)).isInstanceOfSatisfying(
                    StatusRuntimeException.class,
                    e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.PERMISSION_DENIED));
        }
    }
}
