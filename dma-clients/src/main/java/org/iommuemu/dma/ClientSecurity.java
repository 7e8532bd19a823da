package org.iommuemu.dma;

import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptor;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.TlsChannelCredentials;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * How a bus client proves who it is and protects the connection: a bearer token sent as
 * {@code authorization: Bearer TOKEN} metadata on every call, and TLS (the CA that signed the server's certificate,
 * and for mutual TLS the client's own certificate and key, all PEM). Immutable; {@link #NONE} is plaintext without a
 * token, as a server on loopback without authentication expects.
 *
 * <pre>{@code
 * ClientSecurity sec = ClientSecurity.NONE.withTokenFile(Path.of("device.token")).withTls(Path.of("ca.pem"));
 * try (DmaClient client = DmaClient.connect("bus.example:7400", sec)) { ... }
 * }</pre>
 */
public final class ClientSecurity {
    /** Plaintext, no token. */
    public static final ClientSecurity NONE = new ClientSecurity(null, null, null, null);

    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    private final String token;
    private final Path trustedCa;
    private final Path certificate;
    private final Path privateKey;

    private ClientSecurity(String token, Path trustedCa, Path certificate, Path privateKey) {
        this.token = token;
        this.trustedCa = trustedCa;
        this.certificate = certificate;
        this.privateKey = privateKey;
    }

    /** These settings sending {@code bearerToken} on every call. */
    public ClientSecurity withToken(String bearerToken) {
        if (bearerToken == null || bearerToken.isBlank() || !bearerToken.strip().chars().allMatch(c -> c > ' '
                && c < 127)) {
            throw new IllegalArgumentException("a bearer token is printable ASCII without spaces");
        }
        return new ClientSecurity(bearerToken.strip(), trustedCa, certificate, privateKey);
    }

    /**
     * These settings sending the token {@code file} holds: its first line that is neither blank nor a {@code #}
     * comment, either the token alone or a line of a server's token file ({@code ROLE TOKEN ...}, whose second
     * field is the token).
     *
     * @throws IllegalArgumentException when the file cannot be read or holds no token (the message names the file,
     *     never its content)
     */
    public ClientSecurity withTokenFile(Path file) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalArgumentException("token file " + file + ": cannot read it (" + e.getClass()
                    .getSimpleName() + ")");
        }
        for (String line : text.split("\r?\n")) {
            String l = line.strip();
            if (l.isEmpty() || l.startsWith("#")) {
                continue;
            }
            String[] f = l.split("\\s+");
            return withToken(f.length >= 2 ? f[1] : f[0]);
        }
        throw new IllegalArgumentException("token file " + file + " holds no token");
    }

    /** These settings using TLS, trusting server certificates that the PEM CA certificate(s) in {@code caFile} signed. */
    public ClientSecurity withTls(Path caFile) {
        return new ClientSecurity(token, caFile, certificate, privateKey);
    }

    /** These settings presenting the PEM certificate chain {@code cert} and PKCS#8 key {@code key} (mutual TLS). */
    public ClientSecurity withClientCertificate(Path cert, Path key) {
        return new ClientSecurity(token, trustedCa, cert, key);
    }

    /** Whether a token is sent. */
    public boolean hasToken() {
        return token != null;
    }

    /** Whether connections use TLS. */
    public boolean tls() {
        return trustedCa != null || certificate != null;
    }

    /** The transport credentials for a channel: TLS as configured, or plaintext. */
    public ChannelCredentials channelCredentials() {
        if (!tls()) {
            return InsecureChannelCredentials.create();
        }
        try {
            TlsChannelCredentials.Builder b = TlsChannelCredentials.newBuilder();
            if (trustedCa != null) {
                b.trustManager(trustedCa.toFile());
            }
            if (certificate != null) {
                b.keyManager(certificate.toFile(), privateKey.toFile());
            }
            return b.build();
        } catch (IOException e) {
            throw new IllegalArgumentException("TLS files: cannot read " + e.getMessage());
        }
    }

    /** Adds the token (if any) to every call of a channel {@code builder} makes; returns the builder. */
    public <T extends ManagedChannelBuilder<T>> T apply(T builder) {
        if (token != null) {
            builder.intercept(tokenInterceptor());
        }
        return builder;
    }

    /** A client interceptor that adds {@code authorization: Bearer TOKEN}; with no token one that adds nothing. */
    public ClientInterceptor tokenInterceptor() {
        Metadata extra = new Metadata();
        if (token != null) {
            extra.put(AUTHORIZATION, "Bearer " + token);
        }
        return MetadataUtils.newAttachHeadersInterceptor(extra);
    }

    /** A TCP channel to {@code target} (HOST:PORT) with these settings. */
    public ManagedChannel channel(String target, int maxInboundMessageSize) {
        return apply(NettyChannelBuilder.forTarget(target, channelCredentials())
                .maxInboundMessageSize(maxInboundMessageSize)).build();
    }

    @Override
    public String toString() {
        return "ClientSecurity[" + (token != null ? "token" : "no token") + ", " + (tls() ? "TLS" : "plaintext")
                + (certificate != null ? " with client certificate" : "") + "]"; // never the token
    }
}
