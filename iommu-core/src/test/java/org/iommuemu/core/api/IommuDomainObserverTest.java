package org.iommuemu.core.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** The mapping observer: what it is told, in which order relative to the instances' invalidations. */
class IommuDomainObserverTest extends Fixture {
    private static final long IOVA = 0x4000_0000L;
    private static final long PA = 0x2_0000_0000L;

    private final List<String> events = new ArrayList<>();
    private final FakeInstance a = new FakeInstance("smmu0", ALL_4K_SIZES, false, events);

    private final class Recorder implements IommuDomain.MappingObserver {
        @Override
        public void mapped(IommuDomain d, long iova, long pa, long size, int prot) {
            events.add("mapped " + Long.toHexString(iova) + "->" + Long.toHexString(pa) + " " + Long.toHexString(size));
        }

        @Override
        public void unmapped(IommuDomain d, long iova, long size) {
            events.add("unmapped " + Long.toHexString(iova) + " " + Long.toHexString(size));
        }

        @Override
        public void flushStarting(IommuDomain d) {
            events.add("flushStarting");
        }

        @Override
        public void flushed(IommuDomain d) {
            events.add("flushed");
        }

        @Override
        public void destroyed(IommuDomain d) {
            events.add("destroyed");
        }
    }

    @Test
    void strictMapsAndUnmapsAreReportedAfterTheirSync() throws Exception {
        IommuDomain d = strict();
        d.attach(a);
        d.mappingObserver(new Recorder());
        d.map(IOVA, PA, 2 * K4, RW);
        d.mapSg(IOVA + M2, List.of(SgEntry.of(PA, K4), SgEntry.of(PA + 3 * K4, K4)), RW);
        events.clear();
        d.unmap(IOVA, K4);
        assertThat(events).last().isEqualTo("unmapped 40000000 1000");
        assertThat(events.get(events.size() - 2)).as("after the instance's sync").startsWith("smmu0");
        d.unmap(IOVA + 0x10_0000, K4);
        assertThat(events).as("an unmap over a hole reports nothing").last().isEqualTo("unmapped 40000000 1000");
        d.detach(a);
        d.destroy();
        assertThat(events).last().isEqualTo("destroyed");
    }

    @Test
    void mapSgReportsEachEntryAtItsIova() throws Exception {
        IommuDomain d = strict();
        d.mappingObserver(new Recorder());
        d.mapSg(IOVA, List.of(SgEntry.of(PA, K4), SgEntry.of(PA + 3 * K4, 2 * K4)), RW);
        assertThat(events).containsExactly("mapped 40000000->200000000 1000", "mapped 40001000->200003000 2000");
    }

    @Test
    void lazyUnmapsAreCoveredByTheFlushThatFollows() throws Exception {
        AtomicLong now = new AtomicLong();
        IommuDomain d = domain().flushPolicy(FlushPolicy.LAZY).flushQueueCapacity(2).clock(now::get).build();
        d.attach(a);
        d.map(IOVA, PA, 4 * K4, RW);
        d.mappingObserver(new Recorder());
        d.unmap(IOVA, K4);
        assertThat(events).containsExactly("unmapped 40000000 1000");
        d.unmap(IOVA + K4, K4); // fills the queue
        assertThat(events).startsWith("unmapped 40000000 1000", "unmapped 40001000 1000", "flushStarting")
                .last().isEqualTo("flushed");
        assertThat(d.clockNanos()).isZero();
        d.mappingObserver(null);
        d.unmap(IOVA + 2 * K4, K4);
        assertThat(events).last().isEqualTo("flushed");
    }
}
