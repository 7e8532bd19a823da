package org.iommuemu.device.bus;

import java.util.concurrent.atomic.AtomicReference;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.device.bus.security.Principal;
import org.iommuemu.device.machine.AtcPort;
import org.iommuemu.device.machine.IommuDevice;

/**
 * A DMA master attached on one stream id of one IOMMU instance, owned by one connection and, with authentication
 * on, by the principal (token) that attached it.
 */
final class Session {
    final long id;
    final String name;
    final IommuDevice device;
    final int streamId;
    final boolean substreams;
    final Connection connection;
    /** Who attached it; null when authentication is off. */
    final Principal owner;
    /** Whether the master implements ATS (AttachRequest.ats). */
    final boolean ats;
    /** Its ATC as the IOMMU sees it (ats sessions only, else null), registered once the stream id is claimed. */
    volatile AtcPort.Endpoint atc;
    /** The AtcInvalidations stream reading {@link #atc}'s invalidations: its closer, or null (one at a time). */
    final AtomicReference<Runnable> atcStream = new AtomicReference<>();

    Session(long id, String name, IommuDevice device, int streamId, boolean substreams, Connection connection,
            Principal owner) {
        this(id, name, device, streamId, substreams, connection, owner, false);
    }

    Session(long id, String name, IommuDevice device, int streamId, boolean substreams, Connection connection,
            Principal owner, boolean ats) {
        this.id = id;
        this.name = name;
        this.device = device;
        this.streamId = streamId;
        this.substreams = substreams;
        this.connection = connection;
        this.owner = owner;
        this.ats = ats;
    }

    /** The session ended: its ATC goes away (outstanding invalidations fail) and its AtcInvalidations stream ends. */
    void closeAts() {
        AtcPort.Endpoint e = atc;
        if (e != null) {
            e.disconnect(true);
        }
        Runnable close = atcStream.getAndSet(null);
        if (close != null) {
            close.run();
        }
    }

    @Override
    public String toString() {
        return "session " + Bits.hex(id) + " '" + name + "' on " + device.name() + " stream " + streamId;
    }
}
