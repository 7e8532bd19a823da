package org.iommuemu.device.xlate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SimClockTest {
    @Test
    void advancesByWhatIsCharged() {
        SimClock clock = new SimClock();
        assertThat(clock.now()).isZero();
        assertThat(clock.advance(100)).isEqualTo(100);
        assertThat(clock.advance(0)).isEqualTo(100);
        assertThat(clock.advance(23)).isEqualTo(123);
        assertThat(clock.now()).isEqualTo(123);
        assertThat(clock.toString()).contains("123 ns");
        assertThatThrownBy(() -> clock.advance(-1)).isInstanceOf(IllegalArgumentException.class);
        assertThat(clock.now()).isEqualTo(123);
    }

    @Test
    void loosesNoChargeAcrossThreads() throws InterruptedException {
        SimClock clock = new SimClock();
        int threads = 4;
        int charges = 50_000;
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            long ns = t + 1;
            Thread w = new Thread(() -> {
                for (int i = 0; i < charges; i++) {
                    clock.advance(ns);
                }
            });
            workers.add(w);
            w.start();
        }
        for (Thread w : workers) {
            w.join();
        }
        assertThat(clock.now()).isEqualTo((long) charges * (1 + 2 + 3 + 4));
    }
}
