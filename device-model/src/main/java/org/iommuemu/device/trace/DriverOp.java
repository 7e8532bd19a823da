package org.iommuemu.device.trace;

/** The operations of the emulator's driver a {@link TraceKind#DRIVER} record names (its {@code code}). */
public enum DriverOp {
    /** Not a driver operation (code 0). */
    NONE,
    /** Domain allocation. */
    DOMAIN_ALLOC,
    /** Domain freed. */
    DOMAIN_FREE,
    /** A stream attached to a domain. */
    ATTACH,
    /** A stream detached. */
    DETACH,
    /** One mapping. */
    MAP,
    /** A scatter-gather mapping. */
    MAP_SG,
    /** One unmapping. */
    UNMAP,
    /** A flush of the domain's pending invalidations (IOTLB sync). */
    FLUSH;

    /** The op with code {@code code}, or {@link #NONE}. */
    public static DriverOp of(long code) {
        DriverOp[] all = values();
        return code > 0 && code < all.length ? all[(int) code] : NONE;
    }
}
