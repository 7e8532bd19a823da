package org.iommuemu.device.machine;

import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.smmuv3.NestedTables;
import org.iommuemu.core.pgtable.PtFormat;

/**
 * One IOMMU instance the machine's driver has taken over, as the bus's {@code Driver} service uses it, whatever
 * its architecture: which domains it can hold, attach and detach of streams and substreams, and what the driver
 * read of its faults. {@link SmmuDriverInstance} and {@link VtdDriverInstance} adapt the two drivers.
 *
 * <p>Driver failures (a queue that does not complete, an acknowledgement that never comes, no memory for a
 * driver structure) are thrown as {@link Failure}; refusals of the IOMMU API as {@link IommuApiException}.
 */
public interface DriverInstance {
    /** The stage of a domain: first (stage 1, VT-d first stage) or second (stage 2, VT-d second stage). */
    enum Stage {
        S1,
        S2
    }

    /** A driver failure, with whether it was for want of memory. */
    final class Failure extends RuntimeException {
        private final boolean outOfMemory;

        public Failure(String message, boolean outOfMemory, Throwable cause) {
            super(message, cause);
            this.outOfMemory = outOfMemory;
        }

        public boolean outOfMemory() {
            return outOfMemory;
        }
    }

    /**
     * Told of every change of what a stream or substream is attached to (the machine's DMA sanitizer keeps its
     * stream → domain view from it).
     */
    @FunctionalInterface
    interface StreamListener {
        /**
         * After an attach or detach on instance {@code iommu}: stream {@code streamId}'s substream
         * {@code substreamId} (-1: the whole stream) is now attached to {@code domain} (null: to none).
         */
        void streamChanged(String iommu, int streamId, int substreamId, IommuDomain domain);
    }

    /** Sets the {@link StreamListener} (null: none); instances that do not report attachments ignore it. */
    default void streamListener(StreamListener listener) {
    }

    String name();

    IommuType type();

    /** What the driver calls itself in messages ("the SMMUv3 driver"). */
    String driverName();

    /**
     * Why a domain of {@code stage} with pages of {@code granule} bytes (nested on a stage-2 parent when
     * {@code nested}) cannot live on this instance, or null when it can.
     */
    String refusal(Stage stage, long granule, boolean nested);

    /** The output address width the instance implements. */
    int outputBits();

    /** The input address width a domain of {@code stage} gets when the client asks for none. */
    int defaultInputBits(Stage stage);

    /**
     * The page-table format of a domain of {@code stage} on this instance.
     *
     * @throws IllegalArgumentException naming {@code input_bits} / {@code output_bits} when they cannot be had
     */
    PtFormat format(Stage stage, int granuleLg2, int inputBits, int outputBits);

    /** Substream / PASID bits the driver uses on this instance (0: none). */
    int substreamBits();

    /** The context id (ASID, VMID or domain id) of {@code domain} on this instance, or -1 before its first use. */
    int contextId(IommuDomain domain);

    /** Attaches a whole stream (requester id) to {@code domain}, moving it from its old domain if any. */
    void attachStream(IommuDomain domain, Stage stage, int streamId) throws IommuApiException;

    /**
     * Enables ATS for the whole stream {@code streamId}, attached here (docs/ATS.md).
     *
     * @throws UnsupportedOperationException when this driver does not implement ATS
     * @throws IommuApiException when the instance does not implement ATS or the stream is not attached
     */
    default void enableAts(int streamId) throws IommuApiException {
        throw new UnsupportedOperationException(name() + ": this driver does not enable ATS");
    }

    /** Attaches a substream / PASID of a stream to a first-stage {@code domain}. */
    void attachSubstream(IommuDomain domain, int streamId, int substreamId) throws IommuApiException;

    /** Attaches a stream to a nested domain (stage 1 over its parent's stage 2). */
    void attachNested(IommuDomain domain, NestedTables tables, int streamId) throws IommuApiException;

    void detachStream(int streamId) throws IommuApiException;

    void detachSubstream(int streamId, int substreamId) throws IommuApiException;

    /** The domain a whole stream is attached to, or null. */
    IommuDomain domainOf(int streamId);

    /** The domain a substream is attached to, or null. */
    IommuDomain domainOf(int streamId, int substreamId);

    /** Reads what the hardware has reported (event queue, fault recording registers) into {@link #events()}. */
    void drainEvents();

    /** What the driver has read of the instance's events and faults. */
    DriverEventLog events();

    /** Disables the hardware as a driver's shutdown does, and closes the host (its interrupt stream). */
    void shutdown();

    /** Closes {@code c}; a failure is added to {@code pending} when there is one, else thrown. */
    static void closeQuietly(AutoCloseable c, RuntimeException pending) {
        try {
            c.close();
        } catch (Exception e) {
            if (pending != null) {
                pending.addSuppressed(e);
            } else {
                throw new IllegalStateException("closing the driver's host failed: " + e.getMessage(), e);
            }
        }
    }
}
