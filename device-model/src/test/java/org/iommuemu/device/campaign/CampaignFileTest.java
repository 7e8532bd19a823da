package org.iommuemu.device.campaign;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Campaign files: what is read, and errors that name file:line:col. */
class CampaignFileTest {
    @TempDir
    Path dir;

    private CampaignFile.Loaded read(String campaign) throws Exception {
        return CampaignFile.read(CampaignFixtures.write(dir, CampaignFixtures.UNMAP_SCENARIO, campaign));
    }

    private String f() {
        return dir.resolve("campaign.yaml").toString();
    }

    @Test
    void readsTheFileAndItsScenarioRelativeToIt() throws Exception {
        CampaignFile.Loaded l = read(CampaignFixtures.CAMPAIGN);
        assertThat(l.campaign().runs()).isEqualTo(12);
        assertThat(l.campaign().seed()).isEqualTo(7);
        assertThat(l.campaign().runTimeoutSeconds()).isEqualTo(Campaign.DEFAULT_RUN_TIMEOUT_SECONDS);
        assertThat(l.campaign().faults()).extracting(Campaign.PlannedFault::name)
                .containsExactly("stale-tlb", "drop-tlbi", "sync-stall");
        assertThat(l.campaign().faults().get(1).spec().target().opcodes()).containsExactly(0x12);
        assertThat(l.scenario().scenario().toString()).isNotNull();
    }

    @Test
    void badValuesAndUnknownKeysNameFileLineAndColumn() {
        assertThatThrownBy(() -> read("scenario: unmap.yaml\nfaults:\n  - kind: command_drop\n    probability: 1.5\n"))
                .isInstanceOf(CampaignException.class).hasMessageStartingWith(f() + ":4:18: ")
                .hasMessageContaining("probability 1.5 is not between 0 and 1");
        assertThatThrownBy(() -> read("scenario: unmap.yaml\nfaults:\n  - kind: command_drop\n    oops: 1\n"))
                .hasMessageStartingWith(f() + ":4:12: ").hasMessageContaining("unknown key 'oops'");
        assertThatThrownBy(() -> read("scenario: unmap.yaml\nruns: 0\nfaults: []\n"))
                .hasMessageStartingWith(f() + ":2:7: ").hasMessageContaining("runs must be at least 1");
        assertThatThrownBy(() -> read("scenario: unmap.yaml\nfaults:\n  - kind: no_such_fault\n"))
                .hasMessageStartingWith(f() + ":3:11: ").hasMessageContaining("not an injection kind");
        assertThatThrownBy(() -> read("""
                scenario: unmap.yaml
                faults:
                  - kind: ignore_iotlb_invalidation
                    target: {iommu: smmu0}
                    trigger: {seed: 5}
                """)).hasMessageStartingWith(f() + ":5:").hasMessageContaining("the campaign chooses each run's"
                + " trigger seeds");
    }

    @Test
    void entriesThatReadWellButMakeNoSenseNameTheirLine() {
        assertThatThrownBy(() -> read("""
                scenario: unmap.yaml
                faults:
                  - {kind: command_drop, target: {iommu: smmu0}}
                  - {kind: sync_never_completes, target: {iommu: smmu9}}
                """)).hasMessage(f() + ":4:5: faults[1] (sync_never_completes): target.iommu: the scenario's"
                + " machine has no instance 'smmu9' (instances: [dmar0, smmu0])");
        assertThatThrownBy(() -> read("""
                scenario: unmap.yaml
                faults:
                  - {kind: sync_never_completes, target: {iommu: smmu0, opcodes: [1]}}
                """)).hasMessageStartingWith(f() + ":3:5: faults[0] (sync_never_completes): target.opcodes:");
        assertThatThrownBy(() -> read("""
                scenario: unmap.yaml
                faults:
                  - {kind: command_drop, target: {iommu: smmu0}}
                  - {kind: command_drop}
                """)).hasMessageStartingWith(f() + ":4:5: faults[1] (command_drop): target.iommu is required");
        assertThatThrownBy(() -> read("""
                scenario: unmap.yaml
                faults:
                  - {kind: command_drop, target: {iommu: smmu0}}
                  - {kind: command_drop, target: {iommu: smmu0}}
                """)).hasMessageContaining(":4:5: faults[1] (command_drop): a second fault named 'command_drop'");
        assertThatThrownBy(() -> read("""
                scenario: unmap.yaml
                faults:
                  - {kind: command_drop, target: {iommu: smmu0}}
                sweep: {fault: drop, field: count, values: [1, 2]}
                """)).hasMessageStartingWith(f() + ":4:1: sweep: fault 'drop' is not the label");
        assertThatThrownBy(() -> read("""
                scenario: unmap.yaml
                faults:
                  - {kind: command_drop, target: {iommu: smmu0}}
                sweep: {fault: command_drop, field: seed, values: [1]}
                """)).hasMessageStartingWith(f() + ":4:").hasMessageContaining("field must be skip_first or count");
        assertThatThrownBy(() -> read("scenario: unmap.yaml\nfaults: []\n")).hasMessageContaining("the fault plan is"
                + " empty");
        assertThatThrownBy(() -> read("runs: 3\nfaults: []\n")).hasMessageContaining("scenario is required");
    }

    @Test
    void aMissingOrBadScenarioIsNamedWithTheCampaignLine() {
        assertThatThrownBy(() -> read("faults: []\nscenario: nope.yaml\n"))
                .hasMessage(f() + ":2:1: scenario: " + dir.resolve("nope.yaml") + ": no such file");
        assertThatThrownBy(() -> CampaignFile.read(CampaignFixtures.write(dir, "steps:\n  - bogus: 1\n",
                "scenario: unmap.yaml\nfaults: []\n")))
                .hasMessageStartingWith(f() + ":1:1: scenario: " + dir.resolve("unmap.yaml") + ":2:");
    }
}
