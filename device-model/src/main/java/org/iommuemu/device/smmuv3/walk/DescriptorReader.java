package org.iommuemu.device.smmuv3.walk;

import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;

/**
 * How the walker reaches translation-table descriptors in guest memory: every descriptor read, and every
 * hardware update of the access flag or dirty state, goes through here and nowhere else. The device wraps it
 * to add a walk cache, fault injection, tracing and cost accounting; {@link #direct} is the plain pass-through
 * to {@link PhysicalMemory}.
 *
 * <p>Addresses are physical, 8-byte aligned. {@code stage} is 1 or 2 and {@code level} the Arm lookup level
 * (0..3) of the descriptor, so a wrapper can cost, trace or fault particular lookups without allocating. A
 * failure is a {@link MemoryAccessException}: the walker turns it into F_WALK_EABT with the address as
 * FetchAddr. Implementations must not allocate on success and must be safe for concurrent walks.
 */
public interface DescriptorReader {

    /** Reads the 64-bit little-endian descriptor at {@code pa} (single-copy atomic). */
    long read(long pa, int stage, int level) throws MemoryAccessException;

    /**
     * Atomically replaces the descriptor at {@code pa} with {@code update} if it still equals {@code expected},
     * and returns the value found (equal to {@code expected} exactly when the update happened). Used for
     * hardware access-flag and dirty-state updates (HTTU).
     */
    long compareAndExchange(long pa, long expected, long update, int stage, int level) throws MemoryAccessException;

    /** The pass-through reader: descriptors come straight from {@code memory}. */
    static DescriptorReader direct(PhysicalMemory memory) {
        return new DirectDescriptorReader(memory);
    }
}
