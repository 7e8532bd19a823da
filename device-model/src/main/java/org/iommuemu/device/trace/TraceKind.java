package org.iommuemu.device.trace;

/**
 * The kinds of trace record, numbered as {@code iommuemu.v1.TraceKind} on the bus. What each record's fields
 * mean is listed there and in docs/OBSERVABILITY.md.
 */
public final class TraceKind {
    /** One translation of a chunk of DMA. */
    public static final int TRANSLATE = 1;
    /** One DMA request of a device session. */
    public static final int DMA = 2;
    /** A command / invalidation descriptor consumed. */
    public static final int COMMAND = 3;
    /** An event / fault record written. */
    public static final int EVENT = 4;
    /** A global error raised. */
    public static final int GLOBAL_ERROR = 5;
    /** An interrupt delivered, dropped, delayed or failed. */
    public static final int INTERRUPT = 6;
    /** An injected fault that fired. */
    public static final int INJECTION = 7;
    /** An operation of the emulator's driver. */
    public static final int DRIVER = 8;
    /** Queue occupancy after consumption. */
    public static final int QUEUE = 9;
    /** A cache sample (made by the streaming side, never recorded in the ring). */
    public static final int CACHE_SAMPLE = 10;
    /** One above the highest kind. */
    public static final int LIMIT = 11;

    /** Interrupt outcomes (the {@code result} of an {@link #INTERRUPT} record). */
    public static final int IRQ_DELIVERED = 0;
    public static final int IRQ_DROPPED = 1;
    public static final int IRQ_DELAYED = 2;
    public static final int IRQ_MSI_FAILED = 3;

    /** Queues (the {@code code} of a {@link #QUEUE} record). */
    public static final int QUEUE_COMMAND = 0;
    public static final int QUEUE_INVALIDATION = 1;

    private TraceKind() {
    }
}
