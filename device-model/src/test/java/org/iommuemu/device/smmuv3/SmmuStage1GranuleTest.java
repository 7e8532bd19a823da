package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.smmuv3.SmmuFaultRecordTest.assertRecord;
import static org.iommuemu.device.smmuv3.SmmuStreamTableTest.assertFault;

import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Stage-1 translation through tables the driver-side page-table code built: granules, VA sizes, TTB0/TTB1. */
class SmmuStage1GranuleTest {
    private static final int SID = 40;

    private final SmmuTestRig rig = SmmuTestRig.started();

    private void install(Cd cd) {
        long cds = rig.cdTable(0);
        rig.writeCd(cds, 0, cd);
        rig.installSte(SID, Ste.stage1(cds, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0));
    }

    @ParameterizedTest(name = "granule 2^{0}, {1}-bit VA, block 2^{2}")
    @CsvSource({"12, 48, 21", "12, 39, 30", "14, 48, 25", "14, 36, 25", "16, 48, 29", "16, 42, 29"})
    void pagesAndBlocksOfEachGranuleAndVaSize(int granuleLg2, int ias, int blockLg2) {
        PageTable pt = rig.stage1(granuleLg2, ias);
        long granule = 1L << granuleLg2;
        long pagePa = rig.bytes(granule, "data");
        long pageVa = 5 * granule;
        long blockVa = 3L << blockLg2;
        long blockPa = 1L << 40; // output need not be RAM to be translated
        rig.map(pt, pageVa, pagePa, granule, Prot.READ | Prot.WRITE);
        rig.map(pt, blockVa, blockPa, 1L << blockLg2, Prot.READ);
        install(SmmuTestRig.cdFor(pt, 3));

        Translation page = rig.translate(SID, -1, pageVa + granule - 8, Access.WRITE);
        assertThat(page.isOk()).as("%s", page).isTrue();
        assertThat(page.physicalAddress()).isEqualTo(pagePa + granule - 8);
        assertThat(page.contiguousBytes()).isEqualTo(8);

        long offset = (1L << blockLg2) - granule + 0x18;
        Translation block = rig.translate(SID, -1, blockVa + offset, 0);
        assertThat(block.isOk()).as("%s", block).isTrue();
        assertThat(block.physicalAddress()).isEqualTo(blockPa + offset);
        assertThat(block.contiguousBytes()).isEqualTo((1L << blockLg2) - offset);

        assertFault(rig.translate(SID, -1, pageVa + granule, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertFault(rig.translate(SID, -1, blockVa, Access.WRITE), FaultType.PERMISSION, EventType.F_PERMISSION);
        assertThat(rig.events()).extracting(EventRecord::inputAddr).containsExactly(pageVa + granule, blockVa);
    }

    @ParameterizedTest(name = "granule 2^{0}")
    @CsvSource({"12", "14", "16"})
    void vaAboveT0szIsATranslationFault(int granuleLg2) {
        PageTable pt = rig.stage1(granuleLg2, 39);
        rig.map(pt, 0, rig.bytes(1L << granuleLg2, "data"), 1L << granuleLg2, Prot.READ);
        install(SmmuTestRig.cdFor(pt, 3));

        assertThat(rig.translate(SID, -1, (1L << 39) - 8, 0).code()).as("last VA, unmapped")
                .isEqualTo(EventType.F_TRANSLATION);
        assertFault(rig.translate(SID, -1, 1L << 39, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertThat(rig.events()).extracting(EventRecord::inputAddr).containsExactly((1L << 39) - 8, 1L << 39);
    }

    /** A CD with TTB0 = {@code low} and TTB1 = {@code high} (both enabled). */
    private static Cd bothHalves(PageTable low, PageTable high, int asid) {
        int g1 = ((Arm64Lpae) high.format()).granuleLg2();
        int t1sz = ((Arm64Lpae) high.format()).t0sz();
        return SmmuTestRig.cdFor(low, asid).toBuilder()
                .epd1(false)
                .t1sz(t1sz)
                .tg1(Encodings.tg1ForGranuleLg2(g1))
                .ir1(Encodings.CACHE_WBWA)
                .or1(Encodings.CACHE_WBWA)
                .sh1(Encodings.SH_ISH)
                .ttb1(high.root())
                .build();
    }

    @ParameterizedTest(name = "TTB1 granule 2^{0}")
    @CsvSource({"12", "14", "16"})
    void ttb1TranslatesTheUpperHalfOfTheAddressSpace(int granuleLg2) {
        PageTable low = rig.stage1(12, 48);
        PageTable high = rig.stage1(granuleLg2, 48);
        long granule = 1L << granuleLg2;
        long lowPa = rig.page();
        long highPa = rig.bytes(granule, "data");
        long upperVa = 0xFFFF_8000_0000_0000L | (7 * granule);
        rig.map(low, 0x1000, lowPa, 4096, Prot.READ | Prot.WRITE);
        rig.map(high, upperVa & ((1L << 48) - 1), highPa, granule, Prot.READ | Prot.WRITE);
        install(bothHalves(low, high, 4));

        assertThat(rig.pa(SID, -1, 0x1008, 0)).isEqualTo(lowPa + 8);
        assertThat(rig.pa(SID, -1, upperVa + 0x10, Access.WRITE)).isEqualTo(highPa + 0x10);
        assertFault(rig.translate(SID, -1, upperVa + granule, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertThat(rig.onlyEvent().inputAddr()).isEqualTo(upperVa + granule);
    }

    @Test
    void epd1MakesEveryTtb1AddressATranslationFault() {
        PageTable low = rig.stage1(12, 48);
        long pa = rig.page();
        rig.map(low, 0x1000, pa, 4096, Prot.READ | Prot.WRITE);
        install(SmmuTestRig.cdFor(low, 4)); // Linux's CD: EPD1 = 1

        long upperVa = 0xFFFF_FFFF_FFFF_F000L;
        assertFault(rig.translate(SID, -1, upperVa, Access.PRIVILEGED), FaultType.TRANSLATION,
                EventType.F_TRANSLATION);
        assertRecord(rig.onlyEvent(), EventType.F_TRANSLATION, SID, false, 0, upperVa, true, true, false, false,
                EventRecord.CLASS_IN, 0, 0);
        assertThat(rig.pa(SID, -1, 0x1000, 0)).isEqualTo(pa);
    }

    @Test
    void addressWithTopBitsThatAreNotACopyOfBit55IsATranslationFault() {
        PageTable low = rig.stage1(12, 48);
        rig.map(low, 0x1000, rig.page(), 4096, Prot.READ);
        install(SmmuTestRig.cdFor(low, 4));

        long va = 0x0001_0000_0000_1000L; // bit 48 set, bit 55 clear
        assertFault(rig.translate(SID, -1, va, 0), FaultType.TRANSLATION, EventType.F_TRANSLATION);
        assertThat(rig.onlyEvent().inputAddr()).isEqualTo(va);
    }

    @Test
    void tbi0IgnoresTheTopByteOfTtb0Addresses() {
        PageTable low = rig.stage1(12, 48);
        long pa = rig.page();
        rig.map(low, 0x1000, pa, 4096, Prot.READ);
        install(SmmuTestRig.cdFor(low, 4).toBuilder().tbi0(true).build());

        assertThat(rig.pa(SID, -1, 0x5A00_0000_0000_1010L, 0)).isEqualTo(pa + 0x10);
        assertThat(rig.pa(SID, -1, 0x0000_0000_0000_1020L, 0)).isEqualTo(pa + 0x20);
    }

    @Test
    void ttb0BeyondIpsIsAnAddressSizeFault() {
        PageTable low = rig.stage1(12, 48);
        install(SmmuTestRig.cdFor(low, 4).toBuilder().ips(Encodings.oasEncoding(32)).ttb0(1L << 33).build());

        assertFault(rig.translate(SID, -1, 0x1000, 0), FaultType.ADDRESS_SIZE, EventType.F_ADDR_SIZE);
        assertRecord(rig.onlyEvent(), EventType.F_ADDR_SIZE, SID, false, 0, 0x1000, true, false, false, false,
                EventRecord.CLASS_IN, 0, 0);
    }
}
