package org.iommuemu.device.xlate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class LruIndexTest {
    private record Key(long k0, long k1) {}

    @Test
    void findsWhatItAddsAndForgetsWhatItRemoves() {
        LruIndex index = new LruIndex(4);
        int a = index.add(1, 2);
        int b = index.add(3, 4);
        assertThat(index.find(1, 2)).isEqualTo(a);
        assertThat(index.find(3, 4)).isEqualTo(b);
        assertThat(index.find(1, 4)).isEqualTo(LruIndex.NONE);
        index.remove(a);
        assertThat(index.find(1, 2)).isEqualTo(LruIndex.NONE);
        assertThat(index.find(3, 4)).isEqualTo(b);
        assertThat(index.size()).isEqualTo(1);
        assertThat(index.inUse(a)).isFalse();
    }

    @Test
    void ordersByRecencyAndTouchMovesToTheFront() {
        LruIndex index = new LruIndex(3);
        int a = index.add(1, 0);
        int b = index.add(2, 0);
        int c = index.add(3, 0);
        assertThat(order(index)).containsExactly(c, b, a);
        index.touch(a);
        assertThat(order(index)).containsExactly(a, c, b);
        assertThat(index.leastRecent()).isEqualTo(b);
        assertThat(index.isFull()).isTrue();
        assertThatThrownBy(() -> index.add(4, 0)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void rejectsBadCapacities() {
        assertThatThrownBy(() -> new LruIndex(0)).isInstanceOf(IllegalArgumentException.class);
        assertThat(new LruIndex(1).capacity()).isEqualTo(1);
    }

    /** Random adds, touches and removes against a LinkedHashMap in access order, with many colliding keys. */
    @Test
    void agreesWithAReferenceMap() {
        long seed = 0x1DE8L;
        Random random = new Random(seed);
        for (int capacity : new int[] {1, 2, 3, 7, 64}) {
            LruIndex index = new LruIndex(capacity);
            // access-ordered: iteration runs least recently used first
            Map<Key, Integer> reference = new LinkedHashMap<>(16, 0.75f, true);
            for (int step = 0; step < 20_000; step++) {
                // a small key space, so that probe runs collide and wrap
                Key key = new Key(random.nextInt(3 * capacity + 2), random.nextInt(3));
                int found = index.find(key.k0, key.k1);
                String where = "seed " + seed + " capacity " + capacity + " step " + step + " key " + key;
                assertThat(found != LruIndex.NONE).as(where).isEqualTo(reference.containsKey(key));
                switch (random.nextInt(3)) {
                    case 0 -> {
                        if (found == LruIndex.NONE) {
                            if (index.isFull()) {
                                int victim = index.leastRecent();
                                Key oldest = reference.keySet().iterator().next();
                                assertThat(reference.get(oldest)).as(where).isEqualTo(victim);
                                index.remove(victim);
                                reference.remove(oldest);
                            }
                            reference.put(key, index.add(key.k0, key.k1));
                        } else {
                            index.touch(found);
                            reference.get(key);
                        }
                    }
                    case 1 -> {
                        if (found != LruIndex.NONE) {
                            index.remove(found);
                            reference.remove(key);
                        }
                    }
                    default -> {
                        if (found != LruIndex.NONE) {
                            assertThat(reference.get(key)).as(where).isEqualTo(found);
                            index.touch(found);
                        }
                    }
                }
                assertThat(index.size()).as(where).isEqualTo(reference.size());
            }
            List<Integer> expected = new ArrayList<>(reference.values());
            java.util.Collections.reverse(expected);
            assertThat(order(index)).as("seed " + seed).isEqualTo(expected);
            for (Map.Entry<Key, Integer> e : reference.entrySet()) {
                assertThat(index.find(e.getKey().k0, e.getKey().k1)).as("seed " + seed).isEqualTo(e.getValue());
            }
        }
    }

    private static List<Integer> order(LruIndex index) {
        List<Integer> order = new ArrayList<>();
        for (int s = index.mostRecent(); s != LruIndex.NONE; s = index.older(s)) {
            order.add(s);
        }
        return order;
    }
}
