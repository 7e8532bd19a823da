package org.iommuemu.device.inject;

import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLongArray;
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
     * An opportunity for faults of {@code kind}: whether one fires at this point. {@code code} is the command opcode
     * or descriptor type, {@code address} the guest physical address involved (the queue entry), {@code what} how a
     * record describes the point ("CMDQ entry", "IQ descriptor", "IOTLB register").
     */
    public boolean fires(InjectionKind kind, int code, long address, String what) {
        FaultInjector.Active[] a = active;
        if (a.length == 0) {
            return false;
        }
        return fire(a, kind, code, address, what);
    }

    private boolean fire(FaultInjector.Active[] a, InjectionKind kind, int code, long address, String what) {
        for (FaultInjector.Active f : a) {
            if (f.spec.kind() == kind && f.spec.target().matchesOpcode(code) && f.decide()) {
                fired.incrementAndGet(kind.number());
                injector.record(f, this, code, address, describe(kind) + " code 0x" + Integer.toHexString(code)
                        + " at " + what + " 0x" + Long.toHexString(address));
                return true;
            }
        }
        return false;
    }

    void countFired(InjectionKind kind) {
        fired.incrementAndGet(kind.number());
    }

    private static String describe(InjectionKind kind) {
        return switch (kind) {
            case COMMAND_DROP -> "dropped";
            case SYNC_NEVER_COMPLETES -> "stalled, never completing,";
            case IGNORE_IOTLB_INVALIDATION -> "ignored IOTLB invalidation";
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
