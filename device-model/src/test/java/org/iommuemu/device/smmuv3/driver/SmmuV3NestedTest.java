package org.iommuemu.device.smmuv3.driver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.smmuv3.NestedTables;
import org.iommuemu.core.driver.smmuv3.SmmuV3Domains;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.driver.smmuv3.TlbiPlanner;
import org.iommuemu.core.pgtable.PageTableException;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.device.xlate.ConfigCache;
import org.junit.jupiter.api.Test;

/**
 * Stage-1 domains nested on stage-2 domains through the driver, against the real device: the nested STE, tables
 * reached at IPA == PA, invalidation of each stage (no stale combined entry), stage-2 faults on a nested stream,
 * detach and the nesting tables' life, refusals.
 */
class SmmuV3NestedTest {
    private static final int SID = 0x30;
    private static final long IOVA = 0x4000_0000L;
    /** IPAs for data: below the rig's RAM (and so never the nesting tables' IPA == PA block). */
    private static final long IPA = 0x1000_0000L;
    private static final long TABLES = 4L << 20;

    /** A rig with a stage-2 parent, nesting tables and a stage-1 child built over them. */
    private static final class Nest {
        final DriverRig rig;
        final SmmuV3Domains smmu;
        final IommuDomain parent;
        final NestedTables tables;
        final IommuDomain child;
        final long pa;

        Nest(DriverRig rig, FlushPolicy parentPolicy) throws IommuApiException {
            this.rig = rig;
            this.smmu = new SmmuV3Domains(rig.driver, "smmu0", TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD);
            this.parent = IommuDomain.builder(Arm64Lpae.stage2(12, 40, 48), rig.ram, rig.alloc).name("s2")
                    .flushPolicy(parentPolicy).build();
            this.tables = NestedTables.create(parent, rig.ram, rig.alloc, TABLES);
            this.child = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 40), rig.ram, tables).name("s1").build();
            this.pa = rig.alloc.allocBytes(64 << 10, "dma");
            parent.map(IPA, pa, 64 << 10, Prot.READ | Prot.WRITE);
            child.map(IOVA, IPA, 64 << 10, Prot.READ | Prot.WRITE);
        }

        Nest() throws IommuApiException {
            this(DriverRig.started(), FlushPolicy.STRICT);
        }

        Translation xlate(long iova, int access) {
            return rig.smmu.translate(SID, ConfigCache.NO_SUBSTREAM, iova, access, new Translation());
        }
    }

    @Test
    void aNestedStreamTranslatesIovaToIpaToPaThroughTablesReachedAtIpaEqualsPa() throws Exception {
        Nest n = new Nest();
        assertThat(n.tables.parent()).isSameAs(n.parent);
        assertThat(n.parent.iovaToPhys(n.tables.base() + 0x123)).as("the block is mapped IPA == PA")
                .isEqualTo(n.tables.base() + 0x123);
        assertThat(n.tables.contains(n.child.pageTable().root())).isTrue();

        n.smmu.attachNested(n.child, n.tables, SID);

        Ste ste = n.rig.driver.readSte(SID);
        assertThat(ste.config()).isEqualTo(Ste.CONFIG_NESTED);
        assertThat(ste.s2Vmid()).as("the parent's VMID").isEqualTo(n.smmu.contextId(n.parent)).isEqualTo(1);
        assertThat(ste.s2Ttb()).isEqualTo(n.parent.pageTable().root());
        assertThat(n.tables.contains(ste.s1ContextPtr())).as("the CD table is in the nesting tables").isTrue();
        Cd cd = Cd.decode(n.rig.r64(ste.s1ContextPtr()), n.rig.r64(ste.s1ContextPtr() + 8), 0, 0, 0);
        assertThat(cd.ttb0()).isEqualTo(n.child.pageTable().root());
        assertThat(cd.asid()).isEqualTo(n.smmu.contextId(n.child)).isEqualTo(1);
        assertThat(n.child.isAttached(n.smmu)).isTrue();
        assertThat(n.parent.isAttached(n.smmu)).isTrue();
        assertThat(n.smmu.parentOf(SID)).isSameAs(n.parent);

        byte[] data = {1, 2, 3, 4, 5, 6, 7, 8};
        Translation t = n.xlate(IOVA + 0x5678, Access.WRITE);
        assertThat(t.isOk()).as("%s", t).isTrue();
        assertThat(t.physicalAddress()).isEqualTo(n.pa + 0x5678);
        n.rig.ram.write(t.physicalAddress(), data, 0, data.length);
        byte[] back = new byte[8];
        n.rig.ram.read(n.pa + 0x5678, back, 0, 8);
        assertThat(back).isEqualTo(data);

        // the stage-1 tables grow inside the block: a map that needs new tables far away still translates
        long far = 0x7F_0000_0000L;
        n.child.map(far, IPA + 0x1000, 4096, Prot.READ);
        assertThat(n.xlate(far + 8, 0).physicalAddress()).isEqualTo(n.pa + 0x1008);
        assertThat(n.rig.alloc.allocatedPages(NestedTables.TAG)).as("nothing outside the block")
                .isEqualTo(TABLES >>> 12);
    }

    @Test
    void unmapInEitherStageIsInvalidatedSoNoStaleCombinedEntryServesDma() throws Exception {
        Nest n = new Nest();
        n.smmu.attachNested(n.child, n.tables, SID);
        assertThat(n.xlate(IOVA, 0).isOk()).isTrue(); // a combined stage 1 + 2 entry is cached
        long va = n.rig.executed(CommandOp.TLBI_NH_VA);

        n.child.unmap(IOVA, 64 << 10);

        assertThat(n.rig.executed(CommandOp.TLBI_NH_VA) - va).isEqualTo(1);
        Translation s1gone = n.xlate(IOVA, 0);
        assertThat(s1gone.code()).isEqualTo(EventType.F_TRANSLATION);

        n.child.map(IOVA, IPA, 64 << 10, Prot.READ | Prot.WRITE);
        assertThat(n.xlate(IOVA + 0x2000, 0).physicalAddress()).isEqualTo(n.pa + 0x2000);
        long ipa = n.rig.executed(CommandOp.TLBI_S2_IPA);
        long nhAll = n.rig.executed(CommandOp.TLBI_NH_ALL);

        n.parent.unmap(IPA, 64 << 10);

        assertThat(n.rig.executed(CommandOp.TLBI_S2_IPA) - ipa).isEqualTo(1);
        assertThat(n.rig.executed(CommandOp.TLBI_NH_ALL) - nhAll)
                .as("the parent's unmap also drops the stage-1 (combined) entries of its VMID").isEqualTo(1);
        n.rig.events.clear();
        Translation s2gone = n.xlate(IOVA + 0x2000, 0);
        assertThat(s2gone.code()).as("%s", s2gone).isEqualTo(EventType.F_TRANSLATION);
        n.rig.driver.drainEvents();
        EventRecord e = n.rig.events.get(n.rig.events.size() - 1);
        assertThat(e.s2()).as("a stage-2 fault").isTrue();
        assertThat(e.ipa()).as("the IPA reported").isEqualTo(IPA + 0x2000);
        assertThat(e.inputAddr()).isEqualTo(IOVA + 0x2000);
    }

    @Test
    void faultsOfANestedStreamGoToTheStageThatFaulted() throws Exception {
        Nest n = new Nest();
        n.smmu.attachNested(n.child, n.tables, SID);
        List<String> faults = new ArrayList<>();
        for (IommuDomain d : List.of(n.parent, n.child)) {
            n.smmu.setFaultHandler(d, (dom, sid, e) -> faults.add(dom.name() + "/" + (e.s2() ? "S2" : "S1") + "/"
                    + Long.toHexString(e.inputAddr()) + "/" + Long.toHexString(e.ipa())));
        }
        n.child.map(IOVA + (1 << 20), IPA + (1 << 20), 4096, Prot.READ); // an IPA the parent does not map

        assertThat(n.xlate(IOVA + (1 << 20) + 0x10, 0).code()).isEqualTo(EventType.F_TRANSLATION);
        assertThat(n.xlate(IOVA + (2 << 20), 0).code()).isEqualTo(EventType.F_TRANSLATION);
        n.rig.driver.drainEvents();

        assertThat(faults).containsExactly(
                "s2/S2/" + Long.toHexString(IOVA + (1 << 20) + 0x10) + "/" + Long.toHexString(IPA + (1 << 20)),
                "s1/S1/" + Long.toHexString(IOVA + (2 << 20)) + "/0");
    }

    @Test
    void aParentAlsoServingAWholeStreamInvalidatesBothAndDetachEndsTheContextsInOrder() throws Exception {
        Nest n = new Nest();
        long notNested = n.rig.executed(CommandOp.TLBI_NH_ALL);
        n.smmu.attachStream(n.parent, SmmuV3Domains.Stage.S2, SID + 1);
        n.parent.map(IPA + (1 << 20), n.pa, 4096, Prot.READ);
        n.parent.unmap(IPA + (1 << 20), 4096);
        assertThat(n.rig.executed(CommandOp.TLBI_NH_ALL) - notNested).as("no nested user yet: TLBI_S2_IPA alone")
                .isZero();

        n.smmu.attachNested(n.child, n.tables, SID);
        n.smmu.attachNested(n.child, n.tables, SID + 2);
        assertThat(n.smmu.contextId(n.parent)).as("one VMID for all").isEqualTo(1);
        assertThat(n.rig.smmu.translate(SID + 1, -1, IPA + 0x10, 0, new Translation()).physicalAddress())
                .isEqualTo(n.pa + 0x10);
        assertThat(n.rig.smmu.translate(SID + 2, -1, IOVA + 0x10, 0, new Translation()).physicalAddress())
                .isEqualTo(n.pa + 0x10);

        long asid = n.rig.executed(CommandOp.TLBI_NH_ASID);
        long vmall = n.rig.executed(CommandOp.TLBI_S12_VMALL);
        n.smmu.detachStream(SID);
        assertThat(n.smmu.contextId(n.child)).as("SID + 2 still nests it").isEqualTo(1);
        n.smmu.detachStream(SID + 2);
        assertThat(n.smmu.contextId(n.child)).isEqualTo(-1);
        assertThat(n.rig.executed(CommandOp.TLBI_NH_ASID) - asid).as("the child's ASID under the parent's VMID")
                .isEqualTo(1);
        assertThat(n.smmu.contextId(n.parent)).as("the whole stage-2 stream still uses it").isEqualTo(1);
        n.smmu.detachStream(SID + 1);
        assertThat(n.smmu.contextId(n.parent)).isEqualTo(-1);
        assertThat(n.rig.executed(CommandOp.TLBI_S12_VMALL) - vmall).isEqualTo(1);
        assertThat(n.tables.allocatedPages("smmu-cd")).as("the nested streams' CD tables were freed").isZero();
    }

    @Test
    void theTablesCloseOnlyOnceEmptyAndThenLeaveTheParent() throws Exception {
        Nest n = new Nest();
        n.smmu.attachNested(n.child, n.tables, SID);
        assertThatThrownBy(n.tables::close).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("destroy the nested domain and detach its streams first");
        n.smmu.detachStream(SID);
        n.child.destroy();
        long base = n.tables.base();

        n.tables.close();

        assertThat(n.parent.iovaToPhys(base)).isEqualTo(IommuDomain.NO_MAPPING);
        assertThat(n.rig.alloc.allocatedPages(NestedTables.TAG)).isZero();
        assertThat(n.tables.isClosed()).isTrue();
        n.tables.close(); // twice: nothing
        assertThatThrownBy(() -> n.tables.allocPages(0, "x")).hasMessageContaining("closed");
    }

    @Test
    void aLazyParentFlushesTheIdentityMapBeforeTheBlockGoesBack() throws Exception {
        Nest n = new Nest(DriverRig.started(), FlushPolicy.LAZY);
        n.smmu.attachStream(n.parent, SmmuV3Domains.Stage.S2, SID + 1);
        n.child.destroy();
        long base = n.tables.base();
        assertThat(n.rig.smmu.translate(SID + 1, -1, base, 0, new Translation()).physicalAddress())
                .as("the identity map is cached").isEqualTo(base);

        n.tables.close();

        Translation t = n.rig.smmu.translate(SID + 1, -1, base, 0, new Translation());
        assertThat(t.code()).as("no stale identity map after close").isEqualTo(EventType.F_TRANSLATION);
    }

    @Test
    void nestingIsRefusedClearlyWhereItCannotWork() throws Exception {
        Nest n = new Nest();
        IommuDomain stray = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 40), n.rig.ram, n.rig.alloc).name("stray")
                .build();
        assertThatThrownBy(() -> n.smmu.attachNested(stray, n.tables, SID))
                .isInstanceOfSatisfying(IommuApiException.class,
                        e -> assertThat(e.kind()).isEqualTo(IommuApiException.Kind.INCOMPATIBLE_INSTANCE))
                .hasMessageContaining("is not in NestedTables").hasMessageContaining("IPA == PA");

        n.smmu.attachStream(n.child, SmmuV3Domains.Stage.S1, SID + 1);
        assertThatThrownBy(() -> n.smmu.attachNested(n.child, n.tables, SID))
                .hasMessageContaining("attached here as a plain stage-1 domain already");
        n.smmu.detachStream(SID + 1);

        n.smmu.attachNested(n.child, n.tables, SID);
        assertThatThrownBy(() -> n.smmu.attachSubstream(n.child, SID, 1))
                .hasMessageContaining("nested on s2 here already");
        IommuDomain other = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 48), n.rig.ram, n.rig.alloc).name("o")
                .build();
        assertThatThrownBy(() -> n.smmu.attachSubstream(other, SID, 1))
                .hasMessageContaining("attached to nested domain s1");
        assertThatThrownBy(() -> n.smmu.attachStream(n.child, SmmuV3Domains.Stage.S1, SID + 3))
                .hasMessageContaining("nested on s2 here already");

        n.smmu.attachSubstream(other, SID + 4, 1);
        assertThatThrownBy(() -> n.smmu.attachNested(n.child, n.tables, SID + 4))
                .hasMessageContaining("substreams of nested streams are not modelled");

        DriverRig s1only = DriverRig.started(SmmuV3Config.builder().stage2(false).vmid16(false).build(),
                SmmuV3DriverOptions.defaults());
        SmmuV3Domains flat = new SmmuV3Domains(s1only.driver, "smmu1", TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD);
        IommuDomain p = IommuDomain.builder(Arm64Lpae.stage2(12, 40, 48), s1only.ram, s1only.alloc).build();
        NestedTables t = NestedTables.create(p, s1only.ram, s1only.alloc, TABLES);
        IommuDomain c = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 40), s1only.ram, t).build();
        assertThatThrownBy(() -> flat.attachNested(c, t, SID))
                .hasMessageContaining("does not implement both stages");

        assertThatThrownBy(() -> NestedTables.create(n.child, n.rig.ram, n.rig.alloc, TABLES))
                .hasMessageContaining("not an arm64 LPAE stage-2 table");
        long before = n.rig.alloc.allocatedPages(NestedTables.TAG);
        IommuDomain narrow = IommuDomain.builder(Arm64Lpae.stage2(12, 32, 48), n.rig.ram, n.rig.alloc).name("narrow")
                .aperture(0, 0x7FFF_FFFFL).build();
        assertThatThrownBy(() -> NestedTables.create(narrow, n.rig.ram, n.rig.alloc, TABLES))
                .isInstanceOfSatisfying(IommuApiException.class,
                        e -> assertThat(e.kind()).isEqualTo(IommuApiException.Kind.OUT_OF_APERTURE))
                .hasMessageContaining("at IPA == PA in stage-2 domain narrow");
        assertThat(n.rig.alloc.allocatedPages(NestedTables.TAG)).as("the block went back").isEqualTo(before);
    }

    @Test
    void aFullBlockFailsTheMapThatNeedsATablePage() throws Exception {
        DriverRig rig = DriverRig.started();
        IommuDomain parent = IommuDomain.builder(Arm64Lpae.stage2(12, 40, 48), rig.ram, rig.alloc).build();
        NestedTables tables = NestedTables.create(parent, rig.ram, rig.alloc, 16 << 10); // four table pages
        IommuDomain child = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 40), rig.ram, tables).build();
        child.map(0, IPA, 4096, Prot.READ); // root + three levels: the block is full
        assertThatThrownBy(() -> child.map(1L << 39, IPA, 4096, Prot.READ))
                .isInstanceOfSatisfying(IommuApiException.class,
                        e -> assertThat(e.pageTableKind()).isEqualTo(PageTableException.Kind.NO_MEMORY));
    }

    @Test
    void strictMapAndUnmapOfANestingParentAndItsChildAllocateNothing() throws Exception {
        QuietSmmu q = QuietSmmu.create();
        IommuDomain parent = IommuDomain.builder(Arm64Lpae.stage2(12, 40, 48), q.ram(), q.alloc()).build();
        NestedTables tables = NestedTables.create(parent, q.ram(), q.alloc(), TABLES);
        IommuDomain child = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 40), q.ram(), tables).build();
        q.smmu().attachNested(child, tables, SID);
        long pa = q.alloc().allocBytes(64 << 10, "dma");
        long bytes = QuietSmmu.leastAllocated(500, () -> {
            parent.map(IPA, pa, 64 << 10, Prot.READ | Prot.WRITE);
            child.map(IOVA, IPA, 64 << 10, Prot.READ | Prot.WRITE);
            child.unmap(IOVA, 64 << 10); // TLBI_NH_VA under the parent's VMID
            parent.unmap(IPA, 64 << 10); // TLBI_S2_IPA and TLBI_NH_ALL
        });
        assertThat(bytes).as("bytes allocated by 500 rounds in both stages (least of 3 windows)").isZero();
    }
}
