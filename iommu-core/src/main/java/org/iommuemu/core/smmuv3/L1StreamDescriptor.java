package org.iommuemu.core.smmuv3;

/**
 * A level-1 descriptor of a two-level stream table: one 64-bit little-endian word ({@code spec/SMMUV3.md}
 * §5): SPAN[4:0] and L2Ptr[51:6].
 *
 * <p>SPAN 0 means no level-2 table (the descriptor is invalid); otherwise the level-2 table at L2Ptr holds
 * 2^(SPAN−1) STEs. Linux writes SPAN = SPLIT + 1 (a level-2 table covering the whole split).
 *
 * @param span  SPAN, [4:0]
 * @param l2Ptr L2Ptr, [51:6]: address of the level-2 table, in place (64-byte aligned)
 */
public record L1StreamDescriptor(int span, long l2Ptr) {
    /** Size of the descriptor in bytes. */
    public static final int SIZE = 8;

    public static final BitField SPAN = BitField.of("SPAN", 0, 4, 0);
    public static final BitField L2PTR = BitField.of("L2Ptr", 0, 51, 6);

    /** The invalid descriptor (SPAN 0, no table). */
    public static final L1StreamDescriptor INVALID = new L1StreamDescriptor(0, 0);

    /** Rejects values that do not fit their fields. */
    public L1StreamDescriptor {
        SPAN.checkValue(span);
        L2PTR.checkAddress(l2Ptr);
    }

    /** Decodes a descriptor word. */
    public static L1StreamDescriptor decode(long word) {
        return new L1StreamDescriptor(SPAN.getInt(word), L2PTR.address(word));
    }

    /** The descriptor word. */
    public long encode() {
        return L2PTR.putAddress(SPAN.put(0, span), l2Ptr);
    }

    /** A descriptor for a level-2 table covering a whole split of {@code splitLg2} SID bits, as Linux writes. */
    public static L1StreamDescriptor forSplit(long l2Ptr, int splitLg2) {
        return new L1StreamDescriptor(splitLg2 + 1, l2Ptr);
    }

    /** Whether the descriptor points at a level-2 table (SPAN ≠ 0). */
    public boolean isValid() {
        return span != 0;
    }

    /** Number of STEs in the level-2 table: 2^(SPAN−1), or 0 when invalid. */
    public long l2Entries() {
        return isValid() ? 1L << (span - 1) : 0;
    }

    /** SPAN of a descriptor word, without decoding. */
    public static int span(long word) {
        return SPAN.getInt(word);
    }

    /** L2Ptr of a descriptor word, in place, without decoding. */
    public static long l2Ptr(long word) {
        return L2PTR.address(word);
    }
}
