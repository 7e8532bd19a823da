package org.iommuemu.device.inject;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverException;
import org.iommuemu.core.driver.smmuv3.SmmuV3Listener;
import org.iommuemu.core.driver.vtd.VtdDriver;
import org.iommuemu.core.driver.vtd.VtdDriverException;
import org.iommuemu.core.driver.vtd.VtdListener;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.core.vtd.FaultReason;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.DriverInstance.Stage;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.device.vtd.VtdConfig;
import org.junit.jupiter.api.Test;

/**
 * The command-processing kinds on a default machine driven by its own driver: what the hardware does with the
 * fault active, how the driver copes, and that the next command works once the fault is cleared.
 */
class CommandFaultsTest {
    private static final long IOVA = InjectRig.IOVA;

    /** A machine whose SMMU implements ATS (ATC_INV is legal) and whose VT-d unit implements device TLBs. */
    private static MachineConfig withAts() {
        return MachineConfig.defaults().withIommus(List.of(
                new IommuSpec("smmu0", IommuType.SMMUV3, SmmuV3Config.builder().ats(true).build(), null),
                new IommuSpec("dmar0", IommuType.VTD, null, VtdConfig.builder().dt(true).build())));
    }

    /** Command errors (CERROR) the SMMU driver saw, with the command it read back from the queue. */
    private static List<long[]> commandErrors(SmmuV3Driver driver) {
        List<long[]> out = new CopyOnWriteArrayList<>();
        driver.addListener(new SmmuV3Listener() {
            @Override
            public void onCommandError(int cerror, int index, long dw0, long dw1) {
                out.add(new long[] {cerror, index, dw0, dw1});
            }
        });
        return out;
    }

    private static List<long[]> queueErrors(VtdDriver driver) {
        List<long[]> out = new CopyOnWriteArrayList<>();
        driver.addListener(new VtdListener() {
            @Override
            public void onQueueError(QueueError error, int index, long qw0, long qw1, long iqercd) {
                out.add(new long[] {error.ordinal(), index, qw0, qw1, iqercd});
            }
        });
        return out;
    }

    /** Unmaps the page with the IOTLB invalidations dropped: the page stays reachable through a stale entry. */
    private static void staleUnmap(InjectRig r) throws Exception {
        assertThat(r.read().isOk()).isTrue();
        long drop = r.faults().inject(new FaultSpec(InjectionKind.IGNORE_IOTLB_INVALIDATION).iommu(r.name));
        r.d.unmap(IOVA, 4096);
        r.faults().clear(drop);
        assertThat(r.read().isOk()).as("stale").isTrue();
    }

    /** Writes commands straight into the SMMU's command queue at CMDQ_PROD and rings the doorbell. */
    private static void doorbell(InjectRig r, Command... cmds) throws Exception {
        long base = QueueBase.address(r.device().mmioRead(SmmuRegs.CMDQ_BASE, 8));
        int log2 = r.smmuDriver().layout().cmdqLog2();
        int prod = (int) r.device().mmioRead(SmmuRegs.CMDQ_PROD, 4);
        for (Command c : cmds) {
            long at = base + 16L * QueuePointer.index(prod, log2);
            r.mem().write64(at, c.dw0());
            r.mem().write64(at + 8, c.dw1());
            prod = QueuePointer.inc(prod, log2);
        }
        r.device().mmioWrite(SmmuRegs.CMDQ_PROD, 4, Integer.toUnsignedLong(prod));
    }

    // ------------------------------------------------------------------ selectors (stream, address)

    @Test
    void aStreamSelectedDropDropsOnlyThatStreamsCfgiSte() throws Exception {
        InjectRig r = InjectRig.smmu();
        assertThat(r.read().isOk()).isTrue();
        long ste = r.steAddress();
        long id = r.faults().inject(new FaultSpec(InjectionKind.COMMAND_DROP).iommu("smmu0")
                .target(t -> t.opcodes(CommandOp.CFGI_STE).streams(r.sid, r.sid)));
        r.smmuDriver().submit(Command.cfgiSte(r.sid + 1, true)); // another stream's: carried out
        assertThat(r.faults().list("").get(0).fires()).isZero();
        r.faults().inject(new FaultSpec(InjectionKind.MEMORY_FLIP_BIT).iommu("smmu0")
                .params(p -> p.address(ste).bit(0))); // STE.V = 0
        r.smmuDriver().submit(Command.cfgiSte(r.sid, true));
        assertThat(r.read().isOk()).as("its CFGI_STE was dropped: the cached STE is used").isTrue();
        assertThat(r.faults().log().since(0)).filteredOn(rec -> rec.kind() == InjectionKind.COMMAND_DROP)
                .singleElement().satisfies(rec -> assertThat(rec.detail()).contains("stream 0x5"));
        r.faults().clear(id);
        r.smmuDriver().submit(Command.cfgiSte(r.sid, true));
        assertThat(r.read().code()).isEqualTo(EventType.C_BAD_STE);
    }

    private static void addressSelectedIgnore(InjectRig r) throws Exception {
        long iova2 = IOVA + 0x10_0000L;
        r.d.map(iova2, r.buf, 4096, Prot.READ | Prot.WRITE);
        DmaOutcome o2 = r.m.dma().read(r.device(), r.sid, -1, iova2, new byte[8], 0, 8, 0, new DmaOutcome());
        assertThat(o2.isOk()).isTrue();
        assertThat(r.read().isOk()).isTrue();
        long id = r.faults().inject(new FaultSpec(InjectionKind.IGNORE_IOTLB_INVALIDATION).iommu(r.name)
                .target(t -> t.addresses(IOVA, IOVA + 4096)));
        r.d.unmap(IOVA, 4096);
        r.d.unmap(iova2, 4096);
        assertThat(r.read().isOk()).as("the invalidation inside the range was ignored").isTrue();
        o2 = r.m.dma().read(r.device(), r.sid, -1, iova2, new byte[8], 0, 8, 0, new DmaOutcome());
        assertThat(o2.status()).as("the one outside it was carried out").isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(r.faults().log().since(0)).isNotEmpty()
                .allSatisfy(rec -> assertThat(rec.kind()).isEqualTo(InjectionKind.IGNORE_IOTLB_INVALIDATION));
        r.faults().clear(id);
        r.d.map(IOVA, r.buf, 4096, Prot.READ);
        r.d.unmap(IOVA, 4096);
        assertThat(r.read().status()).isEqualTo(DmaOutcome.Status.FAULT);
    }

    @Test
    void anAddressSelectedIgnoredTlbiIgnoresOnlyVaTlbisInsideTheRangeOnAnSmmu() throws Exception {
        addressSelectedIgnore(InjectRig.smmu());
    }

    @Test
    void anAddressSelectedIgnoredPsiIgnoresOnlyPsisInsideTheRangeOnVtd() throws Exception {
        addressSelectedIgnore(InjectRig.vtd());
    }

    // ------------------------------------------------------------------ IGNORE_CONFIG_INVALIDATION

    @Test
    void anIgnoredCfgiSteLeavesTheStaleSteInUse() throws Exception {
        InjectRig r = InjectRig.smmu();
        assertThat(r.read().isOk()).isTrue();
        long ste = r.steAddress();
        long id = r.faults().inject(new FaultSpec(InjectionKind.IGNORE_CONFIG_INVALIDATION).iommu("smmu0"));
        r.faults().inject(new FaultSpec(InjectionKind.MEMORY_FLIP_BIT).iommu("smmu0")
                .params(p -> p.address(ste).bit(0)));
        r.smmuDriver().submit(Command.cfgiSte(r.sid, true), Command.cfgiAll());
        assertThat(r.read().isOk()).as("the cached STE is still used").isTrue();
        assertThat(r.faults().instance("smmu0").firedByKind())
                .containsEntry(InjectionKind.IGNORE_CONFIG_INVALIDATION, 2L);
        r.faults().clear(id);
        r.smmuDriver().submit(Command.cfgiSte(r.sid, true));
        assertThat(r.read().code()).isEqualTo(EventType.C_BAD_STE);
    }

    @Test
    void anIgnoredContextCacheInvalidationLeavesTheStaleContextInUseOnVtd() throws Exception {
        InjectRig r = InjectRig.vtd();
        assertThat(r.read().isOk()).isTrue();
        long ce = r.vtdStructures()[1];
        long id = r.faults().inject(new FaultSpec(InjectionKind.IGNORE_CONFIG_INVALIDATION).iommu("dmar0"));
        r.faults().inject(new FaultSpec(InjectionKind.MEMORY_WRITE_FIELD).iommu("dmar0")
                .params(p -> p.address(ce).field(VtdTables.SMCTX_P, 1, 0)));
        r.vtdDriver().submit(InvDesc.contextCache(VtdRegs.CC_GLOBAL, 0, 0, 0), 0,
                InvDesc.pasidCache(InvDesc.PC_GLOBAL, 0, 0), 0);
        r.vtdDriver().submit(InvDesc.iotlb(VtdRegs.IOTLB_GLOBAL, 0, false, false), 0);
        assertThat(r.read().isOk()).as("the cached context entry is still used").isTrue();
        r.faults().clear(id);
        r.vtdDriver().submit(InvDesc.contextCache(VtdRegs.CC_GLOBAL, 0, 0, 0), 0);
        assertThat(r.read().code()).isEqualTo(FaultReason.SM_CONTEXT_NOT_PRESENT);
    }

    // ------------------------------------------------------------------ QUEUE_READ_ABORT

    @Test
    void anAbortedCommandFetchIsCerrorAbtAndTheDriverRetriesIt() throws Exception {
        InjectRig r = InjectRig.smmu();
        List<long[]> errors = commandErrors(r.smmuDriver());
        long gerrors = r.device().stats().globalErrors();
        long id = r.faults().inject(new FaultSpec(InjectionKind.QUEUE_READ_ABORT).iommu("smmu0")
                .trigger(t -> t.count(1)));
        r.smmuDriver().sync(); // the fetch of the CMD_SYNC aborts once; the driver retries it and it completes
        assertThat(errors).singleElement().satisfies(e -> {
            assertThat(e[0]).isEqualTo(QueuePointer.CERROR_ABT);
            assertThat(Command.opcode(e[2])).isEqualTo(CommandOp.CMD_SYNC);
        });
        assertThat(r.device().stats().globalErrors()).isEqualTo(gerrors + 1);
        r.faults().clear(id);
        r.d.unmap(IOVA, 4096);
        assertThat(r.read().status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(errors).hasSize(1);
    }

    @Test
    void anAbortedDescriptorFetchIsIqeWithTheFetchAbortReasonOnVtd() throws Exception {
        InjectRig r = InjectRig.vtd();
        List<long[]> errors = queueErrors(r.vtdDriver());
        long id = r.faults().inject(new FaultSpec(InjectionKind.QUEUE_READ_ABORT).iommu("dmar0")
                .trigger(t -> t.count(1)));
        r.vtdDriver().submit(InvDesc.iotlb(VtdRegs.IOTLB_GLOBAL, 0, false, false), 0);
        assertThat(errors).singleElement().satisfies(e -> {
            assertThat(e[1]).as("IQH on the aborted descriptor").isGreaterThanOrEqualTo(0);
            assertThat(e[4] & 0xF).isEqualTo(VtdRegs.IQEI_FETCH_ABORT);
            assertThat(InvDesc.type(e[2])).isEqualTo(InvDesc.TYPE_IOTLB);
        });
        r.faults().clear(id);
        r.d.unmap(IOVA, 4096);
        assertThat(r.read().status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(errors).hasSize(1);
    }

    // ------------------------------------------------------------------ COMMAND_DELAY

    @Test
    void aDelayedCommandAddsItsDelayToSimulatedTime() throws Exception {
        for (InjectRig r : new InjectRig[] {InjectRig.smmu(), InjectRig.vtd()}) {
            Runnable sync = r.name.equals("smmu0") ? r.smmuDriver()::sync : r.vtdDriver()::sync;
            sync.run();
            long t0 = r.simNanos();
            sync.run();
            long plain = r.simNanos() - t0;
            long id = r.faults().inject(new FaultSpec(InjectionKind.COMMAND_DELAY).iommu(r.name)
                    .params(p -> p.delayNs(1_000_000)));
            long t1 = r.simNanos();
            sync.run();
            assertThat(r.simNanos() - t1).as(r.name).isEqualTo(plain + 1_000_000);
            r.faults().clear(id);
            long t2 = r.simNanos();
            sync.run();
            assertThat(r.simNanos() - t2).isEqualTo(plain);
        }
    }

    @Test
    void aDelayNeedsAPositiveDelay() {
        assertThatThrownBy(() -> new FaultSpec(InjectionKind.COMMAND_DELAY).validate())
                .isInstanceOf(FaultSpecException.class).hasMessageContaining("params.delay_ns");
    }

    // ------------------------------------------------------------------ COMMAND_REORDER

    @Test
    void aHeldTlbiIsCarriedOutOnlyAtTheNextCmdSync() throws Exception {
        InjectRig r = InjectRig.smmu();
        staleUnmap(r);
        long id = r.faults().inject(new FaultSpec(InjectionKind.COMMAND_REORDER).iommu("smmu0")
                .target(t -> t.opcodes(CommandOp.TLBI_NH_ALL)));
        doorbell(r, Command.tlbiNhAll(0), Command.cfgiSte(r.sid, true));
        assertThat(r.device().mmioRead(SmmuRegs.CMDQ_CONS, 4)).as("consumed")
                .isEqualTo(r.device().mmioRead(SmmuRegs.CMDQ_PROD, 4));
        assertThat(r.read().isOk()).as("between the doorbells the TLBI is still held: stale").isTrue();
        doorbell(r, Command.cmdSync(Command.CS_NONE));
        assertThat(r.read().status()).as("the CMD_SYNC ordered it").isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(r.faults().log().since(0)).filteredOn(rec -> rec.kind() == InjectionKind.COMMAND_REORDER)
                .singleElement().satisfies(rec -> assertThat(rec.code()).isEqualTo(CommandOp.TLBI_NH_ALL));
        r.faults().clear(id);
    }

    @Test
    void aHeldIotlbInvalidationIsCarriedOutBeforeTheWaitOnVtd() throws Exception {
        InjectRig r = InjectRig.vtd();
        staleUnmap(r);
        long id = r.faults().inject(new FaultSpec(InjectionKind.COMMAND_REORDER).iommu("dmar0")
                .target(t -> t.opcodes(InvDesc.TYPE_IOTLB)));
        r.vtdDriver().submit(InvDesc.iotlb(VtdRegs.IOTLB_GLOBAL, 0, false, false), 0,
                InvDesc.contextCache(VtdRegs.CC_GLOBAL, 0, 0, 0), 0);
        assertThat(r.read().status()).as("held, but never past the wait").isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(r.faults().instance("dmar0").firedByKind()).containsEntry(InjectionKind.COMMAND_REORDER, 1L);
        r.faults().clear(id);
    }

    // ------------------------------------------------------------------ COMMAND_CORRUPT

    @Test
    void aCorruptedOpcodeBitIsCerrorIllWhileTheQueueMemoryKeepsTheCommand() throws Exception {
        InjectRig r = InjectRig.smmu();
        List<long[]> errors = commandErrors(r.smmuDriver());
        long id = r.faults().inject(new FaultSpec(InjectionKind.COMMAND_CORRUPT).iommu("smmu0")
                .target(t -> t.opcodes(CommandOp.TLBI_NH_ALL)).params(p -> p.bit(7)).trigger(t -> t.count(1)));
        r.smmuDriver().submit(Command.tlbiNhAll(0));
        assertThat(errors).singleElement().satisfies(e -> {
            assertThat(e[0]).isEqualTo(QueuePointer.CERROR_ILL);
            assertThat(Command.opcode(e[2])).as("guest memory unchanged").isEqualTo(CommandOp.TLBI_NH_ALL);
        });
        r.faults().clear(id);
        r.d.unmap(IOVA, 4096);
        assertThat(r.read().status()).isEqualTo(DmaOutcome.Status.FAULT);
    }

    @Test
    void aCorruptedAddressBitScopesTheInvalidationWrongly() throws Exception {
        InjectRig r = InjectRig.smmu();
        staleUnmap(r);
        // TLBI_NH_VAA's address is dw1[63:12]: bit 64 + 21 moves it 2 MB away from the page
        long id = r.faults().inject(new FaultSpec(InjectionKind.COMMAND_CORRUPT).iommu("smmu0")
                .target(t -> t.opcodes(CommandOp.TLBI_NH_VAA)).params(p -> p.bit(64 + 21)));
        r.smmuDriver().submit(Command.tlbiNhVaa(0, IOVA, true));
        assertThat(r.read().isOk()).as("the invalidation hit another address").isTrue();
        r.faults().clear(id);
        r.smmuDriver().submit(Command.tlbiNhVaa(0, IOVA, true));
        assertThat(r.read().status()).isEqualTo(DmaOutcome.Status.FAULT);
    }

    @Test
    void aCorruptedDescriptorTypeIsIqeOnVtd() throws Exception {
        InjectRig r = InjectRig.vtd();
        List<long[]> errors = queueErrors(r.vtdDriver());
        long id = r.faults().inject(new FaultSpec(InjectionKind.COMMAND_CORRUPT).iommu("dmar0")
                .target(t -> t.opcodes(InvDesc.TYPE_IOTLB)).params(p -> p.bit(3)).trigger(t -> t.count(1)));
        r.vtdDriver().submit(InvDesc.iotlb(VtdRegs.IOTLB_GLOBAL, 0, false, false), 0);
        assertThat(errors).singleElement().satisfies(e -> {
            assertThat(e[4] & 0xF).isEqualTo(VtdRegs.IQEI_INVALID_TYPE);
            assertThat(InvDesc.type(e[2])).as("guest memory unchanged").isEqualTo(InvDesc.TYPE_IOTLB);
        });
        r.faults().clear(id);
        r.d.unmap(IOVA, 4096);
        assertThat(r.read().status()).isEqualTo(DmaOutcome.Status.FAULT);
    }

    @Test
    void aBitBeyondTheCommandIsRefusedAtInject() throws Exception {
        InjectRig r = InjectRig.smmu();
        assertThatThrownBy(() -> r.faults().inject(new FaultSpec(InjectionKind.COMMAND_CORRUPT).iommu("smmu0")
                .params(p -> p.bit(128)))).isInstanceOf(FaultSpecException.class)
                .hasMessageContaining("params.bit").hasMessageContaining("128-bit");
        assertThat(r.faults().list("")).isEmpty();
        boolean wide = r.vtdDriverOf("dmar0").layout().wideDescriptors();
        FaultSpec high = new FaultSpec(InjectionKind.COMMAND_CORRUPT).iommu("dmar0").params(p -> p.bit(200));
        if (wide) {
            assertThat(r.faults().inject(high)).isPositive();
        } else {
            assertThatThrownBy(() -> r.faults().inject(high)).hasMessageContaining("params.bit");
        }
    }

    // ------------------------------------------------------------------ SYNC_LATE

    @Test
    void aLateCmdSyncCompletesOnceSimulatedTimeHasPassedItsDelay() throws Exception {
        InjectRig r = InjectRig.smmu();
        long id = r.faults().inject(new FaultSpec(InjectionKind.SYNC_LATE).iommu("smmu0")
                .params(p -> p.delayNs(50_000)).trigger(t -> t.count(1)));
        long t0 = r.simNanos();
        r.smmuDriver().sync();
        assertThat(r.simNanos() - t0).isGreaterThanOrEqualTo(50_000);
        assertThat(r.faults().log().since(0)).singleElement().satisfies(rec -> {
            assertThat(rec.code()).isEqualTo(CommandOp.CMD_SYNC);
            assertThat(rec.detail()).contains("late");
        });
        r.faults().clear(id);
        long t1 = r.simNanos();
        r.smmuDriver().sync();
        assertThat(r.simNanos() - t1).isLessThan(50_000);
    }

    @Test
    void aCmdSyncLaterThanTheDriversBoundTimesItOutAndTheNextSyncCompletes() throws Exception {
        InjectRig r = InjectRig.smmu();
        // the driver polls 1 000 000 times, each poll at most three register reads of 100 ns: 3e8 ns
        long id = r.faults().inject(new FaultSpec(InjectionKind.SYNC_LATE).iommu("smmu0")
                .params(p -> p.delayNs(400_000_000L)).trigger(t -> t.count(1)));
        assertThatThrownBy(r.smmuDriver()::sync).isInstanceOfSatisfying(SmmuV3DriverException.class,
                e -> assertThat(e.kind()).isEqualTo(SmmuV3DriverException.Kind.QUEUE_TIMEOUT));
        r.faults().clear(id);
        r.smmuDriver().sync(); // the late one completes within this wait, then this one
        r.d.unmap(IOVA, 4096);
        assertThat(r.read().status()).isEqualTo(DmaOutcome.Status.FAULT);
    }

    @Test
    void aLateInvalidationWaitCompletesLateOnVtdAndTimesOutBeyondTheBound() throws Exception {
        InjectRig r = InjectRig.vtd();
        long id = r.faults().inject(new FaultSpec(InjectionKind.SYNC_LATE).iommu("dmar0")
                .params(p -> p.delayNs(30_000)).trigger(t -> t.count(1)));
        long t0 = r.simNanos();
        r.vtdDriver().sync();
        assertThat(r.simNanos() - t0).isGreaterThanOrEqualTo(30_000);
        r.faults().clear(id);
        // the driver polls 1 000 000 times, one FSTS read of 100 ns each: 1e8 ns
        r.faults().inject(new FaultSpec(InjectionKind.SYNC_LATE).iommu("dmar0")
                .params(p -> p.delayNs(150_000_000L)).trigger(t -> t.count(1)));
        assertThatThrownBy(r.vtdDriver()::sync).isInstanceOfSatisfying(VtdDriverException.class,
                e -> assertThat(e.kind()).isEqualTo(VtdDriverException.Kind.QUEUE_TIMEOUT));
        r.vtdDriver().sync();
        r.d.unmap(IOVA, 4096);
        assertThat(r.read().status()).isEqualTo(DmaOutcome.Status.FAULT);
    }

    // ------------------------------------------------------------------ ATC_INVALIDATION_TIMEOUT

    @Test
    void anAtcInvalidationTimeoutFailsTheCmdSyncWithCerrorAtcInvSyncAndTheDriverRetriesIt() throws Exception {
        InjectRig r = new InjectRig(withAts(), "smmu0", Stage.S1, InjectRig.SID);
        List<long[]> errors = commandErrors(r.smmuDriver());
        long id = r.faults().inject(new FaultSpec(InjectionKind.ATC_INVALIDATION_TIMEOUT).iommu("smmu0")
                .target(t -> t.streams(r.sid, r.sid)));
        r.smmuDriver().submit(Command.atcInvAll(r.sid + 1)); // another stream's: completes
        assertThat(errors).isEmpty();
        r.smmuDriver().submit(Command.atcInvAll(r.sid));
        assertThat(errors).singleElement().satisfies(e -> {
            assertThat(e[0]).isEqualTo(QueuePointer.CERROR_ATC_INV_SYNC);
            assertThat(Command.opcode(e[2])).as("CONS on the CMD_SYNC").isEqualTo(CommandOp.CMD_SYNC);
        });
        assertThat(r.faults().log().since(0)).singleElement()
                .satisfies(rec -> assertThat(rec.code()).isEqualTo(CommandOp.ATC_INV));
        r.faults().clear(id);
        r.smmuDriver().submit(Command.atcInvAll(r.sid));
        assertThat(errors).hasSize(1);
    }

    @Test
    void aDeviceTlbInvalidationTimeoutIsIteAbortingTheWaitOnVtd() throws Exception {
        InjectRig r = new InjectRig(withAts(), "dmar0", Stage.S2, InjectRig.RID);
        List<long[]> errors = queueErrors(r.vtdDriver());
        long id = r.faults().inject(new FaultSpec(InjectionKind.ATC_INVALIDATION_TIMEOUT).iommu("dmar0")
                .target(t -> t.streams(r.sid, r.sid)));
        r.vtdDriver().submit(InvDesc.deviceTlb(r.sid + 1), 0);
        assertThat(errors).isEmpty();
        // ITE naming the stream: the driver gives its device-TLB invalidation up and resubmits the rest (a wait)
        r.vtdDriver().submit(InvDesc.deviceTlb(r.sid), 0);
        assertThat(errors).singleElement().satisfies(e -> {
            assertThat(e[0]).isEqualTo(VtdListener.QueueError.ITE.ordinal());
            assertThat((e[4] >>> VtdRegs.IQERCD_ITESID) & 0xFFFF).isEqualTo(r.sid);
        });
        assertThat(r.vtdDriver().stats().iteRetries()).isEqualTo(1);
        assertThat(r.vtdDriver().stats().invalidationsAbandoned()).isEqualTo(1);
        r.faults().clear(id);
        r.vtdDriver().submit(InvDesc.deviceTlb(r.sid), 0);
        r.d.unmap(IOVA, 4096);
        assertThat(r.read().status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(errors).hasSize(1);
    }
}
