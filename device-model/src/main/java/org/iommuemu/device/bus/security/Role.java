package org.iommuemu.device.bus.security;

import org.iommuemu.proto.v1.DmaGrpc;

/**
 * What a bus client may call. A {@code host} is the CPU's and the test harness's view and may call every service;
 * a {@code device} is a DMA master and may call the {@code Dma} service only. The standard health service and
 * server reflection are open to everyone and never reach this check.
 */
public enum Role {
    /** Machine, Driver, FaultInjection and Telemetry, and Dma too. */
    HOST("host"),
    /** The Dma service only. */
    DEVICE("device");

    private final String id;

    Role(String id) {
        this.id = id;
    }

    /** The role's name in token files and messages: {@code host} or {@code device}. */
    public String id() {
        return id;
    }

    /** Whether this role may call methods of the gRPC service named {@code service} (its full name). */
    public boolean allows(String service) {
        return this == HOST || DmaGrpc.SERVICE_NAME.equals(service);
    }

    /** The role named {@code id} (case-insensitive), or null. */
    public static Role parse(String id) {
        for (Role r : values()) {
            if (r.id.equalsIgnoreCase(id)) {
                return r;
            }
        }
        return null;
    }
}
