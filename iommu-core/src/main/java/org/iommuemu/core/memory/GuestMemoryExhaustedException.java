package org.iommuemu.core.memory;

/** The physical page allocator has no free block of the requested size (the guest's ENOMEM). */
public final class GuestMemoryExhaustedException extends RuntimeException {
    public GuestMemoryExhaustedException(String message) {
        super(message);
    }
}
