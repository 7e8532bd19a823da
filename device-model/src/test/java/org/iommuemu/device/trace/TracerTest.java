package org.iommuemu.device.trace;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import org.junit.jupiter.api.Test;

class TracerTest {
    private final AtomicLong clock = new AtomicLong(100);
    private final Object device = new Object();
    private final Tracer tracer = new Tracer(List.of("smmu0"), new LongSupplier[] {clock::get},
            new Object[] {device});

    @Test
    void offUntilAReaderOpensAndAfterTheLastCloses() {
        assertThat(tracer.on()).isFalse();
        tracer.record(TraceKind.COMMAND, 0, 0, -1, 0, 0, 0x46, 0, 0);
        assertThat(tracer.written()).as("nothing is taken while off").isZero();
        TraceReader a = tracer.open();
        TraceReader b = tracer.open();
        assertThat(tracer.on()).isTrue();
        a.close();
        assertThat(tracer.on()).as("one reader is still open").isTrue();
        b.close();
        b.close();
        assertThat(tracer.on()).isFalse();
        assertThat(tracer.readers()).isZero();
    }

    @Test
    void aReaderGetsRecordsInOrderWithTheirFields() {
        try (TraceReader r = tracer.open()) {
            clock.set(250);
            tracer.record(TraceKind.EVENT, tracer.track(device), 16, -1, 0x1000, 4096, 0x10, 0, 0);
            tracer.record(TraceKind.DRIVER, -1, 3, -1, 0x2000, 8192, DriverOp.MAP.ordinal(), 0, 0);
            long[] buf = new long[4 * Tracer.STRIDE];
            assertThat(r.poll(buf, 4)).isEqualTo(2);
            assertThat(buf[Tracer.F_KIND]).isEqualTo(TraceKind.EVENT);
            assertThat(buf[Tracer.F_IOMMU]).isZero();
            assertThat(buf[Tracer.F_SIM]).isEqualTo(250);
            assertThat(buf[Tracer.F_STREAM]).isEqualTo(16);
            assertThat(buf[Tracer.F_ADDRESS]).isEqualTo(0x1000);
            assertThat(buf[Tracer.F_CODE]).isEqualTo(0x10);
            assertThat(buf[Tracer.F_WALL]).isPositive();
            assertThat(buf[Tracer.STRIDE + Tracer.F_KIND]).isEqualTo(TraceKind.DRIVER);
            assertThat(buf[Tracer.STRIDE + Tracer.F_IOMMU]).isEqualTo(-1);
            assertThat(buf[Tracer.STRIDE + Tracer.F_SIM]).as("driver records: the latest instance time").isEqualTo(250);
            assertThat(r.poll(buf, 4)).isZero();
            assertThat(r.cursor()).isEqualTo(2);
            assertThat(r.dropped()).isZero();
        }
    }

    @Test
    void aReaderThatFallsBehindCountsWhatTheRingOverwrote() {
        tracer.capacity(16);
        try (TraceReader r = tracer.open()) {
            for (int i = 0; i < 100; i++) {
                tracer.record(TraceKind.COMMAND, 0, 0, -1, i, 0, 1, 0, 0);
            }
            long[] buf = new long[100 * Tracer.STRIDE];
            int n = r.poll(buf, 100);
            assertThat(n).isEqualTo(16);
            assertThat(r.dropped()).isEqualTo(84);
            assertThat(buf[Tracer.F_ADDRESS]).as("the oldest survivor").isEqualTo(84);
            assertThat(buf[15 * Tracer.STRIDE + Tracer.F_ADDRESS]).isEqualTo(99);
            assertThat(r.cursor()).isEqualTo(100);
        }
    }

    @Test
    void capacityMustBeAPowerOfTwoInRange() {
        assertThatThrownBy(() -> tracer.capacity(1000)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("power of two");
        assertThatThrownBy(() -> tracer.capacity(8)).isInstanceOf(IllegalArgumentException.class);
        tracer.capacity(1024);
        assertThat(tracer.capacity()).isEqualTo(1024);
    }
}
