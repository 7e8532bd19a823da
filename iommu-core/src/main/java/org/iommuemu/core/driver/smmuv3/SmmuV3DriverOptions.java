package org.iommuemu.core.driver.smmuv3;

/**
 * How the SMMUv3 driver sets an instance up.
 *
 * @param cmdqLog2 log2 of the command queue entries wanted; the queue gets min(this, IDR1.CMDQS)
 * @param eventqLog2 log2 of the event queue records wanted; min(this, IDR1.EVENTQS)
 * @param maxSidBits StreamID bits the stream table covers at most; it covers min(this, IDR1.SIDSIZE)
 * @param disableBypass Linux's {@code disable_bypass}: streams without a configuration abort (their initial
 *     STEs abort, and GBPA.ABORT is set before SMMUEN so that a disabled SMMU aborts too); when false they bypass
 * @param msiPolling wait for CMD_SYNC completion by polling the MSI write when the SMMU supports it
 *     ({@link SmmuV3Features#msiPolling()}); when false, always poll CMDQ_CONS
 * @param ackPolls reads of CR0ACK, IRQ_CTRLACK or GBPA before a control-register update counts as lost
 * @param queuePolls polls of CMDQ_CONS (or of the CMD_SYNC's MSI word) before a full queue or an incomplete
 *     CMD_SYNC counts as a timeout
 * @param maxSsidBits SubstreamID bits a stream's CD table covers at most once a substream is attached: S1CDMax is
 *     min(this, IDR1.SSIDSIZE) (Linux's min of the SMMU's and the master's PASID bits); 0 refuses substreams
 * @param cdLeaf64k the leaf size of 2-level CD tables: 64 KB (1024 CDs, S1Fmt 2, what Linux uses) when true,
 *     4 KB (64 CDs, S1Fmt 1) when false. A CD table is linear while it fits in one leaf, or when the SMMU has
 *     no IDR0.CD2L
 */
public record SmmuV3DriverOptions(
        int cmdqLog2,
        int eventqLog2,
        int maxSidBits,
        boolean disableBypass,
        boolean msiPolling,
        int ackPolls,
        int queuePolls,
        int maxSsidBits,
        boolean cdLeaf64k) {

    /** Rejects sizes and bounds out of range. */
    public SmmuV3DriverOptions {
        check(cmdqLog2 >= 1 && cmdqLog2 <= 19, "cmdqLog2 must be 1..19, was " + cmdqLog2);
        check(eventqLog2 >= 0 && eventqLog2 <= 19, "eventqLog2 must be 0..19, was " + eventqLog2);
        check(maxSidBits >= 0 && maxSidBits <= 32, "maxSidBits must be 0..32, was " + maxSidBits);
        check(ackPolls >= 1, "ackPolls must be at least 1, was " + ackPolls);
        check(queuePolls >= 1, "queuePolls must be at least 1, was " + queuePolls);
        check(maxSsidBits >= 0 && maxSsidBits <= 20, "maxSsidBits must be 0..20, was " + maxSsidBits);
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("SMMUv3 driver options: " + message);
        }
    }

    /**
     * A 1024-entry command queue (16 KB), a 512-record event queue (16 KB), every StreamID the SMMU has,
     * bypass disabled (Linux's default), MSI polling when available, 100 000 polls for acknowledgements and
     * 1 000 000 for the command queue, every SubstreamID bit the SMMU has, 64 KB CD leaf tables (as Linux).
     */
    public static SmmuV3DriverOptions defaults() {
        return new SmmuV3DriverOptions(10, 9, 32, true, true, 100_000, 1_000_000, 20, true);
    }

    public SmmuV3DriverOptions withCmdqLog2(int v) {
        return new SmmuV3DriverOptions(v, eventqLog2,
                maxSidBits, disableBypass, msiPolling, ackPolls, queuePolls, maxSsidBits, cdLeaf64k);
    }

    public SmmuV3DriverOptions withEventqLog2(int v) {
        return new SmmuV3DriverOptions(cmdqLog2, v,
                maxSidBits, disableBypass, msiPolling, ackPolls, queuePolls, maxSsidBits, cdLeaf64k);
    }

    public SmmuV3DriverOptions withMaxSidBits(int v) {
        return new SmmuV3DriverOptions(cmdqLog2, eventqLog2,
                v, disableBypass, msiPolling, ackPolls, queuePolls, maxSsidBits, cdLeaf64k);
    }

    public SmmuV3DriverOptions withDisableBypass(boolean v) {
        return new SmmuV3DriverOptions(cmdqLog2, eventqLog2,
                maxSidBits, v, msiPolling, ackPolls, queuePolls, maxSsidBits, cdLeaf64k);
    }

    public SmmuV3DriverOptions withMsiPolling(boolean v) {
        return new SmmuV3DriverOptions(cmdqLog2, eventqLog2,
                maxSidBits, disableBypass, v, ackPolls, queuePolls, maxSsidBits, cdLeaf64k);
    }

    public SmmuV3DriverOptions withAckPolls(int v) {
        return new SmmuV3DriverOptions(cmdqLog2, eventqLog2,
                maxSidBits, disableBypass, msiPolling, v, queuePolls, maxSsidBits, cdLeaf64k);
    }

    public SmmuV3DriverOptions withQueuePolls(int v) {
        return new SmmuV3DriverOptions(cmdqLog2, eventqLog2,
                maxSidBits, disableBypass, msiPolling, ackPolls, v, maxSsidBits, cdLeaf64k);
    }

    public SmmuV3DriverOptions withMaxSsidBits(int v) {
        return new SmmuV3DriverOptions(cmdqLog2, eventqLog2,
                maxSidBits, disableBypass, msiPolling, ackPolls, queuePolls, v, cdLeaf64k);
    }

    public SmmuV3DriverOptions withCdLeaf64k(boolean v) {
        return new SmmuV3DriverOptions(cmdqLog2, eventqLog2,
                maxSidBits, disableBypass, msiPolling, ackPolls, queuePolls, maxSsidBits, v);
    }
}
