package org.iommuemu.core.concurrent;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class PollBudgetTest {
    /** How many polls a wait that never finishes gets. */
    private static int pollsUntilSpent(PollBudget b) {
        b.start();
        int n = 1; // the first poll
        while (b.pause()) {
            n++;
        }
        return n;
    }

    @Test
    void withoutWallTimeAWaitGetsExactlyItsPolls() {
        assertThat(pollsUntilSpent(new PollBudget(1, 0))).isEqualTo(1);
        assertThat(pollsUntilSpent(new PollBudget(100, 0))).isEqualTo(100);
    }

    @Test
    void startGivesTheWholeBudgetAgain() {
        PollBudget b = new PollBudget(5, 0);
        assertThat(pollsUntilSpent(b)).isEqualTo(5);
        assertThat(pollsUntilSpent(b)).isEqualTo(5);
    }

    @Test
    void wallTimeAddsSleepingPollsUntilItPasses() {
        PollBudget b = new PollBudget(3, 5_000_000); // 5 ms more, sleeping 20 µs between polls
        long t0 = System.nanoTime();
        int polls = pollsUntilSpent(b);
        assertThat(System.nanoTime() - t0).as("the wall time was waited out").isGreaterThanOrEqualTo(5_000_000);
        assertThat(polls).as("more than the spinning polls").isGreaterThan(3);
    }

    @Test
    void describeSaysTheBudgetAndBadValuesAreRefused() {
        assertThat(new PollBudget(7, 0).describe()).isEqualTo("7 polls");
        assertThat(new PollBudget(7, 2_000_000_000L).describe()).isEqualTo("7 polls and 2000 ms more");
        assertThatThrownBy(() -> new PollBudget(0, 0)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("polls must be at least 1");
        assertThatThrownBy(() -> new PollBudget(1, -1)).isInstanceOf(IllegalArgumentException.class);
    }
}
