package org.iommuemu.device.bus;

import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The one thread that releases replies held by {@code BUS_REPLY_DELAY} faults, created when a reply is first held
 * (a bus that never holds one starts no thread), so a held reply blocks neither a gRPC thread nor the machine.
 */
final class BusTimer implements AutoCloseable {
    private ScheduledThreadPoolExecutor executor;
    private boolean closed;

    /** Runs {@code task} after {@code delayNanos}; false when the timer is closed (the task will not run). */
    synchronized boolean schedule(Runnable task, long delayNanos) {
        if (closed) {
            return false;
        }
        if (executor == null) {
            executor = new ScheduledThreadPoolExecutor(1, r -> {
                Thread t = new Thread(r, "bus-reply-delay");
                t.setDaemon(true);
                return t;
            });
            executor.setRemoveOnCancelPolicy(true);
        }
        executor.schedule(task, Math.max(0, delayNanos), TimeUnit.NANOSECONDS);
        return true;
    }

    /** Stops the thread; replies still held are not sent (their calls have ended or are being cancelled). */
    @Override
    public synchronized void close() {
        closed = true;
        if (executor != null) {
            ScheduledExecutorService e = executor;
            e.shutdownNow();
        }
    }
}
