package org.iommuemu.device.machine;

import org.iommuemu.core.bits.Sizes;

/**
 * The bounds the bus enforces, reported by {@code Machine.Describe}.
 *
 * @param maxDmaLength largest single DMA (Read, Write, one Transfer op), bytes
 * @param maxMessageBytes largest inbound gRPC message, bytes (must leave room for a max-size DMA)
 * @param maxMemAccessLength largest Machine.MemRead / MemWrite, bytes
 * @param maxSessions most live DMA sessions
 * @param maxTransferInFlight most Transfer requests the server reads ahead of the replies a client has taken
 */
public record Limits(long maxDmaLength, long maxMessageBytes, long maxMemAccessLength, int maxSessions,
        int maxTransferInFlight) {
    /** Room for the protobuf framing around a payload of the maximum size. */
    public static final long MESSAGE_OVERHEAD = 64 * 1024;

    public static final Limits DEFAULTS = new Limits(1 << 20, (1 << 20) + MESSAGE_OVERHEAD, 1 << 20, 1024, 128);

    public Limits {
        check(maxDmaLength, 1, 64L << 20, "max DMA length");
        check(maxMemAccessLength, 1, 64L << 20, "max memory access length");
        check(maxSessions, 1, 1 << 20, "max sessions");
        check(maxTransferInFlight, 1, 1 << 16, "max Transfer in-flight requests");
        long needed = Math.max(maxDmaLength, maxMemAccessLength) + MESSAGE_OVERHEAD;
        if (maxMessageBytes < needed || maxMessageBytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("max message size " + maxMessageBytes + " must be at least "
                    + needed + " (the largest DMA or memory access plus " + MESSAGE_OVERHEAD
                    + " bytes of framing) and at most " + Integer.MAX_VALUE);
        }
    }

    /** These limits with another max DMA length, growing the message size to fit if needed. */
    public Limits withMaxDmaLength(long length) {
        long msg = Math.max(maxMessageBytes, Math.max(length, maxMemAccessLength) + MESSAGE_OVERHEAD);
        return new Limits(length, msg, maxMemAccessLength, maxSessions, maxTransferInFlight);
    }

    private static void check(long value, long min, long max, String what) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(what + " " + value + " is outside [" + min + ", "
                    + Sizes.format(max) + "]");
        }
    }
}
