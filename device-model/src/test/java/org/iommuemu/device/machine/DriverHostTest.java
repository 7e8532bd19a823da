package org.iommuemu.device.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.iommuemu.core.smmuv3.EventType;
import org.junit.jupiter.api.Test;

/** The machine's driver: the heap, taking instances over, and what that forbids afterwards. */
class DriverHostTest {
    @Test
    void theHeapIsTheUpperHalfOfTheFirstRamRegion() {
        Machine m = new Machine(MachineConfig.defaults());
        var ram = m.memory().regions().get(0);
        DriverHost h = m.driverHost();
        assertThat(h.heapBase()).isEqualTo(ram.base() + ram.size() / 2);
        assertThat(h.heapBase() + h.heapSize()).isEqualTo(ram.base() + ram.size());
    }

    @Test
    void anOwnedInstanceCannotBeResetAndItsEventLogStartsEmpty() {
        Machine m = new Machine(MachineConfig.defaults());
        m.resetDevices(); // nothing owned yet: allowed
        SmmuDriverInstance o = m.driverHost().smmu(m.iommu("smmu0"));
        assertThat(m.driverHost().owns("smmu0")).isTrue();
        assertThat(m.driverHost().smmu(m.iommu("smmu0"))).as("taken over once").isSameAs(o);
        assertThat(o.events().since(0).countsByType()).isEmpty();
        assertThatThrownBy(m::resetDevices).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("smmu0 is driven by the machine's driver");
        assertThatThrownBy(() -> m.driverHost().smmu(m.iommu("dmar0")))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not an SMMUv3");
    }

    @Test
    void theEventLogKeepsTheLastRecordsAndCountsThemAll() {
        DriverEventLog log = new DriverEventLog();
        var rec = org.iommuemu.core.smmuv3.EventRecord.decode(EventType.F_TRANSLATION | 5L << 32, 0, 0x1000, 0);
        for (int i = 0; i < DriverEventLog.KEPT + 10; i++) {
            log.onEvent(rec);
        }
        log.onEventOverflow();
        var snap = log.since(0);
        assertThat(snap.countsByType()).containsEntry(EventType.F_TRANSLATION, (long) DriverEventLog.KEPT + 10);
        assertThat(snap.records()).hasSize(DriverEventLog.KEPT);
        assertThat(snap.records().get(0).sequence()).as("the oldest ten were dropped").isEqualTo(11);
        assertThat(snap.overflows()).isEqualTo(1);
        assertThat(log.since(DriverEventLog.KEPT + 5).records()).extracting(DriverEventLog.Entry::sequence)
                .containsExactly(DriverEventLog.KEPT + 6L, DriverEventLog.KEPT + 7L, DriverEventLog.KEPT + 8L,
                        DriverEventLog.KEPT + 9L, DriverEventLog.KEPT + 10L);
    }
}
