package org.iommuemu.core.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.bits.Bits;
import org.junit.jupiter.api.Test;

/** The register numbers against the masks Linux's arm-smmu-v3.h spells out (GENMASK / BIT values). */
class SmmuRegsTest {
    private static long mask(int lo, int width) {
        return Bits.mask(lo, width);
    }

    @Test
    void idr0FieldsMatchLinuxMasks() {
        assertThat(mask(SmmuRegs.IDR0_ST_LEVEL, SmmuRegs.IDR0_ST_LEVEL_WIDTH)).isEqualTo(0x1800_0000L);
        assertThat(mask(SmmuRegs.IDR0_STALL_MODEL, SmmuRegs.IDR0_STALL_MODEL_WIDTH)).isEqualTo(0x0300_0000L);
        assertThat(mask(SmmuRegs.IDR0_TTENDIAN, SmmuRegs.IDR0_TTENDIAN_WIDTH)).isEqualTo(0x0060_0000L);
        assertThat(1L << SmmuRegs.IDR0_CD2L).isEqualTo(0x8_0000L);
        assertThat(1L << SmmuRegs.IDR0_VMID16).isEqualTo(0x4_0000L);
        assertThat(1L << SmmuRegs.IDR0_PRI).isEqualTo(0x1_0000L);
        assertThat(1L << SmmuRegs.IDR0_SEV).isEqualTo(0x4000L);
        assertThat(1L << SmmuRegs.IDR0_MSI).isEqualTo(0x2000L);
        assertThat(1L << SmmuRegs.IDR0_ASID16).isEqualTo(0x1000L);
        assertThat(1L << SmmuRegs.IDR0_ATS).isEqualTo(0x400L);
        assertThat(1L << SmmuRegs.IDR0_HYP).isEqualTo(0x200L);
        assertThat(mask(SmmuRegs.IDR0_HTTU, SmmuRegs.IDR0_HTTU_WIDTH)).isEqualTo(0xC0L);
        assertThat(1L << SmmuRegs.IDR0_COHACC).isEqualTo(0x10L);
        assertThat(mask(SmmuRegs.IDR0_TTF, SmmuRegs.IDR0_TTF_WIDTH)).isEqualTo(0xCL);
        assertThat(1L << SmmuRegs.IDR0_S1P).isEqualTo(0x2L);
        assertThat(1L << SmmuRegs.IDR0_S2P).isEqualTo(0x1L);
    }

    @Test
    void idr1Idr3Idr5FieldsMatchLinuxMasks() {
        assertThat(1L << SmmuRegs.IDR1_TABLES_PRESET).isEqualTo(0x4000_0000L);
        assertThat(1L << SmmuRegs.IDR1_QUEUES_PRESET).isEqualTo(0x2000_0000L);
        assertThat(1L << SmmuRegs.IDR1_REL).isEqualTo(0x1000_0000L);
        assertThat(1L << SmmuRegs.IDR1_ATTR_TYPES_OVR).isEqualTo(0x0800_0000L);
        assertThat(mask(SmmuRegs.IDR1_CMDQS, SmmuRegs.IDR1_CMDQS_WIDTH)).isEqualTo(0x03E0_0000L);
        assertThat(mask(SmmuRegs.IDR1_EVENTQS, SmmuRegs.IDR1_EVENTQS_WIDTH)).isEqualTo(0x001F_0000L);
        assertThat(mask(SmmuRegs.IDR1_PRIQS, SmmuRegs.IDR1_PRIQS_WIDTH)).isEqualTo(0xF800L);
        assertThat(mask(SmmuRegs.IDR1_SSIDSIZE, SmmuRegs.IDR1_SSIDSIZE_WIDTH)).isEqualTo(0x7C0L);
        assertThat(mask(SmmuRegs.IDR1_SIDSIZE, SmmuRegs.IDR1_SIDSIZE_WIDTH)).isEqualTo(0x3FL);
        assertThat(1L << SmmuRegs.IDR3_RIL).isEqualTo(0x400L);
        assertThat(1L << SmmuRegs.IDR3_FWB).isEqualTo(0x100L);
        assertThat(mask(SmmuRegs.IDR3_BBML, SmmuRegs.IDR3_BBML_WIDTH)).isEqualTo(0x1800L);
        assertThat(mask(SmmuRegs.IDR5_STALL_MAX, SmmuRegs.IDR5_STALL_MAX_WIDTH)).isEqualTo(0xFFFF_0000L);
        assertThat(mask(SmmuRegs.IDR5_VAX, SmmuRegs.IDR5_VAX_WIDTH)).isEqualTo(0xC00L);
        assertThat(1L << SmmuRegs.IDR5_GRAN64K).isEqualTo(0x40L);
        assertThat(1L << SmmuRegs.IDR5_GRAN16K).isEqualTo(0x20L);
        assertThat(1L << SmmuRegs.IDR5_GRAN4K).isEqualTo(0x10L);
        assertThat(mask(SmmuRegs.IDR5_OAS, SmmuRegs.IDR5_OAS_WIDTH)).isEqualTo(0x7L);
    }

    @Test
    void controlRegistersMatchLinux() {
        assertThat(1L << SmmuRegs.CR0_ATSCHK | 1L << SmmuRegs.CR0_CMDQEN | 1L << SmmuRegs.CR0_EVENTQEN
                | 1L << SmmuRegs.CR0_PRIQEN | 1L << SmmuRegs.CR0_SMMUEN).isEqualTo(0x1FL);
        assertThat(mask(SmmuRegs.CR1_TABLE_SH, SmmuRegs.CR1_FIELD_WIDTH)).isEqualTo(0xC00L);
        assertThat(mask(SmmuRegs.CR1_TABLE_OC, SmmuRegs.CR1_FIELD_WIDTH)).isEqualTo(0x300L);
        assertThat(mask(SmmuRegs.CR1_TABLE_IC, SmmuRegs.CR1_FIELD_WIDTH)).isEqualTo(0xC0L);
        assertThat(mask(SmmuRegs.CR1_QUEUE_SH, SmmuRegs.CR1_FIELD_WIDTH)).isEqualTo(0x30L);
        assertThat(mask(SmmuRegs.CR1_QUEUE_OC, SmmuRegs.CR1_FIELD_WIDTH)).isEqualTo(0xCL);
        assertThat(mask(SmmuRegs.CR1_QUEUE_IC, SmmuRegs.CR1_FIELD_WIDTH)).isEqualTo(0x3L);
        assertThat(1L << SmmuRegs.CR2_PTM | 1L << SmmuRegs.CR2_RECINVSID | 1L << SmmuRegs.CR2_E2H).isEqualTo(0x7L);
        assertThat(1L << SmmuRegs.GBPA_UPDATE).isEqualTo(0x8000_0000L);
        assertThat(1L << SmmuRegs.GBPA_ABORT).isEqualTo(0x10_0000L);
        assertThat(1L << SmmuRegs.IRQ_CTRL_EVENTQ_IRQEN | 1L << SmmuRegs.IRQ_CTRL_PRIQ_IRQEN
                | 1L << SmmuRegs.IRQ_CTRL_GERROR_IRQEN).isEqualTo(0x7L);
    }

    @Test
    void offsetsMatchLinux() {
        assertThat(new long[] {SmmuRegs.CR0, SmmuRegs.CR0ACK, SmmuRegs.CR1, SmmuRegs.CR2, SmmuRegs.GBPA,
            SmmuRegs.IRQ_CTRL, SmmuRegs.IRQ_CTRLACK, SmmuRegs.GERROR, SmmuRegs.GERRORN, SmmuRegs.GERROR_IRQ_CFG0,
            SmmuRegs.STRTAB_BASE, SmmuRegs.STRTAB_BASE_CFG, SmmuRegs.CMDQ_BASE, SmmuRegs.CMDQ_PROD,
            SmmuRegs.CMDQ_CONS, SmmuRegs.EVENTQ_BASE, SmmuRegs.EVENTQ_IRQ_CFG0, SmmuRegs.PRIQ_BASE})
                .containsExactly(0x20, 0x24, 0x28, 0x2C, 0x44, 0x50, 0x54, 0x60, 0x64, 0x68, 0x80, 0x88, 0x90, 0x98,
                        0x9C, 0xA0, 0xB0, 0xC0);
        assertThat(SmmuRegs.EVENTQ_PROD).isEqualTo(0x100A8L);
        assertThat(SmmuRegs.EVENTQ_CONS).isEqualTo(0x100ACL);
        assertThat(SmmuRegs.PRIQ_PROD).isEqualTo(0x100C8L);
        assertThat(SmmuRegs.PRIQ_CONS).isEqualTo(0x100CCL);
    }
}
