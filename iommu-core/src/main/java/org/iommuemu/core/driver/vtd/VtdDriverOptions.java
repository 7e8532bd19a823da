package org.iommuemu.core.driver.vtd;

/**
 * How the VT-d driver sets a remapping unit up.
 *
 * @param scalableMode use scalable-mode tables (RTADDR.TTM=01, PASID tables) when the unit offers them
 *     ({@link VtdFeatures#scalableUsable()}), as Linux prefers (its {@code intel_iommu=sm_on} default); legacy
 *     root and context tables otherwise
 * @param queueEntriesLog2 log2 of the invalidation queue's descriptors; 8 (256, Linux's QI_LENGTH) by default.
 *     With 256-bit descriptors the queue has 2^(QS+7) entries, with 128-bit ones 2^(QS+8), QS ≤ 7: so 7..14 with
 *     ECAP.SMTS and 8..15 without
 * @param maxPasidBits the widest PASID a device's PASID directory covers in scalable mode: min(this, ECAP.PSS+1),
 *     and at least 7 bits (a one-page directory); Linux sizes it from the device's PASID capability
 * @param faultMsiAddress FEUADDR:FEADDR, where fault events are sent (4-byte aligned); by default a doorbell in
 *     the machine's interrupt controller window (0x0800_0000, 64 KiB)
 * @param faultMsiData FEDATA
 * @param completionMsiAddress IEUADDR:IEADDR, for invalidation-completion events (programmed; the driver polls
 *     status words and never sets a wait descriptor's IF, as Linux, so none is raised)
 * @param completionMsiData IEDATA
 * @param ackPolls reads of GSTS before a GCMD command counts as not acknowledged
 * @param queuePolls polls of the queue (IQH, or a wait's status word) before a full queue or an incomplete
 *     invalidation wait counts as a timeout
 */
public record VtdDriverOptions(
        boolean scalableMode,
        int queueEntriesLog2,
        int maxPasidBits,
        long faultMsiAddress,
        int faultMsiData,
        long completionMsiAddress,
        int completionMsiData,
        int ackPolls,
        int queuePolls) {

    /** The interrupt controller's doorbell window in the emulated machine: MSIs there reach interrupt subscribers. */
    public static final long DOORBELL_BASE = 0x0800_0000L;
    /** The default fault-event MSI address, in the doorbell window. */
    public static final long DEFAULT_FAULT_MSI_ADDRESS = DOORBELL_BASE + 0x40;
    /** The default invalidation-completion MSI address, in the doorbell window. */
    public static final long DEFAULT_COMPLETION_MSI_ADDRESS = DOORBELL_BASE + 0x44;

    /** Rejects sizes and bounds out of range. */
    public VtdDriverOptions {
        check(queueEntriesLog2 >= 7 && queueEntriesLog2 <= 15, "queueEntriesLog2 must be 7..15, was " + queueEntriesLog2);
        check(maxPasidBits >= 7 && maxPasidBits <= 20, "maxPasidBits must be 7..20, was " + maxPasidBits);
        check((faultMsiAddress & 3) == 0, "faultMsiAddress must be 4-byte aligned, was 0x"
                + Long.toHexString(faultMsiAddress));
        check((completionMsiAddress & 3) == 0, "completionMsiAddress must be 4-byte aligned, was 0x"
                + Long.toHexString(completionMsiAddress));
        check(ackPolls >= 1, "ackPolls must be at least 1, was " + ackPolls);
        check(queuePolls >= 1, "queuePolls must be at least 1, was " + queuePolls);
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("VT-d driver options: " + message);
        }
    }

    /**
     * Scalable mode when offered, a 256-descriptor queue, PASID directories for 20-bit PASIDs, MSIs to the doorbell
     * window (data 0x40 and 0x41), 100 000 polls for GCMD acknowledgements and 1 000 000 for the queue.
     */
    public static VtdDriverOptions defaults() {
        return new VtdDriverOptions(true, 8, 20, DEFAULT_FAULT_MSI_ADDRESS, 0x40, DEFAULT_COMPLETION_MSI_ADDRESS, 0x41,
                100_000, 1_000_000);
    }

    public VtdDriverOptions withScalableMode(boolean v) {
        return new VtdDriverOptions(v, queueEntriesLog2, maxPasidBits, faultMsiAddress, faultMsiData,
                completionMsiAddress, completionMsiData, ackPolls, queuePolls);
    }

    public VtdDriverOptions withQueueEntriesLog2(int v) {
        return new VtdDriverOptions(scalableMode, v, maxPasidBits, faultMsiAddress, faultMsiData,
                completionMsiAddress, completionMsiData, ackPolls, queuePolls);
    }

    public VtdDriverOptions withMaxPasidBits(int v) {
        return new VtdDriverOptions(scalableMode, queueEntriesLog2, v, faultMsiAddress, faultMsiData,
                completionMsiAddress, completionMsiData, ackPolls, queuePolls);
    }

    public VtdDriverOptions withFaultMsi(long address, int data) {
        return new VtdDriverOptions(scalableMode, queueEntriesLog2, maxPasidBits, address, data,
                completionMsiAddress, completionMsiData, ackPolls, queuePolls);
    }

    public VtdDriverOptions withCompletionMsi(long address, int data) {
        return new VtdDriverOptions(scalableMode, queueEntriesLog2, maxPasidBits, faultMsiAddress, faultMsiData,
                address, data, ackPolls, queuePolls);
    }

    public VtdDriverOptions withAckPolls(int v) {
        return new VtdDriverOptions(scalableMode, queueEntriesLog2, maxPasidBits, faultMsiAddress, faultMsiData,
                completionMsiAddress, completionMsiData, v, queuePolls);
    }

    public VtdDriverOptions withQueuePolls(int v) {
        return new VtdDriverOptions(scalableMode, queueEntriesLog2, maxPasidBits, faultMsiAddress, faultMsiData,
                completionMsiAddress, completionMsiData, ackPolls, v);
    }
}
