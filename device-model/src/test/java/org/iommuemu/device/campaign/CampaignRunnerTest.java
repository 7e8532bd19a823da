package org.iommuemu.device.campaign;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Running campaigns: seeds, the choice of faults, and how runs are classified. */
class CampaignRunnerTest {
    @TempDir
    Path dir;

    private CampaignReport run(String scenario, String campaign) throws Exception {
        CampaignFile.Loaded loaded = CampaignFile.read(CampaignFixtures.write(dir, scenario, campaign));
        return CampaignRunner.run(loaded, CampaignRunner.Settings.of(loaded.campaign()), null);
    }

    private static Set<String> names(CampaignRunner.Run r) {
        return r.faults().stream().map(CampaignRunner.Chosen::name).collect(Collectors.toSet());
    }

    @Test
    void runSeedsDependOnTheCampaignSeedAndTheIndexOnly() {
        long[] ten = CampaignRunner.runSeeds(7, 10);
        long[] four = CampaignRunner.runSeeds(7, 4);
        assertThat(java.util.Arrays.copyOf(ten, 4)).containsExactly(four);
        assertThat(CampaignRunner.runSeeds(8, 4)).doesNotContain(four[0]);
        assertThat(ten).doesNotHaveDuplicates();
    }

    @Test
    void eachFaultTakesItsDrawsWhetherIncludedOrNot() throws Exception {
        Campaign c = CampaignFile.read(CampaignFixtures.write(dir, CampaignFixtures.UNMAP_SCENARIO,
                CampaignFixtures.CAMPAIGN)).campaign();
        long seed = CampaignRunner.runSeeds(7, 1)[0];
        List<CampaignRunner.Chosen> a = CampaignRunner.choose(c, 0, seed);
        c.faults().get(0).setProbability(c.faults().get(0).probability() == 0 ? 1 : 0);
        List<CampaignRunner.Chosen> b = CampaignRunner.choose(c, 0, seed);
        // the second and third faults draw the same whatever the first one's probability is
        assertThat(b.stream().filter(x -> x.fault() > 0).map(CampaignRunner.Chosen::triggerSeed).toList())
                .isEqualTo(a.stream().filter(x -> x.fault() > 0).map(CampaignRunner.Chosen::triggerSeed).toList());
        assertThat(a).allSatisfy(ch -> assertThat(ch.spec().trigger().seed()).isEqualTo(ch.triggerSeed()));
    }

    @Test
    void runsAreClassifiedByWhatTheirFaultsDid() throws Exception {
        CampaignReport r = run(CampaignFixtures.UNMAP_SCENARIO, CampaignFixtures.CAMPAIGN);
        assertThat(r.baselinePassed()).isTrue();
        assertThat(r.runs()).hasSize(12).extracting(CampaignRunner.Run::index)
                .containsExactly(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
        int stalled = 0;
        int stale = 0;
        int clean = 0;
        for (CampaignRunner.Run run : r.runs()) {
            Set<String> f = names(run);
            CampaignRunner.Outcome o = run.outcome();
            String why = run.index() + " " + f + " " + run.evidence() + " " + run.failures();
            assertThat(o.hung()).as(why).isFalse();
            assertThat(run.error()).as(why).isNull();
            if (f.contains("sync-stall")) {
                // the unmap's CMD_SYNC never completes: the driver's bounded wait fails, the run stops there,
                // before the second DMA, so nothing was written where it should not be
                stalled++;
                assertThat(o).as(why).isEqualTo(new CampaignRunner.Outcome(true, false, false, false));
                assertThat(run.failures()).as(why).anyMatch(l -> l.contains("CMD_SYNC did not complete")); // QUEUE_TIMEOUT
                assertThat(run.fired().get("sync-stall")).as(why).isPositive();
            } else if (f.contains("stale-tlb") || f.contains("drop-tlbi")) {
                // the TLBI is ignored or dropped: the second DMA goes through the stale translation
                stale++;
                assertThat(o).as(why).isEqualTo(new CampaignRunner.Outcome(true, false, true, false));
                assertThat(run.evidence().get("new_sanitizer_reports").toString()).as(why)
                        .contains("STALE_TRANSLATION=1");
                assertThat(run.evidence().get("new_failures").toString()).as(why)
                        .contains("steps[4] expect.fault", "steps[5] expect.memory");
            } else {
                clean++;
                assertThat(o).as(why).isEqualTo(new CampaignRunner.Outcome(false, true, false, false));
            }
        }
        assertThat(stalled).as("seed 7 gives every case").isPositive();
        assertThat(stale).isPositive();
        assertThat(clean).isPositive();
        assertThat(r.byFault().get("sync-stall").runs()).isEqualTo(
                r.runs().stream().filter(x -> names(x).contains("sync-stall")).count());
    }

    @Test
    void aStaleWriteNoExpectNoticesIsSilentCorruption() throws Exception {
        CampaignReport r = run(CampaignFixtures.UNCHECKED_SCENARIO, """
                scenario: unmap.yaml
                runs: 2
                faults:
                  - {kind: ignore_iotlb_invalidation, target: {iommu: smmu0}}
                """);
        assertThat(r.runs()).allSatisfy(run -> {
            assertThat(run.outcome()).isEqualTo(new CampaignRunner.Outcome(false, true, true, false));
            assertThat(run.outcome().silent()).isTrue();
            assertThat(run.fired()).containsEntry("ignore_iotlb_invalidation", 1L);
        });
        assertThat(r.table()).contains("ignore_iotlb_invalidation");
    }

    @Test
    void aSweepSetsItsTriggerFieldByRunIndex() throws Exception {
        CampaignReport r = run(CampaignFixtures.UNMAP_SCENARIO, """
                scenario: unmap.yaml
                runs: 4
                faults:
                  - {kind: command_drop, label: drop, target: {iommu: smmu0, opcodes: [0x12]}}
                sweep: {fault: drop, field: skip_first, values: [0, 1]}
                """);
        for (CampaignRunner.Run run : r.runs()) {
            long skip = run.index() % 2;
            assertThat(run.faults()).singleElement().satisfies(ch -> {
                assertThat(ch.swept()).isEqualTo(skip);
                assertThat(ch.spec().trigger().skipFirst()).isEqualTo(skip);
            });
            // the unmap issues one TLBI_NH_VA: skipping it leaves nothing to drop
            assertThat(run.outcome().corrupted()).as("run " + run.index()).isEqualTo(skip == 0);
            assertThat(run.outcome().recovered()).as("run " + run.index()).isEqualTo(skip == 1);
            assertThat(run.fired().get("drop")).isEqualTo(skip == 0 ? 1L : 0L);
        }
    }

    @Test
    void aRunOverItsBudgetIsHungAndTheNextRunStillRuns() throws Exception {
        CampaignFile.Loaded loaded = CampaignFile.read(CampaignFixtures.write(dir, CampaignFixtures.UNMAP_SCENARIO, """
                scenario: unmap.yaml
                faults:
                  - {kind: sync_never_completes, label: stall, target: {iommu: smmu0}, probability: 0.5}
                """));
        // a stand-in for the scenario runner: without faults it answers at once with a real run's result (made
        // here, outside the budget); with a fault it never returns (until interrupted)
        org.iommuemu.device.scenario.ScenarioRunner.Result clean = org.iommuemu.device.scenario.ScenarioRunner.run(
                loaded.scenario(), new java.io.PrintWriter(new java.io.StringWriter()));
        CampaignRunner.ScenarioRun blocking = (l, out, o) -> {
            if (o.injections().isEmpty()) {
                return clean;
            }
            try {
                new java.util.concurrent.CountDownLatch(1).await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            throw new IllegalStateException("interrupted");
        };
        CampaignReport r = new CampaignRunner(loaded, new CampaignRunner.Settings(3, 4, CampaignRunner.Shard.ALL,
                500), blocking).run(null);
        assertThat(r.runs()).allSatisfy(run -> assertThat(run.outcome().hung()).isEqualTo(!run.faults().isEmpty()));
        assertThat(r.runs()).anyMatch(run -> run.outcome().hung()).anyMatch(run -> !run.outcome().hung());
        assertThat(r.all().hung()).isEqualTo(r.byFault().get("stall").hung());
    }

    @Test
    void theSameSeedGivesTheSameReport() throws Exception {
        CampaignFile.Loaded loaded = CampaignFile.read(CampaignFixtures.write(dir, CampaignFixtures.UNMAP_SCENARIO,
                CampaignFixtures.CAMPAIGN));
        CampaignRunner.Settings s = new CampaignRunner.Settings(11, 5, CampaignRunner.Shard.ALL, 60_000);
        String a = CampaignRunner.run(loaded, s, null).toJson();
        String b = CampaignRunner.run(loaded, s, null).toJson();
        assertThat(a).isEqualTo(b).doesNotContain("wall", "time_ns");
        assertThat(CampaignRunner.run(loaded, new CampaignRunner.Settings(12, 5, CampaignRunner.Shard.ALL, 60_000),
                null).toJson()).isNotEqualTo(a);
    }
}
