package org.iommuemu.device.remote;

import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.iommuemu.core.driver.smmuv3.SmmuHost;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.proto.v1.DescribeReply;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.Interrupt;
import org.iommuemu.proto.v1.InterruptsRequest;
import org.iommuemu.proto.v1.IommuInstance;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MmioReadRequest;
import org.iommuemu.proto.v1.MmioWriteRequest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The SMMUv3 driver's host interface on the far side of the bus: register accesses are {@code Machine.MmioRead}
 * and {@code MmioWrite}, memory is a {@link BusPhysicalMemory}, pages come from the allocator the caller gives
 * (usually a {@link BuddyPageAllocator} over a range of guest RAM the caller has to itself, {@link #connect}),
 * and interrupts arrive on a {@code Machine.Interrupts} stream filtered to this instance.
 *
 * <p><b>Interrupts.</b> Each message is mapped to an {@link SmmuHost.Irq} by its source and handed to the handler
 * on the gRPC callback thread, one at a time. A CMD_SYNC whose MSI wrote into RAM completed a poll (a memory write
 * the driver watches), not a CPU interrupt, and is not delivered, as on the in-process host. The server starts
 * the subscription asynchronously, so an interrupt raised in the first moments may not be seen; the driver polls
 * whatever it waits for, so that costs latency, never correctness. A gap the server reports ({@code dropped}) and
 * the stream's end are logged; a handler that throws is logged and the stream goes on.
 *
 * <p>A failure of the bus under an MMIO access is a {@link BusUnavailableException}. Thread-safe.
 */
public final class BusSmmuHost implements SmmuHost, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(BusSmmuHost.class);

    private final String iommu;
    private final MachineGrpc.MachineBlockingStub cpu;
    private final BusPhysicalMemory memory;
    private final PageAllocator allocator;
    private final AtomicLong delivered = new AtomicLong();
    private volatile Consumer<Irq> handler;
    private volatile ClientCallStreamObserver<InterruptsRequest> subscription;
    private volatile boolean closed;

    /**
     * @param channel   the bus
     * @param iommu     the SMMUv3 instance (its {@code IommuInstance.name})
     * @param memory    the machine's memory over the same bus
     * @param allocator where the driver's queues and tables come from
     * @throws IllegalArgumentException when the machine has no such instance or it is not an SMMUv3
     */
    public BusSmmuHost(Channel channel, String iommu, BusPhysicalMemory memory, PageAllocator allocator) {
        this.iommu = Objects.requireNonNull(iommu, "iommu");
        this.cpu = MachineGrpc.newBlockingStub(channel);
        this.memory = Objects.requireNonNull(memory, "memory");
        this.allocator = Objects.requireNonNull(allocator, "allocator");
        DescribeReply d;
        try {
            d = cpu.describe(DescribeRequest.getDefaultInstance());
        } catch (StatusRuntimeException e) {
            throw new BusUnavailableException("Machine.Describe", e);
        }
        IommuInstance found = null;
        for (IommuInstance i : d.getIommusList()) {
            if (i.getName().equals(iommu)) {
                found = i;
            }
        }
        if (found == null || found.getKind() != org.iommuemu.proto.v1.IommuKind.SMMUV3) {
            throw new IllegalArgumentException(found == null ? "the machine has no IOMMU instance '" + iommu + "'"
                    : iommu + " is " + found.getKind() + ", not an SMMUv3");
        }
        subscribe(channel);
    }

    /**
     * A host for {@code iommu} whose driver takes its pages from {@code [heapBase, heapBase + heapSize)} of guest
     * RAM, which nothing else on the machine may use (for instance the machine's driver heap, when the
     * {@code Driver} service is not used).
     */
    public static BusSmmuHost connect(Channel channel, String iommu, long heapBase, long heapSize) {
        BusPhysicalMemory memory = new BusPhysicalMemory(MachineGrpc.newBlockingStub(channel));
        return new BusSmmuHost(channel, iommu, memory, new BuddyPageAllocator(memory, heapBase, heapSize));
    }

    private void subscribe(Channel channel) {
        MachineGrpc.newStub(channel).interrupts(InterruptsRequest.newBuilder().addIommus(iommu).build(),
                new ClientResponseObserver<InterruptsRequest, Interrupt>() {
                    @Override
                    public void beforeStart(ClientCallStreamObserver<InterruptsRequest> call) {
                        subscription = call;
                    }

                    @Override
                    public void onNext(Interrupt i) {
                        deliver(i);
                    }

                    @Override
                    public void onError(Throwable t) {
                        if (!closed) {
                            log.warn("{}: the interrupt stream failed ({}); the driver goes on by polling", iommu,
                                    Status.fromThrowable(t));
                        }
                    }

                    @Override
                    public void onCompleted() {
                        if (!closed) {
                            log.warn("{}: the server ended the interrupt stream; the driver goes on by polling",
                                    iommu);
                        }
                    }
                });
    }

    private synchronized void deliver(Interrupt i) {
        if (i.getDropped() != 0) {
            log.warn("{}: the server dropped {} interrupt(s) after #{} (this client fell behind)", iommu,
                    i.getDropped(), i.getSequence());
        }
        Irq irq = Irq.fromSource(i.getSource());
        if (irq == null || (irq == Irq.CMD_SYNC && i.getMsi() && memory.isRam(i.getMsiAddress(), 4))) {
            return;
        }
        Consumer<Irq> h = handler;
        if (h == null || closed) {
            return;
        }
        delivered.incrementAndGet();
        try {
            h.accept(irq);
        } catch (RuntimeException e) {
            log.warn("{}: interrupt handler failed on {}", iommu, irq, e);
        }
    }

    /** Interrupts handed to the handler so far. */
    public long deliveredInterrupts() {
        return delivered.get();
    }

    @Override
    public long mmioRead(long offset, int width) {
        try {
            return cpu.mmioRead(MmioReadRequest.newBuilder().setIommu(iommu).setOffset(offset).setWidth(width).build())
                    .getValue();
        } catch (StatusRuntimeException e) {
            throw new BusUnavailableException("Machine.MmioRead " + iommu, offset, e);
        }
    }

    @Override
    public void mmioWrite(long offset, int width, long value) {
        try {
            cpu.mmioWrite(MmioWriteRequest.newBuilder().setIommu(iommu).setOffset(offset).setWidth(width)
                    .setValue(width == 4 ? value & 0xFFFF_FFFFL : value).build());
        } catch (StatusRuntimeException e) {
            throw new BusUnavailableException("Machine.MmioWrite " + iommu, offset, e);
        }
    }

    @Override
    public PhysicalMemory memory() {
        return memory;
    }

    @Override
    public PageAllocator allocator() {
        return allocator;
    }

    @Override
    public void onInterrupt(Consumer<Irq> handler) {
        this.handler = handler;
    }

    /** Cancels the interrupt stream; MMIO and memory stay usable while the channel is. */
    @Override
    public void close() {
        closed = true;
        ClientCallStreamObserver<InterruptsRequest> s = subscription;
        if (s != null) {
            s.cancel("the SMMUv3 host of " + iommu + " closed", null);
        }
    }

    @Override
    public String toString() {
        return "SMMUv3 " + iommu + " over the bus";
    }
}
