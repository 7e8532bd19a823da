package org.iommuemu.dma.masters;

import com.google.protobuf.ByteString;
import java.util.HashMap;
import java.util.Map;

/** A byte-addressed disk image of a fixed size, stored in 64 KiB chunks created on first write; reads zero elsewhere. */
final class SparseImage {
    static final int CHUNK_LG2 = 16;
    static final int CHUNK = 1 << CHUNK_LG2;

    private final long size;
    private final Map<Long, byte[]> chunks = new HashMap<>();

    SparseImage(long size) {
        this.size = size;
    }

    long size() {
        return size;
    }

    /** Chunks allocated so far. */
    int chunkCount() {
        return chunks.size();
    }

    void read(long offset, byte[] dst, int dstOffset, int length) {
        while (length > 0) {
            int in = (int) (offset & (CHUNK - 1));
            int n = Math.min(length, CHUNK - in);
            byte[] c = chunks.get(offset >>> CHUNK_LG2);
            if (c == null) {
                java.util.Arrays.fill(dst, dstOffset, dstOffset + n, (byte) 0);
            } else {
                System.arraycopy(c, in, dst, dstOffset, n);
            }
            offset += n;
            dstOffset += n;
            length -= n;
        }
    }

    void write(long offset, byte[] src, int srcOffset, int length) {
        while (length > 0) {
            int in = (int) (offset & (CHUNK - 1));
            int n = Math.min(length, CHUNK - in);
            System.arraycopy(src, srcOffset, chunk(offset), in, n);
            offset += n;
            srcOffset += n;
            length -= n;
        }
    }

    void write(long offset, ByteString src) {
        java.nio.ByteBuffer from = src.asReadOnlyByteBuffer();
        while (from.hasRemaining()) {
            int in = (int) (offset & (CHUNK - 1));
            int n = Math.min(from.remaining(), CHUNK - in);
            from.get(chunk(offset), in, n);
            offset += n;
        }
    }

    private byte[] chunk(long offset) {
        return chunks.computeIfAbsent(offset >>> CHUNK_LG2, k -> new byte[CHUNK]);
    }
}
