package org.iommuemu.device.inject;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.DriverInstance;
import org.iommuemu.device.machine.DriverInstance.Stage;
import org.iommuemu.device.machine.InjectedInterrupts;
import org.iommuemu.device.machine.InterruptRecord;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.machine.SmmuDriverInstance;
import org.iommuemu.device.machine.VtdDriverInstance;
import org.junit.jupiter.api.Test;

/**
 * Event, fault-record and interrupt kinds on a default machine driven by its own driver: what the hardware shows
 * right after the fault fired, how the driver resynchronises, and that reporting is normal again afterwards.
 */
class EventFaultsTest {
    private static final long IOVA = 0x40_0000L;
    /** Not mapped: a DMA there faults. */
    private static final long HOLE = 0x80_0000L;
    private static final int SID = 5;
    private static final int RID = 0x0310;
    private static final long OVFLG = 1L << 31;

    /** One instance taken over by the machine's driver, one domain with a fault handler, one mapped page. */
    static final class Rig {
        final Machine m = new Machine(MachineConfig.defaults());
        final String name;
        final int sid;
        final DriverInstance o;
        final IommuDomain d;
        final IommuDevice dev;
        /** Faults the domain's fault handler was given: SMMUv3 event types / VT-d fault reasons, with the address. */
        final List<long[]> handled = new ArrayList<>();

        Rig(String name, Stage stage, int sid) throws Exception {
            this.name = name;
            this.sid = sid;
            dev = m.iommu(name);
            o = m.driverHost().takeOver(dev);
            d = IommuDomain.builder(o.format(stage, 12, o.defaultInputBits(stage), o.outputBits()), m.memory(),
                    m.driverHost().heap()).name("d").build();
            o.attachStream(d, stage, sid);
            long buf = m.driverHost().heap().allocPages(0, "buf");
            d.map(IOVA, buf, 4096, Prot.READ | Prot.WRITE);
            if (o instanceof SmmuDriverInstance s) {
                s.domains().setFaultHandler(d, (dom, stream, e) -> {
                    synchronized (handled) {
                        handled.add(new long[] {e.type(), stream});
                    }
                });
            } else {
                ((VtdDriverInstance) o).domains().setFaultHandler(d, (dom, rid, f) -> {
                    synchronized (handled) {
                        handled.add(new long[] {f.reason(), rid});
                    }
                });
            }
        }

        DmaOutcome read(long iova) {
            return m.dma().read(dev, sid, -1, iova, new byte[8], 0, 8, 0, new DmaOutcome());
        }

        int handledCount() {
            synchronized (handled) {
                return handled.size();
            }
        }

        /** Interrupts of this instance the machine's hub delivers from now on. */
        List<InterruptRecord> interrupts() {
            List<InterruptRecord> out = java.util.Collections.synchronizedList(new ArrayList<>());
            m.interrupts().subscribe(i -> {
                if (i.iommu().equals(name)) {
                    out.add(i);
                }
            });
            return out;
        }

        long overflows() {
            return o.events().since(0).overflows();
        }

        FaultInjector faults() {
            return m.faults();
        }
    }

    static Rig smmu() throws Exception {
        return new Rig("smmu0", Stage.S1, SID);
    }

    static Rig vtd() throws Exception {
        return new Rig("dmar0", Stage.S2, RID);
    }

    // ------------------------------------------------------------------ EVENT_QUEUE_OVERFLOW

    @Test
    void anEventQueueOverflowSetsTheOverflowFlagAndTheSmmuDriverResynchronises() throws Exception {
        Rig r = smmu();
        long id = r.faults().inject(new FaultSpec(InjectionKind.EVENT_QUEUE_OVERFLOW).iommu("smmu0")
                .target(t -> t.streams(SID, SID)).trigger(t -> t.count(1)));
        long prodBefore = r.dev.mmioRead(SmmuRegs.EVENTQ_PROD, 4);

        assertThat(r.read(HOLE).status()).isEqualTo(DmaOutcome.Status.FAULT);
        long prod = r.dev.mmioRead(SmmuRegs.EVENTQ_PROD, 4);
        long cons = r.dev.mmioRead(SmmuRegs.EVENTQ_CONS, 4);
        assertThat(prod & ~OVFLG).as("the record was discarded: PROD did not move").isEqualTo(prodBefore & ~OVFLG);
        assertThat(prod & OVFLG).as("OVFLG toggled: differs from OVACKFLG").isNotEqualTo(cons & OVFLG);
        assertThat(r.handledCount()).as("the lost record reached no handler").isZero();
        assertThat(r.overflows()).as("no record, no interrupt: the driver has not looked yet").isZero();
        assertThat(r.faults().log().since(0)).singleElement().satisfies(rec -> {
            assertThat(rec.kind()).isEqualTo(InjectionKind.EVENT_QUEUE_OVERFLOW);
            assertThat(rec.faultId()).isEqualTo(id);
            assertThat(rec.code()).isEqualTo(EventType.F_TRANSLATION);
            assertThat(rec.detail()).contains("stream 0x5");
        });

        // the next fault is written and signalled; its drain notices and acknowledges the overflow
        assertThat(r.read(HOLE + 0x1000).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(r.overflows()).as("the driver counted the overflow once").isEqualTo(1);
        assertThat(((SmmuDriverInstance) r.o).driver().stats().eventOverflows()).isEqualTo(1);
        long cons2 = r.dev.mmioRead(SmmuRegs.EVENTQ_CONS, 4);
        long prod2 = r.dev.mmioRead(SmmuRegs.EVENTQ_PROD, 4);
        assertThat(cons2 & OVFLG).as("OVACKFLG copied from OVFLG").isEqualTo(prod2 & OVFLG);
        assertThat(cons2 & ~OVFLG).as("the queue is drained").isEqualTo(prod2 & ~OVFLG);
        assertThat(r.handledCount()).as("the next fault reached the domain's handler").isEqualTo(1);
        assertThat(r.handled.get(0)).containsExactly(EventType.F_TRANSLATION, SID);

        // exhausted (count 1): further faults are reported normally, no new overflow
        assertThat(r.read(HOLE + 0x2000).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(r.handledCount()).isEqualTo(2);
        assertThat(r.overflows()).isEqualTo(1);
        assertThat(r.m.faults().instance("smmu0").firedByKind())
                .containsEntry(InjectionKind.EVENT_QUEUE_OVERFLOW, 1L);
    }

    @Test
    void anEventQueueOverflowForAnotherStreamDoesNotFire() throws Exception {
        Rig r = smmu();
        r.faults().inject(new FaultSpec(InjectionKind.EVENT_QUEUE_OVERFLOW).iommu("smmu0")
                .target(t -> t.streams(SID + 1, SID + 10)));
        assertThat(r.read(HOLE).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(r.handledCount()).isEqualTo(1);
        long prod = r.dev.mmioRead(SmmuRegs.EVENTQ_PROD, 4);
        long cons = r.dev.mmioRead(SmmuRegs.EVENTQ_CONS, 4);
        assertThat(prod & OVFLG).isEqualTo(cons & OVFLG);
        assertThat(r.faults().log().lastSequence()).isZero();
    }

    @Test
    void aFaultRecordOverflowSetsPfoAndTheVtdDriverResynchronises() throws Exception {
        Rig r = vtd();
        // mask the fault event so the state right after the fault stays visible
        r.dev.mmioWrite(VtdRegs.FECTL, 4, 1L << VtdRegs.ECTL_IM);
        long id = r.faults().inject(new FaultSpec(InjectionKind.EVENT_QUEUE_OVERFLOW).iommu("dmar0")
                .target(t -> t.streams(RID, RID)).trigger(t -> t.count(1)));

        assertThat(r.read(HOLE).status()).isEqualTo(DmaOutcome.Status.FAULT);
        long fsts = r.dev.mmioRead(VtdRegs.FSTS, 4);
        assertThat(fsts & 1L << VtdRegs.FSTS_PFO).as("PFO set").isNotZero();
        assertThat(fsts & 1L << VtdRegs.FSTS_PPF).as("no record was written").isZero();
        assertThat(r.dev.mmioRead(VtdRegs.FECTL, 4) & 1L << VtdRegs.ECTL_IP).as("the event is pending").isNotZero();
        assertThat(r.faults().log().since(0)).singleElement().satisfies(rec -> {
            assertThat(rec.faultId()).isEqualTo(id);
            assertThat(rec.detail()).contains("stream 0x310");
        });

        // unmasking sends the pending event: the driver drains, counts the overflow and clears PFO
        ((VtdDriverInstance) r.o).host().mmioWrite(VtdRegs.FECTL, 4, 0);
        assertThat(r.overflows()).isEqualTo(1);
        assertThat(((VtdDriverInstance) r.o).driver().stats().faultOverflows()).isEqualTo(1);
        assertThat(r.dev.mmioRead(VtdRegs.FSTS, 4) & 1L << VtdRegs.FSTS_PFO).as("PFO cleared").isZero();
        assertThat(r.handledCount()).isZero();

        assertThat(r.read(HOLE + 0x1000).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(r.handledCount()).as("the next fault reached the domain's handler").isEqualTo(1);
        assertThat(r.handled.get(0)[1]).isEqualTo(RID);
        assertThat(r.overflows()).isEqualTo(1);
        assertThat(r.dev.mmioRead(VtdRegs.FSTS, 4) & (1L << VtdRegs.FSTS_PFO | 1L << VtdRegs.FSTS_PPF)).isZero();
    }

    // ------------------------------------------------------------------ INTERRUPT_DROP

    @Test
    void aDroppedEventInterruptLeavesTheRecordInTheQueueForTheNextInterrupt() throws Exception {
        Rig r = smmu();
        List<InterruptRecord> seen = r.interrupts();
        r.faults().inject(new FaultSpec(InjectionKind.INTERRUPT_DROP).iommu("smmu0")
                .target(t -> t.opcodes(InjectedInterrupts.EVENTQ)).trigger(t -> t.count(1)));
        assertThat(r.read(HOLE).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(seen).as("the event interrupt never arrived").isEmpty();
        assertThat(r.handledCount()).isZero();
        long prod = r.dev.mmioRead(SmmuRegs.EVENTQ_PROD, 4);
        long cons = r.dev.mmioRead(SmmuRegs.EVENTQ_CONS, 4);
        assertThat(prod & ~OVFLG).as("the record waits in the queue").isNotEqualTo(cons & ~OVFLG);
        assertThat(r.faults().log().since(0)).singleElement().satisfies(rec -> {
            assertThat(rec.kind()).isEqualTo(InjectionKind.INTERRUPT_DROP);
            assertThat(rec.code()).isEqualTo(InjectedInterrupts.EVENTQ);
        });

        // the next event's interrupt (count used up) drains both records
        assertThat(r.read(HOLE + 0x1000).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(seen).hasSize(1);
        assertThat(r.handledCount()).as("both faults reached the handler at the next interrupt").isEqualTo(2);
        assertThat(r.dev.mmioRead(SmmuRegs.EVENTQ_CONS, 4) & ~OVFLG)
                .isEqualTo(r.dev.mmioRead(SmmuRegs.EVENTQ_PROD, 4) & ~OVFLG);
    }

    @Test
    void aDroppedInterruptOfAnotherSourceLeavesEventsAlone() throws Exception {
        Rig r = smmu();
        r.faults().inject(new FaultSpec(InjectionKind.INTERRUPT_DROP).iommu("smmu0")
                .target(t -> t.opcodes(InjectedInterrupts.GERROR)));
        assertThat(r.read(HOLE).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(r.handledCount()).isEqualTo(1);
        assertThat(r.faults().log().lastSequence()).isZero();
    }

    @Test
    void aDroppedFaultEventLeavesPpfSetAndTheVtdDriverFindsTheFaultAtItsNextPoll() throws Exception {
        Rig r = vtd();
        List<InterruptRecord> seen = r.interrupts();
        long id = r.faults().inject(new FaultSpec(InjectionKind.INTERRUPT_DROP).iommu("dmar0")
                .target(t -> t.opcodes(InjectedInterrupts.FAULT_EVENT)));
        assertThat(r.read(HOLE).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(seen).isEmpty();
        assertThat(r.handledCount()).isZero();
        long fsts = r.dev.mmioRead(VtdRegs.FSTS, 4);
        assertThat(fsts & 1L << VtdRegs.FSTS_PPF).as("the fault waits in its record").isNotZero();
        assertThat(r.dev.mmioRead(VtdRegs.FECTL, 4) & 1L << VtdRegs.ECTL_IP)
                .as("the unit sent the event: IP is clear").isZero();
        // with PPF still set a new fault raises no new event: only a poll finds the fault
        r.faults().clear(id);
        assertThat(r.read(HOLE + 0x1000).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(seen).isEmpty();
        assertThat(r.handledCount()).isZero();

        r.o.drainEvents();
        assertThat(r.handledCount()).as("the poll found the recorded fault").isEqualTo(1);
        assertThat(r.dev.mmioRead(VtdRegs.FSTS, 4) & 1L << VtdRegs.FSTS_PPF).isZero();
        assertThat(r.read(HOLE + 0x2000).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(seen).as("status cleared, the next fault raises the event").hasSize(1);
        assertThat(r.handledCount()).isEqualTo(2);
    }

    // ------------------------------------------------------------------ INTERRUPT_DELAY

    /**
     * Reads a harmless register straight from the device (no driver delivery) until the hub sees an interrupt;
     * the clock is the instance's, as the injection log records it (translation time is charged to the device
     * statistics only when they are read).
     */
    private static long accessesUntilDelivered(Rig r, List<InterruptRecord> seen, long due, long harmless) {
        for (int n = 1; n <= 100_000; n++) {
            r.dev.mmioRead(harmless, 4);
            long now = r.faults().instance(r.name).now();
            if (!seen.isEmpty()) {
                assertThat(now).as("delivered once the clock reached the due time").isGreaterThanOrEqualTo(due);
                return n;
            }
            assertThat(now).as("held while the clock is before the due time").isLessThan(due);
        }
        throw new AssertionError("the held interrupt was never delivered");
    }

    @Test
    void aDelayedEventInterruptIsDeliveredOnceTheSimulatedClockPassesItsDueTime() throws Exception {
        Rig r = smmu();
        List<InterruptRecord> seen = r.interrupts();
        long delay = 20_000;
        r.faults().inject(new FaultSpec(InjectionKind.INTERRUPT_DELAY).iommu("smmu0")
                .params(p -> p.delayNs(delay)).trigger(t -> t.count(1)));
        assertThat(r.read(HOLE).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(seen).isEmpty();
        assertThat(r.handledCount()).isZero();
        long fired = r.faults().log().since(0).get(0).simTimeNs();
        long due = fired + delay;
        assertThat(r.faults().instance("smmu0").now()).isLessThan(due);

        long accesses = accessesUntilDelivered(r, seen, due, SmmuRegs.IDR0);
        assertThat(accesses).isGreaterThan(1);
        assertThat(seen).singleElement().satisfies(i -> assertThat(i.source()).isEqualTo("eventq"));
        r.m.driverHost().deliverPendingInterrupts();
        assertThat(r.handledCount()).as("the driver took the late interrupt").isEqualTo(1);

        // count used up: the next interrupt is on time
        assertThat(r.read(HOLE + 0x1000).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(seen).hasSize(2);
        assertThat(r.handledCount()).isEqualTo(2);
    }

    @Test
    void aDelayedFaultEventIsDeliveredLateOnVtd() throws Exception {
        Rig r = vtd();
        List<InterruptRecord> seen = r.interrupts();
        long delay = 5_000;
        long id = r.faults().inject(new FaultSpec(InjectionKind.INTERRUPT_DELAY).iommu("dmar0")
                .target(t -> t.opcodes(InjectedInterrupts.FAULT_EVENT)).params(p -> p.delayNs(delay)));
        assertThat(r.read(HOLE).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(seen).isEmpty();
        r.faults().clear(id); // clearing does not lose what is held
        long due = r.faults().log().since(0).get(0).simTimeNs() + delay;
        accessesUntilDelivered(r, seen, due, VtdRegs.FSTS);
        assertThat(seen).singleElement().satisfies(i -> assertThat(i.source()).isEqualTo("fault-event"));
        r.m.driverHost().deliverPendingInterrupts();
        assertThat(r.handledCount()).isEqualTo(1);
    }

    // ------------------------------------------------------------------ INTERRUPT_SPURIOUS

    private static void spuriousInterruptsAreHarmless(Rig r, String source) throws Exception {
        List<InterruptRecord> seen = r.interrupts();
        assertThat(r.read(IOVA).isOk()).isTrue();
        long id = r.faults().inject(new FaultSpec(InjectionKind.INTERRUPT_SPURIOUS).iommu(r.name)
                .trigger(t -> t.count(3)));
        // each unmap/map submits invalidations: queue producer writes, the spurious interrupts' opportunities
        long buf = r.m.driverHost().heap().allocPages(0, "buf2");
        for (int i = 0; i < 3; i++) {
            r.d.unmap(IOVA, 4096);
            r.d.map(IOVA, buf, 4096, Prot.READ | Prot.WRITE);
        }
        assertThat(r.m.faults().instance(r.name).firedByKind()).containsEntry(InjectionKind.INTERRUPT_SPURIOUS, 3L);
        assertThat(seen).as("each firing raised an interrupt").filteredOn(i -> i.source().equals(source)).hasSize(3);
        var log = r.o.events().since(0);
        assertThat(log.records()).as("no bogus event").isEmpty();
        assertThat(log.overflows()).isZero();
        assertThat(log.globalErrors()).isZero();
        assertThat(r.handledCount()).isZero();
        assertThat(r.read(IOVA).isOk()).as("the instance still translates").isTrue();
        assertThat(r.read(HOLE).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(r.handledCount()).as("a real fault is still reported").isEqualTo(1);
        r.faults().clear(id);
    }

    @Test
    void spuriousEventInterruptsFindAnEmptyEventQueue() throws Exception {
        spuriousInterruptsAreHarmless(smmu(), "eventq");
    }

    @Test
    void spuriousFaultEventsFindNoFaultRecorded() throws Exception {
        spuriousInterruptsAreHarmless(vtd(), "fault-event");
    }

    // ------------------------------------------------------------------ MSI_WRITE_FAIL

    @Test
    void anAbortedEventMsiRaisesMsiEvtqAbtErrAndTheRecordIsFoundAtTheNextPoll() throws Exception {
        Rig r = smmu();
        List<InterruptRecord> seen = r.interrupts();
        long doorbell = r.m.interrupts().doorbellBase();
        ((SmmuDriverInstance) r.o).host().mmioWrite(SmmuRegs.EVENTQ_IRQ_CFG0, 8, doorbell);
        long id = r.faults().inject(new FaultSpec(InjectionKind.MSI_WRITE_FAIL).iommu("smmu0")
                .target(t -> t.opcodes(InjectedInterrupts.EVENTQ)).trigger(t -> t.count(1)));
        long gerrorBefore = r.dev.mmioRead(SmmuRegs.GERROR, 4);

        assertThat(r.read(HOLE).status()).isEqualTo(DmaOutcome.Status.FAULT);
        long gerror = r.dev.mmioRead(SmmuRegs.GERROR, 4);
        assertThat((gerror ^ gerrorBefore) & 1L << Gerror.MSI_EVENTQ_ABT_ERR).as("MSI_EVENTQ_ABT_ERR toggled")
                .isNotZero();
        assertThat(gerror ^ gerrorBefore).as("nothing else").isEqualTo(1L << Gerror.MSI_EVENTQ_ABT_ERR);
        assertThat(r.dev.mmioRead(SmmuRegs.GERRORN, 4)).as("the driver acknowledged it").isEqualTo(gerror);
        assertThat(r.o.events().since(0).globalErrors()).isEqualTo(1);
        assertThat(seen).as("only the GERROR interrupt arrived").singleElement()
                .satisfies(i -> assertThat(i.source()).isEqualTo("gerror"));
        assertThat(r.handledCount()).as("no event interrupt: the record waits").isZero();
        assertThat(r.faults().log().since(0)).singleElement().satisfies(rec -> {
            assertThat(rec.faultId()).isEqualTo(id);
            assertThat(rec.address()).isEqualTo(doorbell);
        });

        r.o.drainEvents();
        assertThat(r.handledCount()).as("the poll found the record").isEqualTo(1);
        assertThat(r.read(HOLE + 0x1000).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(seen).last().satisfies(i -> {
            assertThat(i.source()).isEqualTo("eventq");
            assertThat(i.msi()).isTrue();
        });
        assertThat(r.handledCount()).as("the next MSI is delivered").isEqualTo(2);
        assertThat(r.o.events().since(0).globalErrors()).isEqualTo(1);
    }

    @Test
    void msiWriteFailIsRefusedOnVtdAndAppliesOnlyToSmmusWhenUntargeted() throws Exception {
        Rig r = vtd();
        assertThatThrownBy(() -> r.faults().inject(new FaultSpec(InjectionKind.MSI_WRITE_FAIL).iommu("dmar0")))
                .isInstanceOf(FaultSpecException.class).hasMessageContaining("target.iommu")
                .hasMessageContaining("dmar0").hasMessageContaining("VT-d");
        assertThat(r.faults().list("")).isEmpty();
        r.faults().inject(new FaultSpec(InjectionKind.MSI_WRITE_FAIL));
        assertThat(r.faults().list("")).hasSize(1);
        assertThat(r.read(HOLE).status()).isEqualTo(DmaOutcome.Status.FAULT);
        assertThat(r.handledCount()).as("the VT-d fault event MSI is written").isEqualTo(1);
        assertThat(r.faults().log().lastSequence()).isZero();
    }

    @Test
    void anAbortedCmdSyncMsiRaisesMsiCmdqAbtErrAndTheDriverCompletesTheSyncFromCons() throws Exception {
        Rig r = smmu();
        assertThat(r.read(IOVA).isOk()).isTrue();
        long gerrorBefore = r.dev.mmioRead(SmmuRegs.GERROR, 4);
        r.faults().inject(new FaultSpec(InjectionKind.MSI_WRITE_FAIL).iommu("smmu0")
                .target(t -> t.opcodes(InjectedInterrupts.CMD_SYNC)).trigger(t -> t.count(1)));
        r.d.unmap(IOVA, 4096); // strict: TLBI + CMD_SYNC, whose completion MSI aborts
        long gerror = r.dev.mmioRead(SmmuRegs.GERROR, 4);
        assertThat(gerror ^ gerrorBefore).as("MSI_CMDQ_ABT_ERR toggled").isEqualTo(1L << Gerror.MSI_CMDQ_ABT_ERR);
        assertThat(r.dev.mmioRead(SmmuRegs.GERRORN, 4)).as("acknowledged").isEqualTo(gerror);
        assertThat(r.o.events().since(0).globalErrors()).isEqualTo(1);
        assertThat(r.faults().log().since(0)).singleElement()
                .satisfies(rec -> assertThat(rec.code()).isEqualTo(InjectedInterrupts.CMD_SYNC));
        assertThat(r.read(IOVA).status()).as("the invalidation was carried out").isEqualTo(DmaOutcome.Status.FAULT);
    }

    @Test
    void aDroppedCmdSyncMsiIsRecoveredFromConsWithoutAnError() throws Exception {
        Rig r = smmu();
        assertThat(r.read(IOVA).isOk()).isTrue();
        r.faults().inject(new FaultSpec(InjectionKind.INTERRUPT_DROP).iommu("smmu0")
                .target(t -> t.opcodes(InjectedInterrupts.CMD_SYNC)).trigger(t -> t.count(1)));
        r.d.unmap(IOVA, 4096);
        assertThat(r.faults().list("smmu0")).singleElement().satisfies(s -> assertThat(s.fires()).isEqualTo(1));
        assertThat(r.dev.mmioRead(SmmuRegs.GERROR, 4)).isEqualTo(r.dev.mmioRead(SmmuRegs.GERRORN, 4));
        assertThat(r.o.events().since(0).globalErrors()).isZero();
        assertThat(r.read(IOVA).status()).isEqualTo(DmaOutcome.Status.FAULT);
    }
}
