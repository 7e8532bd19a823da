package org.iommuemu.device.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.bus.BusFixture.assertStatus;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Future;
import org.iommuemu.core.driver.smmuv3.NestedTables;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3Listener;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.device.machine.SmmuDriverInstance;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.proto.v1.AllocBufferReply;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AttachDeviceReply;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CreateDomainReply;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DestroyDomainRequest;
import org.iommuemu.proto.v1.DetachDeviceRequest;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverEvent;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.EventsReply;
import org.iommuemu.proto.v1.EventsRequest;
import org.iommuemu.proto.v1.FlushRequest;
import org.iommuemu.proto.v1.FaultKind;
import org.iommuemu.proto.v1.FlushMode;
import org.iommuemu.proto.v1.FreeBufferRequest;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.IovaToPhysReply;
import org.iommuemu.proto.v1.IovaToPhysRequest;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.MapSgRequest;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.MmioReadRequest;
import org.iommuemu.proto.v1.MmioWriteRequest;
import org.iommuemu.proto.v1.Prot;
import org.iommuemu.proto.v1.SgEntry;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;
import org.iommuemu.proto.v1.UnmapRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The Driver service end to end on the in-process bus: domains created, buffers allocated and mapped through it,
 * DMA masters on the Dma service translated through them, invalidation seen in Telemetry, and the refusals.
 */
class DriverServiceTest {
    private static final int SID = 0x20;
    private static final long IOVA = 0x1000_0000L;
    private static final Prot RW = Prot.newBuilder().setRead(true).setWrite(true).build();
    private static final int TLBI_NH_VA = 0x12;
    private static final int TLBI_S2_IPA = 0x2A;
    private static final int TLBI_NH_ALL = 0x10;
    private static final int CFGI_CD = 0x05;

    private BusFixture bus;
    private DriverGrpc.DriverBlockingStub driver;
    private MachineGrpc.MachineBlockingStub cpu;
    private TelemetryGrpc.TelemetryBlockingStub telemetry;
    private DmaClient dma;

    private void start(MachineConfig config) throws Exception {
        bus = new BusFixture(config);
        driver = DriverGrpc.newBlockingStub(bus.channel());
        cpu = bus.cpu();
        telemetry = TelemetryGrpc.newBlockingStub(bus.channel());
        dma = bus.client();
    }

    private void start() throws Exception {
        start(MachineConfig.defaults());
    }

    @AfterEach
    void tearDown() {
        if (bus != null) {
            bus.close();
        }
    }

    private static MachineConfig twoSmmus() {
        return MachineConfig.defaults().withIommus(List.of(
                new IommuSpec("smmu0", IommuType.SMMUV3),
                new IommuSpec("smmu1", IommuType.SMMUV3, SmmuV3Config.builder().oasBits(40).build()),
                new IommuSpec("dmar0", IommuType.VTD)));
    }

    private CreateDomainReply create(DomainStage stage, String... iommus) {
        return driver.createDomain(CreateDomainRequest.newBuilder().addAllIommus(List.of(iommus)).setStage(stage)
                .setGranule(4096).build());
    }

    private long alloc(long size) {
        return driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(size).build()).getPa();
    }

    private void map(long domain, long iova, long pa, long size) {
        driver.map(MapRequest.newBuilder().setDomain(domain).setIova(iova).setPa(pa).setSize(size).setProt(RW)
                .build());
    }

    private AttachDeviceReply attach(long domain, String iommu, int sid) {
        return driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(domain).setIommu(iommu)
                .setStreamId(sid).build());
    }

    private long unmap(long domain, long iova, long size) {
        return driver.unmap(UnmapRequest.newBuilder().setDomain(domain).setIova(iova).setSize(size).build())
                .getUnmapped();
    }

    private IovaToPhysReply lookup(long domain, long iova) {
        return driver.iovaToPhys(IovaToPhysRequest.newBuilder().setDomain(domain).setIova(iova).build());
    }

    private byte[] memRead(long pa, int length) {
        return cpu.memRead(MemReadRequest.newBuilder().setAddress(pa).setLength(length).build()).getData()
                .toByteArray();
    }

    private long commands(String iommu, int opcode) {
        InstanceStats s = telemetry.stats(StatsRequest.newBuilder().addIommus(iommu).build()).getIommus(0);
        return s.getCommandsList().stream().filter(c -> c.getCode() == opcode).mapToLong(c -> c.getCount()).sum();
    }

    private static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    /** A driver that fails under a domain operation (a CMD_SYNC that never completes) is a status naming it, not INTERNAL. */
    @Test
    void aDriverFailureUnderAnUnmapIsFailedPreconditionNamingTheDriver() throws Exception {
        start();
        long d = create(DomainStage.STAGE_1, "smmu0").getDomain();
        map(d, IOVA, alloc(8192), 8192);
        attach(d, "smmu0", SID);
        org.iommuemu.proto.v1.FaultInjectionGrpc.FaultInjectionBlockingStub faults =
                org.iommuemu.proto.v1.FaultInjectionGrpc.newBlockingStub(bus.channel());
        long id = faults.inject(org.iommuemu.proto.v1.InjectRequest.newBuilder().setSpec(
                org.iommuemu.proto.v1.FaultSpec.newBuilder()
                        .setKind(org.iommuemu.proto.v1.InjectionKind.SYNC_NEVER_COMPLETES)
                        .setTarget(org.iommuemu.proto.v1.FaultTarget.newBuilder().setIommu("smmu0"))).build())
                .getFaultId();
        assertStatus(() -> unmap(d, IOVA, 4096), Status.Code.FAILED_PRECONDITION, "the SMMUv3 driver failed");
        faults.clear(org.iommuemu.proto.v1.ClearFaultsRequest.newBuilder().setFaultId(id).build());
        assertThat(unmap(d, IOVA + 4096, 4096)).as("the driver recovers once the fault is gone").isEqualTo(4096);
    }

    // ------------------------------------------------------------------ VT-d

    /**
     * The same service on a VT-d unit: a second-stage domain for a device's requests without PASID and a first-stage
     * domain for one PASID of it, DMA through both, a strict unmap that makes DMA fault, and the fault records the
     * VT-d driver read (by fault reason, with the PASID), also in Telemetry.
     */
    @Test
    void vtdDomainsTranslateFaultAndReportThroughTheService() throws Exception {
        start();
        int rid = 0x0310; // 03:02.0
        long second = create(DomainStage.STAGE_2, "dmar0").getDomain();
        CreateDomainReply firstReply = create(DomainStage.STAGE_1, "dmar0");
        long first = firstReply.getDomain();
        assertThat(firstReply.getPageSizes() & (1L << 21)).as("first stage maps 2 MiB pages").isNotZero();
        long pa2 = alloc(16384);
        long pa1 = alloc(16384);
        map(second, IOVA, pa2, 16384);
        map(first, IOVA, pa1, 16384);
        assertThat(attach(second, "dmar0", rid).getContextId()).as("domain id 1").isEqualTo(1);
        assertThat(attachSubstream(first, "dmar0", rid, 7).getContextId()).as("domain id 2").isEqualTo(2);
        assertThat(bus.machine.driverHost().owns("dmar0")).isTrue();

        try (DmaSession dev = dma.attach("dev", "dmar0", rid, true)) {
            byte[] x = random(512, 21);
            byte[] y = random(512, 22);
            assertThat(dev.write(IOVA + 0x1000, x).isOk()).isTrue();
            assertThat(dev.write(IOVA + 0x1000, ByteString.copyFrom(y), ssid(7)).isOk()).isTrue();
            assertThat(memRead(pa2 + 0x1000, 512)).as("no PASID: RID_PASID, the second-stage domain").isEqualTo(x);
            assertThat(memRead(pa1 + 0x1000, 512)).as("PASID 7: the first-stage domain").isEqualTo(y);

            long iotlbInv = commands("dmar0", 2);
            assertThat(unmap(second, IOVA, 16384)).isEqualTo(16384);
            assertThat(commands("dmar0", 2) - iotlbInv).as("one page-selective IOTLB invalidation").isEqualTo(1);
            DmaResult gone = dev.read(IOVA + 0x1000, 8);
            assertThat(gone.fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
            assertThat(gone.fault().getCode()).as("SM_SS_PERMISSION: neither R nor W").isEqualTo(0x79);
            assertThat(dev.read(IOVA + 0x10_0000, 8, ssid(7)).fault().getKind()).isEqualTo(FaultKind.TRANSLATION);

            EventsReply events = driver.events(EventsRequest.newBuilder().setIommu("dmar0").build());
            List<DriverEvent> records = events.getRecordsList();
            assertThat(records).hasSize(2);
            assertThat(records.get(0).getTypeName()).isEqualTo("SM_SS_PERMISSION");
            assertThat(records.get(0).getStreamId()).isEqualTo(rid);
            assertThat(records.get(0).getInputAddress()).isEqualTo(IOVA + 0x1000);
            assertThat(records.get(0).getRead()).isTrue();
            assertThat(records.get(0).hasSubstreamId()).isFalse();
            assertThat(records.get(1).getTypeName()).isEqualTo("SM_FS_NOT_PRESENT");
            assertThat(records.get(1).getSubstreamId()).as("the record carries the PASID").isEqualTo(7);
            InstanceStats s = telemetry.stats(StatsRequest.newBuilder().addIommus("dmar0").build()).getIommus(0);
            assertThat(s.getDriver().getOwned()).isTrue();
            assertThat(s.getDriver().getEventsReadList()).extracting(c -> c.getName())
                    .containsExactlyInAnyOrder("SM_SS_PERMISSION", "SM_FS_NOT_PRESENT");
            assertThat(s.getCachesList()).extracting(c -> c.getCache())
                    .containsExactly("iotlb", "context", "pasid", "walk");
        }
        assertStatus(() -> driver.createDomain(CreateDomainRequest.newBuilder().addIommus("dmar0")
                .setStage(DomainStage.STAGE_1).setGranule(4096).setNestParent(second).build()),
                Status.Code.FAILED_PRECONDITION, "the VT-d driver does not build nested domains");
        detachSubstream("dmar0", rid, 7);
        driver.detachDevice(DetachDeviceRequest.newBuilder().setIommu("dmar0").setStreamId(rid).build());
        driver.destroyDomain(DestroyDomainRequest.newBuilder().setDomain(first).build());
        driver.destroyDomain(DestroyDomainRequest.newBuilder().setDomain(second).build());
    }

    // ------------------------------------------------------------------ translation

    @Test
    void aStage1DomainTranslatesDmaIntoAnAllocatedBufferAndAStrictUnmapEndsIt() throws Exception {
        start();
        CreateDomainReply dom = create(DomainStage.STAGE_1, "smmu0");
        assertThat(dom.getDomain()).isPositive();
        assertThat(dom.getName()).isEqualTo("domain" + dom.getDomain());
        assertThat(dom.getOutputBits()).as("the default SMMU's OAS, 48").isEqualTo(48);
        long d = dom.getDomain();
        long pa = alloc(64 << 10);
        var ram = bus.machine.memory().regions().get(0);
        assertThat(pa).as("from the driver heap, the upper half of the first RAM region")
                .isGreaterThanOrEqualTo(ram.base() + ram.size() / 2).isLessThan(ram.base() + ram.size());
        map(d, IOVA, pa, 64 << 10);
        assertThat(attach(d, "smmu0", SID).getContextId()).as("the first ASID").isEqualTo(1);

        try (DmaSession nic = dma.attach("nic0", "smmu0", SID)) {
            byte[] data = random(8192, 1);
            DmaResult w = nic.write(IOVA + 0x1000, data);
            assertThat(w.isOk()).as("%s", w).isTrue();
            assertThat(memRead(pa + 0x1000, 8192)).as("the bytes landed at the buffer's pa").isEqualTo(data);
            assertThat(nic.read(IOVA + 0x1000, 8192).data().toByteArray()).isEqualTo(data);

            IovaToPhysReply hit = lookup(d, IOVA + 0x1234);
            assertThat(hit.getMapped()).isTrue();
            assertThat(hit.getPa()).isEqualTo(pa + 0x1234);

            long tlbis = commands("smmu0", TLBI_NH_VA);
            assertThat(unmap(d, IOVA, 64 << 10)).isEqualTo(64 << 10);
            assertThat(commands("smmu0", TLBI_NH_VA) - tlbis).as("one range TLBI_NH_VA for the 16 pages (RIL)")
                    .isEqualTo(1);

            DmaResult gone = nic.read(IOVA + 0x1000, 16);
            assertThat(gone.faulted()).isTrue();
            assertThat(gone.fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
            assertThat(gone.fault().getAddress()).isEqualTo(IOVA + 0x1000);
            IovaToPhysReply miss = lookup(d, IOVA + 0x1234);
            assertThat(miss.getMapped()).isFalse();
            assertThat(miss.getPa()).isZero();
        }
    }

    @Test
    void mapSgPutsAScatteredListBackToBack() throws Exception {
        start();
        long d = create(DomainStage.STAGE_1, "smmu0").getDomain();
        long a = alloc(4096);
        alloc(4096); // keeps the two entries apart
        long b = alloc(8192);
        assertThat(driver.mapSg(MapSgRequest.newBuilder().setDomain(d).setIova(IOVA).setProt(RW)
                .addEntries(SgEntry.newBuilder().setPa(a).setLength(4096))
                .addEntries(SgEntry.newBuilder().setPa(b).setLength(8192)).build()).getMapped()).isEqualTo(12288);
        attach(d, "smmu0", SID);
        assertThat(lookup(d, IOVA + 0x2010).getPa()).isEqualTo(b + 0x1010);

        try (DmaSession nic = dma.attach("nic0", "smmu0", SID)) {
            byte[] data = random(12288, 2);
            assertThat(nic.write(IOVA, data).isOk()).isTrue();
            byte[] first = new byte[4096];
            byte[] rest = new byte[8192];
            System.arraycopy(data, 0, first, 0, 4096);
            System.arraycopy(data, 4096, rest, 0, 8192);
            assertThat(memRead(a, 4096)).isEqualTo(first);
            assertThat(memRead(b, 8192)).isEqualTo(rest);
        }
    }

    @Test
    void aStage2DomainTranslatesWithAVmidAndInvalidatesByIpa() throws Exception {
        start();
        CreateDomainReply dom = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                .setStage(DomainStage.STAGE_2).setGranule(4096).setInputBits(40).build());
        long d = dom.getDomain();
        long pa = alloc(2 << 20);
        map(d, 0x20_0000L, pa, 2 << 20);
        assertThat(attach(d, "smmu0", SID).getContextId()).as("the first VMID").isEqualTo(1);
        try (DmaSession nic = dma.attach("nic0", "smmu0", SID)) {
            byte[] data = random(4096, 3);
            assertThat(nic.write(0x20_0000L + 0x1_2000, data).isOk()).isTrue();
            assertThat(memRead(pa + 0x1_2000, 4096)).isEqualTo(data);
            long s2 = commands("smmu0", TLBI_S2_IPA);
            assertThat(unmap(d, 0x20_0000L, 2 << 20)).isEqualTo(2 << 20);
            assertThat(commands("smmu0", TLBI_S2_IPA) - s2).isEqualTo(1);
            assertThat(nic.read(0x20_0000L, 4).fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
        }
    }

    @Test
    void aDomainSharedByTwoInstancesTranslatesOnBothAndIsInvalidatedOnBoth() throws Exception {
        start(twoSmmus());
        CreateDomainReply dom = create(DomainStage.STAGE_1, "smmu0", "smmu1");
        assertThat(dom.getOutputBits()).as("the smaller OAS of the two").isEqualTo(40);
        long d = dom.getDomain();
        long pa = alloc(16 << 10);
        map(d, IOVA, pa, 16 << 10);
        attach(d, "smmu0", SID);
        attach(d, "smmu1", SID + 1);
        try (DmaSession a = dma.attach("a", "smmu0", SID); DmaSession b = dma.attach("b", "smmu1", SID + 1)) {
            byte[] data = random(4096, 4);
            assertThat(a.write(IOVA, data).isOk()).isTrue();
            assertThat(b.read(IOVA, 4096).data().toByteArray()).as("smmu1 walks the same table").isEqualTo(data);

            long t0 = commands("smmu0", TLBI_NH_VA);
            long t1 = commands("smmu1", TLBI_NH_VA);
            unmap(d, IOVA, 16 << 10);
            assertThat(commands("smmu0", TLBI_NH_VA) - t0).isEqualTo(1);
            assertThat(commands("smmu1", TLBI_NH_VA) - t1).isEqualTo(1);
            assertThat(a.read(IOVA, 4).fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
            assertThat(b.read(IOVA, 4).fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
        }
        assertStatus(() -> attach(d, "dmar0", SID), Status.Code.INVALID_ARGUMENT, "not one of domain");
    }

    @Test
    void aLazyDomainUnmapsAndMapsTheSameIovaAgain() throws Exception {
        start();
        long d = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0").setStage(DomainStage.STAGE_1)
                .setGranule(4096).setFlush(FlushMode.LAZY).build()).getDomain();
        long first = alloc(4096);
        long second = alloc(4096);
        map(d, IOVA, first, 4096);
        attach(d, "smmu0", SID);
        try (DmaSession nic = dma.attach("nic0", "smmu0", SID)) {
            assertThat(nic.read(IOVA, 4).isOk()).isTrue();
            assertThat(unmap(d, IOVA, 4096)).isEqualTo(4096);
            map(d, IOVA, second, 4096); // reuses a queued iova: the queue is flushed first
            byte[] data = random(64, 5);
            assertThat(nic.write(IOVA, data).isOk()).isTrue();
            assertThat(memRead(second, 64)).as("the new mapping, never the stale one").isEqualTo(data);
        }
    }

    @Test
    void detachAbortsTheStreamAndDestroyNeedsEveryStreamDetached() throws Exception {
        start();
        long d = create(DomainStage.STAGE_1, "smmu0").getDomain();
        map(d, IOVA, alloc(4096), 4096);
        attach(d, "smmu0", SID);
        assertStatus(() -> driver.destroyDomain(DestroyDomainRequest.newBuilder().setDomain(d).build()),
                Status.Code.FAILED_PRECONDITION, "still has streams attached (smmu0 stream 32); DetachDevice them first");
        driver.detachDevice(DetachDeviceRequest.newBuilder().setIommu("smmu0").setStreamId(SID).build());
        try (DmaSession nic = dma.attach("nic0", "smmu0", SID)) {
            DmaResult r = nic.read(IOVA, 4);
            assertThat(r.faulted()).isTrue();
            assertThat(r.fault().getKind()).as("an aborting STE").isEqualTo(FaultKind.ABORTED);
        }
        assertStatus(() -> driver.detachDevice(DetachDeviceRequest.newBuilder().setIommu("smmu0").setStreamId(SID)
                .build()), Status.Code.NOT_FOUND, "stream_id 32 of smmu0 is not attached");
        driver.destroyDomain(DestroyDomainRequest.newBuilder().setDomain(d).build());
        assertStatus(() -> lookup(d, IOVA), Status.Code.NOT_FOUND, "domain " + d + " not found");
        long e = create(DomainStage.STAGE_1, "smmu0").getDomain();
        assertThat(e).as("ids are not reused").isNotEqualTo(d);
        assertThat(attach(e, "smmu0", SID).getContextId()).as("ASID 1 was freed with the last stream").isEqualTo(1);
    }

    @Test
    void attachingAStreamToAnotherDomainMovesIt() throws Exception {
        start();
        long d1 = create(DomainStage.STAGE_1, "smmu0").getDomain();
        long d2 = create(DomainStage.STAGE_1, "smmu0").getDomain();
        long pa1 = alloc(4096);
        long pa2 = alloc(4096);
        map(d1, IOVA, pa1, 4096);
        map(d2, IOVA, pa2, 4096);
        attach(d1, "smmu0", SID);
        attach(d2, "smmu0", SID);
        try (DmaSession nic = dma.attach("nic0", "smmu0", SID)) {
            byte[] data = random(32, 6);
            assertThat(nic.write(IOVA, data).isOk()).isTrue();
            assertThat(memRead(pa2, 32)).isEqualTo(data);
        }
        driver.destroyDomain(DestroyDomainRequest.newBuilder().setDomain(d1).build()); // no stream left on d1
    }

    @Test
    void concurrentMapsOfDisjointRangesAllLand() throws Exception {
        start();
        long d = create(DomainStage.STAGE_1, "smmu0").getDomain();
        int threads = 4;
        int perThread = 32;
        long pa = alloc((long) threads * perThread * 4096);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int base = t * perThread;
                done.add(pool.submit(() -> {
                    for (int i = base; i < base + perThread; i++) {
                        map(d, IOVA + i * 4096L, pa + i * 4096L, 4096);
                    }
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
        for (int i = 0; i < threads * perThread; i++) {
            assertThat(lookup(d, IOVA + i * 4096L + 8).getPa()).isEqualTo(pa + i * 4096L + 8);
        }
    }

    // ------------------------------------------------------------------ substreams

    private AttachDeviceReply attachSubstream(long domain, String iommu, int sid, int ssid) {
        return driver.attachDevice(AttachDeviceRequest.newBuilder().setDomain(domain).setIommu(iommu)
                .setStreamId(sid).setSubstreamId(ssid).build());
    }

    private void detachSubstream(String iommu, int sid, int ssid) {
        driver.detachDevice(DetachDeviceRequest.newBuilder().setIommu(iommu).setStreamId(sid).setSubstreamId(ssid)
                .build());
    }

    private static DmaOptions ssid(int ssid) {
        return DmaOptions.DEFAULT.withSubstream(ssid);
    }

    @Test
    void substreamsTranslateDmaTaggedWithTheirIdBesideTheWholeStream() throws Exception {
        start();
        long whole = create(DomainStage.STAGE_1, "smmu0").getDomain();
        long a = create(DomainStage.STAGE_1, "smmu0").getDomain();
        long b = create(DomainStage.STAGE_1, "smmu0").getDomain();
        long paWhole = alloc(16384);
        long paA = alloc(16384);
        long paB = alloc(16384);
        map(whole, IOVA, paWhole, 16384);
        map(a, IOVA, paA, 16384);
        map(b, IOVA, paB, 16384);
        assertThat(attach(whole, "smmu0", SID).getContextId()).isEqualTo(1);
        long cfgiCd = commands("smmu0", CFGI_CD);
        assertThat(attachSubstream(a, "smmu0", SID, 1).getContextId()).isEqualTo(2);
        assertThat(attachSubstream(b, "smmu0", SID, 0xF_FFFF).getContextId()).as("the largest of 20 bits")
                .isEqualTo(3);
        assertThat(commands("smmu0", CFGI_CD) - cfgiCd).as("the second substream's CD, in a table in use")
                .isEqualTo(1);

        try (DmaSession dev = dma.attach("dev", "smmu0", SID, true)) {
            byte[] x = random(512, 11);
            byte[] y = random(512, 12);
            byte[] z = random(512, 13);
            assertThat(dev.write(IOVA + 0x1000, ByteString.copyFrom(x), ssid(1)).isOk()).isTrue();
            assertThat(dev.write(IOVA + 0x1000, ByteString.copyFrom(y), ssid(0xF_FFFF)).isOk()).isTrue();
            assertThat(dev.write(IOVA + 0x1000, z).isOk()).as("no substream id: the whole stream").isTrue();
            assertThat(memRead(paA + 0x1000, 512)).isEqualTo(x);
            assertThat(memRead(paB + 0x1000, 512)).isEqualTo(y);
            assertThat(memRead(paWhole + 0x1000, 512)).isEqualTo(z);
            assertThat(dev.read(IOVA + 0x1000, 512, ssid(1)).data().toByteArray()).isEqualTo(x);

            assertThat(dev.read(IOVA + 0x10_0000, 8, ssid(1)).fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
            List<DriverEvent> records = driver.events(EventsRequest.newBuilder().setIommu("smmu0").build())
                    .getRecordsList();
            DriverEvent last = records.get(records.size() - 1);
            assertThat(last.getSubstreamId()).as("the record names the substream").isEqualTo(1);
            assertThat(last.getInputAddress()).isEqualTo(IOVA + 0x10_0000);

            assertStatus(() -> driver.destroyDomain(DestroyDomainRequest.newBuilder().setDomain(a).build()),
                    Status.Code.FAILED_PRECONDITION, "smmu0 stream 32 substream 1");
            detachSubstream("smmu0", SID, 1);
            DmaResult gone = dev.read(IOVA + 0x1000, 8, ssid(1));
            assertThat(gone.fault().getKind()).as("its CD is invalid (C_BAD_CD)")
                    .isEqualTo(FaultKind.BAD_CONFIGURATION);
            assertThat(dev.read(IOVA + 0x1000, 512).data().toByteArray()).isEqualTo(z);

            driver.detachDevice(DetachDeviceRequest.newBuilder().setIommu("smmu0").setStreamId(SID).build());
            assertThat(dev.read(IOVA, 8).fault().getKind()).as("only substreams left: F_STREAM_DISABLED")
                    .isEqualTo(FaultKind.ABORTED);
            assertThat(dev.read(IOVA + 0x1000, 512, ssid(0xF_FFFF)).data().toByteArray()).isEqualTo(y);

            assertThat(unmap(b, IOVA, 16384)).isEqualTo(16384);
            assertThat(dev.read(IOVA + 0x1000, 8, ssid(0xF_FFFF)).fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
            detachSubstream("smmu0", SID, 0xF_FFFF);
            assertThat(dev.read(IOVA, 8, ssid(0xF_FFFF)).fault().getKind()).as("nothing attached: the STE aborts")
                    .isEqualTo(FaultKind.ABORTED);
        }
        for (long d : new long[] {whole, a, b}) {
            driver.destroyDomain(DestroyDomainRequest.newBuilder().setDomain(d).build());
        }
        assertThat(bus.machine.driverHost().heap().allocatedPages("smmu-cd")).as("every CD table freed").isZero();
    }

    @Test
    void substreamRequestsAreRefusedNamingTheField() throws Exception {
        start(MachineConfig.defaults().withIommus(List.of(new IommuSpec("smmu0", IommuType.SMMUV3),
                new IommuSpec("plain", IommuType.SMMUV3, SmmuV3Config.builder().ssidBits(0).build()))));
        long d = create(DomainStage.STAGE_1, "smmu0", "plain").getDomain();
        long s2 = create(DomainStage.STAGE_2, "smmu0").getDomain();
        assertStatus(() -> attachSubstream(d, "smmu0", SID, 1 << 20), Status.Code.OUT_OF_RANGE,
                "substream_id 1048576 does not fit in the 20 substream id bits of smmu0");
        assertStatus(() -> attachSubstream(d, "plain", SID, 1), Status.Code.OUT_OF_RANGE,
                "substream_id 1 does not fit in the 0 substream id bits of plain");
        assertStatus(() -> attachSubstream(d, "smmu0", SID, 0), Status.Code.INVALID_ARGUMENT,
                "substream_id 0 is the stream's DMA without a substream id");
        assertStatus(() -> attachSubstream(s2, "smmu0", SID, 1), Status.Code.FAILED_PRECONDITION,
                "is STAGE_2; a substream takes a STAGE_1 domain");

        attachSubstream(d, "smmu0", SID, 1);
        assertStatus(() -> attachSubstream(d, "smmu0", SID, 1), Status.Code.ALREADY_EXISTS,
                "substream_id 1 of stream_id 32 of smmu0 is attached to domain " + d + " already");
        assertStatus(() -> attach(s2, "smmu0", SID), Status.Code.FAILED_PRECONDITION, "substreams [1] are attached");
        attach(s2, "smmu0", SID + 1);
        assertStatus(() -> attachSubstream(d, "smmu0", SID + 1, 1), Status.Code.FAILED_PRECONDITION,
                "attached to stage-2 domain");
        assertStatus(() -> detachSubstream("smmu0", SID, 2), Status.Code.NOT_FOUND,
                "substream_id 2 of stream_id 32 of smmu0 is not attached to any domain");
        assertStatus(() -> detachSubstream("smmu0", SID, 1 << 20), Status.Code.OUT_OF_RANGE, "substream_id 1048576");
        assertStatus(() -> driver.detachDevice(DetachDeviceRequest.newBuilder().setIommu("smmu0").setStreamId(SID)
                .build()), Status.Code.NOT_FOUND, "stream_id 32 of smmu0 is not attached");
        detachSubstream("smmu0", SID, 1);
        attach(s2, "smmu0", SID); // the stream has no substream any more
    }

    // ------------------------------------------------------------------ nesting

    private CreateDomainReply createNested(long parent, String... iommus) {
        return driver.createDomain(CreateDomainRequest.newBuilder().addAllIommus(List.of(iommus))
                .setStage(DomainStage.STAGE_1).setGranule(4096).setNestParent(parent).build());
    }

    @Test
    void aNestedDomainTranslatesDmaThroughBothStagesAndEachStagesUnmapEndsIt() throws Exception {
        start();
        long ipa = 0x2000_0000L; // below the driver heap, as the proto asks
        long parent = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                .setStage(DomainStage.STAGE_2).setGranule(4096).setInputBits(40).build()).getDomain();
        CreateDomainReply child = createNested(parent, "smmu0");
        assertThat(child.getOutputBits()).as("the parent's IPA width").isEqualTo(40);
        long c = child.getDomain();
        long pa = alloc(64 << 10);
        map(parent, ipa, pa, 64 << 10);
        map(c, IOVA, ipa, 64 << 10);
        assertThat(attach(c, "smmu0", SID).getContextId()).as("the nested domain's ASID").isEqualTo(1);

        try (DmaSession dev = dma.attach("dev", "smmu0", SID)) {
            byte[] data = random(4096, 21);
            DmaResult w = dev.write(IOVA + 0x3000, data);
            assertThat(w.isOk()).as("%s", w).isTrue();
            assertThat(memRead(pa + 0x3000, 4096)).as("iova -> IPA -> PA").isEqualTo(data);
            assertThat(dev.read(IOVA + 0x3000, 4096).data().toByteArray()).isEqualTo(data);

            map(c, IOVA + (1 << 20), ipa + (1 << 20), 4096); // an IPA the parent does not map
            DmaResult s2fault = dev.read(IOVA + (1 << 20) + 0x40, 8);
            assertThat(s2fault.fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
            List<DriverEvent> records = driver.events(EventsRequest.newBuilder().setIommu("smmu0").build())
                    .getRecordsList();
            DriverEvent e = records.get(records.size() - 1);
            assertThat(e.getStage2()).as("a stage-2 fault").isTrue();
            assertThat(e.getIpa()).as("the IPA reported").isEqualTo(ipa + (1 << 20));
            assertThat(e.getInputAddress()).isEqualTo(IOVA + (1 << 20) + 0x40);

            long va = commands("smmu0", TLBI_NH_VA);
            unmap(c, IOVA + 0x3000, 4096);
            assertThat(commands("smmu0", TLBI_NH_VA) - va).isEqualTo(1);
            assertThat(dev.read(IOVA + 0x3000, 8).fault().getKind()).as("stage 1 gone").isEqualTo(FaultKind.TRANSLATION);

            assertThat(dev.read(IOVA + 0x4000, 8).isOk()).as("a combined entry cached").isTrue();
            long s2 = commands("smmu0", TLBI_S2_IPA);
            long nhAll = commands("smmu0", TLBI_NH_ALL);
            unmap(parent, ipa, 64 << 10);
            assertThat(commands("smmu0", TLBI_S2_IPA) - s2).isEqualTo(1);
            assertThat(commands("smmu0", TLBI_NH_ALL) - nhAll).isEqualTo(1);
            assertThat(dev.read(IOVA + 0x4000, 8).fault().getKind()).as("stage 2 gone, no stale combined entry")
                    .isEqualTo(FaultKind.TRANSLATION);
        }
        assertStatus(() -> driver.destroyDomain(DestroyDomainRequest.newBuilder().setDomain(parent).build()),
                Status.Code.FAILED_PRECONDITION, "is the nest_parent of domains [" + c + "]");
        driver.detachDevice(DetachDeviceRequest.newBuilder().setIommu("smmu0").setStreamId(SID).build());
        driver.destroyDomain(DestroyDomainRequest.newBuilder().setDomain(c).build());
        assertThat(bus.machine.driverHost().heap().allocatedPages(NestedTables.TAG)).as("the block went back")
                .isZero();
        driver.destroyDomain(DestroyDomainRequest.newBuilder().setDomain(parent).build());
    }

    @Test
    void nestingRequestsAreRefusedNamingTheField() throws Exception {
        start(twoSmmus());
        long s1 = create(DomainStage.STAGE_1, "smmu0").getDomain();
        long parent = create(DomainStage.STAGE_2, "smmu0").getDomain();
        assertStatus(() -> driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                .setStage(DomainStage.STAGE_2).setGranule(4096).setNestParent(parent).build()),
                Status.Code.INVALID_ARGUMENT, "nest_parent applies to STAGE_1 domains");
        assertStatus(() -> createNested(99, "smmu0"), Status.Code.NOT_FOUND, "nest_parent: domain 99 not found");
        assertStatus(() -> createNested(s1, "smmu0"), Status.Code.FAILED_PRECONDITION,
                "is a STAGE_1 domain; a nest parent is a STAGE_2 domain");
        assertStatus(() -> createNested(parent, "smmu1"), Status.Code.INVALID_ARGUMENT,
                "iommus: smmu1 is not one of nest_parent " + parent + "'s instances [smmu0]");
        long narrow = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                .setStage(DomainStage.STAGE_2).setGranule(4096).setInputBits(32).build()).getDomain();
        assertStatus(() -> createNested(narrow, "smmu0"), Status.Code.OUT_OF_RANGE, "at IPA == PA");
        assertThat(bus.machine.driverHost().heap().allocatedPages(NestedTables.TAG)).isZero();

        long c = createNested(parent, "smmu0").getDomain();
        assertStatus(() -> attachSubstream(c, "smmu0", SID, 1), Status.Code.UNIMPLEMENTED,
                "substreams of nested domains are not modelled");
    }

    // ------------------------------------------------------------------ command errors, end to end

    private long mmio(String iommu, long offset, int width) {
        return cpu.mmioRead(MmioReadRequest.newBuilder().setIommu(iommu).setOffset(offset).setWidth(width).build())
                .getValue();
    }

    private long globalErrors(String iommu) {
        return telemetry.stats(StatsRequest.newBuilder().addIommus(iommu).build()).getIommus(0).getGlobalErrors();
    }

    /** What the driver's listener heard of command errors: {cerror, index, dw0, dw1} each. */
    private static List<long[]> commandErrorsOf(SmmuV3Driver smmu) {
        List<long[]> errors = new CopyOnWriteArrayList<>();
        smmu.addListener(new SmmuV3Listener() {
            @Override
            public void onCommandError(int cerror, int index, long dw0, long dw1) {
                errors.add(new long[] {cerror, index, dw0, dw1});
            }
        });
        return errors;
    }

    @Test
    void anIllegalCommandIsSkippedAndTheQueueGoesOnInvalidatingForDma() throws Exception {
        start();
        long d = create(DomainStage.STAGE_1, "smmu0").getDomain();
        long pa = alloc(64 << 10);
        map(d, IOVA, pa, 64 << 10);
        attach(d, "smmu0", SID);
        SmmuV3Driver smmu = ((SmmuDriverInstance) bus.machine.driverHost().owned("smmu0")).driver();
        List<long[]> heard = commandErrorsOf(smmu);
        try (DmaSession dev = dma.attach("dev", "smmu0", SID)) {
            byte[] data = random(8192, 31);
            assertThat(dev.write(IOVA, data).isOk()).isTrue();
            assertThat(dev.read(IOVA + 0x8000, 8).isOk()).as("the IOTLB holds the page to be unmapped").isTrue();
            long cmdqBase = mmio("smmu0", SmmuRegs.CMDQ_BASE, 8);
            int log2 = QueueBase.log2Size(cmdqBase);
            int slot = QueuePointer.index((int) mmio("smmu0", SmmuRegs.CMDQ_PROD, 4), log2);
            long syncs = commands("smmu0", CommandOp.CMD_SYNC);
            long gerrors = globalErrors("smmu0");

            smmu.submitRaw(0xFF, 0x1234); // no such opcode: CERROR_ILL, then the CMD_SYNC behind it

            assertThat(heard).as("reported to the listeners").singleElement().satisfies(e -> {
                assertThat(e[0]).isEqualTo(QueuePointer.CERROR_ILL);
                assertThat(e[1]).as("queue index").isEqualTo(slot);
                assertThat(e[2]).isEqualTo(0xFF);
                assertThat(e[3]).isEqualTo(0x1234);
            });
            EventsReply events = driver.events(EventsRequest.newBuilder().setIommu("smmu0").build());
            assertThat(events.getStats().getCommandErrors()).isEqualTo(1);
            assertThat(events.getStats().getGlobalErrors()).as("GERROR.CMDQ_ERR handled").isEqualTo(1);
            assertThat(globalErrors("smmu0") - gerrors).as("the device raised one GERROR").isEqualTo(1);
            long dw0 = ByteBuffer.wrap(memRead(QueueBase.address(cmdqBase) + (long) slot * Command.SIZE, 8))
                    .order(ByteOrder.LITTLE_ENDIAN).getLong();
            assertThat(Command.opcode(dw0)).as("the bad slot now holds a CMD_SYNC").isEqualTo(CommandOp.CMD_SYNC);
            assertThat(commands("smmu0", CommandOp.CMD_SYNC) - syncs).as("the replacement and the batch's own sync")
                    .isEqualTo(2);
            assertThat(Gerror.active((int) mmio("smmu0", SmmuRegs.GERROR, 4), (int) mmio("smmu0", SmmuRegs.GERRORN, 4)))
                    .as("CMDQ_ERR acknowledged in GERRORN").isZero();
            int prod = (int) mmio("smmu0", SmmuRegs.CMDQ_PROD, 4);
            int cons = (int) mmio("smmu0", SmmuRegs.CMDQ_CONS, 4);
            assertThat(QueuePointer.isEmpty(prod, cons, log2)).as("the queue resumed and drained").isTrue();

            // later commands: a strict unmap's TLBI and CMD_SYNC complete and take effect
            long tlbis = commands("smmu0", TLBI_NH_VA);
            assertThat(unmap(d, IOVA + 0x8000, 0x8000)).isEqualTo(0x8000);
            assertThat(commands("smmu0", TLBI_NH_VA) - tlbis).isEqualTo(1);
            DmaResult kept = dev.read(IOVA, 8192);
            assertThat(kept.isOk()).isTrue();
            assertThat(kept.data().toByteArray()).as("DMA through the mapping still works").isEqualTo(data);
            DmaResult gone = dev.read(IOVA + 0x8000, 8);
            assertThat(gone.fault().getKind()).as("the cached translation went with the TLBI")
                    .isEqualTo(FaultKind.TRANSLATION);
            assertThat(heard).as("no further error").hasSize(1);
        }
    }

    @Test
    void theCommandsBehindABadOneInTheSameBatchStillRun() throws Exception {
        start();
        long d = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0").setStage(DomainStage.STAGE_1)
                .setGranule(4096).setFlush(FlushMode.LAZY).setFlushTimeoutNs(0).build()).getDomain();
        long pa = alloc(16384);
        map(d, IOVA, pa, 16384);
        int asid = attach(d, "smmu0", SID).getContextId();
        SmmuV3Driver smmu = ((SmmuDriverInstance) bus.machine.driverHost().owned("smmu0")).driver();
        List<long[]> heard = commandErrorsOf(smmu);
        try (DmaSession dev = dma.attach("dev", "smmu0", SID)) {
            assertThat(dev.read(IOVA, 16).isOk()).isTrue();
            unmap(d, IOVA, 16384); // LAZY, no time bound: not invalidated yet
            assertThat(dev.read(IOVA, 16).isOk()).as("stale, as the flush queue holds the range").isTrue();
            long asidTlbis = commands("smmu0", CommandOp.TLBI_NH_ASID);

            // TLBI_EL2_ALL on an SMMU without IDR0.HYP is CERROR_ILL; the TLBI_NH_ASID behind it must still run
            smmu.submit(Command.cfgiSte(SID, true), Command.tlbiEl2All(), Command.tlbiNhAsid(0, asid));

            assertThat(heard).singleElement().satisfies(e -> {
                assertThat(e[0]).isEqualTo(QueuePointer.CERROR_ILL);
                assertThat(Command.opcode(e[2])).isEqualTo(CommandOp.TLBI_EL2_ALL);
            });
            assertThat(commands("smmu0", CommandOp.TLBI_NH_ASID) - asidTlbis).isEqualTo(1);
            assertThat(dev.read(IOVA, 16).fault().getKind()).as("the TLBI after the bad command took effect")
                    .isEqualTo(FaultKind.TRANSLATION);
            map(d, IOVA, pa, 4096); // reuses the queued iova: the flush queue is flushed through the same queue
            assertThat(dev.read(IOVA, 16).isOk()).isTrue();
        }
        assertThat(driver.events(EventsRequest.newBuilder().setIommu("smmu0").build()).getStats().getCommandErrors())
                .isEqualTo(1);
    }

    // ------------------------------------------------------------------ ownership and refusals

    @Test
    void anInstanceTakenOverRefusesMmioWritesButStillAnswersReads() throws Exception {
        start();
        MmioWriteRequest write = MmioWriteRequest.newBuilder().setIommu("smmu0").setOffset(0x50).setWidth(4)
                .setValue(0).build(); // IRQ_CTRL
        cpu.mmioWrite(write); // not owned yet: the client may program it
        create(DomainStage.STAGE_1, "smmu0");
        assertStatus(() -> cpu.mmioWrite(write), Status.Code.FAILED_PRECONDITION,
                "iommu smmu0 belongs to the Driver service");
        long cr0 = cpu.mmioRead(MmioReadRequest.newBuilder().setIommu("smmu0").setOffset(0x20).setWidth(4).build())
                .getValue();
        assertThat(cr0 & 1).as("CR0.SMMUEN, set by the driver's init").isEqualTo(1);
    }

    @Test
    void badCreateRequestsAreRefusedNamingTheField() throws Exception {
        start();
        assertStatus(() -> driver.createDomain(CreateDomainRequest.newBuilder().setStage(DomainStage.STAGE_1)
                .setGranule(4096).build()), Status.Code.INVALID_ARGUMENT, "iommus must name at least one instance");
        assertStatus(() -> driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0").setStage(
                DomainStage.STAGE_1).setGranule(8192).build()), Status.Code.INVALID_ARGUMENT,
                "granule must be 4096, 16384 or 65536 bytes, got 8192");
        assertStatus(() -> driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0").setGranule(4096)
                .build()), Status.Code.INVALID_ARGUMENT, "stage must be STAGE_1 or STAGE_2");
        assertStatus(() -> create(DomainStage.STAGE_1, "smmu0", "dmar0"), Status.Code.INVALID_ARGUMENT,
                "smmu0 is SMMUV3 and dmar0 is VTD: a domain's page table has one format");
        assertStatus(() -> create(DomainStage.STAGE_1, "smmu7"), Status.Code.NOT_FOUND, "iommu 'smmu7' not found");
        assertStatus(() -> create(DomainStage.STAGE_1, "smmu0", "smmu0"), Status.Code.INVALID_ARGUMENT,
                "names smmu0 twice");
        assertStatus(() -> driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0").setStage(
                DomainStage.STAGE_1).setGranule(4096).setInputBits(60).build()), Status.Code.OUT_OF_RANGE,
                "input_bits");
        assertStatus(() -> driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0").setStage(
                DomainStage.STAGE_1).setGranule(4096).setOutputBits(52).build()), Status.Code.OUT_OF_RANGE,
                "output_bits 52 exceeds the OAS");
        assertThat(bus.machine.driverHost().owns("dmar0")).as("refused before any instance was taken over").isFalse();
        // what a VT-d unit can hold is known once the driver has probed it
        assertStatus(() -> driver.createDomain(CreateDomainRequest.newBuilder().addIommus("dmar0").setStage(
                DomainStage.STAGE_2).setGranule(65536).build()), Status.Code.FAILED_PRECONDITION,
                "VT-d page tables have 4 KiB pages");
        assertStatus(() -> driver.createDomain(CreateDomainRequest.newBuilder().addIommus("dmar0").setStage(
                DomainStage.STAGE_2).setGranule(4096).setInputBits(40).build()), Status.Code.OUT_OF_RANGE,
                "VT-d tables take 39, 48 or 57 bits");
    }

    @Test
    void requestsOnDomainsAndStreamsAreRefusedNamingTheField() throws Exception {
        start();
        assertStatus(() -> map(99, IOVA, 0x1_0000_0000L, 4096), Status.Code.NOT_FOUND, "domain 99 not found");
        assertStatus(() -> unmap(99, IOVA, 4096), Status.Code.NOT_FOUND, "domain 99 not found");
        assertStatus(() -> attach(99, "smmu0", SID), Status.Code.NOT_FOUND, "domain 99 not found");
        assertStatus(() -> driver.destroyDomain(DestroyDomainRequest.newBuilder().setDomain(99).build()),
                Status.Code.NOT_FOUND, "domain 99 not found");

        long d = create(DomainStage.STAGE_1, "smmu0").getDomain();
        long pa = alloc(8192);
        map(d, IOVA, pa, 8192);
        assertStatus(() -> map(d, IOVA + 4096, pa, 4096), Status.Code.ALREADY_EXISTS, "Map");
        assertStatus(() -> map(d, IOVA + 0x10, pa, 4096), Status.Code.INVALID_ARGUMENT, "Map");
        assertStatus(() -> map(d, IOVA, pa, 0), Status.Code.INVALID_ARGUMENT, "size must not be 0");
        assertStatus(() -> map(d, 1L << 50, pa, 4096), Status.Code.OUT_OF_RANGE, "Map");
        assertStatus(() -> driver.map(MapRequest.newBuilder().setDomain(d).setIova(IOVA + 0x10_0000).setPa(pa)
                .setSize(4096).build()), Status.Code.INVALID_ARGUMENT, "prot must allow read or write");
        assertStatus(() -> unmap(d, IOVA, 0), Status.Code.INVALID_ARGUMENT, "size must not be 0");
        assertStatus(() -> driver.mapSg(MapSgRequest.newBuilder().setDomain(d).setIova(IOVA).setProt(RW).build()),
                Status.Code.INVALID_ARGUMENT, "entries must hold at least one entry");

        attach(d, "smmu0", SID);
        assertStatus(() -> attach(d, "smmu0", SID), Status.Code.ALREADY_EXISTS,
                "stream_id 32 of smmu0 is attached to domain " + d + " already");
        assertStatus(() -> attach(d, "smmu0", 1 << 20), Status.Code.OUT_OF_RANGE, "stream_id 1048576");
        assertStatus(() -> attach(d, "", SID), Status.Code.INVALID_ARGUMENT, "iommu is required");
    }

    @Test
    void buffersComeFromTheDriverHeapAndRunOut() throws Exception {
        start(MachineConfig.defaults().withRam(List.of(new RamRegion(0x8000_0000L, 64L << 20))));
        AllocBufferReply r = driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(5000).setAlignment(16384)
                .build());
        assertThat(r.getSize()).isEqualTo(16384);
        assertThat(r.getPa() % 16384).isZero();
        assertThat(r.getPa()).isGreaterThanOrEqualTo(0x8000_0000L + (32L << 20));
        assertStatus(() -> driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(0).build()),
                Status.Code.INVALID_ARGUMENT, "size must not be 0");
        assertStatus(() -> driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(1).setAlignment(3).build()),
                Status.Code.INVALID_ARGUMENT, "alignment 3 is not a power of two");
        assertStatus(() -> driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(1L << 40).build()),
                Status.Code.OUT_OF_RANGE, "exceeds the largest buffer of the driver heap");

        List<Long> held = new ArrayList<>();
        int refused = 0;
        for (int i = 0; i < 8 && refused == 0; i++) { // 32 MiB of heap: at most 4 blocks of 8 MiB fit
            try {
                held.add(alloc(8L << 20));
            } catch (io.grpc.StatusRuntimeException e) {
                assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
                assertThat(e.getStatus().getDescription()).contains("the driver heap");
                refused++;
            }
        }
        assertThat(refused).isEqualTo(1);
        assertThat(held).as("three 8 MiB blocks beside the 16 KiB buffer").hasSize(3);
        driver.freeBuffer(FreeBufferRequest.newBuilder().setPa(held.get(0)).build());
        assertThat(alloc(8L << 20)).as("a freed buffer is free again").isEqualTo(held.get(0));
        assertStatus(() -> driver.freeBuffer(FreeBufferRequest.newBuilder().setPa(0x8000_0000L).build()),
                Status.Code.NOT_FOUND, "is not a buffer from AllocBuffer");
        assertThat(ByteString.copyFrom(memRead(r.getPa(), 16))).as("buffers are zero-filled")
                .isEqualTo(ByteString.copyFrom(new byte[16]));
    }

    @Test
    void aLazyDomainWithoutTimeBoundKeepsAStaleTranslationUntilFlush() throws Exception {
        start();
        long d = driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0").setStage(DomainStage.STAGE_1)
                .setGranule(4096).setFlush(FlushMode.LAZY).setFlushTimeoutNs(0).build()).getDomain();
        long pa = alloc(4096);
        map(d, IOVA, pa, 4096);
        attach(d, "smmu0", SID);
        try (DmaSession dev = dma.attach("dev", "smmu0", SID)) {
            byte[] data = random(64, 7);
            assertThat(dev.write(IOVA, data).isOk()).as("fills the IOTLB").isTrue();
            assertThat(unmap(d, IOVA, 4096)).isEqualTo(4096);
            assertThat(lookup(d, IOVA).getMapped()).as("gone from the page table").isFalse();
            Thread.sleep(30); // three times Linux's 10 ms bound: nothing flushes by time
            DmaResult stale = dev.read(IOVA, 64);
            assertThat(stale.isOk()).as("the unmapped page is still reachable through the IOTLB").isTrue();
            assertThat(stale.data().toByteArray()).isEqualTo(data);
            assertThat(driver.flush(FlushRequest.newBuilder().setDomain(d).build()).getFlushed()).isTrue();
            DmaResult after = dev.read(IOVA, 64);
            assertThat(after.faulted()).isTrue();
            assertThat(after.fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
            assertThat(driver.flush(FlushRequest.newBuilder().setDomain(d).build()).getFlushed())
                    .as("nothing left to flush").isFalse();
        }
    }

    @Test
    void flushTimeoutIsForLazyDomainsAndFlushNeedsAKnownDomain() throws Exception {
        start();
        assertStatus(() -> driver.createDomain(CreateDomainRequest.newBuilder().addIommus("smmu0")
                .setStage(DomainStage.STAGE_1).setGranule(4096).setFlushTimeoutNs(1_000_000).build()),
                Status.Code.INVALID_ARGUMENT, "flush_timeout_ns applies to LAZY domains only");
        assertStatus(() -> driver.flush(FlushRequest.newBuilder().setDomain(99).build()), Status.Code.NOT_FOUND,
                "domain 99 not found");
        long strict = create(DomainStage.STAGE_1, "smmu0").getDomain();
        assertThat(driver.flush(FlushRequest.newBuilder().setDomain(strict).build()).getFlushed()).isFalse();
    }

    @Test
    void eventsReportWhatTheDriverReadByTypeAndAsRecords() throws Exception {
        start();
        assertStatus(() -> driver.events(EventsRequest.newBuilder().setIommu("nope").build()),
                Status.Code.NOT_FOUND, "nope");
        EventsReply before = driver.events(EventsRequest.newBuilder().setIommu("smmu0").build());
        assertThat(before.getStats().getOwned()).as("not taken over yet").isFalse();
        assertThat(telemetry.stats(StatsRequest.newBuilder().addIommus("smmu0").build()).getIommus(0).hasDriver())
                .as("Telemetry has no driver section for an instance the driver does not own").isFalse();
        assertThat(before.getStats().getEventsReadList()).isEmpty();
        long d = create(DomainStage.STAGE_1, "smmu0").getDomain();
        long pa = alloc(4096);
        map(d, IOVA, pa, 4096);
        attach(d, "smmu0", SID);
        try (DmaSession dev = dma.attach("dev", "smmu0", SID)) {
            assertThat(dev.read(IOVA + 0x1000, 8).faulted()).isTrue();
            assertThat(dev.write(IOVA + 0x2008, new byte[8]).faulted()).isTrue();
        }
        EventsReply r = driver.events(EventsRequest.newBuilder().setIommu("smmu0").build());
        assertThat(r.getStats().getOwned()).isTrue();
        assertThat(r.getStats().getEventsReadList()).singleElement().satisfies(c -> {
            assertThat(c.getName()).isEqualTo("F_TRANSLATION");
            assertThat(c.getCode()).isEqualTo(0x10);
            assertThat(c.getCount()).isEqualTo(2);
        });
        assertThat(r.getRecordsList()).hasSize(2);
        assertThat(r.getRecords(0).getSequence()).isEqualTo(1);
        assertThat(r.getRecords(0).getStreamId()).isEqualTo(SID);
        assertThat(r.getRecords(0).getInputAddress()).isEqualTo(IOVA + 0x1000);
        assertThat(r.getRecords(0).getRead()).isTrue();
        assertThat(r.getRecords(0).hasSubstreamId()).isFalse();
        assertThat(r.getRecords(1).getInputAddress()).isEqualTo(IOVA + 0x2008);
        assertThat(r.getRecords(1).getRead()).isFalse();
        assertThat(r.getStats().getEventOverflows()).isZero();
        EventsReply later = driver.events(EventsRequest.newBuilder().setIommu("smmu0").setAfterSequence(2).build());
        assertThat(later.getRecordsList()).as("paged past both").isEmpty();
        assertThat(later.getStats().getEventsRead(0).getCount()).as("counts stay cumulative").isEqualTo(2);
        InstanceStats t = telemetry.stats(StatsRequest.newBuilder().addIommus("smmu0").build()).getIommus(0);
        assertThat(t.getDriver()).as("Telemetry reports what the driver read").isEqualTo(later.getStats());
        assertThat(t.getEventsList()).as("and, apart, what the device wrote").singleElement()
                .satisfies(c -> assertThat(c.getCount()).isEqualTo(2));
    }
}
