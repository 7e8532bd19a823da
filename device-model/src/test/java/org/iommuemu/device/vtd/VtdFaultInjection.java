package org.iommuemu.device.vtd;

/**
 * Test access to a unit's primary fault logging, for driver tests outside this package: records a fault as the
 * translation path would (same recording, FSTS and fault-event behaviour), without needing a translation.
 */
public final class VtdFaultInjection {
    private VtdFaultInjection() {}

    /** Records one DMA-remapping fault on {@code vtd}; {@code pasid} -1 for a request without a PASID. */
    public static void report(VtdDevice vtd, int sourceId, int pasid, long address, int reason, boolean write) {
        vtd.faultReporter().report(sourceId, pasid, address, reason, write, false, false);
    }
}
