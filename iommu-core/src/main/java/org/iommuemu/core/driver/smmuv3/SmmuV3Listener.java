package org.iommuemu.core.driver.smmuv3;

import org.iommuemu.core.smmuv3.EventRecord;

/**
 * What the driver reports as it handles the SMMU: decoded event records, event-queue overflows, global errors
 * and command errors. Every method has an empty default, so a listener implements what it cares about.
 * Listeners are called on the thread that drains or recovers (often the interrupt path), with the driver's queue
 * lock held: they must return quickly and must not call back into the driver.
 */
public interface SmmuV3Listener {
    /** An event record read from the event queue, in queue order. */
    default void onEvent(EventRecord event) {}

    /** The event queue overflowed (EVENTQ_PROD.OVFLG != EVENTQ_CONS.OVACKFLG): records were lost. */
    default void onEventOverflow() {}

    /** Global error {@code bit} ({@link org.iommuemu.core.smmuv3.Gerror}) was active; it has been acknowledged. */
    default void onGlobalError(int bit) {}

    /**
     * The command queue stopped at a command with CMDQ_CONS.ERR = {@code cerror}
     * ({@link org.iommuemu.core.smmuv3.QueuePointer#CERROR_ILL}...) at queue index {@code index}; {@code dw0} and
     * {@code dw1} are the command as it was in the queue. An illegal command has been replaced by a CMD_SYNC.
     */
    default void onCommandError(int cerror, int index, long dw0, long dw1) {}
}
