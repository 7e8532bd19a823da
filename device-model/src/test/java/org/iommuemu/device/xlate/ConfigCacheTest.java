package org.iommuemu.device.xlate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;

class ConfigCacheTest {
    private static final int STE = ConfigCache.NO_SUBSTREAM;
    private static final int NO_TAG = ConfigCache.NO_TAG;

    /** A stand-in for a decoded STE / CD. */
    private record Cfg(int sid, int ssid, int version) {}

    private static void put(ConfigCache<Cfg> cache, int sid, int ssid) {
        cache.insert(sid, ssid, NO_TAG, new Cfg(sid, ssid, 0));
    }

    private static List<String> keys(ConfigCache<Cfg> cache) {
        List<String> keys = new ArrayList<>();
        for (int[] k : cache.keys()) {
            keys.add(Integer.toHexString(k[0]) + "/" + k[1]);
        }
        return keys;
    }

    @Test
    void cachesPerStreamAndPerSubstreamEntriesSeparately() {
        ConfigCache<Cfg> cache = new ConfigCache<>(8);
        Cfg ste = new Cfg(5, STE, 1);
        Cfg cd0 = new Cfg(5, 0, 1);
        cache.insert(5, STE, NO_TAG, ste);
        cache.insert(5, 0, NO_TAG, cd0);
        assertThat(cache.lookup(5, STE)).isSameAs(ste);
        assertThat(cache.lookup(5, 0)).isSameAs(cd0);
        assertThat(cache.lookup(5, 1)).isNull();
        assertThat(cache.lookup(6, STE)).isNull();
        cache.insert(5, STE, NO_TAG, new Cfg(5, STE, 2));
        assertThat(cache.lookup(5, STE).version()).isEqualTo(2);
        assertThat(cache.size()).isEqualTo(2);
        assertThat(cache.stats()).isEqualTo(new CacheStats(8, 2, 3, 2, 3, 0, 0, 0, 0));
    }

    @Test
    void streamIdsAreUnsigned() {
        ConfigCache<Cfg> cache = new ConfigCache<>(8);
        put(cache, 0xFFFF_FFFF, STE);
        put(cache, 0x8000_0000, 3);
        assertThat(cache.lookup(-1, STE)).isNotNull();
        assertThat(cache.lookup(0x8000_0000, 3)).isNotNull();
        assertThat(cache.invalidateStreamRange(0xFFFF_FFF0, 4)).isEqualTo(1);
        assertThat(keys(cache)).containsExactly("80000000/3");
    }

    @Test
    void evictsTheLeastRecentlyUsed() {
        ConfigCache<Cfg> cache = new ConfigCache<>(2);
        put(cache, 1, STE);
        put(cache, 2, STE);
        cache.lookup(1, STE);
        put(cache, 3, STE);
        assertThat(keys(cache)).containsExactly("3/-1", "1/-1");
        assertThat(cache.stats().evictions()).isEqualTo(1);
    }

    @Test
    void invalidatingOneEntryLeavesTheOthers() {
        ConfigCache<Cfg> cache = new ConfigCache<>(8);
        put(cache, 1, STE);
        put(cache, 1, 0);
        put(cache, 1, 1);
        assertThat(cache.invalidate(1, 0)).isEqualTo(1); // CMD_CFGI_CD
        assertThat(cache.invalidate(1, 0)).isZero();
        assertThat(keys(cache)).containsExactlyInAnyOrder("1/-1", "1/1");
        assertThat(cache.invalidate(1, STE)).isEqualTo(1);
        assertThat(keys(cache)).containsExactly("1/1");
    }

    @Test
    void streamInvalidationTakesTheSubstreamsAlong() {
        ConfigCache<Cfg> cache = new ConfigCache<>(8);
        put(cache, 1, STE);
        put(cache, 1, 0);
        put(cache, 1, 7);
        put(cache, 2, STE);
        put(cache, 2, 7);
        assertThat(cache.invalidateStream(1)).isEqualTo(3); // CMD_CFGI_STE
        assertThat(keys(cache)).containsExactlyInAnyOrder("2/-1", "2/7");
    }

    @Test
    void substreamInvalidationKeepsTheStreamEntry() {
        ConfigCache<Cfg> cache = new ConfigCache<>(8);
        put(cache, 1, STE);
        put(cache, 1, 0);
        put(cache, 1, 7);
        put(cache, 2, 7);
        assertThat(cache.invalidateSubstreams(1)).isEqualTo(2); // CMD_CFGI_CD_ALL
        assertThat(keys(cache)).containsExactlyInAnyOrder("1/-1", "2/7");
    }

    @Test
    void steRangeInvalidationCoversTheAlignedBlock() {
        ConfigCache<Cfg> cache = new ConfigCache<>(32);
        for (int sid = 0x0E; sid <= 0x21; sid++) {
            put(cache, sid, STE);
        }
        put(cache, 0x13, 4);
        // CFGI_STE_RANGE SID=0x13 Range=3: 2^4 = 16 stream ids aligned down, 0x10..0x1F
        assertThat(ConfigCache.steRangeLg2(3)).isEqualTo(4);
        assertThat(cache.invalidateStreamRange(0x13, ConfigCache.steRangeLg2(3))).isEqualTo(17);
        assertThat(keys(cache)).containsExactlyInAnyOrder("e/-1", "f/-1", "20/-1", "21/-1");
        // Range=0: a pair, 0x20..0x21, even when addressed by its odd member
        assertThat(cache.invalidateStreamRange(0x21, ConfigCache.steRangeLg2(0))).isEqualTo(2);
        assertThat(keys(cache)).containsExactlyInAnyOrder("e/-1", "f/-1");
        // lg2 0: exactly one
        assertThat(cache.invalidateStreamRange(0x0F, 0)).isEqualTo(1);
        assertThat(keys(cache)).containsExactly("e/-1");
    }

    @Test
    void cfgiAllIsRange31() {
        ConfigCache<Cfg> cache = new ConfigCache<>(8);
        put(cache, 0, STE);
        put(cache, 0x7FFF_FFFF, 2);
        put(cache, 0xFFFF_FFFF, STE);
        assertThat(ConfigCache.steRangeLg2(31)).isEqualTo(32);
        assertThat(cache.invalidateStreamRange(0x1234, ConfigCache.steRangeLg2(31))).isEqualTo(3);
        assertThat(cache.size()).isZero();
        assertThatThrownBy(() -> cache.invalidateStreamRange(0, -1)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void functionMaskInvalidationIgnoresTheMaskedDevfnBits() {
        ConfigCache<Cfg> cache = new ConfigCache<>(32);
        for (int devfn = 0; devfn < 16; devfn++) {
            put(cache, 0x0100 | devfn, STE);
        }
        // FM=1: source-id bit 2 ignored: 0x101 and 0x105
        assertThat(cache.invalidateStreamMasked(0x0101, 0b100)).isEqualTo(2);
        assertThat(cache.lookup(0x0101, STE)).isNull();
        assertThat(cache.lookup(0x0105, STE)).isNull();
        assertThat(cache.lookup(0x0103, STE)).isNotNull();
        // FM=3: bits 2:0 ignored: 0x108..0x10F
        assertThat(cache.invalidateStreamMasked(0x010A, 0b111)).isEqualTo(8);
        assertThat(cache.size()).isEqualTo(6);
    }

    @Test
    void tagSelectiveInvalidationsServeVtdDomainsAndPasids() {
        ConfigCache<Cfg> cache = new ConfigCache<>(16);
        cache.insert(1, STE, 10, new Cfg(1, STE, 0));
        cache.insert(2, STE, 10, new Cfg(2, STE, 0));
        cache.insert(3, STE, 11, new Cfg(3, STE, 0));
        cache.insert(1, 5, 10, new Cfg(1, 5, 0));
        cache.insert(2, 5, 10, new Cfg(2, 5, 0));
        cache.insert(2, 6, 10, new Cfg(2, 6, 0));
        cache.insert(3, 5, 11, new Cfg(3, 5, 0));
        // PASID-selective: domain 10, PASID 5, every device
        assertThat(cache.invalidateTagSubstream(10, 5)).isEqualTo(2);
        assertThat(keys(cache)).containsExactlyInAnyOrder("1/-1", "2/-1", "3/-1", "2/6", "3/5");
        // domain-selective
        assertThat(cache.invalidateTag(10)).isEqualTo(3);
        assertThat(keys(cache)).containsExactlyInAnyOrder("3/-1", "3/5");
        assertThat(cache.invalidateAll()).isEqualTo(2);
        assertThat(cache.size()).isZero();
        assertThat(cache.stats().invalidated()).isEqualTo(7);
        assertThat(cache.stats().invalidations()).isEqualTo(3);
    }

    @Test
    void aFetchThatRacedAnInvalidationIsNotCached() {
        ConfigCache<Cfg> cache = new ConfigCache<>(4);
        long epoch = cache.epoch();
        cache.invalidateStream(9);
        assertThat(cache.insert(9, STE, NO_TAG, new Cfg(9, STE, 0), epoch)).isFalse();
        assertThat(cache.lookup(9, STE)).isNull();
        assertThat(cache.insert(9, STE, NO_TAG, new Cfg(9, STE, 0), cache.epoch())).isTrue();
        assertThat(cache.stats().staleInserts()).isEqualTo(1);
    }

    @Test
    void rejectsBadInput() {
        ConfigCache<Cfg> cache = new ConfigCache<>(4);
        assertThatThrownBy(() -> cache.insert(1, -2, NO_TAG, new Cfg(1, -2, 0)))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> cache.insert(1, STE, NO_TAG, null)).isInstanceOf(NullPointerException.class);
        assertThat(cache.toString()).contains("0/4");
    }

    // ---- model-based ----

    private record Ref(int sid, int ssid, int tag, Cfg value) {}

    @Test
    void agreesWithAListModelUnderRandomOperations() {
        for (long seed = 100; seed < 106; seed++) {
            Random r = new Random(seed);
            int capacity = 1 + r.nextInt(24);
            ConfigCache<Cfg> cache = new ConfigCache<>(capacity);
            List<Ref> model = new ArrayList<>(); // most recently used first
            for (int step = 0; step < 5000; step++) {
                String where = "seed " + seed + " step " + step;
                int sid = r.nextInt(40) ^ (r.nextInt(8) == 0 ? 0x8000_0000 : 0);
                int ssid = r.nextInt(4) - 1;
                int tag = r.nextInt(3);
                int op = r.nextInt(100);
                if (op < 40) {
                    Cfg value = new Cfg(sid, ssid, step);
                    cache.insert(sid, ssid, tag, value);
                    int at = indexOf(model, sid, ssid);
                    if (at >= 0) {
                        model.remove(at);
                    } else if (model.size() == capacity) {
                        model.remove(model.size() - 1);
                    }
                    model.add(0, new Ref(sid, ssid, tag, value));
                } else if (op < 75) {
                    int at = indexOf(model, sid, ssid);
                    Cfg expected = at < 0 ? null : model.get(at).value;
                    if (at >= 0) {
                        model.add(0, model.remove(at));
                    }
                    assertThat(cache.lookup(sid, ssid)).as(where).isSameAs(expected);
                } else {
                    int removed;
                    Predicate<Ref> p;
                    switch (op % 7) {
                        case 0 -> {
                            p = x -> x.sid == sid && x.ssid == ssid;
                            removed = cache.invalidate(sid, ssid);
                        }
                        case 1 -> {
                            p = x -> x.sid == sid;
                            removed = cache.invalidateStream(sid);
                        }
                        case 2 -> {
                            p = x -> x.sid == sid && x.ssid != STE;
                            removed = cache.invalidateSubstreams(sid);
                        }
                        case 3 -> {
                            int range = r.nextInt(10) == 0 ? 31 : r.nextInt(5);
                            long block = 1L << (range + 1);
                            long base = Integer.toUnsignedLong(sid) / block * block;
                            p = x -> Integer.toUnsignedLong(x.sid) >= base
                                    && Integer.toUnsignedLong(x.sid) < base + block;
                            removed = cache.invalidateStreamRange(sid, ConfigCache.steRangeLg2(range));
                        }
                        case 4 -> {
                            int fm = r.nextInt(4);
                            int ignored = fm == 0 ? 0 : fm == 1 ? 0b100 : fm == 2 ? 0b110 : 0b111;
                            p = x -> (x.sid | ignored) == (sid | ignored);
                            removed = cache.invalidateStreamMasked(sid, ignored);
                        }
                        case 5 -> {
                            p = x -> x.tag == tag;
                            removed = cache.invalidateTag(tag);
                        }
                        default -> {
                            p = x -> x.tag == tag && x.ssid == ssid;
                            removed = cache.invalidateTagSubstream(tag, ssid);
                        }
                    }
                    int before = model.size();
                    model.removeIf(p);
                    assertThat(removed).as(where + " op " + op).isEqualTo(before - model.size());
                }
                int[][] keys = cache.keys();
                assertThat(keys.length).as(where).isEqualTo(model.size());
                for (int i = 0; i < keys.length; i++) {
                    Ref m = model.get(i);
                    assertThat(Arrays.toString(keys[i])).as(where + " entry " + i)
                            .isEqualTo(Arrays.toString(new int[] {m.sid, m.ssid, m.tag}));
                }
            }
        }
    }

    private static int indexOf(List<Ref> model, int sid, int ssid) {
        for (int i = 0; i < model.size(); i++) {
            if (model.get(i).sid == sid && model.get(i).ssid == ssid) {
                return i;
            }
        }
        return -1;
    }
}
