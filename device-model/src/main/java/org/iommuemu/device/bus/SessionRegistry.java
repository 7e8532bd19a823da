package org.iommuemu.device.bus;

import java.security.SecureRandom;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReferenceArray;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.device.bus.security.AuthInterceptor;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.StreamClaims;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The live DMA sessions. A session id is 44 random bits above a 20-bit slot number, so a lookup on the
 * DMA path is one array read and a few compares (no hashing, no boxing), and ids cannot be guessed. A
 * session can only be used on the connection that attached it and, with authentication on, with the token that
 * attached it (the caller's principal, {@link AuthInterceptor#current()}).
 */
final class SessionRegistry {
    private static final Logger log = LoggerFactory.getLogger(SessionRegistry.class);
    static final int SLOT_BITS = 20;
    private static final long SLOT_MASK = (1L << SLOT_BITS) - 1;

    private final StreamClaims claims;
    private final int capacity;
    private final int perConnection;
    private final AtomicReferenceArray<Session> slots;
    private final SecureRandom random = new SecureRandom();
    private final Object lock = new Object();
    private final int[] free;
    private int freeCount;
    private int live;
    /** Sessions attached so far: the next one's sequence is this plus one. */
    private long attached;
    /** The most recently ended sessions, oldest first, at most {@link #ENDED_KEPT}. */
    private final ArrayDeque<Session> ended = new ArrayDeque<>();
    /** How many ended sessions {@link #snapshot} can still show. */
    static final int ENDED_KEPT = 256;

    SessionRegistry(StreamClaims claims, int capacity) {
        this(claims, capacity, capacity);
    }

    /** A registry of at most {@code capacity} sessions, at most {@code perConnection} of them per connection. */
    SessionRegistry(StreamClaims claims, int capacity, int perConnection) {
        if (capacity < 1 || capacity > (1 << SLOT_BITS)) {
            throw new IllegalArgumentException("session capacity " + capacity);
        }
        if (perConnection < 1) {
            throw new IllegalArgumentException("sessions per connection " + perConnection);
        }
        this.claims = claims;
        this.capacity = capacity;
        this.perConnection = perConnection;
        this.slots = new AtomicReferenceArray<>(capacity);
        this.free = new int[capacity];
        for (int i = 0; i < capacity; i++) {
            free[i] = capacity - 1 - i;
        }
        this.freeCount = capacity;
    }

    /** Attaches a master; the caller has validated name and stream id range. */
    Session attach(Connection connection, String name, IommuDevice device, int streamId, boolean substreams) {
        return attach(connection, name, device, streamId, substreams, false);
    }

    /**
     * Attaches a master; with {@code ats} it has an ATC, registered with the instance's ATS port once the stream id
     * is claimed (the caller has checked that the instance models ATS).
     */
    Session attach(Connection connection, String name, IommuDevice device, int streamId, boolean substreams,
            boolean ats) {
        if (connection == null) {
            throw BusError.failedPrecondition("no client connection for this call");
        }
        synchronized (lock) {
            if (freeCount == 0) {
                throw BusError.resourceExhausted("too many DMA sessions: the limit is " + capacity
                        + " (Machine.Describe limits.max_sessions)");
            }
            if (connection.sessions().size() >= perConnection) {
                throw BusError.resourceExhausted("too many DMA sessions on this client connection: the limit is "
                        + perConnection + " (Machine.Describe limits.max_sessions_per_connection)");
            }
            int slot = free[freeCount - 1];
            long random44;
            do {
                random44 = random.nextLong() >>> SLOT_BITS;
            } while (random44 == 0);
            long id = (random44 << SLOT_BITS) | slot;
            Session session = new Session(id, name, device, streamId, substreams, connection,
                    AuthInterceptor.current(), attached + 1, ats);
            if (!claims.claim(device.name(), streamId, session)) {
                Object holder = claims.holder(device.name(), streamId);
                throw BusError.alreadyExists("stream_id " + streamId + " on " + device.name()
                        + " is already held by " + (holder == null ? "another session" : holder.toString()));
            }
            attached++;
            if (ats) {
                try {
                    session.atc = device.atc().register(streamId);
                } catch (IllegalStateException e) {
                    claims.release(device.name(), streamId, session);
                    throw BusError.alreadyExists("stream_id " + streamId + " on " + device.name()
                            + " already has an ATC: " + e.getMessage());
                }
            }
            freeCount--;
            live++;
            slots.set(slot, session);
            connection.sessions().add(session);
            if (connection.isClosed()) {
                // The transport went away while we attached: do not leave an orphan behind.
                removeLocked(session, "connection closed");
                throw BusError.unavailable("the client connection closed during Attach");
            }
            log.debug("attached {}", session);
            return session;
        }
    }

    /** The live session {@code id}, used by {@code caller}; throws NOT_FOUND / PERMISSION_DENIED. Allocation-free. */
    Session lookup(long id, Connection caller) {
        int slot = (int) (id & SLOT_MASK);
        Session s = slot < capacity ? slots.get(slot) : null;
        if (s == null || s.id != id) {
            throw BusError.notFound("session_id " + Bits.hex(id)
                    + " is not a live session (never attached, detached, or its connection closed)");
        }
        if (s.connection != caller) {
            throw BusError.permissionDenied("session_id " + Bits.hex(id)
                    + " belongs to another client connection");
        }
        if (s.owner != AuthInterceptor.current()) {
            throw BusError.permissionDenied("session_id " + Bits.hex(id)
                    + " was attached with another token: a session is used with the token that attached it");
        }
        return s;
    }

    /** The live session {@code id} if {@code caller} owns it, else null (no exception): for fault selectors. */
    Session peek(long id, Connection caller) {
        int slot = (int) (id & SLOT_MASK);
        Session s = slot < capacity ? slots.get(slot) : null;
        return s != null && s.id == id && s.connection == caller && s.owner == AuthInterceptor.current() ? s : null;
    }

    /** Detaches {@code id} on behalf of {@code caller}. */
    void detach(long id, Connection caller) {
        Session s = lookup(id, caller);
        synchronized (lock) {
            removeLocked(s, "detached");
        }
        log.debug("detached {}", s);
    }

    /** Detaches every session of a connection that went away; returns how many. */
    int releaseAll(Connection connection) {
        int n = 0;
        synchronized (lock) {
            for (Session s : connection.sessions()) {
                if (removeLocked(s, "connection closed")) {
                    n++;
                }
            }
        }
        return n;
    }

    private boolean removeLocked(Session s, String reason) {
        int slot = (int) (s.id & SLOT_MASK);
        if (!slots.compareAndSet(slot, s, null)) {
            return false;
        }
        s.closeAts();
        s.ended(reason);
        if (ended.size() == ENDED_KEPT) {
            ended.removeFirst();
        }
        ended.addLast(s);
        claims.release(s.device.name(), s.streamId, s);
        s.connection.sessions().remove(s);
        free[freeCount++] = slot;
        live--;
        return true;
    }

    /** Sessions alive now. */
    int live() {
        synchronized (lock) {
            return live;
        }
    }

    /**
     * The sessions for {@code Machine.Sessions}: the live ones in attach order, then the ended ones still kept,
     * oldest first; {@code last} is the newest sequence handed out.
     */
    record Snapshot(List<Session> live, List<Session> ended, long last) {}

    Snapshot snapshot() {
        synchronized (lock) {
            List<Session> now = new ArrayList<>(live);
            for (int i = 0; i < capacity && now.size() < live; i++) {
                Session s = slots.get(i);
                if (s != null) {
                    now.add(s);
                }
            }
            now.sort((a, b) -> Long.compare(a.sequence, b.sequence));
            return new Snapshot(now, new ArrayList<>(ended), attached);
        }
    }

    int capacity() {
        return capacity;
    }
}
