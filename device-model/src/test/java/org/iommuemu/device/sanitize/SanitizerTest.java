package org.iommuemu.device.sanitize;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.atomic.AtomicLong;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.DriverInstance;
import org.iommuemu.device.machine.DriverInstance.Stage;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.junit.jupiter.api.Test;

/** The sanitizer on a machine driven in-process, where a domain's flush-queue clock can be moved by hand. */
class SanitizerTest {
    private static final long IOVA = 0x40_0000L;
    private static final int SID = 5;
    private static final long BOUND = 1_000L;

    private final Machine m = new Machine(MachineConfig.defaults());
    private final AtomicLong now = new AtomicLong(100);

    private DmaOutcome read(long iova) {
        return m.dma().read(m.iommu("smmu0"), SID, -1, iova, new byte[8], 0, 8, 0, new DmaOutcome());
    }

    @Test
    void aLazyUnmapIsAllowedWithinTheFlushBoundAndReportedPastIt() throws Exception {
        m.sanitizer().enable(true);
        DriverInstance o = m.driverHost().takeOver(m.iommu("smmu0"));
        IommuDomain d = IommuDomain.builder(o.format(Stage.S1, 12, o.defaultInputBits(Stage.S1), o.outputBits()),
                m.memory(), m.driverHost().heap()).name("lazy").flushPolicy(FlushPolicy.LAZY)
                .flushQueueTimeoutNanos(BOUND).clock(now::get).build();
        m.sanitizer().track(d, null);
        o.attachStream(d, Stage.S1, SID);
        long buf = m.driverHost().heap().allocPages(0, "buf");
        d.map(IOVA, buf, 8192, Prot.READ | Prot.WRITE);
        assertThat(read(IOVA).isOk()).isTrue();
        assertThat(read(IOVA + 4096).isOk()).isTrue();

        d.unmap(IOVA, 4096); // queued at t = 100
        now.set(100 + BOUND);
        assertThat(read(IOVA).isOk()).as("not flushed: the IOTLB still has it").isTrue();
        assertThat(read(IOVA + 4096).isOk()).as("still mapped").isTrue();
        assertThat(m.sanitizer().reports(0)).as("exactly at the bound is allowed").isEmpty();

        now.set(100 + BOUND + 1);
        assertThat(read(IOVA + 8).isOk()).isTrue();
        assertThat(m.sanitizer().reports(0)).singleElement().satisfies(r -> {
            assertThat(r.kind()).isEqualTo(SanitizerReport.Kind.LAZY_BOUND_EXCEEDED);
            assertThat(r.iova()).isEqualTo(IOVA + 8);
            assertThat(r.pa()).isEqualTo(buf + 8);
            assertThat(r.causeFirst()).isEqualTo(IOVA);
            assertThat(r.causeLast()).isEqualTo(IOVA + 4095);
            assertThat(r.causeNanos()).isEqualTo(100);
            assertThat(r.causeFlushed()).isFalse();
            assertThat(r.domain()).isEqualTo("lazy");
            assertThat(r.detail()).contains("bound " + BOUND + " ns");
        });

        assertThat(d.flushQueue()).isTrue();
        assertThat(read(IOVA).status()).as("flushed").isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(m.sanitizer().counts("smmu0")).containsExactly(
                java.util.Map.entry(SanitizerReport.Kind.LAZY_BOUND_EXCEEDED, 1L));
        assertThat(m.sanitizer().counts("dmar0")).isEmpty();
    }

    /** A tracked strict domain (smmu0, instance 0), whose shadow the tests feed by hand. */
    private DomainShadow shadow(FlushPolicy policy) throws Exception {
        m.sanitizer().enable(true);
        DriverInstance o = m.driverHost().takeOver(m.iommu("smmu0"));
        IommuDomain d = IommuDomain.builder(o.format(Stage.S1, 12, o.defaultInputBits(Stage.S1), o.outputBits()),
                m.memory(), m.driverHost().heap()).name("d").flushPolicy(policy).flushQueueTimeoutNanos(BOUND)
                .clock(now::get).build();
        m.sanitizer().track(d, null);
        return (DomainShadow) d.mappingObserver();
    }

    @Test
    void anUnmapLongAgoIsStillTheCauseAndReuseDoesNotGrowTheRecord() throws Exception {
        DomainShadow s = shadow(FlushPolicy.STRICT);
        long pa = 0x8100_0000L;
        for (int k = 0; k < 1000; k++) {
            s.mapped(s.domain, IOVA + 4096L * k, pa + 4096L * k, 4096, Prot.READ);
            s.unmapped(s.domain, IOVA + 4096L * k, 4096);
        }
        assertThat(s.goneRanges()).isEqualTo(1000);
        synchronized (m.sanitizer().lock) {
            s.check(0, SID, -1, IOVA + 8, pa + 8, 8, false);
        }
        assertThat(m.sanitizer().reports(0)).singleElement().satisfies(r -> {
            assertThat(r.kind()).isEqualTo(SanitizerReport.Kind.STALE_TRANSLATION);
            assertThat(r.causeSequence()).as("the first unmap, 999 unmaps before the access").isEqualTo(2);
            assertThat(r.causeFirst()).isEqualTo(IOVA);
            assertThat(r.causeLast()).isEqualTo(IOVA + 4095);
            assertThat(r.detail()).contains("(pa 0x81000000)");
        });
        for (int k = 0; k < 1000; k++) {
            s.mapped(s.domain, IOVA, pa, 4096, Prot.READ);
            s.unmapped(s.domain, IOVA, 4096);
        }
        assertThat(s.goneRanges()).as("an iova's last unmap replaces the ones before").isEqualTo(1000);
        s.mapped(s.domain, IOVA, pa, 8192, Prot.READ);
        assertThat(s.goneRanges()).as("mapped again: no longer unmapped").isEqualTo(998);
        assertThat(s.findGone(IOVA + 4096)).isEqualTo(-1);
        assertThat(s.findGone(IOVA + 8192)).isZero();
    }

    @Test
    void aChunkIsJudgedPieceByPiece() throws Exception {
        DomainShadow s = shadow(FlushPolicy.STRICT);
        long pa = 0x8200_0000L;
        s.mapped(s.domain, IOVA, pa, 3 * 4096, Prot.READ);
        s.unmapped(s.domain, IOVA + 4096, 4096);
        synchronized (m.sanitizer().lock) {
            s.check(0, SID, -1, IOVA, pa, 4096, false); // live
            s.check(0, SID, -1, IOVA + 8192, pa + 8192, 4096, false); // live
        }
        assertThat(m.sanitizer().reports(0)).isEmpty();
        synchronized (m.sanitizer().lock) {
            // one chunk through a stale 16 KiB entry: live, unmapped, live
            s.check(0, SID, -1, IOVA, pa, 3 * 4096, false);
        }
        assertThat(m.sanitizer().reports(0)).singleElement().satisfies(r -> {
            assertThat(r.kind()).isEqualTo(SanitizerReport.Kind.STALE_TRANSLATION);
            assertThat(r.iova()).as("reported where the unmapped piece starts").isEqualTo(IOVA + 4096);
            assertThat(r.pa()).isEqualTo(pa + 4096);
        });
    }

    @Test
    void aPieceInTheLazyWindowIsAllowedAndTheUnknownPieceAfterItIsNot() throws Exception {
        DomainShadow s = shadow(FlushPolicy.LAZY);
        long pa = 0x8300_0000L;
        s.mapped(s.domain, IOVA, pa, 4096, Prot.READ);
        s.unmapped(s.domain, IOVA, 4096); // queued at t = 100, not flushed
        synchronized (m.sanitizer().lock) {
            s.check(0, SID, -1, IOVA, pa, 4096, false);
        }
        assertThat(m.sanitizer().reports(0)).as("within the lazy window").isEmpty();
        synchronized (m.sanitizer().lock) {
            s.check(0, SID, -1, IOVA, pa, 8192, false); // the second page was never mapped, nor is its output
        }
        assertThat(m.sanitizer().reports(0)).singleElement().satisfies(r -> {
            assertThat(r.kind()).isEqualTo(SanitizerReport.Kind.UNMAPPED_MEMORY);
            assertThat(r.iova()).isEqualTo(IOVA + 4096);
        });
    }

    @Test
    void aReportNamesTheIotlbEntryOrTheWalkThatServedIt() throws Exception {
        m.sanitizer().enable(true);
        DriverInstance o = m.driverHost().takeOver(m.iommu("smmu0"));
        IommuDomain d = IommuDomain.builder(o.format(Stage.S1, 12, o.defaultInputBits(Stage.S1), o.outputBits()),
                m.memory(), m.driverHost().heap()).name("d").build();
        m.sanitizer().track(d, null);
        o.attachStream(d, Stage.S1, SID);
        long buf = m.driverHost().heap().allocPages(0, "buf");
        d.map(IOVA, buf, 4096, Prot.READ | Prot.WRITE);
        assertThat(read(IOVA).isOk()).isTrue(); // walks, and caches the entry
        m.faults().inject(new org.iommuemu.device.inject.FaultSpec(
                org.iommuemu.device.inject.InjectionKind.IGNORE_IOTLB_INVALIDATION).iommu("smmu0"));
        d.unmap(IOVA, 4096);
        assertThat(read(IOVA + 16).isOk()).as("the ignored TLBI left the entry").isTrue();
        assertThat(m.sanitizer().reports(0)).singleElement().satisfies(r -> {
            assertThat(r.kind()).isEqualTo(SanitizerReport.Kind.STALE_TRANSLATION);
            assertThat(r.servedBy()).startsWith("smmu0 IOTLB entry for iova [0x400000, 0x400fff] (4 KiB) tagged")
                    .contains("asid/pasid");
            assertThat(r.detail()).contains("; served by smmu0 IOTLB entry");
        });
        // a page-table entry written behind the API's back: the walk itself serves the access
        m.faults().clearAll();
        long other = m.driverHost().heap().allocPages(0, "other");
        d.pageTable().map(IOVA + 0x10_0000, other, 4096, Prot.READ,
                new org.iommuemu.core.pgtable.IotlbGather(g -> { }, m.driverHost().heap()));
        assertThat(read(IOVA + 0x10_0000).isOk()).isTrue();
        assertThat(m.sanitizer().reports(1)).singleElement().satisfies(r -> {
            assertThat(r.kind()).isEqualTo(SanitizerReport.Kind.UNMAPPED_MEMORY);
            assertThat(r.servedBy()).startsWith("smmu0 table walk");
        });
    }

    @Test
    void offTheDmaEngineHasNoCheckerAndNothingIsShadowed() throws Exception {
        DriverInstance o = m.driverHost().takeOver(m.iommu("smmu0"));
        IommuDomain d = IommuDomain.builder(o.format(Stage.S1, 12, o.defaultInputBits(Stage.S1), o.outputBits()),
                m.memory(), m.driverHost().heap()).build();
        m.sanitizer().track(d, null);
        assertThat(d.mappingObserver()).isNull();
        m.sanitizer().enable(true);
        m.sanitizer().enable(false);
        assertThat(m.sanitizer().isEnabled()).isFalse();
    }

    @Test
    void theLongMapKeepsItsEntriesThroughRemovalsAndGrowth() {
        LongLongMap map = new LongLongMap();
        java.util.Map<Long, Long> ref = new java.util.HashMap<>();
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(7);
        for (int i = 0; i < 20_000; i++) {
            long k = rnd.nextLong(300);
            if (rnd.nextInt(3) == 0) {
                map.remove(k);
                ref.remove(k);
            } else {
                map.add(k, 1);
                ref.merge(k, 1L, Long::sum);
            }
            long probe = rnd.nextLong(300);
            assertThat(map.get(probe)).as("step %d key %d", i, probe)
                    .isEqualTo(ref.getOrDefault(probe, LongLongMap.MISSING));
        }
        assertThat(map.size()).isEqualTo(ref.size());
    }
}
