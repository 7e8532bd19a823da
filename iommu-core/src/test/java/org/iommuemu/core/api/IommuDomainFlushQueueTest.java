package org.iommuemu.core.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** STRICT against LAZY: how many invalidations, when, and when freed tables go back. */
class IommuDomainFlushQueueTest extends Fixture {
    private static final long IOVA = 0x4000_0000L;
    /** Not congruent with IOVA beyond 4K: 4K leaves only, so each 2M slot has its own level-0 table. */
    private static final long PA = 0x2_0000_1000L;
    private static final long MS = 1_000_000L;

    private final AtomicLong now = new AtomicLong(5 * MS);
    private final List<String> events = new ArrayList<>();
    private final FakeInstance a = new FakeInstance("smmu0", ALL_4K_SIZES, true, events);
    private final FakeInstance b = new FakeInstance("smmu1", ALL_4K_SIZES, false, events);

    private IommuDomain lazy(int capacity) throws IommuApiException {
        IommuDomain d = domain().name("lazy").flushPolicy(FlushPolicy.LAZY).flushQueueCapacity(capacity)
                .clock(now::get).build();
        d.attach(a);
        d.attach(b);
        return d;
    }

    /** Maps 2M of 4K pages in each of {@code n} slots 2M apart: each slot's unmap frees one table. */
    private static void mapSlots(IommuDomain d, int n) throws IommuApiException {
        for (int i = 0; i < n; i++) {
            d.map(IOVA + i * M2, PA, M2, RW);
        }
    }

    @Test
    void strictUnmapsAreOneSyncEach() throws Exception {
        IommuDomain d = strict();
        d.attach(a);
        d.attach(b);
        mapSlots(d, 10);
        long tables = tablePages();
        for (int i = 0; i < 10; i++) {
            d.unmap(IOVA + i * M2, M2);
            assertThat(tablePages()).as("released when unmap %d returns", i).isEqualTo(tables - i - 1);
        }
        assertThat(a.syncs()).hasSize(10);
        assertThat(b.syncs()).hasSize(10);
        assertThat(a.flushAlls()).isZero();
        assertThat(d.unmapSyncs()).isEqualTo(10);
        assertThat(d.queueFlushes()).isZero();
        assertThat(d.flushQueue()).as("no queue in STRICT mode").isFalse();
    }

    @Test
    void lazyUnmapsWaitUntilTheCountBoundThenOneFullFlushReleasesEverything() throws Exception {
        IommuDomain d = lazy(8);
        mapSlots(d, 9);
        long tables = tablePages();
        for (int i = 0; i < 7; i++) {
            assertThat(d.unmap(IOVA + i * M2, M2)).isEqualTo(M2);
        }
        assertThat(d.iovaToPhys(IOVA)).as("the entries are gone at once").isEqualTo(IommuDomain.NO_MAPPING);
        assertThat(a.syncs()).isEmpty();
        assertThat(a.flushAlls()).isZero();
        assertThat(d.queuedRanges()).isEqualTo(7);
        assertThat(d.queuedTablePages()).isEqualTo(7);
        assertThat(tablePages()).as("freed tables wait for the flush").isEqualTo(tables);
        a.sampleWith(this::tablePages);

        d.unmap(IOVA + 7 * M2, M2); // the 8th range fills the queue

        assertThat(a.flushAlls()).isEqualTo(1);
        assertThat(b.flushAlls()).isEqualTo(1);
        assertThat(a.syncs()).as("lazy mode never syncs ranges").isEmpty();
        assertThat(d.queuedRanges()).isZero();
        assertThat(d.queuedTablePages()).isZero();
        assertThat(tablePages()).isEqualTo(tables - 8);
        assertThat(d.queueFlushes()).isEqualTo(1);
        assertThat(d.fullFlushes()).isEqualTo(1);
        assertThat(d.unmapSyncs()).isZero();
        assertThat(d.tablePagesFreed()).isEqualTo(8);

        d.unmap(IOVA + 8 * M2, M2);
        assertThat(d.queuedRanges()).as("the queue starts again").isEqualTo(1);
        assertThat(a.flushAlls()).isEqualTo(1);
    }

    @Test
    void theTimeBoundFlushesTheQueueTenMillisecondsAfterItsOldestEntry() throws Exception {
        IommuDomain d = lazy(256);
        assertThat(d.flushQueueTimeoutNanos()).isEqualTo(10 * MS);
        mapSlots(d, 6);
        d.unmap(IOVA, M2);
        d.unmap(IOVA + M2, M2);
        now.addAndGet(9 * MS);
        d.unmap(IOVA + 2 * M2, M2);
        assertThat(d.flushQueueIfExpired()).isFalse();
        assertThat(a.flushAlls()).isZero();
        now.addAndGet(MS);
        assertThat(d.flushQueueIfExpired()).as("10 ms after the first unmap").isTrue();
        assertThat(a.flushAlls()).isEqualTo(1);
        assertThat(d.queuedRanges()).isZero();
        assertThat(d.flushQueueIfExpired()).as("nothing waits").isFalse();

        // the bound is also checked by unmap (its own range goes with the others)...
        d.unmap(IOVA + 3 * M2, M2);
        now.addAndGet(10 * MS);
        d.unmap(IOVA + 4 * M2, M2);
        assertThat(a.flushAlls()).isEqualTo(2);
        assertThat(d.queuedRanges()).isZero();
        // ...and by map, even of an unrelated range
        d.unmap(IOVA + 5 * M2, M2);
        now.addAndGet(11 * MS);
        d.map(IOVA + G1, PA, K4, RW);
        assertThat(a.flushAlls()).isEqualTo(3);
        assertThat(d.queuedRanges()).isZero();
        assertThat(d.queueFlushes()).isEqualTo(3);
    }

    @Test
    void aMapOverAQueuedRangeFlushesTheQueueFirst() throws Exception {
        IommuDomain d = lazy(256);
        d.map(IOVA, PA, 4 * K4, RW);
        d.unmap(IOVA, 4 * K4);
        assertThat(d.queuedRanges()).isEqualTo(1);
        events.clear();

        d.map(IOVA + 3 * K4, 0x3_0000_0000L, K4, RW); // reuses the last page of the queued range

        assertThat(events).as("stale entries go before the new mapping is announced")
                .containsExactly("smmu0:flushAll", "smmu1:flushAll", "smmu0:syncMap");
        assertThat(d.queuedRanges()).isZero();
        assertThat(d.iovaToPhys(IOVA + 3 * K4)).isEqualTo(0x3_0000_0000L);
    }

    @Test
    void aMapSgOverAQueuedRangeFlushesTheQueueFirst() throws Exception {
        IommuDomain d = lazy(256);
        d.map(IOVA + M2, PA, K4, RW);
        d.unmap(IOVA + M2, K4);
        events.clear();
        d.mapSg(IOVA, List.of(SgEntry.of(0x3_0000_0000L, M2), SgEntry.of(0x3_1000_0000L, K4)), RW);
        assertThat(events).containsExactly("smmu0:flushAll", "smmu1:flushAll", "smmu0:syncMap");
        assertThat(d.iovaToPhys(IOVA + M2)).isEqualTo(0x3_1000_0000L);
    }

    @Test
    void aMapBesideTheQueuedRangesDoesNotFlush() throws Exception {
        IommuDomain d = lazy(256);
        d.map(IOVA, PA, 4 * K4, RW);
        d.map(IOVA + 8 * K4, PA, 4 * K4, RW);
        d.unmap(IOVA, 4 * K4);
        d.unmap(IOVA + 8 * K4, 4 * K4);
        d.map(IOVA + 4 * K4, PA, 4 * K4, RW); // between the two queued ranges
        d.map(IOVA + 12 * K4, PA, K4, RW); // right after them
        assertThat(a.flushAlls()).isZero();
        assertThat(d.queuedRanges()).isEqualTo(2);
    }

    @Test
    void flushQueueAndFlushAllEmptyTheQueue() throws Exception {
        IommuDomain d = lazy(256);
        mapSlots(d, 2);
        long tables = tablePages();
        d.unmap(IOVA, M2);
        assertThat(d.flushQueue()).isTrue();
        assertThat(d.flushQueue()).as("nothing left").isFalse();
        assertThat(tablePages()).isEqualTo(tables - 1);
        d.unmap(IOVA + M2, M2);
        d.flushAll();
        assertThat(tablePages()).as("a full flush covers the queue too").isEqualTo(tables - 2);
        assertThat(d.queuedRanges()).isZero();
        assertThat(a.flushAlls()).isEqualTo(2);
        assertThat(d.fullFlushes()).isEqualTo(2);
        assertThat(d.queueFlushes()).as("flushAll is not a queue flush").isEqualTo(1);
        d.flushAll();
        assertThat(a.flushAlls()).as("flushAll always flushes").isEqualTo(3);
    }

    @Test
    void aReplacedTableInLazyModeIsStillSyncedAtMapTime() throws Exception {
        // the new large leaf is unreachable while a walk cache still points at the old table: no waiting
        IommuDomain d = lazy(256);
        assertThat(d.unmap(IOVA + M2, K4)).as("a hole queues nothing").isZero();
        assertThat(d.queuedRanges()).isZero();
        d.map(IOVA + M2, PA, K4, RW);
        d.unmap(IOVA + M2, K4); // its level-0 table stays, empty
        d.flushQueue();
        events.clear();
        d.map(IOVA + M2, 0x3_0000_0000L, M2, RW);
        assertThat(events).containsExactly("smmu0:sync", "smmu1:sync", "smmu0:syncMap");
        assertThat(a.syncs().get(0).freedTables()).isTrue();
    }
}
