package org.iommuemu.device.masters;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.masters.BlockDevice;
import org.iommuemu.dma.masters.BlockDevice.Segment;
import org.iommuemu.dma.masters.BlockRequest;
import org.iommuemu.dma.masters.CompletionCode;
import org.iommuemu.proto.v1.FaultKind;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class BlockDeviceTest {
    private static final int SID = 0x13;
    private MasterBus bus;
    private DmaSession session;

    @BeforeEach
    void setUp() throws Exception {
        bus = new MasterBus();
        session = bus.client.attach("blk0", MasterBus.SMMU, SID);
    }

    @AfterEach
    void tearDown() throws Exception {
        bus.close();
    }

    private static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void writesAndReadsScatterGatherListsInBypass() {
        long ram = bus.ramBase();
        BlockDevice disk = new BlockDevice(session, 1L << 30, 512, 1000, DmaOptions.DEFAULT); // odd chunking
        byte[] data = random(4096, 1);
        bus.write(ram + 0x1_0000, Arrays.copyOfRange(data, 0, 1000));
        bus.write(ram + 0x2_0000 + 7, Arrays.copyOfRange(data, 1000, 4096));
        List<Segment> sg = List.of(new Segment(ram + 0x1_0000, 1000), new Segment(ram + 0x2_0000 + 7, 3096));

        BlockDevice.Result w = disk.write(1_000_000, sg);

        assertThat(w).isEqualTo(new BlockDevice.Result(CompletionCode.OK, 4096, -1, null));
        assertThat(disk.readImage(1_000_000L * 512, 4096)).isEqualTo(data);
        assertThat(disk.readImage(0, 16)).as("unwritten sectors read as zeros").isEqualTo(new byte[16]);

        List<Segment> back = List.of(new Segment(ram + 0x3_0000, 2048), new Segment(ram + 0x5_0000, 2048));
        BlockDevice.Result r = disk.read(1_000_000, back);
        assertThat(r.isOk()).isTrue();
        assertThat(bus.read(ram + 0x3_0000, 2048)).isEqualTo(Arrays.copyOf(data, 2048));
        assertThat(bus.read(ram + 0x5_0000, 2048)).isEqualTo(Arrays.copyOfRange(data, 2048, 4096));
        assertThat(disk.counters()).isEqualTo(new BlockDevice.Counters(1, 1, 4096, 4096, 0));
    }

    @Test
    void aSegmentOutsideRamStopsAWriteWithTheBytesBeforeIt() {
        long ram = bus.ramBase();
        BlockDevice disk = new BlockDevice(session, 1 << 20);
        byte[] data = random(1024, 2);
        bus.write(ram + 0x1_0000, data);
        long hole = ram - 512; // the last 512 bytes below RAM
        List<Segment> sg = List.of(new Segment(ram + 0x1_0000, 1024), new Segment(hole, 512),
                new Segment(ram + 0x2_0000, 512));

        BlockDevice.Result w = disk.write(8, sg);

        assertThat(w.code()).isEqualTo(CompletionCode.READ_FAULT);
        assertThat(w.bytesDone()).isEqualTo(1024);
        assertThat(w.faultSegment()).isEqualTo(1);
        assertThat(w.fault().getKind()).isEqualTo(FaultKind.EXTERNAL_ABORT);
        assertThat(disk.readImage(8 * 512, 1024)).isEqualTo(data);
        assertThat(disk.counters().faults()).isEqualTo(1);
    }

    @Test
    void throughStage1AnUnmappedPageInASegmentIsReportedWithItsSegment() {
        Stage1 smmu = bus.stage1().addStream(SID);
        long pa = smmu.alloc(8192);
        smmu.map(0x100_0000L, pa, 4096).map(0x200_0000L, pa + 4096, 4096); // 0x200_1000 is not mapped
        BlockDevice disk = new BlockDevice(session, 1 << 20);
        byte[] image = random(8192, 3);
        disk.writeImage(0, image);
        List<Segment> sg = List.of(new Segment(0x100_0000L, 4096), new Segment(0x200_0800L, 4096));

        BlockDevice.Result r = disk.read(0, sg);

        assertThat(r.code()).isEqualTo(CompletionCode.WRITE_FAULT);
        assertThat(r.faultSegment()).isEqualTo(1);
        assertThat(r.bytesDone()).isEqualTo(4096 + 2048);
        assertThat(r.fault().getKind()).isEqualTo(FaultKind.TRANSLATION);
        assertThat(r.fault().getAddress()).isEqualTo(0x200_1000L);
        assertThat(bus.read(pa, 4096)).isEqualTo(Arrays.copyOf(image, 4096));
        assertThat(bus.read(pa + 4096 + 2048, 2048)).isEqualTo(Arrays.copyOfRange(image, 4096, 6144));
    }

    @Test
    void servesARequestPutInMemoryAndWritesItsStatusBack() {
        Stage1 smmu = bus.stage1().addStream(SID);
        long reqPa = smmu.alloc(4096);
        long bufPa = smmu.alloc(8192);
        smmu.map(0x10_0000L, reqPa, 4096).map(0x20_0000L, bufPa, 8192);
        BlockDevice disk = new BlockDevice(session, 1 << 20, 4096, 65536, DmaOptions.DEFAULT);
        byte[] data = random(8192, 4);
        bus.write(bufPa, data);
        BlockRequest req = new BlockRequest(BlockDevice.Op.WRITE, 3, List.of(new Segment(0x20_1000L, 4096),
                new Segment(0x20_0000L, 4096)));
        bus.write(reqPa, req.encode());

        BlockDevice.Result w = disk.process(0x10_0000L);

        assertThat(w.isOk()).isTrue();
        assertThat(BlockRequest.Status.decode(bus.read64(reqPa + BlockRequest.STATUS)))
                .isEqualTo(new BlockRequest.Status(CompletionCode.OK, FaultKind.FAULT_KIND_UNSPECIFIED, -1, 8192));
        assertThat(disk.readImage(3 * 4096, 4096)).isEqualTo(Arrays.copyOfRange(data, 4096, 8192));
        assertThat(disk.readImage(4 * 4096, 4096)).isEqualTo(Arrays.copyOf(data, 4096));

        // a request naming an unmapped segment: the fault is written back
        bus.write(reqPa + 0x100, new BlockRequest(BlockDevice.Op.READ, 3,
                List.of(new Segment(0x20_0000L, 4096), new Segment(0x90_0000L, 4096))).encode());
        BlockDevice.Result r = disk.process(0x10_0100L);
        assertThat(r.code()).isEqualTo(CompletionCode.WRITE_FAULT);
        assertThat(BlockRequest.Status.decode(bus.read64(reqPa + 0x110)))
                .isEqualTo(new BlockRequest.Status(CompletionCode.WRITE_FAULT, FaultKind.TRANSLATION, 1, 4096));

        // OP 3 does not exist
        bus.write64(reqPa + 0x200, 3 | (1L << 32), 0, 0, 0, 0x20_0000L, 4096);
        assertThat(disk.process(0x10_0200L).code()).isEqualTo(CompletionCode.BAD_DESCRIPTOR);
        assertThat(BlockRequest.Status.decode(bus.read64(reqPa + 0x210)).code())
                .isEqualTo(CompletionCode.BAD_DESCRIPTOR);
    }

    @Test
    void badRequestsAreNamed() {
        long ram = bus.ramBase();
        BlockDevice disk = new BlockDevice(session, 1 << 20);
        assertThatThrownBy(() -> disk.read(0, List.of(new Segment(ram, 500))))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("total 500 bytes");
        assertThatThrownBy(() -> disk.read(2047, List.of(new Segment(ram, 1024))))
                .hasMessageContaining("sector 2047 + 2 sectors is outside the disk's 2048 sectors");
        assertThatThrownBy(() -> disk.write(0, List.of())).hasMessageContaining("segments is empty");
        assertThatThrownBy(() -> new Segment(ram, 0)).hasMessageContaining("segment length 0");
        assertThatThrownBy(() -> new BlockDevice(session, 1000)).hasMessageContaining("capacity 1000");
        assertThatThrownBy(() -> new BlockDevice(session, 1 << 20, 768, 4096, DmaOptions.DEFAULT))
                .hasMessageContaining("sectorSize 768");
    }
}
