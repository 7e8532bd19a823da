package org.iommuemu.device.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.bus.security.BusSecurity;
import org.iommuemu.device.bus.security.Role;
import org.iommuemu.device.bus.security.SelfSigned;
import org.iommuemu.device.bus.security.TokenStore;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.ClientSecurity;
import org.iommuemu.dma.DmaClient;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The security flags of {@code serve} and {@code run}: the bind rule, generated token files, tokens and TLS. */
class ServeSecurityTest {
    private final CliRun cli = new CliRun();

    private int run(String... args) {
        return cli.run(args);
    }

    @Test
    void aNonLoopbackBindWithoutAuthenticationIsRefusedWithOneLine() {
        assertThat(run("serve", "--bind", "0.0.0.0", "--port", "0")).isEqualTo(2);
        assertThat(cli.err()).startsWith("iommu-emu: --bind 0.0.0.0 is not a loopback address")
                .contains("--tokens", "--insecure-no-auth");
        assertThat(cli.err().strip().lines()).hasSize(1);
    }

    @Test
    void insecureNoAuthServesWithAWarning(@TempDir Path dir) {
        // a missing --inject file stops serve right after the bind rule, before it listens
        assertThat(run("serve", "--bind", "0.0.0.0", "--port", "0", "--insecure-no-auth",
                "--inject", dir.resolve("missing.yaml").toString())).isEqualTo(2);
        assertThat(cli.err()).contains("warning: serving on 0.0.0.0 without authentication")
                .contains("missing.yaml").doesNotContain("is not a loopback address");
    }

    @Test
    void contradictoryFlagsAreRefused(@TempDir Path dir) {
        Path t = dir.resolve("t");
        assertThat(run("serve", "--tokens", t.toString(), "--generate-tokens", t.toString())).isEqualTo(2);
        assertThat(cli.err()).contains("exclude each other");
        assertThat(run("serve", "--tls-cert", t.toString())).isEqualTo(2);
        assertThat(cli.err()).contains("--tls-cert and --tls-key go together");
        assertThat(run("serve", "--device-token", "smmu0")).isEqualTo(2);
        assertThat(cli.err()).contains("go with --generate-tokens");
        assertThat(run("serve", "--insecure-no-auth", "--tokens", t.toString())).isEqualTo(2);
        assertThat(cli.err()).contains("contradicts");
        assertThat(run("serve", "--tokens", t.toString(), "--port", "0")).isEqualTo(2);
        assertThat(cli.err()).contains("--tokens " + t + ": cannot read it");
    }

    @Test
    void generatedTokensAreOwnerOnlyAndNotOverwrittenUnlessAsked(@TempDir Path dir) throws Exception {
        Path tokens = dir.resolve("tokens");
        Path missing = dir.resolve("none.pem");
        // a TLS file that does not exist stops serve after the tokens are written, before it listens
        String[] args = {"serve", "--port", "0", "--generate-tokens", tokens.toString(), "--device-token",
            "smmu0:16-31", "--device-token", "dmar0", "--tls-cert", missing.toString(), "--tls-key",
            missing.toString()};
        assertThat(run(args)).isEqualTo(2);
        assertThat(cli.err()).contains("--tls-cert " + missing + ": not a readable file");
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(tokens))).isEqualTo("rw-------");
        TokenStore store = TokenStore.read(tokens);
        assertThat(store.principals()).extracting(p -> p.role() + " " + p.binding()).containsExactly(
                "HOST any IOMMU and stream id", "DEVICE smmu0 stream ids 16-31", "DEVICE dmar0 (any stream id)");
        String before = Files.readString(tokens);
        assertThat(before.lines().filter(l -> l.startsWith("host ") || l.startsWith("device ")))
                .allSatisfy(l -> assertThat(cli.err() + cli.out()).doesNotContain(l.split(" ")[1]));

        assertThat(run(args)).isEqualTo(2);
        assertThat(cli.err()).contains("the file exists; give --overwrite-tokens");
        assertThat(Files.readString(tokens)).isEqualTo(before);

        String[] again = java.util.Arrays.copyOf(args, args.length + 1);
        again[args.length] = "--overwrite-tokens";
        assertThat(run(again)).isEqualTo(2);
        assertThat(Files.readString(tokens)).isNotEqualTo(before);
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(tokens))).isEqualTo("rw-------");

        assertThat(run("serve", "--port", "0", "--generate-tokens", dir.resolve("t2").toString(), "--device-token",
                "smmu9:1")).isEqualTo(2);
        assertThat(cli.err()).contains("bound to iommu 'smmu9', which this machine does not have");
    }

    @Test
    void runReachesAServerWithTokensAndTlsThroughItsFlags(@TempDir Path dir) throws Exception {
        SelfSigned cert = SelfSigned.create(dir, "server");
        Path tokens = dir.resolve("tokens");
        String host = TokenStore.newToken();
        String device = TokenStore.newToken();
        Files.writeString(tokens, "host " + host + "\ndevice " + device + " iommu=smmu0\n");
        Path hostToken = dir.resolve("host.token");
        Files.writeString(hostToken, host + "\n");
        Path deviceToken = dir.resolve("device.token");
        Files.writeString(deviceToken, "device " + device + "\n");
        Path scenario = dir.resolve("s.yaml");
        Files.writeString(scenario, """
                domains:
                  - {name: d, iommus: [smmu0]}
                buffers:
                  - {name: buf, size: 8KiB}
                devices:
                  - {name: nic, iommu: smmu0, stream: 0x10, domain: d}
                steps:
                  - map: {domain: d, iova: 0x1000_0000, buffer: buf, size: 8KiB, prot: rw}
                  - dma: {device: nic, op: write, iova: 0x1000_0000, size: 4KiB, data: {pattern: 0xA5}}
                  - expect: {memory: {buffer: buf, size: 4KiB, equals: {pattern: 0xA5}}}
                """);
        BusSecurity security = BusSecurity.none().withTokens(TokenStore.read(tokens))
                .withTls(cert.cert(), cert.key(), null);
        try (BusServer server = BusServer.netty(new Machine(MachineConfig.defaults()), "127.0.0.1", 0, null,
                security).start()) {
            String target = "127.0.0.1:" + server.port();
            // the device token attaches over TLS (this first handshake also warms JSSE up: on a loaded machine it
            // can take seconds, and run gives a server 10 s to answer)
            try (DmaClient c = DmaClient.connect(target, ClientSecurity.NONE.withTls(cert.cert())
                    .withTokenFile(deviceToken))) {
                assertThat(c.attach("nic", "smmu0", 0x10).streamId()).isEqualTo(0x10);
            }
            assertThat(run("run", scenario.toString(), "--target", target, "--token-file", hostToken.toString(),
                    "--tls-ca", cert.cert().toString())).as(cli.out() + "\n" + cli.err()).isZero();
            assertThat(cli.out()).contains("scenario passed");

            assertThat(run("run", scenario.toString(), "--target", target, "--tls-ca", cert.cert().toString()))
                    .isEqualTo(2);
            assertThat(cli.err()).contains("UNAUTHENTICATED", "no bearer token");
            assertThat(run("run", scenario.toString(), "--target", target, "--token-file",
                    deviceToken.toString(), "--tls-ca", cert.cert().toString())).isEqualTo(2);
            assertThat(cli.err()).contains("PERMISSION_DENIED", "may not call iommuemu.v1.Machine")
                    .doesNotContain(device);
            assertThat(run("run", scenario.toString(), "--target", target, "--token-file", hostToken.toString()))
                    .as("plaintext to a TLS server").isEqualTo(2);
            assertThat(cli.err()).contains("UNAVAILABLE").doesNotContain(host);
        }
        assertThat(run("run", scenario.toString(), "--token-file", hostToken.toString())).isEqualTo(2);
        assertThat(cli.err()).contains("are for a server named by --target");
        assertThat(Role.DEVICE.allows("iommuemu.v1.Dma")).isTrue();
    }
}
