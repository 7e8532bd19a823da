package org.iommuemu.device.smmuv3.driver;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.atomic.AtomicBoolean;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.InterruptSink;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.junit.jupiter.api.Test;

/** Event records and global errors raised by the real device, consumed by the driver. */
class SmmuV3DriverEventTest {
    private static final long IOVA = 0x10_0000L;

    private static void assertEventQueueEmpty(DriverRig rig) {
        assertThat(QueuePointer.indexAndWrap((int) rig.read32(SmmuRegs.EVENTQ_CONS), rig.driver.layout().eventqLog2()))
                .isEqualTo(QueuePointer.indexAndWrap((int) rig.read32(SmmuRegs.EVENTQ_PROD),
                        rig.driver.layout().eventqLog2()));
    }

    @Test
    void aTranslationFaultIsDrainedAndDecoded() {
        DriverRig rig = DriverRig.started();
        long pa = rig.alloc.allocPages(0, "dma");
        rig.stage1Stream(3, 1, IOVA, pa);
        assertThat(rig.translate(3, IOVA + 8, Access.WRITE).physicalAddress()).isEqualTo(pa + 8);

        Translation t = rig.translate(3, IOVA + 0x20_0000, 0);
        assertThat(t.faultType()).isEqualTo(FaultType.TRANSLATION);

        assertThat(rig.driver.drainEvents()).isEqualTo(1);
        assertThat(rig.events).hasSize(1);
        EventRecord e = rig.events.get(0);
        assertThat(e.type()).isEqualTo(EventType.F_TRANSLATION);
        assertThat(e.streamId()).isEqualTo(3);
        assertThat(e.inputAddr()).isEqualTo(IOVA + 0x20_0000);
        assertThat(e.rnw()).as("a read").isTrue();
        assertThat(e.s2()).isFalse();
        assertThat(rig.driver.stats().events()).isEqualTo(1);
        assertEventQueueEmpty(rig);
        assertThat(rig.driver.drainEvents()).as("nothing new").isZero();
    }

    @Test
    void theEventInterruptDrainsTheQueue() {
        DriverRig rig = DriverRig.started();
        rig.stage1Stream(4, 2, IOVA, rig.alloc.allocPages(0, "dma"));

        rig.translate(4, IOVA + 0x1000, Access.WRITE);
        assertThat(rig.host.pendingInterrupts()).as("the eventq interrupt waits for the CPU").isEqualTo(1);
        rig.host.deliverPendingInterrupts();

        assertThat(rig.events).extracting(EventRecord::type).containsExactly(EventType.F_TRANSLATION);
        assertThat(rig.events.get(0).rnw()).as("a write").isFalse();
        assertEventQueueEmpty(rig);
    }

    @Test
    void eventsOfStreamsWithoutATranslatingSteAreDecodedToo() {
        // linear table, streams start as abort; one stream left invalid by hand gives C_BAD_STE
        DriverRig rig = DriverRig.started(SmmuV3Config.builder().sidBits(8).build());
        rig.driver.writeSte(6, org.iommuemu.core.smmuv3.Ste.builder().build());
        rig.translate(6, IOVA, 0);
        rig.driver.drainEvents();
        assertThat(rig.events).extracting(EventRecord::type, EventRecord::streamId)
                .containsExactly(org.assertj.core.groups.Tuple.tuple(EventType.C_BAD_STE, 6));
    }

    @Test
    void anOverflowIsNoticedReportedAndAcknowledged() {
        DriverRig rig = DriverRig.started(SmmuV3Config.defaults(), SmmuV3DriverOptions.defaults().withEventqLog2(1));
        rig.stage1Stream(7, 1, IOVA, rig.alloc.allocPages(0, "dma"));
        for (int i = 1; i <= 5; i++) {
            rig.translate(7, IOVA + i * 0x1000L, 0);
        }
        int prod = (int) rig.read32(SmmuRegs.EVENTQ_PROD);
        assertThat(QueuePointer.overflowActive(prod, (int) rig.read32(SmmuRegs.EVENTQ_CONS))).isTrue();

        assertThat(rig.driver.drainEvents()).as("the two records that fitted").isEqualTo(2);

        assertThat(rig.overflows).hasValue(1);
        assertThat(rig.driver.stats().eventOverflows()).isEqualTo(1);
        int cons = (int) rig.read32(SmmuRegs.EVENTQ_CONS);
        assertThat(QueuePointer.overflowActive((int) rig.read32(SmmuRegs.EVENTQ_PROD), cons)).as("acknowledged")
                .isFalse();
        assertThat(QueuePointer.overflowFlag(cons)).isTrue();

        rig.translate(7, IOVA + 0x9000, 0);
        assertThat(rig.driver.drainEvents()).as("records flow again").isEqualTo(1);
        assertThat(rig.overflows).as("no second overflow").hasValue(1);
        assertThat(rig.events).hasSize(3).allSatisfy(e -> assertThat(e.type()).isEqualTo(EventType.F_TRANSLATION));
    }

    @Test
    void aGlobalErrorIsReportedAndAcknowledged() {
        AtomicBoolean loseNextMsi = new AtomicBoolean();
        DriverRig rig = new DriverRig(SmmuV3Config.defaults(), hub -> new InterruptSink() {
            @Override
            public void wired(String iommu, String source) {
                hub.wired(iommu, source);
            }

            @Override
            public boolean msi(String iommu, String source, long address, int data) {
                return !loseNextMsi.getAndSet(false) && hub.msi(iommu, source, address, data);
            }
        });
        rig.start(rig.host, SmmuV3DriverOptions.defaults());
        assertThat(rig.driver.handleGlobalErrors()).as("nothing active").isZero();

        loseNextMsi.set(true);
        rig.driver.sync(); // its MSI write aborts: MSI_CMDQ_ABT_ERR; the sync still completes (CONS passed it)

        assertThat(rig.globalErrors).containsExactly(Gerror.MSI_CMDQ_ABT_ERR);
        assertThat(rig.driver.stats().globalErrors()).isEqualTo(1);
        assertThat(Gerror.active((int) rig.read32(SmmuRegs.GERROR), (int) rig.read32(SmmuRegs.GERRORN)))
                .as("acknowledged in GERRORN").isZero();
        rig.driver.sync();
        assertThat(rig.globalErrors).hasSize(1);
    }
}
