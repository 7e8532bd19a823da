package org.iommuemu.core.concurrent;

import java.util.concurrent.locks.LockSupport;

/**
 * How long a driver polls for its IOMMU to finish a synchronisation (an SMMUv3 CMD_SYNC, a VT-d invalidation wait).
 * First a number of polls with a spin hint between them: the emulated IOMMU does its work as the driver writes, so a
 * count of polls is the natural bound. Then, only when devices may have to answer first (ATS: ATC and device-TLB
 * invalidations take wall time), up to a wall-time budget more, sleeping {@link #SLEEP_NANOS} between polls; Linux
 * polls a sync for up to a second. Used by one waiter at a time (the queue's lock guards it); allocates nothing.
 */
public final class PollBudget {
    /** The sleep between the polls made once the spinning polls are spent. */
    public static final long SLEEP_NANOS = 20_000;

    private final int polls;
    private final long wallNanos;
    private int spent;
    private long deadline;

    /**
     * @param polls     polls with a spin hint in between (at least 1)
     * @param wallNanos wall time to keep polling after them, sleeping in between; 0 for none
     */
    public PollBudget(int polls, long wallNanos) {
        if (polls < 1 || wallNanos < 0) {
            throw new IllegalArgumentException("polls must be at least 1 and wallNanos not negative, got " + polls
                    + " and " + wallNanos);
        }
        this.polls = polls;
        this.wallNanos = wallNanos;
    }

    /** Starts a new wait: the whole budget is available again. */
    public void start() {
        spent = 0;
        deadline = 0;
    }

    /**
     * Called after a poll that found the work unfinished: pauses before the next poll (a spin hint, or a sleep once
     * the spinning polls are spent) and returns true, or returns false when the budget is spent.
     */
    public boolean pause() {
        if (++spent < polls) {
            Thread.onSpinWait();
            return true;
        }
        if (wallNanos == 0) {
            return false;
        }
        long now = System.nanoTime();
        if (deadline == 0) {
            deadline = now + wallNanos;
        } else if (now - deadline >= 0) {
            return false;
        }
        LockSupport.parkNanos(SLEEP_NANOS);
        return true;
    }

    /** The budget in words, for an error that says it was spent: "N polls" and " and M ms more" if any. */
    public String describe() {
        return polls + " polls" + (wallNanos == 0 ? "" : " and " + wallNanos / 1_000_000 + " ms more");
    }
}
