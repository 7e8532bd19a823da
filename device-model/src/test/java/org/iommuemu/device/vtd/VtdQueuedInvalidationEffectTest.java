package org.iommuemu.device.vtd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.mockito.ArgumentMatchers.anyInt;
import static org.mockito.ArgumentMatchers.anyLong;
import static org.mockito.ArgumentMatchers.anyString;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.when;

import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.machine.InterruptSink;
import org.iommuemu.device.machine.Translation;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * What the invalidation queue's descriptors and the register-based invalidations do to the unit's caches, seen
 * through translations as a driver sees them: a legacy-mode unit, programmed through its registers and guest memory,
 * keeps a stale translation after the table changes until the matching invalidation is consumed, and every
 * descriptor type the configuration supports is accepted and counted under its name.
 */
class VtdQueuedInvalidationEffectTest {
    private static final int SID = 0x0208;
    private static final int DID = 9;
    private static final long IOVA = 0x4000_0000L;

    private final SparseRam ram = SparseRam.withDefaultRam();
    private final InterruptSink irq = mock(InterruptSink.class);
    private BuddyPageAllocator alloc;
    private PageTable pt;
    private IotlbGather gather;
    private VtdDevice vtd;
    private long queue;
    private long status;
    private int tail;
    private final Translation out = new Translation();

    @BeforeEach
    void setUp() throws Exception {
        when(irq.msi(anyString(), anyString(), anyLong(), anyInt())).thenReturn(true);
        alloc = new BuddyPageAllocator(ram, SparseRam.DEFAULT_RAM_BASE, 64L << 20);
        pt = new PageTable(VtdSs.levels(4), ram, alloc);
        gather = new IotlbGather(g -> { }, alloc);
        long root = alloc.allocPages(0, "root");
        long context = alloc.allocPages(0, "context");
        ram.write64(VtdTables.rootEntryAddress(root, VtdTables.bus(SID)), VtdTables.rootEntry(context));
        long ce = context + (long) VtdTables.CONTEXT_ENTRY_SIZE * VtdTables.devfn(SID);
        ram.write64(ce + 8, VtdTables.contextQw1(DID, 4));
        ram.write64(ce, VtdTables.contextQw0(pt.root(), VtdTables.TT_MULTI_LEVEL, false));
        VtdConfig legacy = VtdConfig.builder().smts(false).flts(false).slts(false).nest(false).pasid(false).pss(0)
                .rps(false).slads(false).dt(true).ir(true).prs(true).build();
        vtd = new VtdDevice("dmar0", legacy, ram, irq);
        queue = alloc.allocPages(0, "iq");
        status = alloc.allocPages(0, "status");
        vtd.mmioWrite(VtdRegs.RTADDR, 8, root);
        vtd.mmioWrite(VtdRegs.GCMD, 4, 1L << VtdRegs.GCMD_SRTP);
        vtd.mmioWrite(VtdRegs.IQA, 8, queue); // QS=0: 256 128-bit descriptors
        vtd.mmioWrite(VtdRegs.IQT, 8, 0);
        vtd.mmioWrite(VtdRegs.GCMD, 4, 1L << VtdRegs.GCMD_QIE);
        vtd.mmioWrite(VtdRegs.GCMD, 4, 1L << VtdRegs.GCMD_QIE | 1L << VtdRegs.GCMD_TE);
    }

    private long page(int n) {
        return SparseRam.DEFAULT_RAM_BASE + (32L << 20) + ((long) n << 12);
    }

    /** Maps IOVA (and the next page) to page(n). */
    private void mapTo(int n) throws Exception {
        pt.unmap(IOVA, 2 * 4096, gather);
        gather.sync();
        pt.map(IOVA, page(n), 2 * 4096, Prot.READ | Prot.WRITE, gather);
    }

    private long translated(long iova) {
        Translation t = vtd.translate(SID, -1, iova, 0, out);
        return t.isOk() ? t.physicalAddress() : -1;
    }

    /** Queues descriptors (qw0, qw1 pairs) and an invalidation wait, and moves the tail. */
    private void submit(long... qwords) throws Exception {
        for (int i = 0; i < qwords.length; i += 2) {
            ram.write64(queue + 16L * tail, qwords[i]);
            ram.write64(queue + 16L * tail + 8, qwords[i + 1]);
            tail = (tail + 1) % 256;
        }
        ram.write64(queue + 16L * tail, InvDesc.waitQw0(true, false, false, InvDesc.STATUS_DONE));
        ram.write64(queue + 16L * tail + 8, InvDesc.waitQw1(status));
        tail = (tail + 1) % 256;
        ram.write32(status, 0);
        vtd.mmioWrite(VtdRegs.IQT, 8, (long) tail << 4);
        assertThat(ram.read32(status)).as("the wait completed: everything before it was consumed")
                .isEqualTo(InvDesc.STATUS_DONE);
        assertThat(vtd.mmioRead(VtdRegs.FSTS, 4) & (1 << VtdRegs.FSTS_IQE)).isZero();
    }

    @Test
    void aPageSelectiveDescriptorDropsItsSpanAndOnlyIt() throws Exception {
        mapTo(0);
        assertThat(translated(IOVA)).isEqualTo(page(0));
        assertThat(translated(IOVA + 0x1000)).isEqualTo(page(1));
        mapTo(10);
        assertThat(translated(IOVA)).as("stale until invalidated").isEqualTo(page(0));
        submit(InvDesc.iotlb(VtdRegs.IOTLB_PAGE, DID + 1, false, false), InvDesc.addr(IOVA, 0, true));
        assertThat(translated(IOVA)).as("another domain's invalidation").isEqualTo(page(0));
        submit(InvDesc.iotlb(VtdRegs.IOTLB_PAGE, DID, false, false), InvDesc.addr(IOVA, 0, true));
        assertThat(translated(IOVA)).as("AM=0: its page").isEqualTo(page(10));
        assertThat(translated(IOVA + 0x1000)).as("the next page is outside 2^0 pages").isEqualTo(page(1));
        submit(InvDesc.iotlb(VtdRegs.IOTLB_PAGE, DID, false, false), InvDesc.addr(IOVA, 1, true));
        assertThat(translated(IOVA + 0x1000)).as("AM=1 covers it").isEqualTo(page(11));
    }

    @Test
    void domainAndGlobalDescriptorsAndTheRegisters() throws Exception {
        mapTo(0);
        translated(IOVA);
        mapTo(20);
        submit(InvDesc.iotlb(VtdRegs.IOTLB_DOMAIN, DID, false, false), 0);
        assertThat(translated(IOVA)).isEqualTo(page(20));
        mapTo(30);
        submit(InvDesc.iotlb(VtdRegs.IOTLB_GLOBAL, 0, false, false), 0);
        assertThat(translated(IOVA)).isEqualTo(page(30));
        mapTo(40);
        // the IOTLB register: page-selective through IVA
        vtd.mmioWrite(vtdIva(), 8, IOVA);
        vtd.mmioWrite(vtdIva() + 8, 8, 1L << VtdRegs.IOTLB_IVT | (long) VtdRegs.IOTLB_PAGE << VtdRegs.IOTLB_IIRG
                | (long) DID << VtdRegs.IOTLB_DID);
        assertThat(translated(IOVA)).isEqualTo(page(40));
        assertThat(vtd.mmioRead(vtdIva() + 8, 8) >>> VtdRegs.IOTLB_IAIG & 3).as("IAIG: page-selective").isEqualTo(3);
    }

    private long vtdIva() {
        return 16L * vtd.config().iro();
    }

    @Test
    void aContextCacheInvalidationMakesAContextChangeVisible() throws Exception {
        mapTo(0);
        assertThat(translated(IOVA)).isEqualTo(page(0));
        // the device's context entry is cleared: cached until a context-cache invalidation for it
        long context = ram.read64(VtdTables.rootEntryAddress(rootTable(), VtdTables.bus(SID))) & VtdTables.PTR_MASK;
        ram.write64(context + (long) VtdTables.CONTEXT_ENTRY_SIZE * VtdTables.devfn(SID), 0);
        submit(InvDesc.iotlb(VtdRegs.IOTLB_DOMAIN, DID, false, false), 0);
        assertThat(translated(IOVA)).as("the context cache still holds the entry").isEqualTo(page(0));
        submit(InvDesc.contextCache(VtdRegs.CC_DEVICE, DID, SID ^ 1, 0), 0);
        submit(InvDesc.iotlb(VtdRegs.IOTLB_DOMAIN, DID, false, false), 0);
        assertThat(translated(IOVA)).as("another function's invalidation").isEqualTo(page(0));
        submit(InvDesc.contextCache(VtdRegs.CC_DEVICE, DID, SID ^ 1, 1), 0); // FM=1 ignores bit 2 only: still another
        submit(InvDesc.contextCache(VtdRegs.CC_DEVICE, DID, SID, 0), 0);
        submit(InvDesc.iotlb(VtdRegs.IOTLB_DOMAIN, DID, false, false), 0);
        assertThat(translated(IOVA)).as("context entry not present").isEqualTo(-1);
        assertThat(out.code()).isEqualTo(0x2);
    }

    private long rootTable() {
        return vtd.rootTableAddress();
    }

    @Test
    void everySupportedDescriptorTypeIsAcceptedAndCounted() throws Exception {
        submit(InvDesc.contextCache(VtdRegs.CC_GLOBAL, 0, 0, 0), 0,
                InvDesc.iotlb(VtdRegs.IOTLB_GLOBAL, 0, true, true), 0,
                InvDesc.deviceTlb(SID), 0,
                InvDesc.iecGlobal(), 0,
                InvDesc.TYPE_PAGE_GROUP_RESPONSE, 0);
        assertThat(vtd.stats().commands()).extracting(c -> c.name())
                .containsExactly("CC_INV", "IOTLB_INV", "DEV_TLB_INV", "IEC_INV", "INV_WAIT", "PGRP_RESP");
        // PASID-based descriptors need scalable mode: this legacy unit refuses them
        ram.write64(queue + 16L * tail, InvDesc.pasidCache(InvDesc.PC_GLOBAL, 0, 0));
        ram.write64(queue + 16L * tail + 8, 0);
        vtd.mmioWrite(VtdRegs.IQT, 8, (long) (tail + 1) << 4);
        assertThat(vtd.mmioRead(VtdRegs.FSTS, 4) & (1 << VtdRegs.FSTS_IQE)).isNotZero();
        assertThat(vtd.mmioRead(VtdRegs.IQERCD, 8) & 0xF).isEqualTo(VtdRegs.IQEI_INVALID_TYPE);
    }
}
