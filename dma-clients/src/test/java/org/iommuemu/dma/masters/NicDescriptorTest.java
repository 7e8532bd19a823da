package org.iommuemu.dma.masters;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.iommuemu.proto.v1.FaultKind;
import org.junit.jupiter.api.Test;

class NicDescriptorTest {
    @Test
    void ctlWordPacksLengthCodeAndKind() {
        assertThat(NicDescriptor.ctl(1500, CompletionCode.PENDING, null)).isEqualTo(1500);
        assertThat(NicDescriptor.ctl(0x1234, CompletionCode.WRITE_FAULT, FaultKind.PERMISSION))
                .isEqualTo(0x0000_0203_0000_1234L);
    }

    @Test
    void encodesTwoLittleEndianWordsAndDecodesBack() {
        NicDescriptor d = new NicDescriptor(0x8000_1000L, 3000, CompletionCode.BUFFER_TOO_SMALL,
                FaultKind.FAULT_KIND_UNSPECIFIED);
        byte[] b = d.encode();
        ByteBuffer w = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(b).hasSize(16);
        assertThat(w.getLong(0)).isEqualTo(0x8000_1000L);
        assertThat(w.getLong(8)).isEqualTo((5L << 32) | 3000);
        assertThat(NicDescriptor.decode(b)).isEqualTo(d);
        assertThat(NicDescriptor.decode(NicDescriptor.post(7, 2048).encode()))
                .isEqualTo(new NicDescriptor(7, 2048, CompletionCode.PENDING, FaultKind.FAULT_KIND_UNSPECIFIED));
    }
}
