package org.iommuemu.device.smmuv3.driver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverException;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.core.smmuv3.StreamTableBase;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.junit.jupiter.api.Test;

/** Init brings the real device up in Linux's order, and fails clearly when the hardware does not answer. */
class SmmuV3DriverInitTest {
    private static final long ENABLED = 1 << SmmuRegs.CR0_CMDQEN | 1 << SmmuRegs.CR0_EVENTQEN | 1 << SmmuRegs.CR0_SMMUEN;

    @Test
    void initEnablesQueuesAndTranslation() {
        DriverRig rig = DriverRig.started();
        SmmuV3Driver.Layout layout = rig.driver.layout();

        assertThat(rig.read32(SmmuRegs.CR0ACK)).isEqualTo(ENABLED);
        assertThat(rig.read32(SmmuRegs.IRQ_CTRLACK))
                .isEqualTo(1 << SmmuRegs.IRQ_CTRL_GERROR_IRQEN | 1 << SmmuRegs.IRQ_CTRL_EVENTQ_IRQEN);
        assertThat(rig.read32(SmmuRegs.CR1)).as("CR1: tables and queues WB, ISH").isEqualTo(0xD75);
        assertThat(rig.read32(SmmuRegs.CR2)).as("CR2: PTM | RECINVSID").isEqualTo(0x6);
        assertThat(rig.read32(SmmuRegs.GBPA) & 1L << SmmuRegs.GBPA_ABORT).as("GBPA.ABORT").isNotZero();

        long cmdqBase = rig.read64(SmmuRegs.CMDQ_BASE);
        assertThat(QueueBase.log2Size(cmdqBase)).isEqualTo(10).isEqualTo(layout.cmdqLog2());
        assertThat(QueueBase.allocateHint(cmdqBase)).isTrue();
        assertThat(rig.read32(SmmuRegs.CMDQ_CONS)).isEqualTo(rig.read32(SmmuRegs.CMDQ_PROD)).isEqualTo(2 * 2);
        long eventqBase = rig.read64(SmmuRegs.EVENTQ_BASE);
        assertThat(QueueBase.log2Size(eventqBase)).isEqualTo(9).isEqualTo(layout.eventqLog2());

        int cfg = (int) rig.read32(SmmuRegs.STRTAB_BASE_CFG);
        assertThat(StreamTableBase.fmt(cfg)).isEqualTo(StreamTableBase.FMT_2LVL);
        assertThat(StreamTableBase.split(cfg)).isEqualTo(8);
        assertThat(StreamTableBase.log2Size(cfg)).isEqualTo(16);
        assertThat(StreamTableBase.address(rig.read64(SmmuRegs.STRTAB_BASE))).isEqualTo(layout.streamTableBase());
        assertThat(layout.twoLevelStreamTable()).isTrue();
        assertThat(layout.msiPolling()).isTrue();
        assertThat(layout.maxBatch()).isEqualTo(64);

        assertThat(rig.executed(CommandOp.CFGI_STE_RANGE)).as("CFGI_ALL").isEqualTo(1);
        assertThat(rig.executed(CommandOp.TLBI_NSNH_ALL)).isEqualTo(1);
        assertThat(rig.executed(CommandOp.TLBI_EL2_ALL)).as("no HYP, no TLBI_EL2_ALL").isZero();
        assertThat(rig.executed(CommandOp.CMD_SYNC)).isEqualTo(2);
        SmmuV3Driver.Stats s = rig.driver.stats();
        assertThat(s.commands()).isEqualTo(2);
        assertThat(s.syncs()).isEqualTo(2);
        assertThat(s.commandErrors()).isZero();
        assertThat(rig.alloc.allocatedPages("smmu-cmdq")).isEqualTo(4);
        assertThat(rig.alloc.allocatedPages("smmu-eventq")).isEqualTo(4);
    }

    @Test
    void writesRegistersInLinuxResetOrder() {
        DriverRig rig = new DriverRig(SmmuV3Config.defaults());
        List<String> writes = new ArrayList<>();
        rig.start(new ForwardingHost(rig.host) {
            @Override
            public void mmioWrite(long offset, int width, long value) {
                if (offset != SmmuRegs.CMDQ_PROD) { // PROD moves with every submission
                    writes.add(Long.toHexString(offset) + "=" + Long.toHexString(value));
                }
                super.mmioWrite(offset, width, value);
            }
        }, SmmuV3DriverOptions.defaults());
        SmmuV3Driver.Layout l = rig.driver.layout();
        long strtabBase = StreamTableBase.encodeBase(l.streamTableBase(), true);
        assertThat(writes).containsExactly(
                "20=0", "28=d75", "2c=6", "80=" + Long.toHexString(strtabBase), "88=10210",
                "90=" + Long.toHexString(rig.read64(SmmuRegs.CMDQ_BASE)), "9c=0", "20=8",
                "a0=" + Long.toHexString(rig.read64(SmmuRegs.EVENTQ_BASE)), "100a8=0", "100ac=0", "20=c",
                "50=0", "68=0", "b0=0", "50=5", "44=80101000", "20=d");
    }

    @Test
    void smallStreamIdSpaceGetsALinearTableAndQueuesAreCappedByTheHardware() {
        DriverRig rig = DriverRig.started(SmmuV3Config.builder().sidBits(8).cmdqLog2(5).eventqLog2(3).build());
        int cfg = (int) rig.read32(SmmuRegs.STRTAB_BASE_CFG);
        assertThat(StreamTableBase.fmt(cfg)).isEqualTo(StreamTableBase.FMT_LINEAR);
        assertThat(StreamTableBase.log2Size(cfg)).isEqualTo(8);
        SmmuV3Driver.Layout l = rig.driver.layout();
        assertThat(l.twoLevelStreamTable()).isFalse();
        assertThat(l.cmdqLog2()).isEqualTo(5);
        assertThat(l.eventqLog2()).isEqualTo(3);
        assertThat(rig.read32(SmmuRegs.CR0ACK)).isEqualTo(ENABLED);
    }

    @Test
    void withoutTwoLevelSupportTheTableIsLinearEvenForManyStreams() {
        DriverRig rig = DriverRig.started(SmmuV3Config.builder().twoLevelStreamTable(false).sidBits(12).build());
        int cfg = (int) rig.read32(SmmuRegs.STRTAB_BASE_CFG);
        assertThat(StreamTableBase.fmt(cfg)).isEqualTo(StreamTableBase.FMT_LINEAR);
        assertThat(StreamTableBase.log2Size(cfg)).isEqualTo(12);
    }

    @Test
    void unconfiguredStreamsAbortOrBypassAsOptionsSay() {
        SmmuV3Config linear = SmmuV3Config.builder().sidBits(8).build();
        DriverRig aborting = DriverRig.started(linear);
        Translation t = aborting.translate(5, 0x1000, 0);
        assertThat(t.outcome()).isEqualTo(Translation.Outcome.FAULT);
        assertThat(t.faultType()).isEqualTo(FaultType.ABORTED);

        DriverRig bypassing = DriverRig.started(linear, SmmuV3DriverOptions.defaults().withDisableBypass(false));
        assertThat(bypassing.read32(SmmuRegs.GBPA) & 1L << SmmuRegs.GBPA_ABORT).isZero();
        Translation b = bypassing.translate(5, 0x1234_5000L, 0);
        assertThat(b.isOk()).isTrue();
        assertThat(b.physicalAddress()).isEqualTo(0x1234_5000L);
    }

    @Test
    void cr0AckTimeoutNamesTheRegisterAndValues() {
        DriverRig rig = new DriverRig(SmmuV3Config.defaults());
        ForwardingHost neverAcks = new ForwardingHost(rig.host) {
            @Override
            public long mmioRead(long offset, int width) {
                return offset == SmmuRegs.CR0ACK ? 0 : super.mmioRead(offset, width);
            }
        };
        SmmuV3Driver driver = SmmuV3Driver.probe(neverAcks, SmmuV3DriverOptions.defaults().withAckPolls(10));
        assertThatThrownBy(driver::init)
                .isInstanceOfSatisfying(SmmuV3DriverException.class,
                        e -> assertThat(e.kind()).isEqualTo(SmmuV3DriverException.Kind.ACK_TIMEOUT))
                .hasMessage("CR0ACK did not acknowledge CR0=0x8 after 10 polls (last read 0x0)");
    }

    @Test
    void irqCtrlAckAndGbpaTimeoutsAreReportedToo() {
        DriverRig rig = new DriverRig(SmmuV3Config.defaults());
        ForwardingHost irqNeverAcks = new ForwardingHost(rig.host) {
            @Override
            public long mmioRead(long offset, int width) {
                return offset == SmmuRegs.IRQ_CTRLACK ? 0 : super.mmioRead(offset, width);
            }
        };
        assertThatThrownBy(() -> SmmuV3Driver.probe(irqNeverAcks, SmmuV3DriverOptions.defaults().withAckPolls(3)).init())
                .hasMessage("IRQ_CTRLACK did not acknowledge IRQ_CTRL=0x5 after 3 polls (last read 0x0)");

        DriverRig rig2 = new DriverRig(SmmuV3Config.defaults());
        ForwardingHost gbpaStuck = new ForwardingHost(rig2.host) {
            @Override
            public long mmioRead(long offset, int width) {
                long v = super.mmioRead(offset, width);
                return offset == SmmuRegs.GBPA ? v | 1L << SmmuRegs.GBPA_UPDATE : v;
            }
        };
        assertThatThrownBy(() -> SmmuV3Driver.probe(gbpaStuck, SmmuV3DriverOptions.defaults().withAckPolls(3)).init())
                .isInstanceOfSatisfying(SmmuV3DriverException.class,
                        e -> assertThat(e.kind()).isEqualTo(SmmuV3DriverException.Kind.ACK_TIMEOUT))
                .hasMessageStartingWith("GBPA.UPDATE did not clear before the update after 3 polls");
    }

    @Test
    void reinitialisingAndUsingBeforeInitAreRefused() {
        DriverRig rig = DriverRig.started();
        assertThatThrownBy(rig.driver::init)
                .isInstanceOfSatisfying(SmmuV3DriverException.class,
                        e -> assertThat(e.kind()).isEqualTo(SmmuV3DriverException.Kind.BAD_STATE));
        SmmuV3Driver fresh = SmmuV3Driver.probe(new DriverRig(SmmuV3Config.defaults()).host,
                SmmuV3DriverOptions.defaults());
        assertThatThrownBy(fresh::sync).hasMessageContaining("not initialised");
        assertThat(fresh.stats().commands()).isZero();
    }

    @Test
    void anSmmuLeftEnabledIsMadeToAbortWhileItIsReset() {
        DriverRig rig = DriverRig.started(SmmuV3Config.defaults(), SmmuV3DriverOptions.defaults().withDisableBypass(false));
        assertThat(rig.read32(SmmuRegs.GBPA) & 1L << SmmuRegs.GBPA_ABORT).isZero();
        List<Long> gbpaWrites = new ArrayList<>();
        rig.start(new ForwardingHost(rig.host) {
            @Override
            public void mmioWrite(long offset, int width, long value) {
                if (offset == SmmuRegs.GBPA) {
                    gbpaWrites.add(value);
                }
                super.mmioWrite(offset, width, value);
            }
        }, SmmuV3DriverOptions.defaults().withDisableBypass(false));
        assertThat(gbpaWrites).as("ABORT set before CR0=0, cleared before SMMUEN")
                .containsExactly(0x8010_1000L, 0x8000_1000L);
        assertThat(rig.read32(SmmuRegs.CR0ACK)).isEqualTo(ENABLED);
    }
}
