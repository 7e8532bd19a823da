package org.iommuemu.device.machine;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.PriorityQueue;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.trace.TraceKind;
import org.iommuemu.device.trace.Tracer;
import org.iommuemu.device.xlate.SimClock;

/**
 * One IOMMU instance's interrupts on their way to the machine's {@link InterruptSink}, where the interrupt kinds of
 * fault injection strike: {@link InjectionKind#MSI_WRITE_FAIL} (the MSI write aborts: {@link #msi} returns false
 * and nothing is delivered, so the device reports the abort as its architecture says),
 * {@link InjectionKind#INTERRUPT_DROP} (the interrupt is lost on the way; the device believes it was delivered) and
 * {@link InjectionKind#INTERRUPT_DELAY} (the interrupt is held and delivered once the instance's simulated clock has
 * reached the time it was raised plus {@code params.delay_ns}).
 *
 * <p>A held interrupt is delivered at the first of: the instance's next MMIO access (the device calls
 * {@link #deliverDue} after each one) or its next interrupt, at which the clock has reached the due time. Held
 * interrupts are delivered in due order; a later interrupt that is not held is not kept back behind them. A held
 * MSI is written when delivered; if that write aborts only the machine's hub counts it.
 *
 * <p>Every interrupt is an opportunity for each of the three kinds, with the source's code ({@link #code}) as
 * the opcode {@code target.opcodes} selects. With no fault active and nothing held a call costs one volatile read
 * beyond the delivery itself and allocates nothing.
 */
public final class InjectedInterrupts implements InterruptSink {
    /** Source codes ({@code target.opcodes} of the interrupt kinds): the SMMUv3 event queue interrupt. */
    public static final int EVENTQ = 1;
    /** SMMUv3 GERROR interrupt. */
    public static final int GERROR = 2;
    /** SMMUv3 PRI queue interrupt. */
    public static final int PRIQ = 3;
    /** SMMUv3 CMD_SYNC completion signalled with an interrupt (CS=SIG_IRQ). */
    public static final int CMD_SYNC = 4;
    /** VT-d fault event (FECTL). */
    public static final int FAULT_EVENT = 5;
    /** VT-d invalidation completion event (IECTL). */
    public static final int INV_COMPLETION = 6;

    private final InterruptSink sink;
    private final InstanceFaults faults;
    private final SimClock clock;
    /** Held interrupts by due time, then order; guarded by this. */
    private final PriorityQueue<Held> held = new PriorityQueue<>();
    private long sequence;
    private volatile boolean holding;
    private Tracer tracer = Tracer.NONE;
    private int track = -1;

    private record Held(long due, long sequence, String iommu, String source, boolean msi, long address, int data)
            implements Comparable<Held> {
        @Override
        public int compareTo(Held o) {
            int c = Long.compare(due, o.due);
            return c != 0 ? c : Long.compare(sequence, o.sequence);
        }
    }

    /** Interrupts of the instance whose hooks are {@code faults} and whose simulated time is {@code clock}. */
    public InjectedInterrupts(InterruptSink sink, InstanceFaults faults, SimClock clock) {
        this.sink = Objects.requireNonNull(sink, "sink");
        this.faults = Objects.requireNonNull(faults, "faults");
        this.clock = Objects.requireNonNull(clock, "clock");
    }

    /** The source code of interrupt source {@code source} ("eventq", "fault-event"...), 0 for an unknown one. */
    public static int code(String source) {
        return switch (source) {
            case "eventq" -> EVENTQ;
            case "gerror" -> GERROR;
            case "priq" -> PRIQ;
            case "cmd-sync" -> CMD_SYNC;
            case "fault-event" -> FAULT_EVENT;
            case "inv-completion" -> INV_COMPLETION;
            default -> 0;
        };
    }

    /** Records every interrupt into {@code tracer} as instance {@code track}; set once, before use. */
    public void tracer(Tracer tracer, int track) {
        this.tracer = tracer;
        this.track = track;
    }

    private void trace(int result, String source, long address) {
        Tracer t = tracer;
        if (t.on()) {
            t.record(TraceKind.INTERRUPT, track, 0, -1, address, 0, code(source), result, 0);
        }
    }

    @Override
    public void wired(String iommu, String source) {
        if (!holding && !faults.any()) {
            trace(TraceKind.IRQ_DELIVERED, source, 0);
            sink.wired(iommu, source);
            return;
        }
        deliverDue();
        int code = code(source);
        if (faults.fires(InjectionKind.INTERRUPT_DROP, code, 0, source + " wired interrupt")) {
            trace(TraceKind.IRQ_DROPPED, source, 0);
            return;
        }
        FaultSpec.Params p = faults.firing(InjectionKind.INTERRUPT_DELAY, code, 0, source + " wired interrupt");
        if (p != null) {
            trace(TraceKind.IRQ_DELAYED, source, 0);
            hold(p.delayNs(), iommu, source, false, 0, 0);
            return;
        }
        trace(TraceKind.IRQ_DELIVERED, source, 0);
        sink.wired(iommu, source);
    }

    @Override
    public boolean msi(String iommu, String source, long address, int data) {
        if (!holding && !faults.any()) {
            trace(TraceKind.IRQ_DELIVERED, source, address);
            return sink.msi(iommu, source, address, data);
        }
        deliverDue();
        int code = code(source);
        if (faults.fires(InjectionKind.MSI_WRITE_FAIL, code, address, source + " MSI write to")) {
            trace(TraceKind.IRQ_MSI_FAILED, source, address);
            return false;
        }
        if (faults.fires(InjectionKind.INTERRUPT_DROP, code, address, source + " MSI to")) {
            trace(TraceKind.IRQ_DROPPED, source, address);
            return true; // lost after the device let it go: the device sees a completed write
        }
        FaultSpec.Params p = faults.firing(InjectionKind.INTERRUPT_DELAY, code, address, source + " MSI to");
        if (p != null) {
            trace(TraceKind.IRQ_DELAYED, source, address);
            hold(p.delayNs(), iommu, source, true, address, data);
            return true;
        }
        trace(TraceKind.IRQ_DELIVERED, source, address);
        return sink.msi(iommu, source, address, data);
    }

    private synchronized void hold(long delayNs, String iommu, String source, boolean msi, long address, int data) {
        long now = clock.now();
        long due = now + delayNs < now ? Long.MAX_VALUE : now + delayNs;
        held.add(new Held(due, ++sequence, iommu, source, msi, address, data));
        holding = true;
    }

    /**
     * Delivers the held interrupts whose due time the instance's simulated clock has reached, in due order. One
     * volatile read when nothing is held.
     */
    public void deliverDue() {
        if (!holding) {
            return;
        }
        List<Held> due = new ArrayList<>();
        synchronized (this) {
            long now = clock.now();
            while (!held.isEmpty() && held.peek().due() <= now) {
                due.add(held.poll());
            }
            holding = !held.isEmpty();
        }
        for (Held h : due) {
            trace(TraceKind.IRQ_DELIVERED, h.source(), h.address());
            if (h.msi()) {
                sink.msi(h.iommu(), h.source(), h.address(), h.data());
            } else {
                sink.wired(h.iommu(), h.source());
            }
        }
    }

    /** Interrupts held now (INTERRUPT_DELAY). */
    public synchronized int held() {
        return held.size();
    }
}
