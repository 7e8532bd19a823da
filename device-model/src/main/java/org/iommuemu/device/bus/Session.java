package org.iommuemu.device.bus;

import org.iommuemu.core.bits.Bits;
import org.iommuemu.device.machine.IommuDevice;

/** A DMA master attached on one stream id of one IOMMU instance, owned by one connection. */
final class Session {
    final long id;
    final String name;
    final IommuDevice device;
    final int streamId;
    final boolean substreams;
    final Connection connection;

    Session(long id, String name, IommuDevice device, int streamId, boolean substreams, Connection connection) {
        this.id = id;
        this.name = name;
        this.device = device;
        this.streamId = streamId;
        this.substreams = substreams;
        this.connection = connection;
    }

    @Override
    public String toString() {
        return "session " + Bits.hex(id) + " '" + name + "' on " + device.name() + " stream " + streamId;
    }
}
