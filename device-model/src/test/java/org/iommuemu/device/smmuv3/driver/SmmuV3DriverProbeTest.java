package org.iommuemu.device.smmuv3.driver;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverException;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.driver.smmuv3.SmmuV3Features;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.junit.jupiter.api.Test;

/** Probe reads the real device's ID registers into features, and refuses hardware it cannot drive. */
class SmmuV3DriverProbeTest {
    private static SmmuV3Features probe(SmmuV3Config config) {
        return SmmuV3Driver.probe(new DriverRig(config).host, SmmuV3DriverOptions.defaults()).features();
    }

    @Test
    void defaultSmmuAdvertisesEverythingLinuxUses() {
        SmmuV3Features f = probe(SmmuV3Config.defaults());
        assertThat(f.stage1()).isTrue();
        assertThat(f.stage2()).isTrue();
        assertThat(f.nested()).isTrue();
        assertThat(f.aarch64Tables()).isTrue();
        assertThat(f.coherent()).isTrue();
        assertThat(f.twoLevelStreamTable()).isTrue();
        assertThat(f.twoLevelCd()).isTrue();
        assertThat(f.rangeInvalidation()).isTrue();
        assertThat(f.msi()).isTrue();
        assertThat(f.sev()).isTrue();
        assertThat(f.msiPolling()).isTrue();
        assertThat(f.hyp()).isFalse();
        assertThat(f.ats()).isFalse();
        assertThat(f.asidBits()).isEqualTo(16);
        assertThat(f.vmidBits()).isEqualTo(16);
        assertThat(f.httu()).isEqualTo(SmmuRegs.HTTU_ACCESS_DIRTY);
        assertThat(f.hardwareDirty()).isTrue();
        assertThat(f.oasBits()).isEqualTo(48);
        assertThat(f.granule4k() && f.granule16k() && f.granule64k()).isTrue();
        assertThat(f.pageSizes()).isEqualTo(1L << 12 | 1L << 21 | 1L << 30 | 1L << 14 | 1L << 25 | 1L << 16 | 1L << 29);
        assertThat(f.sidBits()).isEqualTo(16);
        assertThat(f.ssidBits()).isEqualTo(20);
        assertThat(f.cmdqLog2()).isEqualTo(19);
        assertThat(f.eventqLog2()).isEqualTo(19);
        assertThat(f.refusal()).isNull();
        assertThat(f.names()).contains("S1P", "S2P", "NESTED", "MSI", "RIL", "ST_2LVL", "OAS48", "SIDSIZE16");
    }

    @Test
    void featuresSwitchedOffAreSeenOff() {
        SmmuV3Features f = probe(SmmuV3Config.builder().stage2(false).vmid16(false).asid16(false).msi(false)
                .sev(false).rangeInvalidation(false).twoLevelStreamTable(false).twoLevelCd(false).httuAccess(false)
                .httuDirty(false).granule16k(false).granule64k(false).oasBits(40).sidBits(6).ssidBits(0)
                .cmdqLog2(7).eventqLog2(5).build());
        assertThat(f.stage1()).isTrue();
        assertThat(f.stage2()).isFalse();
        assertThat(f.nested()).isFalse();
        assertThat(f.msi() || f.sev() || f.msiPolling() || f.rangeInvalidation()).isFalse();
        assertThat(f.twoLevelStreamTable() || f.twoLevelCd()).isFalse();
        assertThat(f.asidBits()).isEqualTo(8);
        assertThat(f.vmidBits()).isEqualTo(8);
        assertThat(f.httu()).isZero();
        assertThat(f.oasBits()).isEqualTo(40);
        assertThat(f.pageSizes()).isEqualTo(1L << 12 | 1L << 21 | 1L << 30);
        assertThat(f.sidBits()).isEqualTo(6);
        assertThat(f.ssidBits()).isZero();
        assertThat(f.cmdqLog2()).isEqualTo(7);
        assertThat(f.eventqLog2()).isEqualTo(5);
    }

    @Test
    void stage2OnlySmmu() {
        SmmuV3Features f = probe(SmmuV3Config.builder().stage1(false).asid16(false).ssidBits(0).twoLevelCd(false)
                .httuAccess(false).httuDirty(false).granule4k(false).granule16k(false).oasBits(52).build());
        assertThat(f.stage1()).isFalse();
        assertThat(f.stage2()).isTrue();
        assertThat(f.nested()).isFalse();
        assertThat(f.oasBits()).isEqualTo(52);
        assertThat(f.pageSizes()).as("64K granule with 52-bit OAS adds 4 TB blocks")
                .isEqualTo(1L << 16 | 1L << 29 | 1L << 42);
        assertThat(f.httu()).isEqualTo(SmmuRegs.HTTU_NONE);
    }

    @Test
    void probeOnlyReadsIdRegisters() {
        DriverRig rig = new DriverRig(SmmuV3Config.defaults());
        List<Long> reads = new ArrayList<>();
        List<Long> writes = new ArrayList<>();
        SmmuV3Driver.probe(new ForwardingHost(rig.host) {
            @Override
            public long mmioRead(long offset, int width) {
                reads.add(offset);
                return super.mmioRead(offset, width);
            }

            @Override
            public void mmioWrite(long offset, int width, long value) {
                writes.add(offset);
                super.mmioWrite(offset, width, value);
            }
        }, SmmuV3DriverOptions.defaults());
        assertThat(reads).containsExactly(SmmuRegs.IDR0, SmmuRegs.IDR1, SmmuRegs.IDR3, SmmuRegs.IDR5);
        assertThat(writes).isEmpty();
    }

    /** The real device's ID registers with some bits forced. */
    private static ForwardingHost patchedIdRegisters(long idr0Clear, long idr0Set, long idr1Set) {
        DriverRig rig = new DriverRig(SmmuV3Config.defaults());
        return new ForwardingHost(rig.host) {
            @Override
            public long mmioRead(long offset, int width) {
                long v = super.mmioRead(offset, width);
                if (offset == SmmuRegs.IDR0) {
                    return v & ~idr0Clear | idr0Set;
                }
                if (offset == SmmuRegs.IDR1) {
                    return v | idr1Set;
                }
                return v;
            }
        };
    }

    @Test
    void refusesWithoutAarch64Tables() {
        long ttf = Bits.mask(SmmuRegs.IDR0_TTF, SmmuRegs.IDR0_TTF_WIDTH);
        ForwardingHost host = patchedIdRegisters(ttf, (long) SmmuRegs.TTF_AARCH32 << SmmuRegs.IDR0_TTF, 0);
        assertThatThrownBy(() -> SmmuV3Driver.probe(host, SmmuV3DriverOptions.defaults()))
                .isInstanceOfSatisfying(SmmuV3DriverException.class,
                        e -> assertThat(e.kind()).isEqualTo(SmmuV3DriverException.Kind.UNSUPPORTED_HARDWARE))
                .hasMessageContaining("no AArch64 translation table format (IDR0.TTF=1)");
    }

    @Test
    void refusesWithoutAnyStageAndSaysEveryReason() {
        long stages = 1L << SmmuRegs.IDR0_S1P | 1L << SmmuRegs.IDR0_S2P;
        ForwardingHost host = patchedIdRegisters(stages, 0, 1L << SmmuRegs.IDR1_TABLES_PRESET);
        assertThatThrownBy(() -> SmmuV3Driver.probe(host, SmmuV3DriverOptions.defaults()))
                .isInstanceOfSatisfying(SmmuV3DriverException.class,
                        e -> assertThat(e.kind()).isEqualTo(SmmuV3DriverException.Kind.UNSUPPORTED_HARDWARE))
                .hasMessageContaining("no translation stage (IDR0.S1P=0 and IDR0.S2P=0)")
                .hasMessageContaining("embedded implementation");
    }

    @Test
    void refusesBigEndianOnlyTablesAndAOneEntryCommandQueue() {
        long endian = Bits.mask(SmmuRegs.IDR0_TTENDIAN, SmmuRegs.IDR0_TTENDIAN_WIDTH);
        ForwardingHost host = patchedIdRegisters(endian, (long) SmmuRegs.TTENDIAN_BIG << SmmuRegs.IDR0_TTENDIAN, 0);
        assertThatThrownBy(() -> SmmuV3Driver.probe(host, SmmuV3DriverOptions.defaults()))
                .hasMessageContaining("no little-endian translation tables (IDR0.TTENDIAN=3)");
        DriverRig tiny = new DriverRig(SmmuV3Config.builder().cmdqLog2(0).build());
        assertThatThrownBy(() -> SmmuV3Driver.probe(tiny.host, SmmuV3DriverOptions.defaults()))
                .hasMessageContaining("command queue of one entry (IDR1.CMDQS=0)");
    }
}
