package org.iommuemu.device.inject;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.device.machine.DeviceStats;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.DriverInstance;
import org.iommuemu.device.machine.DriverInstance.Stage;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.junit.jupiter.api.Test;

/**
 * CACHE_SHRINK and CACHE_EVICT_RANDOM on a default machine driven by its own driver: the cache statistics show the
 * extra misses and walks, DMA reads still return each page's own data, and clearing restores the cache.
 */
class CacheFaultsTest {
    private static final long IOVA = 0x40_0000L;
    private static final int PAGES = 4;
    private static final int SID = 5;
    private static final int RID = 0x0310;

    /** One instance, one domain, {@link #PAGES} mapped pages each holding its own number. */
    static final class Rig {
        final Machine m = new Machine(MachineConfig.defaults());
        final String name;
        final int sid;
        final IommuDevice dev;
        final DriverInstance o;
        final IommuDomain d;
        final byte[] buf = new byte[8];

        Rig(String name, Stage stage, int sid) throws Exception {
            this.name = name;
            this.sid = sid;
            dev = m.iommu(name);
            o = m.driverHost().takeOver(dev);
            d = IommuDomain.builder(o.format(stage, 12, o.defaultInputBits(stage), o.outputBits()), m.memory(),
                    m.driverHost().heap()).name("d").build();
            o.attachStream(d, stage, sid);
            for (int i = 0; i < PAGES; i++) {
                long pa = m.driverHost().heap().allocPages(0, "buf");
                m.memory().write64(pa, 0x1000L + i);
                d.map(IOVA + 4096L * i, pa, 4096, Prot.READ | Prot.WRITE);
            }
        }

        /** Reads page {@code i} and checks it holds its own number. */
        void read(int i) {
            DmaOutcome out = m.dma().read(dev, sid, -1, IOVA + 4096L * i, buf, 0, 8, 0, new DmaOutcome());
            assertThat(out.isOk()).as("page %d reads", i).isTrue();
            assertThat(java.nio.ByteBuffer.wrap(buf).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong())
                    .as("page %d's data", i).isEqualTo(0x1000L + i);
        }

        /** Reads every page once, in order (no two consecutive reads of one page: no per-thread memo hit). */
        void readAll() {
            for (int i = 0; i < PAGES; i++) {
                read(i);
            }
        }

        DeviceStats.CacheStat cache(String cache) {
            return dev.stats().caches().stream().filter(c -> c.cache().equals(cache)).findFirst().orElseThrow();
        }

        long walks() {
            return dev.stats().walks();
        }

        FaultInjector faults() {
            return m.faults();
        }
    }

    static Rig smmu() throws Exception {
        return new Rig("smmu0", Stage.S1, SID);
    }

    static Rig vtd() throws Exception {
        return new Rig("dmar0", Stage.S2, RID);
    }

    // ------------------------------------------------------------------ CACHE_SHRINK

    private static void shrunkIotlbMissesUntilCleared(Rig r) {
        r.readAll();
        r.readAll();
        DeviceStats.CacheStat warm = r.cache("iotlb");
        int configured = (int) warm.capacity();
        assertThat(warm.entries()).isGreaterThanOrEqualTo(PAGES);
        long walksWarm = r.walks();
        r.readAll();
        assertThat(r.walks()).as("warm: every page hits").isEqualTo(walksWarm);

        long id = r.faults().inject(new FaultSpec(InjectionKind.CACHE_SHRINK).iommu(r.name)
                .params(p -> p.cache("iotlb").capacity(1)));
        DeviceStats.CacheStat shrunk = r.cache("iotlb");
        assertThat(shrunk.entries()).as("entries beyond the new capacity evicted at once").isEqualTo(1);
        assertThat(shrunk.capacity()).isEqualTo(1);
        assertThat(shrunk.evictions() - warm.evictions()).isEqualTo(warm.entries() - 1);
        assertThat(r.faults().log().since(0)).singleElement().satisfies(rec -> {
            assertThat(rec.kind()).isEqualTo(InjectionKind.CACHE_SHRINK);
            assertThat(rec.detail()).contains("cache=iotlb").contains("capacity=1");
        });

        long walksBefore = r.walks();
        long missesBefore = r.cache("iotlb").misses();
        r.readAll();
        r.readAll();
        assertThat(r.walks() - walksBefore).as("one entry: every page walks again").isEqualTo(2L * PAGES);
        assertThat(r.cache("iotlb").misses() - missesBefore).isGreaterThanOrEqualTo(2L * PAGES);
        assertThat(r.cache("iotlb").entries()).isEqualTo(1);

        r.faults().clear(id);
        assertThat(r.cache("iotlb").capacity()).as("Clear restores the configured capacity").isEqualTo(configured);
        r.readAll();
        long walksRefilled = r.walks();
        r.readAll();
        assertThat(r.walks()).as("restored: every page hits again").isEqualTo(walksRefilled);
        assertThat(r.cache("iotlb").entries()).isGreaterThanOrEqualTo(PAGES);
    }

    @Test
    void aShrunkIotlbKeepsOneEntryAndEveryPageWalksOnAnSmmu() throws Exception {
        shrunkIotlbMissesUntilCleared(smmu());
    }

    @Test
    void aShrunkIotlbKeepsOneEntryAndEveryPageWalksOnVtd() throws Exception {
        shrunkIotlbMissesUntilCleared(vtd());
    }

    @Test
    void aShrunkWalkCacheHoldsAtMostItsNewCapacity() throws Exception {
        Rig r = smmu();
        r.readAll();
        assertThat(r.cache("walk").entries()).isPositive();
        r.faults().inject(new FaultSpec(InjectionKind.CACHE_SHRINK).iommu("smmu0")
                .params(p -> p.cache("walk").capacity(1)));
        assertThat(r.cache("walk").entries()).isLessThanOrEqualTo(1);
        r.faults().inject(new FaultSpec(InjectionKind.CACHE_SHRINK).iommu("smmu0")
                .params(p -> p.cache("iotlb").capacity(1)));
        long reads = r.dev.stats().walkReads();
        r.readAll();
        assertThat(r.cache("walk").entries()).isLessThanOrEqualTo(1);
        assertThat(r.dev.stats().walkReads() - reads).as("walks read more table levels from memory")
                .isGreaterThan(PAGES);
    }

    @Test
    void badCacheShrinksAreRefusedNamingTheField() throws Exception {
        Rig r = smmu();
        assertThatThrownBy(() -> r.faults().inject(new FaultSpec(InjectionKind.CACHE_SHRINK).iommu("smmu0")
                .params(p -> p.cache("context").capacity(1))))
                .isInstanceOf(FaultSpecException.class).hasMessageContaining("params.cache")
                .hasMessageContaining("'context'").hasMessageContaining("iotlb, config, walk");
        assertThatThrownBy(() -> r.faults().inject(new FaultSpec(InjectionKind.CACHE_SHRINK).iommu("smmu0")
                .params(p -> p.cache("iotlb"))))
                .isInstanceOf(FaultSpecException.class).hasMessageContaining("params.capacity");
        int configured = (int) r.cache("iotlb").capacity();
        assertThatThrownBy(() -> r.faults().inject(new FaultSpec(InjectionKind.CACHE_SHRINK).iommu("smmu0")
                .params(p -> p.cache("iotlb").capacity(configured + 1))))
                .isInstanceOf(FaultSpecException.class).hasMessageContaining("params.capacity")
                .hasMessageContaining(String.valueOf(configured));
        assertThatThrownBy(() -> r.faults().inject(new FaultSpec(InjectionKind.CACHE_SHRINK).iommu("smmu0")
                .params(p -> p.capacity(1))))
                .isInstanceOf(FaultSpecException.class).hasMessageContaining("params.cache");
        assertThatThrownBy(() -> r.faults().inject(new FaultSpec(InjectionKind.CACHE_EVICT_RANDOM).iommu("dmar0")
                .params(p -> p.cache("config"))))
                .isInstanceOf(FaultSpecException.class).hasMessageContaining("params.cache")
                .hasMessageContaining("iotlb, context, pasid, walk");
        assertThat(r.faults().list("")).isEmpty();
        assertThat(r.cache("iotlb").capacity()).isEqualTo(configured);
    }

    @Test
    void aShrinkForEveryInstanceAppliesWhereTheCacheExists() throws Exception {
        Rig r = vtd();
        int smmuConfig = (int) r.m.iommu("smmu0").stats().caches().stream()
                .filter(c -> c.cache().equals("config")).findFirst().orElseThrow().capacity();
        r.faults().inject(new FaultSpec(InjectionKind.CACHE_SHRINK).params(p -> p.cache("context").capacity(1)));
        assertThat(r.cache("context").capacity()).isEqualTo(1);
        assertThat(r.m.iommu("smmu0").stats().caches()).allSatisfy(c -> assertThat(c.capacity()).isPositive())
                .filteredOn(c -> c.cache().equals("config")).singleElement()
                .satisfies(c -> assertThat(c.capacity()).isEqualTo(smmuConfig));
        assertThat(r.faults().log().since(0)).singleElement().satisfies(rec -> assertThat(rec.iommu())
                .isEqualTo("dmar0"));
        r.readAll();
    }

    // ------------------------------------------------------------------ CACHE_EVICT_RANDOM

    private static void evictedHitsWalkAgain(Rig r) {
        r.readAll();
        r.readAll();
        long walks = r.walks();
        long misses = r.cache("iotlb").misses();
        long id = r.faults().inject(new FaultSpec(InjectionKind.CACHE_EVICT_RANDOM).iommu(r.name)
                .params(p -> p.cache("iotlb")).trigger(t -> t.count(3)));
        r.readAll();
        r.readAll();
        assertThat(r.walks() - walks).as("each of the 3 evicted hits became a walk").isEqualTo(3);
        assertThat(r.cache("iotlb").misses() - misses).isEqualTo(3);
        assertThat(r.faults().list(r.name)).singleElement().satisfies(s -> {
            assertThat(s.id()).isEqualTo(id);
            assertThat(s.fires()).isEqualTo(3);
        });
        assertThat(r.faults().log().since(0)).hasSize(3).allSatisfy(rec -> {
            assertThat(rec.kind()).isEqualTo(InjectionKind.CACHE_EVICT_RANDOM);
            assertThat(rec.address()).isBetween(IOVA, IOVA + 4096L * PAGES - 1);
        });
        long after = r.walks();
        r.readAll();
        assertThat(r.walks()).as("count used up: hits again").isEqualTo(after);
    }

    @Test
    void evictedIotlbHitsWalkAgainOnAnSmmu() throws Exception {
        evictedHitsWalkAgain(smmu());
    }

    @Test
    void evictedIotlbHitsWalkAgainOnVtd() throws Exception {
        evictedHitsWalkAgain(vtd());
    }

    /** Walks caused by a probability-0.3 eviction fault with {@code seed} over 10 rounds of reads. */
    private static long[] seededEvictions(long seed) throws Exception {
        Rig r = smmu();
        r.readAll();
        r.readAll();
        long walks = r.walks();
        r.faults().inject(new FaultSpec(InjectionKind.CACHE_EVICT_RANDOM).iommu("smmu0")
                .params(p -> p.cache("iotlb")).trigger(t -> t.probability(0.3).seed(seed)));
        for (int round = 0; round < 10; round++) {
            r.readAll();
        }
        long fires = r.faults().list("smmu0").get(0).fires();
        return new long[] {fires, r.walks() - walks};
    }

    @Test
    void seededRandomEvictionsAreRepeatableAndEachCostsAWalk() throws Exception {
        long[] a = seededEvictions(42);
        long[] b = seededEvictions(42);
        assertThat(a).isEqualTo(b);
        assertThat(a[0]).as("some, not all, of the 40 hits were evicted").isBetween(1L, 39L);
        assertThat(a[1]).as("each eviction was followed by a walk").isEqualTo(a[0]);
    }

    @Test
    void anEvictionFaultOnOneCacheLeavesTheOthersAlone() throws Exception {
        Rig r = smmu();
        r.readAll();
        r.readAll();
        long walks = r.walks();
        r.faults().inject(new FaultSpec(InjectionKind.CACHE_EVICT_RANDOM).iommu("smmu0")
                .params(p -> p.cache("walk")));
        r.readAll();
        assertThat(r.walks()).as("IOTLB hits need no walk, so the walk cache is never asked").isEqualTo(walks);
        assertThat(r.faults().log().lastSequence()).isZero();
    }
}
