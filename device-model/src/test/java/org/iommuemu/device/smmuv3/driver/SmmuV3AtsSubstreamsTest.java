package org.iommuemu.device.smmuv3.driver;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.smmuv3.SmmuV3Domains;
import org.iommuemu.core.driver.smmuv3.TlbiPlanner;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.AtcPort;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The SMMUv3 driver's ATC invalidations for ATS streams with substreams, against the real device, whose ATS port
 * hands each ATC_INV to a recording device-side endpoint: SSV=1 with the SubstreamID for an unmap in a substream's
 * domain (one per ATS stream and substream of the domain, one CMD_SYNC after them), SSV=0 for the whole-stream
 * domain, the whole space of a SubstreamID when it is detached or moved, EATS kept when the STE is rewritten for
 * the first substream, a LAZY domain's queue flush, and the allocation-free unmap.
 */
class SmmuV3AtsSubstreamsTest {
    private static final int SID = 0x20;
    private static final int SID2 = 0x21;
    private static final int PLAIN = 0x22;
    private static final long IOVA = 0x4000_0000L;
    private static final SmmuV3Config ATS = SmmuV3Config.builder().ats(true).build();

    private final List<Recorder> recorders = new CopyOnWriteArrayList<>();

    /** A device-side ATC on one stream that records every invalidation and completes it. */
    private static final class Recorder implements AutoCloseable {
        final List<AtcPort.Invalidation> got = new CopyOnWriteArrayList<>();
        private final Thread thread;
        private volatile boolean stop;

        Recorder(AtcPort port, int streamId) {
            AtcPort.Endpoint e = port.register(streamId);
            thread = new Thread(() -> {
                while (!stop) {
                    AtcPort.Invalidation inv = e.poll();
                    if (inv == null) {
                        Thread.onSpinWait();
                        continue;
                    }
                    got.add(inv);
                    e.complete(inv.id());
                }
            }, "atc-recorder-" + streamId);
            thread.setDaemon(true);
            thread.start();
        }

        @Override
        public void close() throws InterruptedException {
            stop = true;
            thread.join(10_000);
        }
    }

    @AfterEach
    void tearDown() throws InterruptedException {
        for (Recorder r : recorders) {
            r.close();
        }
    }

    private Recorder record(DriverRig rig, int streamId) {
        Recorder r = new Recorder(rig.smmu.atc(), streamId);
        recorders.add(r);
        return r;
    }

    private static SmmuV3Domains domains(DriverRig rig) {
        return new SmmuV3Domains(rig.driver, "smmu0", TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD);
    }

    private static IommuDomain mapped(DriverRig rig, String name, FlushPolicy policy) throws IommuApiException {
        IommuDomain d = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 48), rig.ram, rig.alloc).name(name)
                .flushPolicy(policy).build();
        d.map(IOVA, rig.alloc.allocBytes(16 << 10, "dma"), 16 << 10, Prot.READ | Prot.WRITE);
        return d;
    }

    private static IommuDomain mapped(DriverRig rig, String name) throws IommuApiException {
        return mapped(rig, name, FlushPolicy.STRICT);
    }

    private static AtcPort.Invalidation inv(int sid, int ssid, long address, int sizeLg2) {
        return new AtcPort.Invalidation(0, sid, false, ssid, address, sizeLg2);
    }

    /** What an invalidation says, without its id. */
    private static List<AtcPort.Invalidation> withoutIds(List<AtcPort.Invalidation> l) {
        return l.stream().map(i -> inv(i.streamId(), i.substreamId(), i.address(), i.sizeLg2())).toList();
    }

    @Test
    void anUnmapInASubstreamDomainSendsSsvAtcInvForEveryAtsStreamOfItAndOneSync() throws Exception {
        DriverRig rig = DriverRig.started(ATS);
        SmmuV3Domains smmu = domains(rig);
        Recorder a = record(rig, SID);
        Recorder b = record(rig, SID2);
        Recorder c = record(rig, PLAIN);
        IommuDomain pasid = mapped(rig, "pasid");
        smmu.attachSubstream(pasid, SID, 5);
        smmu.attachSubstream(pasid, SID2, 9);
        smmu.attachSubstream(pasid, PLAIN, 5);
        smmu.attachStream(mapped(rig, "w1"), SmmuV3Domains.Stage.S1, SID);
        smmu.attachStream(mapped(rig, "w2"), SmmuV3Domains.Stage.S1, SID2);
        smmu.attachStream(mapped(rig, "w3"), SmmuV3Domains.Stage.S1, PLAIN);
        smmu.enableAts(SID); // substreams first, ATS after: works
        smmu.enableAts(SID2);
        assertThat(rig.driver.readSte(SID).eats()).isEqualTo(Ste.EATS_TRANS);
        long syncs = rig.executed(CommandOp.CMD_SYNC);
        long atcInvs = rig.executed(CommandOp.ATC_INV);

        pasid.unmap(IOVA + 0x1000, 0x1000);

        assertThat(withoutIds(a.got)).containsExactly(inv(SID, 5, IOVA + 0x1000, 12));
        assertThat(withoutIds(b.got)).containsExactly(inv(SID2, 9, IOVA + 0x1000, 12));
        assertThat(c.got).as("the stream without ATS has no ATC").isEmpty();
        assertThat(rig.executed(CommandOp.ATC_INV) - atcInvs).isEqualTo(2);
        assertThat(rig.executed(CommandOp.CMD_SYNC) - syncs).as("the TLBI's sync and one after both ATC_INVs")
                .isEqualTo(2);

        pasid.unmap(IOVA + 0x2000, 0x2000);
        assertThat(withoutIds(a.got)).as("a range: the smallest aligned power-of-two span").endsWith(
                inv(SID, 5, IOVA + 0x2000, 13));
        assertThat(rig.commandErrors).isEmpty();
    }

    @Test
    void anUnmapInTheWholeStreamDomainSendsAtcInvWithoutASubstream() throws Exception {
        DriverRig rig = DriverRig.started(ATS);
        SmmuV3Domains smmu = domains(rig);
        Recorder a = record(rig, SID);
        IommuDomain whole = mapped(rig, "whole");
        smmu.attachStream(whole, SmmuV3Domains.Stage.S1, SID);
        smmu.enableAts(SID);
        smmu.attachSubstream(mapped(rig, "pasid"), SID, 5);

        whole.unmap(IOVA, 0x1000);

        assertThat(withoutIds(a.got)).containsExactly(inv(SID, -1, IOVA, 12));
    }

    @Test
    void theFirstSubstreamOfAnAtsStreamKeepsEatsInTheNewSte() throws Exception {
        DriverRig rig = DriverRig.started(ATS);
        SmmuV3Domains smmu = domains(rig);
        smmu.attachStream(mapped(rig, "whole"), SmmuV3Domains.Stage.S1, SID);
        smmu.enableAts(SID);

        smmu.attachSubstream(mapped(rig, "pasid"), SID, 5);

        Ste ste = rig.driver.readSte(SID);
        assertThat(ste.s1CdMax()).as("the CD table with room for substreams").isPositive();
        assertThat(ste.eats()).as("EATS survives the STE rewrite").isEqualTo(Ste.EATS_TRANS);
        Translation t = rig.smmu.translate(SID, 5, IOVA, Access.TRANSLATION_REQUEST, new Translation());
        assertThat(t.isOk()).as("a translation request on the substream: %s", t).isTrue();
    }

    @Test
    void detachingOrMovingASubstreamOfAnAtsStreamInvalidatesThatSubstreamsWholeSpace() throws Exception {
        DriverRig rig = DriverRig.started(ATS);
        SmmuV3Domains smmu = domains(rig);
        Recorder a = record(rig, SID);
        smmu.attachStream(mapped(rig, "whole"), SmmuV3Domains.Stage.S1, SID);
        smmu.enableAts(SID);
        IommuDomain p = mapped(rig, "p");
        smmu.attachSubstream(p, SID, 5);
        smmu.attachSubstream(mapped(rig, "q"), SID, 6);

        smmu.detachSubstream(SID, 5);
        assertThat(withoutIds(a.got)).containsExactly(inv(SID, 5, 0, 64));

        smmu.attachSubstream(mapped(rig, "r"), SID, 6); // moved from q to r
        assertThat(withoutIds(a.got)).containsExactly(inv(SID, 5, 0, 64), inv(SID, 6, 0, 64));

        a.got.clear();
        p.unmap(IOVA, 0x1000);
        assertThat(a.got).as("p no longer translates for the stream: nothing to invalidate").isEmpty();
        assertThat(smmu.atsEnabled(SID)).isTrue();
        assertThat(rig.driver.readSte(SID).eats()).isEqualTo(Ste.EATS_TRANS);
    }

    @Test
    void aLazyDomainsQueueFlushInvalidatesTheAtcsOfItsStreams() throws Exception {
        DriverRig rig = DriverRig.started(ATS);
        SmmuV3Domains smmu = domains(rig);
        Recorder a = record(rig, SID);
        smmu.attachStream(mapped(rig, "whole"), SmmuV3Domains.Stage.S1, SID);
        smmu.enableAts(SID);
        IommuDomain lazy = mapped(rig, "lazy", FlushPolicy.LAZY);
        smmu.attachSubstream(lazy, SID, 5);

        lazy.unmap(IOVA, 0x1000);
        lazy.flushAll();

        assertThat(withoutIds(a.got)).as("the flush's ATC_INV: everything of substream 5")
                .contains(inv(SID, 5, 0, 64));
    }

    @Test
    void aStrictUnmapInASubstreamDomainOfAnAtsStreamAllocatesNothing() throws Exception {
        QuietSmmu q = QuietSmmu.create(ATS);
        IommuDomain whole = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 48), q.ram(), q.alloc()).name("w")
                .flushPolicy(FlushPolicy.STRICT).build();
        IommuDomain d = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 48), q.ram(), q.alloc()).name("d")
                .flushPolicy(FlushPolicy.STRICT).build();
        q.smmu().attachStream(whole, SmmuV3Domains.Stage.S1, SID);
        q.smmu().attachSubstream(d, SID, 7);
        q.smmu().enableAts(SID);
        long pa = q.alloc().allocBytes(64 << 10, "dma");
        long before = q.device().atc().stats().withoutDevice();
        long bytes = QuietSmmu.leastAllocated(1_000, () -> {
            d.map(IOVA, pa, 64 << 10, Prot.READ | Prot.WRITE);
            d.unmap(IOVA, 64 << 10);
        });
        assertThat(q.device().atc().stats().withoutDevice() - before).as("an ATC_INV per unmap reached the port")
                .isEqualTo(5_000);
        assertThat(bytes).as("bytes allocated by 1000 map + unmap rounds (least of 3 windows)").isZero();
    }
}
