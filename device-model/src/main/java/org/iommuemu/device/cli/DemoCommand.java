package org.iommuemu.device.cli;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.netty.NettyChannelBuilder;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.bits.Sizes;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.Transfer;
import org.iommuemu.proto.v1.DescribeReply;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.IommuInstance;
import org.iommuemu.proto.v1.IommuKind;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.MmioReadRequest;
import org.iommuemu.proto.v1.MmioWriteRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code iommu-emu demo}: starts the embedded machine, attaches a DMA master over the bus, moves data
 * through the IOMMUs in their reset (untranslated) state, shows an architected abort, programs the SMMUv3 for
 * stage-1 translation through MMIO and guest memory (faults, event records, stale TLB and TLBI), and checks every
 * step. Exits 1 if any check fails.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Run an end-to-end DMA demo on the embedded machine and check every step:",
            "attach a master, write and read back through the bus (SMMUv3 bypass, VT-d with TE=0),",
            "pipeline reads with Transfer, make the SMMU abort DMA through GBPA, then program the SMMU as a",
            "driver would (stream table, CD, page tables, queues) and DMA through a stage-1 translation."})
final class DemoCommand implements Callable<Integer> {
    /** SMMUv3 GBPA register: ABORT is bit 20, UPDATE bit 31. */
    private static final long GBPA = 0x44;
    private static final long GBPA_ABORT = 1L << 20;
    private static final long GBPA_UPDATE = 1L << 31;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--transport", paramLabel = "KIND", defaultValue = "in-process",
            description = "in-process (default) or netty (TCP on 127.0.0.1, a free port).")
    String transport;

    @Option(names = "--ops", paramLabel = "N", defaultValue = "2000",
            description = "Pipelined 4 KiB reads to issue (default ${DEFAULT-VALUE}).")
    int ops;

    @Mixin
    MachineOptions machineOptions;

    private PrintWriter out;
    private int failures;

    @Override
    public Integer call() throws Exception {
        out = spec.commandLine().getOut();
        if (ops < 1) {
            throw new IommuEmu.UserError("--ops must be at least 1");
        }
        MachineConfig config = machineOptions.machine();
        Machine machine = new Machine(config);
        BusServer server;
        ManagedChannel channel;
        switch (transport) {
            case "in-process" -> {
                String name = "iommu-emu-demo-" + UUID.randomUUID();
                server = BusServer.inProcess(machine, name).start();
                channel = InProcessChannelBuilder.forName(name).build();
            }
            case "netty" -> {
                server = BusServer.netty(machine, "127.0.0.1", 0).start();
                channel = NettyChannelBuilder.forTarget(server.target()).usePlaintext()
                        .maxInboundMessageSize(DmaClient.MAX_INBOUND_MESSAGE).build();
            }
            default -> throw new IommuEmu.UserError("--transport must be in-process or netty, got " + transport);
        }
        try (server; DmaClient client = DmaClient.over(channel)) {
            run(MachineGrpc.newBlockingStub(channel), TelemetryGrpc.newBlockingStub(channel), client);
        } finally {
            channel.shutdownNow();
            channel.awaitTermination(5, TimeUnit.SECONDS);
        }
        out.println();
        out.println(failures == 0 ? "demo passed: every check held" : "demo FAILED: " + failures + " check(s) failed");
        out.flush();
        return failures == 0 ? 0 : 1;
    }

    private void run(MachineGrpc.MachineBlockingStub cpu, TelemetryGrpc.TelemetryBlockingStub telemetry,
            DmaClient client) throws Exception {
        DescribeReply d = cpu.describe(DescribeRequest.getDefaultInstance());
        out.println("Machine (bus API " + d.getApiVersion() + ", server " + d.getServerVersion() + ", transport "
                + transport + ")");
        for (IommuInstance i : d.getIommusList()) {
            out.println("  " + i.getName() + ": " + i.getKind() + ", window " + Bits.hex(i.getMmioSize())
                    + ", " + i.getStreamIdBits() + "-bit stream ids, features " + i.getFeaturesList());
        }
        for (org.iommuemu.proto.v1.RamRegion r : d.getRamList()) {
            out.println("  RAM: " + Sizes.format(r.getSize()) + " at " + Bits.hex(r.getBase()));
        }
        long ramBase = d.getRam(0).getBase();
        String smmu = firstOf(d, IommuKind.SMMUV3);
        String vtd = firstOf(d, IommuKind.VTD);

        if (smmu != null) {
            smmuDemo(cpu, client, smmu, ramBase);
            new SmmuTranslationDemo(out, this::check, cpu, telemetry, client, smmu, ramBase).run();
        }
        if (vtd != null) {
            vtdDemo(client, vtd, ramBase);
        }
        if (smmu == null && vtd == null) {
            check(false, "the machine has at least one IOMMU instance");
        }
    }

    private void smmuDemo(MachineGrpc.MachineBlockingStub cpu, DmaClient client, String smmu, long ramBase)
            throws Exception {
        out.println();
        out.println("SMMUv3 " + smmu + " at reset");
        long idr0 = mmioRead(cpu, smmu, 0x00);
        long cr0 = mmioRead(cpu, smmu, 0x20);
        long gbpa = mmioRead(cpu, smmu, GBPA);
        out.println("  IDR0 = " + Bits.hex(idr0) + ", CR0 = " + Bits.hex(cr0) + " (SMMUEN=" + (cr0 & 1) + "), GBPA = "
                + Bits.hex(gbpa) + " (ABORT=" + ((gbpa >>> 20) & 1) + ": incoming DMA bypasses translation)");
        check((cr0 & 1) == 0, "SMMUEN is 0 at reset");

        try (DmaSession nic = client.attach("demo-nic", smmu, 0x10)) {
            out.println("  attached '" + nic.name() + "' on stream " + Bits.hex(nic.streamId()));
            long iova = ramBase + 0x10_0000;
            byte[] payload = new byte[64 * 1024];
            new Random(42).nextBytes(payload);
            DmaResult w = nic.write(iova, payload);
            check(w.isOk(), "64 KiB DMA write at " + Bits.hex(iova) + " in bypass: " + w);
            ByteString inRam = cpu.memRead(MemReadRequest.newBuilder().setAddress(iova).setLength(payload.length)
                    .build()).getData();
            check(inRam.equals(ByteString.copyFrom(payload)),
                    "the CPU reads the same 64 KiB at physical " + Bits.hex(iova) + " (bypass: pa = iova)");
            DmaResult r = nic.read(iova, payload.length);
            check(r.isOk() && r.data().equals(ByteString.copyFrom(payload)), "64 KiB DMA read back matches");

            pipelined(nic, iova, payload);

            out.println("  set GBPA.ABORT with the UPDATE handshake");
            cpu.mmioWrite(MmioWriteRequest.newBuilder().setIommu(smmu).setOffset(GBPA).setWidth(4)
                    .setValue((gbpa | GBPA_ABORT | GBPA_UPDATE) & 0xFFFF_FFFFL).build());
            long now = mmioRead(cpu, smmu, GBPA);
            check((now & GBPA_UPDATE) == 0 && (now & GBPA_ABORT) != 0,
                    "GBPA reads " + Bits.hex(now) + ": UPDATE completed, ABORT set");
            DmaResult aborted = nic.read(iova, 4096);
            check(aborted.faulted() && aborted.fault().getKind() == FaultKind.ABORTED,
                    "DMA with SMMUEN=0 and GBPA.ABORT=1 aborts: " + aborted);
            cpu.mmioWrite(MmioWriteRequest.newBuilder().setIommu(smmu).setOffset(GBPA).setWidth(4)
                    .setValue(((gbpa & ~GBPA_ABORT) | GBPA_UPDATE) & 0xFFFF_FFFFL).build());
            check(nic.read(iova, 16).isOk(), "bypass again after clearing GBPA.ABORT");

            long hole = ramBase - 0x1000;
            DmaResult ea = nic.read(hole, 16);
            check(ea.faulted() && ea.fault().getKind() == FaultKind.EXTERNAL_ABORT,
                    "DMA to " + Bits.hex(hole) + " (not RAM) is an external abort: " + ea);
        }
    }

    private void pipelined(DmaSession nic, long iova, byte[] payload) throws Exception {
        int chunks = payload.length / 4096;
        List<CompletableFuture<DmaResult>> futures = new ArrayList<>(ops);
        long start = System.nanoTime();
        try (Transfer t = nic.openTransfer(64)) {
            for (int i = 0; i < ops; i++) {
                futures.add(t.read(iova + (long) (i % chunks) * 4096, 4096));
            }
            CompletableFuture.allOf(futures.toArray(new CompletableFuture<?>[0])).get(60, TimeUnit.SECONDS);
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        int bad = 0;
        for (int i = 0; i < ops; i++) {
            DmaResult r = futures.get(i).get();
            int off = (i % chunks) * 4096;
            if (!r.isOk() || !r.data().equals(ByteString.copyFrom(payload, off, 4096))) {
                bad++;
            }
        }
        check(bad == 0, String.format("%d pipelined 4 KiB reads (window 64) returned the right data: %.0f ops/s, "
                + "%.1f MB/s wall time", ops, ops / seconds, ops * 4096 / seconds / 1e6));
    }

    private void vtdDemo(DmaClient client, String vtd, long ramBase) {
        out.println();
        out.println("VT-d " + vtd + " at reset (GSTS.TES=0: DMA is not translated)");
        int rid = (1 << 8) | (2 << 3) | 0; // requester id of bus 1, device 2, function 0
        try (DmaSession disk = client.attach("demo-disk", vtd, rid)) {
            out.println("  attached '" + disk.name() + "' as requester 01:02.0 (" + Bits.hex(rid) + ")");
            long iova = ramBase + 0x20_0000;
            byte[] block = "a block of data written by the demo disk".getBytes(java.nio.charset.StandardCharsets.UTF_8);
            check(disk.write(iova, block).isOk(), "DMA write through " + vtd + " with TE=0");
            DmaResult r = disk.read(iova, block.length);
            check(r.isOk() && r.data().equals(ByteString.copyFrom(block)), "DMA read back matches");
        }
    }

    private static String firstOf(DescribeReply d, IommuKind kind) {
        return d.getIommusList().stream().filter(i -> i.getKind() == kind).map(IommuInstance::getName)
                .findFirst().orElse(null);
    }

    private static long mmioRead(MachineGrpc.MachineBlockingStub cpu, String iommu, long offset) {
        return cpu.mmioRead(MmioReadRequest.newBuilder().setIommu(iommu).setOffset(offset).setWidth(4).build())
                .getValue();
    }

    private void check(boolean ok, String what) {
        out.println((ok ? "  ok    " : "  FAIL  ") + what);
        out.flush();
        if (!ok) {
            failures++;
        }
    }
}
