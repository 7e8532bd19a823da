package org.iommuemu.device.bus.security;

import java.util.Objects;

/**
 * Who a bus call comes from, as its bearer token says: a name for messages and logs (never the token itself), a
 * {@link Role}, and for a device an optional binding to one IOMMU instance and a set of stream ids it may attach as.
 * Instances are created once when the tokens are loaded and compared by identity.
 */
public final class Principal {
    private final String name;
    private final Role role;
    private final String iommu;
    private final StreamSet streams;

    /**
     * A principal.
     *
     * @param name    what messages call it, e.g. {@code nic-a} or {@code line 3}
     * @param role    its role
     * @param iommu   the only instance it may attach on, or null for any (devices only)
     * @param streams the only stream ids it may attach as, or null for any (devices only; needs {@code iommu})
     */
    public Principal(String name, Role role, String iommu, StreamSet streams) {
        this.name = Objects.requireNonNull(name, "name");
        this.role = Objects.requireNonNull(role, "role");
        if (role == Role.HOST && (iommu != null || streams != null)) {
            throw new IllegalArgumentException("a host token cannot be bound to an iommu or streams");
        }
        if (streams != null && iommu == null) {
            throw new IllegalArgumentException("streams= needs iommu=: stream ids are per IOMMU instance");
        }
        this.iommu = iommu;
        this.streams = streams;
    }

    /** The name messages use. */
    public String name() {
        return name;
    }

    public Role role() {
        return role;
    }

    /** The instance a device is bound to, or null. */
    public String iommu() {
        return iommu;
    }

    /** The stream ids a device is bound to, or null. */
    public StreamSet streams() {
        return streams;
    }

    /** Whether this principal may attach a DMA master on {@code streamId} of the instance named {@code iommuName}. */
    public boolean mayAttach(String iommuName, int streamId) {
        return (iommu == null || iommu.equals(iommuName)) && (streams == null || streams.contains(streamId));
    }

    /** What this principal may attach as, for messages: e.g. {@code smmu0 stream ids 16-31}. */
    public String binding() {
        if (iommu == null) {
            return "any IOMMU and stream id";
        }
        return iommu + (streams == null ? " (any stream id)" : " stream ids " + streams);
    }

    @Override
    public String toString() {
        return role.id() + " token '" + name + "'";
    }
}
