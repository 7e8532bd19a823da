package org.iommuemu.device.bus;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicReference;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.device.bus.security.Principal;
import org.iommuemu.device.machine.AtcPort;
import org.iommuemu.device.machine.IommuDevice;

/**
 * A DMA master attached on one stream id of one IOMMU instance, owned by one connection and, with authentication
 * on, by the principal (token) that attached it. It counts the DMA carried out for it (for {@code Machine.Sessions}):
 * one atomic add per counter and operation, no allocation.
 */
final class Session {
    private static final VarHandle READS;
    private static final VarHandle WRITES;
    private static final VarHandle BYTES;
    private static final VarHandle FAULTS;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            READS = l.findVarHandle(Session.class, "reads", long.class);
            WRITES = l.findVarHandle(Session.class, "writes", long.class);
            BYTES = l.findVarHandle(Session.class, "bytes", long.class);
            FAULTS = l.findVarHandle(Session.class, "faults", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    final long id;
    final String name;
    final IommuDevice device;
    final int streamId;
    final boolean substreams;
    final Connection connection;
    /** Who attached it; null when authentication is off. */
    final Principal owner;
    /** Server-wide attach order, from 1. */
    final long sequence;
    @SuppressWarnings("unused") // through the VarHandles
    private volatile long reads;
    @SuppressWarnings("unused")
    private volatile long writes;
    @SuppressWarnings("unused")
    private volatile long bytes;
    @SuppressWarnings("unused")
    private volatile long faults;
    /** How the session ended ("detached", "connection closed"); null while live. */
    private volatile String endReason;

    /** Whether the master implements ATS (AttachRequest.ats). */
    final boolean ats;
    /** Its ATC as the IOMMU sees it (ats sessions only, else null), registered once the stream id is claimed. */
    volatile AtcPort.Endpoint atc;
    /** The AtcInvalidations stream reading {@link #atc}'s invalidations: its closer, or null (one at a time). */
    final AtomicReference<Runnable> atcStream = new AtomicReference<>();

    Session(long id, String name, IommuDevice device, int streamId, boolean substreams, Connection connection,
            Principal owner, long sequence) {
        this(id, name, device, streamId, substreams, connection, owner, sequence, false);
    }

    Session(long id, String name, IommuDevice device, int streamId, boolean substreams, Connection connection,
            Principal owner, long sequence, boolean ats) {
        this.id = id;
        this.name = name;
        this.device = device;
        this.streamId = streamId;
        this.substreams = substreams;
        this.connection = connection;
        this.owner = owner;
        this.sequence = sequence;
        this.ats = ats;
    }

    /** Counts one DMA carried out for this session: a read or write that moved {@code done} bytes, faulted or not. */
    void count(boolean write, long done, boolean faulted) {
        (write ? WRITES : READS).getAndAdd(this, 1L);
        if (done != 0) {
            BYTES.getAndAdd(this, done);
        }
        if (faulted) {
            FAULTS.getAndAdd(this, 1L);
        }
    }

    long reads() {
        return (long) READS.getVolatile(this);
    }

    long writes() {
        return (long) WRITES.getVolatile(this);
    }

    long bytes() {
        return (long) BYTES.getVolatile(this);
    }

    long faults() {
        return (long) FAULTS.getVolatile(this);
    }

    void ended(String reason) {
        endReason = reason;
    }

    /** How it ended, or null while live. */
    String endReason() {
        return endReason;
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
