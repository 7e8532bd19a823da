package org.iommuemu.core.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** The queue's bookkeeping on its own: FIFO prefixes, ring growth across the wrap, bounds, overlap. */
class FlushQueueTest {
    private final AtomicLong now = new AtomicLong(100);
    private final FlushQueue q = new FlushQueue(4, 50, now::get);

    private List<Long> drain(int n, long start) {
        int pages = q.drain(n, start);
        List<Long> out = new ArrayList<>();
        for (int i = 0; i < pages; i++) {
            out.add(q.drained(i));
        }
        return out;
    }

    @Test
    void rangesAreBoundedPagesAreNot() {
        assertThat(q.isEmpty()).isTrue();
        for (int i = 0; i < 4; i++) {
            assertThat(q.tryAddRange(i * 0x1000L, i * 0x1000L + 0xFFF)).isTrue();
            q.addPage(0x9000_0000L + i * 0x1000L);
        }
        assertThat(q.isFull()).isTrue();
        assertThat(q.tryAddRange(0x10_0000L, 0x10_0FFFL)).isFalse();
        for (int i = 0; i < 100; i++) {
            q.addPage(0xA000_0000L + i * 0x1000L);
        }
        assertThat(q.rangeCount()).isEqualTo(4);
        assertThat(q.pageCount()).isEqualTo(104);
        assertThat(q.size()).isEqualTo(108);
    }

    @Test
    void aDrainTakesExactlyThePrefixThatWasQueuedBeforeTheFlushBegan() {
        q.tryAddRange(0x1000, 0x1FFF);
        q.addPage(0xA000);
        int before = q.size();
        // a flush begins; meanwhile another thread queues more
        q.tryAddRange(0x5000, 0x5FFF);
        q.addPage(0xB000);
        assertThat(drain(before, 120)).containsExactly(0xA000L);
        assertThat(q.rangeCount()).isEqualTo(1);
        assertThat(q.pageCount()).isEqualTo(1);
        assertThat(q.overlaps(0x1000, 0x1FFF)).as("the drained range is gone").isFalse();
        assertThat(q.overlaps(0x5FFF, 0x6FFF)).isTrue();
        assertThat(drain(q.size(), 130)).containsExactly(0xB000L);
        assertThat(q.isEmpty()).isTrue();
        assertThat(q.overlaps(0, -1L)).isFalse();
    }

    @Test
    void theRingKeepsOrderWhenItGrowsAcrossTheWrap() {
        FlushQueue big = new FlushQueue(1000, 50, now::get);
        long next = 0;
        long expect = 0;
        for (int round = 0; round < 5; round++) {
            for (int i = 0; i < 40 + round * 37; i++) {
                big.addPage(next++);
            }
            int n = big.size() / 2;
            int pages = big.drain(n, 0);
            for (int i = 0; i < pages; i++) {
                assertThat(big.drained(i)).isEqualTo(expect++);
            }
        }
        int pages = big.drain(big.size(), 0);
        for (int i = 0; i < pages; i++) {
            assertThat(big.drained(i)).isEqualTo(expect++);
        }
        assertThat(expect).isEqualTo(next);
    }

    @Test
    void theTimeBoundRunsFromTheOldestEntryAndRestartsAtTheFlush() {
        assertThat(q.expired()).as("empty never expires").isFalse();
        q.tryAddRange(0x1000, 0x1FFF);
        now.set(140);
        q.tryAddRange(0x2000, 0x2FFF);
        now.set(149);
        assertThat(q.expired()).isFalse();
        now.set(150);
        assertThat(q.expired()).isTrue();
        int before = q.size();
        q.addPage(0xC000); // arrives during the flush that started at 150
        drain(before, 150);
        now.set(199);
        assertThat(q.expired()).isFalse();
        now.set(200);
        assertThat(q.expired()).isTrue();
    }

    @Test
    void overlapIsInclusiveAndUnsigned() {
        q.tryAddRange(0xFFFF_FFFF_FFFF_0000L, -1L);
        q.tryAddRange(0x1000, 0x1FFF);
        assertThat(q.overlaps(0x2000, 0xFFFF_FFFF_FFFE_FFFFL)).isFalse();
        assertThat(q.overlaps(0x1FFF, 0x1FFF)).isTrue();
        assertThat(q.overlaps(0xFFFF_FFFF_FFFF_F000L, -1L)).isTrue();
        assertThat(q.overlaps(0, 0xFFF)).isFalse();
    }
}
