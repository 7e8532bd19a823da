package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.verifyNoInteractions;

import java.util.HashMap;
import java.util.Map;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.InterruptSink;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.regs.AllocationMeter;
import org.iommuemu.device.regs.Register;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/**
 * Register-by-register tests of the SMMUv3 shell. Field positions are written out here from the field
 * tables of spec/SMMUV3.md rather than taken from {@link SmmuV3Registers}, so the two check each other.
 */
class SmmuV3DeviceTest {
    private final PhysicalMemory memory = mock(PhysicalMemory.class);
    private final InterruptSink interrupts = mock(InterruptSink.class);

    private SmmuV3Device device(SmmuV3Config config) {
        return new SmmuV3Device("smmu0", config, memory, interrupts);
    }

    private final SmmuV3Device smmu = device(SmmuV3Config.defaults());

    private static long field(long value, int hi, int lo) {
        return Bits.extract(value, lo, hi - lo + 1);
    }

    private long read32(long offset) {
        return smmu.mmioRead(offset, 4);
    }

    private static SmmuV3Config reduced() {
        return SmmuV3Config.builder()
                .stage2(false).vmid16(false)
                .msi(false).sev(false)
                .twoLevelStreamTable(false).twoLevelCd(false)
                .granule16k(false).granule64k(false)
                .httuDirty(false)
                .rangeInvalidation(false)
                .oasBits(40).sidBits(8).ssidBits(0)
                .cmdqLog2(8).eventqLog2(7)
                .build();
    }

    private static SmmuV3Config withAtsAndPri() {
        return SmmuV3Config.builder().ats(true).pri(true).priqLog2(12).build();
    }

    @Nested
    class IdRegistersDefaults {
        @Test
        void idr0FieldByField() {
            long v = read32(0x00);
            assertThat(field(v, 0, 0)).as("S2P").isEqualTo(1);
            assertThat(field(v, 1, 1)).as("S1P").isEqualTo(1);
            assertThat(field(v, 3, 2)).as("TTF AArch64").isEqualTo(2);
            assertThat(field(v, 4, 4)).as("COHACC").isEqualTo(1);
            assertThat(field(v, 5, 5)).as("BTM").isZero();
            assertThat(field(v, 7, 6)).as("HTTU access+dirty").isEqualTo(2);
            assertThat(field(v, 8, 8)).as("DORMHINT").isZero();
            assertThat(field(v, 9, 9)).as("HYP").isZero();
            assertThat(field(v, 10, 10)).as("ATS").isZero();
            assertThat(field(v, 11, 11)).as("NS1ATS").isZero();
            assertThat(field(v, 12, 12)).as("ASID16").isEqualTo(1);
            assertThat(field(v, 13, 13)).as("MSI").isEqualTo(1);
            assertThat(field(v, 14, 14)).as("SEV").isEqualTo(1);
            assertThat(field(v, 15, 15)).as("ATOS").isZero();
            assertThat(field(v, 16, 16)).as("PRI").isZero();
            assertThat(field(v, 17, 17)).as("VMW").isZero();
            assertThat(field(v, 18, 18)).as("VMID16").isEqualTo(1);
            assertThat(field(v, 19, 19)).as("CD2L").isEqualTo(1);
            assertThat(field(v, 20, 20)).as("VATOS").isZero();
            assertThat(field(v, 22, 21)).as("TTENDIAN little").isEqualTo(2);
            assertThat(field(v, 23, 23)).as("ATSRECERR").isZero();
            assertThat(field(v, 25, 24)).as("STALL_MODEL no stall").isEqualTo(1);
            assertThat(field(v, 26, 26)).as("TERM_MODEL").isZero();
            assertThat(field(v, 28, 27)).as("ST_LEVEL 2-level").isEqualTo(1);
            assertThat(field(v, 30, 30)).as("RME_IMPL").isZero();
            assertThat(v).isEqualTo(0x094C_709BL);
        }

        @Test
        void idr1FieldByField() {
            long v = read32(0x04);
            assertThat(field(v, 5, 0)).as("SIDSIZE").isEqualTo(16);
            assertThat(field(v, 10, 6)).as("SSIDSIZE").isEqualTo(20);
            assertThat(field(v, 15, 11)).as("PRIQS (no PRI)").isZero();
            assertThat(field(v, 20, 16)).as("EVENTQS").isEqualTo(19);
            assertThat(field(v, 25, 21)).as("CMDQS").isEqualTo(19);
            assertThat(field(v, 31, 26)).as("overrides, REL, presets, ECMDQ").isZero();
            assertThat(v).isEqualTo(0x0273_0510L);
        }

        @Test
        void idr2Idr3Idr4Idr5() {
            assertThat(read32(0x08)).as("IDR2").isZero();
            long idr3 = read32(0x0C);
            assertThat(field(idr3, 10, 10)).as("RIL").isEqualTo(1);
            assertThat(field(idr3, 12, 11)).as("BBML").isZero();
            assertThat(idr3).isEqualTo(0x400L);
            assertThat(read32(0x10)).as("IDR4").isZero();
            long idr5 = read32(0x14);
            assertThat(field(idr5, 2, 0)).as("OAS 48-bit").isEqualTo(5);
            assertThat(field(idr5, 4, 4)).as("GRAN4K").isEqualTo(1);
            assertThat(field(idr5, 5, 5)).as("GRAN16K").isEqualTo(1);
            assertThat(field(idr5, 6, 6)).as("GRAN64K").isEqualTo(1);
            assertThat(field(idr5, 11, 10)).as("VAX").isZero();
            assertThat(field(idr5, 31, 16)).as("STALL_MAX").isZero();
            assertThat(idr5).isEqualTo(0x75L);
        }

        @Test
        void iidrAidrAndIdentificationBlock() {
            assertThat(read32(0x18)).as("IIDR").isZero();
            long aidr = read32(0x1C);
            assertThat(field(aidr, 7, 4)).as("ArchMajorRev").isZero();
            assertThat(field(aidr, 3, 0)).as("ArchMinorRev: v3.2").isEqualTo(2);
            long[] ids = {0x04, 0, 0, 0, 0x84, 0xB4, 0xF0, 0x10, 0x0D, 0xF0, 0x05, 0xB1};
            for (int i = 0; i < ids.length; i++) {
                assertThat(read32(0xFD0 + 4L * i)).as("ID register at %x", 0xFD0 + 4 * i).isEqualTo(ids[i]);
            }
        }

        @Test
        void idRegistersIgnoreWrites() {
            for (long off = 0; off <= 0x1C; off += 4) {
                long before = read32(off);
                smmu.mmioWrite(off, 4, 0xFFFF_FFFFL);
                smmu.mmioWrite(off, 4, 0);
                assertThat(read32(off)).isEqualTo(before);
            }
        }
    }

    @Nested
    class IdRegistersReduced {
        private final SmmuV3Device small = device(reduced());

        @Test
        void idr0() {
            long v = small.mmioRead(0x00, 4);
            assertThat(field(v, 0, 0)).as("S2P").isZero();
            assertThat(field(v, 1, 1)).as("S1P").isEqualTo(1);
            assertThat(field(v, 3, 2)).as("TTF").isEqualTo(2);
            assertThat(field(v, 4, 4)).as("COHACC").isEqualTo(1);
            assertThat(field(v, 7, 6)).as("HTTU access only").isEqualTo(1);
            assertThat(field(v, 12, 12)).as("ASID16").isEqualTo(1);
            assertThat(field(v, 13, 13)).as("MSI").isZero();
            assertThat(field(v, 14, 14)).as("SEV").isZero();
            assertThat(field(v, 18, 18)).as("VMID16").isZero();
            assertThat(field(v, 19, 19)).as("CD2L").isZero();
            assertThat(field(v, 22, 21)).as("TTENDIAN").isEqualTo(2);
            assertThat(field(v, 25, 24)).as("STALL_MODEL").isEqualTo(1);
            assertThat(field(v, 26, 26)).as("TERM_MODEL").isZero();
            assertThat(field(v, 28, 27)).as("ST_LEVEL linear only").isZero();
            assertThat(v).isEqualTo(0x0140_105AL);
        }

        @Test
        void idr1Idr3Idr5() {
            long idr1 = small.mmioRead(0x04, 4);
            assertThat(field(idr1, 5, 0)).as("SIDSIZE").isEqualTo(8);
            assertThat(field(idr1, 10, 6)).as("SSIDSIZE").isZero();
            assertThat(field(idr1, 20, 16)).as("EVENTQS").isEqualTo(7);
            assertThat(field(idr1, 25, 21)).as("CMDQS").isEqualTo(8);
            assertThat(idr1).isEqualTo(0x0107_0008L);
            assertThat(small.mmioRead(0x0C, 4)).as("IDR3 without RIL").isZero();
            long idr5 = small.mmioRead(0x14, 4);
            assertThat(field(idr5, 2, 0)).as("OAS 40-bit").isEqualTo(2);
            assertThat(field(idr5, 6, 4)).as("4K only").isEqualTo(1);
            assertThat(idr5).isEqualTo(0x12L);
        }

        @Test
        void atsAndPriAdvertised() {
            SmmuV3Device pri = device(withAtsAndPri());
            long idr0 = pri.mmioRead(0x00, 4);
            assertThat(field(idr0, 10, 10)).as("ATS").isEqualTo(1);
            assertThat(field(idr0, 16, 16)).as("PRI").isEqualTo(1);
            assertThat(field(pri.mmioRead(0x04, 4), 15, 11)).as("PRIQS").isEqualTo(12);
        }

        @Test
        void otherOasEncodings() {
            int[] bits = {32, 36, 40, 42, 44, 48, 52};
            for (int i = 0; i < bits.length; i++) {
                SmmuV3Device d = device(SmmuV3Config.builder().oasBits(bits[i]).build());
                assertThat(field(d.mmioRead(0x14, 4), 2, 0)).as("OAS %d", bits[i]).isEqualTo(i);
            }
        }
    }

    @Nested
    class ResetValues {
        @Test
        void everyDeclaredRegister() {
            Map<String, Long> expected = new HashMap<>();
            expected.put("IDR0", 0x094C_709BL);
            expected.put("IDR1", 0x0273_0510L);
            expected.put("IDR3", 0x400L);
            expected.put("IDR5", 0x75L);
            expected.put("AIDR", 0x02L);
            expected.put("GBPA", 0x1000L);
            String[] idNames = {"PIDR4", "PIDR5", "PIDR6", "PIDR7", "PIDR0", "PIDR1", "PIDR2", "PIDR3",
                "CIDR0", "CIDR1", "CIDR2", "CIDR3"};
            long[] ids = {0x04, 0, 0, 0, 0x84, 0xB4, 0xF0, 0x10, 0x0D, 0xF0, 0x05, 0xB1};
            for (int i = 0; i < ids.length; i++) {
                expected.put(idNames[i], ids[i]);
            }
            Map<String, Long> offsets = new HashMap<>();
            String[] names = {"IDR0", "IDR1", "IDR2", "IDR3", "IDR4", "IDR5", "IIDR", "AIDR", "CR0", "CR0ACK",
                "CR1", "CR2", "STATUSR", "GBPA", "AGBPA", "IRQ_CTRL", "IRQ_CTRLACK", "GERROR", "GERRORN",
                "GERROR_IRQ_CFG0", "GERROR_IRQ_CFG1", "GERROR_IRQ_CFG2", "STRTAB_BASE", "STRTAB_BASE_CFG",
                "CMDQ_BASE", "CMDQ_PROD", "CMDQ_CONS", "EVENTQ_BASE", "EVENTQ_PROD", "EVENTQ_CONS",
                "EVENTQ_IRQ_CFG0", "EVENTQ_IRQ_CFG1", "EVENTQ_IRQ_CFG2", "PRIQ_BASE", "PRIQ_PROD", "PRIQ_CONS",
                "PRIQ_IRQ_CFG0", "PRIQ_IRQ_CFG1", "PRIQ_IRQ_CFG2"};
            long[] offs = {0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C, 0x20, 0x24, 0x28, 0x2C, 0x40, 0x44,
                0x48, 0x50, 0x54, 0x60, 0x64, 0x68, 0x70, 0x74, 0x80, 0x88, 0x90, 0x98, 0x9C, 0xA0, 0x100A8,
                0x100AC, 0xB0, 0xB8, 0xBC, 0xC0, 0x100C8, 0x100CC, 0xD0, 0xD8, 0xDC};
            for (int i = 0; i < names.length; i++) {
                offsets.put(names[i], offs[i]);
            }
            for (int i = 0; i < idNames.length; i++) {
                offsets.put(idNames[i], 0xFD0 + 4L * i);
            }
            assertThat(smmu.registerFile().registers()).extracting(Register::name)
                    .containsExactlyInAnyOrderElementsOf(offsets.keySet());
            // dirty everything, then reset
            for (Register r : smmu.registerFile().registers()) {
                smmu.mmioWrite(r.offset(), r.width() / 8, -1L);
            }
            smmu.reset();
            for (Register r : smmu.registerFile().registers()) {
                assertThat(r.offset()).as(r.name()).isEqualTo(offsets.get(r.name()));
                long want = expected.getOrDefault(r.name(), 0L);
                assertThat(smmu.mmioRead(r.offset(), r.width() / 8)).as(r.name()).isEqualTo(want);
                assertThat(r.resetValue()).as(r.name()).isEqualTo(want);
            }
        }

        @Test
        void widths() {
            for (String q : new String[] {"GERROR_IRQ_CFG0", "STRTAB_BASE", "CMDQ_BASE", "EVENTQ_BASE",
                "EVENTQ_IRQ_CFG0", "PRIQ_BASE", "PRIQ_IRQ_CFG0"}) {
                assertThat(smmu.registerFile().register(q).width()).as(q).isEqualTo(64);
            }
            assertThat(smmu.registerFile().register("CR0").width()).isEqualTo(32);
        }
    }

    @Nested
    class ControlHandshakes {
        @Test
        void cr0IsAcknowledgedAtOnce() {
            smmu.mmioWrite(0x20, 4, 0b1101);
            assertThat(read32(0x20)).isEqualTo(0b1101);
            assertThat(read32(0x24)).isEqualTo(0b1101);
            smmu.mmioWrite(0x20, 4, 0b1000);
            assertThat(read32(0x24)).isEqualTo(0b1000);
        }

        @Test
        void cr0ReservedBitsAndFeatureGatedBits() {
            smmu.mmioWrite(0x20, 4, 0xFFFF_FFFFL);
            // no PRI, no ATS: PRIQEN and ATSCHK are RES0; VMW and bits 5, 9.. are reserved
            assertThat(read32(0x20)).isEqualTo(0b1101);
            assertThat(read32(0x24)).isEqualTo(0b1101);
            SmmuV3Device full = device(withAtsAndPri());
            full.mmioWrite(0x20, 4, 0xFFFF_FFFFL);
            assertThat(full.mmioRead(0x20, 4)).isEqualTo(0x1F);
            assertThat(full.mmioRead(0x24, 4)).isEqualTo(0x1F);
        }

        @Test
        void cr0ackIsReadOnly() {
            smmu.mmioWrite(0x24, 4, 0xF);
            assertThat(read32(0x24)).isZero();
        }

        @Test
        void irqCtrlIsAcknowledgedAtOnce() {
            smmu.mmioWrite(0x50, 4, 0xFFFF_FFFFL);
            assertThat(read32(0x50)).as("no PRI: PRIQ_IRQEN RES0").isEqualTo(0b101);
            assertThat(read32(0x54)).isEqualTo(0b101);
            smmu.mmioWrite(0x50, 4, 0b001);
            assertThat(read32(0x54)).isEqualTo(0b001);
            smmu.mmioWrite(0x54, 4, 0);
            assertThat(read32(0x54)).isEqualTo(0b001);
            SmmuV3Device full = device(withAtsAndPri());
            full.mmioWrite(0x50, 4, 0b111);
            assertThat(full.mmioRead(0x54, 4)).isEqualTo(0b111);
        }

        @Test
        void cr1Cr2Statusr() {
            smmu.mmioWrite(0x28, 4, 0xFFFF_FFFFL);
            assertThat(read32(0x28)).isEqualTo(0xFFF);
            smmu.mmioWrite(0x2C, 4, 0xFFFF_FFFFL);
            assertThat(read32(0x2C)).as("RECINVSID, PTM; E2H RES0").isEqualTo(0b110);
            smmu.mmioWrite(0x40, 4, 0xFFFF_FFFFL);
            assertThat(read32(0x40)).isZero();
        }
    }

    @Nested
    class GlobalBypass {
        @Test
        void writeWithoutUpdateIsIgnored() {
            smmu.mmioWrite(0x44, 4, 1L << 20);
            assertThat(read32(0x44)).isEqualTo(0x1000);
        }

        @Test
        void writeWithUpdateLatchesAndUpdateReadsZero() {
            smmu.mmioWrite(0x44, 4, (1L << 31) | (1L << 20));
            assertThat(read32(0x44)).isEqualTo(1L << 20);
            smmu.mmioWrite(0x44, 4, (1L << 31) | 0x3_3F1FL | 0x7FE0_0000L);
            assertThat(read32(0x44)).as("reserved bits dropped").isEqualTo(0x3_3F1FL);
            smmu.mmioWrite(0x44, 4, 0x1000);
            assertThat(read32(0x44)).isEqualTo(0x3_3F1FL);
        }

        @Test
        void agbpaIsRes0() {
            smmu.mmioWrite(0x48, 4, 0xFFFF_FFFFL);
            assertThat(read32(0x48)).isZero();
        }
    }

    @Nested
    class GlobalErrors {
        @Test
        void gerrorIsReadOnlyGerrornReadWrite() {
            smmu.mmioWrite(0x60, 4, 0xFFFF_FFFFL);
            assertThat(read32(0x60)).isZero();
            smmu.mmioWrite(0x64, 4, 0xFFFF_FFFFL);
            assertThat(read32(0x64)).as("bits 0, 2..8").isEqualTo(0x1FD);
            smmu.mmioWrite(0x64, 4, 0x1);
            assertThat(read32(0x64)).isEqualTo(0x1);
        }

        @Test
        void msiConfigurationRegisters() {
            smmu.mmioWrite(0x68, 8, -1L);
            assertThat(smmu.mmioRead(0x68, 8)).as("ADDR[51:2]").isEqualTo(0x000F_FFFF_FFFF_FFFCL);
            smmu.mmioWrite(0x70, 4, 0xFFFF_FFFFL);
            assertThat(read32(0x70)).isEqualTo(0xFFFF_FFFFL);
            smmu.mmioWrite(0x74, 4, 0xFFFF_FFFFL);
            assertThat(read32(0x74)).isEqualTo(0x3F);
            SmmuV3Device noMsi = device(reduced());
            for (long off : new long[] {0x68, 0x70, 0x74, 0xB0, 0xB8, 0xBC, 0xD0, 0xD8, 0xDC}) {
                noMsi.mmioWrite(off, 4, 0xFFFF_FFFFL);
                assertThat(noMsi.mmioRead(off, 4)).as("RES0 without MSI at %x", off).isZero();
            }
        }
    }

    @Nested
    class TablesAndQueues {
        @Test
        void sixtyFourBitRegistersAsHalves() {
            smmu.mmioWrite(0x80, 4, 0xFFFF_FFC0L | 0x3F);
            smmu.mmioWrite(0x84, 4, 0xFFFF_FFFFL);
            assertThat(smmu.mmioRead(0x80, 8)).as("ADDR[51:6] | RA").isEqualTo(0x400F_FFFF_FFFF_FFC0L);
            assertThat(read32(0x80)).isEqualTo(0xFFFF_FFC0L);
            assertThat(read32(0x84)).isEqualTo(0x400F_FFFFL);
            smmu.mmioWrite(0x84, 4, 0);
            assertThat(smmu.mmioRead(0x80, 8)).isEqualTo(0xFFFF_FFC0L);
            smmu.mmioWrite(0x90, 8, 0x4000_0000_8000_0013L);
            assertThat(read32(0x90)).isEqualTo(0x8000_0013L);
            assertThat(read32(0x94)).isEqualTo(0x4000_0000L);
            smmu.mmioWrite(0xA0, 8, -1L);
            assertThat(smmu.mmioRead(0xA0, 8)).as("LOG2SIZE, ADDR[51:5], WA").isEqualTo(0x400F_FFFF_FFFF_FFFFL);
        }

        @Test
        void strtabBaseCfg() {
            smmu.mmioWrite(0x88, 4, 0xFFFF_FFFFL);
            assertThat(read32(0x88)).isEqualTo(0x3_07FFL);
        }

        @Test
        void cmdqProdConsFields() {
            smmu.mmioWrite(0x98, 4, 0xFFFF_FFFFL);
            assertThat(read32(0x98)).as("WR index+wrap for 2^19 entries").isEqualTo(0xF_FFFFL);
            smmu.mmioWrite(0x9C, 4, 0xFFFF_FFFFL);
            assertThat(read32(0x9C)).as("RD written, ERR read-only").isEqualTo(0xF_FFFFL);
            assertThat(smmu.mmioRead(0x98, 8)).isEqualTo(0x000F_FFFF_000F_FFFFL);
        }

        @Test
        void eventQueuePage1AndItsPage0Alias() {
            smmu.mmioWrite(0x100A8, 4, 0x8000_0005L);
            assertThat(read32(0xA8)).isEqualTo(0x8000_0005L);
            smmu.mmioWrite(0xAC, 4, 0x8000_0003L);
            assertThat(read32(0x100AC)).isEqualTo(0x8000_0003L);
            assertThat(smmu.mmioRead(0x100A8, 8)).isEqualTo(0x8000_0003_8000_0005L);
            assertThat(smmu.mmioRead(0xA8, 8)).isEqualTo(0x8000_0003_8000_0005L);
            assertThat(smmu.registerFile().aliasesOf(smmu.registerFile().register("EVENTQ_PROD")))
                    .containsExactly(0xA8L);
        }

        @Test
        void priQueueNeedsPri() {
            smmu.mmioWrite(0x100C8, 4, 0x5);
            assertThat(read32(0xC8)).as("RES0 without PRI").isZero();
            SmmuV3Device pri = device(withAtsAndPri());
            pri.mmioWrite(0x100C8, 4, 0xFFFF_FFFFL);
            assertThat(pri.mmioRead(0xC8, 4)).as("WR[12:0] + OVFLG").isEqualTo(0x8000_1FFFL);
            pri.mmioWrite(0xCC, 4, 0x8000_0002L);
            assertThat(pri.mmioRead(0x100CC, 4)).isEqualTo(0x8000_0002L);
            pri.mmioWrite(0xC0, 8, -1L);
            assertThat(pri.mmioRead(0xC0, 8)).isEqualTo(0x400F_FFFF_FFFF_FFFFL);
            pri.mmioWrite(0xD0, 8, -1L);
            assertThat(pri.mmioRead(0xD0, 8)).isEqualTo(0x000F_FFFF_FFFF_FFFCL);
        }

        @Test
        void queueFieldsFollowConfiguredSizes() {
            SmmuV3Device small = device(reduced());
            small.mmioWrite(0x98, 4, 0xFFFF_FFFFL);
            assertThat(small.mmioRead(0x98, 4)).as("CMDQ WR[8:0]").isEqualTo(0x1FF);
            small.mmioWrite(0x100A8, 4, 0xFFFF_FFFFL);
            assertThat(small.mmioRead(0x100A8, 4)).as("EVENTQ WR[7:0] + OVFLG").isEqualTo(0x8000_00FFL);
        }

        @Test
        void unknownOffsetsReadZero() {
            for (long off : new long[] {0x30, 0xE0, 0xE00, 0x1_0000, 0x1_00A0, 0x1_FFF8}) {
                smmu.mmioWrite(off, 4, 0xFFFF_FFFFL);
                assertThat(smmu.mmioRead(off, 4)).as("%x", off).isZero();
            }
        }
    }

    @Nested
    class Dma {
        private final Translation out = new Translation();

        @Test
        void bypassAfterReset() {
            assertThat(smmu.translate(3, -1, 0x1234_5678_9000L, Access.WRITE, out)).isSameAs(out);
            assertThat(out.outcome()).isEqualTo(Translation.Outcome.OK);
            assertThat(out.physicalAddress()).isEqualTo(0x1234_5678_9000L);
            assertThat(out.contiguousBytes()).isEqualTo(-1L);
        }

        @Test
        void abortWhenGbpaSaysSo() {
            smmu.mmioWrite(0x44, 4, (1L << 31) | (1L << 20));
            smmu.translate(0xFFFF, 5, 0x1000, 0, out);
            assertThat(out.outcome()).isEqualTo(Translation.Outcome.FAULT);
            assertThat(out.faultType()).isEqualTo(FaultType.ABORTED);
            assertThat(out.code()).isZero();
            assertThat(out.description()).isEqualTo("SMMUEN=0 and GBPA.ABORT=1: incoming transactions abort");
            smmu.mmioWrite(0x44, 4, 1L << 31);
            assertThat(smmu.translate(0, -1, 0x1000, 0, out).isOk()).isTrue();
        }

        @Test
        void enabledSmmuTranslatesThroughTheStreamTableAndIgnoresGbpa() {
            smmu.mmioWrite(0x20, 4, 1); // SMMUEN, with STRTAB_BASE still 0: this (mocked) memory reads zeros there
            smmu.translate(0, -1, 0x1000, Access.PRIVILEGED, out);
            assertThat(out.outcome()).isEqualTo(Translation.Outcome.FAULT);
            assertThat(out.faultType()).isEqualTo(FaultType.BAD_CONFIGURATION);
            assertThat(out.code()).as("C_BAD_STE: an all-zero STE has V=0").isEqualTo(0x04);
            smmu.mmioWrite(0x44, 4, (1L << 31) | (1L << 20));
            assertThat(smmu.translate(0, -1, 0x1000, 0, out).code())
                    .as("GBPA does not apply while enabled").isEqualTo(0x04);
            smmu.reset();
            assertThat(smmu.translate(0, -1, 0x1000, 0, out).isOk()).isTrue();
        }

        @Test
        void translateAndRegisterAccessesAllocateNothing() {
            long[] sink = new long[1];
            long bytes = AllocationMeter.bytesAllocated(() -> {
                for (int i = 0; i < 50_000; i++) {
                    smmu.mmioWrite(0x44, 4, (1L << 31) | ((i & 1L) << 20));
                    smmu.translate(i & 0xFFFF, -1, (long) i << 12, Access.WRITE, out);
                    smmu.mmioWrite(0x20, 4, 0x8); // CMDQEN with an empty queue: the disabled path only
                    smmu.mmioWrite(0x100A8, 4, i);
                    smmu.translate(i & 0xFFFF, 1, (long) i << 12, 0, out);
                    sink[0] += smmu.mmioRead(0x24, 4) + smmu.mmioRead(0xA8, 8) + out.physicalAddress();
                }
            });
            // any per-operation allocation would amount to megabytes
            assertThat(bytes).as("bytes allocated by 300k operations").isLessThan(64 * 1024);
        }

        @Test
        void queuesWithNothingInThemAndBypassTouchNeitherMemoryNorInterrupts() {
            smmu.mmioWrite(0x20, 4, 0xE); // queues enabled, empty; SMMUEN=0: bypass
            smmu.translate(0, -1, 0, 0, out);
            verifyNoInteractions(memory, interrupts);
        }
    }

    @Nested
    class Description {
        @Test
        void identityAndFeatures() {
            assertThat(smmu.name()).isEqualTo("smmu0");
            assertThat(smmu.type()).isEqualTo(IommuType.SMMUV3);
            assertThat(smmu.mmioSize()).isEqualTo(0x2_0000);
            assertThat(smmu.streamIdBits()).isEqualTo(16);
            assertThat(smmu.substreamIdBits()).isEqualTo(20);
            assertThat(smmu.translationModelled()).isTrue();
            assertThat(smmu.config()).isEqualTo(SmmuV3Config.defaults());
            assertThat(smmu.features()).containsExactly("GBPA", "S1P", "S2P", "TTF_AARCH64", "COHACC", "HTTU_AD",
                    "ASID16", "VMID16", "MSI", "SEV", "ST_2LVL", "CD2L", "RIL", "GRAN4K", "GRAN16K", "GRAN64K",
                    "OAS48", "SIDSIZE16", "SSIDSIZE20");
            SmmuV3Device small = device(reduced());
            assertThat(small.features()).containsExactly("GBPA", "S1P", "TTF_AARCH64", "COHACC", "HTTU_A",
                    "ASID16", "GRAN4K", "OAS40", "SIDSIZE8");
            assertThat(small.substreamIdBits()).isZero();
            assertThat(device(withAtsAndPri()).features()).contains("ATS", "PRI");
        }
    }

    @Nested
    class ConfigValidation {
        @Test
        void rejectsImpossibleConfigurations() {
            assertThatThrownBy(() -> SmmuV3Config.builder().sidBits(33).build())
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("sidBits");
            assertThatThrownBy(() -> SmmuV3Config.builder().ssidBits(21).build())
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> SmmuV3Config.builder().oasBits(46).build())
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("oasBits");
            assertThatThrownBy(() -> SmmuV3Config.builder().stage1(false).stage2(false).build())
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> SmmuV3Config.builder().stage1(false).build())
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("stage 1");
            assertThatThrownBy(() -> SmmuV3Config.builder().stage2(false).build())
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("VMID");
            assertThatThrownBy(() -> SmmuV3Config.builder().pri(true).build())
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ATS");
            assertThatThrownBy(() -> SmmuV3Config.builder().httuAccess(false).build())
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> SmmuV3Config.builder().granule4k(false).granule16k(false).granule64k(false)
                    .build()).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> SmmuV3Config.builder().cmdqLog2(20).build())
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> SmmuV3Config.builder().eventqLog2(-1).build())
                    .isInstanceOf(IllegalArgumentException.class);
            SmmuV3Config s2only = SmmuV3Config.builder().stage1(false).ssidBits(0).twoLevelCd(false)
                    .asid16(false).build();
            assertThat(field(s2only.idr0(), 1, 0)).isEqualTo(0b01);
        }

        @Test
        void nullArgumentsAreRejected() {
            assertThatThrownBy(() -> new SmmuV3Device(null, SmmuV3Config.defaults(), memory, interrupts))
                    .isInstanceOf(NullPointerException.class);
            assertThatThrownBy(() -> new SmmuV3Device("s", SmmuV3Config.defaults(), null, interrupts))
                    .isInstanceOf(NullPointerException.class);
        }
    }
}
