package org.iommuemu.device.machine;

import java.util.List;
import org.iommuemu.device.trace.Tracer;

/**
 * One emulated IOMMU as the machine sees it: a window of MMIO registers and a translation function for
 * the DMA of the masters behind it. The device sees offsets only; the machine routes by instance name.
 *
 * <p>Implementations are thread-safe: MMIO and translations arrive from many bus threads at once.
 * Nothing a guest programs may make a method throw: bad guest input gives the architected outcome.
 */
public interface IommuDevice {
    /** The instance name, e.g. "smmu0". */
    String name();

    IommuType type();

    /** Size in bytes of the register window. */
    long mmioSize();

    /**
     * A register read. The machine guarantees {@code width} is 4 or 8, {@code offset} is a multiple of
     * width and the access lies inside the window. Unknown offsets read as zero.
     */
    long mmioRead(long offset, int width);

    /** A register write, with the same guarantees as {@link #mmioRead}. Unknown offsets ignore writes. */
    void mmioWrite(long offset, int width, long value);

    /** Width of the stream ids (StreamID / requester id) masters can use. */
    int streamIdBits();

    /** Width of substream ids (SubstreamID / PASID); 0 when unsupported. */
    int substreamIdBits();

    /** Implemented features in the architecture's terms, for {@code Machine.Describe}. */
    List<String> features();

    /** Whether translation (not only the disabled / bypass behaviour) is modelled. */
    boolean translationModelled();

    /**
     * Translates one access of a master on {@code streamId}.
     *
     * @param substreamId the substream id / PASID, or -1 when the access carries none
     * @param access {@link Access} flags; with {@link Access#TRANSLATED} {@code iova} is a physical address (a
     *     translated request), with {@link Access#TRANSLATION_REQUEST} an ATS translation request is answered
     * @param out receives the outcome; returned for convenience
     */
    Translation translate(int streamId, int substreamId, long iova, int access, Translation out);

    /**
     * This instance's ATS side ({@link AtcPort}): where the ATC invalidations its queue consumes go, and its ATS
     * counters; null when the instance does not model ATS.
     */
    default AtcPort atc() {
        return null;
    }

    /** Returns the device to its power-on state. */
    void reset();

    /** What the device has done so far, for {@code Telemetry.Stats}; all zero for a device that counts nothing. */
    default DeviceStats stats() {
        return DeviceStats.none();
    }

    /**
     * Simulated nanoseconds the instance has spent so far (what {@link #stats()} reports as {@code simTimeNs}),
     * read without building a snapshot: the trace stamps its records with it.
     */
    default long simTimeNs() {
        return stats().simTimeNs();
    }

    /** Lets the instance record its commands, events, global errors and interrupts into {@code tracer}. */
    default void tracer(Tracer tracer, int track) {
    }

    /** The specification's name of command / descriptor code {@code code} (for traces), or the number. */
    default String commandCodeName(int code) {
        return Integer.toString(code);
    }

    /** The specification's name of event type / fault reason {@code code} (for traces), or the number. */
    default String eventCodeName(int code) {
        return Integer.toString(code);
    }
}
