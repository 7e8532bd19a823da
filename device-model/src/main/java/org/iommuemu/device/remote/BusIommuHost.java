package org.iommuemu.device.remote;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.proto.v1.DescribeReply;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.Interrupt;
import org.iommuemu.proto.v1.InterruptsRequest;
import org.iommuemu.proto.v1.IommuInstance;
import org.iommuemu.proto.v1.IommuKind;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MmioReadRequest;
import org.iommuemu.proto.v1.MmioWriteRequest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A driver's host interface on the far side of the bus, for one IOMMU instance: register accesses are
 * {@code Machine.MmioRead} and {@code MmioWrite}, memory is a {@link BusPhysicalMemory}, pages come from the allocator
 * the caller gives, and interrupts arrive on a {@code Machine.Interrupts} stream filtered to this instance.
 * {@link BusSmmuHost} and {@link BusVtdHost} are the SMMUv3 and VT-d hosts; they differ in which interrupt messages
 * are interrupts of their driver ({@link #classify}).
 *
 * <p><b>Interrupts.</b> The constructor returns once the server has confirmed the subscription (the stream's
 * headers, which the server sends when it is in place), so every interrupt raised after it, from the driver's
 * {@code init} on, reaches the handler; a server that does not confirm within the deadline is a
 * {@link BusUnavailableException}. Each message is classified and handed to the handler on the gRPC callback thread,
 * one at a time, the next message being asked for only when the handler has returned (a slow handler makes the
 * server buffer, then count what it drops). That thread may block: the driver's handler makes RPCs of its own, so
 * the channel must not run callbacks on a transport thread (gRPC's default executor is right; {@code
 * directExecutor()} is not). A gap the server reports ({@code dropped}) and the stream's failure or end are logged as
 * warnings (the driver goes on by polling); a handler that throws is logged and the stream goes on.
 *
 * <p>Every RPC has its own deadline ({@link BusPhysicalMemory#DEFAULT_DEADLINE} unless told); a failure of the bus
 * under an MMIO access is a {@link BusUnavailableException} naming the RPC, the instance and the offset. Thread-safe.
 *
 * @param <I> the driver's interrupt kinds
 */
public abstract class BusIommuHost<I> implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(BusIommuHost.class);

    private final String iommu;
    private final MachineGrpc.MachineBlockingStub cpu;
    private final long deadlineNanos;
    private final BusPhysicalMemory memory;
    private final PageAllocator allocator;
    private final AtomicLong delivered = new AtomicLong();
    private final AtomicLong dropped = new AtomicLong();
    private final ClientCall<InterruptsRequest, Interrupt> subscription;
    private final String kindName;
    private volatile Consumer<I> handler;
    private volatile boolean closed;

    /**
     * Checks that the machine has the instance, of the kind expected, and subscribes to its interrupts.
     *
     * @param channel   the bus (callbacks on an executor that may block: see the class comment)
     * @param iommu     the instance (its {@code IommuInstance.name})
     * @param kind      the kind it must be
     * @param memory    the machine's memory over the same bus
     * @param allocator where the driver's queues and tables come from (over {@code memory})
     * @param deadline  how long each MMIO RPC, and the wait for the interrupt subscription, may take
     * @throws IllegalArgumentException when the machine has no such instance or it is of another kind
     * @throws BusUnavailableException when the bus fails or the server does not confirm the subscription in time
     */
    protected BusIommuHost(Channel channel, String iommu, IommuKind kind, BusPhysicalMemory memory,
            PageAllocator allocator, Duration deadline) {
        Objects.requireNonNull(channel, "channel");
        this.iommu = Objects.requireNonNull(iommu, "iommu");
        this.memory = Objects.requireNonNull(memory, "memory");
        this.allocator = Objects.requireNonNull(allocator, "allocator");
        this.kindName = kind == IommuKind.VTD ? "VT-d" : "SMMUv3";
        if (deadline.isNegative() || deadline.isZero()) {
            throw new IllegalArgumentException("the RPC deadline must be positive, got " + deadline);
        }
        this.deadlineNanos = deadline.toNanos();
        this.cpu = MachineGrpc.newBlockingStub(channel);
        DescribeReply d;
        try {
            d = rpc().describe(DescribeRequest.getDefaultInstance());
        } catch (StatusRuntimeException e) {
            throw new BusUnavailableException("Machine.Describe", e);
        }
        IommuInstance found = null;
        for (IommuInstance i : d.getIommusList()) {
            if (i.getName().equals(iommu)) {
                found = i;
            }
        }
        if (found == null || found.getKind() != kind) {
            throw new IllegalArgumentException(found == null ? "the machine has no IOMMU instance '" + iommu + "'"
                    : iommu + " is " + found.getKind() + ", not " + (kind == IommuKind.VTD ? "VT-d" : "an SMMUv3"));
        }
        this.subscription = subscribe(channel);
    }

    /** The interrupt an interrupt message stands for, or null when it is none to hand to the driver. */
    protected abstract I classify(Interrupt message);

    private MachineGrpc.MachineBlockingStub rpc() {
        return cpu.withDeadlineAfter(deadlineNanos, TimeUnit.NANOSECONDS);
    }

    /** Starts the stream and waits, bounded, for the server to say the subscription is in place. */
    private ClientCall<InterruptsRequest, Interrupt> subscribe(Channel channel) {
        ClientCall<InterruptsRequest, Interrupt> call = channel.newCall(MachineGrpc.getInterruptsMethod(),
                CallOptions.DEFAULT);
        CountDownLatch answered = new CountDownLatch(1);
        Status[] endedEarly = new Status[1];
        call.start(new ClientCall.Listener<>() {
            @Override
            public void onHeaders(Metadata headers) {
                answered.countDown();
            }

            @Override
            public void onMessage(Interrupt message) {
                try {
                    deliver(message);
                } finally {
                    call.request(1); // the next one only now: a slow handler is the server's to buffer
                }
            }

            @Override
            public void onClose(Status status, Metadata trailers) {
                if (answered.getCount() > 0) {
                    endedEarly[0] = status;
                    answered.countDown();
                } else if (!closed) {
                    if (status.isOk()) {
                        log.warn("{}: the server ended the interrupt stream; the driver goes on by polling", iommu);
                    } else {
                        log.warn("{}: the interrupt stream failed ({}); the driver goes on by polling", iommu, status);
                    }
                }
            }
        }, new Metadata());
        call.sendMessage(InterruptsRequest.newBuilder().addIommus(iommu).build());
        call.halfClose();
        call.request(1);
        boolean inTime;
        try {
            inTime = answered.await(deadlineNanos, TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            call.cancel("interrupted while subscribing", e);
            throw new BusUnavailableException("Machine.Interrupts for " + iommu + ": interrupted while subscribing");
        }
        if (!inTime) {
            call.cancel("no subscription in time", null);
            throw new BusUnavailableException("Machine.Interrupts for " + iommu + ": the server did not confirm the"
                    + " subscription within " + TimeUnit.NANOSECONDS.toMillis(deadlineNanos) + " ms");
        }
        if (endedEarly[0] != null) { // the latch orders this read after onClose's write
            Status s = endedEarly[0];
            throw s.isOk() ? new BusUnavailableException("Machine.Interrupts for " + iommu
                    + ": the server ended the stream at once (shutting down?)")
                    : new BusUnavailableException("Machine.Interrupts for " + iommu, s.asRuntimeException());
        }
        return call;
    }

    /**
     * Whether an interrupt message is an MSI the server performed as a write into RAM, which is what the machine's
     * interrupt controller does for a 4-byte aligned RAM address (any other MSI target is the doorbell window, or
     * the MSI aborted and was never reported).
     */
    protected boolean landedInRam(Interrupt i) {
        return i.getMsi() && (i.getMsiAddress() & 3) == 0 && memory.isRam(i.getMsiAddress(), 4);
    }

    /** On the stream's callback thread; gRPC calls it for one message at a time. */
    private void deliver(Interrupt i) {
        if (i.getDropped() != 0) {
            dropped.addAndGet(i.getDropped());
            log.warn("{}: the server dropped {} interrupt(s) after #{} (this client fell behind); the driver goes on"
                    + " by polling", iommu, i.getDropped(), i.getSequence());
        }
        I irq = classify(i);
        if (irq == null) {
            return;
        }
        Consumer<I> h = handler;
        if (h == null || closed) {
            return; // no handler yet: a masked line
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

    /** Interrupts the server reported as dropped for this subscriber so far. */
    public long droppedInterrupts() {
        return dropped.get();
    }

    public long mmioRead(long offset, int width) {
        try {
            return rpc().mmioRead(MmioReadRequest.newBuilder().setIommu(iommu).setOffset(offset).setWidth(width)
                    .build()).getValue();
        } catch (StatusRuntimeException e) {
            throw new BusUnavailableException("Machine.MmioRead " + iommu, offset, e);
        }
    }

    public void mmioWrite(long offset, int width, long value) {
        try {
            rpc().mmioWrite(MmioWriteRequest.newBuilder().setIommu(iommu).setOffset(offset).setWidth(width)
                    .setValue(width == 4 ? value & 0xFFFF_FFFFL : value).build());
        } catch (StatusRuntimeException e) {
            throw new BusUnavailableException("Machine.MmioWrite " + iommu, offset, e);
        }
    }

    public PhysicalMemory memory() {
        return memory;
    }

    public PageAllocator allocator() {
        return allocator;
    }

    public void onInterrupt(Consumer<I> handler) {
        this.handler = handler;
    }

    /** Cancels the interrupt stream; MMIO and memory stay usable while the channel is. */
    @Override
    public void close() {
        closed = true;
        subscription.cancel("the " + kindName + " host of " + iommu + " closed", null);
    }

    @Override
    public String toString() {
        return kindName + " " + iommu + " over the bus";
    }
}
