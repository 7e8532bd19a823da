package org.iommuemu.dma;

import org.iommuemu.proto.v1.AtcInvalidation;
import org.iommuemu.proto.v1.AtsPermissions;
import org.iommuemu.proto.v1.TranslateReply;

/**
 * A device-side address translation cache (ATC) for ATS masters: translations from {@code Dma.Translate} replies,
 * kept by substream and input region, looked up per access and dropped by the IOMMU's invalidations
 * ({@code Dma.AtcInvalidations}, see {@link AtcListener}). Bounded: at most {@link #capacity()} regions; inserting
 * into a full cache evicts the least recently used one.
 *
 * <p>Lookups allocate nothing: {@link #lookup} returns the physical address, or {@link #MISS}. Thread-safe (one
 * monitor; a lookup is a scan of at most {@code capacity} entries, so keep the capacity small, as real ATCs are).
 */
public final class Atc {
    /** What {@link #lookup} returns on a miss (or when the cached region does not allow the access). */
    public static final long MISS = -1L;
    /** Permission bit: reads allowed. */
    public static final int READ = 1;
    /** Permission bit: writes allowed. */
    public static final int WRITE = 2;
    /** Permission bit: instruction fetches allowed. */
    public static final int EXECUTE = 4;
    /** Permission bit: the region was translated for privileged accesses. */
    public static final int PRIVILEGED = 8;
    /** The largest capacity accepted. */
    public static final int MAX_CAPACITY = 4096;
    /** The capacity of {@link #Atc()}: small, as real ATCs are, and cheap to scan. */
    public static final int DEFAULT_CAPACITY = 64;

    private final int capacity;
    private final boolean[] valid;
    private final int[] substream;
    private final long[] base;
    private final long[] last;
    private final long[] output;
    private final int[] perms;
    private final long[] used;
    private long clock;
    private long hits;
    private long misses;
    private long invalidated;
    private long evictions;

    /** An ATC of {@link #DEFAULT_CAPACITY} regions. */
    public Atc() {
        this(DEFAULT_CAPACITY);
    }

    /** An ATC of {@code capacity} regions, 1 .. {@link #MAX_CAPACITY}. */
    public Atc(int capacity) {
        if (capacity < 1 || capacity > MAX_CAPACITY) {
            throw new IllegalArgumentException("ATC capacity must be 1.." + MAX_CAPACITY + ", was " + capacity);
        }
        this.capacity = capacity;
        this.valid = new boolean[capacity];
        this.substream = new int[capacity];
        this.base = new long[capacity];
        this.last = new long[capacity];
        this.output = new long[capacity];
        this.perms = new int[capacity];
        this.used = new long[capacity];
    }

    /** Regions it can hold. */
    public int capacity() {
        return capacity;
    }

    /** The permission bits ({@link #READ}...) of a Translate reply's permissions. */
    public static int perms(AtsPermissions p) {
        return (p.getRead() ? READ : 0) | (p.getWrite() ? WRITE : 0) | (p.getExecute() ? EXECUTE : 0)
                | (p.getPrivileged() ? PRIVILEGED : 0);
    }

    /**
     * Caches the region a Translate reply granted for substream {@code substreamId} (-1: none). A reply with a fault
     * or without any permission caches nothing (PCIe ATCs do not keep "no access" answers); returns whether it cached.
     */
    public boolean insert(int substreamId, TranslateReply reply) {
        if (reply.hasFault() || (perms(reply.getPermissions()) & (READ | WRITE | EXECUTE)) == 0) {
            return false;
        }
        insert(substreamId, reply.getInputBase(), reply.getSize(), reply.getTranslatedAddress(),
                perms(reply.getPermissions()));
        return true;
    }

    /**
     * Caches {@code size} bytes (a power of two, 0 meaning 2^64) from {@code inputBase} translating to
     * {@code outputBase}, with {@code permBits}, for substream {@code substreamId} (-1: none). Regions of the same
     * substream it overlaps are replaced.
     */
    public synchronized void insert(int substreamId, long inputBase, long size, long outputBase, int permBits) {
        long end = size == 0 ? -1L : inputBase + size - 1;
        remove(false, substreamId, inputBase, end, false); // same substream only: another one's region stays
        int slot = -1;
        long oldest = Long.MAX_VALUE;
        for (int i = 0; i < capacity; i++) {
            if (!valid[i]) {
                slot = i;
                break;
            }
            if (used[i] < oldest) {
                oldest = used[i];
                slot = i;
            }
        }
        if (valid[slot]) {
            evictions++;
        }
        valid[slot] = true;
        substream[slot] = substreamId;
        base[slot] = inputBase;
        last[slot] = end;
        output[slot] = outputBase;
        perms[slot] = permBits;
        used[slot] = ++clock;
    }

    /**
     * The physical address of {@code iova} for substream {@code substreamId} (-1: none) if a cached region covers it
     * and allows the access ({@code write}: {@link #WRITE}, else {@link #READ}); otherwise {@link #MISS}.
     */
    public synchronized long lookup(int substreamId, long iova, boolean write) {
        int i = find(substreamId, iova);
        if (i < 0 || (perms[i] & (write ? WRITE : READ)) == 0) {
            misses++;
            return MISS;
        }
        hits++;
        used[i] = ++clock;
        return output[i] + (iova - base[i]);
    }

    /**
     * {@link #lookup} without counting a hit or a miss and without refreshing the region's age: for a caller that
     * has just inserted the region after counting the miss that made it translate.
     */
    public synchronized long peek(int substreamId, long iova, boolean write) {
        int i = find(substreamId, iova);
        if (i < 0 || (perms[i] & (write ? WRITE : READ)) == 0) {
            return MISS;
        }
        return output[i] + (iova - base[i]);
    }

    /**
     * Bytes from {@code iova} to the end of the cached region covering it (0 when none; -1, unsigned 2^64 - iova,
     * never: a region ending at 2^64 reports {@code -iova}).
     */
    public synchronized long remaining(int substreamId, long iova) {
        int i = find(substreamId, iova);
        return i < 0 ? 0 : last[i] - iova + 1;
    }

    private int find(int substreamId, long iova) {
        for (int i = 0; i < capacity; i++) {
            if (valid[i] && substream[i] == substreamId
                    && Long.compareUnsigned(iova - base[i], last[i] - base[i]) <= 0) {
                return i;
            }
        }
        return -1;
    }

    /**
     * Applies an invalidation from the IOMMU: drops every region that overlaps {@code size} bytes from
     * {@code address} (0: the whole address space) and belongs to substream {@code substreamId}, or to any
     * substream (and none) when {@code substreamId} is -1 or {@code global}. An invalidation without a substream is
     * a PCIe Invalidate Request without a PASID, which the device applies to every entry in the range whatever
     * PASID it was requested with (SMMUv3 ATC_INV with SSV=0, VT-d device-TLB invalidation); there is no way to
     * invalidate only the entries without one. Returns how many regions it dropped.
     */
    public synchronized int invalidate(boolean global, int substreamId, long address, long size) {
        return remove(global || substreamId < 0, substreamId, size == 0 ? 0 : address,
                size == 0 ? -1L : address + size - 1, true);
    }

    /** Applies an AtcInvalidation message; returns how many regions it dropped. */
    public int invalidate(AtcInvalidation inv) {
        return invalidate(inv.getGlobal(), inv.hasSubstreamId() ? inv.getSubstreamId() : -1, inv.getAddress(),
                inv.getSize());
    }

    /** Drops everything. */
    public synchronized void clear() {
        for (int i = 0; i < capacity; i++) {
            if (valid[i]) {
                valid[i] = false;
                invalidated++;
            }
        }
    }

    /** Drops the regions overlapping {@code [first, end]} of {@code substreamId} (of any substream if {@code any}). */
    private int remove(boolean any, int substreamId, long first, long end, boolean count) {
        int n = 0;
        for (int i = 0; i < capacity; i++) {
            if (valid[i] && (any || substream[i] == substreamId)
                    && Long.compareUnsigned(base[i], end) <= 0 && Long.compareUnsigned(first, last[i]) <= 0) {
                valid[i] = false;
                n++;
            }
        }
        if (count) {
            invalidated += n;
        }
        return n;
    }

    /** Regions held now. */
    public synchronized int size() {
        int n = 0;
        for (int i = 0; i < capacity; i++) {
            if (valid[i]) {
                n++;
            }
        }
        return n;
    }

    /** Lookups that found a region allowing the access. */
    public synchronized long hits() {
        return hits;
    }

    /** Lookups that did not. */
    public synchronized long misses() {
        return misses;
    }

    /** Regions dropped by invalidations and {@link #clear}. */
    public synchronized long invalidated() {
        return invalidated;
    }

    /** Regions evicted to make room. */
    public synchronized long evictions() {
        return evictions;
    }

    @Override
    public synchronized String toString() {
        return "Atc[" + size() + "/" + capacity + ", hits " + hits + ", misses " + misses + "]";
    }
}
