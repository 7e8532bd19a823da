package org.iommuemu.core.driver.vtd;

/**
 * What the driver reports as it handles the unit: primary faults, fault overflows and invalidation-queue errors.
 * Every method has an empty default. Listeners are called on the thread that drains faults or waits for the
 * queue (often the interrupt path), with a driver lock held: they must return quickly and must not call back into
 * the driver.
 */
public interface VtdListener {
    /** The invalidation-queue errors of FSTS. */
    enum QueueError {
        /** Invalidation queue error: a bad descriptor, an invalid tail or a fetch failure; the queue stopped. */
        IQE,
        /** Invalidation time-out: a device-TLB invalidation timed out; pending waits were aborted. */
        ITE,
        /** Invalidation completion error: an invalid device-TLB invalidation completion. */
        ICE
    }

    /** A primary fault read from a fault recording register, in the order the registers were walked. */
    default void onFault(VtdFault fault) {}

    /** FSTS.PFO was set: faults were dropped because every recording register was full. */
    default void onFaultOverflow() {}

    /**
     * An invalidation-queue error. For IQE, {@code index} is the descriptor IQH pointed at and {@code qw0}/{@code qw1}
     * its first words as they were in the queue (it has since been replaced by a harmless invalidation wait); for
     * ITE and ICE {@code index} is -1 and the words are 0. {@code iqercd} is the IQERCD register (reason, SIDs).
     */
    default void onQueueError(QueueError error, int index, long qw0, long qw1, long iqercd) {}

    /**
     * The driver gave invalidations up after an ITE: either the device-TLB invalidations of source id
     * {@code sourceId} (IQERCD.ITESID: that device did not answer in time; the rest of the batch was submitted again),
     * or a whole batch still aborted after {@code attempts} submissions. The IOTLB invalidations took effect; that
     * device's ATC may still hold what was invalidated.
     */
    default void onInvalidationAbandoned(int sourceId, int attempts) {}
}
