package org.iommuemu.device.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;
import org.junit.jupiter.api.Test;

class InterruptHubTest {
    private static final long RAM = 0x8000_0000L;
    private final SparseRam ram = new SparseRam(List.of(new RamRegion(RAM, 1L << 20)));
    private final InterruptHub hub = new InterruptHub(ram);
    private final List<InterruptRecord> seen = new ArrayList<>();

    {
        hub.subscribe(seen::add);
    }

    @Test
    void anMsiToRamIsWrittenAndReported() throws Exception {
        assertThat(hub.msi("smmu0", "cmd-sync", RAM + 0x40, 0x1234_5678)).isTrue();
        assertThat(ram.read32(RAM + 0x40)).isEqualTo(0x1234_5678);
        assertThat(seen).singleElement().satisfies(r -> {
            assertThat(r.msiAddress()).isEqualTo(RAM + 0x40);
            assertThat(r.landedInRam()).isTrue();
        });
    }

    @Test
    void anMsiToTheDoorbellWindowIsOnlyReported() {
        long last = InterruptHub.DEFAULT_DOORBELL_BASE + InterruptHub.DEFAULT_DOORBELL_SIZE - 4;
        assertThat(hub.msi("smmu0", "eventq", InterruptHub.DEFAULT_DOORBELL_BASE, 1)).isTrue();
        assertThat(hub.msi("smmu0", "eventq", last, 2)).isTrue();
        assertThat(seen).extracting(InterruptRecord::landedInRam).containsExactly(false, false);
        assertThat(hub.abortedMsis()).isZero();
    }

    @Test
    void anMsiAnywhereElseAbortsAndReachesNoSubscriber() {
        long past = InterruptHub.DEFAULT_DOORBELL_BASE + InterruptHub.DEFAULT_DOORBELL_SIZE;
        assertThat(hub.msi("smmu0", "gerror", past, 1)).as("just past the window").isFalse();
        assertThat(hub.msi("smmu0", "gerror", InterruptHub.DEFAULT_DOORBELL_BASE - 4, 1)).isFalse();
        assertThat(hub.msi("smmu0", "gerror", 0x40_0000_0000L, 1)).isFalse();
        assertThat(seen).isEmpty();
        assertThat(hub.abortedMsis()).isEqualTo(3);
        assertThat(hub.raised()).as("aborted MSIs are not numbered").isZero();
    }

    @Test
    void aWindowElsewhereAndBadWindows() {
        InterruptHub other = new InterruptHub(ram, 0x1000_0000L, 0x1000);
        assertThat(other.msi("x", "y", 0x1000_0ffcL, 1)).isTrue();
        assertThat(other.msi("x", "y", InterruptHub.DEFAULT_DOORBELL_BASE, 1)).isFalse();
        assertThatThrownBy(() -> new InterruptHub(ram, 0x1000, 0)).hasMessageContaining("doorbell");
        assertThatThrownBy(() -> new InterruptHub(ram, -4096, 8192)).hasMessageContaining("doorbell");
    }

    @Test
    void listenersAreToldOfEveryInterruptAndCanLeave() throws Exception {
        List<String> told = new ArrayList<>();
        AutoCloseable l = hub.listen((iommu, source, msi, inRam) -> told.add(iommu + "/" + source + "/" + msi + "/" + inRam));
        hub.wired("smmu0", "eventq");
        hub.msi("smmu0", "cmd-sync", RAM + 8, 1);
        hub.msi("smmu0", "gerror", InterruptHub.DEFAULT_DOORBELL_BASE, 2);
        hub.msi("smmu0", "gerror", 0x40_0000_0000L, 3); // aborts: nobody is told
        assertThat(told).containsExactly("smmu0/eventq/false/false", "smmu0/cmd-sync/true/true",
                "smmu0/gerror/true/false");
        assertThat(seen).as("record subscribers see the same interrupts").hasSize(3);
        l.close();
        hub.wired("smmu0", "eventq");
        assertThat(told).hasSize(3);
    }
}
