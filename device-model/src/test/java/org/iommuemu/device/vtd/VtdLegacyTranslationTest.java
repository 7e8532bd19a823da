package org.iommuemu.device.vtd;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.vtd.VtdRig.Fault;
import org.iommuemu.device.vtd.VtdRig.SsTable;
import org.junit.jupiter.api.Test;

/**
 * Legacy-mode (TTM=00) translation: root and context entries, the second-stage walk, and every fault reason it
 * produces with what the fault reporter is told. Tables are written by hand with VtdTables' encoders.
 */
class VtdLegacyTranslationTest {
    static final int SID = 0x0210; // bus 2, device 2, function 0
    static final int DID = 5;
    static final long R = 1;
    static final long W = 2;
    static final long RW = R | W;
    static final long PA = 0x9000_0000L;

    private VtdRig rig = VtdRig.legacy(VtdConfig.defaults());

    private SsTable mapped(int levels) {
        SsTable ss = rig.ss(levels);
        rig.context(SID, ss.root, levels, DID);
        return ss;
    }

    private static void assertOk(Translation t, long pa, long contiguous) {
        assertThat(t.isOk()).as("%s", t).isTrue();
        assertThat(t.physicalAddress()).isEqualTo(pa);
        assertThat(t.contiguousBytes()).isEqualTo(contiguous);
    }

    private static void assertFault(Translation t, FaultType type, int reason) {
        assertThat(t.outcome()).as("%s", t).isEqualTo(Translation.Outcome.FAULT);
        assertThat(t.faultType()).isEqualTo(type);
        assertThat(t.code()).isEqualTo(reason);
        assertThat(t.description()).isNotBlank();
    }

    @Test
    void fourLevelTableTranslatesToTheEndOfThePage() {
        mapped(4).map(0x1234_5000L, PA, 12, RW);
        assertOk(rig.translate(SID, -1, 0x1234_5678L, 0), PA + 0x678, 0x1000 - 0x678);
        assertOk(rig.translate(SID, -1, 0x1234_5FF8L, Access.WRITE), PA + 0xFF8, 8);
        assertThat(rig.faults()).isEmpty();
    }

    @Test
    void threeLevelTable() {
        mapped(3).map(0x7F_FFFF_F000L, PA, 12, R);
        assertOk(rig.translate(SID, -1, 0x7F_FFFF_F010L, 0), PA + 0x10, 0xFF0);
    }

    @Test
    void twoMegabyteAndOneGigabytePages() {
        SsTable ss = mapped(4);
        ss.map(0x4020_0000L, 0xA000_0000L, 21, RW);
        ss.map(0x1_0000_0000L, 0xC000_0000L, 30, RW);
        assertOk(rig.translate(SID, -1, 0x4030_1234L, 0), 0xA010_1234L, 0x20_0000 - 0x10_1234);
        assertOk(rig.translate(SID, -1, 0x1_2345_6789L, Access.WRITE), 0xE345_6789L, 0x4000_0000L - 0x2345_6789L);
    }

    @Test
    void largePageTheCapabilityDoesNotReportIsAReservedBit() {
        rig = VtdRig.legacy(VtdConfig.builder().sllps(VtdSs.SLLPS_2M).build());
        SsTable ss = mapped(4);
        ss.map(0x4000_0000L, 0xC000_0000L, 30, RW);
        ss.map(0x8020_0000L, 0xA000_0000L, 21, RW);
        assertFault(rig.translate(SID, -1, 0x4000_1000L, Access.WRITE), FaultType.BAD_CONFIGURATION, 0xC);
        assertThat(rig.faults()).containsExactly(new Fault(SID, -1, 0x4000_1000L, 0xC, true, false, false));
        assertOk(rig.translate(SID, -1, 0x8020_0000L, 0), 0xA000_0000L, 0x20_0000);
    }

    @Test
    void noLargePagesAtAllMakesEveryPsReserved() {
        rig = VtdRig.legacy(VtdConfig.builder().sllps(0).build());
        mapped(4).map(0x8020_0000L, 0xA000_0000L, 21, RW);
        assertFault(rig.translate(SID, -1, 0x8020_0000L, 0), FaultType.BAD_CONFIGURATION, 0xC);
    }

    @Test
    void psInAnSlPml4eIsReserved() {
        SsTable ss = mapped(4);
        ss.set(0x80_0000_0000L, 3, 0xC000_0000L | RW | 1L << 7);
        assertFault(rig.translate(SID, -1, 0x80_0000_0000L, 0), FaultType.BAD_CONFIGURATION, 0xC);
    }

    @Test
    void largePageAddressBitsBelowItsSizeAreReserved() {
        mapped(4).set(0x4020_0000L, 1, 0xA000_1000L | RW | 1L << 7);
        assertFault(rig.translate(SID, -1, 0x4020_0000L, 0), FaultType.BAD_CONFIGURATION, 0xC);
    }

    @Test
    void snoopBitNeedsSnoopControlAndALeaf() {
        SsTable ss = mapped(4);
        ss.map(0x1000, PA, 12, RW | 1L << 11);
        assertOk(rig.translate(SID, -1, 0x1000, 0), PA, 0x1000); // defaults have ECAP.SC

        rig = VtdRig.legacy(VtdConfig.builder().sc(false).build());
        mapped(4).map(0x1000, PA, 12, RW | 1L << 11);
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0xC);

        rig = VtdRig.legacy(VtdConfig.defaults());
        ss = mapped(4);
        ss.map(0x1000, PA, 12, RW);
        ss.set(0x1000, 1, ss.get(0x1000, 1) | 1L << 11); // SNP in a non-leaf entry
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0xC);
    }

    @Test
    void addressBitsAboveTheHostAddressWidthAreReserved() {
        mapped(4).map(0x1000, 1L << 48, 12, RW); // MGAW 47: HAW 48 bits
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0xC);
    }

    @Test
    void ignoredBitsAreIgnored() {
        // bits 63, 61:52 and 10 are ignored; A/D (8, 9) mean nothing in legacy mode
        mapped(4).map(0x1000, PA, 12, RW | 1L << 63 | 0x3FFL << 52 | 1L << 10 | 3L << 8);
        assertOk(rig.translate(SID, -1, 0x1000, Access.WRITE), PA, 0x1000);
        assertThat(rig.read(entry(0x1000))).isEqualTo(PA | RW | 1L << 63 | 0x3FFL << 52 | 1L << 10 | 3L << 8);
    }

    private long entry(long iova) {
        long ctx = rig.read(rig.contextEntryAddress(SID));
        long table = ctx & VtdTables.PTR_MASK;
        for (int level = 3; level > 0; level--) {
            table = rig.read(table + 8 * ((iova >>> (12 + 9 * level)) & 511)) & 0xF_FFFF_FFFF_F000L;
        }
        return table + 8 * ((iova >>> 12) & 511);
    }

    @Test
    void notPresentEntriesFaultAsReadOrWriteDenied() {
        SsTable ss = mapped(4);
        ss.map(0x1000, PA, 12, RW);
        assertFault(rig.translate(SID, -1, 0x2345, 0), FaultType.TRANSLATION, 0x6); // leaf R=W=0
        assertFault(rig.translate(SID, -1, 0x4000_0010L, Access.WRITE), FaultType.TRANSLATION, 0x5); // PDPE
        assertThat(rig.faults()).containsExactly(new Fault(SID, -1, 0x2345, 0x6, false, false, false),
                new Fault(SID, -1, 0x4000_0010L, 0x5, true, false, false));
    }

    @Test
    void readOnlyPageDeniesWritesAlsoFromTheIotlb() {
        mapped(4).map(0x1000, PA, 12, R);
        assertOk(rig.translate(SID, -1, 0x1000, 0), PA, 0x1000);
        assertFault(rig.translate(SID, -1, 0x1008, Access.WRITE), FaultType.PERMISSION, 0x5);
        long reads = rig.stats.snapshot().tableReads();
        assertFault(rig.translate(SID, -1, 0x1010, Access.WRITE), FaultType.PERMISSION, 0x5);
        assertThat(rig.stats.snapshot().tableReads()).as("answered from the IOTLB").isEqualTo(reads);
        assertThat(rig.faults()).containsExactly(new Fault(SID, -1, 0x1008, 0x5, true, false, false),
                new Fault(SID, -1, 0x1010, 0x5, true, false, false));
    }

    @Test
    void writeOnlyPageDeniesReads() {
        mapped(4).map(0x1000, PA, 12, W);
        assertOk(rig.translate(SID, -1, 0x1000, Access.WRITE), PA, 0x1000);
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.PERMISSION, 0x6);
    }

    @Test
    void permissionsAreAndedDownTheLevels() {
        SsTable ss = mapped(4);
        ss.map(0x1000, PA, 12, RW);
        ss.set(0x1000, 2, ss.get(0x1000, 2) & ~W); // the PDPE allows reads only
        assertOk(rig.translate(SID, -1, 0x1000, 0), PA, 0x1000);
        assertFault(rig.translate(SID, -1, 0x1000, Access.WRITE), FaultType.PERMISSION, 0x5);
    }

    @Test
    void privilegeAndExecuteNeedAPasidSoTheyAreIgnored() {
        mapped(4).map(0x1000, PA, 12, R);
        assertOk(rig.translate(SID, -1, 0x1000, Access.PRIVILEGED | Access.INSTRUCTION), PA, 0x1000);
        assertFault(rig.translate(SID, -1, 0x1000, Access.WRITE | Access.PRIVILEGED), FaultType.PERMISSION, 0x5);
        assertThat(rig.faults()).containsExactly(new Fault(SID, -1, 0x1000, 0x5, true, false, false));
    }

    @Test
    void inputBeyondTheTableWidthOrMgaw() {
        mapped(3);
        assertFault(rig.translate(SID, -1, 1L << 39, 0), FaultType.ADDRESS_SIZE, 0x4);
        assertThat(rig.faults()).containsExactly(new Fault(SID, -1, 1L << 39, 0x4, false, false, false));

        rig = VtdRig.legacy(VtdConfig.builder().mgaw(39).build()); // a 4-level table, but a 40-bit MGAW
        mapped(4).map(1L << 40, PA, 12, RW);
        assertFault(rig.translate(SID, -1, 1L << 40, 0), FaultType.ADDRESS_SIZE, 0x4);
        assertFault(rig.translate(SID, -1, -4096L, 0), FaultType.ADDRESS_SIZE, 0x4);
    }

    @Test
    void passThrough() {
        rig.context(SID, VtdTables.contextQw0(0, VtdTables.TT_PASS_THROUGH, false), VtdTables.contextQw1(DID, 4));
        Translation t = rig.translate(SID, -1, 0x1234_5678L, Access.WRITE);
        assertThat(t.isOk()).isTrue();
        assertThat(t.physicalAddress()).isEqualTo(0x1234_5678L);
        assertThat(t.contiguousBytes()).isEqualTo(-1L);

        rig = VtdRig.legacy(VtdConfig.builder().pt(false).build());
        rig.context(SID, VtdTables.contextQw0(0, VtdTables.TT_PASS_THROUGH, false), VtdTables.contextQw1(DID, 4));
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0x3);
        assertThat(rig.faults()).containsExactly(new Fault(SID, -1, 0x1000, 0x3, false, false, false));
    }

    @Test
    void translationTypes() {
        SsTable ss = rig.ss(4);
        ss.map(0x1000, PA, 12, RW);
        rig.context(SID, VtdTables.contextQw0(ss.root, 3, false), VtdTables.contextQw1(DID, 4));
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0x3); // TT=11 reserved
        rig.context(SID, VtdTables.contextQw0(ss.root, VtdTables.TT_DEV_IOTLB, false), VtdTables.contextQw1(DID, 4));
        rig.caches.invalidateContextAll();
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0x3); // needs ECAP.DT

        rig = VtdRig.legacy(VtdConfig.builder().dt(true).build());
        ss = rig.ss(4);
        ss.map(0x1000, PA, 12, RW);
        rig.context(SID, VtdTables.contextQw0(ss.root, VtdTables.TT_DEV_IOTLB, false), VtdTables.contextQw1(DID, 4));
        assertOk(rig.translate(SID, -1, 0x1000, 0), PA, 0x1000);
    }

    @Test
    void addressWidthMustBeOneSagawReports() {
        SsTable ss = rig.ss(4);
        rig.context(SID, VtdTables.contextQw0(ss.root, 0, false), VtdTables.contextQw1(DID, 5)); // SAGAW 0b0110
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0x3);
        rig.context(SID, VtdTables.contextQw0(ss.root, 0, false), ((long) DID << 8) | 4); // AW=4 is reserved
        rig.caches.invalidateContextAll();
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0x3);
    }

    @Test
    void rootEntryFaults() {
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.TRANSLATION, 0x1);
        rig.write(VtdTables.rootEntryAddress(rig.rootTable, 2), rig.page() | 1 | 1L << 3);
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0xA);
        rig.write(VtdTables.rootEntryAddress(rig.rootTable, 2), rig.page() | 1);
        rig.write(VtdTables.rootEntryAddress(rig.rootTable, 2) + 8, 1); // the upper word is reserved
        assertFault(rig.translate(SID, -1, 0x1000, Access.WRITE), FaultType.BAD_CONFIGURATION, 0xA);
        assertThat(rig.faults()).containsExactly(new Fault(SID, -1, 0x1000, 0x1, false, false, false),
                new Fault(SID, -1, 0x1000, 0xA, false, false, false), new Fault(SID, -1, 0x1000, 0xA, true, false,
                        false));
    }

    @Test
    void rootAndContextTablesOutsideRamAbort() {
        Translation t = rig.translator.translate(VtdRig.NOT_RAM, rig.ttm, SID, -1, 0x1000, 0, new Translation());
        assertFault(t, FaultType.EXTERNAL_ABORT, 0x8);
        rig.write(VtdTables.rootEntryAddress(rig.rootTable, 2), VtdTables.rootEntry(VtdRig.NOT_RAM));
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.EXTERNAL_ABORT, 0x9);
        assertThat(rig.faults()).extracting(Fault::reason).containsExactly(0x8, 0x9);
    }

    @Test
    void contextEntryFaults() {
        SsTable ss = rig.ss(4);
        rig.context(SID, 0, 0); // not present
        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.TRANSLATION, 0x2);
        long qw0 = VtdTables.contextQw0(ss.root, 0, false);
        long qw1 = VtdTables.contextQw1(DID, 4);
        long[][] reserved = {{qw0 | 1L << 5, qw1}, {qw0, qw1 | 1L << 7}, {qw0, qw1 | 1L << 30},
            {qw0 | 1L << 50, qw1}};
        for (long[] entry : reserved) {
            rig.context(SID, entry[0], entry[1]);
            assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0xB);
        }
        rig.context(SID, qw0, qw1 | 0x78); // AVAIL bits are the driver's
        ss.map(0x1000, PA, 12, RW);
        assertOk(rig.translate(SID, -1, 0x1000, 0), PA, 0x1000);
        assertThat(rig.faults()).extracting(Fault::reason).containsExactly(0x2, 0xB, 0xB, 0xB, 0xB);
    }

    @Test
    void pagingEntryOutsideRamAborts() {
        rig.context(SID, VtdRig.NOT_RAM, 4, DID);
        assertFault(rig.translate(SID, -1, 0x1000, Access.WRITE), FaultType.EXTERNAL_ABORT, 0x7);
        assertThat(rig.faults()).containsExactly(new Fault(SID, -1, 0x1000, 0x7, true, false, false));
    }

    @Test
    void requestWithPasidIsBlockedInLegacyMode() {
        mapped(4).map(0x1000, PA, 12, RW);
        assertFault(rig.translate(SID, 7, 0x1000, Access.PRIVILEGED), FaultType.ABORTED, 0x31);
        assertThat(rig.faults()).containsExactly(new Fault(SID, 7, 0x1000, 0x31, false, true, false));
    }

    @Test
    void reservedTranslationTableModes() {
        for (int ttm : new int[] {2, 3}) {
            Translation t = rig.translator.translate(rig.rootTable, ttm, SID, -1, 0x1000, 0, new Translation());
            assertFault(t, FaultType.BAD_CONFIGURATION, 0x30);
        }
        assertThat(rig.faults()).extracting(Fault::reason).containsExactly(0x30, 0x30);
    }

    @Test
    void faultProcessingDisableSuppressesQualifiedFaults() {
        SsTable ss = rig.ss(4);
        ss.map(0x1000, PA, 12, R);
        rig.context(SID, VtdTables.contextQw0(ss.root, 0, true), VtdTables.contextQw1(DID, 4));
        assertFault(rig.translate(SID, -1, 0x1000, Access.WRITE), FaultType.PERMISSION, 0x5);
        assertFault(rig.translate(SID, -1, 0x5000, 0), FaultType.TRANSLATION, 0x6);
        assertFault(rig.translate(SID, -1, 1L << 48, 0), FaultType.ADDRESS_SIZE, 0x4);
        rig.context(SID + 1, 1L << 1, 0); // not present, FPD set
        assertFault(rig.translate(SID + 1, -1, 0x1000, 0), FaultType.TRANSLATION, 0x2);
        rig.context(SID + 2, VtdTables.contextQw0(ss.root, 3, true), VtdTables.contextQw1(DID, 4));
        assertFault(rig.translate(SID + 2, -1, 0x1000, 0), FaultType.BAD_CONFIGURATION, 0x3);
        assertThat(rig.faults()).isEmpty();
        // root-entry faults come before any FPD and are always reported
        assertFault(rig.translate(0x0300, -1, 0x1000, 0), FaultType.TRANSLATION, 0x1);
        assertThat(rig.faults()).containsExactly(new Fault(0x0300, -1, 0x1000, 0x1, false, false, false));
        assertThat(rig.translator.faults()).isEqualTo(6);
    }

    @Test
    void functionsOnOtherBusesAndDevicesHaveTheirOwnContexts() {
        SsTable a = rig.ss(4);
        SsTable b = rig.ss(4);
        a.map(0x1000, PA, 12, RW);
        b.map(0x1000, PA + 0x1000, 12, RW);
        rig.context(0x0008, a.root, 4, 1); // 00:01.0
        rig.context(0x05FF, b.root, 4, 2); // 05:1f.7
        assertOk(rig.translate(0x0008, -1, 0x1000, 0), PA, 0x1000);
        assertOk(rig.translate(0x05FF, -1, 0x1000, 0), PA + 0x1000, 0x1000);
        assertFault(rig.translate(0x0009, -1, 0x1000, 0), FaultType.TRANSLATION, 0x2);
    }
}
