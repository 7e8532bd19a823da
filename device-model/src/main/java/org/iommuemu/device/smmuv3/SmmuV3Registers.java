package org.iommuemu.device.smmuv3;

import static org.iommuemu.device.regs.FieldMode.READ_ONLY;
import static org.iommuemu.device.regs.FieldMode.READ_WRITE;
import static org.iommuemu.device.regs.FieldMode.WRITE_ONLY;

import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.core.smmuv3.StreamTableBase;
import org.iommuemu.device.regs.Field;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.regs.RegisterFile;

/**
 * The SMMUv3 programming interface: register offsets and field positions (Arm SMMUv3 architecture,
 * "Register overview" and the SMMU_* register descriptions; {@code spec/SMMUV3.md} §1–§3), and the
 * declaration of the non-secure page-0 and page-1 registers for one device. The numbers come from iommu-core's
 * {@link SmmuRegs} (and the field constants of {@link QueueBase}, {@link QueuePointer} and {@link StreamTableBase}),
 * which the drivers program with, so device and driver cannot disagree; the constants here are aliases kept for
 * the device's own code and tests.
 *
 * <p>Fields whose feature the configuration does not advertise are left undeclared, so they are RES0 as
 * the architecture requires: CR0.PRIQEN and the PRI queue registers without PRI, CR0.ATSCHK without ATS,
 * the *_IRQ_CFGn registers without MSI, IRQ_CTRL.PRIQ_IRQEN without PRI. CR0.VMW and CR2.E2H are always
 * RES0 (IDR0.VMW and IDR0.HYP are 0).
 *
 * <p>GBPA is modelled with read-only attribute fields and a write-only UPDATE bit: its after-write hook
 * (installed by {@link SmmuV3Device}) latches the written attributes when UPDATE is 1, so UPDATE always
 * reads 0 and a write without UPDATE changes nothing.
 */
public final class SmmuV3Registers {
    /** Page 1 starts here; EVENTQ_PROD/CONS and PRIQ_PROD/CONS live in it. */
    public static final long PAGE1 = SmmuRegs.PAGE1;
    /** Two 64 KB pages. */
    public static final long MMIO_SIZE = SmmuRegs.MMIO_SIZE;

    public static final long IDR0 = SmmuRegs.IDR0;
    public static final long IDR1 = SmmuRegs.IDR1;
    public static final long IDR2 = SmmuRegs.IDR2;
    public static final long IDR3 = SmmuRegs.IDR3;
    public static final long IDR4 = SmmuRegs.IDR4;
    public static final long IDR5 = SmmuRegs.IDR5;
    public static final long IIDR = SmmuRegs.IIDR;
    public static final long AIDR = SmmuRegs.AIDR;
    public static final long CR0 = SmmuRegs.CR0;
    public static final long CR0ACK = SmmuRegs.CR0ACK;
    public static final long CR1 = SmmuRegs.CR1;
    public static final long CR2 = SmmuRegs.CR2;
    public static final long STATUSR = SmmuRegs.STATUSR;
    public static final long GBPA = SmmuRegs.GBPA;
    public static final long AGBPA = SmmuRegs.AGBPA;
    public static final long IRQ_CTRL = SmmuRegs.IRQ_CTRL;
    public static final long IRQ_CTRLACK = SmmuRegs.IRQ_CTRLACK;
    public static final long GERROR = SmmuRegs.GERROR;
    public static final long GERRORN = SmmuRegs.GERRORN;
    public static final long GERROR_IRQ_CFG0 = SmmuRegs.GERROR_IRQ_CFG0;
    public static final long GERROR_IRQ_CFG1 = SmmuRegs.GERROR_IRQ_CFG1;
    public static final long GERROR_IRQ_CFG2 = SmmuRegs.GERROR_IRQ_CFG2;
    public static final long STRTAB_BASE = SmmuRegs.STRTAB_BASE;
    public static final long STRTAB_BASE_CFG = SmmuRegs.STRTAB_BASE_CFG;
    public static final long CMDQ_BASE = SmmuRegs.CMDQ_BASE;
    public static final long CMDQ_PROD = SmmuRegs.CMDQ_PROD;
    public static final long CMDQ_CONS = SmmuRegs.CMDQ_CONS;
    public static final long EVENTQ_BASE = SmmuRegs.EVENTQ_BASE;
    /** Page-0 copy of EVENTQ_PROD (Cavium PAGE0_REGS_ONLY quirk, QEMU's page folding). */
    public static final long EVENTQ_PROD_PAGE0 = SmmuRegs.EVENTQ_PROD_PAGE0;
    public static final long EVENTQ_CONS_PAGE0 = SmmuRegs.EVENTQ_CONS_PAGE0;
    public static final long EVENTQ_IRQ_CFG0 = SmmuRegs.EVENTQ_IRQ_CFG0;
    public static final long EVENTQ_IRQ_CFG1 = SmmuRegs.EVENTQ_IRQ_CFG1;
    public static final long EVENTQ_IRQ_CFG2 = SmmuRegs.EVENTQ_IRQ_CFG2;
    public static final long PRIQ_BASE = SmmuRegs.PRIQ_BASE;
    public static final long PRIQ_PROD_PAGE0 = SmmuRegs.PRIQ_PROD_PAGE0;
    public static final long PRIQ_CONS_PAGE0 = SmmuRegs.PRIQ_CONS_PAGE0;
    public static final long PRIQ_IRQ_CFG0 = SmmuRegs.PRIQ_IRQ_CFG0;
    public static final long PRIQ_IRQ_CFG1 = SmmuRegs.PRIQ_IRQ_CFG1;
    public static final long PRIQ_IRQ_CFG2 = SmmuRegs.PRIQ_IRQ_CFG2;
    public static final long EVENTQ_PROD = SmmuRegs.EVENTQ_PROD;
    public static final long EVENTQ_CONS = SmmuRegs.EVENTQ_CONS;
    public static final long PRIQ_PROD = SmmuRegs.PRIQ_PROD;
    public static final long PRIQ_CONS = SmmuRegs.PRIQ_CONS;
    /** PIDR4 (first of the identification block PIDR4–7, PIDR0–3, CIDR0–3). */
    public static final long PIDR4 = SmmuRegs.PIDR4;
    public static final long CIDR3 = SmmuRegs.CIDR3;

    // IDR0 fields (bit positions)
    public static final int IDR0_S2P = SmmuRegs.IDR0_S2P;
    public static final int IDR0_S1P = SmmuRegs.IDR0_S1P;
    public static final int IDR0_TTF = SmmuRegs.IDR0_TTF;
    public static final int IDR0_COHACC = SmmuRegs.IDR0_COHACC;
    public static final int IDR0_BTM = SmmuRegs.IDR0_BTM;
    public static final int IDR0_HTTU = SmmuRegs.IDR0_HTTU;
    public static final int IDR0_DORMHINT = SmmuRegs.IDR0_DORMHINT;
    public static final int IDR0_HYP = SmmuRegs.IDR0_HYP;
    public static final int IDR0_ATS = SmmuRegs.IDR0_ATS;
    public static final int IDR0_NS1ATS = SmmuRegs.IDR0_NS1ATS;
    public static final int IDR0_ASID16 = SmmuRegs.IDR0_ASID16;
    public static final int IDR0_MSI = SmmuRegs.IDR0_MSI;
    public static final int IDR0_SEV = SmmuRegs.IDR0_SEV;
    public static final int IDR0_ATOS = SmmuRegs.IDR0_ATOS;
    public static final int IDR0_PRI = SmmuRegs.IDR0_PRI;
    public static final int IDR0_VMW = SmmuRegs.IDR0_VMW;
    public static final int IDR0_VMID16 = SmmuRegs.IDR0_VMID16;
    public static final int IDR0_CD2L = SmmuRegs.IDR0_CD2L;
    public static final int IDR0_VATOS = SmmuRegs.IDR0_VATOS;
    public static final int IDR0_TTENDIAN = SmmuRegs.IDR0_TTENDIAN;
    public static final int IDR0_ATSRECERR = SmmuRegs.IDR0_ATSRECERR;
    public static final int IDR0_STALL_MODEL = SmmuRegs.IDR0_STALL_MODEL;
    public static final int IDR0_TERM_MODEL = SmmuRegs.IDR0_TERM_MODEL;
    public static final int IDR0_ST_LEVEL = SmmuRegs.IDR0_ST_LEVEL;
    public static final int IDR0_RME_IMPL = SmmuRegs.IDR0_RME_IMPL;

    // IDR1
    public static final int IDR1_SIDSIZE = SmmuRegs.IDR1_SIDSIZE;
    public static final int IDR1_SSIDSIZE = SmmuRegs.IDR1_SSIDSIZE;
    public static final int IDR1_PRIQS = SmmuRegs.IDR1_PRIQS;
    public static final int IDR1_EVENTQS = SmmuRegs.IDR1_EVENTQS;
    public static final int IDR1_CMDQS = SmmuRegs.IDR1_CMDQS;
    public static final int IDR1_ATTR_PERMS_OVR = SmmuRegs.IDR1_ATTR_PERMS_OVR;
    public static final int IDR1_ATTR_TYPES_OVR = SmmuRegs.IDR1_ATTR_TYPES_OVR;
    public static final int IDR1_REL = SmmuRegs.IDR1_REL;
    public static final int IDR1_QUEUES_PRESET = SmmuRegs.IDR1_QUEUES_PRESET;
    public static final int IDR1_TABLES_PRESET = SmmuRegs.IDR1_TABLES_PRESET;
    public static final int IDR1_ECMDQ = SmmuRegs.IDR1_ECMDQ;

    // IDR3
    public static final int IDR3_HAD = SmmuRegs.IDR3_HAD;
    public static final int IDR3_PBHA = SmmuRegs.IDR3_PBHA;
    public static final int IDR3_XNX = SmmuRegs.IDR3_XNX;
    public static final int IDR3_PPS = SmmuRegs.IDR3_PPS;
    public static final int IDR3_MPAM = SmmuRegs.IDR3_MPAM;
    public static final int IDR3_FWB = SmmuRegs.IDR3_FWB;
    public static final int IDR3_STT = SmmuRegs.IDR3_STT;
    public static final int IDR3_RIL = SmmuRegs.IDR3_RIL;
    public static final int IDR3_BBML = SmmuRegs.IDR3_BBML;
    public static final int IDR3_E0PD = SmmuRegs.IDR3_E0PD;
    public static final int IDR3_PTWNNC = SmmuRegs.IDR3_PTWNNC;
    public static final int IDR3_DPT = SmmuRegs.IDR3_DPT;

    // IDR5
    public static final int IDR5_OAS = SmmuRegs.IDR5_OAS;
    public static final int IDR5_GRAN4K = SmmuRegs.IDR5_GRAN4K;
    public static final int IDR5_GRAN16K = SmmuRegs.IDR5_GRAN16K;
    public static final int IDR5_GRAN64K = SmmuRegs.IDR5_GRAN64K;
    public static final int IDR5_VAX = SmmuRegs.IDR5_VAX;
    public static final int IDR5_STALL_MAX = SmmuRegs.IDR5_STALL_MAX;

    // CR0 / CR0ACK
    public static final int CR0_SMMUEN = SmmuRegs.CR0_SMMUEN;
    public static final int CR0_PRIQEN = SmmuRegs.CR0_PRIQEN;
    public static final int CR0_EVENTQEN = SmmuRegs.CR0_EVENTQEN;
    public static final int CR0_CMDQEN = SmmuRegs.CR0_CMDQEN;
    public static final int CR0_ATSCHK = SmmuRegs.CR0_ATSCHK;

    // GBPA
    public static final int GBPA_ABORT = SmmuRegs.GBPA_ABORT;
    public static final int GBPA_UPDATE = SmmuRegs.GBPA_UPDATE;
    /** GBPA after reset: bypass, SHCFG=0b01 (use the incoming shareability). */
    public static final long GBPA_RESET = SmmuRegs.GBPA_RESET;

    // IRQ_CTRL / IRQ_CTRLACK
    public static final int IRQ_CTRL_GERROR_IRQEN = SmmuRegs.IRQ_CTRL_GERROR_IRQEN;
    public static final int IRQ_CTRL_PRIQ_IRQEN = SmmuRegs.IRQ_CTRL_PRIQ_IRQEN;
    public static final int IRQ_CTRL_EVENTQ_IRQEN = SmmuRegs.IRQ_CTRL_EVENTQ_IRQEN;

    // GERROR / GERRORN
    public static final int GERROR_CMDQ_ERR = SmmuRegs.GERROR_CMDQ_ERR;
    public static final int GERROR_EVENTQ_ABT_ERR = SmmuRegs.GERROR_EVENTQ_ABT_ERR;
    public static final int GERROR_PRIQ_ABT_ERR = SmmuRegs.GERROR_PRIQ_ABT_ERR;
    public static final int GERROR_MSI_CMDQ_ABT_ERR = SmmuRegs.GERROR_MSI_CMDQ_ABT_ERR;
    public static final int GERROR_MSI_EVENTQ_ABT_ERR = SmmuRegs.GERROR_MSI_EVENTQ_ABT_ERR;
    public static final int GERROR_MSI_PRIQ_ABT_ERR = SmmuRegs.GERROR_MSI_PRIQ_ABT_ERR;
    public static final int GERROR_MSI_GERROR_ABT_ERR = SmmuRegs.GERROR_MSI_GERROR_ABT_ERR;
    public static final int GERROR_SFM_ERR = SmmuRegs.GERROR_SFM_ERR;

    /** SMMUv3.2 (AIDR ArchMajorRev=0, ArchMinorRev=2). */
    public static final long AIDR_V3_2 = SmmuRegs.AIDR_V3_2;

    /**
     * The identification block PIDR4–7, PIDR0–3, CIDR0–3 in offset order from 0xFD0: the values QEMU's
     * SMMUv3 model presents (an Arm CoreSight-style ID of an MMU-600).
     */
    static final int[] ID_BLOCK = {0x04, 0x00, 0x00, 0x00, 0x84, 0xB4, 0xF0, 0x10, 0x0D, 0xF0, 0x05, 0xB1};
    static final String[] ID_BLOCK_NAMES = {
        "PIDR4", "PIDR5", "PIDR6", "PIDR7", "PIDR0", "PIDR1", "PIDR2", "PIDR3", "CIDR0", "CIDR1", "CIDR2", "CIDR3"
    };

    final RegisterFile file;
    final Register cr0;
    final Register cr0ack;
    final Register gbpa;
    final Register irqCtrl;
    final Register irqCtrlAck;
    final Register gerror;
    final Register gerrorn;
    final Register eventqProd;
    final Register eventqCons;
    final Register priqProd;
    final Register priqCons;
    /** The effective SMMUEN, as acknowledged. */
    final Field smmuEnabled;
    final Field gbpaAbort;
    final Field gbpaUpdate;

    SmmuV3Registers(String deviceName, SmmuV3Config c) {
        file = new RegisterFile(deviceName, MMIO_SIZE);
        RegisterFile f = file;

        Register idr0 = f.reg32(IDR0, "IDR0", c.idr0());
        ro(idr0, "S2P", IDR0_S2P, 1);
        ro(idr0, "S1P", IDR0_S1P, 1);
        ro(idr0, "TTF", IDR0_TTF, SmmuRegs.IDR0_TTF_WIDTH);
        ro(idr0, "COHACC", IDR0_COHACC, 1);
        ro(idr0, "BTM", IDR0_BTM, 1);
        ro(idr0, "HTTU", IDR0_HTTU, SmmuRegs.IDR0_HTTU_WIDTH);
        ro(idr0, "DORMHINT", IDR0_DORMHINT, 1);
        ro(idr0, "HYP", IDR0_HYP, 1);
        ro(idr0, "ATS", IDR0_ATS, 1);
        ro(idr0, "NS1ATS", IDR0_NS1ATS, 1);
        ro(idr0, "ASID16", IDR0_ASID16, 1);
        ro(idr0, "MSI", IDR0_MSI, 1);
        ro(idr0, "SEV", IDR0_SEV, 1);
        ro(idr0, "ATOS", IDR0_ATOS, 1);
        ro(idr0, "PRI", IDR0_PRI, 1);
        ro(idr0, "VMW", IDR0_VMW, 1);
        ro(idr0, "VMID16", IDR0_VMID16, 1);
        ro(idr0, "CD2L", IDR0_CD2L, 1);
        ro(idr0, "VATOS", IDR0_VATOS, 1);
        ro(idr0, "TTENDIAN", IDR0_TTENDIAN, SmmuRegs.IDR0_TTENDIAN_WIDTH);
        ro(idr0, "ATSRECERR", IDR0_ATSRECERR, 1);
        ro(idr0, "STALL_MODEL", IDR0_STALL_MODEL, SmmuRegs.IDR0_STALL_MODEL_WIDTH);
        ro(idr0, "TERM_MODEL", IDR0_TERM_MODEL, 1);
        ro(idr0, "ST_LEVEL", IDR0_ST_LEVEL, SmmuRegs.IDR0_ST_LEVEL_WIDTH);
        ro(idr0, "RME_IMPL", IDR0_RME_IMPL, 1);

        Register idr1 = f.reg32(IDR1, "IDR1", c.idr1());
        ro(idr1, "SIDSIZE", IDR1_SIDSIZE, SmmuRegs.IDR1_SIDSIZE_WIDTH);
        ro(idr1, "SSIDSIZE", IDR1_SSIDSIZE, SmmuRegs.IDR1_SSIDSIZE_WIDTH);
        ro(idr1, "PRIQS", IDR1_PRIQS, SmmuRegs.IDR1_PRIQS_WIDTH);
        ro(idr1, "EVENTQS", IDR1_EVENTQS, SmmuRegs.IDR1_EVENTQS_WIDTH);
        ro(idr1, "CMDQS", IDR1_CMDQS, SmmuRegs.IDR1_CMDQS_WIDTH);
        ro(idr1, "ATTR_PERMS_OVR", IDR1_ATTR_PERMS_OVR, 1);
        ro(idr1, "ATTR_TYPES_OVR", IDR1_ATTR_TYPES_OVR, 1);
        ro(idr1, "REL", IDR1_REL, 1);
        ro(idr1, "QUEUES_PRESET", IDR1_QUEUES_PRESET, 1);
        ro(idr1, "TABLES_PRESET", IDR1_TABLES_PRESET, 1);
        ro(idr1, "ECMDQ", IDR1_ECMDQ, 1);

        ro(f.reg32(IDR2, "IDR2", c.idr2()), "BA_VATOS", 0, 10);

        Register idr3 = f.reg32(IDR3, "IDR3", c.idr3());
        ro(idr3, "HAD", IDR3_HAD, 1);
        ro(idr3, "PBHA", IDR3_PBHA, 1);
        ro(idr3, "XNX", IDR3_XNX, 1);
        ro(idr3, "PPS", IDR3_PPS, 1);
        ro(idr3, "MPAM", IDR3_MPAM, 1);
        ro(idr3, "FWB", IDR3_FWB, 1);
        ro(idr3, "STT", IDR3_STT, 1);
        ro(idr3, "RIL", IDR3_RIL, 1);
        ro(idr3, "BBML", IDR3_BBML, SmmuRegs.IDR3_BBML_WIDTH);
        ro(idr3, "E0PD", IDR3_E0PD, 1);
        ro(idr3, "PTWNNC", IDR3_PTWNNC, 1);
        ro(idr3, "DPT", IDR3_DPT, 1);

        ro(f.reg32(IDR4, "IDR4", c.idr4()), "IMPDEF", 0, 32);

        Register idr5 = f.reg32(IDR5, "IDR5", c.idr5());
        ro(idr5, "OAS", IDR5_OAS, SmmuRegs.IDR5_OAS_WIDTH);
        ro(idr5, "GRAN4K", IDR5_GRAN4K, 1);
        ro(idr5, "GRAN16K", IDR5_GRAN16K, 1);
        ro(idr5, "GRAN64K", IDR5_GRAN64K, 1);
        ro(idr5, "VAX", IDR5_VAX, SmmuRegs.IDR5_VAX_WIDTH);
        ro(idr5, "STALL_MAX", IDR5_STALL_MAX, SmmuRegs.IDR5_STALL_MAX_WIDTH);

        // IIDR zero: no implementer, so drivers apply no implementation errata workarounds.
        Register iidr = f.reg32(IIDR, "IIDR", 0);
        ro(iidr, "IMPLEMENTER", 0, 12);
        ro(iidr, "REVISION", 12, 4);
        ro(iidr, "VARIANT", 16, 4);
        ro(iidr, "PRODUCTID", 20, 12);

        Register aidr = f.reg32(AIDR, "AIDR", AIDR_V3_2);
        ro(aidr, "ARCHMINORREV", 0, 4);
        ro(aidr, "ARCHMAJORREV", 4, 4);

        cr0 = f.reg32(CR0, "CR0", 0);
        cr0ack = f.reg32(CR0ACK, "CR0ACK", 0);
        for (Register r : new Register[] {cr0, cr0ack}) {
            var mode = r == cr0 ? READ_WRITE : READ_ONLY;
            r.flag("SMMUEN", CR0_SMMUEN, mode);
            if (c.pri()) {
                r.flag("PRIQEN", CR0_PRIQEN, mode);
            }
            r.flag("EVENTQEN", CR0_EVENTQEN, mode);
            r.flag("CMDQEN", CR0_CMDQEN, mode);
            if (c.ats()) {
                r.flag("ATSCHK", CR0_ATSCHK, mode);
            }
        }

        f.reg32(CR1, "CR1", 0)
                .field("QUEUE_IC", SmmuRegs.CR1_QUEUE_IC, SmmuRegs.CR1_FIELD_WIDTH, READ_WRITE)
                .field("QUEUE_OC", SmmuRegs.CR1_QUEUE_OC, SmmuRegs.CR1_FIELD_WIDTH, READ_WRITE)
                .field("QUEUE_SH", SmmuRegs.CR1_QUEUE_SH, SmmuRegs.CR1_FIELD_WIDTH, READ_WRITE)
                .field("TABLE_IC", SmmuRegs.CR1_TABLE_IC, SmmuRegs.CR1_FIELD_WIDTH, READ_WRITE)
                .field("TABLE_OC", SmmuRegs.CR1_TABLE_OC, SmmuRegs.CR1_FIELD_WIDTH, READ_WRITE)
                .field("TABLE_SH", SmmuRegs.CR1_TABLE_SH, SmmuRegs.CR1_FIELD_WIDTH, READ_WRITE);
        f.reg32(CR2, "CR2", 0)
                .flag("RECINVSID", SmmuRegs.CR2_RECINVSID, READ_WRITE)
                .flag("PTM", SmmuRegs.CR2_PTM, READ_WRITE);
        f.reg32(STATUSR, "STATUSR", 0).flag("DORMANT", 0, READ_ONLY);

        gbpa = f.reg32(GBPA, "GBPA", GBPA_RESET)
                .field("MEMATTR", SmmuRegs.GBPA_MEMATTR, 4, READ_ONLY)
                .flag("MTCFG", SmmuRegs.GBPA_MTCFG, READ_ONLY)
                .field("ALLOCCFG", SmmuRegs.GBPA_ALLOCCFG, 4, READ_ONLY)
                .field("SHCFG", SmmuRegs.GBPA_SHCFG, 2, READ_ONLY)
                .field("PRIVCFG", SmmuRegs.GBPA_PRIVCFG, 2, READ_ONLY)
                .field("INSTCFG", SmmuRegs.GBPA_INSTCFG, 2, READ_ONLY)
                .flag("ABORT", GBPA_ABORT, READ_ONLY)
                .flag("UPDATE", GBPA_UPDATE, WRITE_ONLY);
        // No implementation-defined attributes: AGBPA is all RES0.
        f.reg32(AGBPA, "AGBPA", 0);

        irqCtrl = f.reg32(IRQ_CTRL, "IRQ_CTRL", 0);
        irqCtrlAck = f.reg32(IRQ_CTRLACK, "IRQ_CTRLACK", 0);
        for (Register r : new Register[] {irqCtrl, irqCtrlAck}) {
            var mode = r == irqCtrl ? READ_WRITE : READ_ONLY;
            r.flag("GERROR_IRQEN", IRQ_CTRL_GERROR_IRQEN, mode);
            if (c.pri()) {
                r.flag("PRIQ_IRQEN", IRQ_CTRL_PRIQ_IRQEN, mode);
            }
            r.flag("EVENTQ_IRQEN", IRQ_CTRL_EVENTQ_IRQEN, mode);
        }

        gerror = f.reg32(GERROR, "GERROR", 0);
        gerrorn = f.reg32(GERRORN, "GERRORN", 0);
        for (Register r : new Register[] {gerror, gerrorn}) {
            var mode = r == gerror ? READ_ONLY : READ_WRITE;
            r.flag("CMDQ_ERR", GERROR_CMDQ_ERR, mode)
                    .flag("EVENTQ_ABT_ERR", GERROR_EVENTQ_ABT_ERR, mode)
                    .flag("PRIQ_ABT_ERR", GERROR_PRIQ_ABT_ERR, mode)
                    .flag("MSI_CMDQ_ABT_ERR", GERROR_MSI_CMDQ_ABT_ERR, mode)
                    .flag("MSI_EVENTQ_ABT_ERR", GERROR_MSI_EVENTQ_ABT_ERR, mode)
                    .flag("MSI_PRIQ_ABT_ERR", GERROR_MSI_PRIQ_ABT_ERR, mode)
                    .flag("MSI_GERROR_ABT_ERR", GERROR_MSI_GERROR_ABT_ERR, mode)
                    .flag("SFM_ERR", GERROR_SFM_ERR, mode);
        }
        irqConfig(f, "GERROR", GERROR_IRQ_CFG0, GERROR_IRQ_CFG1, GERROR_IRQ_CFG2, c.msi());

        f.reg64(STRTAB_BASE, "STRTAB_BASE", 0)
                .field("ADDR", StreamTableBase.ADDR.lo(), StreamTableBase.ADDR.width(), READ_WRITE)
                .flag("RA", StreamTableBase.RA.lo(), READ_WRITE);
        f.reg32(STRTAB_BASE_CFG, "STRTAB_BASE_CFG", 0)
                .field("LOG2SIZE", StreamTableBase.LOG2SIZE.lo(), StreamTableBase.LOG2SIZE.width(), READ_WRITE)
                .field("SPLIT", StreamTableBase.SPLIT.lo(), StreamTableBase.SPLIT.width(), READ_WRITE)
                .field("FMT", StreamTableBase.FMT.lo(), StreamTableBase.FMT.width(), READ_WRITE);

        queueBase(f.reg64(CMDQ_BASE, "CMDQ_BASE", 0), "RA");
        // PROD/CONS hold index and wrap bit together: [log2 max size : 0].
        f.reg32(CMDQ_PROD, "CMDQ_PROD", 0).field("WR", 0, c.cmdqLog2() + 1, READ_WRITE);
        f.reg32(CMDQ_CONS, "CMDQ_CONS", 0)
                .field("RD", 0, c.cmdqLog2() + 1, READ_WRITE)
                .field("ERR", QueuePointer.CMDQ_CONS_ERR.lo(), QueuePointer.CMDQ_CONS_ERR.width(), READ_ONLY);

        queueBase(f.reg64(EVENTQ_BASE, "EVENTQ_BASE", 0), "WA");
        eventqProd = f.reg32(EVENTQ_PROD, "EVENTQ_PROD", 0)
                .field("WR", 0, c.eventqLog2() + 1, READ_WRITE)
                .flag("OVFLG", QueuePointer.OVERFLOW_BIT, READ_WRITE);
        eventqCons = f.reg32(EVENTQ_CONS, "EVENTQ_CONS", 0)
                .field("RD", 0, c.eventqLog2() + 1, READ_WRITE)
                .flag("OVACKFLG", QueuePointer.OVERFLOW_BIT, READ_WRITE);
        f.alias(EVENTQ_PROD_PAGE0, eventqProd);
        f.alias(EVENTQ_CONS_PAGE0, eventqCons);
        irqConfig(f, "EVENTQ", EVENTQ_IRQ_CFG0, EVENTQ_IRQ_CFG1, EVENTQ_IRQ_CFG2, c.msi());

        Register priqBase = f.reg64(PRIQ_BASE, "PRIQ_BASE", 0);
        priqProd = f.reg32(PRIQ_PROD, "PRIQ_PROD", 0);
        priqCons = f.reg32(PRIQ_CONS, "PRIQ_CONS", 0);
        if (c.pri()) {
            queueBase(priqBase, "WA");
            priqProd.field("WR", 0, c.priqLog2() + 1, READ_WRITE).flag("OVFLG", QueuePointer.OVERFLOW_BIT, READ_WRITE);
            priqCons.field("RD", 0, c.priqLog2() + 1, READ_WRITE).flag("OVACKFLG", QueuePointer.OVERFLOW_BIT, READ_WRITE);
        }
        f.alias(PRIQ_PROD_PAGE0, priqProd);
        f.alias(PRIQ_CONS_PAGE0, priqCons);
        irqConfig(f, "PRIQ", PRIQ_IRQ_CFG0, PRIQ_IRQ_CFG1, PRIQ_IRQ_CFG2, c.msi() && c.pri());

        for (int i = 0; i < ID_BLOCK.length; i++) {
            ro(f.reg32(PIDR4 + 4L * i, ID_BLOCK_NAMES[i], ID_BLOCK[i]), "ID", 0, 8);
        }

        smmuEnabled = cr0ack.fieldHandle("SMMUEN");
        gbpaAbort = gbpa.fieldHandle("ABORT");
        gbpaUpdate = gbpa.fieldHandle("UPDATE");
    }

    private static void ro(Register r, String name, int lo, int width) {
        r.field(name, lo, width, READ_ONLY);
    }

    private static void queueBase(Register base, String hint) {
        base.field("LOG2SIZE", QueueBase.LOG2SIZE.lo(), QueueBase.LOG2SIZE.width(), READ_WRITE)
                .field("ADDR", QueueBase.ADDR.lo(), QueueBase.ADDR.width(), READ_WRITE)
                .flag(hint, QueueBase.ALLOCATE_HINT.lo(), READ_WRITE);
    }

    /** MSI configuration registers CFG0 (address), CFG1 (data), CFG2 (attributes); RES0 without MSI. */
    private static void irqConfig(RegisterFile f, String prefix, long cfg0, long cfg1, long cfg2, boolean msi) {
        Register r0 = f.reg64(cfg0, prefix + "_IRQ_CFG0", 0);
        Register r1 = f.reg32(cfg1, prefix + "_IRQ_CFG1", 0);
        Register r2 = f.reg32(cfg2, prefix + "_IRQ_CFG2", 0);
        if (msi) {
            r0.field("ADDR", SmmuRegs.IRQ_CFG0_ADDR, SmmuRegs.IRQ_CFG0_ADDR_WIDTH, READ_WRITE);
            r1.field("DATA", 0, 32, READ_WRITE);
            r2.field("MEMATTR", SmmuRegs.IRQ_CFG2_MEMATTR, 4, READ_WRITE).field("SH", SmmuRegs.IRQ_CFG2_SH, 2, READ_WRITE);
        }
    }
}
