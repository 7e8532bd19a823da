package org.iommuemu.dma.masters;

/**
 * The completion code a simulated master writes back into a descriptor: one byte, the same values for every
 * master of this package. Software posts a descriptor with code {@link #PENDING} (0) and sees it change when
 * the device has finished with it.
 */
public enum CompletionCode {
    /** 0x00: not processed yet (what software writes when it posts a descriptor). */
    PENDING(0x00),
    /** 0x01: done, every byte moved. */
    OK(0x01),
    /** 0x02: a DMA read of data (a copy source, a TX buffer, a block write's segment) faulted. */
    READ_FAULT(0x02),
    /** 0x03: a DMA write of data (a copy destination, an RX buffer, a block read's segment) faulted. */
    WRITE_FAULT(0x03),
    /** 0x04: the descriptor itself is malformed (reserved bits set, a length the device cannot take). */
    BAD_DESCRIPTOR(0x04),
    /** 0x05: NIC RX only: the packet is longer than the descriptor's buffer; nothing was written. */
    BUFFER_TOO_SMALL(0x05);

    private static final CompletionCode[] BY_CODE = new CompletionCode[256];

    static {
        for (CompletionCode c : values()) {
            BY_CODE[c.code] = c;
        }
    }

    private final int code;

    CompletionCode(int code) {
        this.code = code;
    }

    /** The byte written into descriptors. */
    public int code() {
        return code;
    }

    /** Whether this code reports a failure (anything but {@link #PENDING} and {@link #OK}). */
    public boolean isError() {
        return code > OK.code;
    }

    /**
     * Decodes a code byte.
     *
     * @throws IllegalArgumentException for a value no master writes
     */
    public static CompletionCode of(int code) {
        CompletionCode c = code >= 0 && code < BY_CODE.length ? BY_CODE[code] : null;
        if (c == null) {
            throw new IllegalArgumentException("completion code 0x" + Integer.toHexString(code) + " is not defined");
        }
        return c;
    }
}
