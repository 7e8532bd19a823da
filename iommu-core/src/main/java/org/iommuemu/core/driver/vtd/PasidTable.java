package org.iommuemu.core.driver.vtd;

import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.GuestMemoryExhaustedException;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.vtd.VtdTables;

/**
 * One device's scalable-mode PASID table ({@code spec/VTD.md} §3, Linux's {@code intel/pasid.c}): a PASID directory
 * of 2^(PDTS+7) 8-byte entries indexed by PASID[19:6], each pointing at a 4 KB table of 64 64-byte PASID entries
 * indexed by PASID[5:0]. The directory is allocated whole, sized for the PASIDs wanted; leaf tables are allocated
 * on demand and their directory entry written (P with the pointer, one store) before any entry in them is used, as
 * Linux's {@code intel_pasid_get_entry}.
 *
 * <p>Entries are written in the safe order: qw1..qw7 first, then qw0, which holds P ({@link #write}); qw0 first when
 * torn down ({@link #clear}), as Linux's {@code intel_pasid_clear_entry}. Invalidation is the caller's. Guarded by
 * the caller.
 */
final class PasidTable {
    static final String TAG = "vtd-pasid";

    private final PhysicalMemory memory;
    private final PageAllocator alloc;
    private final long directory;
    private final int pdts;
    private final int pasidBits;
    private final long[] leaves;
    private int leafCount;

    /** A directory for PASIDs of {@code pasidBits} bits (7..20). */
    PasidTable(PhysicalMemory memory, PageAllocator alloc, int pasidBits) {
        this.memory = memory;
        this.alloc = alloc;
        this.pasidBits = pasidBits;
        int dirEntries = 1 << (pasidBits - VtdTables.PASIDS_PER_TABLE_LG2);
        this.pdts = VtdTables.pdtsFor(dirEntries);
        int actual = VtdTables.pasidDirEntries(pdts);
        try {
            this.directory = alloc.allocBytes((long) actual * VtdTables.PASID_DIR_ENTRY_SIZE, TAG);
        } catch (GuestMemoryExhaustedException e) {
            throw new VtdDriverException(VtdDriverException.Kind.MEMORY, "no memory for a PASID directory of " + actual
                    + " entries: " + e.getMessage(), e);
        }
        this.leaves = new long[actual];
    }

    long directory() {
        return directory;
    }

    /** The context entry's PDTS field. */
    int pdts() {
        return pdts;
    }

    /** PASIDs below {@code 2^pasidBits()} fit. */
    int pasidBits() {
        return pasidBits;
    }

    private long entry(int pasid, boolean allocate) {
        int dirIndex = pasid >>> VtdTables.PASIDS_PER_TABLE_LG2;
        long leaf = leaves[dirIndex];
        if (leaf == 0) {
            if (!allocate) {
                return 0;
            }
            try {
                leaf = alloc.allocPages(0, TAG);
            } catch (GuestMemoryExhaustedException e) {
                throw new VtdDriverException(VtdDriverException.Kind.MEMORY, "no memory for the PASID table of PASID "
                        + pasid + ": " + e.getMessage(), e);
            }
            long at = directory + (long) dirIndex * VtdTables.PASID_DIR_ENTRY_SIZE;
            try {
                memory.write64(at, VtdTables.pasidDirEntry(leaf));
            } catch (MemoryAccessException e) {
                alloc.free(leaf);
                throw ContextTables.memoryError("PASID directory entry " + dirIndex, at, e);
            }
            leaves[dirIndex] = leaf;
            leafCount++;
        }
        return leaf + (long) (pasid & (1 << VtdTables.PASIDS_PER_TABLE_LG2) - 1) * VtdTables.PASID_ENTRY_SIZE;
    }

    /** Writes the entry of {@code pasid}: qw1..qw7 (qw3..qw7 zero), then qw0. */
    void write(int pasid, long qw0, long qw1, long qw2) {
        long at = entry(pasid, true);
        try {
            memory.write64(at + 8, qw1);
            memory.write64(at + 16, qw2);
            for (int w = 3; w < 8; w++) {
                memory.write64(at + 8L * w, 0);
            }
            memory.write64(at, qw0);
        } catch (MemoryAccessException e) {
            throw ContextTables.memoryError("PASID entry " + pasid, at, e);
        }
    }

    /** Clears the entry of {@code pasid}, qw0 (P) first. Returns its old qw0 (0 if its table does not exist). */
    long clear(int pasid) {
        long at = entry(pasid, false);
        if (at == 0) {
            return 0;
        }
        try {
            long qw0 = memory.read64(at);
            for (int w = 0; w < 8; w++) {
                memory.write64(at + 8L * w, 0);
            }
            return qw0;
        } catch (MemoryAccessException e) {
            throw ContextTables.memoryError("PASID entry " + pasid, at, e);
        }
    }

    /** The entry's qw{@code word} (0 if its table does not exist). */
    long read(int pasid, int word) {
        long at = entry(pasid, false);
        if (at == 0) {
            return 0;
        }
        try {
            return memory.read64(at + 8L * word);
        } catch (MemoryAccessException e) {
            throw ContextTables.memoryError("PASID entry " + pasid, at, e);
        }
    }

    /** Gives every page back (the unit must no longer reach the table: context entry cleared and invalidated). */
    void free() {
        for (int i = 0; i < leaves.length; i++) {
            if (leaves[i] != 0) {
                alloc.free(leaves[i]);
                leaves[i] = 0;
            }
        }
        leafCount = 0;
        alloc.free(directory);
    }

    int leafTables() {
        return leafCount;
    }

    @Override
    public String toString() {
        return "PasidTable[dir " + Bits.hex(directory) + ", PDTS " + pdts + ", " + leafCount + " leaves]";
    }
}
