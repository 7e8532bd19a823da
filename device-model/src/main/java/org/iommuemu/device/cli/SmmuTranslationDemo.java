package org.iommuemu.device.cli;

import com.google.protobuf.ByteString;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.core.smmuv3.StreamTableBase;
import org.iommuemu.device.smmuv3.SmmuV3Registers;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.MemWriteRequest;
import org.iommuemu.proto.v1.MmioReadRequest;
import org.iommuemu.proto.v1.MmioWriteRequest;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;

/**
 * Plays a minimal driver over the bus (Machine.MmioWrite / MemWrite only): a linear stream table, one
 * stage-1 CD, a 4-level 4 KB page table, the command and event queues, then translated DMA, a translation
 * fault read back from the event queue, a stale TLB entry and the TLBI that removes it.
 */
final class SmmuTranslationDemo {
    private static final int SID = 0x20;
    private static final int ASID = 1;
    private static final long IOVA = 0x1234_5000L;
    /** AArch64 stage-1 leaf attributes: AF, inner shareable, AP[1] (EL0 access), AttrIndx 0, page. */
    private static final long PAGE_ATTRS = (1L << 10) | (3L << 8) | (1L << 6) | 0b11;
    private static final long TABLE = 0b11;
    private static final long IDR0_S1P = 1 << 1;
    private static final long IDR5_GRAN4K = 1 << 4;
    private static final int CR0_SMMUEN = 1;
    private static final int CR0_EVENTQEN = 1 << 2;
    private static final int CR0_CMDQEN = 1 << 3;

    /** Reports one check: whether it held, and what was checked. */
    interface Check {
        void check(boolean ok, String what);
    }

    private final PrintWriter out;
    private final Check checks;
    private final MachineGrpc.MachineBlockingStub cpu;
    private final TelemetryGrpc.TelemetryBlockingStub telemetry;
    private final DmaClient client;
    private final String smmu;
    private final long area; // guest memory the demo driver owns
    private long next;
    private int cmdProd;

    SmmuTranslationDemo(PrintWriter out, Check checks, MachineGrpc.MachineBlockingStub cpu,
            TelemetryGrpc.TelemetryBlockingStub telemetry, DmaClient client, String smmu, long ramBase) {
        this.out = out;
        this.checks = checks;
        this.cpu = cpu;
        this.telemetry = telemetry;
        this.client = client;
        this.smmu = smmu;
        this.area = ramBase + (16L << 20);
        this.next = area;
    }

    void run() {
        out.println();
        out.println("SMMUv3 " + smmu + " programmed by a driver over the bus (stage 1, 4 KB granule, 48-bit VA)");
        long idr0 = mmioRead(SmmuV3Registers.IDR0);
        long idr5 = mmioRead(SmmuV3Registers.IDR5);
        if ((idr0 & IDR0_S1P) == 0 || (idr5 & IDR5_GRAN4K) == 0) {
            out.println("  skipped: this instance has no stage 1 with a 4 KB granule (IDR0 = " + Bits.hex(idr0)
                    + ", IDR5 = " + Bits.hex(idr5) + ")");
            return;
        }
        int ips = (int) (idr5 & 7); // IDR5.OAS: the CD's IPS may not exceed it
        long strtab = alloc(Ste.SIZE << 6);
        long cmdq = alloc(QueuePointer.CMDQ_ENTRY_SIZE << 6);
        long evtq = alloc(QueuePointer.EVENTQ_ENTRY_SIZE << 5);
        long cd = alloc(Cd.SIZE);
        long l0 = alloc(4096);
        long l1 = alloc(4096);
        long l2 = alloc(4096);
        long l3 = alloc(4096);
        long bufA = alloc(4096);
        long bufB = alloc(4096);
        // the page table: IOVA -> bufA
        write64(l0 + 8 * index(IOVA, 39), l1 | TABLE);
        write64(l1 + 8 * index(IOVA, 30), l2 | TABLE);
        write64(l2 + 8 * index(IOVA, 21), l3 | TABLE);
        long leaf = l3 + 8 * index(IOVA, 12);
        write64(leaf, bufA | PAGE_ATTRS);
        writeWords(cd, Cd.stage1(16, Encodings.tg0ForGranuleLg2(12), ips, ASID, l0,
                Cd.LINUX_MAIR).encode());
        writeWords(strtab + (long) SID * Ste.SIZE, Ste.stage1(cd, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0).encode());
        // registers, in the order Linux's arm_smmu_device_reset uses
        mmio(SmmuV3Registers.STRTAB_BASE, 8, StreamTableBase.encodeBase(strtab, true));
        mmio(SmmuV3Registers.STRTAB_BASE_CFG, 4, StreamTableBase.encodeCfg(6, 0, StreamTableBase.FMT_LINEAR));
        mmio(SmmuV3Registers.CMDQ_BASE, 8, new QueueBase(cmdq, 6, true).encode());
        mmio(SmmuV3Registers.EVENTQ_BASE, 8, new QueueBase(evtq, 5, true).encode());
        cr0(CR0_CMDQEN);
        submit(cmdq, Command.cfgiAll(), Command.tlbiNsnhAll(), Command.cmdSync(Command.CS_NONE));
        cr0(CR0_CMDQEN | CR0_EVENTQEN);
        cr0(CR0_CMDQEN | CR0_EVENTQEN | CR0_SMMUEN);
        checks.check(mmioRead(SmmuV3Registers.CMDQ_CONS) == cmdProd,
                "CR0ACK followed each CR0 write; the command queue drained (CMDQ_CONS = PROD = " + cmdProd + ")");

        try (DmaSession dev = client.attach("demo-dma-engine", smmu, SID)) {
            byte[] data = "translated by stage 1".getBytes(StandardCharsets.UTF_8);
            DmaResult w = dev.write(IOVA + 0x10, data);
            checks.check(w.isOk() && memRead(bufA + 0x10, data.length).equals(ByteString.copyFrom(data)),
                    "DMA write to iova " + Bits.hex(IOVA + 0x10) + " lands at physical " + Bits.hex(bufA + 0x10));

            long unmapped = IOVA + 0x1000;
            DmaResult f = dev.read(unmapped, 8);
            checks.check(f.faulted() && f.fault().getKind() == FaultKind.TRANSLATION,
                    "DMA to unmapped iova " + Bits.hex(unmapped) + " faults: " + f);
            long prod = mmioRead(SmmuV3Registers.EVENTQ_PROD);
            EventRecord e = EventRecord.decode(readWords(evtq, 4));
            checks.check(prod == 1 && e.type() == EventType.F_TRANSLATION && e.streamId() == SID
                    && e.inputAddr() == unmapped && e.rnw(),
                    "the event queue holds one record: " + e);
            mmio(SmmuV3Registers.EVENTQ_CONS, 4, prod);

            // change the leaf without invalidating: the IOTLB keeps the old translation
            write64(leaf, bufB | PAGE_ATTRS);
            dev.write(IOVA, new byte[] {1, 2, 3, 4});
            checks.check(memRead(bufA, 4).equals(ByteString.copyFrom(new byte[] {1, 2, 3, 4})),
                    "after the PTE changed without a TLBI, DMA still reaches the old page (stale IOTLB entry)");
            submit(cmdq, Command.tlbiNhVa(0, ASID, IOVA, true), Command.cmdSync(Command.CS_NONE));
            dev.write(IOVA, new byte[] {5, 6, 7, 8});
            checks.check(memRead(bufB, 4).equals(ByteString.copyFrom(new byte[] {5, 6, 7, 8})),
                    "after TLBI_NH_VA + CMD_SYNC, DMA reaches the new page");
        }
        InstanceStats st = telemetry.stats(StatsRequest.newBuilder().addIommus(smmu).build()).getIommus(0);
        StringBuilder caches = new StringBuilder();
        for (org.iommuemu.proto.v1.CacheStats c : st.getCachesList()) {
            caches.append(' ').append(c.getCache()).append(' ').append(c.getHits()).append('/')
                    .append(c.getHits() + c.getMisses());
        }
        checks.check(st.getTranslations() > 0 && st.getWalks() > 0 && st.getSimTimeNs() > 0,
                "Telemetry.Stats: " + st.getTranslations() + " translations, " + st.getFaults() + " fault(s), "
                        + st.getWalks() + " walks (" + st.getWalkReads() + " table reads), cache hits/lookups:"
                        + caches + ", " + st.getSimTimeNs() + " simulated ns");
    }

    private static long index(long va, int shift) {
        return (va >>> shift) & 511;
    }

    private long alloc(long bytes) {
        long at = next;
        next += Math.max(4096, (bytes + 4095) & ~4095L);
        return at;
    }

    private void cr0(int value) {
        mmio(SmmuV3Registers.CR0, 4, value);
        long ack = mmioRead(SmmuV3Registers.CR0ACK);
        if (ack != value) {
            throw new IllegalStateException("CR0ACK reads " + Bits.hex(ack) + " after CR0 = " + Bits.hex(value));
        }
    }

    private void submit(long cmdq, Command... commands) {
        for (Command c : commands) {
            writeWords(cmdq + (long) QueuePointer.index(cmdProd, 6) * QueuePointer.CMDQ_ENTRY_SIZE, c.encode());
            cmdProd = QueuePointer.inc(cmdProd, 6);
        }
        mmio(SmmuV3Registers.CMDQ_PROD, 4, cmdProd);
    }

    private void mmio(long offset, int width, long value) {
        cpu.mmioWrite(MmioWriteRequest.newBuilder().setIommu(smmu).setOffset(offset).setWidth(width)
                .setValue(value).build());
    }

    private void write64(long pa, long value) {
        writeWords(pa, new long[] {value});
    }

    private void writeWords(long pa, long[] words) {
        ByteBuffer b = ByteBuffer.allocate(words.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (long w : words) {
            b.putLong(w);
        }
        cpu.memWrite(MemWriteRequest.newBuilder().setAddress(pa).setData(ByteString.copyFrom(b.array())).build());
    }

    private long[] readWords(long pa, int n) {
        ByteBuffer b = memRead(pa, n * 8).asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        long[] words = new long[n];
        for (int i = 0; i < n; i++) {
            words[i] = b.getLong();
        }
        return words;
    }

    private ByteString memRead(long pa, int length) {
        return cpu.memRead(MemReadRequest.newBuilder().setAddress(pa).setLength(length).build()).getData();
    }
    private long mmioRead(long offset) {
        return cpu.mmioRead(MmioReadRequest.newBuilder().setIommu(smmu).setOffset(offset).setWidth(4).build())
                .getValue();
    }
}
