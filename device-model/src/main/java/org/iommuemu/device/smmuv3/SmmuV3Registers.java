package org.iommuemu.device.smmuv3;

import static org.iommuemu.device.regs.FieldMode.READ_ONLY;
import static org.iommuemu.device.regs.FieldMode.READ_WRITE;
import static org.iommuemu.device.regs.FieldMode.WRITE_ONLY;

import org.iommuemu.device.regs.Field;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.regs.RegisterFile;

/**
 * The SMMUv3 programming interface: register offsets and field positions (Arm SMMUv3 architecture,
 * "Register overview" and the SMMU_* register descriptions; {@code spec/SMMUV3.md} §1–§3), and the
 * declaration of the non-secure page-0 and page-1 registers for one device.
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
    public static final long PAGE1 = 0x1_0000;
    /** Two 64 KB pages. */
    public static final long MMIO_SIZE = 0x2_0000;

    public static final long IDR0 = 0x00;
    public static final long IDR1 = 0x04;
    public static final long IDR2 = 0x08;
    public static final long IDR3 = 0x0C;
    public static final long IDR4 = 0x10;
    public static final long IDR5 = 0x14;
    public static final long IIDR = 0x18;
    public static final long AIDR = 0x1C;
    public static final long CR0 = 0x20;
    public static final long CR0ACK = 0x24;
    public static final long CR1 = 0x28;
    public static final long CR2 = 0x2C;
    public static final long STATUSR = 0x40;
    public static final long GBPA = 0x44;
    public static final long AGBPA = 0x48;
    public static final long IRQ_CTRL = 0x50;
    public static final long IRQ_CTRLACK = 0x54;
    public static final long GERROR = 0x60;
    public static final long GERRORN = 0x64;
    public static final long GERROR_IRQ_CFG0 = 0x68;
    public static final long GERROR_IRQ_CFG1 = 0x70;
    public static final long GERROR_IRQ_CFG2 = 0x74;
    public static final long STRTAB_BASE = 0x80;
    public static final long STRTAB_BASE_CFG = 0x88;
    public static final long CMDQ_BASE = 0x90;
    public static final long CMDQ_PROD = 0x98;
    public static final long CMDQ_CONS = 0x9C;
    public static final long EVENTQ_BASE = 0xA0;
    /** Page-0 copy of EVENTQ_PROD (Cavium PAGE0_REGS_ONLY quirk, QEMU's page folding). */
    public static final long EVENTQ_PROD_PAGE0 = 0xA8;
    public static final long EVENTQ_CONS_PAGE0 = 0xAC;
    public static final long EVENTQ_IRQ_CFG0 = 0xB0;
    public static final long EVENTQ_IRQ_CFG1 = 0xB8;
    public static final long EVENTQ_IRQ_CFG2 = 0xBC;
    public static final long PRIQ_BASE = 0xC0;
    public static final long PRIQ_PROD_PAGE0 = 0xC8;
    public static final long PRIQ_CONS_PAGE0 = 0xCC;
    public static final long PRIQ_IRQ_CFG0 = 0xD0;
    public static final long PRIQ_IRQ_CFG1 = 0xD8;
    public static final long PRIQ_IRQ_CFG2 = 0xDC;
    public static final long EVENTQ_PROD = PAGE1 + 0xA8;
    public static final long EVENTQ_CONS = PAGE1 + 0xAC;
    public static final long PRIQ_PROD = PAGE1 + 0xC8;
    public static final long PRIQ_CONS = PAGE1 + 0xCC;
    /** PIDR4 (first of the identification block PIDR4–7, PIDR0–3, CIDR0–3). */
    public static final long PIDR4 = 0xFD0;
    public static final long CIDR3 = 0xFFC;

    // IDR0 fields (bit positions)
    public static final int IDR0_S2P = 0;
    public static final int IDR0_S1P = 1;
    public static final int IDR0_TTF = 2;
    public static final int IDR0_COHACC = 4;
    public static final int IDR0_BTM = 5;
    public static final int IDR0_HTTU = 6;
    public static final int IDR0_DORMHINT = 8;
    public static final int IDR0_HYP = 9;
    public static final int IDR0_ATS = 10;
    public static final int IDR0_NS1ATS = 11;
    public static final int IDR0_ASID16 = 12;
    public static final int IDR0_MSI = 13;
    public static final int IDR0_SEV = 14;
    public static final int IDR0_ATOS = 15;
    public static final int IDR0_PRI = 16;
    public static final int IDR0_VMW = 17;
    public static final int IDR0_VMID16 = 18;
    public static final int IDR0_CD2L = 19;
    public static final int IDR0_VATOS = 20;
    public static final int IDR0_TTENDIAN = 21;
    public static final int IDR0_ATSRECERR = 23;
    public static final int IDR0_STALL_MODEL = 24;
    public static final int IDR0_TERM_MODEL = 26;
    public static final int IDR0_ST_LEVEL = 27;
    public static final int IDR0_RME_IMPL = 30;

    // IDR1
    public static final int IDR1_SIDSIZE = 0;
    public static final int IDR1_SSIDSIZE = 6;
    public static final int IDR1_PRIQS = 11;
    public static final int IDR1_EVENTQS = 16;
    public static final int IDR1_CMDQS = 21;
    public static final int IDR1_ATTR_PERMS_OVR = 26;
    public static final int IDR1_ATTR_TYPES_OVR = 27;
    public static final int IDR1_REL = 28;
    public static final int IDR1_QUEUES_PRESET = 29;
    public static final int IDR1_TABLES_PRESET = 30;
    public static final int IDR1_ECMDQ = 31;

    // IDR3
    public static final int IDR3_HAD = 2;
    public static final int IDR3_PBHA = 3;
    public static final int IDR3_XNX = 4;
    public static final int IDR3_PPS = 5;
    public static final int IDR3_MPAM = 7;
    public static final int IDR3_FWB = 8;
    public static final int IDR3_STT = 9;
    public static final int IDR3_RIL = 10;
    public static final int IDR3_BBML = 11;
    public static final int IDR3_E0PD = 13;
    public static final int IDR3_PTWNNC = 14;
    public static final int IDR3_DPT = 15;

    // IDR5
    public static final int IDR5_OAS = 0;
    public static final int IDR5_GRAN4K = 4;
    public static final int IDR5_GRAN16K = 5;
    public static final int IDR5_GRAN64K = 6;
    public static final int IDR5_VAX = 10;
    public static final int IDR5_STALL_MAX = 16;

    // CR0 / CR0ACK
    public static final int CR0_SMMUEN = 0;
    public static final int CR0_PRIQEN = 1;
    public static final int CR0_EVENTQEN = 2;
    public static final int CR0_CMDQEN = 3;
    public static final int CR0_ATSCHK = 4;

    // GBPA
    public static final int GBPA_ABORT = 20;
    public static final int GBPA_UPDATE = 31;
    /** GBPA after reset: bypass, SHCFG=0b01 (use the incoming shareability). */
    public static final long GBPA_RESET = 0x1000;

    // IRQ_CTRL / IRQ_CTRLACK
    public static final int IRQ_CTRL_GERROR_IRQEN = 0;
    public static final int IRQ_CTRL_PRIQ_IRQEN = 1;
    public static final int IRQ_CTRL_EVENTQ_IRQEN = 2;

    // GERROR / GERRORN
    public static final int GERROR_CMDQ_ERR = 0;
    public static final int GERROR_EVENTQ_ABT_ERR = 2;
    public static final int GERROR_PRIQ_ABT_ERR = 3;
    public static final int GERROR_MSI_CMDQ_ABT_ERR = 4;
    public static final int GERROR_MSI_EVENTQ_ABT_ERR = 5;
    public static final int GERROR_MSI_PRIQ_ABT_ERR = 6;
    public static final int GERROR_MSI_GERROR_ABT_ERR = 7;
    public static final int GERROR_SFM_ERR = 8;

    /** SMMUv3.2 (AIDR ArchMajorRev=0, ArchMinorRev=2). */
    public static final long AIDR_V3_2 = 0x02;

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
        ro(idr0, "TTF", IDR0_TTF, 2);
        ro(idr0, "COHACC", IDR0_COHACC, 1);
        ro(idr0, "BTM", IDR0_BTM, 1);
        ro(idr0, "HTTU", IDR0_HTTU, 2);
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
        ro(idr0, "TTENDIAN", IDR0_TTENDIAN, 2);
        ro(idr0, "ATSRECERR", IDR0_ATSRECERR, 1);
        ro(idr0, "STALL_MODEL", IDR0_STALL_MODEL, 2);
        ro(idr0, "TERM_MODEL", IDR0_TERM_MODEL, 1);
        ro(idr0, "ST_LEVEL", IDR0_ST_LEVEL, 2);
        ro(idr0, "RME_IMPL", IDR0_RME_IMPL, 1);

        Register idr1 = f.reg32(IDR1, "IDR1", c.idr1());
        ro(idr1, "SIDSIZE", IDR1_SIDSIZE, 6);
        ro(idr1, "SSIDSIZE", IDR1_SSIDSIZE, 5);
        ro(idr1, "PRIQS", IDR1_PRIQS, 5);
        ro(idr1, "EVENTQS", IDR1_EVENTQS, 5);
        ro(idr1, "CMDQS", IDR1_CMDQS, 5);
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
        ro(idr3, "BBML", IDR3_BBML, 2);
        ro(idr3, "E0PD", IDR3_E0PD, 1);
        ro(idr3, "PTWNNC", IDR3_PTWNNC, 1);
        ro(idr3, "DPT", IDR3_DPT, 1);

        ro(f.reg32(IDR4, "IDR4", c.idr4()), "IMPDEF", 0, 32);

        Register idr5 = f.reg32(IDR5, "IDR5", c.idr5());
        ro(idr5, "OAS", IDR5_OAS, 3);
        ro(idr5, "GRAN4K", IDR5_GRAN4K, 1);
        ro(idr5, "GRAN16K", IDR5_GRAN16K, 1);
        ro(idr5, "GRAN64K", IDR5_GRAN64K, 1);
        ro(idr5, "VAX", IDR5_VAX, 2);
        ro(idr5, "STALL_MAX", IDR5_STALL_MAX, 16);

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
                .field("QUEUE_IC", 0, 2, READ_WRITE)
                .field("QUEUE_OC", 2, 2, READ_WRITE)
                .field("QUEUE_SH", 4, 2, READ_WRITE)
                .field("TABLE_IC", 6, 2, READ_WRITE)
                .field("TABLE_OC", 8, 2, READ_WRITE)
                .field("TABLE_SH", 10, 2, READ_WRITE);
        f.reg32(CR2, "CR2", 0)
                .flag("RECINVSID", 1, READ_WRITE)
                .flag("PTM", 2, READ_WRITE);
        f.reg32(STATUSR, "STATUSR", 0).flag("DORMANT", 0, READ_ONLY);

        gbpa = f.reg32(GBPA, "GBPA", GBPA_RESET)
                .field("MEMATTR", 0, 4, READ_ONLY)
                .flag("MTCFG", 4, READ_ONLY)
                .field("ALLOCCFG", 8, 4, READ_ONLY)
                .field("SHCFG", 12, 2, READ_ONLY)
                .field("PRIVCFG", 16, 2, READ_ONLY)
                .field("INSTCFG", 18, 2, READ_ONLY)
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
                .field("ADDR", 6, 46, READ_WRITE)
                .flag("RA", 62, READ_WRITE);
        f.reg32(STRTAB_BASE_CFG, "STRTAB_BASE_CFG", 0)
                .field("LOG2SIZE", 0, 6, READ_WRITE)
                .field("SPLIT", 6, 5, READ_WRITE)
                .field("FMT", 16, 2, READ_WRITE);

        queueBase(f.reg64(CMDQ_BASE, "CMDQ_BASE", 0), "RA");
        // PROD/CONS hold index and wrap bit together: [log2 max size : 0].
        f.reg32(CMDQ_PROD, "CMDQ_PROD", 0).field("WR", 0, c.cmdqLog2() + 1, READ_WRITE);
        f.reg32(CMDQ_CONS, "CMDQ_CONS", 0)
                .field("RD", 0, c.cmdqLog2() + 1, READ_WRITE)
                .field("ERR", 24, 7, READ_ONLY);

        queueBase(f.reg64(EVENTQ_BASE, "EVENTQ_BASE", 0), "WA");
        eventqProd = f.reg32(EVENTQ_PROD, "EVENTQ_PROD", 0)
                .field("WR", 0, c.eventqLog2() + 1, READ_WRITE)
                .flag("OVFLG", 31, READ_WRITE);
        eventqCons = f.reg32(EVENTQ_CONS, "EVENTQ_CONS", 0)
                .field("RD", 0, c.eventqLog2() + 1, READ_WRITE)
                .flag("OVACKFLG", 31, READ_WRITE);
        f.alias(EVENTQ_PROD_PAGE0, eventqProd);
        f.alias(EVENTQ_CONS_PAGE0, eventqCons);
        irqConfig(f, "EVENTQ", EVENTQ_IRQ_CFG0, EVENTQ_IRQ_CFG1, EVENTQ_IRQ_CFG2, c.msi());

        Register priqBase = f.reg64(PRIQ_BASE, "PRIQ_BASE", 0);
        priqProd = f.reg32(PRIQ_PROD, "PRIQ_PROD", 0);
        priqCons = f.reg32(PRIQ_CONS, "PRIQ_CONS", 0);
        if (c.pri()) {
            queueBase(priqBase, "WA");
            priqProd.field("WR", 0, c.priqLog2() + 1, READ_WRITE).flag("OVFLG", 31, READ_WRITE);
            priqCons.field("RD", 0, c.priqLog2() + 1, READ_WRITE).flag("OVACKFLG", 31, READ_WRITE);
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
        base.field("LOG2SIZE", 0, 5, READ_WRITE).field("ADDR", 5, 47, READ_WRITE).flag(hint, 62, READ_WRITE);
    }

    /** MSI configuration registers CFG0 (address), CFG1 (data), CFG2 (attributes); RES0 without MSI. */
    private static void irqConfig(RegisterFile f, String prefix, long cfg0, long cfg1, long cfg2, boolean msi) {
        Register r0 = f.reg64(cfg0, prefix + "_IRQ_CFG0", 0);
        Register r1 = f.reg32(cfg1, prefix + "_IRQ_CFG1", 0);
        Register r2 = f.reg32(cfg2, prefix + "_IRQ_CFG2", 0);
        if (msi) {
            r0.field("ADDR", 2, 50, READ_WRITE);
            r1.field("DATA", 0, 32, READ_WRITE);
            r2.field("MEMATTR", 0, 4, READ_WRITE).field("SH", 4, 2, READ_WRITE);
        }
    }
}
