package org.iommuemu.dma.masters;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Collections;
import java.util.List;
import org.iommuemu.dma.masters.BlockDevice.Segment;
import org.iommuemu.proto.v1.DmaFault;
import org.iommuemu.proto.v1.FaultKind;
import org.junit.jupiter.api.Test;

class BlockRequestTest {
    @Test
    void encodesHeaderThenSegments() {
        byte[] b = new BlockRequest(BlockDevice.Op.WRITE, 0x1234,
                List.of(new Segment(0xAAAA_0000L, 512), new Segment(0xBBBB_0000L, 1536))).encode();
        ByteBuffer w = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(b).hasSize(32 + 2 * 16);
        assertThat(w.getLong(0x00)).isEqualTo(2 | (2L << 32));
        assertThat(w.getLong(0x08)).isEqualTo(0x1234);
        assertThat(w.getLong(0x10)).isZero();
        assertThat(w.getLong(0x18)).isZero();
        assertThat(w.getLong(0x20)).isEqualTo(0xAAAA_0000L);
        assertThat(w.getLong(0x28)).isEqualTo(512);
        assertThat(w.getLong(0x30)).isEqualTo(0xBBBB_0000L);
        assertThat(w.getLong(0x38)).isEqualTo(1536);
    }

    @Test
    void statusWordRoundTrips() {
        DmaFault f = DmaFault.newBuilder().setKind(FaultKind.PERMISSION).build();
        long word = BlockRequest.status(new BlockDevice.Result(CompletionCode.READ_FAULT, 0x600, 3, f));
        assertThat(word).isEqualTo(0x0000_0600_0003_0202L);
        assertThat(BlockRequest.Status.decode(word))
                .isEqualTo(new BlockRequest.Status(CompletionCode.READ_FAULT, FaultKind.PERMISSION, 3, 0x600));
        long ok = BlockRequest.status(new BlockDevice.Result(CompletionCode.OK, 512, -1, null));
        assertThat(BlockRequest.Status.decode(ok).faultSegment()).isEqualTo(-1);
        assertThat(ok & 0xFFFF_0000L).isEqualTo(0xFFFF_0000L);
    }

    @Test
    void segmentCountIsBounded() {
        assertThatThrownBy(() -> new BlockRequest(BlockDevice.Op.READ, 0, List.of()))
                .hasMessageContaining("segments 0 is outside [1, 256]");
        List<Segment> many = Collections.nCopies(257, new Segment(0, 512));
        assertThatThrownBy(() -> new BlockRequest(BlockDevice.Op.READ, 0, many)).hasMessageContaining("segments 257");
    }

    @Test
    void sparseImageStoresAcrossChunksAndReadsZerosElsewhere() {
        SparseImage img = new SparseImage(1L << 40);
        byte[] data = new byte[SparseImage.CHUNK + 100];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 7);
        }
        long at = (1L << 39) - 50;
        img.write(at, ByteString.copyFrom(data));
        byte[] back = new byte[data.length + 20];
        img.read(at - 10, back, 0, back.length);
        assertThat(back[0]).isZero();
        assertThat(java.util.Arrays.copyOfRange(back, 10, 10 + data.length)).isEqualTo(data);
        assertThat(back[back.length - 1]).isZero();
        assertThat(img.chunkCount()).isEqualTo(3);
    }
}
