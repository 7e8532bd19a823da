package org.iommuemu.device.smmuv3.walk;

import java.util.Objects;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;

/** {@link DescriptorReader} straight onto {@link PhysicalMemory}: no cache, no accounting. */
public final class DirectDescriptorReader implements DescriptorReader {
    private final PhysicalMemory memory;

    public DirectDescriptorReader(PhysicalMemory memory) {
        this.memory = Objects.requireNonNull(memory, "memory");
    }

    public PhysicalMemory memory() {
        return memory;
    }

    @Override
    public long read(long pa, int stage, int level) throws MemoryAccessException {
        return memory.read64(pa);
    }

    @Override
    public long compareAndExchange(long pa, long expected, long update, int stage, int level)
            throws MemoryAccessException {
        return memory.compareAndExchange64(pa, expected, update);
    }

    @Override
    public String toString() {
        return "DirectDescriptorReader[" + memory + "]";
    }
}
