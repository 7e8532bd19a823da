package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.DeviceStats;
import org.iommuemu.device.xlate.CostModel;
import org.junit.jupiter.api.Test;

/**
 * {@link SmmuV3Device#stats()}: the counters behind Telemetry.Stats and the simulated time charged by the
 * configured {@link CostModel}. Every cost below is distinct, so each exact increment names the work that was
 * charged.
 */
class SmmuStatsTest {
    private static final long MMIO = 3;
    private static final long TABLE_READ = 70;
    private static final long TABLE_WRITE = 900;
    private static final long QUEUE_READ = 40;
    private static final long HIT = 2;
    private static final long MISS = 5;
    private static final long COMMAND = 11_000;
    private static final long SYNC = 200_000;
    private static final long EVENT_WRITE = 3_000_000;
    private static final long MSI_WRITE = 50_000_000;
    private static final CostModel COSTS = new CostModel(MMIO, TABLE_READ, TABLE_WRITE, QUEUE_READ, HIT, MISS,
            COMMAND, SYNC, EVENT_WRITE, MSI_WRITE);

    private static final long IOVA = 0x12_3440_0000L;
    private static final int SID = 3;

    private static SmmuTestRig rig(SmmuV3Config.Builder config) {
        return SmmuTestRig.started(config.cost(COSTS).build());
    }

    private static SmmuTestRig rig() {
        return rig(SmmuTestRig.smallQueues());
    }

    private static long now(SmmuTestRig rig) {
        return rig.stats().simTimeNs();
    }

    /** A stage-1 stream (4 KB granule, 48-bit VA: a 4-level walk) mapping {@code pages} pages from IOVA. */
    private static long stage1(SmmuTestRig rig, int sid, int asid, int pages) {
        PageTable pt = rig.stage1(12, 48);
        long pa = rig.pages(4, "dma");
        rig.mapPages(pt, IOVA, pa, 4096L * pages, Prot.READ | Prot.WRITE);
        long cds = rig.cdTable(0);
        rig.writeCd(cds, 0, SmmuTestRig.cdFor(pt, asid));
        rig.installSte(sid, Ste.stage1(cds, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0));
        return pa;
    }

    // ------------------------------------------------------------------ MMIO, commands, events

    @Test
    void eachMmioAccessCostsOneMmioAccess() {
        SmmuTestRig rig = rig();
        DeviceStats before = rig.stats();

        rig.read32(SmmuV3Registers.IDR0);
        assertThat(now(rig) - before.simTimeNs()).isEqualTo(MMIO);
        rig.write32(SmmuV3Registers.CR2, 0);
        rig.read64(SmmuV3Registers.STRTAB_BASE);

        DeviceStats after = rig.stats();
        assertThat(after.simTimeNs() - before.simTimeNs()).isEqualTo(3 * MMIO);
        assertThat(after.mmioReads() - before.mmioReads()).isEqualTo(2);
        assertThat(after.mmioWrites() - before.mmioWrites()).isEqualTo(1);
    }

    @Test
    void oneCommandCostsItsQueueReadAndItsProcessing() {
        SmmuTestRig rig = rig();
        long t0 = now(rig);
        long tlbis = rig.commandsOf(CommandOp.TLBI_NSNH_ALL);

        rig.submit(Command.tlbiNsnhAll()); // the rig reads CMDQ_CONS for space, then writes CMDQ_PROD

        assertThat(now(rig) - t0).isEqualTo(2 * MMIO + QUEUE_READ + COMMAND);
        assertThat(rig.commandsOf(CommandOp.TLBI_NSNH_ALL) - tlbis).isEqualTo(1);
    }

    @Test
    void cmdSyncCostsACommandAndASyncAndItsMsiWrite() {
        SmmuTestRig rig = rig();
        long t0 = now(rig);
        rig.submit(Command.cmdSync(Command.CS_NONE));
        assertThat(now(rig) - t0).isEqualTo(2 * MMIO + QUEUE_READ + COMMAND + SYNC);

        long t1 = now(rig);
        long irqs = rig.stats().interrupts();
        rig.submit(Command.cmdSync(Command.CS_IRQ, 3, 0xF, 0, SmmuTestRig.DOORBELL));
        assertThat(now(rig) - t1).isEqualTo(2 * MMIO + QUEUE_READ + COMMAND + SYNC + MSI_WRITE);
        assertThat(rig.stats().interrupts() - irqs).isEqualTo(1);
    }

    @Test
    void commandsAreCountedByOpcode() {
        SmmuTestRig rig = rig();
        long syncs = rig.commandsOf(CommandOp.CMD_SYNC); // bring-up issued some already
        long cfgiAll = rig.commandsOf(CommandOp.CFGI_ALL);

        rig.issue(Command.cfgiSte(1, true), Command.cfgiSte(2, true), Command.tlbiNhAsid(0, 4),
                Command.tlbiNhVa(0, 4, 0x1000, true), Command.tlbiNhVa(0, 4, 0x2000, true),
                Command.tlbiNhVa(0, 4, 0x3000, true));

        assertThat(rig.commandsOf(CommandOp.CFGI_STE)).isEqualTo(2);
        assertThat(rig.commandsOf(CommandOp.TLBI_NH_ASID)).isEqualTo(1);
        assertThat(rig.commandsOf(CommandOp.TLBI_NH_VA)).isEqualTo(3);
        assertThat(rig.commandsOf(CommandOp.CMD_SYNC) - syncs).isEqualTo(1);
        assertThat(rig.commandsOf(CommandOp.CFGI_ALL)).isEqualTo(cfgiAll);
        assertThat(rig.stats().commands()).filteredOn(c -> c.code() == CommandOp.TLBI_NH_VA).singleElement()
                .extracting(DeviceStats.CodeCount::name).isEqualTo("TLBI_NH_VA");
    }

    @Test
    void anEventCostsItsFetchAndItsRecordAndIsCountedByType() {
        SmmuTestRig rig = rig();
        long t0 = now(rig);

        rig.badSteFaults(9, 1); // config cache miss, one STE read, one record (wired interrupt: no MSI cost)

        assertThat(now(rig) - t0).isEqualTo(MISS + TABLE_READ + EVENT_WRITE);
        assertThat(rig.eventsOfType(EventType.C_BAD_STE)).isEqualTo(1);
        rig.badSteFaults(10, 2);
        assertThat(rig.eventsOfType(EventType.C_BAD_STE)).isEqualTo(3);
        assertThat(rig.stats().events()).singleElement().extracting(DeviceStats.CodeCount::name)
                .isEqualTo("C_BAD_STE");
        assertThat(rig.stats().faults()).isEqualTo(3);
    }

    @Test
    void globalErrorsAreCounted() {
        SmmuTestRig rig = rig();
        rig.submitRaw(0xFF, 0);
        assertThat(rig.stats().globalErrors()).isEqualTo(1);
    }

    // ------------------------------------------------------------------ translations

    @Test
    void coldFourLevelWalkReadsFourDescriptors() {
        SmmuTestRig rig = rig();
        long pa = stage1(rig, SID, 7, 2);
        DeviceStats before = rig.stats();

        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(pa);

        DeviceStats after = rig.stats();
        assertThat(after.translations() - before.translations()).isEqualTo(1);
        assertThat(after.walks() - before.walks()).isEqualTo(1);
        assertThat(after.walkReads() - before.walkReads()).as("levels 0, 1, 2, 3 from memory").isEqualTo(4);
        // STE and CD: a miss and a read each; the IOTLB: a miss; the walk: four reads
        assertThat(after.simTimeNs() - before.simTimeNs()).isEqualTo(3 * MISS + 6 * TABLE_READ);
        assertThat(rig.cache("iotlb").misses()).isEqualTo(1);
        assertThat(rig.cache("config").misses()).isEqualTo(2);
        assertThat(rig.cache("walk").misses()).as("three table levels probed").isEqualTo(3);
    }

    @Test
    void warmWalkCacheLeavesOnlyTheLeafToRead() {
        SmmuTestRig rig = rig();
        long pa = stage1(rig, SID, 7, 2);
        rig.pa(SID, -1, IOVA, 0);
        DeviceStats before = rig.stats();
        long walkHits = rig.cache("walk").hits();

        assertThat(rig.pa(SID, -1, IOVA + 0x1000, 0)).isEqualTo(pa + 0x1000);

        DeviceStats after = rig.stats();
        assertThat(after.walks() - before.walks()).isEqualTo(1);
        assertThat(after.walkReads() - before.walkReads()).as("only the leaf comes from memory").isEqualTo(1);
        assertThat(rig.cache("walk").hits() - walkHits).isEqualTo(3);
        // STE and CD from the configuration cache, an IOTLB miss, three walk-cache hits, one leaf read
        assertThat(after.simTimeNs() - before.simTimeNs()).isEqualTo(2 * HIT + MISS + 3 * HIT + TABLE_READ);
    }

    @Test
    void iotlbHitCostsOneHit() {
        SmmuTestRig rig = rig();
        stage1(rig, SID, 7, 1);
        rig.pa(SID, -1, IOVA, 0);
        long t0 = now(rig);
        long hits = rig.cache("iotlb").hits();
        long walks = rig.stats().walks();

        rig.pa(SID, -1, IOVA + 0x40, Access.WRITE);

        assertThat(now(rig) - t0).isEqualTo(HIT);
        assertThat(rig.cache("iotlb").hits() - hits).isEqualTo(1);
        assertThat(rig.stats().walks()).isEqualTo(walks);
    }

    @Test
    void hardwareDirtyUpdateCostsATableWrite() {
        SmmuTestRig rig = rig();
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, IOVA, rig.page(), 4096, Prot.READ | Prot.WRITE);
        long slot = SmmuTestRig.leafSlot(pt, IOVA);
        rig.w64(slot, rig.r64(slot) | 1L << 51 | 1L << 7); // DBM, AP[2]: writable-clean
        long cds = rig.cdTable(0);
        rig.writeCd(cds, 0, SmmuTestRig.cdFor(pt, 7).toBuilder().ha(true).hd(true).build());
        rig.installSte(SID, Ste.stage1(cds, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0));
        long t0 = now(rig);

        rig.pa(SID, -1, IOVA, Access.WRITE);

        assertThat(now(rig) - t0).isEqualTo(3 * MISS + 6 * TABLE_READ + TABLE_WRITE);
    }

    @Test
    void iotlbEvictsTheLeastRecentlyUsedBeyondItsCapacity() {
        SmmuTestRig rig = rig(SmmuTestRig.smallQueues().iotlbCapacity(2));
        long pa = stage1(rig, SID, 7, 3);
        for (int i = 0; i < 3; i++) {
            rig.pa(SID, -1, IOVA + 0x1000L * i, 0);
        }
        DeviceStats.CacheStat tlb = rig.cache("iotlb");
        assertThat(tlb.misses()).isEqualTo(3);
        assertThat(tlb.inserts()).isEqualTo(3);
        assertThat(tlb.evictions()).isEqualTo(1);
        assertThat(tlb.entries()).isEqualTo(2);
        assertThat(tlb.capacity()).isEqualTo(2);

        long walks = rig.stats().walks();
        assertThat(rig.pa(SID, -1, IOVA, 0)).as("page 0 was evicted: walked again").isEqualTo(pa);
        assertThat(rig.stats().walks() - walks).isEqualTo(1);
        assertThat(rig.cache("iotlb").evictions()).isEqualTo(2);
    }

    @Test
    void configCacheEvictsBeyondItsCapacity() {
        SmmuTestRig rig = rig(SmmuTestRig.smallQueues().configCacheCapacity(2));
        stage1(rig, 1, 1, 1);
        stage1(rig, 2, 2, 1);

        rig.pa(1, -1, IOVA, 0); // STE 1 and CD 1:0
        rig.pa(2, -1, IOVA, 0); // STE 2 and CD 2:0 evict them

        DeviceStats.CacheStat c = rig.cache("config");
        assertThat(c.misses()).isEqualTo(4);
        assertThat(c.evictions()).isEqualTo(2);
        assertThat(c.entries()).isEqualTo(2);
        long reads = rig.stats().walks();
        rig.pa(1, -1, IOVA, 0);
        assertThat(rig.cache("config").misses()).as("stream 1 fetched again").isEqualTo(6);
        assertThat(rig.stats().walks()).as("its translation is still in the IOTLB").isEqualTo(reads);
    }

    @Test
    void cacheLookupsAddUpWhenTheMicroTlbAndConfigMemoAnswer() {
        SmmuTestRig rig = rig();
        stage1(rig, 1, 1, 1);
        stage1(rig, 2, 2, 1);
        DeviceStats before = rig.stats();
        long tlbBefore = rig.cache("iotlb").hits() + rig.cache("iotlb").misses();
        long cfgBefore = rig.cache("config").hits() + rig.cache("config").misses();

        // alternating streams: the per-thread memo and micro-TLB never match, every translation looks up
        // the STE, the CD and the IOTLB
        for (int i = 0; i < 20; i++) {
            rig.pa(1 + (i & 1), -1, IOVA + 8 * i, 0);
        }
        // the same stream again and again: the micro-TLB answers, counted as IOTLB hits
        for (int i = 0; i < 30; i++) {
            rig.pa(2, -1, IOVA + 8 * i, 0);
        }

        DeviceStats after = rig.stats();
        long translations = after.translations() - before.translations();
        assertThat(translations).isEqualTo(50);
        DeviceStats.CacheStat tlb = rig.cache("iotlb");
        DeviceStats.CacheStat cfg = rig.cache("config");
        assertThat(tlb.hits() + tlb.misses() - tlbBefore).as("one IOTLB lookup per translation")
                .isEqualTo(translations);
        assertThat(tlb.misses()).as("one walk per stream").isEqualTo(2);
        assertThat(cfg.hits() + cfg.misses() - cfgBefore).as("STE + CD lookups of the alternating run")
                .isEqualTo(2 * 20);
        assertThat(cfg.misses()).isEqualTo(4);
    }
}
