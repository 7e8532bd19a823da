package org.iommuemu.device.bus.security;

import io.grpc.InsecureServerCredentials;
import io.grpc.ServerCredentials;
import io.grpc.TlsServerCredentials;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * How a bus server protects itself: the tokens it accepts (null: authentication off) and the transport credentials
 * of its TCP listener (plaintext, or TLS with an optional client-certificate check).
 *
 * @param tokens      the accepted bearer tokens, or null for no authentication
 * @param credentials the listener's transport credentials (ignored by the in-process transport)
 * @param tls         whether {@code credentials} are TLS
 * @param mutualTls   whether clients must present a certificate signed by the client CA
 */
public record BusSecurity(TokenStore tokens, ServerCredentials credentials, boolean tls, boolean mutualTls) {
    /** No authentication, plaintext: the default on loopback. */
    public static BusSecurity none() {
        return new BusSecurity(null, InsecureServerCredentials.create(), false, false);
    }

    /** These settings with {@code store} as the accepted tokens (null turns authentication off). */
    public BusSecurity withTokens(TokenStore store) {
        return new BusSecurity(store, credentials, tls, mutualTls);
    }

    /**
     * These settings with TLS: the server presents the PEM certificate chain {@code cert} and the PEM PKCS#8
     * private key {@code key}; with {@code clientCa} (PEM, may be null) every client must present a certificate
     * that CA signed (mutual TLS).
     *
     * @throws IllegalArgumentException naming the flag whose file cannot be read
     */
    public BusSecurity withTls(Path cert, Path key, Path clientCa) {
        try {
            TlsServerCredentials.Builder b = TlsServerCredentials.newBuilder()
                    .keyManager(readable(cert, "--tls-cert").toFile(), readable(key, "--tls-key").toFile());
            if (clientCa != null) {
                b.trustManager(readable(clientCa, "--tls-client-ca").toFile())
                        .clientAuth(TlsServerCredentials.ClientAuth.REQUIRE);
            }
            return new BusSecurity(tokens, b.build(), true, clientCa != null);
        } catch (IOException e) {
            throw new IllegalArgumentException("TLS files: " + e.getMessage());
        }
    }

    private static Path readable(Path p, String flag) {
        if (!Files.isReadable(p) || Files.isDirectory(p)) {
            throw new IllegalArgumentException(flag + " " + p + ": not a readable file");
        }
        return p;
    }

    /** Whether clients must authenticate. */
    public boolean authenticates() {
        return tokens != null;
    }
}
