package org.iommuemu.device.xlate;

import java.util.Arrays;

/**
 * The allocation-free core the three caches share: a fixed set of slots, each holding one key of two longs,
 * found through an open-addressing hash table, ordered by an intrusive least-recently-used list.
 *
 * <p><b>Layout.</b> Slots {@code 0..capacity-1} are dense; an owner keeps its payload in parallel arrays
 * indexed by slot. The hash table has a power-of-two length of at least twice the capacity (load factor at
 * most 1/2) and holds slot numbers (-1 empty); collisions probe linearly, and removal shifts the following
 * run back (no tombstones, so probe runs never degrade). Each slot remembers its hash and its table position,
 * so removal needs no search. The LRU list is doubly linked through an int array of link pairs; free slots
 * are chained through the same links. A slot's two key words sit side by side, as do its two links, so that a
 * probe or a relink touches one cache line per slot.
 *
 * <p>Keys are unique: {@link #add} requires that the key is absent and a slot is free. Not thread-safe: the
 * owning cache guards every call with its lock.
 */
final class LruIndex {
    /** "No slot". */
    static final int NONE = -1;

    private final int capacity;
    /** Both key words of slot s at 2s and 2s+1: one cache line for the probe's comparison. */
    private final long[] keys;
    private final int[] hash;
    /** Table position of each slot, NONE when the slot is free. */
    private final int[] tablePos;
    /**
     * The LRU links of slot s: at 2s the neighbour towards the most recently used end, at 2s+1 the one
     * towards the least recently used end (for a free slot: the next free slot).
     */
    private final int[] links;
    private final int[] table;
    private final int mask;
    private int head = NONE;
    private int tail = NONE;
    private int freeHead;
    private int size;
    /** At most this many keys are held ({@link #isFull}): the capacity, unless a fault shrank it. */
    private int limit;

    LruIndex(int capacity) {
        if (capacity < 1 || capacity > 1 << 28) {
            throw new IllegalArgumentException("capacity must be 1.." + (1 << 28) + ": " + capacity);
        }
        this.capacity = capacity;
        this.limit = capacity;
        keys = new long[2 * capacity];
        hash = new int[capacity];
        tablePos = new int[capacity];
        links = new int[2 * capacity];
        int tableLength = Integer.highestOneBit(2 * capacity - 1) << 1;
        table = new int[tableLength];
        mask = tableLength - 1;
        clear();
    }

    /** Forgets every key. */
    void clear() {
        Arrays.fill(table, NONE);
        Arrays.fill(tablePos, NONE);
        for (int i = 0; i < capacity; i++) {
            links[2 * i] = NONE;
            links[2 * i + 1] = i + 1 < capacity ? i + 1 : NONE;
        }
        freeHead = 0;
        head = NONE;
        tail = NONE;
        size = 0;
    }

    int capacity() {
        return capacity;
    }

    int size() {
        return size;
    }

    boolean isFull() {
        return size >= limit;
    }

    /**
     * Lets the index hold at most {@code entries} keys (1..capacity; 0 restores the capacity). The owner evicts
     * what is above the new limit; from then on {@link #isFull} answers against it.
     */
    void limit(int entries) {
        limit = entries <= 0 || entries > capacity ? capacity : entries;
    }

    /** How many keys the index may hold now. */
    int limit() {
        return limit;
    }

    boolean inUse(int slot) {
        return tablePos[slot] != NONE;
    }

    long key0(int slot) {
        return keys[2 * slot];
    }

    long key1(int slot) {
        return keys[2 * slot + 1];
    }

    /** The most recently used slot, or NONE when empty. */
    int mostRecent() {
        return head;
    }

    /** The least recently used slot (the next victim), or NONE when empty. */
    int leastRecent() {
        return tail;
    }

    /** The next slot towards the least recently used end, or NONE. */
    int older(int slot) {
        return links[2 * slot + 1];
    }

    /** The slot holding the key, or NONE. Does not change the LRU order. */
    int find(long k0, long k1) {
        int pos = hash(k0, k1) & mask;
        while (true) {
            int slot = table[pos];
            if (slot == NONE) {
                return NONE;
            }
            if (keys[2 * slot] == k0 && keys[2 * slot + 1] == k1) {
                return slot;
            }
            pos = (pos + 1) & mask;
        }
    }

    /** Makes the slot the most recently used. */
    void touch(int slot) {
        if (slot == head) {
            return;
        }
        unlink(slot);
        linkAtHead(slot);
    }

    /** Stores an absent key in a free slot (the caller evicts first when full), most recently used. */
    int add(long k0, long k1) {
        int slot = freeHead;
        if (slot == NONE) {
            throw new IllegalStateException("no free slot");
        }
        freeHead = links[2 * slot + 1];
        int h = hash(k0, k1);
        keys[2 * slot] = k0;
        keys[2 * slot + 1] = k1;
        hash[slot] = h;
        int pos = h & mask;
        while (table[pos] != NONE) {
            pos = (pos + 1) & mask;
        }
        table[pos] = slot;
        tablePos[slot] = pos;
        linkAtHead(slot);
        size++;
        return slot;
    }

    /** Frees a used slot. */
    void remove(int slot) {
        int hole = tablePos[slot];
        table[hole] = NONE;
        tablePos[slot] = NONE;
        // Backward-shift deletion: move later members of the probe run into the hole when their home
        // position does not lie cyclically in (hole, j]; otherwise they must stay where the probe finds them.
        int j = hole;
        while (true) {
            j = (j + 1) & mask;
            int s = table[j];
            if (s == NONE) {
                break;
            }
            int home = hash[s] & mask;
            boolean homeInRun = hole <= j ? home > hole && home <= j : home > hole || home <= j;
            if (!homeInRun) {
                table[hole] = s;
                tablePos[s] = hole;
                table[j] = NONE;
                hole = j;
            }
        }
        unlink(slot);
        links[2 * slot] = NONE;
        links[2 * slot + 1] = freeHead;
        freeHead = slot;
        size--;
    }

    private void unlink(int slot) {
        int p = links[2 * slot];
        int n = links[2 * slot + 1];
        if (p == NONE) {
            head = n;
        } else {
            links[2 * p + 1] = n;
        }
        if (n == NONE) {
            tail = p;
        } else {
            links[2 * n] = p;
        }
    }

    private void linkAtHead(int slot) {
        links[2 * slot] = NONE;
        links[2 * slot + 1] = head;
        if (head != NONE) {
            links[2 * head] = slot;
        }
        head = slot;
        if (tail == NONE) {
            tail = slot;
        }
    }

    /** A 64-bit mix of both key words (multiply-xorshift, as in SplitMix64's finaliser), folded to int. */
    static int hash(long k0, long k1) {
        long x = k0 * 0x9E3779B97F4A7C15L ^ k1 * 0xC2B2AE3D27D4EB4FL;
        x ^= x >>> 31;
        x *= 0xBF58476D1CE4E5B9L;
        x ^= x >>> 29;
        return (int) (x ^ (x >>> 32));
    }
}
