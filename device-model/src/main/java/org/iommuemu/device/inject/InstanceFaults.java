package org.iommuemu.device.inject;

import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.function.Function;
import org.iommuemu.device.xlate.SimClock;

/**
 * One IOMMU instance's view of its machine's {@link FaultInjector}: the hooks its injection points call. With no
 * fault active on the instance a hook is one volatile read of an empty array: nothing is allocated or locked.
 * When a fault fires the hook records it (with the instance's simulated time) and returns true; the device then
 * misbehaves as the kind says.
 */
public final class InstanceFaults {
    private static final FaultInjector.Active[] NONE = new FaultInjector.Active[0];

    private final FaultInjector injector;
    private final String name;
    private final SimClock clock;
    /** Fired faults by kind number. */
    private final AtomicLongArray fired = new AtomicLongArray(64);
    volatile FaultInjector.Active[] active = NONE;
    private volatile Runnable onChange;
    private volatile Check check;

    InstanceFaults(FaultInjector injector, String name, SimClock clock) {
        this.injector = injector;
        this.name = name;
        this.clock = clock;
    }

    /** An injector of its own, on which nothing is ever injected: for devices built without a machine. */
    public static InstanceFaults none(String name, SimClock clock) {
        return new FaultInjector().attach(name, clock);
    }

    public String name() {
        return name;
    }

    long now() {
        return clock == null ? 0 : clock.now();
    }

    /**
     * An opportunity for faults of {@code kind} that has no stream or address to select by: whether one fires at
     * this point. {@code code} is the command opcode or descriptor type, {@code address} the guest physical address
     * involved (the queue entry) for the record, {@code what} how a record describes the point ("CMDQ entry",
     * "IQ descriptor", "IOTLB register"). A fault with a stream or address selector never fires here.
     */
    public boolean fires(InjectionKind kind, int code, long address, String what) {
        FaultInjector.Active[] a = active;
        if (a.length == 0) {
            return false;
        }
        return fire(a, kind, null, code, -1, false, 0, address, what) != null;
    }

    /**
     * An opportunity with a stream and an address to select by: {@code stream} (negative: none) and
     * {@code selected} ({@code hasSelected} false: none) are compared with the fault's {@code target.stream_ids}
     * and {@code target.addresses}; {@code address} and {@code what} describe the point in the record.
     *
     * @return the parameters of the fault that fired, or null when none did
     */
    public FaultSpec.Params firing(InjectionKind kind, int code, long stream, boolean hasSelected, long selected,
            long address, String what) {
        FaultInjector.Active[] a = active;
        if (a.length == 0) {
            return null;
        }
        FaultInjector.Active f = fire(a, kind, null, code, stream, hasSelected, selected, address, what);
        return f == null ? null : f.spec.params();
    }

    /** {@link #firing} for an opportunity with no stream or address to select by. */
    public FaultSpec.Params firing(InjectionKind kind, int code, long address, String what) {
        return firing(kind, code, -1, false, 0, address, what);
    }

    /**
     * The parameters of the newest active {@link InjectionKind.Mode#WHILE_ACTIVE} fault of {@code kind} on this
     * instance, or null: what the hardware should look like now (a shrunken cache). Nothing is recorded here: a
     * while-active fault is recorded once, when injected.
     */
    public FaultSpec.Params whileActive(InjectionKind kind) {
        FaultInjector.Active[] a = active;
        for (int i = a.length - 1; i >= 0; i--) {
            if (a[i].spec.kind() == kind) {
                return a[i].spec.params();
            }
        }
        return null;
    }

    /**
     * The parameters of the newest active fault of {@code kind} whose {@code params.cache} is {@code cache}, or
     * null: a device applies the cache kinds with it ({@link InjectionKind#CACHE_SHRINK}'s capacity, whether a
     * {@link InjectionKind#CACHE_EVICT_RANDOM} aims at a cache). Nothing is recorded.
     */
    public FaultSpec.Params active(InjectionKind kind, String cache) {
        FaultInjector.Active[] a = active;
        for (int i = a.length - 1; i >= 0; i--) {
            if (a[i].spec.kind() == kind && a[i].spec.params().cache().equals(cache)) {
                return a[i].spec.params();
            }
        }
        return null;
    }

    /**
     * An opportunity of a cache kind in cache {@code cache}: only faults whose {@code params.cache} names it can
     * fire; {@code address} is what the lookup was for (recorded). Returns whether one fired.
     */
    public boolean firesInCache(InjectionKind kind, String cache, long address, String what) {
        FaultInjector.Active[] a = active;
        if (a.length == 0) {
            return false;
        }
        return fire(a, kind, cache, 0, -1, false, 0, address, what) != null;
    }

    /** Whether any fault is active on this instance (one volatile read): lets a hot path skip its hooks. */
    public boolean any() {
        return active.length != 0;
    }

    private FaultInjector.Active fire(FaultInjector.Active[] a, InjectionKind kind, String cache, int code,
            long stream, boolean hasSelected, long selected, long address, String what) {
        for (FaultInjector.Active f : a) {
            FaultSpec.Target t = f.spec.target();
            if (f.spec.kind() == kind && (cache == null || cache.equals(f.spec.params().cache()))
                    && t.matchesOpcode(code)
                    && t.matchesStreamAndAddress(stream, hasSelected, selected) && f.decide()) {
                fired.incrementAndGet(kind.number());
                injector.record(f, this, code, address, describe(kind) + " code 0x" + Integer.toHexString(code)
                        + (stream >= 0 ? " stream 0x" + Long.toHexString(stream) : "")
                        + " at " + what + " 0x" + Long.toHexString(address));
                return f;
            }
        }
        return null;
    }

    /**
     * Runs {@code listener} whenever the faults active on this instance change: a device whose hardware a
     * {@link InjectionKind.Mode#WHILE_ACTIVE} fault reshapes (a cache's capacity) applies it there. It runs on the
     * thread that changed the faults, after the injector's monitor is released, and should read the instance's
     * current faults: runs may come late or twice. One listener per instance.
     */
    public void onChange(Runnable listener) {
        onChange = listener;
    }

    /**
     * A device's own checks of a fault aimed at it, beyond what {@link FaultSpec#validate} can know: whether its
     * architecture has the kind at all, whether a named cache exists and a capacity fits it.
     */
    @FunctionalInterface
    public interface Check {
        /**
         * Checks {@code spec} (validated already) against this instance.
         *
         * @throws FaultSpecException naming the field when the instance cannot take the fault
         */
        void check(FaultSpec spec);
    }

    /** Sets the device's {@link Check}; the injector runs it at {@code Inject} for faults this instance would get. */
    public void check(Check c) {
        check = c;
    }

    /** Runs the device's check, if any. */
    void checkFault(FaultSpec spec) {
        Check c = check;
        if (c != null) {
            c.check(spec);
        }
    }

    void changed() {
        Runnable r = onChange;
        if (r != null) {
            r.run();
        }
    }

    void countFired(InjectionKind kind) {
        fired.incrementAndGet(kind.number());
    }

    static String describe(InjectionKind kind) {
        return switch (kind) {
            case COMMAND_DROP -> "dropped";
            case BUS_REPLY_DELAY -> "held the reply of";
            case BUS_RPC_UNAVAILABLE -> "failed with UNAVAILABLE, not carried out,";
            case BUS_STREAM_CUT -> "cut the stream, releasing the client's sessions,";
            case BUS_DMA_READ_CORRUPT -> "corrupted the read data of";
            case SYNC_NEVER_COMPLETES -> "stalled, never completing,";
            case IGNORE_IOTLB_INVALIDATION -> "ignored IOTLB invalidation";
            case IGNORE_CONFIG_INVALIDATION -> "ignored configuration-cache invalidation";
            case WALK_READ_ABORT -> "aborted (external abort) the walk's read";
            case QUEUE_READ_ABORT -> "aborted (external abort) the fetch,";
            case COMMAND_DELAY -> "delayed";
            case COMMAND_REORDER -> "held back until the next sync";
            case COMMAND_CORRUPT -> "corrupted (one bit flipped as read)";
            case SYNC_LATE -> "completing late";
            case ATC_INVALIDATION_TIMEOUT -> "timed out (no ATC completion)";
            case INTERRUPT_DROP -> "dropped interrupt, source";
            case INTERRUPT_DELAY -> "held (delayed) interrupt, source";
            case INTERRUPT_SPURIOUS -> "spurious interrupt raised";
            case MSI_WRITE_FAIL -> "aborted MSI write, source";
            case CACHE_EVICT_RANDOM -> "evicted at a hit (the lookup misses),";
            case EVENT_QUEUE_OVERFLOW -> "overflowed (record discarded as if the queue were full), event/reason";
            default -> kind.name();
        };
    }

    /** Faults that fired on this instance, by kind (kinds that never fired left out). */
    public Map<InjectionKind, Long> firedByKind() {
        Map<InjectionKind, Long> m = new EnumMap<>(InjectionKind.class);
        for (InjectionKind k : InjectionKind.values()) {
            long n = fired.get(k.number());
            if (n > 0) {
                m.put(k, n);
            }
        }
        return m;
    }
}
