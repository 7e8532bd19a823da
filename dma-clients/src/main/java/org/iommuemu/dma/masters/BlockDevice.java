package org.iommuemu.dma.masters;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import java.util.List;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.DmaFault;

/**
 * A simulated block device: an in-memory disk image of fixed capacity whose sectors move to and from
 * scatter-gather lists in iova space by DMA on the session's stream id.
 *
 * <h2>Device ABI</h2>
 *
 * <p>The disk is {@link #capacity()} bytes, sector {@code s} at byte {@code s * sectorSize} of the image
 * (sparse: never-written sectors read as zeros). A request names a starting sector, a direction and a list of
 * segments {@code (iova, length)}; the segments are visited in order and their bytes are the consecutive bytes
 * of the disk from the starting sector on (a segment's length need not be a multiple of the sector size, the
 * total must be). {@link Op#READ} moves disk to memory (DMA writes), {@link Op#WRITE} memory to disk (DMA
 * reads). Each DMA is at most {@code maxTransfer} bytes.
 *
 * <p>A fault stops the request at the faulting byte: a {@link Result} gives the bytes moved before it (for a
 * WRITE, exactly those reached the disk), the index of the faulting segment and the fault. Requests are served
 * one at a time.
 *
 * <p>The same request can also be put in memory for {@link #process(long)}; see {@link BlockRequest} for
 * that layout.
 */
public final class BlockDevice {
    /** The direction of a request, as the driver sees it. */
    public enum Op {
        /** Disk to memory: the device DMA-writes the segments. */
        READ(1),
        /** Memory to disk: the device DMA-reads the segments. */
        WRITE(2);

        private final int code;

        Op(int code) {
            this.code = code;
        }

        /** The OP value in an in-memory request. */
        public int code() {
            return code;
        }
    }

    /**
     * One scatter-gather element.
     *
     * @param iova the first byte
     * @param length bytes, at least 1
     */
    public record Segment(long iova, int length) {
        public Segment {
            Args.range("segment length", length, 1, Integer.MAX_VALUE);
        }
    }

    /**
     * The outcome of one request.
     *
     * @param code OK, WRITE_FAULT (a READ's DMA write faulted), READ_FAULT (a WRITE's DMA read faulted) or, for
     *     {@link #process(long)} only, BAD_DESCRIPTOR
     * @param bytesDone bytes moved before the fault (all of them on OK)
     * @param faultSegment index of the segment that faulted, or -1
     * @param fault the DMA fault, or null
     */
    public record Result(CompletionCode code, long bytesDone, int faultSegment, DmaFault fault) {
        public boolean isOk() {
            return code == CompletionCode.OK;
        }
    }

    /**
     * Totals since construction.
     *
     * @param reads READ requests completed (with any code)
     * @param writes WRITE requests completed
     * @param bytesRead bytes moved from disk to memory
     * @param bytesWritten bytes moved from memory to disk
     * @param faults requests stopped by a DMA fault
     */
    public record Counters(long reads, long writes, long bytesRead, long bytesWritten, long faults) {}

    private final DmaSession session;
    private final SparseImage image;
    private final int sectorSize;
    private final int maxTransfer;
    private final DmaOptions options;
    private final byte[] scratch;
    private final byte[] header = new byte[BlockRequest.HEADER_SIZE];
    private final byte[] statusWord = new byte[8];
    private long reads;
    private long writes;
    private long bytesRead;
    private long bytesWritten;
    private long faults;

    /** A device with 512-byte sectors, {@value Args#DEFAULT_MAX_TRANSFER}-byte DMA chunks, default options. */
    public BlockDevice(DmaSession session, long capacity) {
        this(session, capacity, 512, Args.DEFAULT_MAX_TRANSFER, DmaOptions.DEFAULT);
    }

    /**
     * @param session the attached master the device issues its DMA as
     * @param capacity disk size in bytes, a positive multiple of {@code sectorSize}, at most 2^50
     * @param sectorSize 512 .. 65536, a power of two
     * @param maxTransfer the largest single DMA, 1 .. 64 MiB
     * @param options substream id and attributes for every access
     */
    public BlockDevice(DmaSession session, long capacity, int sectorSize, int maxTransfer, DmaOptions options) {
        this.session = Args.notNull("session", session);
        Args.range("sectorSize", sectorSize, 512, 65536);
        if (Integer.bitCount(sectorSize) != 1) {
            throw new IllegalArgumentException("sectorSize " + sectorSize + " is not a power of two");
        }
        Args.range("capacity", capacity, sectorSize, 1L << 50);
        if (capacity % sectorSize != 0) {
            throw new IllegalArgumentException("capacity " + capacity + " is not a multiple of sectorSize "
                    + sectorSize);
        }
        this.sectorSize = sectorSize;
        this.image = new SparseImage(capacity);
        this.maxTransfer = Args.range("maxTransfer", maxTransfer, 1, 64 << 20);
        this.options = Args.notNull("options", options);
        this.scratch = new byte[maxTransfer];
    }

    public long capacity() {
        return image.size();
    }

    public int sectorSize() {
        return sectorSize;
    }

    public long sectors() {
        return image.size() / sectorSize;
    }

    public synchronized Counters counters() {
        return new Counters(reads, writes, bytesRead, bytesWritten, faults);
    }

    /** The host's view of the image (a backing file): copies {@code length} bytes at {@code offset} out. */
    public synchronized byte[] readImage(long offset, int length) {
        checkImageRange(offset, length);
        byte[] b = new byte[length];
        image.read(offset, b, 0, length);
        return b;
    }

    /** The host's view of the image: stores {@code data} at {@code offset}. */
    public synchronized void writeImage(long offset, byte[] data) {
        Args.notNull("data", data);
        checkImageRange(offset, data.length);
        image.write(offset, data, 0, data.length);
    }

    private void checkImageRange(long offset, long length) {
        if (offset < 0 || length < 0 || offset > image.size() - length) {
            throw new IllegalArgumentException("image range offset " + offset + " length " + length
                    + " is outside the " + image.size() + "-byte disk");
        }
    }

    /** Reads from disk into the segments. */
    public Result read(long sector, List<Segment> segments) {
        return submit(Op.READ, sector, segments);
    }

    /** Writes the segments to disk. */
    public Result write(long sector, List<Segment> segments) {
        return submit(Op.WRITE, sector, segments);
    }

    /**
     * Serves one request.
     *
     * @throws IllegalArgumentException for no segments, a total length that is not a whole number of sectors, or
     *     sectors beyond the disk
     */
    public synchronized Result submit(Op op, long sector, List<Segment> segments) {
        Args.notNull("op", op);
        Args.notNull("segments", segments);
        long total = 0;
        for (Segment s : segments) {
            total += Args.notNull("segment", s).length();
        }
        String problem = check(sector, segments.size(), total);
        if (problem != null) {
            throw new IllegalArgumentException(problem);
        }
        long pos = sector * sectorSize;
        long done = 0;
        for (int i = 0; i < segments.size(); i++) {
            Segment s = segments.get(i);
            DmaFault fault = move(op, pos + done, s.iova(), s.length());
            if (fault != null) {
                return finish(op, done + segmentDone, i, fault);
            }
            done += s.length();
        }
        return finish(op, done, -1, null);
    }

    /**
     * Serves a request that software put in memory at {@code requestIova} (layout: {@link BlockRequest}): reads
     * the 32-byte header (one DMA read), then the NSEG-entry segment table (one DMA read of 16 * NSEG bytes),
     * moves the data as {@link #submit} does, and writes the STATUS word back (one 8-byte DMA write at
     * {@code requestIova + 0x10}). A malformed header or segment (reserved bits, OP or NSEG out of range, a zero
     * length, a total that is not whole sectors, sectors beyond the disk) completes with BAD_DESCRIPTOR and
     * moves nothing. A fault reading the header is returned (READ_FAULT, segment -1) with nothing written back;
     * a fault reading the segment table is written back as READ_FAULT with segment 0xFFFF.
     *
     * @param requestIova 8-byte aligned
     */
    public synchronized Result process(long requestIova) {
        Args.aligned("requestIova", requestIova, 8);
        DmaResult h = session.read(requestIova, BlockRequest.HEADER_SIZE, options);
        if (h.faulted()) {
            faults++;
            return new Result(CompletionCode.READ_FAULT, 0, -1, h.fault());
        }
        h.data().copyTo(header, 0);
        long cmd = Le.get64(header, BlockRequest.CMD);
        long sector = Le.get64(header, BlockRequest.SECTOR);
        int opCode = (int) (cmd & 0xFF);
        long nseg = cmd >>> 32;
        Result result;
        Op op = opCode == Op.READ.code ? Op.READ : opCode == Op.WRITE.code ? Op.WRITE : null;
        if (op == null || (cmd & BlockRequest.CMD_RESERVED) != 0 || nseg < 1 || nseg > BlockRequest.MAX_SEGMENTS
                || Le.get64(header, BlockRequest.RESERVED) != 0) {
            result = new Result(CompletionCode.BAD_DESCRIPTOR, 0, -1, null);
        } else {
            result = processSegments(op, sector, requestIova + BlockRequest.HEADER_SIZE, (int) nseg);
        }
        Le.put64(statusWord, 0, BlockRequest.status(result));
        DmaResult s = session.write(requestIova + BlockRequest.STATUS, UnsafeByteOperations.unsafeWrap(statusWord),
                options);
        if (s.faulted()) {
            faults++;
            // The request was served; only its completion could not be reported.
        }
        return result;
    }

    private Result processSegments(Op op, long sector, long tableIova, int nseg) {
        DmaResult t = session.read(tableIova, nseg * BlockRequest.SEGMENT_SIZE, options);
        if (t.faulted()) {
            faults++;
            return new Result(CompletionCode.READ_FAULT, 0, -1, t.fault());
        }
        byte[] table = t.data().toByteArray();
        Segment[] segments = new Segment[nseg];
        long total = 0;
        for (int i = 0; i < nseg; i++) {
            long iova = Le.get64(table, i * BlockRequest.SEGMENT_SIZE);
            long len = Le.get64(table, i * BlockRequest.SEGMENT_SIZE + 8);
            if (len < 1 || len > Integer.MAX_VALUE) {
                return new Result(CompletionCode.BAD_DESCRIPTOR, 0, i, null);
            }
            segments[i] = new Segment(iova, (int) len);
            total += len;
        }
        if (check(sector, nseg, total) != null) {
            return new Result(CompletionCode.BAD_DESCRIPTOR, 0, -1, null);
        }
        return submit(op, sector, List.of(segments));
    }

    /** Null when {@code [sector, sector + total bytes)} is a valid request, else why not. */
    private String check(long sector, int segmentCount, long total) {
        if (segmentCount == 0) {
            return "segments is empty";
        }
        if (total % sectorSize != 0) {
            return "segment lengths total " + total + " bytes, not a multiple of the sector size " + sectorSize;
        }
        long count = total / sectorSize;
        if (sector < 0 || sector >= sectors() || count > sectors() - sector) {
            return "sector " + sector + " + " + count + " sectors is outside the disk's " + sectors() + " sectors";
        }
        return null;
    }

    /** Bytes of the segment {@link #move} stopped in that were moved before the fault. */
    private long segmentDone;

    /** Moves one segment: null, or the fault that stopped it (with {@link #segmentDone} set). */
    private DmaFault move(Op op, long diskOffset, long iova, int length) {
        long off = 0;
        while (off < length) {
            int chunk = (int) Math.min(maxTransfer, length - off);
            if (op == Op.READ) {
                image.read(diskOffset + off, scratch, 0, chunk);
                DmaResult w = session.write(iova + off, UnsafeByteOperations.unsafeWrap(scratch, 0, chunk), options);
                if (w.faulted()) {
                    segmentDone = off + w.fault().getBytesDone();
                    return w.fault();
                }
            } else {
                DmaResult r = session.read(iova + off, chunk, options);
                ByteString data = r.data();
                image.write(diskOffset + off, data);
                if (r.faulted()) {
                    segmentDone = off + data.size();
                    return r.fault();
                }
            }
            off += chunk;
        }
        return null;
    }

    private Result finish(Op op, long done, int faultSegment, DmaFault fault) {
        if (op == Op.READ) {
            reads++;
            bytesRead += done;
        } else {
            writes++;
            bytesWritten += done;
        }
        CompletionCode code = CompletionCode.OK;
        if (fault != null) {
            faults++;
            code = op == Op.READ ? CompletionCode.WRITE_FAULT : CompletionCode.READ_FAULT;
        }
        return new Result(code, done, faultSegment, fault);
    }

    @Override
    public String toString() {
        return "BlockDevice[" + session.name() + ", " + sectors() + " x " + sectorSize + " bytes]";
    }
}
