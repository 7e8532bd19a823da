package org.iommuemu.device.smmuv3.walk;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.smmuv3.walk.Desc.AF;
import static org.iommuemu.device.smmuv3.walk.Desc.AP_EL0;
import static org.iommuemu.device.smmuv3.walk.Desc.AP_RO;
import static org.iommuemu.device.smmuv3.walk.Desc.AP_TABLE_NO_EL0;
import static org.iommuemu.device.smmuv3.walk.Desc.AP_TABLE_RO;
import static org.iommuemu.device.smmuv3.walk.Desc.DBM;
import static org.iommuemu.device.smmuv3.walk.Desc.NG;
import static org.iommuemu.device.smmuv3.walk.Desc.PXN;
import static org.iommuemu.device.smmuv3.walk.Desc.PXN_TABLE;
import static org.iommuemu.device.smmuv3.walk.Desc.UXN;
import static org.iommuemu.device.smmuv3.walk.Desc.UXN_TABLE;
import static org.iommuemu.device.smmuv3.walk.Desc.block;
import static org.iommuemu.device.smmuv3.walk.Desc.page;
import static org.iommuemu.device.smmuv3.walk.Desc.table;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.FETCH_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.FETCH_USER;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.HAND;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.READ_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.READ_USER;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.WRITE_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.WRITE_USER;

import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.smmuv3.walk.Stage1Context.TableHalf;
import org.iommuemu.device.smmuv3.walk.WalkResult.Fault;
import org.iommuemu.device.smmuv3.walk.WalkResult.Outcome;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Stage-1 walks of hand-written descriptors (PGTABLE.md §1): geometry corner cases and every fault, with its
 * level and event fields. The main table is a 4K, 48-bit (TxSZ 16) four-level chain L0 → L1 → L2 → L3 → page.
 */
class Stage1WalkTest {
    static final long L0 = HAND;
    static final long L1 = HAND + 0x1000;
    static final long L2 = HAND + 0x2000;
    static final long L3 = HAND + 0x3000;
    static final long VA = 0x0000_5A5A_1234_5678L;
    static final long OA = 0xA_BCDE_F000L;
    /** Readable and writable by everyone, executable unprivileged. */
    static final long RW_ANY = AF | AP_EL0;

    final WalkFixture f = new WalkFixture();

    static long slot(long table, int level, long va) {
        int shift = 12 + (3 - level) * 9;
        return table + (((va >>> shift) & 511) << 3);
    }

    /** Writes the chain for {@code va} with a page leaf of {@code leafAttrs}. */
    void chain(long va, long leafAttrs) {
        f.put(slot(L0, 0, va), table(L1));
        f.put(slot(L1, 1, va), table(L2));
        f.put(slot(L2, 2, va), table(L3));
        f.put(slot(L3, 3, va), page(OA, leafAttrs));
    }

    static Stage1Context.Builder ctx() {
        return Stage1Context.builder().ttb0(TableHalf.of(16, 12, L0)).oasBits(48);
    }

    WalkResult walk(Stage1Context c, long va, int access) {
        return f.walker.translateStage1(c, va, access, f.out);
    }

    WalkResult walk(long va, int access) {
        return walk(ctx().build(), va, access);
    }

    static void assertFault(WalkResult out, Fault fault, int level) {
        assertThat(out.outcome()).as("%s", out).isEqualTo(Outcome.FAULT);
        assertThat(out.fault()).as("%s", out).isEqualTo(fault);
        assertThat(out.faultLevel()).as("%s", out).isEqualTo(level);
        assertThat(out.faultS2()).as("%s", out).isFalse();
    }

    // ---------------------------------------------------------------- translation and geometry

    @Test
    void aFourLevelWalkReadsFourDescriptors() {
        chain(VA, RW_ANY);
        WalkResult out = walk(VA, READ_PRIV);
        assertThat(out.outcome()).as("%s", out).isEqualTo(Outcome.OK);
        assertThat(out.outputAddress()).isEqualTo(OA | (VA & 0xFFF));
        assertThat(out.inputBase()).isEqualTo(VA & ~0xFFFL);
        assertThat(out.sizeLg2()).isEqualTo(12);
        assertThat(out.level()).isEqualTo(3);
        assertThat(out.reads()).isEqualTo(4);
        assertThat(out.updates()).isZero();
        assertThat(out.global()).isTrue();
        assertThat(out.s1Descriptor()).isEqualTo(page(OA, RW_ANY));
        chain(VA, RW_ANY | NG);
        assertThat(walk(VA, READ_PRIV).global()).as("nG").isFalse();
    }

    @Test
    void theMairByteOfAttrIndxIsReported() {
        chain(VA, RW_ANY | Desc.attrIndx(5) | (2L << 8));
        WalkResult out = walk(ctx().mair(0x0000_AB00_0000_0000L).build(), VA, READ_PRIV);
        assertThat(out.s1AttrIndx()).isEqualTo(5);
        assertThat(out.s1MemoryAttributes()).isEqualTo(0xAB);
        assertThat(out.s1Shareability()).isEqualTo(2);
    }

    @ParameterizedTest(name = "invalid descriptor at level {0}")
    @ValueSource(ints = {0, 1, 2, 3})
    void anInvalidDescriptorIsATranslationFaultAtItsLevel(int level) {
        chain(VA, RW_ANY);
        long table = new long[] {L0, L1, L2, L3}[level];
        f.put(slot(table, level, VA), f.get(slot(table, level, VA)) & ~1L); // bit 0 clear: the rest is ignored
        WalkResult out = walk(VA, READ_PRIV);
        assertFault(out, Fault.TRANSLATION, level);
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_IN);
        assertThat(out.inputAddress()).isEqualTo(VA);
        assertThat(out.reads()).isEqualTo(level + 1);
    }

    @Test
    void type01AtLevel3IsReserved() {
        chain(VA, RW_ANY);
        f.put(slot(L3, 3, VA), OA | RW_ANY | Desc.TYPE_RESERVED_L3);
        assertFault(walk(VA, READ_PRIV), Fault.TRANSLATION, 3);
    }

    @Test
    void fourKBlocksAt1GAnd2MButNotAtLevel0() {
        chain(VA, RW_ANY);
        f.put(slot(L1, 1, VA), block(0x4000_0000L, RW_ANY));
        WalkResult out = walk(VA, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(0x4000_0000L | (VA & 0x3FFF_FFFFL));
        assertThat(out.sizeLg2()).isEqualTo(30);
        assertThat(out.level()).isEqualTo(1);
        assertThat(out.reads()).isEqualTo(2);
        f.put(slot(L1, 1, VA), table(L2));
        f.put(slot(L2, 2, VA), block(0x8_0020_0000L, RW_ANY));
        out = walk(VA, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(0x8_0020_0000L | (VA & 0x1F_FFFFL));
        assertThat(out.sizeLg2()).isEqualTo(21);
        assertThat(out.inputBase()).isEqualTo(VA & ~0x1F_FFFFL);
        assertThat(out.contiguousBytes()).isEqualTo(0x20_0000L - (VA & 0x1F_FFFFL));
        f.put(slot(L0, 0, VA), block(0, RW_ANY));
        assertFault(walk(VA, READ_PRIV), Fault.TRANSLATION, 0);
    }

    @Test
    void blockOutputBitsBelowTheBlockSizeAreIgnored() {
        chain(VA, RW_ANY);
        f.put(slot(L2, 2, VA), block(0x8_0020_0000L | 0x1F_F000L, RW_ANY)); // OA[20:12] set in a 2M block
        assertThat(walk(VA, READ_PRIV).outputAddress()).isEqualTo(0x8_0020_0000L | (VA & 0x1F_FFFFL));
    }

    @Test
    void sixteenKHasNoLevel1BlocksWithout52BitAddresses() {
        // 16K, 47-bit VA: start level 1 (2048 entries), then 2 and 3.
        long va = 0x0000_4321_8765_4321L;
        Stage1Context c = Stage1Context.builder().ttb0(TableHalf.of(17, 14, L0)).oasBits(48).build();
        assertThat(c.startLevel(0)).isEqualTo(1);
        long l1 = L0 + (((va >>> 36) & 2047) << 3);
        f.put(l1, block(0, RW_ANY));
        assertFault(walk(c, va, READ_PRIV), Fault.TRANSLATION, 1);
        long l2Table = HAND + 0x10000;
        f.put(l1, table(l2Table));
        f.put(l2Table + (((va >>> 25) & 2047) << 3), block(0x6_0200_0000L, RW_ANY)); // 32M block
        WalkResult out = walk(c, va, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(0x6_0200_0000L | (va & 0x1FF_FFFFL));
        assertThat(out.sizeLg2()).isEqualTo(25);
    }

    @Test
    void sixtyFourKLevel1BlocksAndHighOutputBitsNeed52BitOutput() {
        // 64K, 48-bit VA: start level 1 with 64 entries.
        long va = 0x0000_F123_4567_89ABL;
        long l1 = L0 + (((va >>> 42) & 63) << 3);
        f.put(l1, block(0xC00_0000_0000L, RW_ANY)); // 4T block
        Stage1Context c48 = Stage1Context.builder().ttb0(TableHalf.of(16, 16, L0)).oasBits(48).build();
        assertFault(walk(c48, va, READ_PRIV), Fault.TRANSLATION, 1);
        Stage1Context c52 = c48.toBuilder().oasBits(52).build();
        WalkResult out = walk(c52, va, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(0xC00_0000_0000L | (va & 0x3FF_FFFF_FFFFL));
        assertThat(out.sizeLg2()).isEqualTo(42);
        // A page whose descriptor bits [15:12] carry OA[51:48].
        long l2 = HAND + 0x20000;
        long l3 = HAND + 0x30000;
        f.put(l1, table(l2));
        f.put(l2 + (((va >>> 29) & 8191) << 3), table(l3));
        f.put(l3 + (((va >>> 16) & 8191) << 3), page(0x1234_5678_0000L | (0xAL << 12), RW_ANY));
        out = walk(c52, va, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(0xA_1234_5678_0000L | (va & 0xFFFF));
        out = walk(c48, va, READ_PRIV);
        assertThat(out.outputAddress()).as("bits [15:12] ignored below 52 bits: %s", out)
                .isEqualTo(0x1234_5678_0000L | (va & 0xFFFF));
    }

    @Test
    void sixtyFourKWithA25BitVaStartsAtLevel3() {
        Stage1Context c = Stage1Context.builder().ttb0(TableHalf.of(39, 16, L0)).oasBits(48).build();
        assertThat(c.startLevel(0)).isEqualTo(3);
        long va = 0x1AB_CDEFL;
        f.put(L0 + (((va >>> 16) & 511) << 3), page(0x7_0000_0000L, RW_ANY));
        WalkResult out = walk(c, va, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(0x7_0000_0000L | (va & 0xFFFF));
        assertThat(out.reads()).isEqualTo(1);
        assertFault(walk(c, 1L << 25, READ_PRIV), Fault.TRANSLATION, 0);
    }

    @Test
    void fourKWithA25BitVaStartsAtLevel2With16Entries() {
        Stage1Context c = Stage1Context.builder().ttb0(TableHalf.of(39, 12, L2)).oasBits(48).build();
        assertThat(c.startLevel(0)).isEqualTo(2);
        long va = 0x1ED_CBA9L;
        f.put(L2 + (((va >>> 21) & 15) << 3), table(L3));
        f.put(slot(L3, 3, va), page(OA, RW_ANY));
        WalkResult out = walk(c, va, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(OA | (va & 0xFFF));
        assertThat(out.reads()).isEqualTo(2);
    }

    // ---------------------------------------------------------------- input range, halves, TBI

    @Test
    void anAddressAboveTxSzIsATranslationFaultBeforeAnyRead() {
        Stage1Context c39 = Stage1Context.builder().ttb0(TableHalf.of(25, 12, L1)).oasBits(48).build();
        WalkResult out = walk(c39, 1L << 39, READ_PRIV);
        assertFault(out, Fault.TRANSLATION, 0);
        assertThat(out.reads()).isZero();
        assertThat(out.inputAddress()).isEqualTo(1L << 39);
        assertFault(walk(1L << 48, READ_PRIV), Fault.TRANSLATION, 0);
        assertFault(walk(0x0080_0000_0000_0000L, READ_PRIV), Fault.TRANSLATION, 0); // bit 55 set: TTB1, disabled
    }

    @Test
    void vaBit55SelectsTtb1() {
        long va = 0xFFFF_8123_4567_8000L;
        f.put(slot(L0, 0, va), table(L1));
        f.put(slot(L1, 1, va), table(L2));
        f.put(slot(L2, 2, va), table(L3));
        f.put(slot(L3, 3, va), page(OA, RW_ANY));
        Stage1Context c = Stage1Context.builder().ttb1(TableHalf.of(16, 12, L0)).oasBits(48).build();
        WalkResult out = walk(c, va | 0x321, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(OA | 0x321);
        assertThat(out.inputBase()).isEqualTo(va);
        assertFault(walk(c, va & ~(1L << 55), READ_PRIV), Fault.TRANSLATION, 0); // TTB0 disabled
        assertFault(walk(c, 0xFFFE_8123_4567_8000L, READ_PRIV), Fault.TRANSLATION, 0); // bit 48 clear
        assertFault(walk(c, 0x00FF_8123_4567_8000L, READ_PRIV), Fault.TRANSLATION, 0); // top byte without TBI1
        assertThat(walk(c.toBuilder().tbi1(true).build(), 0x00FF_8123_4567_8000L, READ_PRIV).outputAddress())
                .isEqualTo(OA);
        Stage1Context epd1 = c.toBuilder().ttb1(TableHalf.DISABLED).build();
        assertFault(walk(epd1, va, READ_PRIV), Fault.TRANSLATION, 0);
    }

    @Test
    void theHalvesMayUseDifferentGeometries() {
        // TTB0: 4K 48-bit; TTB1: 64K 42-bit starting at level 2.
        chain(VA, RW_ANY);
        long t1 = HAND + 0x40000;
        long va1 = 0xFFFF_FE12_3456_0000L;
        f.put(t1 + (((va1 >>> 29) & 8191) << 3), block(0x2000_0000L, RW_ANY)); // 512M block at level 2
        Stage1Context c = ctx().ttb1(TableHalf.of(22, 16, t1)).build();
        assertThat(c.startLevel(1)).isEqualTo(2);
        assertThat(walk(c, VA, READ_PRIV).outputAddress()).isEqualTo(OA | (VA & 0xFFF));
        WalkResult out = walk(c, va1, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(0x2000_0000L | (va1 & 0x1FFF_FFFFL));
        assertThat(out.sizeLg2()).isEqualTo(29);
    }

    @Test
    void tbi0IgnoresTheTopByte() {
        chain(VA, RW_ANY);
        long tagged = 0x5A00_0000_0000_0000L | VA;
        assertFault(walk(tagged, READ_PRIV), Fault.TRANSLATION, 0);
        WalkResult out = walk(ctx().tbi0(true).build(), tagged, READ_PRIV);
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(OA | (VA & 0xFFF));
        assertThat(out.inputAddress()).isEqualTo(tagged);
    }

    // ---------------------------------------------------------------- address size

    @Test
    void anOutputAddressBeyondIpsIsAnAddressSizeFault() {
        chain(VA, RW_ANY);
        Stage1Context ips36 = ctx().oasBits(36).build();
        assertThat(walk(ips36, VA, READ_PRIV).isOk()).isTrue();
        f.put(slot(L3, 3, VA), page(1L << 36, RW_ANY));
        WalkResult out = walk(ips36, VA, READ_PRIV);
        assertFault(out, Fault.ADDR_SIZE, 3);
        assertThat(out.reads()).isEqualTo(4);
        assertThat(walk(VA, READ_PRIV).isOk()).as("fine with a 48-bit IPS").isTrue();
        f.put(slot(L3, 3, VA), page(OA, RW_ANY));
        f.put(slot(L2, 2, VA), block(1L << 40, RW_ANY));
        assertFault(walk(ips36, VA, READ_PRIV), Fault.ADDR_SIZE, 2);
    }

    @Test
    void aTableAddressBeyondIpsIsAnAddressSizeFaultAtTheLevelThatHoldsIt() {
        chain(VA, RW_ANY);
        f.put(slot(L1, 1, VA), table(1L << 40 | L2));
        WalkResult out = walk(ctx().oasBits(40).build(), VA, READ_PRIV);
        assertFault(out, Fault.ADDR_SIZE, 1);
        assertThat(out.reads()).isEqualTo(2);
    }

    @Test
    void aTtbBeyondIpsIsAnAddressSizeFaultBeforeAnyRead() {
        Stage1Context c = Stage1Context.builder().ttb0(TableHalf.of(16, 12, 1L << 40)).oasBits(40).build();
        assertThat(Stage1Context.validate(c)).isNull();
        WalkResult out = walk(c, VA, READ_PRIV);
        assertFault(out, Fault.ADDR_SIZE, 0);
        assertThat(out.reads()).isZero();
    }

    // ---------------------------------------------------------------- access flag

    @Test
    void afZeroWithoutHaOrAffdIsAnAccessFault() {
        chain(VA, AP_EL0);
        WalkResult out = walk(VA, READ_PRIV);
        assertFault(out, Fault.ACCESS, 3);
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_IN);
        assertThat(f.get(slot(L3, 3, VA))).isEqualTo(page(OA, AP_EL0));
    }

    @Test
    void afZeroWithAffdTranslatesAndWritesNothing() {
        chain(VA, AP_EL0);
        WalkResult out = walk(ctx().affd(true).build(), VA, READ_PRIV);
        assertThat(out.isOk()).as("%s", out).isTrue();
        assertThat(out.updates()).isZero();
        assertThat(f.get(slot(L3, 3, VA))).isEqualTo(page(OA, AP_EL0));
    }

    @Test
    void afZeroWithHaIsSetInMemory() {
        chain(VA, AP_EL0);
        WalkResult out = walk(ctx().ha(true).build(), VA, READ_PRIV);
        assertThat(out.isOk()).as("%s", out).isTrue();
        assertThat(out.updates()).isEqualTo(1);
        assertThat(f.get(slot(L3, 3, VA))).isEqualTo(page(OA, AP_EL0 | AF));
        assertThat(out.s1Descriptor()).isEqualTo(page(OA, AP_EL0 | AF));
        // HA wins over AFFD: the flag is still set.
        chain(VA, AP_EL0);
        walk(ctx().ha(true).affd(true).build(), VA, READ_PRIV);
        assertThat(f.get(slot(L3, 3, VA)) & AF).isNotZero();
        // A block is updated the same way.
        f.put(slot(L2, 2, VA), block(0x4000_0000L, AP_EL0));
        assertThat(walk(ctx().ha(true).build(), VA, READ_PRIV).isOk()).isTrue();
        assertThat(f.get(slot(L2, 2, VA))).isEqualTo(block(0x4000_0000L, AP_EL0 | AF));
    }

    @Test
    void anAccessFaultComesBeforeAPermissionFault() {
        chain(VA, AP_EL0 | AP_RO);
        assertFault(walk(VA, WRITE_PRIV), Fault.ACCESS, 3);
    }

    @Test
    void aFaultingAccessDoesNotSetTheAccessFlag() {
        chain(VA, AP_EL0 | AP_RO);
        assertFault(walk(ctx().ha(true).build(), VA, WRITE_PRIV), Fault.PERMISSION, 3);
        assertThat(f.get(slot(L3, 3, VA)) & AF).isZero();
    }

    // ---------------------------------------------------------------- dirty state

    @Test
    void aWriteThroughAWritableCleanPageMakesItDirty() {
        long clean = AF | AP_EL0 | AP_RO | DBM;
        chain(VA, clean);
        Stage1Context hd = ctx().ha(true).hd(true).build();
        WalkResult out = walk(hd, VA, READ_PRIV);
        assertThat(out.isOk()).as("%s", out).isTrue();
        assertThat(out.updates()).as("a read leaves it clean").isZero();
        assertThat(f.get(slot(L3, 3, VA))).isEqualTo(page(OA, clean));
        assertThat(out.writableClean()).isTrue();
        assertThat(out.permissions() & WalkResult.WRITE_BITS).as("writes must walk again").isZero();
        assertThat(out.permits(READ_USER)).isTrue();
        out = walk(hd, VA, WRITE_USER);
        assertThat(out.isOk()).as("%s", out).isTrue();
        assertThat(out.updates()).isEqualTo(1);
        assertThat(f.get(slot(L3, 3, VA))).isEqualTo(page(OA, AF | AP_EL0 | DBM));
        assertThat(out.writableClean()).isFalse();
        assertThat(out.permits(WRITE_USER)).isTrue();
    }

    @Test
    void theAccessFlagAndDirtyStateAreSetInOneUpdate() {
        chain(VA, AP_EL0 | AP_RO | DBM);
        WalkResult out = walk(ctx().ha(true).hd(true).build(), VA, WRITE_PRIV);
        assertThat(out.isOk()).as("%s", out).isTrue();
        assertThat(out.updates()).isEqualTo(1);
        assertThat(f.get(slot(L3, 3, VA))).isEqualTo(page(OA, AF | AP_EL0 | DBM));
    }

    @Test
    void readOnlyWithoutDbmOrWithoutHdIsReadOnly() {
        chain(VA, AF | AP_EL0 | AP_RO);
        assertFault(walk(ctx().ha(true).hd(true).build(), VA, WRITE_PRIV), Fault.PERMISSION, 3);
        chain(VA, AF | AP_EL0 | AP_RO | DBM);
        assertFault(walk(VA, WRITE_PRIV), Fault.PERMISSION, 3);
        assertFault(walk(ctx().hd(true).build(), VA, WRITE_PRIV), Fault.PERMISSION, 3); // HD needs HA
        assertThat(f.get(slot(L3, 3, VA))).isEqualTo(page(OA, AF | AP_EL0 | AP_RO | DBM));
    }

    @Test
    void aReadOnlyTableAboveAWritableCleanPageWins() {
        chain(VA, AF | AP_EL0 | AP_RO | DBM);
        f.put(slot(L1, 1, VA), table(L2) | AP_TABLE_RO);
        assertFault(walk(ctx().ha(true).hd(true).build(), VA, WRITE_PRIV), Fault.PERMISSION, 3);
        assertThat(f.get(slot(L3, 3, VA)) & AP_RO).isNotZero();
    }

    // ---------------------------------------------------------------- leaf permissions

    /** The accesses a leaf allows, as "P:rwx U:rwx" with '-' for each fault (on a fresh chain). */
    String allowed(Stage1Context c, long leafAttrs) {
        chain(VA, leafAttrs);
        return accessString(c);
    }

    /** The accesses VA allows in the tables as they are, as "P:rwx U:rwx"; each fault must be F_PERMISSION. */
    String accessString(Stage1Context c) {
        StringBuilder b = new StringBuilder("P:");
        int[] accesses = {READ_PRIV, WRITE_PRIV, FETCH_PRIV, READ_USER, WRITE_USER, FETCH_USER};
        String letters = "rwxrwx";
        for (int i = 0; i < accesses.length; i++) {
            if (i == 3) {
                b.append(" U:");
            }
            WalkResult out = walk(c, VA, accesses[i]);
            if (!out.isOk()) {
                assertFault(out, Fault.PERMISSION, 3);
                assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_IN);
            }
            b.append(out.isOk() ? letters.charAt(i) : '-');
        }
        return b.toString();
    }

    String allowed(long leafAttrs) {
        return allowed(ctx().build(), leafAttrs);
    }

    @Test
    void apSelectsReadWriteAndUnprivilegedAccess() {
        assertThat(allowed(AF)).as("AP=00").isEqualTo("P:rwx U:--x");
        assertThat(allowed(AF | AP_EL0)).as("AP=01").isEqualTo("P:rw- U:rwx");
        assertThat(allowed(AF | AP_RO)).as("AP=10").isEqualTo("P:r-x U:--x");
        assertThat(allowed(AF | AP_RO | AP_EL0)).as("AP=11").isEqualTo("P:r-x U:r-x");
    }

    @Test
    void pxnAndUxnForbidInstructionFetches() {
        assertThat(allowed(AF | AP_RO | AP_EL0 | PXN)).isEqualTo("P:r-- U:r-x");
        assertThat(allowed(AF | AP_RO | AP_EL0 | UXN)).isEqualTo("P:r-x U:r--");
        assertThat(allowed(AF | AP_RO | AP_EL0 | PXN | UXN)).isEqualTo("P:r-- U:r--");
    }

    @Test
    void wxnMakesWritableMemoryExecuteNever() {
        Stage1Context wxn = ctx().wxn(true).build();
        assertThat(allowed(wxn, AF)).as("EL0 cannot write it, so EL0 may execute it").isEqualTo("P:rw- U:--x");
        assertThat(allowed(wxn, AF | AP_EL0)).isEqualTo("P:rw- U:rw-");
        assertThat(allowed(wxn, AF | AP_RO | AP_EL0)).isEqualTo("P:r-x U:r-x");
    }

    @Test
    void anInstructionMarkedWriteIsCheckedAsADataWrite() {
        chain(VA, AF | AP_EL0 | UXN | PXN);
        assertThat(walk(VA, WRITE_USER | Access.INSTRUCTION).isOk()).isTrue();
        chain(VA, AF | AP_EL0 | AP_RO);
        WalkResult out = walk(VA, WRITE_USER | Access.INSTRUCTION);
        assertFault(out, Fault.PERMISSION, 3);
        assertThat(out.ind()).isTrue();
        assertThat(out.rnw()).isFalse();
    }

    @Test
    void tableAttributesLimitEverythingBelow() {
        long leaf = AF | AP_EL0; // P:rw- U:rwx on its own
        f.put(slot(L1, 1, VA), table(L2) | AP_TABLE_RO);
        assertThat(allowedBelow(leaf)).as("APTable[1]").isEqualTo("P:r-x U:r-x");
        f.put(slot(L1, 1, VA), table(L2) | AP_TABLE_NO_EL0);
        assertThat(allowedBelow(leaf)).as("APTable[0]: no EL0, so no implicit PXN").isEqualTo("P:rwx U:--x");
        f.put(slot(L0, 0, VA), table(L1) | PXN_TABLE);
        f.put(slot(L1, 1, VA), table(L2));
        assertThat(allowedBelow(AF | AP_RO | AP_EL0)).as("PXNTable").isEqualTo("P:r-- U:r-x");
        f.put(slot(L0, 0, VA), table(L1));
        f.put(slot(L2, 2, VA), table(L3) | UXN_TABLE);
        assertThat(allowedBelow(AF | AP_RO | AP_EL0)).as("UXNTable").isEqualTo("P:r-x U:r--");
    }

    @Test
    void hadIgnoresTableAttributes() {
        f.put(slot(L0, 0, VA), table(L1) | PXN_TABLE | UXN_TABLE);
        f.put(slot(L1, 1, VA), table(L2) | AP_TABLE_RO | AP_TABLE_NO_EL0);
        f.put(slot(L2, 2, VA), table(L3));
        f.put(slot(L3, 3, VA), page(OA, AF | AP_EL0));
        assertThat(allowedBelow(ctx().build(), AF | AP_EL0)).isEqualTo("P:r-- U:---");
        Stage1Context had = ctx().ttb0(TableHalf.of(16, 12, L0).withHierarchicalDisabled(true)).build();
        assertThat(allowedBelow(had, AF | AP_EL0)).isEqualTo("P:rw- U:rwx");
    }

    /** As {@link #allowed} but keeping the table descriptors the test wrote. */
    String allowedBelow(long leafAttrs) {
        return allowedBelow(ctx().build(), leafAttrs);
    }

    String allowedBelow(Stage1Context c, long leafAttrs) {
        for (int level = 0; level < 3; level++) {
            long table = new long[] {L0, L1, L2}[level];
            long next = new long[] {L1, L2, L3}[level];
            long old = f.get(slot(table, level, VA));
            if ((old & 3) != 3) {
                f.put(slot(table, level, VA), table(next));
            }
        }
        f.put(slot(L3, 3, VA), page(OA, leafAttrs));
        return accessString(c);
    }

    // ---------------------------------------------------------------- external aborts

    @Test
    void aTableOutsideRamIsAWalkExternalAbortWithItsFetchAddress() {
        chain(VA, RW_ANY);
        f.put(slot(L1, 1, VA), table(0x1000)); // below RAM
        WalkResult out = walk(VA, READ_PRIV);
        assertFault(out, Fault.WALK_EABT, 2);
        assertThat(out.fetchAddress()).isEqualTo(slot(0x1000, 2, VA));
        assertThat(out.faultClass()).isEqualTo(WalkResult.CLASS_TT);
        assertThat(out.ttRnW()).isTrue();
        assertThat(out.reads()).isEqualTo(2);
        assertThat(out.fault().eventType()).isEqualTo(0x0B);
    }

    @Test
    void aTtbOutsideRamAbortsTheFirstRead() {
        Stage1Context c = Stage1Context.builder().ttb0(TableHalf.of(16, 12, 0x2000)).oasBits(48).build();
        WalkResult out = walk(c, VA, READ_PRIV);
        assertFault(out, Fault.WALK_EABT, 0);
        assertThat(out.fetchAddress()).isEqualTo(slot(0x2000, 0, VA));
        assertThat(out.reads()).isZero();
    }

    @Test
    void anAbortedHardwareUpdateIsAWalkExternalAbortOnAWrite() {
        chain(VA, AP_EL0);
        DescriptorReader noWrites = new DescriptorReader() {
            @Override
            public long read(long pa, int stage, int level) throws MemoryAccessException {
                return f.ram.read64(pa);
            }

            @Override
            public long compareAndExchange(long pa, long expected, long update, int stage, int level)
                    throws MemoryAccessException {
                throw new MemoryAccessException(pa, 8, MemoryAccessException.Reason.INJECTED);
            }
        };
        WalkResult out = new TableWalker(noWrites).translateStage1(ctx().ha(true).build(), VA, READ_PRIV,
                new WalkResult());
        assertFault(out, Fault.WALK_EABT, 3);
        assertThat(out.fetchAddress()).isEqualTo(slot(L3, 3, VA));
        assertThat(out.ttRnW()).isFalse();
    }

    // ---------------------------------------------------------------- racing updates

    /** Rewrites the descriptor with the next value of {@code racers} just before each compare-and-swap. */
    DescriptorReader racing(long... racers) {
        DescriptorReader direct = DescriptorReader.direct(f.ram);
        return new DescriptorReader() {
            int next;

            @Override
            public long read(long pa, int stage, int level) throws MemoryAccessException {
                return direct.read(pa, stage, level);
            }

            @Override
            public long compareAndExchange(long pa, long expected, long update, int stage, int level)
                    throws MemoryAccessException {
                if (next < racers.length) {
                    f.ram.write64(pa, racers[next++]);
                } else if (racers.length == 0) {
                    f.ram.write64(pa, f.ram.read64(pa) ^ (1L << 56)); // forever: toggle a software bit
                }
                return direct.compareAndExchange(pa, expected, update, stage, level);
            }
        };
    }

    @Test
    void aDescriptorInvalidatedDuringTheUpdateIsNotUpdated() {
        chain(VA, AP_EL0);
        WalkResult out = new TableWalker(racing(0L)).translateStage1(ctx().ha(true).build(), VA, READ_PRIV,
                new WalkResult());
        assertFault(out, Fault.TRANSLATION, 3);
        assertThat(f.get(slot(L3, 3, VA))).isZero();
        assertThat(out.updates()).isEqualTo(1);
    }

    @Test
    void aDescriptorChangedDuringTheUpdateIsReevaluatedAndUpdated() {
        chain(VA, AP_EL0);
        long moved = page(0xC_0000_0000L, AP_EL0);
        WalkResult out = new TableWalker(racing(moved)).translateStage1(ctx().ha(true).build(), VA, READ_PRIV,
                new WalkResult());
        assertThat(out.outputAddress()).as("%s", out).isEqualTo(0xC_0000_0000L | (VA & 0xFFF));
        assertThat(f.get(slot(L3, 3, VA))).isEqualTo(moved | AF);
        assertThat(out.updates()).isEqualTo(2);
        assertThat(out.reads()).as("the witness is used, not re-read").isEqualTo(4);
        // Someone else set AF meanwhile: nothing left to update.
        chain(VA, AP_EL0);
        out = new TableWalker(racing(page(OA, AP_EL0 | AF))).translateStage1(ctx().ha(true).build(), VA,
                READ_PRIV, new WalkResult());
        assertThat(out.isOk()).isTrue();
        assertThat(out.updates()).isEqualTo(1);
    }

    @Test
    void anUpdateThatKeepsLosingGivesUp() {
        chain(VA, AP_EL0);
        WalkResult out = new TableWalker(racing()).translateStage1(ctx().ha(true).build(), VA, READ_PRIV,
                new WalkResult());
        assertFault(out, Fault.ACCESS, 3);
        assertThat(out.updates()).isEqualTo(TableWalker.MAX_UPDATE_ATTEMPTS);
        chain(VA, AF | AP_EL0 | AP_RO | DBM);
        out = new TableWalker(racing()).translateStage1(ctx().ha(true).hd(true).build(), VA, WRITE_PRIV,
                new WalkResult());
        assertFault(out, Fault.PERMISSION, 3);
    }

    // ---------------------------------------------------------------- configuration

    @Test
    void anInvalidContextIsABadConfigurationWithoutAnyRead() {
        Stage1Context bad = Stage1Context.builder().ttb0(TableHalf.of(12, 12, L0)).build();
        WalkResult out = walk(bad, VA, READ_PRIV);
        assertThat(out.outcome()).isEqualTo(Outcome.BAD_CONFIG);
        assertThat(out.badConfigStage()).isEqualTo(1);
        assertThat(out.badConfigReason()).contains("T0SZ 12");
        assertThat(out.reads()).isZero();
        assertThat(out.fault()).isNull();
    }
}
