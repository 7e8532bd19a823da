package org.iommuemu.device.vtd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.mockito.ArgumentMatchers.anyInt;
import static org.mockito.ArgumentMatchers.anyLong;
import static org.mockito.ArgumentMatchers.anyString;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.times;
import static org.mockito.Mockito.verify;
import static org.mockito.Mockito.when;

import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.vtd.FaultReason;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.device.machine.InterruptSink;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/**
 * The VT-d invalidation queue (descriptor consumption, invalidation waits, queue errors) and primary fault logging
 * (records, overflow, collapsing, the fault event and its mask), through the registers as a driver sees them.
 * Offsets and bit positions are written out from spec/VTD.md.
 */
class VtdQueueAndFaultsTest {
    private static final long GCMD = 0x18;
    private static final long GSTS = 0x1C;
    private static final long FSTS = 0x34;
    private static final long FECTL = 0x38;
    private static final long FEDATA = 0x3C;
    private static final long FEADDR = 0x40;
    private static final long IQH = 0x80;
    private static final long IQT = 0x88;
    private static final long IQA = 0x90;
    private static final long ICS = 0x9C;
    private static final long IECTL = 0xA0;
    private static final long IEDATA = 0xA4;
    private static final long IEADDR = 0xA8;
    private static final long IQERCD = 0xB0;
    /** VtdConfig.defaults(): FRO 0x40, eight records. */
    private static final long FRCD0 = 0x400;
    private static final long QIE = 1L << 26;
    private static final long QIES = 1L << 26;
    private static final int PPF = 1 << 1;
    private static final int PFO = 1;
    private static final int IQE = 1 << 4;

    private static final long QUEUE = 0x8000_0000L;
    private static final long STATUS = 0x8001_0000L;
    private static final long DOORBELL = 0x0800_0000L;

    private final SparseRam ram = SparseRam.withDefaultRam();
    private final InterruptSink interrupts = mock(InterruptSink.class);
    private VtdDevice vtd;

    @BeforeEach
    void setUp() {
        when(interrupts.msi(anyString(), anyString(), anyLong(), anyInt())).thenReturn(true);
        vtd = new VtdDevice("dmar0", VtdConfig.defaults(), ram, interrupts);
    }

    /** Queue at {@link #QUEUE}, QS=0, 128- or 256-bit descriptors, enabled. */
    private void enableQueue(boolean wide) {
        vtd.mmioWrite(IQA, 8, QUEUE | (wide ? 1L << 11 : 0));
        vtd.mmioWrite(IQT, 8, 0);
        vtd.mmioWrite(GCMD, 4, QIE);
        assertThat(vtd.mmioRead(GSTS, 4) & QIES).isEqualTo(QIES);
    }

    private void put(int index, boolean wide, long qw0, long qw1) throws Exception {
        long at = QUEUE + (long) index * (wide ? 32 : 16);
        ram.write64(at, qw0);
        ram.write64(at + 8, qw1);
    }

    private void tail(int index, boolean wide) {
        vtd.mmioWrite(IQT, 8, (long) index << (wide ? 5 : 4));
    }

    private long head(boolean wide) {
        return vtd.mmioRead(IQH, 8) >>> (wide ? 5 : 4);
    }

    @Nested
    class Queue {
        @Test
        void consumesDescriptorsUpToTheTailAndWritesWaitStatus() throws Exception {
            enableQueue(false);
            put(0, false, InvDesc.contextCache(1, 0, 0, 0), 0);
            put(1, false, InvDesc.iotlb(1, 0, false, false), 0);
            put(2, false, InvDesc.waitQw0(true, false, false, InvDesc.STATUS_DONE), STATUS);
            tail(3, false);
            assertThat(head(false)).isEqualTo(3);
            assertThat(ram.read32(STATUS)).isEqualTo(InvDesc.STATUS_DONE);
            assertThat(vtd.descriptorsProcessed()).isEqualTo(3);
            assertThat(vtd.mmioRead(FSTS, 4) & IQE).isZero();
            assertThat(vtd.stats().commands()).extracting(c -> c.name())
                    .containsExactly("CC_INV", "IOTLB_INV", "INV_WAIT");
        }

        @Test
        void wideDescriptorsAndWrapAround() throws Exception {
            enableQueue(true); // QS=0 with 256-bit descriptors: 128 entries
            vtd.registerFile().register("IQH").set(126L << 5);
            // the queue only ever moves forward from IQH: pretend it is at 126 by consuming there
            for (int i = 126; i < 128; i++) {
                put(i, true, InvDesc.iotlb(2, 7, false, false), 0);
            }
            put(0, true, InvDesc.waitQw0(true, false, false, 5), STATUS);
            tail(1, true);
            assertThat(head(true)).isEqualTo(1);
            assertThat(ram.read32(STATUS)).isEqualTo(5);
        }

        @Test
        void theUpperHalfOfA256BitDescriptorIsReserved() throws Exception {
            enableQueue(true);
            put(0, true, InvDesc.iotlb(1, 0, false, false), 0);
            ram.write64(QUEUE + 16, 1);
            tail(1, true);
            assertThat(vtd.mmioRead(FSTS, 4) & IQE).isEqualTo(IQE);
            assertThat(vtd.mmioRead(IQERCD, 8) & 0xF).isEqualTo(4);
            assertThat(head(true)).as("IQH at the offending descriptor").isZero();
        }

        @Test
        void invalidationWaitInterruptSetsIwcAndSignalsOnce() throws Exception {
            enableQueue(false);
            vtd.mmioWrite(IEDATA, 4, 0x41);
            vtd.mmioWrite(IEADDR, 4, DOORBELL + 4);
            vtd.mmioWrite(IECTL, 4, 0); // unmask
            put(0, false, InvDesc.waitQw0(false, true, false, 0), 0);
            put(1, false, InvDesc.waitQw0(false, true, false, 0), 0);
            tail(2, false);
            assertThat(vtd.mmioRead(ICS, 4)).isEqualTo(1);
            verify(interrupts, times(1)).msi("dmar0", "inv-completion", DOORBELL + 4, 0x41);
            vtd.mmioWrite(ICS, 4, 1);
            put(2, false, InvDesc.waitQw0(false, true, false, 0), 0);
            tail(3, false);
            verify(interrupts, times(2)).msi("dmar0", "inv-completion", DOORBELL + 4, 0x41);
        }

        @Test
        void maskedCompletionIsDeliveredWhenUnmasked() throws Exception {
            enableQueue(false);
            vtd.mmioWrite(IEADDR, 4, DOORBELL);
            put(0, false, InvDesc.waitQw0(false, true, false, 0), 0);
            tail(1, false);
            verify(interrupts, never()).msi(anyString(), eq("inv-completion"), anyLong(), anyInt());
            assertThat(vtd.mmioRead(IECTL, 4)).as("IM and IP").isEqualTo(0xC000_0000L);
            vtd.mmioWrite(IECTL, 4, 0);
            verify(interrupts).msi("dmar0", "inv-completion", DOORBELL, 0);
            assertThat(vtd.mmioRead(IECTL, 4)).isZero();
        }

        @Test
        void eachKindOfBadDescriptorStopsTheQueueWithIqe() throws Exception {
            long[][] bad = {
                {0xF, 0, 3}, // unknown type 15
                {InvDesc.contextCache(1, 0, 0, 0) | 1L << 7, 0, 4}, // reserved bit 7
                {InvDesc.contextCache(0, 0, 0, 0), 0, 4}, // granularity 0
                {InvDesc.iotlb(3, 1, false, false), 1L << 8, 4}, // reserved qw1 bit 8
                {InvDesc.waitQw0(false, false, false, 0), 0, 4}, // a wait with none of SW, IF, FN
                {InvDesc.waitQw0(true, false, false, 0), STATUS | 2, 4}, // status address not 4-byte aligned
                {InvDesc.deviceTlb(0x10), 0, 3}, // device TLB without ECAP.DT
                {InvDesc.TYPE_PAGE_GROUP_RESPONSE, 0, 3}, // page-group response without ECAP.PRS
            };
            for (long[] b : bad) {
                setUp();
                enableQueue(false);
                put(0, false, InvDesc.iotlb(1, 0, false, false), 0);
                put(1, false, b[0], b[1]);
                put(2, false, InvDesc.waitQw0(true, false, false, 9), STATUS);
                tail(3, false);
                assertThat(vtd.mmioRead(FSTS, 4) & IQE).as("%x", b[0]).isEqualTo(IQE);
                assertThat(vtd.mmioRead(IQERCD, 8) & 0xF).as("IQEI of %x", b[0]).isEqualTo(b[2]);
                assertThat(head(false)).as("IQH at the bad descriptor").isEqualTo(1);
                assertThat(ram.read32(STATUS)).as("nothing after it ran").isZero();
                // as Linux does: overwrite the bad slot with a wait, clear IQE; the queue resumes from IQH
                put(1, false, InvDesc.waitQw0(true, false, false, 8), STATUS);
                vtd.mmioWrite(FSTS, 4, IQE);
                assertThat(head(false)).isEqualTo(3);
                assertThat(ram.read32(STATUS)).isEqualTo(9);
                ram.write32(STATUS, 0);
            }
        }

        @Test
        void tailErrors() throws Exception {
            enableQueue(true);
            vtd.mmioWrite(IQT, 8, 0x10); // bit 4 set with 256-bit descriptors
            assertThat(vtd.mmioRead(IQERCD, 8) & 0xF).isEqualTo(6);
            vtd.mmioWrite(IQT, 8, 200L << 5); // beyond 128 entries; not looked at while IQE is set
            assertThat(vtd.mmioRead(IQERCD, 8) & 0xF).isEqualTo(6);
            vtd.mmioWrite(FSTS, 4, IQE); // clearing IQE resumes processing, which finds the new bad tail
            assertThat(vtd.mmioRead(FSTS, 4) & IQE).isEqualTo(IQE);
            assertThat(vtd.mmioRead(IQERCD, 8) & 0xF).isEqualTo(1);
        }

        @Test
        void aQueueOutsideRamIsAFetchError() {
            vtd.mmioWrite(IQA, 8, 0x10_0000L); // below RAM
            vtd.mmioWrite(GCMD, 4, QIE);
            vtd.mmioWrite(IQT, 8, 1L << 4);
            assertThat(vtd.mmioRead(IQERCD, 8) & 0xF).isEqualTo(2);
            assertThat(vtd.mmioRead(IQH, 8)).isZero();
        }

        @Test
        void disablingResetsTheHeadAndStopsConsumption() throws Exception {
            enableQueue(false);
            put(0, false, InvDesc.iotlb(1, 0, false, false), 0);
            tail(1, false);
            vtd.mmioWrite(GCMD, 4, 0);
            assertThat(vtd.mmioRead(GSTS, 4) & QIES).isZero();
            assertThat(vtd.mmioRead(IQH, 8)).isZero();
            put(1, false, InvDesc.waitQw0(true, false, false, 3), STATUS);
            tail(2, false);
            assertThat(ram.read32(STATUS)).as("a disabled queue consumes nothing").isZero();
        }

        @Test
        void anIqeRaisesTheFaultEvent() throws Exception {
            vtd.mmioWrite(FEADDR, 4, DOORBELL + 8);
            vtd.mmioWrite(FEDATA, 4, 0x22);
            vtd.mmioWrite(FECTL, 4, 0);
            enableQueue(false);
            put(0, false, 0xF, 0);
            tail(1, false);
            verify(interrupts).msi("dmar0", "fault-event", DOORBELL + 8, 0x22);
        }
    }

    @Nested
    class FaultLogging {
        private FaultReporter faults() {
            return vtd.faultReporter();
        }

        private long hi(int n) {
            return vtd.mmioRead(FRCD0 + 16L * n + 8, 8);
        }

        private long lo(int n) {
            return vtd.mmioRead(FRCD0 + 16L * n, 8);
        }

        @Test
        void aRecordHoldsEveryField() {
            faults().report(0x0310, 0x1234, 0xDEAD_BEEFL, FaultReason.SM_WRITE, true, true, false);
            faults().report(0x0018, -1, 0x7000, FaultReason.READ, false, false, true);
            assertThat(lo(0)).isEqualTo(0xDEAD_B000L);
            long r = hi(0);
            assertThat(r & 0xFFFF).as("SID").isEqualTo(0x0310);
            assertThat((r >>> 32) & 0xFF).as("FR").isEqualTo(0x85);
            assertThat((r >>> 40) & 0xFFFFF).as("PV").isEqualTo(0x1234);
            assertThat(r >>> 31 & 1).as("PP").isEqualTo(1);
            assertThat(r >>> 29 & 1).as("PRIV").isEqualTo(1);
            assertThat(r >>> 62 & 1).as("T: 0 for a write").isZero();
            assertThat(r >>> 63).as("F").isEqualTo(1);
            long r1 = hi(1);
            assertThat(r1 >>> 31 & 1).as("no PASID").isZero();
            assertThat(r1 >>> 62 & 1).as("T: 1 for a read").isEqualTo(1);
            assertThat(r1 >>> 30 & 1).as("EXE").isEqualTo(1);
            assertThat(vtd.mmioRead(FSTS, 4)).as("PPF, FRI 0").isEqualTo(PPF);
            assertThat(vtd.stats().events()).extracting(e -> e.code()).containsExactly(0x06, 0x85);
        }

        @Test
        void repeatedFaultsOfOneSourceCollapse() {
            for (int i = 0; i < 5; i++) {
                faults().report(0x10, -1, 0x1000L * i, FaultReason.CONTEXT_NOT_PRESENT, false, false, false);
            }
            assertThat(hi(0) >>> 63).isEqualTo(1);
            assertThat(hi(1) >>> 63).as("collapsed into record 0").isZero();
            vtd.mmioWrite(FRCD0 + 8 + 4, 4, 0x8000_0000L); // clear F
            faults().report(0x10, -1, 0x9000, FaultReason.CONTEXT_NOT_PRESENT, false, false, false);
            assertThat(hi(1) >>> 63).as("round robin: the next record").isEqualTo(1);
            assertThat(lo(1)).isEqualTo(0x9000);
            assertThat(vtd.mmioRead(FSTS, 4) >>> 8 & 0xFF).as("FRI").isEqualTo(1);
        }

        @Test
        void overflowSetsPfoAndDropsUntilCleared() {
            for (int sid = 0; sid < 8; sid++) {
                faults().report(sid, -1, 0, FaultReason.ROOT_NOT_PRESENT, false, false, false);
            }
            assertThat(vtd.mmioRead(FSTS, 4) & PFO).isZero();
            faults().report(100, -1, 0, FaultReason.ROOT_NOT_PRESENT, false, false, false);
            assertThat(vtd.mmioRead(FSTS, 4) & PFO).isEqualTo(PFO);
            for (int n = 0; n < 8; n++) {
                vtd.mmioWrite(FRCD0 + 16L * n + 12, 4, 0x8000_0000L);
            }
            assertThat(vtd.mmioRead(FSTS, 4) & PPF).as("PPF follows F").isZero();
            faults().report(101, -1, 0, FaultReason.ROOT_NOT_PRESENT, false, false, false);
            assertThat(hi(0) >>> 63).as("dropped while PFO is set").isZero();
            vtd.mmioWrite(FSTS, 4, PFO);
            faults().report(102, -1, 0, FaultReason.ROOT_NOT_PRESENT, false, false, false);
            assertThat(hi(0) & 0xFFFF).isEqualTo(102);
            assertThat(vtd.stats().eventsLost()).isEqualTo(2);
        }

        @Test
        void theFaultEventIsSentOncePerPendingPeriodAndHonoursTheMask() {
            vtd.mmioWrite(FEADDR, 4, DOORBELL);
            vtd.mmioWrite(FEDATA, 4, 0x30);
            faults().report(1, -1, 0, FaultReason.WRITE, true, false, false);
            verify(interrupts, never()).msi(anyString(), anyString(), anyLong(), anyInt());
            assertThat(vtd.mmioRead(FECTL, 4)).as("IM reset, IP pending").isEqualTo(0xC000_0000L);
            vtd.mmioWrite(FECTL, 4, 0);
            verify(interrupts, times(1)).msi("dmar0", "fault-event", DOORBELL, 0x30);
            faults().report(2, -1, 0, FaultReason.WRITE, true, false, false);
            verify(interrupts, times(1)).msi("dmar0", "fault-event", DOORBELL, 0x30);
            vtd.mmioWrite(FRCD0 + 12, 4, 0x8000_0000L);
            vtd.mmioWrite(FRCD0 + 16 + 12, 4, 0x8000_0000L);
            faults().report(3, -1, 0, FaultReason.WRITE, true, false, false);
            verify(interrupts, times(2)).msi("dmar0", "fault-event", DOORBELL, 0x30);
        }

        @Test
        void clearingEveryConditionDropsAMaskedPendingEvent() {
            faults().report(1, -1, 0, FaultReason.WRITE, true, false, false);
            assertThat(vtd.mmioRead(FECTL, 4) >>> 30 & 1).isEqualTo(1);
            vtd.mmioWrite(FRCD0 + 12, 4, 0x8000_0000L);
            assertThat(vtd.mmioRead(FECTL, 4) >>> 30 & 1).isZero();
            vtd.mmioWrite(FECTL, 4, 0);
            verify(interrupts, never()).msi(anyString(), anyString(), anyLong(), anyInt());
        }
    }
}
