package org.iommuemu.device.smmuv3.driver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.smmuv3.SmmuV3Domains;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.driver.smmuv3.TlbiPlanner;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.L1CdDescriptor;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.device.xlate.ConfigCache;
import org.junit.jupiter.api.Test;

/**
 * Substreams through the driver's domains against the real device: the CD table with room for SubstreamIDs (linear,
 * 2-level with 64 KB or 4 KB leaves), S1DSS as the whole stream's domain comes and goes, the order of CD and STE
 * writes and their invalidations, detach, contexts, fault routing, concurrency and the allocation-free hot path.
 */
class SmmuV3SubstreamsTest {
    private static final int SID = 0x20;
    private static final long IOVA = 0x4000_0000L;
    private static final int NONE = ConfigCache.NO_SUBSTREAM;

    private static SmmuV3Domains domains(DriverRig rig) {
        return new SmmuV3Domains(rig.driver, "smmu0", TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD);
    }

    /** A stage-1 domain mapping 16 KiB at IOVA read-write to a fresh buffer, whose pa is {@code pas[0]}. */
    private static IommuDomain mapped(DriverRig rig, String name, long[] pas) throws IommuApiException {
        IommuDomain d = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 48), rig.ram, rig.alloc).name(name)
                .flushPolicy(FlushPolicy.STRICT).build();
        pas[0] = rig.alloc.allocBytes(16 << 10, "dma");
        d.map(IOVA, pas[0], 16 << 10, Prot.READ | Prot.WRITE);
        return d;
    }

    private static Translation xlate(DriverRig rig, int ssid, long iova) {
        return rig.smmu.translate(SID, ssid, iova, Access.WRITE, new Translation());
    }

    private static long pa(DriverRig rig, int ssid, long iova) {
        Translation t = xlate(rig, ssid, iova);
        assertThat(t.isOk()).as("ssid %s: %s", ssid, t).isTrue();
        return t.physicalAddress();
    }

    private static int code(DriverRig rig, int ssid) {
        Translation t = xlate(rig, ssid, IOVA);
        assertThat(t.isOk()).as("ssid %s translated", ssid).isFalse();
        return t.code();
    }

    private static long cdPages(DriverRig rig) {
        return rig.alloc.allocatedPages("smmu-cd");
    }

    @Test
    void aSubstreamTranslatesThroughItsDomainAndTrafficWithoutOneIsTerminated() throws Exception {
        DriverRig rig = DriverRig.started();
        SmmuV3Domains smmu = domains(rig);
        assertThat(smmu.substreamBits()).as("the default SMMU's 20 SubstreamID bits").isEqualTo(20);
        long[] a = new long[1];
        long[] b = new long[1];
        IommuDomain da = mapped(rig, "a", a);
        IommuDomain db = mapped(rig, "b", b);
        long cfgiCd = rig.executed(CommandOp.CFGI_CD);

        smmu.attachSubstream(da, SID, 5);

        Ste ste = rig.driver.readSte(SID);
        assertThat(ste.config()).isEqualTo(Ste.CONFIG_S1);
        assertThat(ste.s1CdMax()).isEqualTo(20);
        assertThat(ste.s1Fmt()).as("2-level with 64 KB leaves, as Linux").isEqualTo(Ste.S1FMT_64K_L2);
        assertThat(ste.s1Dss()).as("no whole-stream domain: traffic without a SubstreamID terminates")
                .isEqualTo(Ste.S1DSS_TERMINATE);
        assertThat(rig.executed(CommandOp.CFGI_CD) - cfgiCd).as("the table was filled before the STE named it")
                .isZero();
        assertThat(cdPages(rig)).as("an 8 KiB L1 table and one 64 KiB leaf").isEqualTo(2 + 16);
        assertThat(smmu.contextId(da)).isEqualTo(1);
        assertThat(da.isAttached(smmu)).isTrue();

        assertThat(pa(rig, 5, IOVA + 0x1010)).isEqualTo(a[0] + 0x1010);
        Translation none = xlate(rig, NONE, IOVA);
        assertThat(none.outcome()).isEqualTo(Translation.Outcome.FAULT);
        assertThat(none.code()).isEqualTo(EventType.F_STREAM_DISABLED);
        assertThat(none.faultType()).isEqualTo(FaultType.ABORTED);
        assertThat(code(rig, 6)).as("a CD slot of the same leaf, never written").isEqualTo(EventType.C_BAD_CD);
        assertThat(code(rig, 5000)).as("a leaf that does not exist").isEqualTo(EventType.C_BAD_SUBSTREAMID);

        smmu.attachSubstream(db, SID, 6);
        assertThat(rig.executed(CommandOp.CFGI_CD) - cfgiCd).as("a later CD: CFGI_CD").isEqualTo(1);
        assertThat(pa(rig, 6, IOVA)).as("the C_BAD_CD above was not cached").isEqualTo(b[0]);
        assertThat(smmu.contextId(db)).isEqualTo(2);

        smmu.attachSubstream(db, SID, 5000);
        assertThat(pa(rig, 5000, IOVA + 0x20)).isEqualTo(b[0] + 0x20);
        assertThat(cdPages(rig)).as("a second leaf").isEqualTo(2 + 16 + 16);
        assertThat(smmu.substreamsOf(SID)).containsExactly(5, 6, 5000);
        assertThat(smmu.domainOf(SID, 6)).isSameAs(db);
        assertThat(smmu.domainOf(SID)).as("no whole-stream domain").isNull();
    }

    @Test
    void theWholeStreamKeepsCdZeroBesideItsSubstreamsAndEitherCanLeave() throws Exception {
        DriverRig rig = DriverRig.started();
        SmmuV3Domains smmu = domains(rig);
        long[] w = new long[1];
        long[] a = new long[1];
        IommuDomain whole = mapped(rig, "whole", w);
        IommuDomain da = mapped(rig, "a", a);
        smmu.attachStream(whole, SmmuV3Domains.Stage.S1, SID);
        assertThat(pa(rig, NONE, IOVA)).isEqualTo(w[0]);
        assertThat(rig.driver.readSte(SID).s1CdMax()).as("one CD until a substream comes").isZero();

        smmu.attachSubstream(da, SID, 1);

        Ste ste = rig.driver.readSte(SID);
        assertThat(ste.s1CdMax()).isEqualTo(20);
        assertThat(ste.s1Dss()).isEqualTo(Ste.S1DSS_SSID0);
        assertThat(cdPages(rig)).as("the one-CD table was freed").isEqualTo(2 + 16);
        assertThat(pa(rig, NONE, IOVA + 0x40)).as("CD 0 was carried over").isEqualTo(w[0] + 0x40);
        assertThat(pa(rig, 0, IOVA + 0x80)).as("SubstreamID 0 is CD 0 too").isEqualTo(w[0] + 0x80);
        assertThat(pa(rig, 1, IOVA + 0x80)).isEqualTo(a[0] + 0x80);

        long asid = rig.executed(CommandOp.TLBI_NH_ASID);
        smmu.detachStream(SID);
        assertThat(rig.driver.readSte(SID).s1Dss()).isEqualTo(Ste.S1DSS_TERMINATE);
        assertThat(code(rig, NONE)).isEqualTo(EventType.F_STREAM_DISABLED);
        assertThat(code(rig, 0)).as("CD 0 was cleared and invalidated").isEqualTo(EventType.C_BAD_CD);
        assertThat(pa(rig, 1, IOVA)).as("the substream goes on").isEqualTo(a[0]);
        assertThat(smmu.contextId(whole)).isEqualTo(-1);
        assertThat(whole.isAttached(smmu)).isFalse();
        assertThat(rig.executed(CommandOp.TLBI_NH_ASID) - asid).as("the whole domain's context flushed").isEqualTo(1);

        smmu.attachStream(whole, SmmuV3Domains.Stage.S1, SID);
        assertThat(rig.driver.readSte(SID).s1Dss()).isEqualTo(Ste.S1DSS_SSID0);
        assertThat(pa(rig, NONE, IOVA)).isEqualTo(w[0]);

        smmu.detachSubstream(SID, 1);
        assertThat(code(rig, 1)).isEqualTo(EventType.C_BAD_CD);
        assertThat(pa(rig, NONE, IOVA)).isEqualTo(w[0]);
        assertThat(rig.driver.readSte(SID).s1CdMax()).as("the table keeps its room").isEqualTo(20);

        smmu.detachStream(SID);
        assertThat(rig.driver.readSte(SID).isAbort()).isTrue();
        assertThat(xlate(rig, NONE, IOVA).faultType()).isEqualTo(FaultType.ABORTED);
        assertThat(cdPages(rig)).as("nothing attached: every CD table page freed").isZero();
        assertThat(smmu.domainOf(SID)).isNull();
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

    @Test
    void aCdTheSmmuMayUseIsWrittenWithValidLastAndInvalidatedByCfgiCd() throws Exception {
        DriverRig rig = new DriverRig(SmmuV3Config.defaults());
        RecordingMemory recorder = recordingRig(rig);
        SmmuV3Domains smmu = domains(rig);
        long[] a = new long[1];
        long[] b = new long[1];
        long[] c = new long[1];
        IommuDomain da = mapped(rig, "a", a);
        IommuDomain db = mapped(rig, "b", b);
        IommuDomain dc = mapped(rig, "c", c);
        smmu.attachSubstream(da, SID, 1);
        long leaf = L1CdDescriptor.decode(rig.r64(rig.driver.readSte(SID).s1ContextPtr())).l2Ptr();
        long at = leaf + 9L * Cd.SIZE;

        recorder.watch(at, Cd.SIZE);
        long cfgiCd = rig.executed(CommandOp.CFGI_CD);
        smmu.attachSubstream(db, SID, 9);

        List<long[]> writes = recorder.writes;
        assertThat(writes).hasSize(Cd.DWORDS);
        assertThat(writes.subList(0, Cd.DWORDS - 1)).extracting(x -> x[0]).doesNotContain(at);
        assertThat(writes.get(Cd.DWORDS - 1)[0]).as("word 0 last").isEqualTo(at);
        assertThat(Cd.V.isSet(writes.get(Cd.DWORDS - 1)[1])).isTrue();
        assertThat(Cd.decode(rig.r64(at), rig.r64(at + 8), 0, 0, 0).ttb0()).isEqualTo(db.pageTable().root());
        assertThat(rig.executed(CommandOp.CFGI_CD) - cfgiCd).isEqualTo(1);
        assertThat(pa(rig, 9, IOVA)).isEqualTo(b[0]);

        recorder.watch(at, Cd.SIZE);
        cfgiCd = rig.executed(CommandOp.CFGI_CD);
        smmu.attachSubstream(dc, SID, 9); // moves the substream: the old CD is made invalid first

        writes = recorder.writes;
        assertThat(writes.get(0)).as("first: V=0").containsExactly(at, 0L);
        assertThat(writes.get(writes.size() - 1)[0]).as("last: word 0 of the new CD").isEqualTo(at);
        assertThat(Cd.V.isSet(writes.get(writes.size() - 1)[1])).isTrue();
        assertThat(rig.executed(CommandOp.CFGI_CD) - cfgiCd).as("after the clear and after the write").isEqualTo(2);
        assertThat(pa(rig, 9, IOVA)).as("no stale CD").isEqualTo(c[0]);
        assertThat(smmu.contextId(db)).as("b's only use ended").isEqualTo(-1);
    }

    @Test
    void detachingASubstreamInvalidatesItsCdAndEndsItsContext() throws Exception {
        DriverRig rig = DriverRig.started();
        SmmuV3Domains smmu = domains(rig);
        long[] a = new long[1];
        long[] b = new long[1];
        IommuDomain da = mapped(rig, "a", a);
        IommuDomain db = mapped(rig, "b", b);
        smmu.attachSubstream(da, SID, 3);
        smmu.attachSubstream(db, SID, 4);
        assertThat(pa(rig, 3, IOVA)).isEqualTo(a[0]); // the CD and the translation are cached now
        long asid = rig.executed(CommandOp.TLBI_NH_ASID);
        long cfgiCd = rig.executed(CommandOp.CFGI_CD);

        smmu.detachSubstream(SID, 3);

        assertThat(rig.executed(CommandOp.CFGI_CD) - cfgiCd).isEqualTo(1);
        assertThat(code(rig, 3)).as("the cached CD went with CFGI_CD").isEqualTo(EventType.C_BAD_CD);
        assertThat(pa(rig, 4, IOVA)).isEqualTo(b[0]);
        assertThat(rig.executed(CommandOp.TLBI_NH_ASID) - asid).as("a's context flushed by ASID").isEqualTo(1);
        assertThat(smmu.contextId(da)).isEqualTo(-1);
        assertThat(da.isAttached(smmu)).isFalse();
        smmu.detachSubstream(SID, 3); // not attached: nothing happens
        smmu.attachSubstream(da, SID, 3);
        assertThat(smmu.contextId(da)).as("ASID 1 was freed and is reused").isEqualTo(1);

        smmu.detachSubstream(SID, 3);
        smmu.detachSubstream(SID, 4);
        assertThat(rig.driver.readSte(SID).isAbort()).as("nothing left: the stream aborts").isTrue();
        assertThat(cdPages(rig)).isZero();
        assertThat(smmu.substreamsOf(SID)).isEmpty();
    }

    @Test
    void aDomainOnSeveralSubstreamsAndTheWholeStreamIsInvalidatedOnce() throws Exception {
        DriverRig rig = DriverRig.started();
        SmmuV3Domains smmu = domains(rig);
        long[] a = new long[1];
        IommuDomain da = mapped(rig, "a", a);
        smmu.attachStream(da, SmmuV3Domains.Stage.S1, SID);
        smmu.attachSubstream(da, SID, 1);
        smmu.attachSubstream(da, SID, 2);
        assertThat(smmu.contextId(da)).as("one context for all three").isEqualTo(1);
        for (int ssid : new int[] {NONE, 1, 2}) {
            assertThat(pa(rig, ssid, IOVA + 0x3000)).isEqualTo(a[0] + 0x3000);
        }
        long va = rig.executed(CommandOp.TLBI_NH_VA);

        da.unmap(IOVA, 16 << 10);

        assertThat(rig.executed(CommandOp.TLBI_NH_VA) - va).as("one range TLBI for the ASID").isEqualTo(1);
        for (int ssid : new int[] {NONE, 1, 2}) {
            assertThat(code(rig, ssid)).as("ssid %s", ssid).isEqualTo(EventType.F_TRANSLATION);
        }
        smmu.detachSubstream(SID, 1);
        smmu.detachStream(SID);
        assertThat(smmu.contextId(da)).as("substream 2 still uses it").isEqualTo(1);
        smmu.detachSubstream(SID, 2);
        assertThat(smmu.contextId(da)).isEqualTo(-1);
    }

    @Test
    void smallWidthsGetALinearTableAndLeavesCanBe4k() throws Exception {
        long[] a = new long[1];
        DriverRig narrow = DriverRig.started(SmmuV3Config.defaults(),
                SmmuV3DriverOptions.defaults().withMaxSsidBits(4));
        SmmuV3Domains n = domains(narrow);
        assertThat(n.substreamBits()).isEqualTo(4);
        IommuDomain dn = mapped(narrow, "n", a);
        assertThatThrownBy(() -> n.attachSubstream(dn, SID, 16)).isInstanceOfSatisfying(IommuApiException.class,
                e -> assertThat(e.kind()).isEqualTo(IommuApiException.Kind.BAD_ARGUMENT))
                .hasMessageContaining("SubstreamID 16").hasMessageContaining("is not 1..15");
        n.attachSubstream(dn, SID, 15);
        Ste ste = narrow.driver.readSte(SID);
        assertThat(ste.s1Fmt()).isEqualTo(Ste.S1FMT_LINEAR);
        assertThat(ste.s1CdMax()).isEqualTo(4);
        assertThat(cdPages(narrow)).as("16 CDs: one page").isEqualTo(1);
        assertThat(pa(narrow, 15, IOVA)).isEqualTo(a[0]);
        assertThat(code(narrow, 16)).as("beyond S1CDMax").isEqualTo(EventType.C_BAD_SUBSTREAMID);

        DriverRig flat = DriverRig.started(SmmuV3Config.builder().twoLevelCd(false).build(),
                SmmuV3DriverOptions.defaults().withMaxSsidBits(12));
        SmmuV3Domains f = domains(flat);
        f.attachSubstream(mapped(flat, "f", a), SID, 4095);
        assertThat(flat.driver.readSte(SID).s1Fmt()).as("no IDR0.CD2L: linear").isEqualTo(Ste.S1FMT_LINEAR);
        assertThat(cdPages(flat)).as("4096 CDs of 64 bytes").isEqualTo(64);
        assertThat(pa(flat, 4095, IOVA)).isEqualTo(a[0]);

        DriverRig small = DriverRig.started(SmmuV3Config.defaults(),
                SmmuV3DriverOptions.defaults().withMaxSsidBits(8).withCdLeaf64k(false));
        SmmuV3Domains s = domains(small);
        s.attachSubstream(mapped(small, "s", a), SID, 200);
        ste = small.driver.readSte(SID);
        assertThat(ste.s1Fmt()).isEqualTo(Ste.S1FMT_4K_L2);
        assertThat(ste.s1CdMax()).isEqualTo(8);
        assertThat(cdPages(small)).as("a 32-byte L1 table and one 4 KiB leaf").isEqualTo(2);
        assertThat(L1CdDescriptor.valid(small.r64(ste.s1ContextPtr() + 3 * 8))).as("SSID 200 is in leaf 3").isTrue();
        assertThat(pa(small, 200, IOVA + 8)).isEqualTo(a[0] + 8);
        assertThat(code(small, 10)).as("leaf 0 was never made").isEqualTo(EventType.C_BAD_SUBSTREAMID);

        DriverRig without = DriverRig.started(SmmuV3Config.builder().ssidBits(0).build());
        SmmuV3Domains w = domains(without);
        assertThat(w.substreamBits()).isZero();
        assertThatThrownBy(() -> w.attachSubstream(mapped(without, "w", a), SID, 1))
                .isInstanceOfSatisfying(IommuApiException.class,
                        e -> assertThat(e.kind()).isEqualTo(IommuApiException.Kind.INCOMPATIBLE_INSTANCE))
                .hasMessageContaining("the SMMU has no SubstreamIDs (IDR1.SSIDSIZE 0)");
    }

    @Test
    void stage2StreamsAndSubstreamsDoNotMix() throws Exception {
        DriverRig rig = DriverRig.started();
        SmmuV3Domains smmu = domains(rig);
        long[] a = new long[1];
        IommuDomain da = mapped(rig, "a", a);
        IommuDomain s2 = IommuDomain.builder(Arm64Lpae.stage2(12, 40, 48), rig.ram, rig.alloc).name("s2").build();

        assertThatThrownBy(() -> smmu.attachSubstream(da, SID, 0)).hasMessageContaining("SubstreamID 0 is the whole");
        assertThatThrownBy(() -> smmu.attachSubstream(s2, SID, 1)).hasMessageContaining("not one for stage 1");

        smmu.attachStream(s2, SmmuV3Domains.Stage.S2, SID);
        assertThatThrownBy(() -> smmu.attachSubstream(da, SID, 1)).isInstanceOfSatisfying(IommuApiException.class,
                e -> assertThat(e.kind()).isEqualTo(IommuApiException.Kind.INCOMPATIBLE_INSTANCE))
                .hasMessageContaining("attached to stage-2 domain s2");
        assertThat(smmu.contextId(da)).as("nothing was taken").isEqualTo(-1);

        smmu.attachStream(da, SmmuV3Domains.Stage.S1, SID + 1);
        smmu.attachSubstream(da, SID + 1, 1);
        assertThatThrownBy(() -> smmu.attachStream(s2, SmmuV3Domains.Stage.S2, SID + 1))
                .hasMessageContaining("substreams [1] are attached to it");
        assertThat(smmu.domainOf(SID + 1)).as("the refused attach left the stream alone").isSameAs(da);
        assertThat(rig.smmu.translate(SID + 1, 1, IOVA, 0, new Translation()).physicalAddress()).isEqualTo(a[0]);
    }

    @Test
    void faultsCarryingASubstreamIdReachThatSubstreamsDomain() throws Exception {
        DriverRig rig = DriverRig.started();
        SmmuV3Domains smmu = domains(rig);
        long[] p = new long[1];
        IommuDomain whole = mapped(rig, "whole", p);
        IommuDomain da = mapped(rig, "a", p);
        IommuDomain db = mapped(rig, "b", p);
        smmu.attachStream(whole, SmmuV3Domains.Stage.S1, SID);
        smmu.attachSubstream(da, SID, 1);
        smmu.attachSubstream(db, SID, 2);
        List<String> faults = new ArrayList<>();
        for (IommuDomain d : List.of(whole, da, db)) {
            smmu.setFaultHandler(d, (dom, sid, e) -> faults.add(dom.name() + "/" + (e.ssv() ? e.substreamId() : "-")
                    + "/" + EventType.name(e.type())));
        }
        long beyond = IOVA + (1 << 20);

        assertThat(xlate(rig, 2, beyond).code()).isEqualTo(EventType.F_TRANSLATION);
        assertThat(xlate(rig, 1, beyond).code()).isEqualTo(EventType.F_TRANSLATION);
        assertThat(xlate(rig, NONE, beyond).code()).isEqualTo(EventType.F_TRANSLATION);
        assertThat(xlate(rig, 0, beyond).code()).isEqualTo(EventType.F_TRANSLATION);
        rig.driver.drainEvents();

        assertThat(faults).containsExactly("b/2/F_TRANSLATION", "a/1/F_TRANSLATION", "whole/-/F_TRANSLATION",
                "whole/0/F_TRANSLATION");
        assertThat(smmu.unhandledEvents()).isZero();
    }

    @Test
    void concurrentSubstreamAttachesAndDetachesWhileTheWholeStreamMapsAndUnmaps() throws Exception {
        DriverRig rig = DriverRig.started();
        SmmuV3Domains smmu = domains(rig);
        long[] w = new long[1];
        IommuDomain whole = mapped(rig, "whole", w);
        smmu.attachStream(whole, SmmuV3Domains.Stage.S1, SID);
        int threads = 3;
        int rounds = 40;
        ExecutorService pool = Executors.newFixedThreadPool(threads + 1);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                long[] p = new long[1];
                IommuDomain d = mapped(rig, "t" + t, p);
                int ssid = 100 + t * 700; // the second and third thread use other leaves
                done.add(pool.submit(() -> {
                    for (int r = 0; r < rounds; r++) {
                        smmu.attachSubstream(d, SID, ssid);
                        Translation tr = rig.smmu.translate(SID, ssid, IOVA + 0x10, 0, new Translation());
                        assertThat(tr.physicalAddress()).as("round %s", r).isEqualTo(p[0] + 0x10);
                        smmu.detachSubstream(SID, ssid);
                    }
                    return null;
                }));
            }
            long extra = rig.alloc.allocBytes(4096, "dma");
            done.add(pool.submit(() -> {
                for (int r = 0; r < rounds * 2; r++) {
                    whole.map(IOVA + (1 << 20), extra, 4096, Prot.READ);
                    assertThat(rig.smmu.translate(SID, NONE, IOVA + (1 << 20), 0, new Translation())
                            .physicalAddress()).isEqualTo(extra);
                    whole.unmap(IOVA + (1 << 20), 4096);
                }
                return null;
            }));
            for (Future<?> f : done) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        assertThat(smmu.substreamsOf(SID)).isEmpty();
        assertThat(pa(rig, NONE, IOVA)).isEqualTo(w[0]);
        assertThat(rig.commandErrors).isEmpty();
        smmu.detachStream(SID);
        assertThat(cdPages(rig)).isZero();
    }

    @Test
    void mapTranslateAndStrictUnmapThroughASubstreamAllocateNothing() throws Exception {
        QuietSmmu q = QuietSmmu.create();
        IommuDomain d = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 48), q.ram(), q.alloc()).name("d")
                .flushPolicy(FlushPolicy.STRICT).build();
        q.smmu().attachSubstream(d, SID, 7);
        long pa = q.alloc().allocBytes(64 << 10, "dma");
        Translation t = new Translation();
        long bytes = QuietSmmu.leastAllocated(1_000, () -> {
            d.map(IOVA, pa, 64 << 10, Prot.READ | Prot.WRITE);
            q.device().translate(SID, 7, IOVA + 0x2000, 0, t);
            d.unmap(IOVA, 64 << 10);
        });
        assertThat(t.isOk()).isTrue();
        assertThat(bytes).as("bytes allocated by 1000 rounds through substream 7 (least of 3 windows)").isZero();
    }
}
