package org.iommuemu.device.inject;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.DriverInstance;
import org.iommuemu.device.machine.DriverInstance.Stage;
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
}
