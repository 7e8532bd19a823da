package org.iommuemu.device.smmuv3.walk;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.smmuv3.walk.Desc.AF;
import static org.iommuemu.device.smmuv3.walk.Desc.DBM;
import static org.iommuemu.device.smmuv3.walk.Desc.S2AP_R;
import static org.iommuemu.device.smmuv3.walk.Desc.S2AP_W;
import static org.iommuemu.device.smmuv3.walk.Desc.S2_XN;
import static org.iommuemu.device.smmuv3.walk.Desc.S2_XN0;
import static org.iommuemu.device.smmuv3.walk.Desc.block;
import static org.iommuemu.device.smmuv3.walk.Desc.memAttr;
import static org.iommuemu.device.smmuv3.walk.Desc.page;
import static org.iommuemu.device.smmuv3.walk.Desc.table;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.FETCH_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.FETCH_USER;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.HAND;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.READ_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.READ_USER;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.WRITE_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.WRITE_USER;

import org.iommuemu.device.smmuv3.walk.WalkResult.Fault;
import org.iommuemu.device.smmuv3.walk.WalkResult.Outcome;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Stage-2-only walks of hand-written descriptors (PGTABLE.md §1.6; SMMUV3.md §5): concatenated first-level
 * tables, S2AP and XN, access flag and dirty state, address sizes and aborts, all reported with S2 = 1,
 * CLASS = IN and the IPA. The main table is 4K with a 40-bit IPA starting at level 1 with two concatenated
 * tables (S2SL0 = 1), as Linux sets it up.
 */
class Stage2WalkTest {
    /** Two concatenated level-1 tables: 8 KiB, 8 KiB aligned. */
    static final long L1 = HAND;
    static final long L2 = HAND + 0x2000;
    static final long L3 = HAND + 0x3000;
    /** IPA bit 39 set: its level-1 entry is in the second table. */
    static final long IPA = 0x8A_BCDE_F123L;
    static final long OA = 0x7_1234_5000L;
    static final long NORMAL_RW = Desc.S2_NORMAL | S2AP_R | S2AP_W;

    final WalkFixture f = new WalkFixture();

    static long l1Slot(long ipa) {
        return L1 + (((ipa >>> 30) & 1023) << 3);
    }

    static long l2Slot(long ipa) {
        return L2 + (((ipa >>> 21) & 511) << 3);
    }

    static long l3Slot(long ipa) {
        return L3 + (((ipa >>> 12) & 511) << 3);
    }

    void chain(long ipa, long leafAttrs) {
        f.put(l1Slot(ipa), table(L2));
        f.put(l2Slot(ipa), table(L3));
        f.put(l3Slot(ipa), page(OA, leafAttrs));
    }

    static Stage2Context.Builder ctx() {
        return Stage2Context.builder().vmid(1).granuleLg2(12).t0sz(24).sl0(1).psBits(48).iasBits(48).ttb(L1);
    }

    WalkResult walk(Stage2Context c, long ipa, int access) {
        return f.walker.translateStage2(c, ipa, access, f.out);
    }

    WalkResult walk(long ipa, int access) {
        return walk(ctx().build(), ipa, access);
    }

    static void assertS2Fault(WalkResult out, Fault fault, int level, long ipa) {
        assertThat(out.outcome()).as("%s", out).isEqualTo(Outcome.FAULT);
        assertThat(out.fault()).as("%s", out).isEqualTo(fault);
        assertThat(out.faultLevel()).as("%s", out).isEqualTo(level);
        assertThat(out.faultS2()).as("%s", out).isTrue();
        assertThat(out.faultClass()).as("%s", out).isEqualTo(WalkResult.CLASS_IN);
        assertThat(out.faultIpa()).as("%s", out).isEqualTo(ipa);
        assertThat(out.inputAddress()).as("%s", out).isEqualTo(ipa);
    }

    @Test
    void theTopIpaBitIndexesTheSecondConcatenatedTable() {
        Stage2Context c = ctx().build();
        assertThat(c.startLevel()).isEqualTo(1);
        assertThat(c.concatenatedTables()).isEqualTo(2);
        chain(IPA, NORMAL_RW);
        assertThat(l1Slot(IPA)).isGreaterThanOrEqualTo(L1 + 0x1000);
        WalkResult out = walk(IPA, READ_PRIV);
        assertThat(out.outcome()).as("%s", out).isEqualTo(Outcome.OK);
        assertThat(out.outputAddress()).isEqualTo(OA | (IPA & 0xFFF));
        assertThat(out.reads()).isEqualTo(3);
        assertThat(out.s2Level()).isEqualTo(3);
        assertThat(out.s2MemAttr()).isEqualTo(0xF);
        assertThat(out.s2Shareability()).isEqualTo(3);
        long low = IPA & ~(1L << 39);
        assertS2Fault(walk(low, READ_PRIV), Fault.TRANSLATION, 1, low); // the first table's entry is empty
    }

    @Test
    void sixtyFourKStartingAtLevel3ConcatenatesFourTables() {
        // 64K granule, 31-bit IPA, S2SL0 = 0 (level 3): 2^15 entries = four 64K tables.
        long ttb = HAND + 0x40000;
        Stage2Context c = Stage2Context.builder().granuleLg2(16).t0sz(33).sl0(0).psBits(48).iasBits(48).ttb(ttb)
                .build();
        assertThat(Stage2Context.validate(c)).isNull();
        assertThat(c.startLevel()).isEqualTo(3);
        assertThat(c.concatenatedTables()).isEqualTo(4);
        long ipa = 0x6123_4567L;
        long slot = ttb + ((ipa >>> 16) << 3);
        assertThat(slot - ttb).as("in the fourth table").isBetween(0x30000L, 0x3FFFFL);
        f.put(slot, page(0x5_0000_0000L, NORMAL_RW));
        WalkResult out = walk(c, ipa, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(0x5_0000_4567L);
        assertThat(out.sizeLg2()).isEqualTo(16);
        assertThat(out.reads()).isEqualTo(1);
    }

    @Test
    void blocksAtLevels1And2() {
        f.put(l1Slot(IPA), block(0x40_0000_0000L, NORMAL_RW));
        WalkResult out = walk(IPA, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(0x40_0000_0000L | (IPA & 0x3FFF_FFFFL));
        assertThat(out.sizeLg2()).isEqualTo(30);
        f.put(l1Slot(IPA), table(L2));
        f.put(l2Slot(IPA), block(0x40_0020_0000L, NORMAL_RW));
        out = walk(IPA, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(0x40_0020_0000L | (IPA & 0x1F_FFFFL));
        assertThat(out.sizeLg2()).isEqualTo(21);
    }

    @ParameterizedTest(name = "invalid descriptor at level {0}")
    @ValueSource(ints = {1, 2, 3})
    void anInvalidDescriptorIsAStage2TranslationFaultAtItsLevel(int level) {
        chain(IPA, NORMAL_RW);
        long slot = level == 1 ? l1Slot(IPA) : level == 2 ? l2Slot(IPA) : l3Slot(IPA);
        f.put(slot, f.get(slot) & ~1L);
        WalkResult out = walk(IPA, WRITE_USER);
        assertS2Fault(out, Fault.TRANSLATION, level, IPA);
        assertThat(out.reads()).isEqualTo(level);
        assertThat(out.rnw()).isFalse();
        assertThat(out.pnu()).isFalse();
    }

    @Test
    void anIpaOutsideS2T0SzIsATranslationFaultAndOneAboveTheIasAnAddressSizeFault() {
        long ipa = 1L << 40;
        WalkResult out = walk(ipa, READ_PRIV);
        assertS2Fault(out, Fault.TRANSLATION, 0, ipa);
        assertThat(out.reads()).isZero();
        // An SMMU with a 40-bit IAS: the input is too wide before stage 2 sees it (a stage-1 fault, SMMUv3 §3.4).
        Stage2Context ias40 = ctx().iasBits(40).build();
        out = walk(ias40, ipa, READ_PRIV);
        assertThat(out.fault()).as("%s", out).isEqualTo(Fault.ADDR_SIZE);
        assertThat(out.faultS2()).isFalse();
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_IN);
    }

    @Test
    void addressesBeyondS2PsAreAddressSizeFaults() {
        chain(IPA, NORMAL_RW);
        Stage2Context ps36 = ctx().psBits(36).build();
        assertThat(walk(ps36, IPA, READ_PRIV).isOk()).isTrue();
        f.put(l3Slot(IPA), page(1L << 36, NORMAL_RW));
        assertS2Fault(walk(ps36, IPA, READ_PRIV), Fault.ADDR_SIZE, 3, IPA);
        f.put(l3Slot(IPA), page(OA, NORMAL_RW));
        f.put(l2Slot(IPA), table(L3 | 1L << 37));
        assertS2Fault(walk(ps36, IPA, READ_PRIV), Fault.ADDR_SIZE, 2, IPA);
        WalkResult out = walk(ctx().psBits(36).ttb(1L << 36).build(), IPA, READ_PRIV);
        assertS2Fault(out, Fault.ADDR_SIZE, 0, IPA);
        assertThat(out.reads()).isZero();
    }

    /** The accesses the leaf allows, as "P:rwx U:rwx" with '-' for each stage-2 permission fault. */
    String allowed(Stage2Context c, long leafAttrs) {
        chain(IPA, leafAttrs);
        StringBuilder b = new StringBuilder("P:");
        int[] accesses = {READ_PRIV, WRITE_PRIV, FETCH_PRIV, READ_USER, WRITE_USER, FETCH_USER};
        for (int i = 0; i < accesses.length; i++) {
            if (i == 3) {
                b.append(" U:");
            }
            WalkResult out = walk(c, IPA, accesses[i]);
            if (!out.isOk()) {
                assertS2Fault(out, Fault.PERMISSION, 3, IPA);
            }
            b.append(out.isOk() ? "rwxrwx".charAt(i) : '-');
        }
        return b.toString();
    }

    @Test
    void s2apGrantsReadAndWriteAndAnInstructionFetchNeedsNoRead() {
        Stage2Context c = ctx().build();
        assertThat(allowed(c, Desc.S2_NORMAL)).as("S2AP=00").isEqualTo("P:--x U:--x");
        assertThat(allowed(c, Desc.S2_NORMAL | S2AP_R)).as("S2AP=01").isEqualTo("P:r-x U:r-x");
        assertThat(allowed(c, Desc.S2_NORMAL | S2AP_W)).as("S2AP=10").isEqualTo("P:-wx U:-wx");
        assertThat(allowed(c, NORMAL_RW)).as("S2AP=11").isEqualTo("P:rwx U:rwx");
    }

    @Test
    void xnForbidsInstructionFetchesAndXnxSplitsItByPrivilege() {
        Stage2Context c = ctx().build();
        assertThat(allowed(c, NORMAL_RW | S2_XN)).isEqualTo("P:rw- U:rw-");
        assertThat(allowed(c, NORMAL_RW | S2_XN0)).as("bit 53 ignored without XNX").isEqualTo("P:rwx U:rwx");
        Stage2Context xnx = ctx().xnx(true).build();
        assertThat(allowed(xnx, NORMAL_RW)).as("XN=00").isEqualTo("P:rwx U:rwx");
        assertThat(allowed(xnx, NORMAL_RW | S2_XN0)).as("XN=01").isEqualTo("P:rw- U:rwx");
        assertThat(allowed(xnx, NORMAL_RW | S2_XN)).as("XN=10").isEqualTo("P:rw- U:rw-");
        assertThat(allowed(xnx, NORMAL_RW | S2_XN | S2_XN0)).as("XN=11").isEqualTo("P:rwx U:rw-");
    }

    @Test
    void s2ptwDoesNotApplyToTheInputItself() {
        chain(IPA, memAttr(0x1) | AF | S2AP_R | S2AP_W); // Device-nGnRE
        assertThat(walk(ctx().ptw(true).build(), IPA, READ_PRIV).isOk()).isTrue();
    }

    @Test
    void theAccessFlagLikeStage1() {
        long noAf = NORMAL_RW & ~AF;
        chain(IPA, noAf);
        assertS2Fault(walk(IPA, READ_PRIV), Fault.ACCESS, 3, IPA);
        assertThat(walk(ctx().affd(true).build(), IPA, READ_PRIV).isOk()).isTrue();
        assertThat(f.get(l3Slot(IPA))).isEqualTo(page(OA, noAf));
        WalkResult out = walk(ctx().ha(true).build(), IPA, READ_PRIV);
        assertThat(out.isOk()).isTrue();
        assertThat(out.updates()).isEqualTo(1);
        assertThat(f.get(l3Slot(IPA))).isEqualTo(page(OA, NORMAL_RW));
        chain(IPA, (noAf & ~S2AP_W) | S2AP_R);
        assertS2Fault(walk(IPA, WRITE_PRIV), Fault.ACCESS, 3, IPA); // before the permission fault
    }

    @Test
    void aWriteThroughAWritableCleanLeafSetsS2ap1() {
        long clean = Desc.S2_NORMAL | S2AP_R | DBM;
        chain(IPA, clean);
        Stage2Context hd = ctx().ha(true).hd(true).build();
        WalkResult out = walk(hd, IPA, READ_PRIV);
        assertThat(out.isOk()).isTrue();
        assertThat(out.writableClean()).isTrue();
        assertThat(out.permits(WRITE_PRIV)).isFalse();
        assertThat(f.get(l3Slot(IPA))).isEqualTo(page(OA, clean));
        out = walk(hd, IPA, WRITE_PRIV);
        assertThat(out.isOk()).as("%s", out).isTrue();
        assertThat(out.writableClean()).isFalse();
        assertThat(out.permits(WRITE_PRIV)).isTrue();
        assertThat(f.get(l3Slot(IPA))).isEqualTo(page(OA, clean | S2AP_W));
        chain(IPA, clean);
        assertS2Fault(walk(ctx().build(), IPA, WRITE_PRIV), Fault.PERMISSION, 3, IPA); // no HD: read-only
    }

    @Test
    void aTableOutsideRamIsAStage2WalkExternalAbort() {
        chain(IPA, NORMAL_RW);
        f.put(l2Slot(IPA), table(0x3000));
        WalkResult out = walk(IPA, READ_PRIV);
        assertS2Fault(out, Fault.WALK_EABT, 3, IPA);
        assertThat(out.fetchAddress()).isEqualTo(0x3000 + (((IPA >>> 12) & 511) << 3));
    }

    @Test
    void anInvalidContextIsABadSte() {
        Stage2Context bad = ctx().sl0(0).build(); // level 2 cannot start a 40-bit IPA: 512 tables
        WalkResult out = walk(bad, IPA, READ_PRIV);
        assertThat(out.outcome()).isEqualTo(Outcome.BAD_CONFIG);
        assertThat(out.badConfigStage()).isEqualTo(2);
        assertThat(out.badConfigReason()).contains("concatenated");
        assertThat(out.reads()).isZero();
        out = f.walker.translateNested(Stage1Context.builder().build(), bad, IPA, READ_PRIV, f.out);
        assertThat(out.badConfigStage()).as("the STE is checked before the CD").isEqualTo(2);
    }

    @Test
    void sixteenKHasNoLevel1Blocks() {
        // 16K, 40-bit IPA, S2SL0 = 2 (level 1, 16 entries).
        long ttb = HAND + 0x10000;
        Stage2Context c = Stage2Context.builder().granuleLg2(14).t0sz(24).sl0(2).psBits(48).iasBits(48).ttb(ttb)
                .build();
        assertThat(Stage2Context.validate(c)).isNull();
        f.put(ttb + ((IPA >>> 36) << 3), block(0, NORMAL_RW));
        assertS2Fault(walk(c, IPA, READ_PRIV), Fault.TRANSLATION, 1, IPA);
    }
}
