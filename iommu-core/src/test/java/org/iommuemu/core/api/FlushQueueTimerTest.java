package org.iommuemu.core.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;

/** The timer that flushes idle LAZY queues; time is a fake clock, the timer thread is real. */
class FlushQueueTimerTest extends Fixture {
    private static final long MS = 1_000_000L;
    private static final long IOVA = 0x4000_0000L;

    private final AtomicLong now = new AtomicLong();
    private final FakeInstance a = new FakeInstance("smmu0", ALL_4K_SIZES, false);

    private IommuDomain lazyWithOneQueuedRange() throws IommuApiException {
        IommuDomain d = domain().flushPolicy(FlushPolicy.LAZY).clock(now::get).build();
        d.attach(a);
        d.map(IOVA, 0x2_0000_0000L, K4, RW);
        d.unmap(IOVA, K4);
        assertThat(d.queuedRanges()).isEqualTo(1);
        return d;
    }

    @Test
    void theTimerFlushesAnIdleQueueOnceItExpiresAndDropsDestroyedDomains() throws Exception {
        IommuDomain d = lazyWithOneQueuedRange();
        try (FlushQueueTimer timer = new FlushQueueTimer(MS / 4)) {
            timer.add(d);
            long ticks = timer.ticks();
            await(() -> timer.ticks() >= ticks + 3, "three ticks");
            assertThat(a.flushAlls()).as("not expired yet").isZero();
            now.addAndGet(10 * MS);
            await(() -> d.queuedRanges() == 0, "the queue flushed by the timer");
            assertThat(a.flushAlls()).isEqualTo(1);
            assertThat(timer.flushes()).isEqualTo(1);
            assertThat(timer.lastError()).isNull();
            d.detach(a);
            d.destroy();
            await(() -> timer.domains().isEmpty(), "the destroyed domain dropped");
        }
        assertThat(tablePages()).isZero();
    }

    @Test
    void aFailingFlushIsRecordedAndTheTimerGoesOn() throws Exception {
        IommuDomain d = lazyWithOneQueuedRange();
        a.failNext(new IllegalStateException("queue full"));
        try (FlushQueueTimer timer = new FlushQueueTimer(MS / 4)) {
            timer.add(d);
            now.addAndGet(10 * MS);
            await(() -> timer.lastError() != null, "the failure recorded");
            assertThat(timer.lastError()).hasMessage("queue full");
            await(() -> d.queuedRanges() == 0, "a later tick flushed");
            assertThat(timer.flushes()).isEqualTo(1);
            assertThat(timer.remove(d)).isTrue();
            assertThat(timer.domains()).isEmpty();
        }
    }

    @Test
    void badUseIsRefused() {
        assertThatThrownBy(() -> new FlushQueueTimer(0)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("must be positive");
        FlushQueueTimer timer = new FlushQueueTimer();
        assertThatThrownBy(() -> timer.add(null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("the domain is null");
        timer.close();
        assertThatThrownBy(() -> timer.add(strictDomain())).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("closed");
    }

    private IommuDomain strictDomain() throws IommuApiException {
        return strict();
    }

    /** Waits for an event of the timer thread (not a timing assertion: the bound is only a safety net). */
    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000 * MS;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(1);
        }
    }
}
