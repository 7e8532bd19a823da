package org.iommuemu.device.bus;

import org.iommuemu.core.bits.Bits;
import org.iommuemu.device.bus.security.Principal;
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

    Session(long id, String name, IommuDevice device, int streamId, boolean substreams, Connection connection,
            Principal owner) {
        this.id = id;
        this.name = name;
        this.device = device;
        this.streamId = streamId;
        this.substreams = substreams;
        this.connection = connection;
        this.owner = owner;
    }

    @Override
    public String toString() {
        return "session " + Bits.hex(id) + " '" + name + "' on " + device.name() + " stream " + streamId;
    }
}
