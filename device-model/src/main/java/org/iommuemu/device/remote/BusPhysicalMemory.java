package org.iommuemu.device.remote;

import com.google.protobuf.UnsafeByteOperations;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.proto.v1.DescribeReply;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MemCompareExchangeRequest;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.MemWriteRequest;

/**
 * Guest physical memory of a machine on the other side of the bus: every access is a {@code Machine} RPC, as a
 * CPU's load or store would be a bus transaction. The RAM map is taken from {@code Machine.Describe} once, so an
 * access outside RAM fails locally with {@link MemoryAccessException} (NOT_RAM) and no RPC; accesses longer than
 * the server's {@code max_mem_access_length} are split into several RPCs (then they are not atomic as a whole,
 * which the interface only promises for aligned 32- and 64-bit accesses: those are always one RPC).
 *
 * <p>A 64-bit compare-and-exchange is {@code Machine.MemCompareExchange}, atomic on the server against the
 * devices' own updates. A failure of the bus itself (the server gone, a deadline) is not a memory fault: it is a
 * {@link BusUnavailableException} naming the RPC and the address.
 *
 * <p>Thread-safe (the blocking stub is). Allocates per access: it is bound by the RPC, not by the copy.
 */
public final class BusPhysicalMemory implements PhysicalMemory {
    private final MachineGrpc.MachineBlockingStub cpu;
    private final List<RamRegion> regions;
    private final int maxAccess;

    /** Describes the machine through {@code cpu} to learn its RAM map and access limit. */
    public BusPhysicalMemory(MachineGrpc.MachineBlockingStub cpu) {
        this(cpu, describe(cpu));
    }

    /** Uses an answer of {@code Machine.Describe} the caller already has. */
    public BusPhysicalMemory(MachineGrpc.MachineBlockingStub cpu, DescribeReply described) {
        this.cpu = Objects.requireNonNull(cpu, "cpu");
        List<RamRegion> r = new ArrayList<>();
        for (org.iommuemu.proto.v1.RamRegion region : described.getRamList()) {
            r.add(new RamRegion(region.getBase(), region.getSize()));
        }
        this.regions = List.copyOf(r);
        this.maxAccess = (int) Math.max(8, Math.min(Integer.MAX_VALUE, described.getLimits().getMaxMemAccessLength()));
    }

    private static DescribeReply describe(MachineGrpc.MachineBlockingStub cpu) {
        try {
            return cpu.describe(DescribeRequest.getDefaultInstance());
        } catch (StatusRuntimeException e) {
            throw new BusUnavailableException("Machine.Describe", 0, e);
        }
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
            int n = Math.min(len - done, maxAccess);
            try {
                cpu.memRead(MemReadRequest.newBuilder().setAddress(pa + done).setLength(n).build()).getData()
                        .copyTo(dst, off + done);
            } catch (StatusRuntimeException e) {
                throw refused("Machine.MemRead", pa + done, n, e);
            }
            done += n;
        }
    }

    /** Writes {@code src[off .. off + len)} at {@code pa} (RAM already checked). */
    private void store(long pa, byte[] src, int off, int len) throws MemoryAccessException {
        for (int done = 0; done < len; ) {
            int n = Math.min(len - done, maxAccess);
            try {
                cpu.memWrite(MemWriteRequest.newBuilder().setAddress(pa + done)
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
        if (length == 0) {
            return;
        }
        checkRam(pa, length);
        byte[] zeros = new byte[(int) Math.min(length, maxAccess)];
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
    public long compareAndExchange64(long pa, long expected, long update) throws MemoryAccessException {
        if ((pa & 7) != 0) {
            throw new IllegalArgumentException("compareAndExchange64 at " + Bits.hex(pa) + " is not 8-byte aligned");
        }
        checkRam(pa, 8);
        try {
            return cpu.memCompareExchange(MemCompareExchangeRequest.newBuilder().setAddress(pa).setExpected(expected)
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
