package org.iommuemu.device.machine;

import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverException;
import org.iommuemu.core.driver.vtd.VtdDriverException;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.RamRegion;

/**
 * The machine's in-process IOMMU drivers: the driver heap and the SMMUv3 and VT-d instances the drivers have taken
 * over. The
 * bus's {@code Driver} service works through it, and {@code Machine.MmioWrite} asks it which instances are no
 * longer the client's to program.
 *
 * <p><b>The driver heap</b> is the upper half of the machine's first RAM region, {@code [base + size/2, base +
 * size)} rounded inward to 4 KiB, at most {@link BuddyPageAllocator#MAX_POOL_PAGES} pages (its top part when the
 * half is larger). The driver's queues and stream tables, every domain's page tables and CD tables, and the
 * buffers handed out to clients all come from one {@link BuddyPageAllocator} over it, created on first use.
 *
 * <p><b>Taking an instance over</b> ({@link #smmu}): the first request for an SMMUv3 instance probes it and
 * initialises it ({@link SmmuV3Driver#init}: stream table, queues, SMMUEN with every stream aborting) through an
 * {@link InProcessSmmuHost}; from then on {@link #owns} is true for it, for as long as the machine lives.
 *
 * <p>Thread-safe.
 */
public final class DriverHost {
    private final Machine machine;
    private final long heapBase;
    private final long heapSize;
    private final Map<String, DriverInstance> owned = new ConcurrentHashMap<>();
    /** The owned instances' interrupt deliveries, for {@link #deliverPendingInterrupts} (no iterator on that path). */
    private volatile Runnable[] deliveries = new Runnable[0];
    private volatile PageAllocator heap;
    private volatile HeapListener heapListener;
    private volatile DriverInstance.StreamListener streamListener;

    /** Told of every free of the driver heap (buffers, page-table pages, driver structures). */
    @FunctionalInterface
    public interface HeapListener {
        /** The block {@code [pa, pa + bytes)} went back to the heap. */
        void freed(long pa, long bytes);
    }

    /** Sets the {@link HeapListener} (null: none). */
    public void heapListener(HeapListener listener) {
        this.heapListener = listener;
    }

    /** Sets the stream listener of every instance taken over, now and later (null: none). */
    public void streamListener(DriverInstance.StreamListener listener) {
        this.streamListener = listener;
        for (DriverInstance o : owned.values()) {
            o.streamListener(listener);
        }
    }

    DriverHost(Machine machine) {
        this.machine = machine;
        RamRegion first = machine.memory().regions().get(0);
        long end = Bits.alignDown(first.base() + first.size(), PageAllocator.PAGE_SHIFT);
        long start = Bits.alignUp(first.base() + first.size() / 2, PageAllocator.PAGE_SHIFT);
        long max = (long) BuddyPageAllocator.MAX_POOL_PAGES << PageAllocator.PAGE_SHIFT;
        if (end - start > max) {
            start = end - max;
        }
        this.heapBase = start;
        this.heapSize = Math.max(0, end - start);
    }

    /** First byte of the driver heap. */
    public long heapBase() {
        return heapBase;
    }

    /** Size of the driver heap in bytes (0 when the first RAM region is too small to have one). */
    public long heapSize() {
        return heapSize;
    }

    /**
     * The driver heap's allocator, created on first use.
     *
     * @throws IllegalStateException when the first RAM region leaves no room for a heap
     */
    public PageAllocator heap() {
        PageAllocator h = heap;
        if (h == null) {
            synchronized (this) {
                h = heap;
                if (h == null) {
                    if (heapSize == 0) {
                        throw new IllegalStateException("the first RAM region is too small for a driver heap");
                    }
                    h = new ObservedHeap(new BuddyPageAllocator(machine.memory(), heapBase, heapSize),
                            () -> heapListener);
                    heap = h;
                }
            }
        }
        return h;
    }

    /**
     * Lets the in-process drivers take the interrupts their instances have raised and not delivered yet (the
     * machine's DMA engine calls it after a translation fault). Allocates nothing.
     */
    public void deliverPendingInterrupts() {
        for (Runnable r : deliveries) {
            r.run();
        }
    }

    private void owned(DriverInstance o, Runnable delivery) {
        o.streamListener(streamListener);
        owned.put(o.name(), o);
        Runnable[] now = Arrays.copyOf(deliveries, deliveries.length + 1);
        now[now.length - 1] = delivery;
        deliveries = now;
    }

    /** Whether the driver has taken instance {@code iommu} over. */
    public boolean owns(String iommu) {
        return owned.containsKey(iommu);
    }

    /** The instance {@code iommu} if the driver owns it, else null. */
    public DriverInstance owned(String iommu) {
        return owned.get(iommu);
    }

    /**
     * The SMMUv3 instance {@code device}, taken over (probed and initialised) if the driver does not own it yet.
     *
     * @throws IllegalArgumentException when the device is not an SMMUv3
     * @throws SmmuV3DriverException when probe or init fails (the instance is then not owned)
     * @throws org.iommuemu.core.memory.GuestMemoryExhaustedException when the heap cannot hold its structures
     */
    public synchronized SmmuDriverInstance smmu(IommuDevice device) {
        if (device.type() != IommuType.SMMUV3) {
            throw new IllegalArgumentException(device.name() + " is " + device.type() + ", not an SMMUv3");
        }
        SmmuDriverInstance o = (SmmuDriverInstance) owned.get(device.name());
        if (o != null) {
            return o;
        }
        InProcessSmmuHost host = new InProcessSmmuHost(device, machine.memory(), heap(), machine.interrupts());
        o = SmmuDriverInstance.takeOver(device.name(), host, host);
        owned(o, host::deliverPendingInterrupts);
        return o;
    }

    /**
     * The instance {@code device}, taken over by the driver of its architecture if the driver does not own it yet.
     *
     * @throws DriverInstance.Failure when probe or init fails (the instance is then not owned)
     * @throws UnsupportedOperationException for an architecture without a driver
     * @throws org.iommuemu.core.memory.GuestMemoryExhaustedException when the heap cannot hold its structures
     */
    public DriverInstance takeOver(IommuDevice device) {
        return switch (device.type()) {
            case SMMUV3 -> {
                try {
                    yield smmu(device);
                } catch (SmmuV3DriverException e) {
                    throw SmmuDriverInstance.toFailure(e);
                }
            }
            case VTD -> {
                try {
                    yield vtd(device);
                } catch (VtdDriverException e) {
                    throw VtdDriverInstance.toFailure(e);
                }
            }
        };
    }

    /**
     * The VT-d unit {@code device}, taken over (probed and initialised: root table, queued invalidation, fault
     * event, translation enabled with every device blocked) if the driver does not own it yet. Scalable mode when the
     * unit offers it, as Linux prefers.
     *
     * @throws IllegalArgumentException when the device is not VT-d
     * @throws VtdDriverException when probe or init fails (the instance is then not owned)
     */
    public synchronized VtdDriverInstance vtd(IommuDevice device) {
        if (device.type() != IommuType.VTD) {
            throw new IllegalArgumentException(device.name() + " is " + device.type() + ", not VT-d");
        }
        VtdDriverInstance o = (VtdDriverInstance) owned.get(device.name());
        if (o != null) {
            return o;
        }
        InProcessVtdHost host = new InProcessVtdHost(device, machine.memory(), heap(), machine.interrupts());
        o = VtdDriverInstance.takeOver(device.name(), host, host);
        owned(o, host::deliverPendingInterrupts);
        return o;
    }

    /**
     * An allocator whose frees are told to a {@link HeapListener} (the one {@code listener} gives at the time, none
     * when it gives null): the driver heap as everyone gets it, and a client-side driver's heap that feeds the
     * server's sanitizer.
     */
    public static final class ObservedHeap implements PageAllocator {
        private final PageAllocator a;
        private final java.util.function.Supplier<HeapListener> listener;

        public ObservedHeap(PageAllocator a, java.util.function.Supplier<HeapListener> listener) {
            this.a = a;
            this.listener = listener;
        }

        @Override
        public long allocPages(int order, String tag) {
            return a.allocPages(order, tag);
        }

        @Override
        public void free(long pa) {
            HeapListener l = listener.get();
            if (l == null) {
                a.free(pa);
                return;
            }
            long bytes = a.blockSize(pa);
            a.free(pa);
            l.freed(pa, bytes);
        }

        @Override
        public long blockSize(long pa) {
            return a.blockSize(pa);
        }

        @Override
        public int maxOrder() {
            return a.maxOrder();
        }

        @Override
        public long allocatedPages() {
            return a.allocatedPages();
        }

        @Override
        public long allocatedPages(String tag) {
            return a.allocatedPages(tag);
        }

        @Override
        public java.util.Map<String, Long> outstandingByTag() {
            return a.outstandingByTag();
        }

        @Override
        public long freePages() {
            return a.freePages();
        }
    }
}
