package org.iommuemu.device.machine;

import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.device.trace.TraceKind;
import org.iommuemu.device.trace.Tracer;

/**
 * Moves DMA data between a master and guest RAM through an IOMMU: translate, then access physical
 * memory, one linearly-translated chunk at a time. Allocates nothing on success.
 *
 * <p>A translation fault stops the DMA at the faulting address with the bytes before it transferred. An
 * output address outside RAM is an external abort at the first byte that is not RAM.
 */
public final class DmaEngine {
    private static final int PAGE = 4096;

    private final PhysicalMemory memory;
    private volatile Runnable afterFault = () -> { };
    /** The sanitizer's check of every translated chunk; null while it is off (one volatile read per chunk). */
    private volatile Checker checker;
    /** The machine's trace recorder; set once before the engine is shared. */
    private Tracer tracer = Tracer.NONE;

    /** Looks at each chunk of a DMA that the IOMMU let through, before the memory access. */
    public interface Checker {
        /**
         * {@code len} bytes at {@code iova} of stream {@code streamId} (substream {@code substreamId}, or -1) on
         * {@code device} translated to {@code pa}, as {@code how} says ({@link Translation#source}: the serving
         * IOTLB entry or a walk). With {@code translated}, a translated (ATS) request: {@code iova} is the physical
         * address the device sent from its ATC, which the IOMMU passed through. Runs on the DMA's thread; must not
         * throw or keep {@code how}.
         */
        void check(IommuDevice device, int streamId, int substreamId, long iova, long pa, long len, boolean write,
                boolean translated, Translation how);
    }

    public DmaEngine(PhysicalMemory memory) {
        this.memory = memory;
    }

    /**
     * Runs {@code hook} on the DMA's thread after a translation fault, once the device has returned: the machine
     * uses it to let its in-process drivers take the interrupts the fault raised (the VT-d fault event, the SMMUv3
     * event queue's), as a driver's interrupt handler would before the device's next request. Without it those
     * interrupts waited for the driver's next register access, and a VT-d unit collapsed a device's second fault into
     * the record its driver had not read yet.
     */
    public void afterFault(Runnable hook) {
        this.afterFault = hook;
    }

    /** Records every DMA request and each chunk's translation into {@code tracer}. */
    public void tracer(Tracer tracer) {
        this.tracer = tracer;
    }

    /** Sets (or, with null, removes) the {@link Checker} of translated chunks. */
    public void checker(Checker checker) {
        this.checker = checker;
    }

    /**
     * Reads {@code len} bytes at {@code iova} into {@code dst[off..]}. The caller has checked that the
     * range does not wrap and that the array bounds hold.
     *
     * @param substreamId substream id / PASID, or -1 for none
     * @param access {@link Access} flags; the WRITE bit is ignored (cleared)
     */
    public DmaOutcome read(IommuDevice device, int streamId, int substreamId, long iova, byte[] dst, int off, int len,
            int access, DmaOutcome out) {
        return transfer(device, streamId, substreamId, iova, dst, off, len, access & ~Access.WRITE, out);
    }

    /** Writes {@code src[off .. off + len)} at {@code iova}; see {@link #read}. */
    public DmaOutcome write(IommuDevice device, int streamId, int substreamId, long iova, byte[] src, int off, int len,
            int access, DmaOutcome out) {
        return transfer(device, streamId, substreamId, iova, src, off, len, access | Access.WRITE, out);
    }

    private DmaOutcome transfer(IommuDevice device, int streamId, int substreamId, long iova, byte[] buf, int off,
            int len, int access, DmaOutcome out) {
        Tracer tr = tracer;
        if (!tr.on()) {
            return move(device, streamId, substreamId, iova, buf, off, len, access, out, null, -1);
        }
        int track = tr.track(device);
        long start = tr.simTime(track);
        move(device, streamId, substreamId, iova, buf, off, len, access, out, tr, track);
        long end = tr.simTime(track);
        long fault = out.isOk() || out.faultType() == null ? 0 : out.faultType().ordinal() + 1;
        tr.recordAt(start, TraceKind.DMA, track, streamId, substreamId, iova, len, fault, out.bytesDone(),
                Access.isWrite(access) ? 1 : 0, end - start);
        return out;
    }

    /**
     * Translates on behalf of a device's ATS translation request (no data moves), recorded in the trace as a
     * translation of that device, like a DMA chunk's.
     */
    public Translation translate(IommuDevice device, int streamId, int substreamId, long iova, int access,
            Translation out) {
        Tracer tr = tracer;
        if (!tr.on()) {
            return device.translate(streamId, substreamId, iova, access, out);
        }
        int track = tr.track(device);
        long start = tr.simTime(track);
        device.translate(streamId, substreamId, iova, access, out);
        traceTranslation(tr, track, start, streamId, substreamId, iova, out);
        return out;
    }

    private static void traceTranslation(Tracer tr, int track, long start, int streamId, int substreamId, long va,
            Translation t) {
        long end = tr.simTime(track);
        long source = !t.isOk() ? 0 : switch (t.source()) {
            case IOTLB -> 1;
            case WALK -> 2;
            default -> 0;
        };
        long size = t.isOk() ? t.contiguousBytes() : 0;
        long duration = Math.min(end - start, (1L << 48) - 1) | ((long) Math.min(t.walkReads(), 0xFFFF) << 48);
        tr.recordAt(start, TraceKind.TRANSLATE, track, streamId, substreamId, va, size, t.code(),
                t.outcome().ordinal(), source, duration);
    }

    private DmaOutcome move(IommuDevice device, int streamId, int substreamId, long iova, byte[] buf, int off,
            int len, int access, DmaOutcome out, Tracer tr, int track) {
        out.reset();
        Translation t = out.translation;
        boolean write = Access.isWrite(access);
        int done = 0;
        while (done < len) {
            long va = iova + done;
            if (tr == null) {
                device.translate(streamId, substreamId, va, access, t);
            } else {
                long before = tr.simTime(track);
                device.translate(streamId, substreamId, va, access, t);
                traceTranslation(tr, track, before, streamId, substreamId, va, t);
            }
            switch (t.outcome()) {
                case OK -> { }
                case FAULT -> {
                    out.fault(va, done, t.faultType(), t.code(), t.description());
                    afterFault.run();
                    return out;
                }
                case UNIMPLEMENTED -> {
                    out.unimplemented(done, t.description());
                    return out;
                }
            }
            int remaining = len - done;
            long contiguous = t.contiguousBytes();
            int chunk;
            if (contiguous == 0) {
                chunk = 1; // a device reporting an empty translation must not make this loop forever
            } else {
                chunk = Long.compareUnsigned(contiguous, remaining) >= 0 ? remaining : (int) contiguous;
            }
            long pa = t.physicalAddress();
            Checker c = checker;
            if (c != null) {
                c.check(device, streamId, substreamId, va, pa, chunk, write, (access & Access.TRANSLATED) != 0, t);
            }
            try {
                if (write) {
                    memory.write(pa, buf, off + done, chunk);
                } else {
                    memory.read(pa, buf, off + done, chunk);
                }
                done += chunk;
            } catch (MemoryAccessException e) {
                int ok = copyUntilAbort(pa, buf, off + done, chunk, write);
                out.fault(va + ok, done + ok, FaultType.EXTERNAL_ABORT, 0,
                        "output address " + Bits.hex(pa + ok) + " (from iova " + Bits.hex(va + ok)
                                + ") is not RAM: external abort");
                return out;
            }
        }
        out.done(done);
        return out;
    }

    /** The slow path after an abort: moves page pieces until the first one that fails; returns bytes moved. */
    private int copyUntilAbort(long pa, byte[] buf, int off, int len, boolean write) {
        int moved = 0;
        while (moved < len) {
            long at = pa + moved;
            int piece = (int) Math.min(len - moved, PAGE - (at & (PAGE - 1)));
            try {
                if (write) {
                    memory.write(at, buf, off + moved, piece);
                } else {
                    memory.read(at, buf, off + moved, piece);
                }
            } catch (MemoryAccessException e) {
                // Within this piece, find the first byte that is not RAM.
                while (piece > 0 && memory.isRam(at, 1)) {
                    try {
                        if (write) {
                            memory.write8(at, buf[off + moved]);
                        } else {
                            buf[off + moved] = (byte) memory.read8(at);
                        }
                    } catch (MemoryAccessException again) {
                        return moved;
                    }
                    moved++;
                    at++;
                    piece--;
                }
                return moved;
            }
            moved += piece;
        }
        return moved;
    }
}
