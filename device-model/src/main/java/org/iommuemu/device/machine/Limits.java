package org.iommuemu.device.machine;

import org.iommuemu.core.bits.Sizes;

/**
 * The bounds the bus enforces, reported by {@code Machine.Describe}. Exceeding one is refused with
 * RESOURCE_EXHAUSTED and a message naming the limit; nothing else is affected.
 *
 * @param maxDmaLength largest single DMA (Read, Write, one Transfer op), bytes
 * @param maxMessageBytes largest inbound gRPC message, bytes (must leave room for a max-size DMA)
 * @param maxMemAccessLength largest Machine.MemRead / MemWrite, bytes
 * @param maxSessions most live DMA sessions
 * @param maxTransferInFlight most Transfer requests the server reads ahead of the replies a client has taken
 * @param maxRamBytes most guest RAM a machine may be configured with (all regions together), bytes: RAM is
 *     backed on first write, so this bounds the host memory guests and clients can make the server hold
 * @param maxSessionsPerConnection most live DMA sessions one client connection may hold, so that one client
 *     cannot take every session
 */
public record Limits(long maxDmaLength, long maxMessageBytes, long maxMemAccessLength, int maxSessions,
        int maxTransferInFlight, long maxRamBytes, int maxSessionsPerConnection) {
    /** Room for the protobuf framing around a payload of the maximum size. */
    public static final long MESSAGE_OVERHEAD = 64 * 1024;

    /** The default {@link #maxRamBytes}: 64 GiB. */
    public static final long DEFAULT_MAX_RAM = 64L << 30;

    /** The largest {@link #maxRamBytes} that can be configured: 16 TiB. */
    public static final long MAX_MAX_RAM = 16L << 40;

    /** The default {@link #maxSessionsPerConnection}. */
    public static final int DEFAULT_MAX_SESSIONS_PER_CONNECTION = 256;

    public static final Limits DEFAULTS = new Limits(1 << 20, (1 << 20) + MESSAGE_OVERHEAD, 1 << 20, 1024, 128,
            DEFAULT_MAX_RAM, DEFAULT_MAX_SESSIONS_PER_CONNECTION);

    public Limits {
        check(maxDmaLength, 1, 64L << 20, "max DMA length");
        check(maxMemAccessLength, 1, 64L << 20, "max memory access length");
        check(maxSessions, 1, 1 << 20, "max sessions");
        check(maxTransferInFlight, 1, 1 << 16, "max Transfer in-flight requests");
        check(maxRamBytes, 4096, MAX_MAX_RAM, "max RAM");
        check(maxSessionsPerConnection, 1, 1 << 20, "max sessions per connection");
        long needed = Math.max(maxDmaLength, maxMemAccessLength) + MESSAGE_OVERHEAD;
        if (maxMessageBytes < needed || maxMessageBytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("max message size " + maxMessageBytes + " must be at least "
                    + needed + " (the largest DMA or memory access plus " + MESSAGE_OVERHEAD
                    + " bytes of framing) and at most " + Integer.MAX_VALUE);
        }
    }

    /**
     * The five bus bounds with the default max RAM and a per-connection session bound of
     * {@code min(maxSessions, DEFAULT_MAX_SESSIONS_PER_CONNECTION)}.
     */
    public Limits(long maxDmaLength, long maxMessageBytes, long maxMemAccessLength, int maxSessions,
            int maxTransferInFlight) {
        this(maxDmaLength, maxMessageBytes, maxMemAccessLength, maxSessions, maxTransferInFlight, DEFAULT_MAX_RAM,
                Math.min(maxSessions, DEFAULT_MAX_SESSIONS_PER_CONNECTION));
    }

    /** These limits with another max DMA length, growing the message size to fit if needed. */
    public Limits withMaxDmaLength(long length) {
        long msg = Math.max(maxMessageBytes, Math.max(length, maxMemAccessLength) + MESSAGE_OVERHEAD);
        return new Limits(length, msg, maxMemAccessLength, maxSessions, maxTransferInFlight, maxRamBytes,
                maxSessionsPerConnection);
    }

    /** These limits with another max RAM. */
    public Limits withMaxRamBytes(long bytes) {
        return new Limits(maxDmaLength, maxMessageBytes, maxMemAccessLength, maxSessions, maxTransferInFlight, bytes,
                maxSessionsPerConnection);
    }

    /** These limits with other session bounds (global and per connection). */
    public Limits withSessions(int sessions, int perConnection) {
        return new Limits(maxDmaLength, maxMessageBytes, maxMemAccessLength, sessions, maxTransferInFlight,
                maxRamBytes, perConnection);
    }

    private static void check(long value, long min, long max, String what) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(what + " " + value + " is outside [" + min + ", "
                    + Sizes.format(max) + "]");
        }
    }
}
