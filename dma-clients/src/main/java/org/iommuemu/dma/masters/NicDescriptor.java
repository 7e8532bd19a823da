package org.iommuemu.dma.masters;

import com.google.protobuf.ByteString;
import org.iommuemu.proto.v1.FaultKind;

/**
 * One buffer descriptor of a {@link Nic} RX or TX ring, decoded. In memory a descriptor is {@value #SIZE}
 * bytes, two little-endian 64-bit words:
 *
 * <pre>
 * offset  word  contents
 * 0x00    BUF   iova of the buffer's first byte (software)
 * 0x08    CTL   bits [31:0]  LEN: software writes the buffer's capacity (RX) or the packet's length (TX);
 *                            the NIC writes back the packet's length (RX, including BUFFER_TOO_SMALL,
 *                            where it is the length of the packet that did not fit) or leaves it (TX)
 *               bits [39:32] CODE: 0 when software posts; the NIC writes the {@link CompletionCode}:
 *                            OK; RX: WRITE_FAULT, BUFFER_TOO_SMALL; TX: READ_FAULT, BAD_DESCRIPTOR (LEN 0
 *                            or above the NIC's MTU)
 *               bits [47:40] KIND: the bus's FaultKind number when a DMA faulted, else 0
 *               bits [63:48] reserved, 0
 * </pre>
 *
 * The NIC writes CTL back as one 8-byte DMA write at descriptor + 0x08, after the buffer.
 *
 * @param buffer BUF
 * @param length CTL.LEN, 0 .. 0xFFFF_FFFF
 * @param code CTL.CODE
 * @param faultKind CTL.KIND, {@code FAULT_KIND_UNSPECIFIED} when none
 */
public record NicDescriptor(long buffer, long length, CompletionCode code, FaultKind faultKind) {
    /** Bytes per descriptor. */
    public static final int SIZE = 16;
    /** Byte offset of each word. */
    public static final int BUF = 0x00;
    public static final int CTL = 0x08;

    public NicDescriptor {
        Args.range("length", length, 0, 0xFFFF_FFFFL);
        Args.notNull("code", code);
        Args.notNull("faultKind", faultKind);
    }

    /** A descriptor as software posts it: an RX buffer of {@code length} bytes, or a TX packet. */
    public static NicDescriptor post(long buffer, long length) {
        return new NicDescriptor(buffer, length, CompletionCode.PENDING, FaultKind.FAULT_KIND_UNSPECIFIED);
    }

    public byte[] encode() {
        byte[] b = new byte[SIZE];
        Le.put64(b, BUF, buffer);
        Le.put64(b, CTL, ctl(length, code, faultKind));
        return b;
    }

    public static NicDescriptor decode(byte[] b) {
        if (b.length < SIZE) {
            throw new IllegalArgumentException("descriptor bytes " + b.length + " is less than " + SIZE);
        }
        long ctl = Le.get64(b, CTL);
        return new NicDescriptor(Le.get64(b, BUF), ctl & 0xFFFF_FFFFL, CompletionCode.of((int) (ctl >>> 32) & 0xFF),
                CopyDescriptor.faultKind((int) (ctl >>> 40) & 0xFF));
    }

    public static NicDescriptor decode(ByteString b) {
        return decode(b.toByteArray());
    }

    /** The CTL word. */
    public static long ctl(long length, CompletionCode code, FaultKind kind) {
        return (length & 0xFFFF_FFFFL) | ((long) code.code() << 32) | ((long) CopyDescriptor.kindNumber(kind) << 40);
    }
}
