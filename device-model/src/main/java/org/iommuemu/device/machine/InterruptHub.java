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
 * interrupt is still reported to subscribers. When it falls in the interrupt controller's doorbell window
 * ({@link #DEFAULT_DOORBELL_BASE}, 64 KiB, like a GICv3 ITS translation page) it only reaches subscribers.
 * Anywhere else nothing answers the write: it aborts, the device is told so ({@link #msi} returns false; an
 * SMMUv3 sets GERROR.MSI_*_ABT_ERR) and subscribers see nothing.
 *
 * <p>Subscribers are called on the raising device's thread and must not block: the bus puts records into
 * a bounded per-subscriber buffer and counts what it has to drop.
 */
public final class InterruptHub implements InterruptSink {
    private static final Logger log = LoggerFactory.getLogger(InterruptHub.class);

    /** Where the doorbell window starts by default: below the default RAM, clear of it. */
    public static final long DEFAULT_DOORBELL_BASE = 0x0800_0000L;
    /** The doorbell window's size by default. */
    public static final long DEFAULT_DOORBELL_SIZE = 0x1_0000L;

    private final PhysicalMemory memory;
    private final long doorbellBase;
    private final long doorbellSize;
    private final CopyOnWriteArrayList<Consumer<InterruptRecord>> subscribers = new CopyOnWriteArrayList<>();
    private final AtomicLong sequence = new AtomicLong();
    private final AtomicLong aborted = new AtomicLong();
    private volatile Listener[] listeners = new Listener[0];

    /** A hub with the default doorbell window. */
    public InterruptHub(PhysicalMemory memory) {
        this(memory, DEFAULT_DOORBELL_BASE, DEFAULT_DOORBELL_SIZE);
    }

    /** A hub whose doorbell window is {@code [doorbellBase, doorbellBase + doorbellSize)}. */
    public InterruptHub(PhysicalMemory memory, long doorbellBase, long doorbellSize) {
        if (doorbellSize <= 0 || (doorbellBase & 3) != 0
                || Long.compareUnsigned(doorbellBase + doorbellSize - 1, doorbellBase) < 0) {
            throw new IllegalArgumentException("bad MSI doorbell window 0x" + Long.toHexString(doorbellBase) + "+0x"
                    + Long.toHexString(doorbellSize));
        }
        this.memory = memory;
        this.doorbellBase = doorbellBase;
        this.doorbellSize = doorbellSize;
    }

    public long doorbellBase() {
        return doorbellBase;
    }

    public long doorbellSize() {
        return doorbellSize;
    }

    /** MSI writes that aborted (neither RAM nor the doorbell window, or a failed RAM write). */
    public long abortedMsis() {
        return aborted.get();
    }

    /**
     * Told of every interrupt as it is raised, without a record being built: what an in-process driver host
     * needs on its hot path (a CMD_SYNC completion per invalidation). Called on the raising device's thread;
     * must not block or throw.
     */
    @FunctionalInterface
    public interface Listener {
        void interrupt(String iommu, String source, boolean msi, boolean landedInRam);
    }

    /** Adds a listener; returns a handle that removes it. Raising an interrupt for listeners allocates nothing. */
    public AutoCloseable listen(Listener listener) {
        java.util.Objects.requireNonNull(listener, "listener");
        synchronized (this) {
            Listener[] now = listeners;
            Listener[] next = java.util.Arrays.copyOf(now, now.length + 1);
            next[now.length] = listener;
            listeners = next;
        }
        return () -> {
            synchronized (this) {
                Listener[] now = listeners;
                for (int i = 0; i < now.length; i++) {
                    if (now[i] == listener) {
                        Listener[] next = new Listener[now.length - 1];
                        System.arraycopy(now, 0, next, 0, i);
                        System.arraycopy(now, i + 1, next, i, now.length - i - 1);
                        listeners = next;
                        return;
                    }
                }
            }
        };
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
        long seq = sequence.incrementAndGet();
        tell(iommu, source, false, false);
        if (!subscribers.isEmpty()) {
            publish(new InterruptRecord(seq, iommu, source, false, 0, 0, false));
        }
    }

    @Override
    public boolean msi(String iommu, String source, long address, int data) {
        boolean inRam = false;
        if ((address & 3) == 0 && memory.isRam(address, 4)) {
            try {
                memory.write32(address, data);
                inRam = true;
            } catch (MemoryAccessException e) {
                return abort(iommu, source, address, e.getMessage());
            }
        } else if (Long.compareUnsigned(address - doorbellBase, doorbellSize - 4) > 0) {
            return abort(iommu, source, address, "neither RAM nor the doorbell window");
        }
        long seq = sequence.incrementAndGet();
        tell(iommu, source, true, inRam);
        if (!subscribers.isEmpty()) { // a record only for someone who keeps it
            publish(new InterruptRecord(seq, iommu, source, true, address, data, inRam));
        }
        return true;
    }

    private void tell(String iommu, String source, boolean msi, boolean inRam) {
        for (Listener l : listeners) { // an array: no iterator
            try {
                l.interrupt(iommu, source, msi, inRam);
            } catch (RuntimeException e) {
                log.warn("interrupt listener failed", e);
            }
        }
    }

    private boolean abort(String iommu, String source, long address, String why) {
        aborted.incrementAndGet();
        log.debug("{}: MSI write for {} at {} aborted: {}", iommu, source, Long.toHexString(address), why);
        return false;
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
