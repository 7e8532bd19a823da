package org.iommuemu.device.machine;

import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;

/**
 * What every {@link DriverInstance} adapter shares, whatever its driver: the name, the event log, the host to close
 * at shutdown, the {@link DriverInstance.StreamListener} told of every attach and detach, and the translation of
 * the driver's own exception type (a subclass's {@code X}) into {@link DriverInstance.Failure}. A subclass supplies
 * the driver's attach, detach, drain and disable operations ({@code *Now}).
 *
 * @param <X> the driver's exception type
 */
abstract class OwnedInstance<X extends RuntimeException> implements DriverInstance {
    /** One driver operation, which may throw the driver's exception or refuse through the IOMMU API. */
    @FunctionalInterface
    protected interface Op {
        void run() throws IommuApiException;
    }

    protected final String name;
    private final AutoCloseable hostCloser;
    private final DriverEventLog events;
    private final Class<X> driverException;
    private volatile StreamListener listener;

    protected OwnedInstance(String name, AutoCloseable hostCloser, DriverEventLog events, Class<X> driverException) {
        this.name = name;
        this.hostCloser = hostCloser;
        this.events = events;
        this.driverException = driverException;
    }

    /** The driver's exception as a {@link DriverInstance.Failure}. */
    protected abstract Failure failure(X e);

    protected abstract void attachStreamNow(IommuDomain domain, Stage stage, int streamId) throws IommuApiException;

    protected abstract void attachSubstreamNow(IommuDomain domain, int streamId, int substreamId)
            throws IommuApiException;

    protected abstract void detachStreamNow(int streamId) throws IommuApiException;

    protected abstract void detachSubstreamNow(int streamId, int substreamId) throws IommuApiException;

    /** Reads what the hardware reported into the event log. */
    protected abstract void drainNow();

    /** Disables the hardware, as a driver's shutdown does. */
    protected abstract void disableNow();

    /** Runs {@code op}, turning the driver's exception into a {@link DriverInstance.Failure}. */
    protected final void call(Op op) throws IommuApiException {
        try {
            op.run();
        } catch (RuntimeException e) {
            throw driverException.isInstance(e) ? failure(driverException.cast(e)) : e;
        }
    }

    /** Runs {@code op} on stream {@code streamId} (substream {@code ssid}, or -1) and tells the listener. */
    private void onStream(int streamId, int ssid, Op op) throws IommuApiException {
        try {
            call(op);
        } finally {
            StreamListener l = listener;
            if (l != null) {
                l.streamChanged(name, streamId, ssid, ssid < 0 ? domainOf(streamId) : domainOf(streamId, ssid));
            }
        }
    }

    @Override
    public final String name() {
        return name;
    }

    @Override
    public final void attachStream(IommuDomain domain, Stage stage, int streamId) throws IommuApiException {
        onStream(streamId, -1, () -> attachStreamNow(domain, stage, streamId));
    }

    @Override
    public final void attachSubstream(IommuDomain domain, int streamId, int substreamId) throws IommuApiException {
        onStream(streamId, substreamId, () -> attachSubstreamNow(domain, streamId, substreamId));
    }

    /** For a subclass's {@link #attachNested}: runs the driver's attach and tells the listener. */
    protected final void attachNestedStream(int streamId, Op attach) throws IommuApiException {
        onStream(streamId, -1, attach);
    }

    @Override
    public final void detachStream(int streamId) throws IommuApiException {
        onStream(streamId, -1, () -> detachStreamNow(streamId));
    }

    @Override
    public final void detachSubstream(int streamId, int substreamId) throws IommuApiException {
        onStream(streamId, substreamId, () -> detachSubstreamNow(streamId, substreamId));
    }

    @Override
    public final void streamListener(StreamListener listener) {
        this.listener = listener;
    }

    @Override
    public final void drainEvents() {
        try {
            call(this::drainNow);
        } catch (IommuApiException e) {
            throw new IllegalStateException(e); // draining refuses nothing through the IOMMU API
        }
    }

    @Override
    public final DriverEventLog events() {
        return events;
    }

    @Override
    public final void shutdown() {
        try {
            call(this::disableNow);
        } catch (IommuApiException e) {
            throw new IllegalStateException(e); // disabling refuses nothing through the IOMMU API
        } finally {
            DriverInstance.closeQuietly(hostCloser, null);
        }
    }
}
