package org.iommuemu.device.xlate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import org.junit.jupiter.api.Test;

class XlateStatsTest {
    @Test
    void eachCounterChargesItsCost() {
        CostModel cost = new CostModel(1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000,
                1_000_000_000);
        SimClock clock = new SimClock();
        XlateStats stats = new XlateStats(cost, clock);
        stats.mmioAccess();
        stats.tableRead();
        stats.tableRead();
        stats.tableWrite();
        stats.queueRead();
        stats.cacheHit();
        stats.cacheMiss();
        stats.command(0x46);
        stats.sync();
        stats.event(0x10);
        stats.msiWrite();
        stats.gerror();
        stats.charge(10_000_000_000L);
        // one digit per cost: every charge landed once (table reads twice)
        assertThat(clock.now()).isEqualTo(11_111_111_121L);
        XlateStats.Snapshot s = stats.snapshot();
        assertThat(s.simNanos()).isEqualTo(clock.now());
        assertThat(s.mmioAccesses()).isEqualTo(1);
        assertThat(s.tableReads()).isEqualTo(2);
        assertThat(s.tableWrites()).isEqualTo(1);
        assertThat(s.queueReads()).isEqualTo(1);
        assertThat(s.cacheHits()).isEqualTo(1);
        assertThat(s.cacheMisses()).isEqualTo(1);
        assertThat(s.syncs()).isEqualTo(1);
        assertThat(s.msiWrites()).isEqualTo(1);
        assertThat(s.gerrors()).isEqualTo(1);
        assertThat(stats.cost()).isSameAs(cost);
        assertThat(stats.clock()).isSameAs(clock);
    }

    @Test
    void commandsAndEventsAreCountedByKind() {
        XlateStats stats = new XlateStats(CostModel.DEFAULTS, new SimClock());
        stats.command(0x12);
        stats.command(0x12);
        stats.command(0x46);
        stats.command(0x112); // the low 8 bits count
        stats.event(0x10);
        stats.event(0x13);
        stats.event(0x13);
        XlateStats.Snapshot s = stats.snapshot();
        assertThat(s.commands()).isEqualTo(4);
        assertThat(s.commandsByOpcode()).containsExactly(Map.entry(0x12, 3L), Map.entry(0x46, 1L));
        assertThat(s.commands(0x12)).isEqualTo(3);
        assertThat(s.commands(0x30)).isZero();
        assertThat(s.events()).isEqualTo(3);
        assertThat(s.events(0x13)).isEqualTo(2);
        assertThat(s.eventsByType()).containsOnlyKeys(0x10, 0x13);
        assertThat(s.simNanos()).isEqualTo(4 * 50 + 3 * 100);
    }

    @Test
    void snapshotsAreImmutableAndDoNotMove() {
        XlateStats stats = new XlateStats();
        stats.command(1);
        XlateStats.Snapshot s = stats.snapshot();
        stats.command(1);
        assertThat(s.commands(1)).isEqualTo(1);
        assertThat(stats.snapshot().commands(1)).isEqualTo(2);
        assertThatThrownBy(() -> s.commandsByOpcode().put(2, 1L)).isInstanceOf(UnsupportedOperationException.class);
        assertThat(stats.cost()).isEqualTo(CostModel.DEFAULTS);
    }
}
