package org.iommuemu.device.machine;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The interrupts of one IOMMU instance on their way to an in-process driver: taken from the machine's
 * {@link InterruptHub}, queued, and delivered to the driver's handler when the host says so — after the MMIO access
 * that raised them has returned (never from inside the device), or after a DMA fault ({@link DriverHost}). One
 * delivery loop runs at a time; an interrupt a handler's own MMIO raises is delivered by the running loop. A handler
 * that throws is logged, and the access that delivered the interrupt still succeeds. Without a handler interrupts
 * are dropped, as a masked line's would be. Shared by {@link InProcessSmmuHost} and {@link InProcessVtdHost}.
 *
 * @param <I> the driver's interrupt kinds
 */
final class PendingInterrupts<I> implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PendingInterrupts.class);

    /** Which of the instance's interrupts the driver takes, and as what. */
    @FunctionalInterface
    interface Classifier<I> {
        /** The interrupt {@code source} stands for, or null when it is none the driver takes. */
        I classify(String source, boolean landedInRam);
    }

    private final String iommu;
    private final AutoCloseable subscription;
    private final ConcurrentLinkedQueue<I> pending = new ConcurrentLinkedQueue<>();
    private final AtomicBoolean delivering = new AtomicBoolean();
    private volatile Consumer<I> handler;

    PendingInterrupts(String iommu, InterruptHub hub, Classifier<I> classifier) {
        this.iommu = iommu;
        this.subscription = hub.listen((name, source, msi, landedInRam) -> {
            if (iommu.equals(name)) {
                I irq = classifier.classify(source, landedInRam);
                if (irq != null) {
                    pending.add(irq);
                }
            }
        });
    }

    void handler(Consumer<I> h) {
        handler = h;
    }

    int size() {
        return pending.size();
    }

    /** Delivers what is pending, in order, unless a delivery loop is already running (it will deliver them). */
    void deliver() {
        while (!pending.isEmpty() && delivering.compareAndSet(false, true)) {
            try {
                I irq;
                while ((irq = pending.poll()) != null) {
                    Consumer<I> h = handler;
                    if (h != null) {
                        try {
                            h.accept(irq);
                        } catch (RuntimeException e) {
                            log.warn("{}: interrupt handler failed on {}", iommu, irq, e);
                        }
                    }
                }
            } finally {
                delivering.set(false);
            }
        }
    }

    /** Stops taking interrupts from the hub. */
    @Override
    public void close() {
        try {
            subscription.close();
        } catch (Exception e) {
            throw new IllegalStateException("unsubscribing from the interrupt hub failed", e);
        }
    }
}
