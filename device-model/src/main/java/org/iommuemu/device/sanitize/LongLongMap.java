package org.iommuemu.device.sanitize;

import java.util.Arrays;

/**
 * A map from long keys to long values in primitive arrays (open addressing, linear probing, backward-shift
 * deletion), so lookups on the DMA path neither box nor allocate. Not thread-safe: the {@link Sanitizer}'s lock
 * guards it. {@link #MISSING} is never a stored value.
 */
final class LongLongMap {
    static final long MISSING = Long.MIN_VALUE;

    private long[] keys = new long[16];
    private long[] values = new long[16];
    private boolean[] used = new boolean[16];
    private int size;

    int size() {
        return size;
    }

    private static int hash(long k) {
        long h = k * 0x9E37_79B9_7F4A_7C15L;
        return (int) (h ^ (h >>> 32));
    }

    /** The value of {@code key}, or {@link #MISSING}. */
    long get(long key) {
        int mask = keys.length - 1;
        for (int i = hash(key) & mask; used[i]; i = (i + 1) & mask) {
            if (keys[i] == key) {
                return values[i];
            }
        }
        return MISSING;
    }

    void put(long key, long value) {
        if ((size + 1) * 2 > keys.length) {
            grow();
        }
        int mask = keys.length - 1;
        int i = hash(key) & mask;
        while (used[i]) {
            if (keys[i] == key) {
                values[i] = value;
                return;
            }
            i = (i + 1) & mask;
        }
        used[i] = true;
        keys[i] = key;
        values[i] = value;
        size++;
    }

    /** Adds {@code delta} to the value of {@code key} (0 when absent); removes the key when the result is 0. */
    void add(long key, long delta) {
        long v = get(key);
        long n = (v == MISSING ? 0 : v) + delta;
        if (n == 0) {
            remove(key);
        } else {
            put(key, n);
        }
    }

    void remove(long key) {
        int mask = keys.length - 1;
        int i = hash(key) & mask;
        while (used[i] && keys[i] != key) {
            i = (i + 1) & mask;
        }
        if (!used[i]) {
            return;
        }
        used[i] = false;
        size--;
        // backward shift: move later entries of the run into the hole when their home allows it
        int hole = i;
        for (int j = (i + 1) & mask; used[j]; j = (j + 1) & mask) {
            int home = hash(keys[j]) & mask;
            boolean movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
            if (movable) {
                keys[hole] = keys[j];
                values[hole] = values[j];
                used[hole] = true;
                used[j] = false;
                hole = j;
            }
        }
    }

    void clear() {
        Arrays.fill(used, false);
        size = 0;
    }

    private void grow() {
        long[] k = keys;
        long[] v = values;
        boolean[] u = used;
        keys = new long[k.length * 2];
        values = new long[k.length * 2];
        used = new boolean[k.length * 2];
        size = 0;
        for (int i = 0; i < k.length; i++) {
            if (u[i]) {
                put(k[i], v[i]);
            }
        }
    }
}
