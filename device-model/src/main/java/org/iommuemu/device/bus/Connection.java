package org.iommuemu.device.bus;

import java.net.SocketAddress;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One client transport (a TCP connection, or an in-process channel). DMA sessions belong to the
 * connection that attached them and die with it.
 */
final class Connection {
    private final long id;
    private final SocketAddress remote;
    private final Set<Session> sessions = ConcurrentHashMap.newKeySet();
    private volatile boolean closed;

    Connection(long id, SocketAddress remote) {
        this.id = id;
        this.remote = remote;
    }

    long id() {
        return id;
    }

    SocketAddress remote() {
        return remote;
    }

    Set<Session> sessions() {
        return sessions;
    }

    boolean isClosed() {
        return closed;
    }

    void markClosed() {
        closed = true;
    }

    @Override
    public String toString() {
        return "connection#" + id + (remote == null ? "" : " from " + remote);
    }
}
