package org.iommuemu.core.api;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The timer a driver runs beside its LAZY domains (Linux's flush-queue timer): every period it calls
 * {@link IommuDomain#flushQueueIfExpired()} on each registered domain, so that the queue of a domain that
 * has gone idle is still flushed within about timeout + period of its oldest unmap.
 *
 * <p>One daemon thread of a {@link ScheduledExecutorService} serves every registered domain. Destroyed domains
 * are dropped at the next tick. A {@code RuntimeException} from a flush (a failing driver) is kept in
 * {@link #lastError()} and does not stop the timer. {@link #close()} stops it. Thread-safe.
 */
public final class FlushQueueTimer implements AutoCloseable {
    /** Default period: 1 ms, a tenth of the default flush-queue timeout. */
    public static final long DEFAULT_PERIOD_NANOS = 1_000_000L;

    private final ScheduledThreadPoolExecutor executor;
    private final List<IommuDomain> domains = new CopyOnWriteArrayList<>();
    private final AtomicLong ticks = new AtomicLong();
    private final AtomicLong flushes = new AtomicLong();
    private final AtomicReference<RuntimeException> lastError = new AtomicReference<>();

    /** A timer ticking every {@link #DEFAULT_PERIOD_NANOS}. */
    public FlushQueueTimer() {
        this(DEFAULT_PERIOD_NANOS);
    }

    /** A timer ticking every {@code periodNanos} nanoseconds. */
    public FlushQueueTimer(long periodNanos) {
        if (periodNanos <= 0) {
            throw new IllegalArgumentException("timer period " + periodNanos + " ns: must be positive");
        }
        executor = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "iommu-flush-queue-timer");
            t.setDaemon(true);
            return t;
        });
        executor.scheduleAtFixedRate(this::tick, periodNanos, periodNanos, TimeUnit.NANOSECONDS);
    }

    /** Starts watching {@code domain} (a STRICT domain is accepted and never flushed). */
    public void add(IommuDomain domain) {
        if (domain == null) {
            throw new IllegalArgumentException("flush-queue timer: the domain is null");
        }
        if (executor.isShutdown()) {
            throw new IllegalStateException("flush-queue timer: closed");
        }
        domains.add(domain);
    }

    /** Stops watching {@code domain}; returns whether it was watched. */
    public boolean remove(IommuDomain domain) {
        return domains.remove(domain);
    }

    /** The domains watched now (a snapshot). */
    public List<IommuDomain> domains() {
        return List.copyOf(domains);
    }

    /** Ticks run so far. */
    public long ticks() {
        return ticks.get();
    }

    /** Queue flushes the timer caused. */
    public long flushes() {
        return flushes.get();
    }

    /** The last exception a flush threw, or null. */
    public RuntimeException lastError() {
        return lastError.get();
    }

    private void tick() {
        for (IommuDomain d : domains) {
            if (d.isDestroyed()) {
                domains.remove(d);
                continue;
            }
            try {
                if (d.flushQueueIfExpired()) {
                    flushes.incrementAndGet();
                }
            } catch (RuntimeException e) {
                lastError.set(e);
            }
        }
        ticks.incrementAndGet();
    }

    /** Stops the timer and waits (briefly) for a tick in progress to finish. */
    @Override
    public void close() {
        executor.shutdownNow();
        try {
            executor.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        domains.clear();
    }
}
