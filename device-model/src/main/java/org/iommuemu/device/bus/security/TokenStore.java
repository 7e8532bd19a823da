package org.iommuemu.device.bus.security;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The bearer tokens a bus accepts and the {@link Principal} each one stands for.
 *
 * <p>File format: one token a line, {@code ROLE TOKEN [name=NAME] [iommu=INSTANCE] [streams=IDS]}, where ROLE is
 * {@code host} or {@code device}, TOKEN is 16 to 512 characters of {@code A-Z a-z 0-9 - . _ ~ + /} (then optional
 * {@code =} padding), IDS is a {@link StreamSet}; blank lines and lines starting with {@code #} are ignored.
 *
 * <p>{@link #resolve} compares the presented token with every stored one in time that depends only on the stored
 * tokens' lengths, never on where the first differing character is, and allocates nothing.
 */
public final class TokenStore {
    /** Shortest token a file may hold. */
    public static final int MIN_TOKEN_LENGTH = 16;
    private static final int MAX_TOKEN_LENGTH = 512;
    private static final Pattern TOKEN = Pattern.compile("[A-Za-z0-9._~+/-]+=*");
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9._:@-]{1,64}");
    private static final String BEARER = "Bearer ";
    private static final SecureRandom RANDOM = new SecureRandom();

    private final byte[][] tokens;
    private final Principal[] principals;

    private TokenStore(List<byte[]> tokens, List<Principal> principals) {
        this.tokens = tokens.toArray(new byte[0][]);
        this.principals = principals.toArray(new Principal[0]);
    }

    /** One entry to build a store from: a token and who it stands for. */
    public record Entry(String token, Principal principal) {
        @Override
        public String toString() {
            return principal.toString(); // never the token
        }
    }

    /**
     * A store of {@code entries}.
     *
     * @throws IllegalArgumentException for an empty list, a malformed or repeated token, or a repeated name
     */
    public static TokenStore of(List<Entry> entries) {
        if (entries.isEmpty()) {
            throw new IllegalArgumentException("no tokens: authentication needs at least one");
        }
        List<byte[]> t = new ArrayList<>();
        List<Principal> p = new ArrayList<>();
        Set<String> seenTokens = new HashSet<>();
        Set<String> seenNames = new HashSet<>();
        for (Entry e : entries) {
            checkToken(e.token(), e.principal().name());
            if (!seenTokens.add(e.token())) {
                throw new IllegalArgumentException("token of '" + e.principal().name()
                        + "' is used twice: every client needs its own");
            }
            if (!seenNames.add(e.principal().name())) {
                throw new IllegalArgumentException("name '" + e.principal().name() + "' is used twice");
            }
            t.add(e.token().getBytes(StandardCharsets.US_ASCII));
            p.add(e.principal());
        }
        return new TokenStore(t, p);
    }

    private static void checkToken(String token, String who) {
        if (token.length() < MIN_TOKEN_LENGTH || token.length() > MAX_TOKEN_LENGTH || !TOKEN.matcher(token).matches()) {
            throw new IllegalArgumentException("token of '" + who + "' must be " + MIN_TOKEN_LENGTH + " to "
                    + MAX_TOKEN_LENGTH + " characters of A-Z a-z 0-9 - . _ ~ + / (then = padding)");
        }
    }

    /**
     * Reads a token file.
     *
     * @throws IllegalArgumentException with {@code file:line:} and what is wrong (never the token)
     * @throws IOException when the file cannot be read
     */
    public static TokenStore read(Path file) throws IOException {
        return parse(Files.readString(file, StandardCharsets.UTF_8), file.toString());
    }

    /** Parses token-file text; {@code source} names it in messages. */
    public static TokenStore parse(String text, String source) {
        List<Entry> entries = new ArrayList<>();
        String[] lines = text.split("\r?\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String where = source + ":" + (i + 1) + ": ";
            try {
                entries.add(parseLine(line, "line " + (i + 1)));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + e.getMessage());
            }
        }
        try {
            return of(entries);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(source + ": " + e.getMessage());
        }
    }

    private static Entry parseLine(String line, String defaultName) {
        String[] f = line.split("\\s+");
        Role role = Role.parse(f[0]);
        if (role == null) {
            throw new IllegalArgumentException("role must be host or device, got '" + f[0] + "'");
        }
        if (f.length < 2) {
            throw new IllegalArgumentException("a token is missing after '" + f[0] + "'");
        }
        String name = defaultName;
        String iommu = null;
        StreamSet streams = null;
        for (int k = 2; k < f.length; k++) {
            int eq = f[k].indexOf('=');
            String key = eq < 0 ? f[k] : f[k].substring(0, eq);
            String value = eq < 0 ? "" : f[k].substring(eq + 1);
            switch (key) {
                case "name" -> {
                    if (!NAME.matcher(value).matches()) {
                        throw new IllegalArgumentException("name= must be 1 to 64 of A-Z a-z 0-9 . _ : @ -");
                    }
                    name = value;
                }
                case "iommu" -> {
                    if (value.isEmpty()) {
                        throw new IllegalArgumentException("iommu= needs an instance name");
                    }
                    iommu = value;
                }
                case "streams" -> streams = StreamSet.parse(value);
                default -> throw new IllegalArgumentException("unknown field '" + key
                        + "' (fields: name=, iommu=, streams=)");
            }
        }
        checkToken(f[1], name);
        return new Entry(f[1], new Principal(name, role, iommu, streams));
    }

    /**
     * Who the {@code authorization} metadata value {@code header} ({@code Bearer TOKEN}) stands for; null when the
     * header is missing, malformed, or carries a token this store does not hold. Allocation-free; the time taken
     * does not depend on how much of the token matches.
     */
    public Principal resolve(String header) {
        if (header == null || header.length() <= BEARER.length()
                || !header.regionMatches(true, 0, BEARER, 0, BEARER.length())) {
            return null;
        }
        int off = BEARER.length();
        Principal found = null;
        for (int i = 0; i < tokens.length; i++) {
            // no early exit: every stored token is compared in full
            boolean match = equalsConstantTime(header, off, tokens[i]);
            found = match ? principals[i] : found;
        }
        return found;
    }

    /** Whether {@code s} from {@code off} equals {@code expected}, in time that depends on expected.length only. */
    static boolean equalsConstantTime(String s, int off, byte[] expected) {
        int presented = s.length() - off;
        int diff = presented ^ expected.length;
        for (int i = 0; i < expected.length; i++) {
            int c = i < presented ? s.charAt(off + i) : 0;
            diff |= c ^ expected[i];
        }
        return diff == 0;
    }

    /** The principals, in file order (for start-up messages and checks against the machine's instances). */
    public List<Principal> principals() {
        return List.of(principals);
    }

    /** A new random token: 32 bytes from {@link SecureRandom}, base64url without padding (43 characters). */
    public static String newToken() {
        byte[] b = new byte[32];
        RANDOM.nextBytes(b);
        return Base64.getUrlEncoder().withoutPadding().encodeToString(b);
    }

    /** {@code entries} in the file format, with a header comment. */
    public static String format(List<Entry> entries) {
        StringBuilder sb = new StringBuilder();
        sb.append("# iommu-emu bus tokens: ROLE TOKEN [name=NAME] [iommu=INSTANCE] [streams=IDS]\n");
        sb.append("# Keep this file private (mode 0600). Clients send 'authorization: Bearer TOKEN'.\n");
        for (Entry e : entries) {
            Principal p = e.principal();
            sb.append(p.role().id()).append(' ').append(e.token()).append(" name=").append(p.name());
            if (p.iommu() != null) {
                sb.append(" iommu=").append(p.iommu());
            }
            if (p.streams() != null) {
                sb.append(" streams=").append(p.streams());
            }
            sb.append('\n');
        }
        return sb.toString();
    }

    /**
     * Writes {@code entries} to {@code file}, readable and writable by its owner only (0600 where the file system
     * has POSIX permissions). The file is created with those permissions, so there is no moment when others could
     * read it. An existing file is replaced only when {@code overwrite} is true.
     *
     * @throws FileAlreadyExistsException when the file exists and {@code overwrite} is false
     */
    public static void write(Path file, List<Entry> entries, boolean overwrite) throws IOException {
        byte[] text = format(entries).getBytes(StandardCharsets.US_ASCII);
        Path abs = file.toAbsolutePath();
        boolean posix = Files.getFileAttributeView(abs.getParent(),
                java.nio.file.attribute.PosixFileAttributeView.class) != null;
        Set<PosixFilePermission> ownerOnly = PosixFilePermissions.fromString("rw-------");
        FileAttribute<?>[] attrs = posix ? new FileAttribute<?>[] {PosixFilePermissions.asFileAttribute(ownerOnly)}
                : new FileAttribute<?>[0];
        if (!overwrite) {
            Files.createFile(abs, attrs); // fails if it exists
            Files.write(abs, text);
        } else {
            Path tmp = Files.createTempFile(abs.getParent(), "." + abs.getFileName(), ".tmp", attrs);
            try {
                Files.write(tmp, text);
                try {
                    Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
                } catch (AtomicMoveNotSupportedException e) {
                    Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
                }
            } finally {
                Files.deleteIfExists(tmp);
            }
        }
        if (posix) {
            Files.setPosixFilePermissions(abs, ownerOnly);
        }
    }
}
