package org.iommuemu.core.driver.smmuv3;

import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.L1StreamDescriptor;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.core.smmuv3.StreamTableBase;

/**
 * The driver's stream table ({@code spec/SMMUV3.md} §5), laid out as Linux's {@code arm_smmu_init_strtab}
 * does: linear (2^sidBits STEs) when the SMMU has no 2-level tables or at most {@link StreamTableBase#LINUX_SPLIT}
 * StreamID bits, otherwise 2-level with SPLIT 8, an L1 table of at most 2^17 descriptors, and each 256-STE
 * level-2 table allocated when a stream of its range first gets an STE. Every STE starts as the initial entry
 * (abort, or bypass when bypass is allowed), in the linear table at once and in a level-2 table when it is
 * allocated, before its L1 descriptor is published.
 *
 * <p><b>Updates</b> ({@link #write}) never let the SMMU see a torn entry. The SMMU reads the eight words of an
 * STE one by one, so: when the old entry is invalid or aborts, nothing but word 0 is looked at, and words 1–7 are
 * written first and word 0 last; when only one word changes (word 0, or S1DSS in word 1), it is one
 * single-copy-atomic store of that word; otherwise the entry
 * is first made invalid (word 0 with V=0, then CFGI_STE and CMD_SYNC so no cached copy survives), then words 1–7
 * are written, then word 0. Each update ends with CFGI_STE (Leaf=1) and CMD_SYNC, as Linux's
 * {@code arm_smmu_write_ste}. Traffic that arrives while the entry is invalid meets V=0 (C_BAD_STE), the price
 * of this simple scheme over Linux's "used bits" analysis, which avoids the invalid step in more cases.
 *
 * <p>Thread-safe: one lock serialises updates and level-2 allocation.
 */
final class StreamTable {
    /** Linux's cap on level-1 descriptors (STRTAB_MAX_L1_ENTRIES): 2^17, a 1 MB L1 table. */
    static final int MAX_L1_LG2 = 17;

    private final PhysicalMemory memory;
    private final PageAllocator allocator;
    private final CommandQueue cmdq;
    private final Ste initial;
    private final int sidBits;
    private final boolean twoLevel;
    private final int split;
    private final int log2Size;
    private final long base;
    /** Level-2 table per L1 index (2-level only), 0 until allocated. */
    private final long[] l2Tables;
    private final long[] current = new long[Ste.DWORDS];
    private final long[] wanted = new long[Ste.DWORDS];

    /**
     * Allocates the table and fills it with {@code initial} entries.
     *
     * @param sidBits   StreamID bits to cover (min of IDR1.SIDSIZE and the driver's option)
     * @param twoLevel  use a 2-level table (the SMMU supports it and sidBits &gt; SPLIT)
     */
    StreamTable(PhysicalMemory memory, PageAllocator allocator, CommandQueue cmdq, Ste initial, int sidBits,
            boolean twoLevel) {
        this.memory = memory;
        this.allocator = allocator;
        this.cmdq = cmdq;
        this.initial = initial;
        this.twoLevel = twoLevel;
        if (twoLevel) {
            this.split = StreamTableBase.LINUX_SPLIT;
            int l1Lg2 = Math.min(sidBits - split, MAX_L1_LG2);
            this.log2Size = l1Lg2 + split;
            this.sidBits = log2Size;
            this.base = allocator.allocBytes((long) L1StreamDescriptor.SIZE << l1Lg2, "strtab-l1");
            this.l2Tables = new long[1 << l1Lg2];
        } else {
            this.split = 0;
            this.log2Size = sidBits;
            this.sidBits = sidBits;
            this.base = allocator.allocBytes((long) Ste.SIZE << sidBits, "strtab");
            this.l2Tables = null;
            fillInitial(base, 1L << sidBits);
        }
    }

    /** STRTAB_BASE: the table address with RA, as Linux writes it. */
    long baseRegister() {
        return StreamTableBase.encodeBase(base, true);
    }

    /** STRTAB_BASE_CFG: LOG2SIZE, SPLIT, FMT. */
    int cfgRegister() {
        return StreamTableBase.encodeCfg(log2Size, split, twoLevel ? StreamTableBase.FMT_2LVL : StreamTableBase.FMT_LINEAR);
    }

    boolean twoLevel() {
        return twoLevel;
    }

    /** StreamID bits covered: StreamIDs below 2^sidBits have an STE. */
    int sidBits() {
        return sidBits;
    }

    long base() {
        return base;
    }

    /** Level-2 tables allocated so far (0 for a linear table). */
    synchronized int l2TablesAllocated() {
        if (l2Tables == null) {
            return 0;
        }
        int n = 0;
        for (long t : l2Tables) {
            if (t != 0) {
                n++;
            }
        }
        return n;
    }

    /** Writes the STE of {@code streamId} safely (see the class comment) and invalidates the SMMU's copy. */
    synchronized void write(int streamId, Ste ste) {
        long at = steAddress(streamId, true);
        ste.encode(wanted);
        read(at, current);
        boolean wordsAfterFirstSame = true;
        for (int i = 1; i < Ste.DWORDS; i++) {
            wordsAfterFirstSame &= current[i] == wanted[i];
        }
        long dw0 = current[0];
        int differing = 0;
        int onlyWord = -1;
        for (int i = 0; i < Ste.DWORDS; i++) {
            if (current[i] != wanted[i]) {
                differing++;
                onlyWord = i;
            }
        }
        if (differing == 1 && onlyWord > 0) {
            // one word changes (S1DSS when a stream gains or loses its no-substream domain): a single-copy-atomic
            // store, so the SMMU sees either the whole old entry or the whole new one
            write64(at + 8L * onlyWord, wanted[onlyWord]);
            invalidate(streamId);
            return;
        }
        boolean oldIgnoresRest = !Ste.V.isSet(dw0) || Ste.configAborts(Ste.CONFIG.getInt(dw0));
        if (!wordsAfterFirstSame) {
            if (!oldIgnoresRest) {
                write64(at, Ste.V.put(dw0, false)); // break: the SMMU now sees an invalid entry
                invalidate(streamId);
            }
            try {
                memory.write64s(at + 8, wanted, 1, Ste.DWORDS - 1);
            } catch (MemoryAccessException e) {
                throw memoryFailure("writing the STE of StreamID " + Integer.toUnsignedString(streamId), at, e);
            }
        }
        write64(at, wanted[0]);
        invalidate(streamId);
    }

    /** The STE of {@code streamId} as it is in memory; for a 2-level table whose level-2 table is missing, null. */
    synchronized Ste read(int streamId) {
        long at = steAddress(streamId, false);
        if (at == 0) {
            return null;
        }
        read(at, current);
        return Ste.decode(current);
    }

    private void invalidate(int streamId) {
        long dw0 = Command.OPCODE.put(0, CommandOp.CFGI_STE);
        dw0 = Command.SID.put(dw0, Integer.toUnsignedLong(streamId));
        cmdq.submitRaw(dw0, Command.LEAF.put(0, true));
    }

    /** The address of the STE of {@code streamId}; allocates its level-2 table when asked to, else 0 if missing. */
    private long steAddress(int streamId, boolean allocate) {
        if (!StreamTableBase.inRange(streamId, sidBits, sidBits)) {
            throw new SmmuV3DriverException(SmmuV3DriverException.Kind.BAD_ARGUMENT,
                    "StreamID " + Integer.toUnsignedString(streamId) + " is outside the stream table (" + sidBits
                            + " StreamID bits)");
        }
        if (!twoLevel) {
            return StreamTableBase.linearSteAddress(base, streamId);
        }
        int l1 = (int) StreamTableBase.l1Index(streamId, split);
        long l2 = l2Tables[l1];
        if (l2 == 0) {
            if (!allocate) {
                return 0;
            }
            l2 = allocator.allocBytes((long) Ste.SIZE << split, "strtab-l2");
            fillInitial(l2, 1L << split);
            // published only now that every STE in it is initialised; a previously invalid L1 descriptor is not
            // cached by the SMMU, and the CFGI_STE after the STE write covers the stream anyway
            write64(base + (long) l1 * L1StreamDescriptor.SIZE, L1StreamDescriptor.forSplit(l2, split).encode());
            l2Tables[l1] = l2;
        }
        return l2 + StreamTableBase.l2Index(streamId, split) * Ste.SIZE;
    }

    private void fillInitial(long table, long entries) {
        long[] words = initial.encode();
        for (long i = 0; i < entries; i++) {
            long at = table + i * Ste.SIZE;
            try {
                memory.write64s(at, words, 0, Ste.DWORDS);
            } catch (MemoryAccessException e) {
                throw memoryFailure("initialising the stream table", at, e);
            }
        }
    }

    private void read(long at, long[] into) {
        try {
            memory.read64s(at, into, 0, Ste.DWORDS);
        } catch (MemoryAccessException e) {
            throw memoryFailure("reading an STE", at, e);
        }
    }

    private void write64(long at, long value) {
        try {
            memory.write64(at, value);
        } catch (MemoryAccessException e) {
            throw memoryFailure("writing the stream table", at, e);
        }
    }

    private static SmmuV3DriverException memoryFailure(String what, long at, MemoryAccessException e) {
        return new SmmuV3DriverException(SmmuV3DriverException.Kind.MEMORY,
                what + " at 0x" + Long.toHexString(at) + " failed: " + e.getMessage(), e);
    }
}
