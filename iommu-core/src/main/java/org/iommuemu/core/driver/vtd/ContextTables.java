package org.iommuemu.core.driver.vtd;

import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.GuestMemoryExhaustedException;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.core.vtd.VtdTables;

/**
 * The root table and the context tables below it ({@code spec/VTD.md} §3), legacy or scalable-mode.
 *
 * <p>Legacy: a root entry per bus points at one context table of 256 16-byte entries indexed by devfn. Scalable: a
 * root entry's lower pointer (LCTP, qw0) covers devfn 0–127 and its upper pointer (UCTP, qw1) devfn 128–255, each a
 * table of 128 32-byte entries. Context tables are allocated (zeroed) when a device of the bus (half) is first given
 * an entry, and the root entry is written then, present bit together with the pointer in one 8-byte store; like
 * Linux, they are kept until the driver goes away.
 *
 * <p>Context entries are written in the safe order: every word but the one holding P first, then qw0 (P last) on
 * {@link #writeContext}; qw0 (P cleared) first on {@link #clearContext}. The unit is coherent or not, the stores are
 * the same (there is no CPU cache to flush in the emulated machine). Invalidation is the caller's.
 *
 * <p>Guarded by the caller ({@link VtdDomains} serialises attach and detach).
 */
final class ContextTables {
    private static final String TAG = "vtd-context";

    private final PhysicalMemory memory;
    private final PageAllocator alloc;
    private final boolean scalable;
    private final long root;
    private int contextTables;

    ContextTables(PhysicalMemory memory, PageAllocator alloc, boolean scalable) {
        this.memory = memory;
        this.alloc = alloc;
        this.scalable = scalable;
        this.root = alloc.allocPages(0, "vtd-root");
    }

    long root() {
        return root;
    }

    boolean scalable() {
        return scalable;
    }

    /** RTADDR: the root table and TTM. */
    long rtaddrRegister() {
        return root | (long) (scalable ? VtdRegs.TTM_SCALABLE : VtdRegs.TTM_LEGACY) << VtdRegs.RTADDR_TTM;
    }

    int contextTablesAllocated() {
        return contextTables;
    }

    /** Bytes in a context entry of this mode. */
    int entrySize() {
        return scalable ? VtdTables.SM_CONTEXT_ENTRY_SIZE : VtdTables.CONTEXT_ENTRY_SIZE;
    }

    /**
     * The address of the context entry of {@code requesterId}; with {@code allocate} its context table is made (and
     * the root entry written) when missing, else 0 is returned for a missing table.
     */
    long contextEntry(int requesterId, boolean allocate) {
        int bus = VtdTables.bus(requesterId);
        int devfn = VtdTables.devfn(requesterId);
        boolean upper = scalable && devfn >= 128;
        long rootWord = VtdTables.rootEntryAddress(root, bus) + (upper ? 8 : 0);
        try {
            long re = memory.read64(rootWord);
            long table;
            if (Bits.bit(re, VtdTables.ROOT_P)) {
                table = re & VtdTables.PTR_MASK;
            } else if (!allocate) {
                return 0;
            } else {
                try {
                    table = alloc.allocPages(0, TAG);
                } catch (GuestMemoryExhaustedException e) {
                    throw new VtdDriverException(VtdDriverException.Kind.MEMORY, "no memory for the context table of bus "
                            + bus + (scalable ? (upper ? " (devfn 128-255)" : " (devfn 0-127)") : "") + ": "
                            + e.getMessage(), e);
                }
                contextTables++;
                memory.write64(rootWord, VtdTables.rootEntry(table)); // LP/UP share bit 0 and the pointer field
            }
            int index = scalable ? devfn & 0x7F : devfn;
            return table + (long) index * entrySize();
        } catch (MemoryAccessException e) {
            throw memoryError("root entry of bus " + bus, rootWord, e);
        }
    }

    /** Reads the context entry's qw0 (0 when its table does not exist). */
    long readContextQw0(int requesterId) {
        long at = contextEntry(requesterId, false);
        return at == 0 ? 0 : read(at, requesterId);
    }

    /** Reads the context entry's qw1 (0 when its table does not exist). */
    long readContextQw1(int requesterId) {
        long at = contextEntry(requesterId, false);
        return at == 0 ? 0 : read(at + 8, requesterId);
    }

    /** Writes a context entry: qw1 (and qw2, qw3 zero in scalable mode), then qw0, which holds P. */
    void writeContext(int requesterId, long qw0, long qw1) {
        long at = contextEntry(requesterId, true);
        try {
            memory.write64(at + 8, qw1);
            if (scalable) {
                memory.write64(at + 16, 0);
                memory.write64(at + 24, 0);
            }
            memory.write64(at, qw0);
        } catch (MemoryAccessException e) {
            throw memoryError("context entry of " + rid(requesterId), at, e);
        }
    }

    /**
     * Rewrites the qw0 of a present context entry (one 8-byte store: P and the other words unchanged), e.g. to switch
     * device TLBs on or off. Invalidation is the caller's.
     */
    void updateContextQw0(int requesterId, long qw0) {
        long at = contextEntry(requesterId, false);
        if (at == 0) {
            throw new IllegalStateException("no context table holds the entry of " + rid(requesterId));
        }
        try {
            memory.write64(at, qw0);
        } catch (MemoryAccessException e) {
            throw memoryError("context entry of " + rid(requesterId), at, e);
        }
    }

    /** Clears a context entry: qw0 (P) first, then the rest. Returns the old qw1 (legacy: AW and DID), 0 if absent. */
    long clearContext(int requesterId) {
        long at = contextEntry(requesterId, false);
        if (at == 0) {
            return 0;
        }
        try {
            long qw1 = memory.read64(at + 8);
            memory.write64(at, 0);
            memory.write64(at + 8, 0);
            if (scalable) {
                memory.write64(at + 16, 0);
                memory.write64(at + 24, 0);
            }
            return qw1;
        } catch (MemoryAccessException e) {
            throw memoryError("context entry of " + rid(requesterId), at, e);
        }
    }

    private long read(long at, int requesterId) {
        try {
            return memory.read64(at);
        } catch (MemoryAccessException e) {
            throw memoryError("context entry of " + rid(requesterId), at, e);
        }
    }

    static String rid(int requesterId) {
        return String.format("%02x:%02x.%d", VtdTables.bus(requesterId), VtdTables.devfn(requesterId) >>> 3,
                requesterId & 7);
    }

    static VtdDriverException memoryError(String what, long at, MemoryAccessException e) {
        return new VtdDriverException(VtdDriverException.Kind.MEMORY, "accessing the " + what + " at " + Bits.hex(at)
                + " failed: " + e.getMessage(), e);
    }
}
