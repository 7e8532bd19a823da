package org.iommuemu.device.vtd;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.vtd.VtdRig.Fault;
import org.iommuemu.device.vtd.VtdRig.FsTable;
import org.iommuemu.device.vtd.VtdRig.SsTable;
import org.iommuemu.device.xlate.IotlbEntry;
import org.iommuemu.device.xlate.Stage;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/**
 * Scalable-mode (TTM=01) translation: scalable root and context entries, PASID directory and table, first-stage
 * (4- and 5-level), second-stage, nested and pass-through translation, RID_PASID, A/D updates, and every fault
 * reason with what the fault reporter is told.
 */
class VtdScalableTranslationTest {
    static final int SID = 0x0310; // 03:02.0
    static final int PASID = 42;
    static final int DID = 9;
    static final long PA = 0x9000_0000L;
    // first-stage bits
    static final long P = 1;
    static final long RW = 2;
    static final long US = 4;
    static final long A = 1L << 5;
    static final long D = 1L << 6;
    static final long G = 1L << 8;
    static final long XD = 1L << 63;
    static final long USER_RW = P | RW | US | A | D;
    static final long USER_RO = P | US | A;
    // second-stage bits
    static final long SR = 1;
    static final long SW = 2;
    static final long SRW = 3;
    static final long SA = 1L << 8;
    static final long SD = 1L << 9;
    static final long ADDR = 0xF_FFFF_FFFF_F000L;

    private VtdRig rig = VtdRig.scalable(VtdConfig.defaults());
    private long dir;

    private FsTable firstStage(int levels) {
        FsTable fs = rig.fs(levels);
        dir = rig.smContext(SID, 0);
        rig.firstStage(dir, PASID, DID, fs);
        return fs;
    }

    private SsTable secondStage(int levels) {
        SsTable ss = rig.ss(levels);
        dir = rig.smContext(SID, 0);
        rig.secondStage(dir, PASID, DID, ss);
        return ss;
    }

    private Translation at(long iova, int access) {
        return rig.translate(SID, PASID, iova, access);
    }

    private static void assertOk(Translation t, long pa, long contiguous) {
        assertThat(t.isOk()).as("%s", t).isTrue();
        assertThat(t.physicalAddress()).isEqualTo(pa);
        assertThat(t.contiguousBytes()).isEqualTo(contiguous);
    }

    private static void assertFault(Translation t, FaultType type, int reason) {
        assertThat(t.outcome()).as("%s", t).isEqualTo(Translation.Outcome.FAULT);
        assertThat(t.faultType()).isEqualTo(type);
        assertThat(t.code()).as("reason of %s", t).isEqualTo(reason);
        assertThat(t.description()).isNotBlank();
    }

    private Fault fault(long address, int reason, boolean write) {
        return new Fault(SID, PASID, address, reason, write, false, false);
    }

    @Nested
    class Modes {
        @Test
        void firstStageFourLevel() {
            firstStage(4).map(0x7000_1000L, PA, 12, USER_RW);
            assertOk(at(0x7000_1234L, 0), PA + 0x234, 0x1000 - 0x234);
            assertOk(at(0x7000_1FF0L, Access.WRITE), PA + 0xFF0, 0x10);
            assertThat(rig.faults()).isEmpty();
        }

        @Test
        void firstStageUpperHalf() {
            FsTable fs = firstStage(4);
            fs.map(0xFFFF_8000_0020_0000L, PA, 21, USER_RW);
            assertOk(at(0xFFFF_8000_0030_0008L, 0), PA + 0x10_0008, 0x10_0000 - 8);
        }

        @Test
        void firstStageFiveLevel() {
            rig = VtdRig.scalable(VtdConfig.builder().fl5lp(true).build());
            FsTable fs = firstStage(5);
            long va = 0x00AB_CDEF_0123_4000L;
            fs.map(va, PA, 12, USER_RW);
            assertOk(at(va + 0x10, Access.WRITE), PA + 0x10, 0xFF0);
            assertFault(at(0x0100_0000_0000_0000L, 0), FaultType.ADDRESS_SIZE, 0x80); // beyond 57 bits
        }

        @Test
        void fiveLevelPagingNeedsTheCapability() {
            FsTable fs = firstStage(5); // defaults: no FL5LP
            fs.map(0x1000, PA, 12, USER_RW);
            assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x5B);
            assertThat(rig.faults()).containsExactly(fault(0x1000, 0x5B, false));
        }

        @Test
        void largeFirstStagePages() {
            FsTable fs = firstStage(4);
            fs.map(0x4020_0000L, 0xA000_0000L, 21, USER_RW);
            fs.map(0x8000_0000L, 0xC000_0000L, 30, USER_RW);
            assertOk(at(0x4021_0000L, 0), 0xA001_0000L, 0x1F_0000);
            assertOk(at(0xBFFF_FFF0L, Access.WRITE), 0xFFFF_FFF0L, 0x10);

            rig = VtdRig.scalable(VtdConfig.builder().fl1gp(false).build());
            firstStage(4).map(0x8000_0000L, 0xC000_0000L, 30, USER_RW);
            assertFault(at(0x8000_0000L, 0), FaultType.BAD_CONFIGURATION, 0x72);
        }

        @Test
        void secondStageOnly() {
            SsTable ss = secondStage(4);
            ss.map(0x1000, PA, 12, SRW);
            ss.map(0x4000_0000L, 0xC000_0000L, 30, SR);
            assertOk(at(0x1008, Access.WRITE), PA + 8, 0xFF8);
            assertOk(at(0x4000_0010L, 0), 0xC000_0010L, 0x4000_0000L - 0x10);
            IotlbEntry e = rig.caches.iotlb().entries().get(0);
            assertThat(e.asid()).as("second-stage entries carry no PASID").isEqualTo(-1);
            assertThat(e.stage()).isEqualTo(Stage.S2);
            assertThat(e.vmid()).isEqualTo(DID);
        }

        @Test
        void requestsWithoutPasidUseRidPasid() {
            FsTable fs = rig.fs(4);
            fs.map(0x1000, PA, 12, USER_RW);
            dir = rig.smContext(SID, 5);
            rig.firstStage(dir, 5, DID, fs);
            assertOk(rig.translate(SID, -1, 0x1000, Access.WRITE), PA, 0x1000);
            IotlbEntry e = rig.caches.iotlb().entries().get(0);
            assertThat(e.asid()).as("tagged with RID_PASID").isEqualTo(5);
            assertFault(rig.translate(SID, -1, 0x2000, 0), FaultType.TRANSLATION, 0x71);
            assertThat(rig.faults()).as("the request carried no PASID")
                    .containsExactly(new Fault(SID, -1, 0x2000, 0x71, false, false, false));
        }

        @Test
        void ridPasidNeedsTheCapability() {
            rig = VtdRig.scalable(VtdConfig.builder().rps(false).build());
            rig.smContext(SID, 5);
            assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0x42);
        }

        @Test
        void passThrough() {
            dir = rig.smContext(SID, 0);
            rig.pasidEntry(dir, PASID, VtdTables.pasidQw0(VtdTables.PGTT_PASS_THROUGH, 0, 0, false),
                    VtdTables.pasidQw1(DID, false), 1);
            Translation t = at(0x1234_5678L, Access.WRITE);
            assertThat(t.isOk()).isTrue();
            assertThat(t.physicalAddress()).isEqualTo(0x1234_5678L);
            assertThat(t.contiguousBytes()).isEqualTo(-1L);

            rig = VtdRig.scalable(VtdConfig.builder().pt(false).build());
            dir = rig.smContext(SID, 0);
            rig.pasidEntry(dir, PASID, VtdTables.pasidQw0(VtdTables.PGTT_PASS_THROUGH, 0, 0, false),
                    VtdTables.pasidQw1(DID, false), 1);
            assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x5B);
        }

        @Test
        void nestedTranslationGoesThroughBothStages() {
            Nest n = new Nest(12, PA + 0x7000);
            assertOk(at(0x123, Access.WRITE), PA + 0x7123, 0xEDD);
            IotlbEntry e = rig.caches.iotlb().entries().get(0);
            assertThat(e.stage()).isEqualTo(Stage.NESTED);
            assertThat(e.ipa()).isEqualTo(Nest.IPA);
            assertThat(e.asid()).isEqualTo(PASID);
            assertThat(n.tablePages).hasSize(4);
        }

        @Test
        void nestedEntryIsTheSmallerOfTheTwoPages() {
            // a 2 MB first-stage page over 4 KB second-stage pages: the translation covers 4 KB
            new Nest(21, PA);
            assertOk(at(0x10, 0), PA + 0x10, 0xFF0);
            assertFault(at(0x1000, 0), FaultType.TRANSLATION, 0x79); // inside the 2 MB page, not in the second stage
            assertThat(rig.caches.iotlb().entries().get(0).sizeLg2()).isEqualTo(12);
        }
    }

    /**
     * A nested set-up: the first stage (4 levels) maps iova 0 (page of 2^fsLg2) to IPA {@link #IPA}; the second
     * stage (4 levels) maps each first-stage table page to itself with {@code tableBits} and IPA to {@code pa}.
     */
    private final class Nest {
        static final long IPA = 0x4000_0000L;
        final FsTable fs;
        final SsTable ss;
        final long[] tablePages;

        Nest(int fsLg2, long pa) {
            this(fsLg2, pa, SRW, USER_RW, 4);
        }

        Nest(int fsLg2, long pa, long tableBits, long leafBits, int ssLevels) {
            fs = rig.fs(4);
            ss = rig.ss(ssLevels);
            long va = 0;
            fs.map(va, IPA, fsLg2, leafBits);
            int leafLevel = (fsLg2 - 12) / 9;
            tablePages = new long[4 - leafLevel];
            tablePages[0] = fs.root;
            for (int level = 3, i = 1; level > leafLevel; level--, i++) {
                tablePages[i] = fs.get(va, level) & ADDR;
            }
            for (long page : tablePages) {
                ss.map(page, page, 12, tableBits);
            }
            ss.map(IPA, pa, 12, SRW);
            dir = rig.smContext(SID, 0);
            rig.nested(dir, PASID, DID, fs, ss);
        }
    }

    @Nested
    class AccessedDirty {
        @Test
        void firstStageSetsAccessedOnEveryLevelAndDirtyOnWrites() {
            FsTable fs = firstStage(4);
            long leaf = fs.map(0x1000, PA, 12, P | RW | US);
            assertOk(at(0x1000, 0), PA, 0x1000);
            for (int level = 3; level >= 1; level--) {
                assertThat(fs.get(0x1000, level) & A).as("A at level %d", level).isNotZero();
            }
            assertThat(rig.read(leaf)).isEqualTo(PA | P | RW | US | A);
            // the read cached a writable-but-clean translation: the write walks again and marks the leaf dirty
            assertOk(at(0x1000, Access.WRITE), PA, 0x1000);
            assertThat(rig.read(leaf)).isEqualTo(PA | P | RW | US | A | D);
            assertThat(rig.stats.snapshot().tableWrites()).isEqualTo(5);
            assertOk(at(0x1008, Access.WRITE), PA + 8, 0xFF8);
            assertThat(rig.stats.snapshot().tableWrites()).as("now dirty: served from the caches").isEqualTo(5);
        }

        @Test
        void deniedAccessesSetNothingOnTheLeaf() {
            FsTable fs = firstStage(4);
            long leaf = fs.map(0x1000, PA, 12, P | US);
            assertFault(at(0x1000, Access.WRITE), FaultType.PERMISSION, 0x85);
            assertThat(rig.read(leaf)).isEqualTo(PA | P | US);
        }

        @Test
        void nestedFirstStageUpdatesGoToTheSecondStageOutput() {
            Nest n = new Nest(12, PA, SRW, P | RW | US, 4);
            assertOk(at(0x10, Access.WRITE), PA + 0x10, 0xFF0);
            assertThat(n.fs.get(0, 0)).isEqualTo(Nest.IPA | P | RW | US | A | D);
            assertThat(n.fs.get(0, 3) & A).isNotZero();
        }

        @Test
        void secondStageWithSsade() {
            SsTable ss = rig.ss(4);
            long leaf = ss.map(0x1000, PA, 12, SRW);
            dir = rig.smContext(SID, 0);
            rig.pasidEntry(dir, PASID, VtdTables.pasidQw0(VtdTables.PGTT_SECOND_STAGE, ss.root, 4, false) | 1L << 9,
                    VtdTables.pasidQw1(DID, false), 0);
            assertOk(at(0x1000, 0), PA, 0x1000);
            assertThat(rig.read(leaf)).isEqualTo(PA | SRW | SA);
            assertThat(ss.get(0x1000, 3) & SA).isNotZero();
            assertOk(at(0x1000, Access.WRITE), PA, 0x1000);
            assertThat(rig.read(leaf)).isEqualTo(PA | SRW | SA | SD);
        }

        @Test
        void secondStageWithoutSsadeLeavesTheEntriesAlone() {
            SsTable ss = secondStage(4);
            long leaf = ss.map(0x1000, PA, 12, SRW);
            assertOk(at(0x1000, Access.WRITE), PA, 0x1000);
            assertThat(rig.read(leaf)).isEqualTo(PA | SRW);
            assertThat(rig.stats.snapshot().tableWrites()).isZero();
        }

        @Test
        void ssadeNeedsTheCapability() {
            rig = VtdRig.scalable(VtdConfig.builder().slads(false).build());
            SsTable ss = rig.ss(4);
            dir = rig.smContext(SID, 0);
            rig.pasidEntry(dir, PASID, VtdTables.pasidQw0(VtdTables.PGTT_SECOND_STAGE, ss.root, 4, false) | 1L << 9,
                    VtdTables.pasidQw1(DID, false), 0);
            assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x5A);
        }
    }

    @Nested
    class FirstStagePermissions {
        private FsTable fs;

        private void entry(boolean sre, boolean ere, boolean wpe) {
            fs = rig.fs(4);
            dir = rig.smContext(SID, 0);
            rig.pasidEntry(dir, PASID, VtdTables.pasidQw0(VtdTables.PGTT_FIRST_STAGE, 0, 0, false),
                    VtdTables.pasidQw1(DID, false), VtdTables.pasidQw2(fs.root, 4, sre, wpe) | (ere ? 2 : 0));
        }

        @Test
        void userRequestToASupervisorPage() {
            entry(true, false, true);
            fs.map(0x1000, PA, 12, P | RW | A | D);
            assertOk(at(0x1000, Access.PRIVILEGED | Access.WRITE), PA, 0x1000);
            assertFault(at(0x1000, 0), FaultType.PERMISSION, 0x81);
            assertThat(rig.faults()).containsExactly(fault(0x1000, 0x81, false));
        }

        @Test
        void userAccessNeedsUsOnEveryLevel() {
            entry(true, false, true);
            fs.map(0x1000, PA, 12, USER_RW);
            fs.set(0x1000, 2, fs.get(0x1000, 2) & ~US);
            assertFault(at(0x1000, 0), FaultType.PERMISSION, 0x81);
        }

        @Test
        void writeToAReadOnlyPage() {
            entry(true, false, true);
            fs.map(0x1000, PA, 12, USER_RO);
            assertOk(at(0x1000, 0), PA, 0x1000);
            long reads = rig.stats.snapshot().tableReads();
            assertFault(at(0x1000, Access.WRITE), FaultType.PERMISSION, 0x85);
            assertFault(at(0x1000, Access.WRITE | Access.PRIVILEGED), FaultType.PERMISSION, 0x85); // WPE
            assertThat(rig.stats.snapshot().tableReads()).as("from the IOTLB").isEqualTo(reads);
            assertThat(rig.faults()).containsExactly(fault(0x1000, 0x85, true),
                    new Fault(SID, PASID, 0x1000, 0x85, true, true, false));
        }

        @Test
        void withoutWpeSupervisorWritesIgnoreReadOnly() {
            entry(true, false, false);
            fs.map(0x1000, PA, 12, USER_RO);
            assertOk(at(0x1000, Access.WRITE | Access.PRIVILEGED), PA, 0x1000);
            assertFault(at(0x1000, Access.WRITE), FaultType.PERMISSION, 0x85);
        }

        @Test
        void supervisorRequestsNeedSre() {
            entry(false, false, true);
            fs.map(0x1000, PA, 12, USER_RW);
            assertOk(at(0x1000, 0), PA, 0x1000);
            assertFault(at(0x1000, Access.PRIVILEGED), FaultType.PERMISSION, 0x5D);
            assertThat(rig.faults()).containsExactly(new Fault(SID, PASID, 0x1000, 0x5D, false, true, false));
        }

        @Test
        void executeRequestsNeedEreAndNoXd() {
            entry(true, false, true);
            fs.map(0x1000, PA, 12, USER_RW);
            assertFault(at(0x1000, Access.INSTRUCTION), FaultType.PERMISSION, 0x5C);

            rig = VtdRig.scalable(VtdConfig.defaults());
            entry(true, true, true);
            fs.map(0x1000, PA, 12, USER_RW);
            fs.map(0x2000, PA, 12, USER_RW | XD);
            assertOk(at(0x1000, Access.INSTRUCTION), PA, 0x1000);
            assertOk(at(0x1000, Access.INSTRUCTION | Access.PRIVILEGED), PA, 0x1000);
            assertFault(at(0x2000, Access.INSTRUCTION), FaultType.PERMISSION, 0x82);
            assertOk(at(0x2000, 0), PA, 0x1000);
            assertFault(at(0x2000, Access.INSTRUCTION | Access.PRIVILEGED), FaultType.PERMISSION, 0x82);
            assertThat(rig.faults()).containsExactly(new Fault(SID, PASID, 0x2000, 0x82, false, false, true),
                    new Fault(SID, PASID, 0x2000, 0x82, false, true, true));
        }

        @Test
        void xdOnATableEntryForbidsExecuteBelowIt() {
            entry(true, true, true);
            fs.map(0x1000, PA, 12, USER_RW);
            fs.set(0x1000, 1, fs.get(0x1000, 1) | XD);
            assertFault(at(0x1000, Access.INSTRUCTION), FaultType.PERMISSION, 0x82);
        }

        @Test
        void microTlbDoesNotBypassSre() {
            entry(true, false, true);
            fs.map(0x1000, PA, 12, USER_RW);
            assertOk(at(0x1000, Access.PRIVILEGED), PA, 0x1000);
            // the PASID entry loses SRE; after the PASID-cache invalidation only the IOTLB still has the page
            rig.write(rig.pasidEntryAddress(dir, PASID) + 16, VtdTables.pasidQw2(fs.root, 4, false, true));
            rig.caches.invalidatePasidCache(DID, PASID);
            assertFault(at(0x1000, Access.PRIVILEGED), FaultType.PERMISSION, 0x5D);
            assertOk(at(0x1000, 0), PA, 0x1000);
            assertFault(at(0x1000, Access.PRIVILEGED), FaultType.PERMISSION, 0x5D);
        }
    }

    @Nested
    class FirstStageFaults {
        @Test
        void notPresent() {
            FsTable fs = firstStage(4);
            fs.map(0x1000, PA, 12, USER_RW);
            assertFault(at(0x2000, Access.WRITE), FaultType.TRANSLATION, 0x71);
            assertFault(at(0x80_0000_0000L, 0), FaultType.TRANSLATION, 0x71);
            assertThat(rig.faults()).containsExactly(fault(0x2000, 0x71, true), fault(0x80_0000_0000L, 0x71, false));
        }

        @Test
        void reservedBits() {
            FsTable fs = firstStage(4);
            fs.map(0x1000, 1L << 50, 12, USER_RW); // above the 48-bit host address width
            fs.map(0x20_0000L, 0xA000_2000L, 21, USER_RW); // a 2 MB page not 2 MB aligned
            fs.map(0x40_0000L, 0xA020_2000L, 21, USER_RW | 1L << 12); // PAT is bit 12, but bit 13 is set
            fs.set(0x80_0000_0000L, 3, rig.page() | P | RW | US | 1L << 7); // PS in a PML4E
            assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x72);
            assertFault(at(0x20_0000L, 0), FaultType.BAD_CONFIGURATION, 0x72);
            assertFault(at(0x40_0000L, 0), FaultType.BAD_CONFIGURATION, 0x72);
            assertFault(at(0x80_0000_0000L, 0), FaultType.BAD_CONFIGURATION, 0x72);
            fs.map(0x60_0000L, 0xA020_0000L, 21, USER_RW | 1L << 12); // PAT alone is fine
            assertOk(at(0x60_0000L, 0), 0xA020_0000L, 0x20_0000);
        }

        @Test
        void notCanonical() {
            firstStage(4);
            assertFault(at(0x0000_8000_0000_0000L, 0), FaultType.ADDRESS_SIZE, 0x80);
            assertFault(at(0xFFFF_0000_0000_0000L, 0), FaultType.ADDRESS_SIZE, 0x80);
            assertThat(rig.faults()).containsExactly(fault(0x0000_8000_0000_0000L, 0x80, false),
                    fault(0xFFFF_0000_0000_0000L, 0x80, false));
        }

        @Test
        void tablesOutsideRam() {
            dir = rig.smContext(SID, 0);
            rig.pasidEntry(dir, PASID, VtdTables.pasidQw0(VtdTables.PGTT_FIRST_STAGE, 0, 0, false),
                    VtdTables.pasidQw1(DID, false), VtdTables.pasidQw2(VtdRig.NOT_RAM, 4, true, true));
            assertFault(at(0x1000, 0), FaultType.EXTERNAL_ABORT, 0x73);

            FsTable fs = firstStage(4);
            rig.caches.invalidateContextAll(); // the context and PASID entries were valid, and are cached
            rig.caches.invalidatePasidCacheAll();
            fs.set(0x1000, 2, VtdRig.NOT_RAM | P | RW | US);
            assertFault(at(0x1000, 0), FaultType.EXTERNAL_ABORT, 0x70);
            assertThat(rig.faults()).extracting(Fault::reason).containsExactly(0x73, 0x70);
        }
    }

    @Nested
    class SecondStageFaults {
        @Test
        void faults() {
            SsTable ss = secondStage(4);
            ss.map(0x1000, PA, 12, SW);
            ss.map(0x2000, PA, 12, SR);
            ss.set(0x80_0000_0000L, 3, rig.page() | SRW | 1L << 7);
            assertFault(at(1L << 48, 0), FaultType.ADDRESS_SIZE, 0x83);
            assertFault(at(0x3000, 0), FaultType.TRANSLATION, 0x79);
            assertFault(at(0x1000, 0), FaultType.PERMISSION, 0x86);
            assertFault(at(0x2000, Access.WRITE), FaultType.PERMISSION, 0x85);
            assertFault(at(0x80_0000_0000L, 0), FaultType.BAD_CONFIGURATION, 0x7A);
            assertThat(rig.faults()).containsExactly(fault(1L << 48, 0x83, false), fault(0x3000, 0x79, false),
                    fault(0x1000, 0x86, false), fault(0x2000, 0x85, true), fault(0x80_0000_0000L, 0x7A, false));
        }

        @Test
        void tableOutsideRam() {
            dir = rig.smContext(SID, 0);
            rig.pasidEntry(dir, PASID, VtdTables.pasidQw0(VtdTables.PGTT_SECOND_STAGE, VtdRig.NOT_RAM, 4, false),
                    VtdTables.pasidQw1(DID, false), 0);
            assertFault(at(0x1000, 0), FaultType.EXTERNAL_ABORT, 0x78);
        }
    }

    @Nested
    class NestedFaults {
        @Test
        void firstStageOutputBeyondTheSecondStageWidth() {
            rig = VtdRig.scalable(VtdConfig.defaults());
            FsTable fs = rig.fs(4);
            SsTable ss = rig.ss(3); // 39-bit guest-physical space
            fs.map(0, 1L << 40, 12, USER_RW);
            for (int level = 3; level >= 0; level--) {
                long page = level == 3 ? fs.root : fs.get(0, level + 1) & ADDR;
                ss.map(page, page, 12, SRW);
            }
            dir = rig.smContext(SID, 0);
            rig.nested(dir, PASID, DID, fs, ss);
            assertFault(at(0x10, 0), FaultType.ADDRESS_SIZE, 0x74);
        }

        @Test
        void secondStageMustAllowReadingTheFirstStageTables() {
            Nest n = new Nest(12, PA, SW, USER_RW, 4);
            assertFault(at(0, 0), FaultType.PERMISSION, 0x75); // the top-level table
            n.ss.map(n.tablePages[0], n.tablePages[0], 12, SRW);
            rig.caches.invalidateIotlbAll();
            assertFault(at(0, 0), FaultType.PERMISSION, 0x76);
            assertThat(rig.faults()).extracting(Fault::reason).containsExactly(0x75, 0x76);
        }

        @Test
        void secondStageMustAllowTheFirstStageAccessedUpdates() {
            Nest n = new Nest(12, PA, SR, P | RW | US, 4); // tables A clear, their pages read-only
            assertFault(at(0, 0), FaultType.PERMISSION, 0x77);
            for (int level = 3; level >= 1; level--) {
                n.fs.set(0, level, n.fs.get(0, level) | A);
            }
            n.fs.set(0, 0, n.fs.get(0, 0) | A | D);
            assertOk(at(0, Access.WRITE), PA, 0x1000);
        }

        @Test
        void secondStageFaultsOfTheOutput() {
            Nest n = new Nest(12, PA, SRW, USER_RW, 4);
            n.ss.map(Nest.IPA, PA, 12, SR);
            assertOk(at(0, 0), PA, 0x1000);
            assertFault(at(0, Access.WRITE), FaultType.PERMISSION, 0x85); // from the nested IOTLB entry
            n.ss.set(Nest.IPA, 0, 0);
            rig.caches.invalidateIotlbAll();
            assertFault(at(0, 0), FaultType.TRANSLATION, 0x79);
            assertThat(rig.faults()).extracting(Fault::reason).containsExactly(0x85, 0x79);
        }

        @Test
        void nestingNeedsTheCapability() {
            rig = VtdRig.scalable(VtdConfig.builder().nest(false).build());
            new Nest(12, PA);
            assertFault(at(0, 0), FaultType.BAD_CONFIGURATION, 0x5B);
        }
    }

    @Nested
    class StructureFaults {
        @Test
        void rootEntry() {
            long rootEntry = VtdTables.rootEntryAddress(rig.rootTable, 3);
            assertFault(at(0x1000, 0), FaultType.TRANSLATION, 0x39);
            rig.write(rootEntry, rig.page() | 1); // lower half present; devfn 0x80 uses the upper half
            assertFault(rig.translate(0x0380, PASID, 0x1000, 0), FaultType.TRANSLATION, 0x39);
            rig.write(rootEntry, rig.page() | 1 | 1L << 5);
            assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x3A);
            assertFault(rig.translator.translate(VtdRig.NOT_RAM, rig.ttm, SID, PASID, 0x1000, 0, new Translation()),
                    FaultType.EXTERNAL_ABORT, 0x38);
            rig.write(rootEntry, VtdRig.NOT_RAM | 1);
            assertFault(at(0x1000, 0), FaultType.EXTERNAL_ABORT, 0x40);
            assertThat(rig.faults()).containsExactly(fault(0x1000, 0x39, false),
                    new Fault(0x0380, PASID, 0x1000, 0x39, false, false, false), fault(0x1000, 0x3A, false),
                    fault(0x1000, 0x38, false), fault(0x1000, 0x40, false));
        }

        @Test
        void contextEntry() {
            rig.smContext(SID, 0, 0);
            assertFault(at(0x1000, 0), FaultType.TRANSLATION, 0x41);
            long qw0 = VtdTables.smContextQw0(rig.page(), 0, true, false);
            long[][] reserved = {{qw0 | 1L << 6, 0}, {qw0, 1L << 21}, {qw0 | 1L << 2, 0} /* DTE without DT */,
                {qw0 | 1L << 4, 0} /* PRE without PRS */, {qw0 | 1L << 50, 0}};
            for (long[] entry : reserved) {
                rig.smContext(SID, entry[0], entry[1]);
                assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x42);
            }
            rig.smContext(SID, qw0, 0);
            rig.write(rig.smContextEntryAddress(SID) + 16, 1); // qw2 is reserved
            assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x42);
            assertThat(rig.faults()).extracting(Fault::reason).containsExactly(0x41, 0x42, 0x42, 0x42, 0x42, 0x42,
                    0x42);
        }

        @Test
        void pasidEnableAndDirectorySize() {
            long d = rig.page();
            rig.smContext(SID, VtdTables.smContextQw0(d, 0, false, false), 0);
            assertFault(at(0x1000, 0), FaultType.ABORTED, 0x45);
            rig.smContext(SID, VtdTables.smContextQw0(d, 0, true, false), 0);
            rig.caches.invalidateContextDevice(SID, 0);
            assertFault(rig.translate(SID, 8192, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0x46); // PDTS 0: 8192
            rig.smContext(SID, VtdTables.smContextQw0(d, 1, true, false), 0);
            rig.caches.invalidateContextDevice(SID, 0);
            assertFault(rig.translate(SID, 8192, 0x1000, 0), FaultType.TRANSLATION, 0x51);
            assertThat(rig.faults()).containsExactly(fault(0x1000, 0x45, false),
                    new Fault(SID, 8192, 0x1000, 0x46, false, false, false),
                    new Fault(SID, 8192, 0x1000, 0x51, false, false, false));
        }

        @Test
        void pasidDirectoryEntry() {
            dir = rig.smContext(SID, 0);
            assertFault(at(0x1000, 0), FaultType.TRANSLATION, 0x51);
            rig.write(dir + 8 * (PASID >>> 6), rig.page() | 1 | 1L << 2);
            assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x52);
            rig.write(dir + 8 * (PASID >>> 6), VtdRig.NOT_RAM | 1);
            assertFault(at(0x1000, 0), FaultType.EXTERNAL_ABORT, 0x58);
            long other = rig.page();
            rig.smContext(SID + 1, VtdTables.smContextQw0(VtdRig.NOT_RAM, 0, true, false), 0);
            assertFault(rig.translate(SID + 1, PASID, 0x1000, 0), FaultType.EXTERNAL_ABORT, 0x50);
            assertThat(other).isPositive();
            assertThat(rig.faults()).extracting(Fault::reason).containsExactly(0x51, 0x52, 0x58, 0x50);
        }

        @Test
        void pasidTableEntry() {
            dir = rig.smContext(SID, 0);
            long ptr = rig.page();
            long qw0 = VtdTables.pasidQw0(VtdTables.PGTT_FIRST_STAGE, 0, 0, false);
            long qw1 = VtdTables.pasidQw1(DID, false);
            long qw2 = VtdTables.pasidQw2(ptr, 4, true, true);
            rig.pasidEntry(dir, PASID, 0, 0, 0);
            assertFault(at(0x1000, 0), FaultType.TRANSLATION, 0x59);
            long[][] reserved = {{qw0 | 1L << 5, qw2}, {qw0 | 1L << 10, qw2}, {qw0, qw2 | 1L << 8},
                {qw0, qw2 | 1L << 49}};
            for (long[] entry : reserved) {
                rig.pasidEntry(dir, PASID, entry[0], qw1, entry[1]);
                assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x5A);
            }
            long ss = rig.page();
            long[] invalid = {qw0 & ~(7L << 6), qw0 | 7L << 6, // PGTT 0 and 7
                VtdTables.pasidQw0(VtdTables.PGTT_SECOND_STAGE, ss, 5, false)}; // AW not in SAGAW
            for (long entry : invalid) {
                rig.pasidEntry(dir, PASID, entry, qw1, qw2);
                assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x5B);
            }
            rig.pasidEntry(dir, PASID, qw0, qw1, qw2 | 2L << 2); // FSPM 2
            assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x5B);
            assertThat(rig.faults()).extracting(Fault::reason).containsExactly(0x59, 0x5A, 0x5A, 0x5A, 0x5A, 0x5B,
                    0x5B, 0x5B, 0x5B);
        }

        @Test
        void firstStageNeedsTheCapability() {
            rig = VtdRig.scalable(VtdConfig.builder().nest(false).flts(false).build());
            firstStage(4);
            assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x5B);
            rig = VtdRig.scalable(VtdConfig.builder().nest(false).slads(false).slts(false).build());
            secondStage(4);
            assertFault(at(0x1000, 0), FaultType.BAD_CONFIGURATION, 0x5B);
        }
    }

    @Nested
    class FaultProcessingDisable {
        @Test
        void pasidEntryFpdSuppressesTranslationFaults() {
            FsTable fs = rig.fs(4);
            dir = rig.smContext(SID, 0);
            rig.pasidEntry(dir, PASID, VtdTables.pasidQw0(VtdTables.PGTT_FIRST_STAGE, 0, 0, true),
                    VtdTables.pasidQw1(DID, false), VtdTables.pasidQw2(fs.root, 4, true, true));
            fs.map(0x1000, PA, 12, USER_RO);
            assertFault(at(0x2000, 0), FaultType.TRANSLATION, 0x71);
            assertFault(at(0x1000, Access.WRITE), FaultType.PERMISSION, 0x85);
            assertFault(at(0x1000, Access.INSTRUCTION), FaultType.PERMISSION, 0x5C);
            assertFault(at(1L << 47, 0), FaultType.ADDRESS_SIZE, 0x80);
            assertThat(rig.faults()).isEmpty();
            assertThat(rig.translator.faults()).isEqualTo(4);
        }

        @Test
        void directoryEntryFpdSuppressesItsOwnAndThePasidEntryFaults() {
            dir = rig.smContext(SID, 0);
            rig.write(dir + 8 * (PASID >>> 6), 1L << 1); // not present, FPD
            assertFault(at(0x1000, 0), FaultType.TRANSLATION, 0x51);
            rig.write(dir + 8 * (PASID >>> 6), rig.page() | 3);
            assertFault(at(0x1000, 0), FaultType.TRANSLATION, 0x59);
            assertThat(rig.faults()).isEmpty();
        }

        @Test
        void contextFpdSuppressesEverythingBelowButNotAccessErrors() {
            long d = rig.page();
            rig.smContext(SID, VtdTables.smContextQw0(d, 0, true, true), 0);
            assertFault(at(0x1000, 0), FaultType.TRANSLATION, 0x51);
            rig.write(d + 8 * (PASID >>> 6), VtdRig.NOT_RAM | 1);
            assertFault(at(0x1000, 0), FaultType.EXTERNAL_ABORT, 0x58);
            assertThat(rig.faults()).containsExactly(fault(0x1000, 0x58, false));
        }
    }
}
