package org.iommuemu.device.vtd;

/**
 * Where the translation path reports a DMA-remapping fault: the device's primary fault logging (fault recording
 * registers, FSTS, the fault event). The translator calls it only for faults the context or PASID entry does not
 * suppress (FPD clear), and at most once per faulting request. Implementations must not allocate or block on
 * anything but the device's own register lock.
 */
@FunctionalInterface
interface FaultReporter {
    /**
     * Records one fault.
     *
     * @param sourceId the requester id
     * @param pasid    the PASID of the request, or -1 when it carried none
     * @param address  the faulting input address (the recording keeps bits 63:12)
     * @param reason   a {@link org.iommuemu.core.vtd.FaultReason} code
     * @param write    whether the request was a write (FRCD.T = 0) rather than a read (T = 1)
     * @param priv     whether the request was privileged (supervisor)
     * @param exec     whether the request was an execute request
     */
    void report(int sourceId, int pasid, long address, int reason, boolean write, boolean priv, boolean exec);
}
