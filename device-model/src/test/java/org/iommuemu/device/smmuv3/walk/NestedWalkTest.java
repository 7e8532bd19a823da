package org.iommuemu.device.smmuv3.walk;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.FETCH_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.FETCH_USER;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.READ_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.READ_USER;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.WRITE_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.WRITE_USER;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.PtLookup;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.device.smmuv3.walk.Stage1Context.TableHalf;
import org.iommuemu.device.smmuv3.walk.WalkResult.Fault;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Nested (stage 1 + stage 2) walks over a guest whose stage-1 tables live in IPA space: a guest driver built
 * them with {@link PageTable} through {@link IpaSpace}, so each table page sits wherever the host's stage-2
 * table put it, and the walker must translate every stage-1 table address through stage 2 before reading it.
 */
class NestedWalkTest {
    /** The guest's IPA window for its page-table pages. */
    static final long TABLE_WINDOW = 0x20_0000_0000L;
    static final long TABLE_WINDOW_SIZE = 32L << 20;
    /** The guest's IPA window its stage 1 maps data into: stage 2 maps most of it, in 2 MiB chunks. */
    static final long DATA_WINDOW = 0x30_0000_0000L;
    static final int DATA_WINDOW_BITS = 28;
    static final long CHUNK = 2L << 20;
    /** IPA pages stage 2 maps read-write, for hand-made stage-1 mappings ({@link Guest#mapVa}). */
    static final long FIXED_WINDOW = 0x38_0000_0000L;
    static final long FIXED_VA = 0x7000_0000_0000L;
    static final int IPA_BITS = 40;

    /** A host with a stage-2 table and a guest with stage-1 tables in IPA space. */
    static final class Guest {
        final WalkFixture f = new WalkFixture();
        final Arm64Lpae s2fmt;
        final PageTable s2;
        final IpaSpace ipaSpace;
        final PageTable s1;
        final Stage1Context s1ctx;
        final Stage2Context s2ctx;
        final List<long[]> s1Mapped;
        final int s2GranuleLg2;

        Guest(int s1GranuleLg2, int s2GranuleLg2, long seed) throws Exception {
            this.s2GranuleLg2 = s2GranuleLg2;
            Random rnd = new Random(seed);
            s2fmt = Arm64Lpae.stage2(s2GranuleLg2, IPA_BITS, 48);
            s2 = new PageTable(s2fmt, f.ram, f.alloc);
            // The table window: each stage-2 page of it backed by a host page picked in random order.
            long s2Page = 1L << s2GranuleLg2;
            List<Long> hostPages = new ArrayList<>();
            for (long off = 0; off < TABLE_WINDOW_SIZE; off += s2Page) {
                hostPages.add(f.alloc.allocPages(s2GranuleLg2 - 12, "guest-ram"));
            }
            Collections.shuffle(hostPages, rnd);
            for (int i = 0; i < hostPages.size(); i++) {
                s2.map(TABLE_WINDOW + i * s2Page, hostPages.get(i), s2Page, Prot.READ | Prot.WRITE | Prot.CACHE,
                        f.gather);
            }
            // The data window, to host addresses that need not be RAM (nothing reads them): chunk by chunk a hole,
            // a 2 MiB block (4K granule) or pages, with a random protection.
            for (long ipa = DATA_WINDOW; ipa < DATA_WINDOW + (1L << DATA_WINDOW_BITS); ipa += CHUNK) {
                int kind = rnd.nextInt(10);
                if (kind == 0) {
                    continue;
                }
                long pa = Bits.alignDown(rnd.nextLong() & Bits.mask(0, 44), 21);
                long sizes = kind <= 3 ? s2.pageSizes() : 1L << s2GranuleLg2;
                s2.map(ipa, pa, CHUNK, DriverTables.randomProt(rnd, false), sizes, f.gather);
            }
            s2.map(FIXED_WINDOW, Bits.alignDown(rnd.nextLong() & Bits.mask(0, 44), 21), CHUNK,
                    Prot.READ | Prot.WRITE | Prot.CACHE, 1L << s2GranuleLg2, f.gather);
            ipaSpace = new IpaSpace(f.ram, s2, TABLE_WINDOW, TABLE_WINDOW_SIZE);
            BuddyPageAllocator guestAlloc = new BuddyPageAllocator(ipaSpace, TABLE_WINDOW, TABLE_WINDOW_SIZE);
            s1 = new PageTable(Arm64Lpae.stage1(s1GranuleLg2, 48, IPA_BITS), ipaSpace, guestAlloc);
            s1Mapped = DriverTables.mapRandom(s1, rnd, 80, 0, 48, DATA_WINDOW, DATA_WINDOW_BITS, true, f.gather);
            s1ctx = Stage1Context.builder().ttb0(TableHalf.of(16, s1GranuleLg2, s1.root())).oasBits(IPA_BITS)
                    .asid(3).build();
            s2ctx = Stage2Context.builder().vmid(9).granuleLg2(s2GranuleLg2).t0sz(s2fmt.t0sz())
                    .sl0(s2fmt.stage2Sl0()).psBits(48).iasBits(48).ttb(s2.root()).build();
        }

        /** Reads of one stage-2 walk of a table-window address (every table-window page is a page leaf). */
        int tableWindowS2Reads() {
            return 3 - s2ctx.startLevel() + 1;
        }

        PtLookup s1Leaf(long va) throws Exception {
            return DriverTables.lookup(s1, va);
        }

        PtLookup s2Leaf(long ipa) throws Exception {
            return DriverTables.lookup(s2, ipa);
        }

        WalkResult walk(long va, int access) {
            return f.walker.translateNested(s1ctx, s2ctx, va, access, f.out);
        }

        /** Rewrites the stage-1 descriptor at IPA {@code slot}. */
        void putIpa(long slot, long value) throws MemoryAccessException {
            ipaSpace.write64(slot, value);
        }

        long getIpa(long slot) throws MemoryAccessException {
            return ipaSpace.read64(slot);
        }

        /** Replaces the stage-2 mapping of the stage-2 page holding {@code ipa} (same host page, new prot). */
        void remapTablePage(long ipa, int prot) throws Exception {
            long page = Bits.alignDown(ipa, s2GranuleLg2);
            long pa = s2.iovaToPhys(page);
            s2.unmap(page, 1L << s2GranuleLg2, f.gather);
            s2.map(page, pa, 1L << s2GranuleLg2, prot, f.gather);
        }

        /** Points the stage-2 mapping of the page holding {@code ipa} at {@code pa}. */
        void moveTablePage(long ipa, long pa) throws Exception {
            long page = Bits.alignDown(ipa, s2GranuleLg2);
            s2.unmap(page, 1L << s2GranuleLg2, f.gather);
            s2.map(page, pa, 1L << s2GranuleLg2, Prot.READ | Prot.WRITE, f.gather);
        }

        private int fixedPages;

        /** Maps a new stage-1 page with {@code s1Prot} to an IPA page stage 2 maps read-write; returns its VA. */
        long mapVa(int s1Prot) throws Exception {
            long page = 1L << s1.minPageLg2();
            long va = FIXED_VA + fixedPages * page;
            long ipa = FIXED_WINDOW + fixedPages * page;
            fixedPages++;
            s1.map(va, ipa, page, s1Prot, f.gather);
            return va;
        }
    }

    static Stream<Arguments> granules() {
        return Stream.of(Arguments.of(12, 12), Arguments.of(12, 16), Arguments.of(14, 12), Arguments.of(16, 14),
                Arguments.of(16, 16), Arguments.of(14, 14));
    }

    @ParameterizedTest(name = "stage-1 granule 2^{0}, stage-2 granule 2^{1}")
    @MethodSource("granules")
    void translatesThroughBothStages(int s1GranuleLg2, int s2GranuleLg2) throws Exception {
        long seed = s1GranuleLg2 * 100L + s2GranuleLg2;
        Guest g = new Guest(s1GranuleLg2, s2GranuleLg2, seed);
        Random rnd = new Random(seed);
        int s1Start = g.s1ctx.startLevel(0);
        int s2Start = g.s2ctx.startLevel();
        int both = 0;
        for (long va : DriverTables.probes(g.s1Mapped, rnd, 0, 48, 100)) {
            String what = "seed " + seed + " va " + Bits.hex(va);
            PtLookup l1 = g.s1Leaf(va);
            WalkResult out = g.walk(va, READ_PRIV);
            if (l1 == null) {
                assertThat(out.fault()).as(what + ": %s", out).isEqualTo(Fault.TRANSLATION);
                assertThat(out.faultS2()).as(what).isFalse();
                continue;
            }
            long ipa = l1.oa() + (va - l1.iova());
            PtLookup l2 = g.s2Leaf(ipa);
            int s1Lookups = 3 - l1.level() - s1Start + 1;
            int tableReads = s1Lookups * (g.tableWindowS2Reads() + 1);
            if (l2 == null) {
                assertThat(out.fault()).as(what + ": %s", out).isEqualTo(Fault.TRANSLATION);
                assertThat(out.faultS2()).as(what).isTrue();
                assertThat(out.faultClass()).as(what).isEqualTo(WalkResult.CLASS_IN);
                assertThat(out.faultIpa()).as(what).isEqualTo(ipa);
                assertThat(out.reads()).as(what).isGreaterThan(tableReads);
                continue;
            }
            both++;
            int s1Perms = DriverTables.stage1Perms(l1.prot());
            int s2Perms = DriverTables.stage2Perms(l2.prot());
            int[] accesses = {READ_PRIV, WRITE_PRIV, FETCH_PRIV, READ_USER, WRITE_USER, FETCH_USER};
            for (int a : accesses) {
                int need = WalkResult.requiredPermission(a);
                WalkResult r = g.walk(va, a);
                String how = what + " access " + a + ": " + r;
                if ((s1Perms & need) == 0) {
                    assertThat(r.fault()).as(how).isEqualTo(Fault.PERMISSION);
                    assertThat(r.faultS2()).as(how).isFalse();
                    continue;
                }
                if ((s2Perms & need) == 0) {
                    assertThat(r.fault()).as(how).isEqualTo(Fault.PERMISSION);
                    assertThat(r.faultS2()).as(how).isTrue();
                    assertThat(r.faultClass()).as(how).isEqualTo(WalkResult.CLASS_IN);
                    assertThat(r.faultIpa()).as(how).isEqualTo(ipa);
                    continue;
                }
                assertThat(r.outcome()).as(how).isEqualTo(WalkResult.Outcome.OK);
                assertThat(r.ipa()).as(how).isEqualTo(ipa);
                assertThat(r.outputAddress()).as(how).isEqualTo(l2.oa() + (ipa - l2.iova()));
                assertThat(r.s1Level()).as(how).isEqualTo(3 - l1.level());
                assertThat(r.s2Level()).as(how).isEqualTo(3 - l2.level());
                assertThat(r.sizeLg2()).as(how).isEqualTo(Math.min(l1.sizeLg2(), l2.sizeLg2()));
                assertThat(r.inputBase()).as(how).isEqualTo(Bits.alignDown(va, r.sizeLg2()));
                assertThat(r.outputBase()).as(how).isEqualTo(Bits.alignDown(r.outputAddress(), r.sizeLg2()));
                assertThat(r.stages()).as(how).isEqualTo(WalkResult.STAGE_1 | WalkResult.STAGE_2);
                assertThat(r.asid()).isEqualTo(3);
                assertThat(r.vmid()).isEqualTo(9);
                assertThat(r.reads()).as(how + " reads").isEqualTo(tableReads + (3 - l2.level()) - s2Start + 1);
                assertThat(WalkResult.permString(r.permissions())).as(how)
                        .isEqualTo(WalkResult.permString(s1Perms & s2Perms));
            }
        }
        assertThat(both).as("seed " + seed + " probes translated by both stages").isGreaterThan(10);
    }

    // ---------------------------------------------------------------- stage-2 faults on stage-1 table accesses

    @Test
    void aStage2TranslationFaultOnAStage1TableFetchIsClassTt() throws Exception {
        Guest g = new Guest(12, 12, 1);
        long va = g.mapVa(Prot.READ | Prot.WRITE);
        long slot = g.s1Leaf(va).slot(); // IPA of the stage-1 leaf descriptor
        g.s2.unmap(Bits.alignDown(slot, 12), 4096, g.f.gather);
        WalkResult out = g.walk(va, WRITE_PRIV);
        assertThat(out.fault()).as("%s", out).isEqualTo(Fault.TRANSLATION);
        assertThat(out.faultS2()).isTrue();
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_TT);
        assertThat(out.faultIpa()).isEqualTo(slot);
        assertThat(out.ttRnW()).as("a table read").isTrue();
        assertThat(out.inputAddress()).isEqualTo(va);
        assertThat(out.rnw()).as("the access itself was a write").isFalse();
    }

    @Test
    void aStage1TablePageStage2DoesNotLetUsReadIsAStage2PermissionFault() throws Exception {
        Guest g = new Guest(12, 12, 2);
        long va = g.mapVa(Prot.READ | Prot.WRITE);
        long slot = g.s1Leaf(va).slot();
        g.remapTablePage(slot, Prot.WRITE);
        WalkResult out = g.walk(va, READ_PRIV);
        assertThat(out.fault()).as("%s", out).isEqualTo(Fault.PERMISSION);
        assertThat(out.faultS2()).isTrue();
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_TT);
        assertThat(out.faultIpa()).isEqualTo(slot);
        assertThat(out.ttRnW()).isTrue();
    }

    @Test
    void s2ptwFaultsStage1TableReadsFromDeviceMemory() throws Exception {
        Guest g = new Guest(12, 12, 3);
        long va = g.mapVa(Prot.READ | Prot.WRITE);
        long slot = g.s1Leaf(va).slot();
        g.remapTablePage(slot, Prot.READ | Prot.WRITE | Prot.MMIO); // MemAttr 0x1: Device-nGnRE
        assertThat(g.walk(va, READ_PRIV).isOk()).as("S2PTW = 0: Device memory is fine").isTrue();
        Stage2Context ptw = g.s2ctx.toBuilder().ptw(true).build();
        WalkResult out = g.f.walker.translateNested(g.s1ctx, ptw, va, READ_PRIV, g.f.out);
        assertThat(out.fault()).as("%s", out).isEqualTo(Fault.PERMISSION);
        assertThat(out.faultS2()).isTrue();
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_TT);
        assertThat(out.faultIpa()).isEqualTo(slot);
        // Normal memory (MemAttr 0xF or 0x5) passes with S2PTW.
        g.remapTablePage(slot, Prot.READ | Prot.WRITE);
        assertThat(g.f.walker.translateNested(g.s1ctx, ptw, va, READ_PRIV, g.f.out).isOk()).isTrue();
    }

    @Test
    void s2ptwWithFwbTreatsMemAttr2ClearAsDevice() throws Exception {
        Guest g = new Guest(12, 12, 4);
        long va = g.mapVa(Prot.READ | Prot.WRITE);
        long slot = g.s1Leaf(va).slot();
        PtLookup tableLeaf = g.s2Leaf(slot);
        long s2desc = g.f.get(tableLeaf.slot());
        Stage2Context fwb = g.s2ctx.toBuilder().ptw(true).fwb(true).build();
        // MemAttr 0b1011: Normal without FWB (MemAttr[3:2] = 0b10), Device with FWB (MemAttr[2] = 0).
        g.f.put(tableLeaf.slot(), (s2desc & ~Desc.memAttr(0xF)) | Desc.memAttr(0b1011));
        assertThat(g.f.walker.translateNested(g.s1ctx, g.s2ctx.toBuilder().ptw(true).build(), va, READ_PRIV,
                g.f.out).isOk()).isTrue();
        WalkResult out = g.f.walker.translateNested(g.s1ctx, fwb, va, READ_PRIV, g.f.out);
        assertThat(out.fault()).as("%s", out).isEqualTo(Fault.PERMISSION);
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_TT);
    }

    @Test
    void anExternalAbortReadingAStage1DescriptorIsAStage1WalkAbort() throws Exception {
        Guest g = new Guest(12, 12, 5);
        long va = g.mapVa(Prot.READ | Prot.WRITE);
        long slot = g.s1Leaf(va).slot();
        long hole = 0x10_0000L; // below RAM
        g.moveTablePage(slot, hole);
        WalkResult out = g.walk(va, READ_PRIV);
        assertThat(out.fault()).as("%s", out).isEqualTo(Fault.WALK_EABT);
        assertThat(out.faultS2()).as("the stage-1 descriptor read aborted").isFalse();
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_TT);
        assertThat(out.fetchAddress()).isEqualTo(hole + (slot & 0xFFF));
        assertThat(out.faultLevel()).isEqualTo(3);
    }

    @Test
    void anExternalAbortInTheStage2WalkOfAStage1TableIsAStage2ClassTtAbort() throws Exception {
        Guest g = new Guest(12, 12, 6);
        long va = g.mapVa(Prot.READ);
        FaultyReader faulty = new FaultyReader(DescriptorReader.direct(g.f.ram), 2, 0); // first stage-2 read
        TableWalker walker = new TableWalker(faulty);
        WalkResult out = walker.translateNested(g.s1ctx, g.s2ctx, va, READ_PRIV, new WalkResult());
        assertThat(out.fault()).as("%s", out).isEqualTo(Fault.WALK_EABT);
        assertThat(out.faultS2()).isTrue();
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_TT);
        assertThat(out.faultIpa()).as("the IPA of the stage-1 root descriptor").isBetween(g.s1ctx.ttb0().ttb(),
                g.s1ctx.ttb0().ttb() + 4095);
        assertThat(out.fetchAddress()).isEqualTo(faulty.failedAt);
        assertThat(out.faultLevel()).isEqualTo(g.s2ctx.startLevel());
    }

    // ---------------------------------------------------------------- combined permissions

    @Test
    void aWriteNeedsBothStagesToAllowIt() throws Exception {
        Guest g = new Guest(12, 12, 7);
        long va = g.mapVa(Prot.READ | Prot.WRITE);
        PtLookup l1 = g.s1Leaf(va);
        long ipa = l1.oa();
        PtLookup l2 = g.s2Leaf(ipa);
        // Stage 2 read-only: the write faults in stage 2, on the input (CLASS = IN), at the IPA.
        long s2desc = g.f.get(l2.slot());
        g.f.put(l2.slot(), (s2desc | Desc.S2AP_R) & ~Desc.S2AP_W);
        WalkResult out = g.walk(va, WRITE_PRIV);
        assertThat(out.fault()).as("%s", out).isEqualTo(Fault.PERMISSION);
        assertThat(out.faultS2()).isTrue();
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_IN);
        assertThat(out.faultIpa()).isEqualTo(ipa);
        assertThat(g.walk(va, READ_PRIV).permissions() & WalkResult.WRITE_BITS).isZero();
        // Stage 1 read-only, stage 2 read-write: the write faults in stage 1.
        g.f.put(l2.slot(), s2desc | Desc.S2AP_R | Desc.S2AP_W);
        g.putIpa(l1.slot(), l1.entry() | Desc.AP_RO);
        out = g.walk(va, WRITE_PRIV);
        assertThat(out.fault()).as("%s", out).isEqualTo(Fault.PERMISSION);
        assertThat(out.faultS2()).isFalse();
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_IN);
    }

    @Test
    void aStage1TranslationFaultComesBeforeAnyStage2FaultOfTheOutput() throws Exception {
        Guest g = new Guest(12, 12, 8);
        long va = g.mapVa(Prot.READ | Prot.WRITE);
        PtLookup l1 = g.s1Leaf(va);
        g.s2.unmap(Bits.alignDown(l1.oa(), 12), 4096, g.f.gather); // the output IPA is unmapped at stage 2
        g.putIpa(l1.slot(), l1.entry() & ~Desc.AF); // and the stage-1 leaf has AF = 0
        WalkResult out = g.walk(va, READ_PRIV);
        assertThat(out.fault()).as("%s", out).isEqualTo(Fault.ACCESS);
        assertThat(out.faultS2()).isFalse();
    }

    // ---------------------------------------------------------------- hardware updates of stage-1 descriptors

    @Test
    void aStage1AccessFlagUpdateIsAStage2WriteOfTheTablePage() throws Exception {
        Guest g = new Guest(12, 12, 9);
        long va = g.mapVa(Prot.READ | Prot.WRITE);
        PtLookup l1 = g.s1Leaf(va);
        long slot = l1.slot();
        g.putIpa(slot, l1.entry() & ~Desc.AF);
        Stage1Context ha = g.s1ctx.toBuilder().ha(true).build();
        // Stage 2 maps the table page read-only: the update write faults, CLASS = TT, TTRnW = 0.
        g.remapTablePage(slot, Prot.READ);
        WalkResult out = g.f.walker.translateNested(ha, g.s2ctx, va, READ_PRIV, g.f.out);
        assertThat(out.fault()).as("%s", out).isEqualTo(Fault.PERMISSION);
        assertThat(out.faultS2()).isTrue();
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_TT);
        assertThat(out.faultIpa()).isEqualTo(slot);
        assertThat(out.ttRnW()).as("the faulting table access was the update").isFalse();
        assertThat(g.getIpa(slot) & Desc.AF).isZero();
        // Writable at stage 2: AF is set in the guest's table.
        g.remapTablePage(slot, Prot.READ | Prot.WRITE);
        out = g.f.walker.translateNested(ha, g.s2ctx, va, READ_PRIV, g.f.out);
        assertThat(out.isOk()).as("%s", out).isTrue();
        assertThat(out.updates()).isEqualTo(1);
        assertThat(g.getIpa(slot) & Desc.AF).isNotZero();
    }

    @Test
    void aStage1UpdateThroughAWritableCleanStage2PageDirtiesIt() throws Exception {
        Guest g = new Guest(12, 12, 10);
        long va = g.mapVa(Prot.READ | Prot.WRITE);
        PtLookup l1 = g.s1Leaf(va);
        long slot = l1.slot();
        g.putIpa(slot, (l1.entry() & ~Desc.AP_RO) | Desc.AP_RO | Desc.DBM); // stage 1 writable-clean
        PtLookup tablePage = g.s2Leaf(slot);
        long s2desc = g.f.get(tablePage.slot());
        g.f.put(tablePage.slot(), (s2desc & ~Desc.S2AP_W) | Desc.DBM); // stage 2 writable-clean
        Stage1Context s1hd = g.s1ctx.toBuilder().ha(true).hd(true).build();
        Stage2Context s2hd = g.s2ctx.toBuilder().ha(true).hd(true).build();
        WalkResult out = g.f.walker.translateNested(s1hd, s2hd, va, WRITE_PRIV, g.f.out);
        assertThat(out.isOk()).as("%s", out).isTrue();
        assertThat(g.getIpa(slot) & Desc.AP_RO).as("stage-1 leaf now dirty").isZero();
        assertThat(g.f.get(tablePage.slot()) & Desc.S2AP_W).as("stage-2 table page now dirty").isNotZero();
        assertThat(out.updates()).isEqualTo(2);
    }
}
