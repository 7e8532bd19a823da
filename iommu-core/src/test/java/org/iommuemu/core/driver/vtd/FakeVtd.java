package org.iommuemu.core.driver.vtd;

import static org.iommuemu.core.vtd.VtdRegs.*;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.LongPredicate;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.vtd.InvDesc;

/**
 * A small stand-in for a VT-d unit behind a {@link VtdHost}, enough to test the driver's side alone: VER/CAP/ECAP,
 * the GCMD/GSTS protocol (commands complete at once unless told to stall), RTADDR, the invalidation queue (processed
 * on IQT writes: every descriptor recorded, waits with SW writing their status data; IQE on a descriptor a predicate
 * rejects, ITE on a device-TLB descriptor; clearing IQE resumes), FSTS (write-one-to-clear, PPF from the F bits) and
 * fault recording registers the test fills ({@link #recordFault}). Every register write is logged.
 */
final class FakeVtd implements VtdHost {
    static final long RAM_BASE = 0x8000_0000L;
    static final long RAM_SIZE = 64L << 20;

    /** QEMU-like: ND 6, SAGAW 39/48, MGAW 48, FRO 0x220, SLLPS 2M/1G, PSI, 4 fault records, MAMV 18, FL1GP. */
    static final long DEFAULT_CAP = 6L | 0b0110L << CAP_SAGAW | 47L << CAP_MGAW | 0x22L << CAP_FRO | 3L << CAP_SLLPS
            | 1L << CAP_PSI | 3L << CAP_NFR | 18L << CAP_MAMV | 1L << CAP_FL1GP;
    /** QI, PT, SC, IRO 0xF0, PASID (20 bits), SMTS, SLTS, FLTS. */
    static final long DEFAULT_ECAP = 1L << ECAP_QI | 1L << ECAP_PT | 1L << ECAP_SC | 0xFL << ECAP_IRO
            | 1L << ECAP_PASID | 19L << ECAP_PSS | 1L << ECAP_SMTS | 1L << ECAP_SLTS | 1L << ECAP_FLTS;

    record Write(long offset, int width, long value) {}

    record Desc(int index, long qw0, long qw1) {
        int type() {
            return InvDesc.type(qw0);
        }
    }

    final SparseRam ram = new SparseRam(List.of(new RamRegion(RAM_BASE, RAM_SIZE)));
    final BuddyPageAllocator alloc = new BuddyPageAllocator(ram, RAM_BASE, RAM_SIZE);
    final List<Write> writes = new ArrayList<>();
    /** Every descriptor the unit executed (or rejected), waits included. */
    final List<Desc> executed = new ArrayList<>();
    final Map<Long, Long> regs = new HashMap<>();

    long cap = DEFAULT_CAP;
    long ecap = DEFAULT_ECAP;
    int ver = 0x10;
    /** GCMD bits whose status never follows. */
    int stalledCommands;
    /** Descriptors (by qw0) the unit rejects with IQE. */
    LongPredicate rejects = qw0 -> false;
    /** Log writes and descriptors (off for allocation measurements). */
    boolean recording = true;
    /** Don't process the queue at all (a hung unit). */
    boolean hung;
    /**
     * Device-TLB (and PASID-based device-TLB) descriptors that still time out (ITE, IQERCD.ITESID = their source id)
     * before devices start answering; by default the devices never answer.
     */
    int deviceTlbTimeouts = Integer.MAX_VALUE;
    /** The ITESID an ITE reports: -1 for the timed-out descriptor's source id (older units report 0). */
    int iteSid = -1;
    /** Process at most this many descriptors per IQT write (then one more per register read): a slow unit. */
    int perKick = Integer.MAX_VALUE;

    private Consumer<Irq> handler;
    int gsts;
    int fsts;
    long iqh;
    long iqt;
    long iqa;

    FakeVtd() {}

    FakeVtd cm(boolean on) {
        cap = Bits.withBit(cap, CAP_CM, on);
        return this;
    }

    int faultRecords() {
        return (int) Bits.extract(cap, CAP_NFR, 8) + 1;
    }

    long fro() {
        return Bits.extract(cap, CAP_FRO, 10) * 16;
    }

    boolean wide() {
        return Bits.bit(reg(IQA), IQA_DW);
    }

    int shift() {
        return wide() ? 5 : 4;
    }

    int entries() {
        long iqa = reg(IQA);
        return 1 << ((int) (iqa & 7) + (wide() ? 7 : 8));
    }

    long reg(long offset) {
        if (offset == IQT) {
            return iqt;
        }
        if (offset == IQA) {
            return iqa;
        }
        return regs.getOrDefault(offset, 0L);
    }

    @Override
    public long mmioRead(long offset, int width) {
        if (perKick != Integer.MAX_VALUE) {
            process(1); // a slow unit: one descriptor per register read
        }
        long v;
        if (offset == VER) {
            v = ver;
        } else if (offset == CAP) {
            v = cap;
        } else if (offset == ECAP) {
            v = ecap;
        } else if (offset == GSTS) {
            v = Integer.toUnsignedLong(gsts);
        } else if (offset == FSTS) {
            v = fsts;
        } else if (offset == IQH) {
            v = iqh;
        } else if (offset == IQT) {
            v = iqt;
        } else {
            v = reg(offset);
        }
        return width == 4 ? v & 0xFFFF_FFFFL : v;
    }

    @Override
    public void mmioWrite(long offset, int width, long value) {
        if (recording) {
            writes.add(new Write(offset, width, value));
        }
        if (offset == GCMD) {
            gcmd((int) value);
        } else if (offset == FSTS) {
            int clear = (int) value & (1 << FSTS_PFO | 1 << FSTS_IQE | 1 << FSTS_ICE | 1 << FSTS_ITE);
            fsts &= ~clear;
            if ((clear & 1 << FSTS_IQE) != 0) {
                process(perKick);
            }
        } else if (offset == IQT) {
            iqt = value; // a field, not the map: no boxing on the hot path
            process(perKick);
        } else if (offset == IQA) {
            iqa = value;
            iqh = 0;
        } else if (offset >= fro() && offset < fro() + 16L * faultRecords()) {
            long rec = offset - (offset - fro()) % 16;
            if (offset == rec + 12 && width == 4 && (value & 0x8000_0000L) != 0) {
                regs.put(rec + 8, reg(rec + 8) & ~(1L << 63));
                updatePpf();
            }
        } else {
            if (width == 4) {
                regs.put(offset, value & 0xFFFF_FFFFL);
            } else {
                regs.put(offset, value);
            }
        }
    }

    private void gcmd(int value) {
        int persistent = 1 << GCMD_TE | 1 << GCMD_QIE | 1 << GCMD_IRE | 1 << GCMD_EAFL | 1 << GCMD_CFI;
        int next = gsts & ~persistent | value & persistent & ~stalledCommands | gsts & persistent & stalledCommands;
        if ((value & 1 << GCMD_SRTP) != 0 && (stalledCommands & 1 << GCMD_SRTP) == 0) {
            next |= 1 << GCMD_SRTP;
        }
        gsts = next;
    }

    private void updatePpf() {
        boolean any = false;
        for (int n = 0; n < faultRecords(); n++) {
            any |= Bits.bit(reg(fro() + 16L * n + 8), 63);
        }
        fsts = (int) Bits.withBit(fsts, FSTS_PPF, any);
    }

    /** Records a fault in register {@code index} (F set), sets FRI if no fault was pending, raises the fault event. */
    void recordFault(int index, long lo, long hi) {
        boolean wasPending = Bits.bit(fsts, FSTS_PPF);
        regs.put(fro() + 16L * index, lo);
        regs.put(fro() + 16L * index + 8, hi | 1L << 63);
        if (!wasPending) {
            fsts = (int) Bits.deposit(fsts, FSTS_FRI, 8, index);
        }
        updatePpf();
        raise(Irq.FAULT_EVENT);
    }

    void raise(Irq irq) {
        if (handler != null) {
            handler.accept(irq);
        }
    }

    private void process(int budget) {
        if (hung || !Bits.bit(gsts, GCMD_QIE) || (fsts & (1 << FSTS_IQE | 1 << FSTS_ITE)) != 0) {
            return;
        }
        int entries = entries();
        int shift = shift();
        int tail = (int) (reg(IQT) >>> shift) & (entries - 1);
        int head = (int) (iqh >>> shift) & (entries - 1);
        long base = reg(IQA) & ~0xFFFL;
        try {
            while (head != tail && budget-- > 0) {
                long at = base + ((long) head << shift);
                long qw0 = ram.read64(at);
                long qw1 = ram.read64(at + 8);
                if (recording) {
                    executed.add(new Desc(head, qw0, qw1));
                }
                if (rejects.test(qw0)) {
                    fsts |= 1 << FSTS_IQE;
                    raise(Irq.FAULT_EVENT);
                    break;
                }
                int type = InvDesc.type(qw0);
                if ((type == InvDesc.TYPE_DEVICE_TLB || type == InvDesc.TYPE_PASID_DEVICE_TLB)
                        && deviceTlbTimeouts > 0) {
                    deviceTlbTimeouts--;
                    long sid = type == InvDesc.TYPE_DEVICE_TLB ? (qw0 >>> 32) & 0xFFFF : (qw0 >>> 16) & 0xFFFF;
                    regs.put(IQERCD, (iteSid < 0 ? sid : iteSid) << IQERCD_ITESID);
                    fsts |= 1 << FSTS_ITE; // the device does not answer: pending waits are aborted
                    head = tail;
                    raise(Irq.FAULT_EVENT);
                    break;
                }
                if (type == InvDesc.TYPE_WAIT && Bits.bit(qw0, InvDesc.WAIT_SW)) {
                    ram.write32(qw1 & ~3L, (int) (qw0 >>> 32));
                }
                head = (head + 1) & (entries - 1);
            }
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
        iqh = (long) head << shift;
    }

    /** Descriptors executed, waits left out. */
    List<Desc> invalidations() {
        return executed.stream().filter(d -> d.type() != InvDesc.TYPE_WAIT).toList();
    }

    long waits() {
        return executed.stream().filter(d -> d.type() == InvDesc.TYPE_WAIT).count();
    }

    /** Register writes to {@code offset}, in order. */
    List<Long> writesTo(long offset) {
        return writes.stream().filter(w -> w.offset() == offset).map(Write::value).toList();
    }

    long r64(long pa) {
        try {
            return ram.read64(pa);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }

    @Override
    public PhysicalMemory memory() {
        return ram;
    }

    @Override
    public PageAllocator allocator() {
        return alloc;
    }

    @Override
    public void onInterrupt(Consumer<Irq> handler) {
        this.handler = handler;
    }
}
