package org.iommuemu.device.remote;

import com.google.protobuf.UnsafeByteOperations;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.proto.v1.DescribeReply;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MemCompareExchangeRequest;
import org.iommuemu.proto.v1.MemReadReply;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.MemWriteRequest;

/**
 * Guest physical memory of a machine on the other side of the bus: every access is a {@code Machine} RPC, as a
 * CPU's load or store would be a bus transaction. The RAM map is taken from {@code Machine.Describe} once, so an
 * access outside RAM fails locally with {@link MemoryAccessException} (NOT_RAM) and no RPC; accesses longer than
 * the server's {@code max_mem_access_length} are split into several RPCs (then they are not atomic as a whole,
 * which the interface only promises for aligned 32- and 64-bit accesses: those are always one RPC).
 *
 * <p>Every bulk access ({@code read}, {@code write}, {@code zero}, {@code read64s}, {@code write64s},
 * {@code read32s}, {@code write32s}) is one RPC per {@code max_mem_access_length} bytes, never one per word: the
 * page-table library moves runs of entries that way. Pieces are cut at multiples of 8 bytes, so no aligned word is
 * split between two RPCs, and the server moves aligned words atomically (see {@code machine.proto}).
 *
 * <p>A 64-bit compare-and-exchange is {@code Machine.MemCompareExchange}, atomic on the server against the
 * devices' own updates. A refusal the server explains by the address (OUT_OF_RANGE, INVALID_ARGUMENT: the RAM map
 * changed under us, or the server checks more than {@code Describe} said) is the {@link MemoryAccessException} a
 * local memory would throw. A failure of the bus itself (the server gone, a deadline passed, anything else) is not
 * a memory fault: it is a {@link BusUnavailableException} naming the RPC and the address. Each RPC has its own
 * deadline ({@link #DEFAULT_DEADLINE} unless told), so a server that stops answering fails an access instead of
 * hanging it.
 *
 * <p>Thread-safe (the blocking stub is). Allocates per access: it is bound by the RPC, not by the copy.
 */
public final class BusPhysicalMemory implements PhysicalMemory {
    /**
     * How long one memory or MMIO RPC may take before the access fails: far beyond any answer of a live server (a
     * megabyte on loopback takes milliseconds), short enough that a server that stopped answering is reported.
     */
    public static final Duration DEFAULT_DEADLINE = Duration.ofSeconds(10);

    /** Framing around a maximum-size MemRead reply (as the server's Limits.MESSAGE_OVERHEAD). */
    private static final int REPLY_OVERHEAD = 64 * 1024;

    private final MachineGrpc.MachineBlockingStub cpu;
    private final long deadlineNanos;
    private final List<RamRegion> regions;
    /** Bytes per RPC: the server's max_mem_access_length, cut to a multiple of 8 when it allows 8 or more. */
    private final int piece;

    /** Describes the machine through {@code cpu} to learn its RAM map and access limit. */
    public BusPhysicalMemory(MachineGrpc.MachineBlockingStub cpu) {
        this(cpu, describe(cpu, DEFAULT_DEADLINE), DEFAULT_DEADLINE);
    }

    /** Uses an answer of {@code Machine.Describe} the caller already has. */
    public BusPhysicalMemory(MachineGrpc.MachineBlockingStub cpu, DescribeReply described) {
        this(cpu, described, DEFAULT_DEADLINE);
    }

    /**
     * @param cpu       the Machine service (without a deadline of its own: each RPC gets {@code deadline})
     * @param described the machine's {@code Machine.Describe} answer: RAM map and limits, taken once
     * @param deadline  how long each RPC may take
     */
    public BusPhysicalMemory(MachineGrpc.MachineBlockingStub cpu, DescribeReply described, Duration deadline) {
        Objects.requireNonNull(cpu, "cpu");
        if (deadline.isNegative() || deadline.isZero()) {
            throw new IllegalArgumentException("the RPC deadline must be positive, got " + deadline);
        }
        List<RamRegion> r = new ArrayList<>();
        for (org.iommuemu.proto.v1.RamRegion region : described.getRamList()) {
            r.add(new RamRegion(region.getBase(), region.getSize()));
        }
        r.sort((a, b) -> Long.compareUnsigned(a.base(), b.base())); // isRam walks them in order
        this.regions = List.copyOf(r);
        long max = described.getLimits().getMaxMemAccessLength();
        if (max <= 0) {
            throw new IllegalArgumentException("the server reports no memory access length (limits."
                    + "max_mem_access_length " + Long.toUnsignedString(max) + ")");
        }
        int m = (int) Math.min(max, Integer.MAX_VALUE - REPLY_OVERHEAD);
        this.piece = m >= 8 ? m & ~7 : m;
        // a maximum-size MemRead reply is larger than gRPC's default inbound limit when the server allows >4 MiB
        this.cpu = cpu.withMaxInboundMessageSize(Math.max(4 << 20, piece + REPLY_OVERHEAD));
        this.deadlineNanos = deadline.toNanos();
    }

    private static DescribeReply describe(MachineGrpc.MachineBlockingStub cpu, Duration deadline) {
        try {
            return cpu.withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS)
                    .describe(DescribeRequest.getDefaultInstance());
        } catch (StatusRuntimeException e) {
            throw new BusUnavailableException("Machine.Describe", 0, e);
        }
    }

    /** The stub for one RPC: the deadline counts from now. */
    private MachineGrpc.MachineBlockingStub rpc() {
        return cpu.withDeadlineAfter(deadlineNanos, TimeUnit.NANOSECONDS);
    }

    /** Bytes each MemRead / MemWrite moves at most. */
    public int maxBytesPerRpc() {
        return piece;
    }

    @Override
    public List<RamRegion> regions() {
        return regions;
    }

    @Override
    public boolean isRam(long pa, long length) {
        if (length == 0 || Bits.rangeOverflows(pa, length)) {
            return false;
        }
        long cur = pa;
        long last = pa + length - 1;
        for (RamRegion r : regions) { // sorted by base: a range spanning adjacent regions is RAM too
            if (Long.compareUnsigned(cur, r.base()) >= 0 && Long.compareUnsigned(cur, r.last()) <= 0) {
                if (Long.compareUnsigned(last, r.last()) <= 0) {
                    return true;
                }
                cur = r.last() + 1;
            }
        }
        return false;
    }

    private void checkRam(long pa, long length) throws MemoryAccessException {
        if (!isRam(pa, length)) {
            throw new MemoryAccessException(pa, length, MemoryAccessException.Reason.NOT_RAM);
        }
    }

    // ------------------------------------------------------------------ raw transfers

    /** Reads {@code len} bytes at {@code pa} into {@code dst[off..]} (RAM already checked). */
    private void fetch(long pa, byte[] dst, int off, int len) throws MemoryAccessException {
        for (int done = 0; done < len; ) {
            int n = Math.min(len - done, piece);
            MemReadReply reply;
            try {
                reply = rpc().memRead(MemReadRequest.newBuilder().setAddress(pa + done).setLength(n).build());
            } catch (StatusRuntimeException e) {
                throw refused("Machine.MemRead", pa + done, n, e);
            }
            if (reply.getData().size() != n) {
                throw new BusUnavailableException("Machine.MemRead at " + Bits.hex(pa + done) + " asked for " + n
                        + " bytes and got " + reply.getData().size());
            }
            reply.getData().copyTo(dst, off + done);
            done += n;
        }
    }

    /** Writes {@code src[off .. off + len)} at {@code pa} (RAM already checked). */
    private void store(long pa, byte[] src, int off, int len) throws MemoryAccessException {
        for (int done = 0; done < len; ) {
            int n = Math.min(len - done, piece);
            try {
                rpc().memWrite(MemWriteRequest.newBuilder().setAddress(pa + done)
                        .setData(UnsafeByteOperations.unsafeWrap(src, off + done, n)).build());
            } catch (StatusRuntimeException e) {
                throw refused("Machine.MemWrite", pa + done, n, e);
            }
            done += n;
        }
    }

    /**
     * A refusal the server explains by the address (not RAM after all, out of range) is a memory fault; anything
     * else means the bus failed.
     */
    private static MemoryAccessException refused(String rpc, long pa, long length, StatusRuntimeException e) {
        Status.Code code = e.getStatus().getCode();
        if (code == Status.Code.OUT_OF_RANGE || code == Status.Code.INVALID_ARGUMENT) {
            return new MemoryAccessException(pa, length, MemoryAccessException.Reason.NOT_RAM);
        }
        throw new BusUnavailableException(rpc, pa, e);
    }

    private long readN(long pa, int n) throws MemoryAccessException {
        checkRam(pa, n);
        byte[] b = new byte[n];
        fetch(pa, b, 0, n);
        long v = 0;
        for (int i = n - 1; i >= 0; i--) {
            v = v << 8 | (b[i] & 0xFF);
        }
        return v;
    }

    private void writeN(long pa, int n, long value) throws MemoryAccessException {
        checkRam(pa, n);
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (value >>> 8 * i);
        }
        store(pa, b, 0, n);
    }

    // ------------------------------------------------------------------ PhysicalMemory

    @Override
    public int read8(long pa) throws MemoryAccessException {
        return (int) readN(pa, 1);
    }

    @Override
    public int read16(long pa) throws MemoryAccessException {
        return (int) readN(pa, 2);
    }

    @Override
    public int read32(long pa) throws MemoryAccessException {
        return (int) readN(pa, 4);
    }

    @Override
    public long read64(long pa) throws MemoryAccessException {
        return readN(pa, 8);
    }

    @Override
    public void write8(long pa, int value) throws MemoryAccessException {
        writeN(pa, 1, value);
    }

    @Override
    public void write16(long pa, int value) throws MemoryAccessException {
        writeN(pa, 2, value);
    }

    @Override
    public void write32(long pa, int value) throws MemoryAccessException {
        writeN(pa, 4, value);
    }

    @Override
    public void write64(long pa, long value) throws MemoryAccessException {
        writeN(pa, 8, value);
    }

    @Override
    public void read(long pa, byte[] dst, int off, int len) throws MemoryAccessException {
        Objects.checkFromIndexSize(off, len, dst.length);
        if (len == 0) {
            return;
        }
        checkRam(pa, len);
        fetch(pa, dst, off, len);
    }

    @Override
    public void write(long pa, byte[] src, int off, int len) throws MemoryAccessException {
        Objects.checkFromIndexSize(off, len, src.length);
        if (len == 0) {
            return;
        }
        checkRam(pa, len);
        store(pa, src, off, len);
    }

    @Override
    public void zero(long pa, long length) throws MemoryAccessException {
        if (length < 0) {
            throw new IllegalArgumentException("zero of a negative length " + length + " at " + Bits.hex(pa));
        }
        if (length == 0) {
            return;
        }
        checkRam(pa, length);
        byte[] zeros = new byte[(int) Math.min(length, piece)];
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(length - done, zeros.length);
            store(pa + done, zeros, 0, n);
            done += n;
        }
    }

    @Override
    public void read64s(long pa, long[] dst, int off, int count) throws MemoryAccessException {
        Objects.checkFromIndexSize(off, count, dst.length);
        if ((pa & 7) != 0) {
            throw new IllegalArgumentException("read64s at " + Bits.hex(pa) + " is not 8-byte aligned");
        }
        if (count == 0) {
            return;
        }
        byte[] b = new byte[8 * count];
        read(pa, b, 0, b.length);
        for (int i = 0; i < count; i++) {
            long v = 0;
            for (int j = 7; j >= 0; j--) {
                v = v << 8 | (b[8 * i + j] & 0xFF);
            }
            dst[off + i] = v;
        }
    }

    @Override
    public void write64s(long pa, long[] src, int off, int count) throws MemoryAccessException {
        Objects.checkFromIndexSize(off, count, src.length);
        if ((pa & 7) != 0) {
            throw new IllegalArgumentException("write64s at " + Bits.hex(pa) + " is not 8-byte aligned");
        }
        if (count == 0) {
            return;
        }
        byte[] b = new byte[8 * count];
        for (int i = 0; i < count; i++) {
            for (int j = 0; j < 8; j++) {
                b[8 * i + j] = (byte) (src[off + i] >>> 8 * j);
            }
        }
        write(pa, b, 0, b.length);
    }

    @Override
    public void read32s(long pa, long[] dst, int off, int count) throws MemoryAccessException {
        Objects.checkFromIndexSize(off, count, dst.length);
        if ((pa & 3) != 0) {
            throw new IllegalArgumentException("read32s at " + Bits.hex(pa) + " is not 4-byte aligned");
        }
        if (count == 0) {
            return;
        }
        byte[] b = new byte[4 * count];
        read(pa, b, 0, b.length);
        for (int i = 0; i < count; i++) {
            dst[off + i] = (b[4 * i] & 0xFFL) | (b[4 * i + 1] & 0xFFL) << 8 | (b[4 * i + 2] & 0xFFL) << 16
                    | (b[4 * i + 3] & 0xFFL) << 24;
        }
    }

    @Override
    public void write32s(long pa, long[] src, int off, int count) throws MemoryAccessException {
        Objects.checkFromIndexSize(off, count, src.length);
        if ((pa & 3) != 0) {
            throw new IllegalArgumentException("write32s at " + Bits.hex(pa) + " is not 4-byte aligned");
        }
        if (count == 0) {
            return;
        }
        byte[] b = new byte[4 * count];
        for (int i = 0; i < count; i++) {
            for (int j = 0; j < 4; j++) {
                b[4 * i + j] = (byte) (src[off + i] >>> 8 * j);
            }
        }
        write(pa, b, 0, b.length);
    }

    @Override
    public long compareAndExchange64(long pa, long expected, long update) throws MemoryAccessException {
        if ((pa & 7) != 0) {
            throw new IllegalArgumentException("compareAndExchange64 at " + Bits.hex(pa) + " is not 8-byte aligned");
        }
        checkRam(pa, 8);
        try {
            return rpc().memCompareExchange(MemCompareExchangeRequest.newBuilder().setAddress(pa).setExpected(expected)
                    .setDesired(update).build()).getWitness();
        } catch (StatusRuntimeException e) {
            throw refused("Machine.MemCompareExchange", pa, 8, e);
        }
    }

    @Override
    public String toString() {
        return "guest memory over the bus " + regions;
    }
}
