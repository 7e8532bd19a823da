package org.iommuemu.device.machine;

import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The machine's interrupt controller. Devices raise wired interrupts and MSIs here; every subscriber
 * sees every interrupt, numbered in order.
 *
 * <p>An MSI is a 32-bit memory write. When its address is RAM the write is performed in guest memory
 * (as on hardware, where e.g. a driver polls for an SMMUv3 CMD_SYNC completion written by MSI) and the
 * interrupt is still reported to subscribers; otherwise it only reaches subscribers, as a write to an
 * interrupt controller's doorbell would.
 *
 * <p>Subscribers are called on the raising device's thread and must not block: the bus puts records into
 * a bounded per-subscriber buffer and counts what it has to drop.
 */
public final class InterruptHub implements InterruptSink {
    private static final Logger log = LoggerFactory.getLogger(InterruptHub.class);

    private final PhysicalMemory memory;
    private final CopyOnWriteArrayList<Consumer<InterruptRecord>> subscribers = new CopyOnWriteArrayList<>();
    private final AtomicLong sequence = new AtomicLong();

    public InterruptHub(PhysicalMemory memory) {
        this.memory = memory;
    }

    /** Adds a subscriber; returns a handle that removes it. */
    public AutoCloseable subscribe(Consumer<InterruptRecord> subscriber) {
        subscribers.add(subscriber);
        return () -> subscribers.remove(subscriber);
    }

    /** Subscribers now. */
    public int subscribers() {
        return subscribers.size();
    }

    /** Interrupts raised so far. */
    public long raised() {
        return sequence.get();
    }

    @Override
    public void wired(String iommu, String source) {
        publish(new InterruptRecord(sequence.incrementAndGet(), iommu, source, false, 0, 0, false));
    }

    @Override
    public boolean msi(String iommu, String source, long address, int data) {
        boolean inRam = false;
        boolean aborted = false;
        if ((address & 3) == 0 && memory.isRam(address, 4)) {
            try {
                memory.write32(address, data);
                inRam = true;
            } catch (MemoryAccessException e) {
                log.debug("{}: MSI write for {} at {} failed: {}", iommu, source, Long.toHexString(address),
                        e.getMessage());
                aborted = true;
            }
        }
        if (!aborted) {
            publish(new InterruptRecord(sequence.incrementAndGet(), iommu, source, true, address, data, inRam));
        }
        return !aborted;
    }

    private void publish(InterruptRecord record) {
        log.debug("interrupt {}", record);
        for (Consumer<InterruptRecord> s : subscribers) {
            try {
                s.accept(record);
            } catch (RuntimeException e) {
                log.warn("interrupt subscriber failed; removing it", e);
                subscribers.remove(s);
            }
        }
    }
}
