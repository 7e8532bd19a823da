package org.iommuemu.device.bus;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;

/**
 * {@code Machine.MemRead} and {@code MemWrite} as a CPU's loads and stores: an access that is a run of whole,
 * naturally aligned 64-bit words moves each word as one single-copy atomic access, and likewise for 32-bit words;
 * anything else is copied bytewise. A driver outside the emulator publishes descriptors (STE word 0, page-table
 * entries, queue pointers in memory) with one aligned 8-byte write and polls completions with aligned reads, and
 * {@link PhysicalMemory} promises that such accesses are never seen torn; a byte copy would not keep that promise
 * against a device walking the same words on another thread.
 */
final class CpuAccess {
    private CpuAccess() {}

    /** Fills {@code data} from {@code pa}. */
    static void load(PhysicalMemory memory, long pa, byte[] data) throws MemoryAccessException {
        int len = data.length;
        ByteBuffer le = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        if ((pa & 7) == 0 && (len & 7) == 0) {
            long[] words = new long[len >>> 3];
            memory.read64s(pa, words, 0, words.length);
            le.asLongBuffer().put(words);
        } else if ((pa & 3) == 0 && (len & 3) == 0) {
            long[] words = new long[len >>> 2];
            memory.read32s(pa, words, 0, words.length);
            for (int i = 0; i < words.length; i++) {
                le.putInt(4 * i, (int) words[i]);
            }
        } else {
            memory.read(pa, data, 0, len);
        }
    }

    /** Writes {@code data} at {@code pa}; nothing is written when any byte is outside RAM. */
    static void store(PhysicalMemory memory, long pa, byte[] data) throws MemoryAccessException {
        int len = data.length;
        ByteBuffer le = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        if ((pa & 7) == 0 && (len & 7) == 0) {
            long[] words = new long[len >>> 3];
            le.asLongBuffer().get(words);
            memory.write64s(pa, words, 0, words.length);
        } else if ((pa & 3) == 0 && (len & 3) == 0) {
            long[] words = new long[len >>> 2];
            for (int i = 0; i < words.length; i++) {
                words[i] = Integer.toUnsignedLong(le.getInt(4 * i));
            }
            memory.write32s(pa, words, 0, words.length);
        } else {
            memory.write(pa, data, 0, len);
        }
    }
}
