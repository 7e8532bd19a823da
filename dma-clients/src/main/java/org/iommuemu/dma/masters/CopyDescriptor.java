package org.iommuemu.dma.masters;

import com.google.protobuf.ByteString;
import org.iommuemu.proto.v1.FaultKind;

/**
 * One descriptor of the {@link CopyEngine} ring, decoded. In memory a descriptor is {@value #SIZE} bytes, four
 * little-endian 64-bit words:
 *
 * <pre>
 * offset  word    written by  contents
 * 0x00    SRC     software    source iova of the first byte
 * 0x08    DST     software    destination iova of the first byte
 * 0x10    LEN     software    bits [31:0] byte count (0 is allowed: nothing moves); bits [63:32] reserved, 0
 * 0x18    STATUS  both        software writes 0 when posting; the engine writes back:
 *                               bits [7:0]   completion code ({@link CompletionCode}: 0x01 OK, 0x02 READ_FAULT
 *                                            (source), 0x03 WRITE_FAULT (destination), 0x04 BAD_DESCRIPTOR)
 *                               bits [15:8]  fault kind, the bus's FaultKind number (1 TRANSLATION,
 *                                            2 PERMISSION, 3 ACCESS_FLAG, 4 ADDRESS_SIZE, 5 EXTERNAL_ABORT,
 *                                            6 BAD_CONFIGURATION, 7 ABORTED); 0 unless a DMA faulted
 *                               bits [31:16] 0
 *                               bits [63:32] bytes copied: LEN on OK; on a fault, the bytes written to DST
 *                                            before it, so the faulting iova is SRC + copied (READ_FAULT) or
 *                                            DST + copied (WRITE_FAULT)
 * </pre>
 *
 * @param source SRC
 * @param destination DST
 * @param length LEN bits [31:0], 0 .. 0xFFFF_FFFF
 * @param code STATUS bits [7:0]
 * @param faultKind STATUS bits [15:8], {@code FAULT_KIND_UNSPECIFIED} when none
 * @param copied STATUS bits [63:32]
 */
public record CopyDescriptor(long source, long destination, long length, CompletionCode code, FaultKind faultKind,
        long copied) {
    /** Bytes per descriptor. */
    public static final int SIZE = 32;
    /** Byte offset of each word. */
    public static final int SRC = 0x00;
    public static final int DST = 0x08;
    public static final int LEN = 0x10;
    public static final int STATUS = 0x18;
    /** LEN bits that must be zero. */
    public static final long LEN_RESERVED = 0xFFFF_FFFF_0000_0000L;

    public CopyDescriptor {
        Args.range("length", length, 0, 0xFFFF_FFFFL);
        Args.notNull("code", code);
        Args.notNull("faultKind", faultKind);
        Args.range("copied", copied, 0, 0xFFFF_FFFFL);
    }

    /** A descriptor as software posts it: STATUS = 0. */
    public static CopyDescriptor post(long source, long destination, long length) {
        return new CopyDescriptor(source, destination, length, CompletionCode.PENDING,
                FaultKind.FAULT_KIND_UNSPECIFIED, 0);
    }

    /** The {@value #SIZE} bytes of this descriptor. */
    public byte[] encode() {
        byte[] b = new byte[SIZE];
        Le.put64(b, SRC, source);
        Le.put64(b, DST, destination);
        Le.put64(b, LEN, length);
        Le.put64(b, STATUS, status(code, faultKind, copied));
        return b;
    }

    /** Decodes {@value #SIZE} bytes; LEN's reserved bits are ignored (the engine rejects them). */
    public static CopyDescriptor decode(byte[] b) {
        if (b.length < SIZE) {
            throw new IllegalArgumentException("descriptor bytes " + b.length + " is less than " + SIZE);
        }
        long status = Le.get64(b, STATUS);
        return new CopyDescriptor(Le.get64(b, SRC), Le.get64(b, DST), Le.get64(b, LEN) & 0xFFFF_FFFFL,
                CompletionCode.of((int) status & 0xFF), faultKind((int) (status >>> 8) & 0xFF), status >>> 32);
    }

    public static CopyDescriptor decode(ByteString b) {
        return decode(b.toByteArray());
    }

    /** The STATUS word for a completion. */
    public static long status(CompletionCode code, FaultKind kind, long copied) {
        return (code.code() & 0xFFL) | ((long) kindNumber(kind) << 8) | (copied << 32);
    }

    static int kindNumber(FaultKind kind) {
        return kind == null || kind == FaultKind.UNRECOGNIZED ? 0 : kind.getNumber() & 0xFF;
    }

    static FaultKind faultKind(int number) {
        FaultKind k = FaultKind.forNumber(number);
        return k == null ? FaultKind.UNRECOGNIZED : k;
    }
}
