package org.iommuemu.device.vtd;

import org.iommuemu.core.vtd.VtdRegs;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.mockito.Mockito.mock;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.Mockito.verify;
import static org.mockito.Mockito.verifyNoInteractions;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.InterruptSink;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.regs.AllocationMeter;
import org.iommuemu.device.regs.Register;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/**
 * Register-by-register tests of the VT-d shell. Field positions are written out from the tables of
 * spec/VTD.md rather than taken from {@link VtdRegisters}, so the two check each other.
 */
class VtdDeviceTest {
    private static final long TE = 1L << 31;
    private static final long SRTP = 1L << 30;
    private static final long SFL = 1L << 29;
    private static final long EAFL = 1L << 28;
    private static final long WBF = 1L << 27;
    private static final long QIE = 1L << 26;
    private static final long IRE = 1L << 25;
    private static final long SIRTP = 1L << 24;
    private static final long CFI = 1L << 23;
    /** GSTS bits that mirror persistent enables (software keeps them when issuing a command). */
    private static final long ONE_SHOT_STATUS = SRTP | SFL | WBF | SIRTP;

    private final PhysicalMemory memory = mock(PhysicalMemory.class);
    private final InterruptSink interrupts = mock(InterruptSink.class);
    private final VtdDevice vtd = device(VtdConfig.defaults());

    private VtdDevice device(VtdConfig config) {
        return new VtdDevice("dmar0", config, memory, interrupts);
    }

    private static long field(long value, int hi, int lo) {
        return Bits.extract(value, lo, hi - lo + 1);
    }

    /** A legacy-mode unit laid out like QEMU's (FRO 0x220, one record, IVA at 0xF0). */
    private static VtdConfig reduced() {
        return VtdConfig.builder()
                .version(1, 0).nd(2).sagaw(0b0100).mgaw(38).fro(0x22).nfr(0).sllps(0).psi(false).mamv(0)
                .dwd(false).drd(false).fl1gp(false).qi(false).pt(false).sc(false).iro(0x0F).mhmv(0)
                .nest(false).pasid(false).pss(0).smts(false).slads(false).slts(false).flts(false).rps(false)
                .build();
    }

    /** Defaults plus interrupt remapping (x2APIC), advanced fault logging, device TLB and page requests. */
    private static VtdConfig everything() {
        return VtdConfig.builder().ir(true).eim(true).afl(true).dt(true).prs(true).cm(true).pi(true)
                .coherent(true).fl5lp(true).sagaw(0b1110).build();
    }

    /** What a driver does: keep the persistent enables from GSTS and add one command. */
    private static void command(VtdDevice d, long cmd) {
        long status = d.mmioRead(0x1C, 4);
        d.mmioWrite(0x18, 4, (status & ~ONE_SHOT_STATUS) | cmd);
    }

    @Nested
    class CapabilityRegisters {
        @Test
        void versionDefaults() {
            long ver = vtd.mmioRead(0x00, 4);
            assertThat(field(ver, 7, 4)).as("Max").isEqualTo(3);
            assertThat(field(ver, 3, 0)).as("Min").isZero();
            assertThat(ver).isEqualTo(0x30);
            assertThat(device(reduced()).mmioRead(0x00, 4)).isEqualTo(0x10);
        }

        @Test
        void capDefaultsFieldByField() {
            long cap = vtd.mmioRead(0x08, 8);
            assertThat(field(cap, 2, 0)).as("ND").isEqualTo(6);
            assertThat(field(cap, 3, 3)).as("AFL").isZero();
            assertThat(field(cap, 4, 4)).as("RWBF").isZero();
            assertThat(field(cap, 5, 5)).as("PLMR").isZero();
            assertThat(field(cap, 6, 6)).as("PHMR").isZero();
            assertThat(field(cap, 7, 7)).as("CM").isZero();
            assertThat(field(cap, 12, 8)).as("SAGAW 39+48").isEqualTo(0b00110);
            assertThat(field(cap, 21, 16)).as("MGAW").isEqualTo(47);
            assertThat(field(cap, 22, 22)).as("ZLR").isZero();
            assertThat(field(cap, 33, 24)).as("FRO").isEqualTo(0x40);
            assertThat(field(cap, 37, 34)).as("SLLPS 2M+1G").isEqualTo(0b0011);
            assertThat(field(cap, 39, 39)).as("PSI").isEqualTo(1);
            assertThat(field(cap, 47, 40)).as("NFR").isEqualTo(7);
            assertThat(field(cap, 53, 48)).as("MAMV").isEqualTo(18);
            assertThat(field(cap, 54, 54)).as("DWD").isEqualTo(1);
            assertThat(field(cap, 55, 55)).as("DRD").isEqualTo(1);
            assertThat(field(cap, 56, 56)).as("FL1GP").isEqualTo(1);
            assertThat(field(cap, 59, 59)).as("PI").isZero();
            assertThat(field(cap, 60, 60)).as("FL5LP").isZero();
            assertThat(field(cap, 63, 61)).as("ECMDS/ESIRTPS/ESRTPS").isZero();
            assertThat(cap).isEqualTo(0x01D2_078C_402F_0606L);
            assertThat(vtd.mmioRead(0x08, 4)).isEqualTo(0x402F_0606L);
            assertThat(vtd.mmioRead(0x0C, 4)).isEqualTo(0x01D2_078CL);
        }

        @Test
        void ecapDefaultsFieldByField() {
            long ecap = vtd.mmioRead(0x10, 8);
            assertThat(field(ecap, 0, 0)).as("C").isZero();
            assertThat(field(ecap, 1, 1)).as("QI").isEqualTo(1);
            assertThat(field(ecap, 2, 2)).as("DT").isZero();
            assertThat(field(ecap, 3, 3)).as("IR").isZero();
            assertThat(field(ecap, 4, 4)).as("EIM").isZero();
            assertThat(field(ecap, 6, 6)).as("PT").isEqualTo(1);
            assertThat(field(ecap, 7, 7)).as("SC").isEqualTo(1);
            assertThat(field(ecap, 17, 8)).as("IRO").isEqualTo(0x50);
            assertThat(field(ecap, 23, 20)).as("MHMV").isEqualTo(0xF);
            assertThat(field(ecap, 25, 25)).as("MTS").isZero();
            assertThat(field(ecap, 26, 26)).as("NEST").isEqualTo(1);
            assertThat(field(ecap, 29, 29)).as("PRS").isZero();
            assertThat(field(ecap, 31, 30)).as("ERS/SRS").isZero();
            assertThat(field(ecap, 34, 33)).as("NWFS/EAFS").isZero();
            assertThat(field(ecap, 39, 35)).as("PSS").isEqualTo(19);
            assertThat(field(ecap, 40, 40)).as("PASID").isEqualTo(1);
            assertThat(field(ecap, 42, 41)).as("DIT/PDS").isZero();
            assertThat(field(ecap, 43, 43)).as("SMTS").isEqualTo(1);
            assertThat(field(ecap, 44, 44)).as("VCS").isZero();
            assertThat(field(ecap, 45, 45)).as("SLADS").isEqualTo(1);
            assertThat(field(ecap, 46, 46)).as("SLTS").isEqualTo(1);
            assertThat(field(ecap, 47, 47)).as("FLTS").isEqualTo(1);
            assertThat(field(ecap, 48, 48)).as("SMPWCS").isZero();
            assertThat(field(ecap, 49, 49)).as("RPS").isEqualTo(1);
            assertThat(field(ecap, 51, 51)).as("PMS").isZero();
            assertThat(ecap).isEqualTo(0x0002_E998_04F0_50C2L);
        }

        @Test
        void reducedConfig() {
            VtdDevice small = device(reduced());
            long cap = small.mmioRead(0x08, 8);
            assertThat(field(cap, 2, 0)).as("ND").isEqualTo(2);
            assertThat(field(cap, 12, 8)).as("SAGAW 48 only").isEqualTo(0b00100);
            assertThat(field(cap, 21, 16)).as("MGAW").isEqualTo(38);
            assertThat(field(cap, 33, 24)).as("FRO").isEqualTo(0x22);
            assertThat(field(cap, 37, 34)).as("SLLPS").isZero();
            assertThat(field(cap, 39, 39)).as("PSI").isZero();
            assertThat(field(cap, 47, 40)).as("NFR").isZero();
            assertThat(field(cap, 55, 48)).as("MAMV, DWD, DRD").isZero();
            assertThat(cap).isEqualTo(0x2226_0402L);
            long ecap = small.mmioRead(0x10, 8);
            assertThat(field(ecap, 17, 8)).as("IRO").isEqualTo(0x0F);
            assertThat(ecap).as("nothing else").isEqualTo(0xF00L);
        }

        @Test
        void everythingConfig() {
            VtdDevice big = device(everything());
            long cap = big.mmioRead(0x08, 8);
            assertThat(field(cap, 3, 3)).as("AFL").isEqualTo(1);
            assertThat(field(cap, 7, 7)).as("CM").isEqualTo(1);
            assertThat(field(cap, 12, 8)).as("SAGAW 39+48+57").isEqualTo(0b01110);
            assertThat(field(cap, 59, 59)).as("PI").isEqualTo(1);
            assertThat(field(cap, 60, 60)).as("FL5LP").isEqualTo(1);
            long ecap = big.mmioRead(0x10, 8);
            assertThat(field(ecap, 0, 0)).as("C").isEqualTo(1);
            assertThat(field(ecap, 2, 2)).as("DT").isEqualTo(1);
            assertThat(field(ecap, 3, 3)).as("IR").isEqualTo(1);
            assertThat(field(ecap, 4, 4)).as("EIM").isEqualTo(1);
            assertThat(field(ecap, 29, 29)).as("PRS").isEqualTo(1);
        }

        @Test
        void capabilityRegistersIgnoreWrites() {
            vtd.mmioWrite(0x00, 4, 0xFF);
            vtd.mmioWrite(0x08, 8, 0);
            vtd.mmioWrite(0x10, 4, 0);
            vtd.mmioWrite(0x14, 4, 0);
            assertThat(vtd.mmioRead(0x00, 4)).isEqualTo(0x30);
            assertThat(vtd.mmioRead(0x08, 8)).isEqualTo(0x01D2_078C_402F_0606L);
            assertThat(vtd.mmioRead(0x10, 8)).isEqualTo(0x0002_E998_04F0_50C2L);
        }
    }

    @Nested
    class ResetValues {
        @Test
        void everyDeclaredRegister() {
            Map<String, Long> offsets = new LinkedHashMap<>();
            String[] names = {"VER", "CAP", "ECAP", "GCMD", "GSTS", "RTADDR", "CCMD", "FSTS", "FECTL", "FEDATA",
                "FEADDR", "FEUADDR", "AFLOG", "PMEN", "PLMBASE", "PLMLIMIT", "PHMBASE", "PHMLIMIT", "IQH", "IQT",
                "IQA", "ICS", "IECTL", "IEDATA", "IEADDR", "IEUADDR", "IQERCD", "IRTA", "PQH", "PQT", "PQA", "PRS",
                "PECTL", "PEDATA", "PEADDR", "PEUADDR", "IVA", "IOTLB"};
            long[] offs = {0x00, 0x08, 0x10, 0x18, 0x1C, 0x20, 0x28, 0x34, 0x38, 0x3C, 0x40, 0x44, 0x58, 0x64,
                0x68, 0x6C, 0x70, 0x78, 0x80, 0x88, 0x90, 0x9C, 0xA0, 0xA4, 0xA8, 0xAC, 0xB0, 0xB8, 0xC0, 0xC8,
                0xD0, 0xDC, 0xE0, 0xE4, 0xE8, 0xEC, 0x500, 0x508};
            for (int i = 0; i < names.length; i++) {
                offsets.put(names[i], offs[i]);
            }
            for (int n = 0; n < 8; n++) {
                offsets.put("FRCD" + n + "_LO", 0x400L + 16 * n);
                offsets.put("FRCD" + n + "_HI", 0x408L + 16 * n);
            }
            Map<String, Long> expected = new HashMap<>();
            expected.put("VER", 0x30L);
            expected.put("CAP", 0x01D2_078C_402F_0606L);
            expected.put("ECAP", 0x0002_E998_04F0_50C2L);
            expected.put("FECTL", 0x8000_0000L);
            expected.put("IECTL", 0x8000_0000L);

            assertThat(vtd.registerFile().registers()).extracting(Register::name)
                    .containsExactlyInAnyOrderElementsOf(offsets.keySet());
            for (Register r : vtd.registerFile().registers()) {
                vtd.mmioWrite(r.offset(), r.width() / 8, 0x7FFF_FFFF_FFFF_FFFFL);
                r.set(-1L);
            }
            vtd.reset();
            for (Register r : vtd.registerFile().registers()) {
                assertThat(r.offset()).as(r.name()).isEqualTo(offsets.get(r.name()));
                long want = expected.getOrDefault(r.name(), 0L);
                assertThat(vtd.mmioRead(r.offset(), r.width() / 8)).as(r.name()).isEqualTo(want);
                assertThat(r.value()).as(r.name()).isEqualTo(want);
            }
            assertThat(vtd.rootTableAddress()).isZero();
        }

        @Test
        void eventControlResetFollowsSupport() {
            VtdDevice small = device(reduced());
            assertThat(small.mmioRead(0x38, 4)).as("FECTL").isEqualTo(0x8000_0000L);
            assertThat(small.mmioRead(0xA0, 4)).as("IECTL without QI").isZero();
            assertThat(small.mmioRead(0xE0, 4)).as("PECTL without PRS").isZero();
            VtdDevice big = device(everything());
            assertThat(big.mmioRead(0xE0, 4)).as("PECTL with PRS").isEqualTo(0x8000_0000L);
        }
    }

    @Nested
    class GlobalCommand {
        @Test
        void translationEnable() {
            command(vtd, TE);
            assertThat(vtd.mmioRead(0x1C, 4)).isEqualTo(TE);
            assertThat(vtd.mmioRead(0x18, 4)).as("GCMD is write-only").isZero();
            vtd.mmioWrite(0x18, 4, 0);
            assertThat(vtd.mmioRead(0x1C, 4)).isZero();
        }

        @Test
        void setRootTablePointer() {
            vtd.mmioWrite(0x20, 8, 0x1234_5000L | (1L << 10) | 0x3FF);
            assertThat(vtd.mmioRead(0x20, 8)).as("bits 9:0 reserved").isEqualTo(0x1234_5400L);
            assertThat(vtd.mmioRead(0x1C, 4) & SRTP).as("RTPS before SRTP").isZero();
            command(vtd, SRTP);
            assertThat(vtd.mmioRead(0x1C, 4)).isEqualTo(SRTP);
            assertThat(vtd.rootTableAddress()).isEqualTo(0x1234_5000L);
            assertThat(vtd.translationTableMode()).isEqualTo(VtdRegs.TTM_SCALABLE);
            vtd.mmioWrite(0x20, 8, 0xABC_D000L);
            assertThat(vtd.rootTableAddress()).as("latched until the next SRTP").isEqualTo(0x1234_5000L);
            command(vtd, SRTP);
            assertThat(vtd.rootTableAddress()).isEqualTo(0xABC_D000L);
            assertThat(vtd.translationTableMode()).isEqualTo(VtdRegs.TTM_LEGACY);
            assertThat(vtd.mmioRead(0x1C, 4)).as("RTPS stays set").isEqualTo(SRTP);
        }

        @Test
        void rtaddrHalvesAndLegacyOnlyTtm() {
            vtd.mmioWrite(0x24, 4, 0x1);
            vtd.mmioWrite(0x20, 4, 0x7000);
            assertThat(vtd.mmioRead(0x20, 8)).isEqualTo(0x1_0000_7000L);
            VtdDevice small = device(reduced());
            small.mmioWrite(0x20, 8, 0x5000L | (1L << 10));
            assertThat(small.mmioRead(0x20, 8)).as("TTM reserved without SMTS").isEqualTo(0x5000L);
            command(small, SRTP);
            assertThat(small.translationTableMode()).isEqualTo(VtdRegs.TTM_LEGACY);
        }

        @Test
        void queuedInvalidationEnable() {
            command(vtd, QIE);
            assertThat(vtd.mmioRead(0x1C, 4)).isEqualTo(QIE);
            command(vtd, TE);
            assertThat(vtd.mmioRead(0x1C, 4)).as("QIE kept, TE added").isEqualTo(QIE | TE);
            vtd.mmioWrite(0x18, 4, TE);
            assertThat(vtd.mmioRead(0x1C, 4)).as("QIE dropped").isEqualTo(TE);
        }

        @Test
        void writeBufferFlushCompletesAtOnce() {
            command(vtd, TE);
            command(vtd, WBF);
            assertThat(vtd.mmioRead(0x1C, 4)).as("WBFS clear, TES kept").isEqualTo(TE);
        }

        @Test
        void severalCommandsInOneWriteAreAllCarriedOut() {
            vtd.mmioWrite(0x20, 8, 0x9000);
            vtd.mmioWrite(0x18, 4, TE | QIE | SRTP | WBF);
            assertThat(vtd.mmioRead(0x1C, 4)).isEqualTo(TE | QIE | SRTP);
            assertThat(vtd.rootTableAddress()).isEqualTo(0x9000);
        }

        @Test
        void unsupportedCommandsAreIgnored() {
            VtdDevice small = device(reduced());
            small.mmioWrite(0x18, 4, QIE | IRE | SIRTP | CFI | SFL | EAFL);
            assertThat(small.mmioRead(0x1C, 4)).isZero();
            vtd.mmioWrite(0x18, 4, 0x7F_FFFF);
            assertThat(vtd.mmioRead(0x1C, 4)).as("reserved bits").isZero();
        }

        @Test
        void interruptRemappingAndFaultLogCommands() {
            VtdDevice big = device(everything());
            big.mmioWrite(0xB8, 8, -1L);
            assertThat(big.mmioRead(0xB8, 8)).as("IRTA S, EIME, IRTA").isEqualTo(0xFFFF_FFFF_FFFF_F80FL);
            big.mmioWrite(0xB8, 8, 0x7_7000L | (1L << 11) | 0xF);
            command(big, SIRTP);
            assertThat(big.mmioRead(0x1C, 4)).isEqualTo(SIRTP);
            assertThat(big.interruptRemapTable()).isEqualTo(0x7_7000L | (1L << 11) | 0xF);
            command(big, IRE);
            command(big, CFI);
            assertThat(big.mmioRead(0x1C, 4)).isEqualTo(SIRTP | IRE | CFI);
            big.mmioWrite(0x58, 8, 0x8_8000L | (3 << 9));
            command(big, SFL);
            assertThat(big.faultLog()).isEqualTo(0x8_8000L | (3 << 9));
            command(big, EAFL);
            assertThat(big.mmioRead(0x1C, 4)).isEqualTo(SIRTP | IRE | CFI | SFL | EAFL);
        }

        @Test
        void eightByteAccessCoversGcmdAndGsts() {
            vtd.mmioWrite(0x18, 8, (0xFFFF_FFFFL << 32) | TE);
            assertThat(vtd.mmioRead(0x18, 8)).isEqualTo(TE << 32);
        }
    }

    @Nested
    class FaultStatus {
        @Test
        void writeOneToClearBits() {
            Register fsts = vtd.registerFile().register("FSTS");
            long pfo = 1;
            long ppf = 1 << 1;
            long iqe = 1 << 4;
            long ice = 1 << 5;
            long ite = 1 << 6;
            long fri = 3L << 8;
            fsts.set(pfo | ppf | iqe | ice | ite | fri | 0xFFFF_0000L);
            assertThat(vtd.mmioRead(0x34, 4)).as("reserved dropped").isEqualTo(pfo | ppf | iqe | ice | ite | fri);
            vtd.mmioWrite(0x34, 4, iqe);
            assertThat(vtd.mmioRead(0x34, 4)).as("PPF follows the records, none of which holds a fault")
                    .isEqualTo(pfo | ice | ite | fri);
            vtd.mmioWrite(0x34, 4, 0);
            assertThat(vtd.mmioRead(0x34, 4)).isEqualTo(pfo | ice | ite | fri);
            vtd.mmioWrite(0x34, 4, pfo | ppf | ice | ite | fri);
            assertThat(vtd.mmioRead(0x34, 4)).as("FRI is read-only").isEqualTo(fri);
        }

        @Test
        void withoutQueuedInvalidationOnlyFaultBits() {
            VtdDevice small = device(reduced());
            small.registerFile().register("FSTS").set(0xFF);
            assertThat(small.mmioRead(0x34, 4)).as("PFO, PPF").isEqualTo(0x3);
            VtdDevice big = device(everything());
            big.registerFile().register("FSTS").set(0xFF);
            assertThat(big.mmioRead(0x34, 4)).as("PFO..ITE, bit 7 reserved").isEqualTo(0x7F);
            big.mmioWrite(0x34, 4, 0xFF);
            assertThat(big.mmioRead(0x34, 4)).as("W1C bits cleared; PPF follows the (empty) records").isZero();
        }

        @Test
        void faultEventControl() {
            assertThat(vtd.mmioRead(0x38, 4)).as("IM set at reset").isEqualTo(0x8000_0000L);
            vtd.mmioWrite(0x38, 4, 0x4000_0000L);
            assertThat(vtd.mmioRead(0x38, 4)).as("IM cleared, IP read-only").isZero();
            vtd.mmioWrite(0x38, 4, 0xFFFF_FFFFL);
            assertThat(vtd.mmioRead(0x38, 4)).isEqualTo(0x8000_0000L);
            vtd.mmioWrite(0x3C, 4, 0xFFFF_FFFFL);
            vtd.mmioWrite(0x40, 4, 0xFFFF_FFFFL);
            vtd.mmioWrite(0x44, 4, 0xFFFF_FFFFL);
            assertThat(vtd.mmioRead(0x3C, 4)).isEqualTo(0xFFFF_FFFFL);
            assertThat(vtd.mmioRead(0x40, 4)).as("MA[31:2]").isEqualTo(0xFFFF_FFFCL);
            assertThat(vtd.mmioRead(0x44, 4)).isEqualTo(0xFFFF_FFFFL);
        }

        @Test
        void faultRecordFBitIsWriteOneToClearThroughTheHighRegister() {
            Register hi = vtd.registerFile().register("FRCD2_HI");
            Register lo = vtd.registerFile().register("FRCD2_LO");
            long record = (1L << 63) | (1L << 62) | (0x5L << 32) | 0x0102;
            hi.set(record);
            lo.set(0xDEAD_B000L | 0xFFF);
            vtd.registerFile().register("FSTS").set(1 << 1);
            assertThat(vtd.mmioRead(0x420, 8)).as("FI[63:12]").isEqualTo(0xDEAD_B000L);
            assertThat(vtd.mmioRead(0x428, 8)).isEqualTo(record);
            vtd.mmioWrite(0x428, 8, 0x7FFF_FFFF_FFFF_FFFFL);
            assertThat(vtd.mmioRead(0x428, 8)).as("all but F read-only").isEqualTo(record);
            assertThat(vtd.mmioRead(0x34, 4) & 2).as("PPF while F=1").isEqualTo(2);
            vtd.mmioWrite(0x42C, 4, 0x8000_0000L);
            assertThat(vtd.mmioRead(0x428, 8)).isEqualTo(record & ~(1L << 63));
            assertThat(vtd.mmioRead(0x34, 4) & 2).as("PPF follows the F bits").isZero();
            vtd.mmioWrite(0x420, 8, 0);
            assertThat(vtd.mmioRead(0x420, 8)).as("FI read-only").isEqualTo(0xDEAD_B000L);
        }

        @Test
        void ppfStaysWhileAnotherRecordIsPending() {
            vtd.registerFile().register("FRCD0_HI").set(1L << 63);
            vtd.registerFile().register("FRCD7_HI").set(1L << 63);
            vtd.registerFile().register("FSTS").set(1 << 1);
            vtd.mmioWrite(0x408, 8, 1L << 63);
            assertThat(vtd.mmioRead(0x34, 4) & 2).isEqualTo(2);
            vtd.mmioWrite(0x478, 8, 1L << 63);
            assertThat(vtd.mmioRead(0x34, 4) & 2).isZero();
        }
    }

    @Nested
    class OtherRegisters {
        @Test
        void writableMasksMatchQemu() {
            Map<Long, Long> masks = new LinkedHashMap<>();
            masks.put(0x20L, 0xFFFF_FFFF_FFFF_FC00L); // RTADDR
            // CCMD: writable 0xE000_0003_FFFF_FFFF, but ICC starts a device-selective invalidation: ICC clears, CAIG = 3
            masks.put(0x28L, 0x7800_0003_FFFF_FFFFL);
            masks.put(0x88L, 0x7_FFF0L); // IQT
            masks.put(0x90L, 0xFFFF_FFFF_FFFF_F807L); // IQA
            masks.put(0x500L, 0xFFFF_FFFF_FFFF_F07FL); // IVA
            // IOTLB: writable 0xB003_FFFF_0000_0000; IVT starts a page-selective invalidation, which IVA's AM (63,
            // beyond MAMV) turns into a domain-selective one: IVT clears, IAIG = 2
            masks.put(0x508L, 0x3403_FFFF_0000_0000L);
            for (Map.Entry<Long, Long> e : masks.entrySet()) {
                vtd.mmioWrite(e.getKey(), 8, -1L);
                assertThat(vtd.mmioRead(e.getKey(), 8)).as("%x", e.getKey()).isEqualTo(e.getValue());
            }
        }

        @Test
        void invalidationQueueRegisters() {
            Register iqh = vtd.registerFile().register("IQH");
            vtd.mmioWrite(0x80, 8, -1L);
            assertThat(vtd.mmioRead(0x80, 8)).as("IQH read-only").isZero();
            iqh.set(-1L);
            assertThat(vtd.mmioRead(0x80, 8)).isEqualTo(0x7_FFF0L);
            vtd.registerFile().register("ICS").set(1);
            vtd.mmioWrite(0x9C, 4, 0);
            assertThat(vtd.mmioRead(0x9C, 4)).isEqualTo(1);
            vtd.mmioWrite(0x9C, 4, 1);
            assertThat(vtd.mmioRead(0x9C, 4)).as("IWC write-one-to-clear").isZero();
            assertThat(vtd.mmioRead(0xA0, 4)).as("IECTL.IM reset").isEqualTo(0x8000_0000L);
            vtd.mmioWrite(0xB0, 8, -1L);
            assertThat(vtd.mmioRead(0xB0, 8)).as("IQERCD read-only").isZero();
        }

        @Test
        void featureGatedRegistersReadZero() {
            VtdDevice small = device(reduced());
            for (long off : new long[] {0x58, 0x80, 0x88, 0x90, 0xB0, 0xB8, 0xC0, 0xC8, 0xD0}) {
                small.mmioWrite(off, 8, -1L);
                assertThat(small.mmioRead(off, 8)).as("%x", off).isZero();
            }
            for (long off : new long[] {0x64, 0x68, 0x6C, 0x70, 0x78, 0x9C, 0xA0, 0xA4, 0xDC, 0xE0, 0xEC}) {
                small.mmioWrite(off, 4, 0xFFFF_FFFFL);
                assertThat(small.mmioRead(off, 4)).as("%x", off).isZero();
            }
            small.mmioWrite(0xF8, 8, -1L);
            assertThat(small.mmioRead(0xF8, 8)).as("IOTLB without DWD/DRD; without PSI a page-selective request is done "
                    + "domain-selective (IAIG 2) and IVT clears").isEqualTo(0x3400_FFFF_0000_0000L);
        }

        @Test
        void pageRequestRegisters() {
            VtdDevice big = device(everything());
            big.mmioWrite(0xC0, 8, -1L);
            assertThat(big.mmioRead(0xC0, 8)).as("PQH").isEqualTo(0x7_FFE0L);
            big.mmioWrite(0xC8, 8, -1L);
            assertThat(big.mmioRead(0xC8, 8)).as("PQT read-only").isZero();
            big.mmioWrite(0xD0, 8, -1L);
            assertThat(big.mmioRead(0xD0, 8)).isEqualTo(0xFFFF_FFFF_FFFF_F007L);
            big.registerFile().register("PRS").set(3);
            big.mmioWrite(0xDC, 4, 2);
            assertThat(big.mmioRead(0xDC, 4)).isEqualTo(1);
        }

        @Test
        void qemuLikeLayout() {
            VtdDevice small = device(reduced());
            assertThat(small.registerFile().register("IVA").offset()).isEqualTo(0xF0);
            assertThat(small.registerFile().register("IOTLB").offset()).isEqualTo(0xF8);
            assertThat(small.registerFile().register("FRCD0_LO").offset()).isEqualTo(0x220);
            assertThat(small.registerFile().register("FRCD0_HI").offset()).isEqualTo(0x228);
        }

        @Test
        void unknownOffsetsReadZero() {
            for (long off : new long[] {0x04, 0x30, 0x100, 0x300, 0x600, 0xE00, 0xFF8}) {
                vtd.mmioWrite(off, 4, 0xFFFF_FFFFL);
                assertThat(vtd.mmioRead(off, 4)).as("%x", off).isZero();
            }
        }
    }

    @Nested
    class Dma {
        private final Translation out = new Translation();

        @Test
        void untranslatedWhileTranslationIsDisabled() {
            assertThat(vtd.translate(0x0100, -1, 0xFEDC_B000L, Access.WRITE, out)).isSameAs(out);
            assertThat(out.outcome()).isEqualTo(Translation.Outcome.OK);
            assertThat(out.physicalAddress()).isEqualTo(0xFEDC_B000L);
            assertThat(out.contiguousBytes()).isEqualTo(-1L);
        }

        @Test
        void enabledTranslationWalksTheRootTable() throws Exception {
            command(vtd, TE); // root table at 0 (never set), legacy mode; the mock reads it as zeros
            vtd.translate(0x0100, -1, 0x1000, 0, out);
            assertThat(out.outcome()).isEqualTo(Translation.Outcome.FAULT);
            assertThat(out.code()).as("root entry not present").isEqualTo(0x1);
            verify(memory).read64s(eq(0x10L), any(long[].class), eq(0), eq(2)); // the root entry of bus 1
            vtd.reset();
            assertThat(vtd.translate(0x0100, 5, 0x1000, 0, out).isOk()).as("TE=0 again").isTrue();
        }

        @Test
        void translateAndRegisterAccessesAllocateNothing() {
            SparseRam ram = SparseRam.withDefaultRam();
            VtdDevice vtd = new VtdDevice("dmar0", VtdConfig.defaults(), ram, interrupts);
            vtd.mmioWrite(0x20, 8, SparseRam.DEFAULT_RAM_BASE); // an empty root table: every walk faults at once
            long[] sink = new long[1];
            long bytes = AllocationMeter.bytesAllocated(() -> {
                for (int i = 0; i < 50_000; i++) {
                    long te = (i & 1L) << 31;
                    vtd.mmioWrite(0x18, 4, te);
                    vtd.translate(i & 0xFFFF, -1, (long) i << 12, Access.WRITE, out);
                    vtd.mmioWrite(0x18, 4, te | SRTP);
                    vtd.mmioWrite(0x428, 8, 1L << 63);
                    vtd.mmioWrite(0x34, 4, 1);
                    sink[0] += vtd.mmioRead(0x1C, 4) + vtd.mmioRead(0x18, 8) + out.physicalAddress();
                }
            });
            // any per-operation allocation would amount to megabytes
            assertThat(bytes).as("bytes allocated by 300k operations").isLessThan(64 * 1024);
        }

        @Test
        void disabledTranslationTouchesNeitherMemoryNorInterrupts() {
            command(vtd, SRTP);
            vtd.translate(0, -1, 0, 0, out);
            assertThat(out.isOk()).isTrue();
            verifyNoInteractions(memory, interrupts);
        }
    }

    @Nested
    class Description {
        @Test
        void identityAndFeatures() {
            assertThat(vtd.name()).isEqualTo("dmar0");
            assertThat(vtd.type()).isEqualTo(IommuType.VTD);
            assertThat(vtd.mmioSize()).isEqualTo(0x1000);
            assertThat(vtd.streamIdBits()).isEqualTo(16);
            assertThat(vtd.substreamIdBits()).isEqualTo(20);
            assertThat(vtd.translationModelled()).isTrue();
            assertThat(vtd.config()).isEqualTo(VtdConfig.defaults());
            assertThat(vtd.features()).containsExactly("VER3.0", "ND6", "SAGAW39", "SAGAW48", "MGAW48",
                    "SLLPS_2M", "SLLPS_1G", "PSI", "DWD", "DRD", "FL1GP", "QI", "PT", "SC", "NEST", "PASID20",
                    "SMTS", "SLADS", "SLTS", "FLTS", "RPS");
            VtdDevice small = device(reduced());
            assertThat(small.features()).containsExactly("VER1.0", "ND2", "SAGAW48", "MGAW39");
            assertThat(small.substreamIdBits()).isZero();
            assertThat(device(VtdConfig.builder().pss(7).build()).substreamIdBits()).isEqualTo(8);
        }

        @Test
        void derivedConfigValues() {
            VtdConfig c = VtdConfig.defaults();
            assertThat(c.domainCount()).isEqualTo(65536);
            assertThat(c.guestAddressWidth()).isEqualTo(48);
            assertThat(c.faultRecordCount()).isEqualTo(8);
            assertThat(c.faultRecordOffset()).isEqualTo(0x400);
            assertThat(c.iotlbRegisterOffset()).isEqualTo(0x500);
            assertThat(c.pasidBits()).isEqualTo(20);
        }
    }

    @Nested
    class ConfigValidation {
        @Test
        void rejectsImpossibleConfigurations() {
            assertThatThrownBy(() -> VtdConfig.builder().nd(7).build())
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("nd");
            assertThatThrownBy(() -> VtdConfig.builder().sagaw(0).build())
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> VtdConfig.builder().sagaw(0b10000).build())
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> VtdConfig.builder().pss(20).build())
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> VtdConfig.builder().version(0, 0).build())
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> VtdConfig.builder().eim(true).build())
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("eim");
            assertThatThrownBy(() -> VtdConfig.builder().flts(false).build())
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("nest");
            assertThatThrownBy(() -> VtdConfig.builder().nest(false).slts(false).build())
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("slads");
        }

        @Test
        void registerLayoutMustFitTheWindow() {
            assertThatThrownBy(() -> VtdConfig.builder().fro(0xFF).nfr(1).build())
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("fault recording");
            assertThatThrownBy(() -> VtdConfig.builder().fro(0x08).build())
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> VtdConfig.builder().iro(0x100).build())
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> VtdConfig.builder().iro(0x41).build())
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("overlap");
            VtdConfig full = VtdConfig.builder().fro(0x10).nfr(238).iro(0x0F).build();
            VtdDevice d = device(full);
            assertThat(d.registerFile().register("FRCD238_HI").offset()).isEqualTo(0xFE8);
        }
    }
}
