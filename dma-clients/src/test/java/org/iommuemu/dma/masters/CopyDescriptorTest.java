package org.iommuemu.dma.masters;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.iommuemu.proto.v1.FaultKind;
import org.junit.jupiter.api.Test;

class CopyDescriptorTest {
    @Test
    void postedDescriptorIsFourLittleEndianWordsWithStatusZero() {
        byte[] b = CopyDescriptor.post(0x1122_3344_5566_7788L, 0xFFFF_0000_0000_1000L, 0xFFFF_FFFFL).encode();
        ByteBuffer w = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(b).hasSize(32);
        assertThat(b[0]).isEqualTo((byte) 0x88);
        assertThat(w.getLong(0x00)).isEqualTo(0x1122_3344_5566_7788L);
        assertThat(w.getLong(0x08)).isEqualTo(0xFFFF_0000_0000_1000L);
        assertThat(w.getLong(0x10)).isEqualTo(0xFFFF_FFFFL);
        assertThat(w.getLong(0x18)).isZero();
    }

    @Test
    void statusWordPacksCodeKindAndCopiedBytes() {
        long s = CopyDescriptor.status(CompletionCode.WRITE_FAULT, FaultKind.TRANSLATION, 0x1234);
        assertThat(s).isEqualTo(0x0000_1234_0000_0103L);
        CopyDescriptor d = new CopyDescriptor(1, 2, 0x2000, CompletionCode.WRITE_FAULT, FaultKind.TRANSLATION, 0x1234);
        assertThat(CopyDescriptor.decode(d.encode())).isEqualTo(d);
        assertThat(CopyDescriptor.status(CompletionCode.OK, null, 5)).isEqualTo((5L << 32) | 1);
    }

    @Test
    void decodeIgnoresReservedLengthBitsAndRejectsUnknownCodes() {
        byte[] b = CopyDescriptor.post(1, 2, 3).encode();
        Le.put64(b, CopyDescriptor.LEN, (7L << 32) | 3);
        assertThat(CopyDescriptor.decode(b).length()).isEqualTo(3);
        Le.put64(b, CopyDescriptor.STATUS, 0x7F);
        assertThatThrownBy(() -> CopyDescriptor.decode(b)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("completion code 0x7f");
        assertThatThrownBy(() -> CopyDescriptor.post(0, 0, 1L << 32)).hasMessageContaining("length 4294967296");
    }
}
