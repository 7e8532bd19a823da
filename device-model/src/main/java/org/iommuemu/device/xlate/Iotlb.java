package org.iommuemu.device.xlate;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.iommuemu.core.bits.Bits;

/**
 * The translation cache shared by the SMMUv3 and VT-d models: leaf translations, input page to output page,
 * tagged by VMID / domain id and ASID / PASID, kept until the driver invalidates them or capacity evicts
 * them. Nothing here reads memory: a driver that forgets an invalidation sees the stale translation, as on
 * hardware (DESIGN.md, fidelity rules).
 *
 * <p><b>Entries and keys.</b> See {@link IotlbEntry} for the fields. An entry's key is
 * (VMID, ASID or "global", size, {@code va} aligned to the size); inserting an entry whose key is cached
 * replaces it (so a walker refreshing a {@link Perm#DIRTY_WRITABLE} entry after marking it dirty leaves one
 * entry). Entries of different sizes coexist, also when they overlap, as in a real TLB after a driver
 * replaced a block by pages without invalidating; {@link #lookup} then returns the smallest.
 *
 * <p><b>Lookup</b> does not scan. The cache keeps a 64-bit mask of the sizes it holds (separately for global
 * entries), and probes the hash table once per size present: with the 4K/2M/1G sizes of a typical 4 KB
 * granule table, at most three probes, six when global entries are cached too. A lookup with ASID
 * {@code a >= 0} matches the entries of that ASID and the global entries of the same VMID; a lookup with ASID
 * -1 (a context without stage 1 ASIDs) matches only entries inserted with ASID -1.
 *
 * <p><b>Storage.</b> A fixed number of slots in primitive arrays, indexed by an open-addressing hash table
 * with linear probing and backward-shift deletion, ordered by an intrusive doubly linked LRU list in int
 * arrays; inserting into a full cache evicts the least recently used entry. A hit makes its entry the most
 * recently used. Lookup, insert and every invalidation allocate nothing and box nothing.
 *
 * <p><b>Invalidation</b> (each returns the number of entries removed and adds it to the {@code invalidated}
 * counter):
 * <ul>
 *   <li>{@link #invalidateAll()}: SMMUv3 CMD_TLBI_NSNH_ALL; VT-d global IOTLB invalidation.
 *   <li>{@link #invalidateVmid(int, int)}: every entry of a VMID whose stage is in a mask. TLBI_S12_VMALL is
 *       {@link Stage#ALL}; TLBI_NH_ALL (stage 1 of one VMID) is {@code S1 | NESTED}; VT-d domain-selective.
 *   <li>{@link #invalidateAsid(int, int)}: the non-global entries of one ASID of one VMID: TLBI_NH_ASID;
 *       VT-d PASID-based IOTLB invalidation, PASID-selective (G=2, "all non-global in PASID").
 *   <li>{@link #invalidateVa}: every entry of the VMID that overlaps {@code [start, start + length)},
 *       filtered by stage mask and optional level hint; with an ASID {@code >= 0} the entries of that ASID and
 *       the global ones (Arm: TLBI by VA also removes global entries for the address), with
 *       {@link #ANY_ASID} all (TLBI_NH_VAA). TLBI_NH_VA/VAA in range form (spec SMMUV3.md §7: range
 *       {@code (NUM+1) * 2^SCALE} granules, see {@link #armRangeLength}; TTL level hint via
 *       {@link #levelFromArmTtl}); VT-d PASID-based
 *       page-selective invalidation. An entry partly inside the range goes. The Leaf flag of the commands does
 *       not matter here, every IOTLB entry being a leaf: it only spares the {@link WalkCache} (see
 *       {@link TranslationCaches}).
 *   <li>{@link #invalidatePageSelective}: VT-d page-selective IOTLB invalidation, ADDR and AM (2^AM 4 KB
 *       pages, ADDR aligned down to that span), as a range invalidation.
 *   <li>{@link #invalidateIpa}: TLBI_S2_IPA: stage 2 entries overlapping an IPA range (level hint honoured),
 *       and, when asked, nested entries whose stage 1 output (their {@code ipa}) overlaps it. The architecture
 *       does not require the second (Linux follows TLBI_S2_IPA of a nesting parent with TLBI_NH_ALL), so a
 *       strict device passes {@code nested=false}; the level hint does not apply to nested entries, whose
 *       level is their stage 1 level.
 * </ul>
 * Range invalidations probe the hash table page by page for each cached size when that takes fewer probes
 * than an eighth of the capacity, and scan the slots otherwise; invalidations by VMID or ASID scan. Both are
 * exact: the removed set does not depend on the path.
 *
 * <p><b>Thread-safety.</b> Translations run on many bus threads while invalidations arrive from the command
 * processor. Every public method runs under one monitor per cache, with short critical sections (a lookup is
 * a few probes and a list relink). An invalidation that has returned therefore hides its entries from every
 * later lookup. A walk that raced with an invalidation must not put back what the invalidation removed:
 * read {@link #epoch()} before walking and insert with {@link #insert(IotlbEntry, long)}, which drops the
 * entry if any invalidation ran in between (the translation is still used, just not cached). The monitor
 * rather than a {@code ReentrantLock}: contended, a {@code ReentrantLock} allocates queue nodes on the heap.
 */
public final class Iotlb extends LruCache {
    /** The ASID argument of {@link #invalidateVa} that matches every ASID (TLBI_NH_VAA). */
    public static final int ANY_ASID = -2;
    /** The level argument of range invalidations meaning "no hint" (TTL = 0). */
    public static final int ANY_LEVEL = -1;
    /** The smallest entry size: a 4 KB page. */
    public static final int MIN_SIZE_LG2 = 12;
    /** Levels 0..MAX_LEVEL are accepted. */
    public static final int MAX_LEVEL = 7;

    private static final int NONE = LruIndex.NONE;
    /** The ASID half of the key of a global entry. */
    private static final int GLOBAL_KEY = Integer.MIN_VALUE;
    private static final int OP_VMID = 0;
    private static final int OP_ASID = 1;
    private static final int OP_VA = 2;
    private static final int OP_IPA = 3;

    /**
     * The payload of slot s in three adjacent longs (one or two cache lines, so a hit reads little memory):
     * at 3s the output address, at 3s+1 the IPA, at 3s+2 the metadata: ASID in bits 63:32, {@link Perm} bits in
     * 31:8, level in 7:4, stage in 3:0.
     */
    private final long[] payload;
    /** Per size lg2: cached non-global and global entries. */
    private final int[] sizeCount = new int[64];
    private final int[] globalSizeCount = new int[64];
    private long sizeMask;
    private long globalSizeMask;
    private int nestedCount;

    /** A cache of {@code capacity} entries (1..2^28). */
    public Iotlb(int capacity) {
        super(capacity);
        payload = new long[3 * capacity];
    }

    /** Entries cached now. */
    public int size() {
        synchronized (lock) {
            return index.size();
        }
    }

    /**
     * A number that changes whenever an invalidation runs. Read it before a walk and pass it to
     * {@link #insert(IotlbEntry, long)}.
     */
    public long epoch() {
        return epoch;
    }

    /**
     * Looks up the translation of {@code va} for a context. On a hit, copies the entry into {@code out} and
     * makes it the most recently used; a write ({@code write}) that finds a {@link Perm#DIRTY_WRITABLE} entry
     * is a miss. Allocation-free.
     *
     * @param vmid  VMID / domain id of the context, -1 for none
     * @param asid  ASID / PASID of the context, -1 for none (then global entries do not match)
     * @param write whether the access writes
     * @return whether an entry was found; {@code out} is untouched on a miss
     */
    public boolean lookup(int vmid, int asid, long va, boolean write, IotlbEntry out) {
        synchronized (lock) {
            long k1 = key1(vmid, asid);
            long k1g = key1(vmid, GLOBAL_KEY);
            long globals = asid >= 0 ? globalSizeMask : 0;
            long pending = sizeMask | globals;
            while (pending != 0) {
                long bit = pending & -pending;
                pending ^= bit;
                int s = Long.numberOfTrailingZeros(bit);
                long k0 = (va & -(1L << s)) | s;
                int slot = NONE;
                if ((sizeMask & bit) != 0) {
                    slot = index.find(k0, k1);
                }
                if (slot == NONE && (globals & bit) != 0) {
                    slot = index.find(k0, k1g);
                }
                if (slot != NONE) {
                    HitEviction ev = hitEviction;
                    if (ev != null && ev.evict(va)) {
                        evictAtHit(slot);
                        return false;
                    }
                    if (write && (meta(slot) & ((long) Perm.DIRTY_WRITABLE << 8)) != 0) {
                        misses++;
                        return false;
                    }
                    index.touch(slot);
                    hits++;
                    copy(slot, out);
                    return true;
                }
            }
            misses++;
            return false;
        }
    }

    /**
     * Caches {@code e} (copied; the holder stays the caller's), replacing an entry with the same key, else
     * evicting the least recently used entry when full.
     *
     * @throws IllegalArgumentException if the entry is malformed: size outside 2^12..2^63, level outside
     *     0..{@value #MAX_LEVEL}, stage not exactly one stage, VMID or ASID below -1, a global entry without an
     *     ASID or of stage 2, a stage 2 entry with an ASID, undefined {@link Perm} bits
     */
    public void insert(IotlbEntry e) {
        check(e);
        synchronized (lock) {
            store(e);
        }
    }

    /**
     * Caches {@code e} unless an invalidation has run since {@link #epoch()} returned {@code epoch}: the walk
     * that produced {@code e} may have read descriptors that invalidation was about.
     *
     * @return whether the entry was cached
     * @throws IllegalArgumentException as {@link #insert(IotlbEntry)}
     */
    public boolean insert(IotlbEntry e, long epoch) {
        check(e);
        synchronized (lock) {
            if (this.epoch != epoch) {
                staleInserts++;
                return false;
            }
            store(e);
            return true;
        }
    }

    /** Removes every entry. */
    public int invalidateAll() {
        synchronized (lock) {
            int n = index.size();
            index.clear();
            Arrays.fill(sizeCount, 0);
            Arrays.fill(globalSizeCount, 0);
            sizeMask = 0;
            globalSizeMask = 0;
            nestedCount = 0;
            return invalidated(n);
        }
    }

    /**
     * Removes every entry of {@code vmid} whose stage is in {@code stages} (global ones included).
     *
     * @param stages a mask of {@link Stage} bits
     */
    public int invalidateVmid(int vmid, int stages) {
        synchronized (lock) {
            return invalidated(scan(OP_VMID, vmid, 0, 0, -1L, ANY_LEVEL, stages));
        }
    }

    /** Removes the non-global entries of ASID / PASID {@code asid} of {@code vmid}. */
    public int invalidateAsid(int vmid, int asid) {
        synchronized (lock) {
            return invalidated(scan(OP_ASID, vmid, asid, 0, -1L, ANY_LEVEL, Stage.ALL));
        }
    }

    /**
     * Removes the entries of {@code vmid} that overlap {@code [start, start + length)} (unsigned; a range
     * running past the top of the address space stops there; length 0 removes nothing).
     *
     * @param asid   an ASID / PASID: that ASID's entries and the VMID's global entries; -1: the entries
     *               without ASID; {@link #ANY_ASID}: all
     * @param level  only entries at this level (Arm TTL hint, see {@link #levelFromArmTtl}), or
     *               {@link #ANY_LEVEL}
     * @param stages a mask of {@link Stage} bits
     */
    public int invalidateVa(int vmid, int asid, long start, long length, int level, int stages) {
        synchronized (lock) {
            if (length == 0) {
                return invalidated(0);
            }
            return invalidated(range(OP_VA, vmid, asid, start, last(start, length), level, stages));
        }
    }

    /**
     * VT-d page-selective invalidation (IOTLB descriptor G=3 or PASID-based IOTLB G=3, spec VTD.md §5):
     * {@code 2^am} 4 KB pages at {@code addr} aligned down to that span, as {@link #invalidateVa}.
     *
     * @param am the address mask, 0..52 (52 and above: the whole address space)
     */
    public int invalidatePageSelective(int vmid, int asid, long addr, int am, int stages) {
        if (am < 0) {
            throw new IllegalArgumentException("address mask must be >= 0: " + am);
        }
        int spanLg2 = Math.min(MIN_SIZE_LG2 + am, 64);
        long first = spanLg2 == 64 ? 0 : addr & -(1L << spanLg2);
        long last = spanLg2 == 64 ? -1L : first | ((1L << spanLg2) - 1);
        synchronized (lock) {
            return invalidated(range(OP_VA, vmid, asid, first, last, ANY_LEVEL, stages));
        }
    }

    /**
     * TLBI_S2_IPA: removes the stage 2 entries of {@code vmid} overlapping {@code [start, start + length)} of
     * the intermediate address space, at {@code level} unless {@link #ANY_LEVEL}, and with {@code nested} also
     * the nested entries whose IPA range overlaps it (at any level).
     */
    public int invalidateIpa(int vmid, long start, long length, int level, boolean nested) {
        synchronized (lock) {
            if (length == 0) {
                return invalidated(0);
            }
            int stages = Stage.S2 | (nested ? Stage.NESTED : 0);
            return invalidated(range(OP_IPA, vmid, -1, start, last(start, length), level, stages));
        }
    }

    /**
     * The level of an Arm TTL hint (TLBI commands, dw1[9:8]): 0 is "no hint" ({@link #ANY_LEVEL}), 1..3 are
     * Arm levels 1..3, which are our levels 2..0 whatever the granule (Arm numbers the smallest-page level 3).
     */
    public static int levelFromArmTtl(int ttl) {
        int t = ttl & 3;
        return t == 0 ? ANY_LEVEL : 3 - t;
    }

    /**
     * The length in bytes of an SMMUv3 TLBI by VA / IPA (spec SMMUV3.md §7, "Range TLBI"): with {@code tg} 0
     * (no range) the command names one address, length 1, which removes every entry containing it whatever its
     * size; otherwise {@code (num + 1) * 2^scale} granules of 4 KB ({@code tg} 1), 16 KB (2) or 64 KB (3). The
     * granule only sizes the range: a TTL level hint means the same level in every granule
     * ({@link #levelFromArmTtl}).
     *
     * @param tg    the TG field, 0..3
     * @param num   the NUM field, 0..31
     * @param scale the SCALE field, 0..31
     */
    public static long armRangeLength(int tg, int num, int scale) {
        int t = tg & 3;
        if (t == 0) {
            return 1;
        }
        int granuleLg2 = 10 + 2 * t; // 1 -> 12, 2 -> 14, 3 -> 16
        return ((num & 31) + 1L) << ((scale & 31) + granuleLg2);
    }

    /** The counters, consistent with each other. */
    public CacheStats stats() {
        synchronized (lock) {
            return new CacheStats(index.limit(), index.size(), hits, misses, inserts, staleInserts, evictions,
                    invalidated, invalidations);
        }
    }

    /** A copy of every entry, most recently used first. Allocates; for diagnostics and tests. */
    public List<IotlbEntry> entries() {
        synchronized (lock) {
            List<IotlbEntry> list = new ArrayList<>(index.size());
            for (int s = index.mostRecent(); s != NONE; s = index.older(s)) {
                IotlbEntry e = new IotlbEntry();
                copy(s, e);
                list.add(e);
            }
            return list;
        }
    }

    @Override
    public String toString() {
        CacheStats st = stats();
        return "Iotlb[" + st.entries() + "/" + st.capacity() + " hits=" + st.hits() + " misses=" + st.misses() + "]";
    }

    // ---- internals; all called under the lock ----

    private static void check(IotlbEntry e) {
        int s = e.sizeLg2();
        if (s < MIN_SIZE_LG2 || s > 63) {
            throw new IllegalArgumentException("entry size must be 2^12..2^63: 2^" + s);
        }
        if (e.level() < 0 || e.level() > MAX_LEVEL) {
            throw new IllegalArgumentException("level must be 0.." + MAX_LEVEL + ": " + e.level());
        }
        if (!Stage.isSingle(e.stage())) {
            throw new IllegalArgumentException("stage must be S1, S2 or NESTED: " + e.stage());
        }
        if (e.vmid() < -1 || e.asid() < -1) {
            throw new IllegalArgumentException("vmid and asid must be >= -1: " + e);
        }
        if (e.global() && (e.asid() < 0 || e.stage() == Stage.S2)) {
            throw new IllegalArgumentException("a global entry needs a stage 1 context with an ASID: " + e);
        }
        if (e.stage() == Stage.S2 && e.asid() != -1) {
            throw new IllegalArgumentException("a stage 2 entry has no ASID: " + e);
        }
        if ((e.perms() & ~Perm.VALID_MASK) != 0) {
            throw new IllegalArgumentException("undefined permission bits: " + Bits.hex(e.perms()));
        }
        if ((e.perms() & Perm.FIRST_STAGE_MASK) != 0 && e.stage() != Stage.NESTED) {
            throw new IllegalArgumentException("first-stage permission bits on a single-stage entry: " + e);
        }
    }

    private void store(IotlbEntry e) {
        long k0 = e.va() | e.sizeLg2();
        long k1 = key1(e.vmid(), e.global() ? GLOBAL_KEY : e.asid());
        int slot = index.find(k0, k1);
        if (slot == NONE) {
            if (index.isFull()) {
                removeSlot(index.leastRecent());
                evictions++;
            }
            slot = index.add(k0, k1);
        } else {
            countOut(slot);
            index.touch(slot);
        }
        payload[3 * slot] = e.oa();
        payload[3 * slot + 1] = e.stage() == Stage.S2 ? e.va() : e.stage() == Stage.NESTED ? e.ipa() : 0;
        payload[3 * slot + 2] = ((long) e.asid() << 32) | ((long) e.perms() << 8) | (e.level() << 4) | e.stage();
        countIn(slot);
        inserts++;
    }

    private void copy(int slot, IotlbEntry out) {
        long k0 = index.key0(slot);
        long k1 = index.key1(slot);
        int s = (int) (k0 & 63);
        long meta = meta(slot);
        out.setAligned((int) (k1 >> 32), (int) (meta >> 32), (int) k1 == GLOBAL_KEY, k0 & ~0xFFFL, s,
                (int) (meta >>> 4) & 0xF, payload[3 * slot], payload[3 * slot + 1], (int) (meta >>> 8) & 0xFF_FFFF,
                (int) meta & 0xF);
    }

    private long meta(int slot) {
        return payload[3 * slot + 2];
    }

    private int levelOf(int slot) {
        return (int) (meta(slot) >>> 4) & 0xF;
    }

    private int stageOf(int slot) {
        return (int) meta(slot) & 0xF;
    }

    private void countIn(int slot) {
        int s = (int) (index.key0(slot) & 63);
        if ((int) index.key1(slot) == GLOBAL_KEY) {
            if (globalSizeCount[s]++ == 0) {
                globalSizeMask |= 1L << s;
            }
        } else if (sizeCount[s]++ == 0) {
            sizeMask |= 1L << s;
        }
        if (stageOf(slot) == Stage.NESTED) {
            nestedCount++;
        }
    }

    private void countOut(int slot) {
        int s = (int) (index.key0(slot) & 63);
        if ((int) index.key1(slot) == GLOBAL_KEY) {
            if (--globalSizeCount[s] == 0) {
                globalSizeMask &= ~(1L << s);
            }
        } else if (--sizeCount[s] == 0) {
            sizeMask &= ~(1L << s);
        }
        if (stageOf(slot) == Stage.NESTED) {
            nestedCount--;
        }
    }

    @Override
    void removeSlot(int slot) {
        countOut(slot);
        index.remove(slot);
    }

    private int invalidated(int n) {
        invalidated += n;
        invalidations++;
        epoch++; // volatile write: single writer under the lock
        return n;
    }

    private static long key1(int vmid, int keyAsid) {
        return ((long) vmid << 32) | (keyAsid & 0xFFFF_FFFFL);
    }

    /** The inclusive end of {@code [start, start + length)}, clamped to the top of the address space. */
    private static long last(long start, long length) {
        long last = start + length - 1;
        return Long.compareUnsigned(last, start) < 0 ? -1L : last;
    }

    /** A range invalidation: probes page by page when cheap and exact, scans otherwise. */
    private int range(int op, int vmid, int asid, long first, long last, int lvl, int stages) {
        if (index.size() == 0) {
            return 0;
        }
        // Probing finds entries by key, so it needs the ASID half of the key: a specific ASID (with the
        // global entries as a second key), or -1 for stage 2. Nested entries are keyed by VA, not IPA.
        boolean probe = op == OP_VA ? asid != ANY_ASID : (stages & Stage.NESTED) == 0 || nestedCount == 0;
        long globals = op == OP_VA && asid >= 0 ? globalSizeMask : 0;
        if (probe) {
            long budget = index.capacity() / 8 + 8;
            long probes = pages(sizeMask, first, last, budget) + pages(globals, first, last, budget);
            probe = probes <= budget;
        }
        if (!probe) {
            return scan(op, vmid, asid, first, last, lvl, stages);
        }
        int removed = probeRange(sizeMask, key1(vmid, asid), op, vmid, asid, first, last, lvl, stages);
        removed += probeRange(globals, key1(vmid, GLOBAL_KEY), op, vmid, asid, first, last, lvl, stages);
        return removed;
    }

    /** The number of aligned pages of the sizes in {@code sizes} that meet [first, last], or more than budget. */
    private static long pages(long sizes, long first, long last, long budget) {
        long total = 0;
        for (long m = sizes; m != 0; m &= m - 1) {
            int s = Long.numberOfTrailingZeros(m);
            total += (last >>> s) - (first >>> s) + 1; // s >= 12: both terms are non-negative
            if (total > budget) {
                return total;
            }
        }
        return total;
    }

    private int probeRange(long sizes, long k1, int op, int vmid, int asid, long first, long last, int lvl,
            int stages) {
        int removed = 0;
        for (long m = sizes; m != 0; m &= m - 1) {
            int s = Long.numberOfTrailingZeros(m);
            long lastPage = last >>> s;
            for (long page = first >>> s; ; page++) {
                int slot = index.find((page << s) | s, k1);
                if (slot != NONE && matches(slot, op, vmid, asid, first, last, lvl, stages)) {
                    removeSlot(slot);
                    removed++;
                }
                if (page == lastPage) {
                    break;
                }
            }
        }
        return removed;
    }

    private int scan(int op, int vmid, int asid, long first, long last, int lvl, int stages) {
        int removed = 0;
        for (int slot = 0, n = index.capacity(); slot < n; slot++) {
            if (index.inUse(slot) && matches(slot, op, vmid, asid, first, last, lvl, stages)) {
                removeSlot(slot);
                removed++;
            }
        }
        return removed;
    }

    private boolean matches(int slot, int op, int vmid, int asid, long first, long last, int lvl, int stages) {
        long k1 = index.key1(slot);
        if ((int) (k1 >> 32) != vmid) {
            return false;
        }
        int keyAsid = (int) k1;
        int st = stageOf(slot);
        switch (op) {
            case OP_VMID:
                return (st & stages) != 0;
            case OP_ASID:
                return keyAsid == asid;
            case OP_VA: {
                if ((st & stages) == 0 || (lvl != ANY_LEVEL && levelOf(slot) != lvl)) {
                    return false;
                }
                if (asid != ANY_ASID && keyAsid != asid && !(keyAsid == GLOBAL_KEY && asid >= 0)) {
                    return false;
                }
                long k0 = index.key0(slot);
                return overlaps(k0 & ~0xFFFL, (int) (k0 & 63), first, last);
            }
            case OP_IPA: {
                long k0 = index.key0(slot);
                if (st == Stage.S2) {
                    return (lvl == ANY_LEVEL || levelOf(slot) == lvl)
                            && overlaps(k0 & ~0xFFFL, (int) (k0 & 63), first, last);
                }
                return st == Stage.NESTED && (stages & Stage.NESTED) != 0
                        && overlaps(payload[3 * slot + 1], (int) (k0 & 63), first, last);
            }
            default:
                throw new AssertionError(op);
        }
    }

    /** Whether [base, base + 2^sizeLg2) meets [first, last] (unsigned, base aligned). */
    private static boolean overlaps(long base, int sizeLg2, long first, long last) {
        long baseLast = base | (sizeLg2 >= 63 ? Long.MAX_VALUE : (1L << sizeLg2) - 1);
        return Long.compareUnsigned(base, last) <= 0 && Long.compareUnsigned(baseLast, first) >= 0;
    }
}
