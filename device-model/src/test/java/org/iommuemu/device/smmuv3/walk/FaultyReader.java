package org.iommuemu.device.smmuv3.walk;

import org.iommuemu.core.memory.MemoryAccessException;

/** Fails one chosen descriptor read, as a fault injector wrapping the walker's reader would. */
final class FaultyReader implements DescriptorReader {
    private final DescriptorReader inner;
    private final int stage;
    private int remaining;
    /** Where the injected abort happened, or -1. */
    long failedAt = -1;

    /** Fails the {@code skip}-th (0-based) read of a {@code stage} descriptor. */
    FaultyReader(DescriptorReader inner, int stage, int skip) {
        this.inner = inner;
        this.stage = stage;
        this.remaining = skip;
    }

    @Override
    public long read(long pa, int stage, int level) throws MemoryAccessException {
        if (stage == this.stage && remaining-- == 0) {
            failedAt = pa;
            throw new MemoryAccessException(pa, 8, MemoryAccessException.Reason.INJECTED);
        }
        return inner.read(pa, stage, level);
    }

    @Override
    public long compareAndExchange(long pa, long expected, long update, int stage, int level)
            throws MemoryAccessException {
        return inner.compareAndExchange(pa, expected, update, stage, level);
    }
}
