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
 * so removal needs no search. The LRU list is doubly linked through {@code prev}/{@code next} int arrays;
 * free slots are chained through {@code next}.
 *
 * <p>Keys are unique: {@link #add} requires that the key is absent and a slot is free. Not thread-safe: the
 * owning cache guards every call with its lock.
 */
final class LruIndex {
    /** "No slot". */
    static final int NONE = -1;

    private final int capacity;
    private final long[] key0;
    private final long[] key1;
    private final int[] hash;
    /** Table position of each slot, NONE when the slot is free. */
    private final int[] tablePos;
    /** Towards the most recently used end (used slots). */
    private final int[] prev;
    /** Towards the least recently used end (used slots), or the next free slot (free slots). */
    private final int[] next;
    private final int[] table;
    private final int mask;
    private int head = NONE;
    private int tail = NONE;
    private int freeHead;
    private int size;

    LruIndex(int capacity) {
        if (capacity < 1 || capacity > 1 << 28) {
            throw new IllegalArgumentException("capacity must be 1.." + (1 << 28) + ": " + capacity);
        }
        this.capacity = capacity;
        key0 = new long[capacity];
        key1 = new long[capacity];
        hash = new int[capacity];
        tablePos = new int[capacity];
        prev = new int[capacity];
        next = new int[capacity];
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
            next[i] = i + 1 < capacity ? i + 1 : NONE;
            prev[i] = NONE;
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
        return size == capacity;
    }

    boolean inUse(int slot) {
        return tablePos[slot] != NONE;
    }

    long key0(int slot) {
        return key0[slot];
    }

    long key1(int slot) {
        return key1[slot];
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
        return next[slot];
    }

    /** The slot holding the key, or NONE. Does not change the LRU order. */
    int find(long k0, long k1) {
        int pos = hash(k0, k1) & mask;
        while (true) {
            int slot = table[pos];
            if (slot == NONE) {
                return NONE;
            }
            if (key0[slot] == k0 && key1[slot] == k1) {
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
        freeHead = next[slot];
        int h = hash(k0, k1);
        key0[slot] = k0;
        key1[slot] = k1;
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
        prev[slot] = NONE;
        next[slot] = freeHead;
        freeHead = slot;
        size--;
    }

    private void unlink(int slot) {
        int p = prev[slot];
        int n = next[slot];
        if (p == NONE) {
            head = n;
        } else {
            next[p] = n;
        }
        if (n == NONE) {
            tail = p;
        } else {
            prev[n] = p;
        }
    }

    private void linkAtHead(int slot) {
        prev[slot] = NONE;
        next[slot] = head;
        if (head != NONE) {
            prev[head] = slot;
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
