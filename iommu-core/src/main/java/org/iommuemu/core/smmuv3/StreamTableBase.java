package org.iommuemu.core.smmuv3;

/**
 * The STRTAB_BASE and STRTAB_BASE_CFG registers and stream-table indexing ({@code spec/SMMUV3.md} §1, §5):
 * STRTAB_BASE ADDR[51:6] and RA[62]; STRTAB_BASE_CFG LOG2SIZE[5:0], SPLIT[10:6] and FMT[17:16].
 *
 * <p>Linear (FMT 0): 2^LOG2SIZE STEs at ADDR. Two-level (FMT 1): 2^(LOG2SIZE−SPLIT) L1 descriptors at ADDR,
 * indexed by SID[LOG2SIZE−1:SPLIT]; the L2 index is SID[SPLIT−1:0]. All methods are static and
 * allocation-free.
 */
public final class StreamTableBase {
    private StreamTableBase() {}

    public static final BitField ADDR = BitField.of("ADDR", 0, 51, 6);
    public static final BitField RA = BitField.flag("RA", 0, 62);

    public static final BitField LOG2SIZE = BitField.of("LOG2SIZE", 0, 5, 0);
    public static final BitField SPLIT = BitField.of("SPLIT", 0, 10, 6);
    public static final BitField FMT = BitField.of("FMT", 0, 17, 16);

    /** FMT: one linear table of STEs. */
    public static final int FMT_LINEAR = 0;
    /** FMT: two-level table of L1 descriptors and L2 STE tables. */
    public static final int FMT_2LVL = 1;
    /** The SPLIT Linux uses: 256 STEs per L2 table. */
    public static final int LINUX_SPLIT = 8;

    /** ADDR of STRTAB_BASE, in place. */
    public static long address(long base) {
        return ADDR.address(base);
    }

    /** RA of STRTAB_BASE. */
    public static boolean readAllocate(long base) {
        return RA.isSet(base);
    }

    /** A STRTAB_BASE value. */
    public static long encodeBase(long address, boolean readAllocate) {
        return RA.put(ADDR.putAddress(0, ADDR.checkAddress(address)), readAllocate);
    }

    /** LOG2SIZE of STRTAB_BASE_CFG. */
    public static int log2Size(int cfg) {
        return LOG2SIZE.getInt(Integer.toUnsignedLong(cfg));
    }

    /** SPLIT of STRTAB_BASE_CFG. */
    public static int split(int cfg) {
        return SPLIT.getInt(Integer.toUnsignedLong(cfg));
    }

    /** FMT of STRTAB_BASE_CFG. */
    public static int fmt(int cfg) {
        return FMT.getInt(Integer.toUnsignedLong(cfg));
    }

    /** A STRTAB_BASE_CFG value. */
    public static int encodeCfg(int log2Size, int split, int fmt) {
        long w = LOG2SIZE.put(0, LOG2SIZE.checkValue(log2Size));
        w = SPLIT.put(w, SPLIT.checkValue(split));
        return (int) FMT.put(w, FMT.checkValue(fmt));
    }

    /**
     * Whether a StreamID is within the table: below 2^min(LOG2SIZE, SIDSIZE); otherwise C_BAD_STREAMID
     * (§5).
     */
    public static boolean inRange(int streamId, int log2Size, int sidSize) {
        int bits = Math.min(log2Size, sidSize);
        return bits >= Integer.SIZE || (Integer.toUnsignedLong(streamId) >>> bits) == 0;
    }

    /** Address of the STE of {@code streamId} in a linear table. */
    public static long linearSteAddress(long tableAddress, int streamId) {
        return tableAddress + Integer.toUnsignedLong(streamId) * Ste.SIZE;
    }

    /** Index of the L1 descriptor of {@code streamId} in a two-level table: SID >> SPLIT. */
    public static long l1Index(int streamId, int split) {
        return Integer.toUnsignedLong(streamId) >>> split;
    }

    /** Index of the STE of {@code streamId} in its L2 table: SID[SPLIT−1:0]. */
    public static long l2Index(int streamId, int split) {
        return Integer.toUnsignedLong(streamId) & ((1L << split) - 1);
    }

    /** Address of the L1 descriptor of {@code streamId} in a two-level table. */
    public static long l1DescriptorAddress(long tableAddress, int streamId, int split) {
        return tableAddress + l1Index(streamId, split) * L1StreamDescriptor.SIZE;
    }
}
