package org.iommuemu.device.inject;

/**
 * The gRPC bus's view of its machine's {@link FaultInjector}: the active faults of the {@link InjectionKind.Group#BUS}
 * kinds, whatever instance they target. The bus is not an IOMMU instance, but most calls are about one (a DMA
 * session is bound to the instance it attached to, a Driver or register call names one): a hook is told that
 * instance ({@code iommu}, empty for a call about none), and a fault with a {@code target.iommu} strikes only calls
 * about that instance, a fault with an empty one strikes every call.
 *
 * <p>With no bus fault active a hook is one volatile read of an empty array: nothing is allocated or locked. A firing
 * is recorded with the instance's simulated time and counted in its {@code injected_faults} (a call about no instance:
 * recorded with no instance and time 0, counted only in the fault's status).
 */
public final class BusFaults {
    private static final FaultInjector.Active[] NONE = new FaultInjector.Active[0];

    private final FaultInjector injector;
    volatile FaultInjector.Active[] active = NONE;

    BusFaults(FaultInjector injector) {
        this.injector = injector;
    }

    /** Whether any bus fault is active (one volatile read): lets a hot path skip its hooks. */
    public boolean any() {
        return active.length != 0;
    }

    /** Whether a fault of {@code kind} is active (without deciding anything): lets a path skip preparing a hook. */
    public boolean any(InjectionKind kind) {
        for (FaultInjector.Active f : active) {
            if (f.spec.kind() == kind) {
                return true;
            }
        }
        return false;
    }

    /**
     * One opportunity for faults of {@code kind}: the call to gRPC method {@code method} ("iommuemu.v1.Dma/Read")
     * about instance {@code iommu} (empty: none), at stream {@code stream} (negative: none) and address
     * {@code address} ({@code hasAddress} false: none), compared with the fault's selectors; {@code what} describes
     * the point in the record.
     *
     * @return the id and parameters of the fault that fired, or null when none did
     */
    public Fired firing(InjectionKind kind, String method, String iommu, long stream, boolean hasAddress,
            long address, String what) {
        FaultInjector.Active[] a = active;
        if (a.length == 0) {
            return null;
        }
        return fire(a, kind, method, iommu, stream, hasAddress, address, Integer.MAX_VALUE, what);
    }

    /**
     * {@link #firing} for an opportunity on {@code length} bytes of data read at {@code iova}: a fault whose
     * {@code params.bit} lies beyond the data (bit / 8 >= length) has no opportunity there (it neither counts nor
     * fires), so a fault fires only where it can flip its bit.
     */
    public Fired firingOnData(InjectionKind kind, String method, String iommu, long stream, long iova, int length,
            String what) {
        FaultInjector.Active[] a = active;
        if (a.length == 0) {
            return null;
        }
        return fire(a, kind, method, iommu, stream, true, iova, length, what);
    }

    private Fired fire(FaultInjector.Active[] a, InjectionKind kind, String method, String iommu, long stream,
            boolean hasAddress, long address, int length, String what) {
        for (FaultInjector.Active f : a) {
            FaultSpec.Target t = f.spec.target();
            if (f.spec.kind() == kind && (t.iommu().isEmpty() || t.iommu().equals(iommu))
                    && t.matchesMethod(method) && t.matchesStreamAndAddress(stream, hasAddress, address)
                    && f.spec.params().bit() / 8 < length && f.decide()) {
                String detail = InstanceFaults.describe(kind) + " " + method
                        + (stream >= 0 ? " stream 0x" + Long.toHexString(stream) : "")
                        + (hasAddress ? " iova 0x" + Long.toHexString(address) : "") + ": " + what;
                injector.recordBus(f, iommu, hasAddress ? address : 0, detail);
                return new Fired(f.id, f.spec.params());
            }
        }
        return null;
    }

    /** A fault that fired: its id (for messages that name it) and its parameters. */
    public record Fired(long faultId, FaultSpec.Params params) {}
}
