package org.iommuemu.dma.masters;

import java.util.List;
import org.iommuemu.proto.v1.FaultKind;

/**
 * A {@link BlockDevice} request as software puts it in memory for {@link BlockDevice#process(long)}: a 32-byte
 * header followed by NSEG 16-byte segments, all little-endian 64-bit words.
 *
 * <pre>
 * offset       word     contents
 * 0x00         CMD      bits [7:0] OP (1 READ: disk to memory, 2 WRITE: memory to disk); bits [31:8] reserved,
 *                       0; bits [63:32] NSEG, 1 .. {@value #MAX_SEGMENTS}
 * 0x08         SECTOR   the first sector
 * 0x10         STATUS   software writes 0; the device writes back:
 *                         bits [7:0]   completion code (0x01 OK, 0x02 READ_FAULT: a WRITE's segment or the
 *                                      segment table could not be read, 0x03 WRITE_FAULT: a READ's segment
 *                                      could not be written, 0x04 BAD_DESCRIPTOR)
 *                         bits [15:8]  the bus's FaultKind number, 0 without a fault
 *                         bits [31:16] index of the faulting (or malformed) segment; 0xFFFF for none
 *                         bits [63:32] bytes moved before the fault (the whole request on OK)
 * 0x18         -        reserved, 0
 * 0x20 + 16*i  IOVA     segment i's first byte
 * 0x28 + 16*i  LEN      bits [31:0] segment i's length in bytes, 1 .. 2^31 - 1; bits [63:32] reserved, 0
 * </pre>
 *
 * @param op the direction
 * @param sector the first sector
 * @param segments 1 .. {@value #MAX_SEGMENTS} segments
 */
public record BlockRequest(BlockDevice.Op op, long sector, List<BlockDevice.Segment> segments) {
    public static final int HEADER_SIZE = 32;
    public static final int SEGMENT_SIZE = 16;
    public static final int MAX_SEGMENTS = 256;
    public static final int CMD = 0x00;
    public static final int SECTOR = 0x08;
    public static final int STATUS = 0x10;
    public static final int RESERVED = 0x18;
    static final long CMD_RESERVED = 0xFFFF_FF00L;

    public BlockRequest {
        Args.notNull("op", op);
        Args.notNull("segments", segments);
        Args.range("segments", segments.size(), 1, MAX_SEGMENTS);
        segments = List.copyOf(segments);
    }

    /** The header and segment table, STATUS = 0. */
    public byte[] encode() {
        byte[] b = new byte[HEADER_SIZE + SEGMENT_SIZE * segments.size()];
        Le.put64(b, CMD, op.code() | ((long) segments.size() << 32));
        Le.put64(b, SECTOR, sector);
        for (int i = 0; i < segments.size(); i++) {
            Le.put64(b, HEADER_SIZE + SEGMENT_SIZE * i, segments.get(i).iova());
            Le.put64(b, HEADER_SIZE + SEGMENT_SIZE * i + 8, segments.get(i).length());
        }
        return b;
    }

    /**
     * The STATUS word, decoded.
     *
     * @param code bits [7:0]
     * @param faultKind bits [15:8]
     * @param faultSegment bits [31:16], -1 for 0xFFFF
     * @param bytesDone bits [63:32]
     */
    public record Status(CompletionCode code, FaultKind faultKind, int faultSegment, long bytesDone) {
        public static Status decode(long word) {
            int seg = (int) (word >>> 16) & 0xFFFF;
            return new Status(CompletionCode.of((int) word & 0xFF), CopyDescriptor.faultKind((int) (word >>> 8) & 0xFF),
                    seg == 0xFFFF ? -1 : seg, word >>> 32);
        }
    }

    static long status(BlockDevice.Result r) {
        long seg = r.faultSegment() < 0 ? 0xFFFF : r.faultSegment();
        return r.code().code() | ((long) CopyDescriptor.kindNumber(r.fault() == null ? null : r.fault().getKind()) << 8)
                | (seg << 16) | ((r.bytesDone() & 0xFFFF_FFFFL) << 32);
    }
}
