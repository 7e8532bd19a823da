package org.iommuemu.core.smmuv3;

/**
 * A level-1 descriptor of a two-level CD table: one 64-bit little-endian word ({@code spec/SMMUV3.md} §6,
 * Linux {@code CTXDESC_L1_DESC_*}): V[0] and L2Ptr[51:12].
 *
 * <p>With 64 KB leaves ({@link Ste#S1FMT_64K_L2}) the L1 index is SSID[19:10] and the leaf table at L2Ptr
 * holds 1024 CDs indexed by SSID[9:0] ({@link Ste#cdLeafLg2}).
 *
 * @param valid V, [0]
 * @param l2Ptr L2Ptr, [51:12]: address of the leaf CD table, in place (4 KB aligned)
 */
public record L1CdDescriptor(boolean valid, long l2Ptr) {
    /** Size of the descriptor in bytes. */
    public static final int SIZE = 8;

    public static final BitField V = BitField.flag("V", 0, 0);
    public static final BitField L2PTR = BitField.of("L2Ptr", 0, 51, 12);

    /** The invalid descriptor. */
    public static final L1CdDescriptor INVALID = new L1CdDescriptor(false, 0);

    /** Rejects an L2Ptr with bits outside [51:12]. */
    public L1CdDescriptor {
        L2PTR.checkAddress(l2Ptr);
    }

    /** Decodes a descriptor word. */
    public static L1CdDescriptor decode(long word) {
        return new L1CdDescriptor(V.isSet(word), L2PTR.address(word));
    }

    /** The descriptor word. */
    public long encode() {
        return L2PTR.putAddress(V.put(0, valid), l2Ptr);
    }

    /** A valid descriptor pointing at the leaf table {@code l2Ptr}. */
    public static L1CdDescriptor of(long l2Ptr) {
        return new L1CdDescriptor(true, l2Ptr);
    }

    /** V of a descriptor word, without decoding. */
    public static boolean valid(long word) {
        return V.isSet(word);
    }

    /** L2Ptr of a descriptor word, in place, without decoding. */
    public static long l2Ptr(long word) {
        return L2PTR.address(word);
    }
}
