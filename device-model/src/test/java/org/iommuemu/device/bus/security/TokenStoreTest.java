package org.iommuemu.device.bus.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenStoreTest {
    private static final String HOST = "host-token-0123456789abcdef";
    private static final String DEV = "device-token-0123456789abcdef";

    @Test
    void parsesRolesNamesAndBindingsAndResolvesBearerHeaders() {
        TokenStore s = TokenStore.parse("# comment\n\nhost " + HOST + "\n"
                + "device " + DEV + " name=nic iommu=smmu0 streams=0x10-0x1f,40,41-42\n", "t");
        Principal host = s.resolve("Bearer " + HOST);
        assertThat(host.role()).isEqualTo(Role.HOST);
        assertThat(host.name()).isEqualTo("line 3");
        Principal dev = s.resolve("bearer " + DEV);
        assertThat(dev.name()).isEqualTo("nic");
        assertThat(dev.binding()).isEqualTo("smmu0 stream ids 16-31,40-42");
        assertThat(dev.mayAttach("smmu0", 31)).isTrue();
        assertThat(dev.mayAttach("smmu0", 32)).isFalse();
        assertThat(dev.mayAttach("smmu0", 42)).isTrue();
        assertThat(dev.mayAttach("dmar0", 16)).isFalse();
        assertThat(s.resolve(null)).isNull();
        assertThat(s.resolve("Bearer ")).isNull();
        assertThat(s.resolve(HOST)).as("no scheme").isNull();
        assertThat(s.resolve("Bearer " + HOST + "x")).isNull();
        assertThat(s.resolve("Bearer " + HOST.substring(1))).isNull();
    }

    @Test
    void badFilesNameTheLineAndNeverTheToken() {
        assertThatThrownBy(() -> TokenStore.parse("host short\n", "f")).hasMessageContaining("f:1:")
                .hasMessageContaining("16 to 512").hasMessageNotContaining("short");
        assertThatThrownBy(() -> TokenStore.parse("admin " + HOST + "\n", "f"))
                .hasMessageContaining("role must be host or device");
        assertThatThrownBy(() -> TokenStore.parse("host " + HOST + " iommu=smmu0\n", "f"))
                .hasMessageContaining("host token cannot be bound");
        assertThatThrownBy(() -> TokenStore.parse("device " + DEV + " streams=1-2\n", "f"))
                .hasMessageContaining("streams= needs iommu=");
        assertThatThrownBy(() -> TokenStore.parse("device " + DEV + " iommu=a streams=9-2\n", "f"))
                .hasMessageContaining("ends before it starts");
        assertThatThrownBy(() -> TokenStore.parse("host " + HOST + "\ndevice " + HOST + "\n", "f"))
                .hasMessageContaining("used twice").hasMessageNotContaining(HOST);
        assertThatThrownBy(() -> TokenStore.parse("# nothing\n", "f")).hasMessageContaining("no tokens");
        assertThatThrownBy(() -> TokenStore.parse("device " + DEV + " colour=red\n", "f"))
                .hasMessageContaining("unknown field 'colour'");
    }

    @Test
    void constantTimeCompareMatchesOnlyTheWholeToken() {
        byte[] t = "abcdef".getBytes();
        assertThat(TokenStore.equalsConstantTime("xxabcdef", 2, t)).isTrue();
        assertThat(TokenStore.equalsConstantTime("xxabcdeg", 2, t)).isFalse();
        assertThat(TokenStore.equalsConstantTime("xxabcde", 2, t)).isFalse();
        assertThat(TokenStore.equalsConstantTime("xxabcdefg", 2, t)).isFalse();
        assertThat(TokenStore.equalsConstantTime("xx", 2, t)).isFalse();
    }

    @Test
    void generatedTokensAreWrittenOwnerOnlyAndNotOverwrittenUnlessAsked(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("tokens");
        String a = TokenStore.newToken();
        String b = TokenStore.newToken();
        assertThat(a).hasSize(43).isNotEqualTo(b);
        List<TokenStore.Entry> entries = List.of(
                new TokenStore.Entry(a, new Principal("host", Role.HOST, null, null)),
                new TokenStore.Entry(b, new Principal("device-1", Role.DEVICE, "smmu0", StreamSet.parse("5"))));
        TokenStore.write(f, entries, false);
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(f))).isEqualTo("rw-------");
        TokenStore back = TokenStore.read(f);
        assertThat(back.resolve("Bearer " + a).role()).isEqualTo(Role.HOST);
        assertThat(back.resolve("Bearer " + b).binding()).isEqualTo("smmu0 stream ids 5");

        assertThatThrownBy(() -> TokenStore.write(f, entries.subList(0, 1), false))
                .isInstanceOf(FileAlreadyExistsException.class);
        assertThat(TokenStore.read(f).principals()).hasSize(2);
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-r--r--"));
        TokenStore.write(f, entries.subList(0, 1), true);
        assertThat(TokenStore.read(f).principals()).hasSize(1);
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(f))).isEqualTo("rw-------");
        try (var listing = Files.list(dir)) {
            assertThat(listing).as("no temporary file left").containsExactly(f);
        }
    }

    @Test
    void streamSetsMergeAndBoundTheirMembers() {
        StreamSet s = StreamSet.parse("0x100-0x1ff, 7,8-9 ,0xffffffff");
        assertThat(s.toString()).isEqualTo("7-9,256-511,4294967295");
        assertThat(s.contains(6)).isFalse();
        assertThat(s.contains(9)).isTrue();
        assertThat(s.contains(0x1ff)).isTrue();
        assertThat(s.contains(0x200)).isFalse();
        assertThat(s.contains(-1)).as("unsigned").isTrue();
        assertThatThrownBy(() -> StreamSet.parse("1,x")).hasMessageContaining("'x' is not a stream id");
        assertThatThrownBy(() -> StreamSet.parse("0x100000000")).hasMessageContaining("is not a stream id");
    }
}
