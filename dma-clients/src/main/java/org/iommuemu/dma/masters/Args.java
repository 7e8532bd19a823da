package org.iommuemu.dma.masters;

/** Parameter checks that name the parameter and the value. */
final class Args {
    /** The largest chunk a master moves with one DMA unless told otherwise (the bus's default limit is 1 MiB). */
    static final int DEFAULT_MAX_TRANSFER = 64 * 1024;

    private Args() {}

    static int range(String name, int value, int min, int max) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(name + " " + value + " is outside [" + min + ", " + max + "]");
        }
        return value;
    }

    static long range(String name, long value, long min, long max) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(name + " " + value + " is outside [" + min + ", " + max + "]");
        }
        return value;
    }

    static long aligned(String name, long value, int alignment) {
        if ((value & (alignment - 1)) != 0) {
            throw new IllegalArgumentException(name + " 0x" + Long.toHexString(value) + " is not " + alignment
                    + "-byte aligned");
        }
        return value;
    }

    /** A ring that must not wrap around the top of the 64-bit iova space. */
    static void ring(String baseName, long base, String entriesName, int entries, int entrySize) {
        aligned(baseName, base, entrySize);
        range(entriesName, entries, 2, 1 << 20);
        long last = base + (long) entries * entrySize - 1;
        if (Long.compareUnsigned(last, base) < 0) {
            throw new IllegalArgumentException(baseName + " 0x" + Long.toHexString(base) + " with " + entries
                    + " entries of " + entrySize + " bytes wraps past the top of the address space");
        }
    }

    static <T> T notNull(String name, T value) {
        if (value == null) {
            throw new IllegalArgumentException(name + " is null");
        }
        return value;
    }
}
