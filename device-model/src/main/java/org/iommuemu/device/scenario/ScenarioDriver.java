package org.iommuemu.device.scenario;

import java.util.List;
import java.util.Map;

/**
 * The IOMMU driver a scenario runs its domain steps through. Two implementations: {@link ServiceDriver} asks the
 * server's own driver over the {@code Driver} service; a client-side one runs the SMMUv3 driver in the runner's
 * process, programming the instances over the {@code Machine} service. A scenario gives the same results with
 * either, which is how the out-of-process driver is checked against the in-process one.
 *
 * <p>Failures are unchecked exceptions whose message says what was refused; the runner reports them as the step's
 * failure.
 */
interface ScenarioDriver extends AutoCloseable {
    /** A domain as created: its handle and a line describing it. */
    record Created(long handle, String description) {}

    /**
     * Creates a domain; lazy domains flush only when full, on iova reuse or on {@link #flush}. {@code parent} is
     * the handle of its nest parent, or null.
     */
    Created createDomain(Scenario.Domain d, Long parent);

    /**
     * Attaches {@code stream} of {@code iommu} (only its {@code substream} when not null) to the domain, and with
     * {@code ats} enables ATS for the (whole) stream; returns the context id (ASID or VMID). A driver that does not
     * implement ATS on the instance refuses {@code ats} with a message saying so (the stream stays attached).
     */
    int attach(long domain, String iommu, int stream, Integer substream, boolean ats);

    /** Detaches {@code stream} (or its {@code substream}) of {@code iommu} from the domain it is attached to. */
    void detach(String iommu, int stream, Integer substream);

    long map(long domain, long iova, long pa, long size, int prot);

    /** Maps {@code (pa, length)} pairs back to back from {@code iova}. */
    long mapSg(long domain, long iova, List<long[]> entries, int prot);

    long unmap(long domain, long iova, long size);

    /** Flushes a lazy domain's queue; whether it held anything. */
    boolean flush(long domain);

    void destroyDomain(long domain);

    /** A zero-filled, physically contiguous buffer of at least {@code size} bytes; its physical address. */
    long allocBuffer(long size);

    void freeBuffer(long pa);

    /**
     * Has the driver read {@code iommu}'s event queue now, and returns the records it has read from it so far, by
     * event type name (empty when it does not drive the instance).
     */
    Map<String, Long> events(String iommu);

    /** Releases what the driver holds in the runner's process (nothing on the server). */
    @Override
    void close();
}
