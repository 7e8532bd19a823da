package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Configuration invalidation. An STE or CD the SMMU has used stays cached, so rewriting it in memory changes
 * nothing until the matching CFGI_* command; each form drops exactly the structures it names.
 */
class SmmuCfgiTest {
    private static final long IOVA = 0x1234_5000L;

    private final SmmuTestRig rig = SmmuTestRig.started();

    // ------------------------------------------------------------------ STEs

    /** Installs bypass STEs, uses them, then rewrites each as abort without invalidating. */
    private void bypassThenAbort(int... sids) {
        for (int sid : sids) {
            rig.installSte(sid, Ste.bypass());
            assertThat(rig.pa(sid, -1, IOVA, 0)).isEqualTo(IOVA);
        }
        for (int sid : sids) {
            rig.writeSte(sid, Ste.abort());
        }
        assertThat(states(sids)).as("rewritten, not invalidated").isEqualTo("o".repeat(sids.length));
    }

    /** One letter per stream: o = the old (bypass) STE is in force, N = the new (abort) STE is. */
    private String states(int... sids) {
        StringBuilder b = new StringBuilder();
        for (int sid : sids) {
            Translation t = rig.translate(sid, -1, IOVA, 0);
            b.append(t.isOk() && t.physicalAddress() == IOVA ? 'o' : t.faultType() == FaultType.ABORTED ? 'N' : '?');
        }
        return b.toString();
    }

    @ParameterizedTest(name = "leaf={0}")
    @ValueSource(booleans = {true, false})
    void cfgiSteDropsThatStreamOnly(boolean leaf) {
        bypassThenAbort(4, 5, 6);

        rig.issue(Command.cfgiSte(5, leaf));

        assertThat(states(4, 5, 6)).isEqualTo("oNo");
    }

    @Test
    void cfgiSteRangeDropsAnAlignedBlockOfTwoToTheRangePlusOneStreams() {
        bypassThenAbort(7, 8, 11, 15, 16);

        rig.issue(Command.cfgiSteRange(10, 2)); // 2^3 streams from 10 aligned down: 8..15

        assertThat(states(7, 8, 11, 15, 16)).isEqualTo("oNNNo");
    }

    @Test
    void cfgiSteRangeZeroIsTwoStreams() {
        bypassThenAbort(7, 8, 9, 10);

        rig.issue(Command.cfgiSteRange(9, 0)); // 8..9

        assertThat(states(7, 8, 9, 10)).isEqualTo("oNNo");
    }

    @Test
    void cfgiAllDropsEveryStream() {
        bypassThenAbort(0, 1, 200, 255);

        rig.issue(Command.cfgiAll());

        assertThat(states(0, 1, 200, 255)).isEqualTo("NNNN");
    }

    @Test
    void tlbisDoNotDropStes() {
        bypassThenAbort(4);

        rig.issue(Command.tlbiNsnhAll(), Command.tlbiS12Vmall(0), Command.cfgiCdAll(4));

        assertThat(states(4)).isEqualTo("o");
    }

    // ------------------------------------------------------------------ CDs

    private static final int SID = 20;
    private static final long PA1 = 1L << 38;
    private static final long PA2 = (1L << 38) + 0x10_0000;
    private static final long MOVED = 1L << 30;

    private long cds;

    /** A table mapping IOVA to {@code pa}. */
    private PageTable table(long pa) {
        PageTable pt = rig.stage1(12, 48);
        rig.map(pt, IOVA, pa, 4096, Prot.READ | Prot.WRITE);
        return pt;
    }

    /**
     * Stream SID with substreams 0..3: SSID 1 (ASID 11) maps IOVA to PA1, SSID 2 (ASID 12) to PA2, both used. Then
     * each CD is rewritten, without invalidating, with a new ASID and a table mapping IOVA to its PA + MOVED.
     */
    private void twoSubstreamsThenNewCds() {
        cds = rig.cdTable(2);
        rig.writeCd(cds, 1, SmmuTestRig.cdFor(table(PA1), 11));
        rig.writeCd(cds, 2, SmmuTestRig.cdFor(table(PA2), 12));
        rig.installSte(SID, Ste.stage1(cds, Ste.S1FMT_LINEAR, 2, Ste.S1DSS_SSID0));
        assertThat(rig.pa(SID, 1, IOVA, 0)).isEqualTo(PA1);
        assertThat(rig.pa(SID, 2, IOVA, 0)).isEqualTo(PA2);
        rig.writeCd(cds, 1, SmmuTestRig.cdFor(table(PA1 + MOVED), 21));
        rig.writeCd(cds, 2, SmmuTestRig.cdFor(table(PA2 + MOVED), 22));
        assertThat(cdStates()).as("rewritten, not invalidated").isEqualTo("oo");
    }

    /** SSID 1 then SSID 2: o = the old CD is in force, N = the new one. */
    private String cdStates() {
        return "" + cdState(1, PA1) + cdState(2, PA2);
    }

    private char cdState(int ssid, long oldPa) {
        long pa = rig.pa(SID, ssid, IOVA, 0);
        return pa == oldPa ? 'o' : pa == oldPa + MOVED ? 'N' : '?';
    }

    @ParameterizedTest(name = "leaf={0}")
    @ValueSource(booleans = {true, false})
    void cfgiCdDropsThatSubstreamOfThatStreamOnly(boolean leaf) {
        twoSubstreamsThenNewCds();

        rig.issue(Command.cfgiCd(SID + 1, 1, leaf), Command.cfgiCd(SID, 2, leaf));

        assertThat(cdStates()).isEqualTo("oN");
    }

    @Test
    void cfgiCdAllDropsEverySubstreamOfThatStreamButNotItsSte() {
        twoSubstreamsThenNewCds();
        rig.issue(Command.cfgiCdAll(SID + 1));
        assertThat(cdStates()).isEqualTo("oo");
        rig.writeSte(SID, Ste.abort());

        rig.issue(Command.cfgiCdAll(SID));

        assertThat(cdStates()).as("the CDs are read again through the still cached STE").isEqualTo("NN");
    }

    @Test
    void cfgiSteDropsTheCdsCachedThroughTheSte() {
        twoSubstreamsThenNewCds();

        rig.issue(Command.cfgiSte(SID, true));

        assertThat(cdStates()).isEqualTo("NN");
    }

    @Test
    void cfgiCdOfSubstreamZeroCoversTrafficWithoutASubstream() {
        long table = rig.cdTable(2);
        rig.writeCd(table, 0, SmmuTestRig.cdFor(table(PA1), 11));
        rig.installSte(SID, Ste.stage1(table, Ste.S1FMT_LINEAR, 2, Ste.S1DSS_SSID0));
        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(PA1);
        rig.writeCd(table, 0, SmmuTestRig.cdFor(table(PA2), 12));
        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(PA1);

        rig.issue(Command.cfgiCd(SID, 1, true));
        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(PA1);

        rig.issue(Command.cfgiCd(SID, 0, true));
        assertThat(rig.pa(SID, -1, IOVA, 0)).isEqualTo(PA2);
    }
}
