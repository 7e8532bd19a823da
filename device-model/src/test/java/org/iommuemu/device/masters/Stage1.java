package org.iommuemu.device.masters;

import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.core.smmuv3.StreamTableBase;
import org.iommuemu.device.smmuv3.SmmuV3Registers;
import org.iommuemu.proto.v1.MmioReadRequest;
import org.iommuemu.proto.v1.MmioWriteRequest;

/**
 * A minimal SMMUv3 driver over the bus (MMIO and guest-memory writes only), as the {@code demo} command does
 * it: a linear stream table of 64 entries, one stage-1 CD (ASID 1, 4 KB granule, 48-bit input) shared by
 * every stream added, a 4-level page table, command and event queues, SMMUEN=1. Pages are mapped read-write.
 */
final class Stage1 {
    private static final int ASID = 1;
    /** AArch64 stage-1 page: AF, inner shareable, AP[1] (unprivileged access), AttrIndx 0. */
    private static final long PAGE_ATTRS = (1L << 10) | (3L << 8) | (1L << 6) | 0b11;
    private static final long TABLE = 0b11;
    private static final long ADDR_MASK = 0x0000_FFFF_FFFF_F000L;
    private static final int CR0_SMMUEN = 1;
    private static final int CR0_EVENTQEN = 1 << 2;
    private static final int CR0_CMDQEN = 1 << 3;

    private final MasterBus bus;
    private final String smmu;
    private final long strtab;
    private final long cmdq;
    private final long cd;
    private final long l0;
    private long next;
    private int cmdProd;

    Stage1(MasterBus bus, String smmu, long area) {
        this.bus = bus;
        this.smmu = smmu;
        this.next = area;
        int ips = (int) (mmioRead(SmmuV3Registers.IDR5) & 7);
        strtab = alloc(Ste.SIZE << 6);
        cmdq = alloc(QueuePointer.CMDQ_ENTRY_SIZE << 6);
        long evtq = alloc(QueuePointer.EVENTQ_ENTRY_SIZE << 5);
        cd = alloc(Cd.SIZE);
        l0 = alloc(4096);
        bus.write64(cd, Cd.stage1(16, Encodings.tg0ForGranuleLg2(12), ips, ASID, l0, Cd.LINUX_MAIR).encode());
        mmio(SmmuV3Registers.STRTAB_BASE, 8, StreamTableBase.encodeBase(strtab, true));
        mmio(SmmuV3Registers.STRTAB_BASE_CFG, 4, StreamTableBase.encodeCfg(6, 0, StreamTableBase.FMT_LINEAR));
        mmio(SmmuV3Registers.CMDQ_BASE, 8, new QueueBase(cmdq, 6, true).encode());
        mmio(SmmuV3Registers.EVENTQ_BASE, 8, new QueueBase(evtq, 5, true).encode());
        mmio(SmmuV3Registers.CR0, 4, CR0_CMDQEN);
        submit(Command.cfgiAll(), Command.tlbiNsnhAll(), Command.cmdSync(Command.CS_NONE));
        mmio(SmmuV3Registers.CR0, 4, CR0_CMDQEN | CR0_EVENTQEN);
        mmio(SmmuV3Registers.CR0, 4, CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
        if (mmioRead(SmmuV3Registers.CR0ACK) != (CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN)) {
            throw new IllegalStateException("the SMMU did not acknowledge SMMUEN");
        }
    }

    /** Gives stream {@code sid} (below 64) the shared stage-1 context. */
    Stage1 addStream(int sid) {
        bus.write64(strtab + (long) sid * Ste.SIZE, Ste.stage1(cd, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0).encode());
        submit(Command.cfgiSte(sid, true), Command.cmdSync(Command.CS_NONE));
        return this;
    }

    /** Fresh, zeroed guest memory (4 KiB pages) that the page tables do not use. */
    long alloc(long bytes) {
        long at = next;
        next += Math.max(4096, (bytes + 4095) & ~4095L);
        return at;
    }

    /** Maps {@code [iova, iova + size)} to {@code [pa, pa + size)}, 4 KiB pages, all page aligned. */
    Stage1 map(long iova, long pa, long size) {
        for (long off = 0; off < size; off += 4096) {
            long va = iova + off;
            long table = l0;
            for (int shift = 39; shift > 12; shift -= 9) {
                long slot = table + 8 * ((va >>> shift) & 511);
                long entry = bus.read64(slot);
                if (entry == 0) {
                    long t = alloc(4096);
                    bus.write64(slot, t | TABLE);
                    table = t;
                } else {
                    table = entry & ADDR_MASK;
                }
            }
            bus.write64(table + 8 * ((va >>> 12) & 511), (pa + off) | PAGE_ATTRS);
        }
        return this;
    }

    private void submit(Command... commands) {
        for (Command c : commands) {
            bus.write64(cmdq + (long) QueuePointer.index(cmdProd, 6) * QueuePointer.CMDQ_ENTRY_SIZE, c.encode());
            cmdProd = QueuePointer.inc(cmdProd, 6);
        }
        mmio(SmmuV3Registers.CMDQ_PROD, 4, cmdProd);
        if (mmioRead(SmmuV3Registers.CMDQ_CONS) != cmdProd) {
            throw new IllegalStateException("the command queue did not drain");
        }
    }

    private void mmio(long offset, int width, long value) {
        bus.cpu.mmioWrite(MmioWriteRequest.newBuilder().setIommu(smmu).setOffset(offset).setWidth(width)
                .setValue(value).build());
    }

    private long mmioRead(long offset) {
        return bus.cpu.mmioRead(MmioReadRequest.newBuilder().setIommu(smmu).setOffset(offset).setWidth(4).build())
                .getValue();
    }
}
