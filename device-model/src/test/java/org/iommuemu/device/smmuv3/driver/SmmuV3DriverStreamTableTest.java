package org.iommuemu.device.smmuv3.driver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverException;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.L1StreamDescriptor;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.core.smmuv3.StreamTableBase;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.junit.jupiter.api.Test;

/** STE installation against the real device: 2-level tables on demand, safe update order, stage-1 attach. */
class SmmuV3DriverStreamTableTest {
    private static final long IOVA = 0x4000_0000L;

    @Test
    void levelTwoTablesAreAllocatedWhenAStreamFirstGetsAnSte() {
        DriverRig rig = DriverRig.started();
        SmmuV3Driver.Layout layout = rig.driver.layout();
        assertThat(rig.driver.stats().l2StreamTables()).isZero();
        assertThat(rig.driver.readSte(0x1234)).isNull();

        rig.driver.bypass(0x1234);

        assertThat(rig.driver.stats().l2StreamTables()).isEqualTo(1);
        L1StreamDescriptor l1 = L1StreamDescriptor.decode(rig.r64(layout.streamTableBase() + 0x12 * 8));
        assertThat(l1.span()).as("SPLIT + 1").isEqualTo(9);
        assertThat(l1.l2Ptr()).isNotZero();
        assertThat(rig.driver.readSte(0x1234)).isEqualTo(Ste.bypass());
        assertThat(rig.driver.readSte(0x1200)).as("the rest of the range starts as abort").isEqualTo(Ste.abort());
        Translation t = rig.translate(0x1234, 0xABC_D000L, Access.WRITE);
        assertThat(t.isOk()).isTrue();
        assertThat(t.physicalAddress()).isEqualTo(0xABC_D000L);
        assertThat(rig.translate(0x1200, 0x1000, 0).faultType()).isEqualTo(FaultType.ABORTED);

        rig.driver.abort(0x12FF);
        assertThat(rig.driver.stats().l2StreamTables()).as("same range, same table").isEqualTo(1);
        rig.driver.bypass(0x2000);
        assertThat(rig.driver.stats().l2StreamTables()).isEqualTo(2);
        assertThat(rig.alloc.allocatedPages("strtab-l2")).as("16 KB each").isEqualTo(8);
        assertThat(rig.translate(0x5600, 0x1000, 0).isOk()).as("no level-2 table: no stream").isFalse();
    }

    @Test
    void streamIdsBeyondTheTableAreRefused() {
        DriverRig linear = DriverRig.started(SmmuV3Config.builder().sidBits(8).build());
        assertThatThrownBy(() -> linear.driver.bypass(256))
                .isInstanceOfSatisfying(SmmuV3DriverException.class,
                        e -> assertThat(e.kind()).isEqualTo(SmmuV3DriverException.Kind.BAD_ARGUMENT))
                .hasMessage("StreamID 256 is outside the stream table (8 StreamID bits)");

        DriverRig capped = DriverRig.started(SmmuV3Config.defaults(), SmmuV3DriverOptions.defaults().withMaxSidBits(12));
        assertThat(StreamTableBase.log2Size((int) capped.read32(SmmuRegs.STRTAB_BASE_CFG))).isEqualTo(12);
        capped.driver.bypass(0xFFF);
        assertThatThrownBy(() -> capped.driver.bypass(0x1000)).hasMessageContaining("outside the stream table");
    }

    @Test
    void aStage1StreamAttachedByHandTranslates() {
        DriverRig rig = DriverRig.started();
        long pa = rig.alloc.allocPages(0, "dma");
        rig.stage1Stream(0x42, 5, IOVA, pa);

        assertThat(rig.driver.readSte(0x42).config()).isEqualTo(Ste.CONFIG_S1);
        Translation t = rig.translate(0x42, IOVA + 0x123, Access.WRITE);
        assertThat(t.isOk()).as("%s", t).isTrue();
        assertThat(t.physicalAddress()).isEqualTo(pa + 0x123);
    }

    /** A rig whose driver writes memory through a recorder; the device reads the same RAM. */
    private static RecordingMemory recordingRig(DriverRig rig) {
        RecordingMemory recorder = new RecordingMemory(rig.ram);
        rig.start(new ForwardingHost(rig.host) {
            @Override
            public PhysicalMemory memory() {
                return recorder;
            }
        }, SmmuV3DriverOptions.defaults());
        return recorder;
    }

    private static long steAddress(DriverRig rig, int sid) {
        long l1 = L1StreamDescriptor.decode(rig.r64(rig.driver.layout().streamTableBase() + (sid >>> 8) * 8L)).l2Ptr();
        return l1 + (sid & 0xFF) * (long) Ste.SIZE;
    }

    @Test
    void changingALiveEntryGoesThroughInvalidAndWritesWordZeroLast() {
        DriverRig rig = new DriverRig(SmmuV3Config.defaults());
        RecordingMemory recorder = recordingRig(rig);
        long paA = rig.alloc.allocPages(0, "dma");
        long paB = rig.alloc.allocPages(0, "dma");
        rig.stage1Stream(9, 1, IOVA, paA);
        assertThat(rig.translate(9, IOVA, 0).physicalAddress()).isEqualTo(paA);
        long at = steAddress(rig, 9);
        long cfgiBefore = rig.executed(CommandOp.CFGI_STE);

        recorder.watch(at, Ste.SIZE);
        rig.stage1Stream(9, 2, IOVA, paB); // a new CD table: word 0 (S1ContextPtr) changes, and so does nothing else

        assertThat(recorder.writes).as("only word 0 differs: one atomic store").hasSize(1);
        assertThat(rig.executed(CommandOp.CFGI_STE) - cfgiBefore).isEqualTo(1);
        assertThat(rig.translate(9, IOVA, 0).physicalAddress()).as("new configuration in force").isEqualTo(paB);

        recorder.watch(at, Ste.SIZE);
        cfgiBefore = rig.executed(CommandOp.CFGI_STE);
        Ste s2 = Ste.stage2(3, 24, 1, 0, 5, rig.alloc.allocPages(1, "s2"));
        rig.driver.writeSte(9, s2);

        List<long[]> w = recorder.writes;
        assertThat(w.get(0)[0]).isEqualTo(at);
        assertThat(Ste.V.isSet(w.get(0)[1])).as("first: the entry made invalid").isFalse();
        assertThat(w.subList(1, w.size() - 1)).extracting(x -> x[0]).doesNotContain(at);
        assertThat(w.get(w.size() - 1)).as("last: word 0 of the new entry").containsExactly(at, s2.dw0());
        assertThat(rig.executed(CommandOp.CFGI_STE) - cfgiBefore).as("after the break and after the install")
                .isEqualTo(2);
        assertThat(rig.driver.readSte(9)).isEqualTo(s2);
    }

    @Test
    void anAbortingEntryIsReplacedWithoutTheInvalidStep() {
        DriverRig rig = new DriverRig(SmmuV3Config.defaults());
        RecordingMemory recorder = recordingRig(rig);
        rig.driver.abort(0x30); // allocates the level-2 table; every entry starts as abort
        long at = steAddress(rig, 0x31);
        long cfgiBefore = rig.executed(CommandOp.CFGI_STE);

        recorder.watch(at, Ste.SIZE);
        Ste s1 = Ste.stage1(rig.alloc.allocPages(0, "cd"), Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0);
        rig.driver.writeSte(0x31, s1);

        List<long[]> w = recorder.writes;
        assertThat(w).extracting(x -> x[0]).filteredOn(a -> a == at).hasSize(1);
        assertThat(w.get(w.size() - 1)).as("word 0 last").containsExactly(at, s1.dw0());
        assertThat(rig.executed(CommandOp.CFGI_STE) - cfgiBefore).isEqualTo(1);
    }

    @Test
    void changingOnlyWordOneIsOneStoreWithoutTheInvalidStep() {
        DriverRig rig = new DriverRig(SmmuV3Config.defaults());
        RecordingMemory recorder = recordingRig(rig);
        long cds = rig.alloc.allocPages(0, "cd");
        Ste withSsid0 = Ste.stage1(cds, Ste.S1FMT_LINEAR, 4, Ste.S1DSS_SSID0);
        rig.driver.writeSte(0x44, withSsid0);
        long at = steAddress(rig, 0x44);
        long cfgiBefore = rig.executed(CommandOp.CFGI_STE);

        recorder.watch(at, Ste.SIZE);
        Ste terminate = withSsid0.toBuilder().s1Dss(Ste.S1DSS_TERMINATE).build();
        rig.driver.writeSte(0x44, terminate); // S1DSS lives in word 1

        assertThat(recorder.writes).as("one single-copy-atomic store of word 1").hasSize(1);
        assertThat(recorder.writes.get(0)).containsExactly(at + 8, terminate.dw1());
        assertThat(rig.executed(CommandOp.CFGI_STE) - cfgiBefore).isEqualTo(1);
        assertThat(rig.driver.readSte(0x44)).isEqualTo(terminate);
    }
}
