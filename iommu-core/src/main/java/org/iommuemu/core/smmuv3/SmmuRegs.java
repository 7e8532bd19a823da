package org.iommuemu.core.smmuv3;

/**
 * The SMMUv3 non-secure programming interface as numbers: register offsets in the MMIO window, bit positions
 * of the control and ID register fields, and the values software writes ({@code spec/SMMUV3.md} §1–§3; Arm
 * IHI0070 "Register overview" and the SMMU_* register descriptions). Positions agree with Linux's
 * {@code drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h}.
 *
 * <p>Shared by the device model, which declares its register file from these constants, and the drivers,
 * which program it. Single-bit fields are given as a bit position ({@code CR0_SMMUEN = 0}: the mask is
 * {@code 1 << CR0_SMMUEN}); multi-bit fields as a low bit and a {@code _WIDTH}, to be read with
 * {@link org.iommuemu.core.bits.Bits#extract} and written with {@link org.iommuemu.core.bits.Bits#deposit}.
 *
 * <p>The window is two 64 KB pages. EVENTQ_PROD/CONS and PRIQ_PROD/CONS live in page 1 ({@link #PAGE1} +
 * 0xA8…); the page-0 offsets ({@link #EVENTQ_PROD_PAGE0}…) are what Cavium's PAGE0_REGS_ONLY quirk and
 * QEMU's page folding use. CMDQ_PROD/CONS are page 0 only.
 */
public final class SmmuRegs {
    private SmmuRegs() {}

    // ------------------------------------------------------------------ window

    /** Page 1 starts here; EVENTQ_PROD/CONS and PRIQ_PROD/CONS live in it. */
    public static final long PAGE1 = 0x1_0000;
    /** Two 64 KB pages. */
    public static final long MMIO_SIZE = 0x2_0000;

    // ------------------------------------------------------------------ offsets

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
    /** GERROR MSI address (64-bit; ADDR[51:2]). */
    public static final long GERROR_IRQ_CFG0 = 0x68;
    /** GERROR MSI data (32-bit). */
    public static final long GERROR_IRQ_CFG1 = 0x70;
    /** GERROR MSI attributes (MEMATTR[3:0], SH[5:4]). */
    public static final long GERROR_IRQ_CFG2 = 0x74;
    public static final long STRTAB_BASE = 0x80;
    public static final long STRTAB_BASE_CFG = 0x88;
    public static final long CMDQ_BASE = 0x90;
    public static final long CMDQ_PROD = 0x98;
    public static final long CMDQ_CONS = 0x9C;
    public static final long EVENTQ_BASE = 0xA0;
    /** Page-0 copy of EVENTQ_PROD (Cavium PAGE0_REGS_ONLY quirk, QEMU's page folding). */
    public static final long EVENTQ_PROD_PAGE0 = 0xA8;
    /** Page-0 copy of EVENTQ_CONS. */
    public static final long EVENTQ_CONS_PAGE0 = 0xAC;
    public static final long EVENTQ_IRQ_CFG0 = 0xB0;
    public static final long EVENTQ_IRQ_CFG1 = 0xB8;
    public static final long EVENTQ_IRQ_CFG2 = 0xBC;
    public static final long PRIQ_BASE = 0xC0;
    /** Page-0 copy of PRIQ_PROD. */
    public static final long PRIQ_PROD_PAGE0 = 0xC8;
    /** Page-0 copy of PRIQ_CONS. */
    public static final long PRIQ_CONS_PAGE0 = 0xCC;
    public static final long PRIQ_IRQ_CFG0 = 0xD0;
    public static final long PRIQ_IRQ_CFG1 = 0xD8;
    public static final long PRIQ_IRQ_CFG2 = 0xDC;
    /** EVENTQ_PROD, in page 1. */
    public static final long EVENTQ_PROD = PAGE1 + EVENTQ_PROD_PAGE0;
    /** EVENTQ_CONS, in page 1. */
    public static final long EVENTQ_CONS = PAGE1 + EVENTQ_CONS_PAGE0;
    /** PRIQ_PROD, in page 1. */
    public static final long PRIQ_PROD = PAGE1 + PRIQ_PROD_PAGE0;
    /** PRIQ_CONS, in page 1. */
    public static final long PRIQ_CONS = PAGE1 + PRIQ_CONS_PAGE0;
    /** PIDR4 (first of the identification block PIDR4–7, PIDR0–3, CIDR0–3). */
    public static final long PIDR4 = 0xFD0;
    /** CIDR3, the last register of the identification block. */
    public static final long CIDR3 = 0xFFC;

    // ------------------------------------------------------------------ IDR0

    public static final int IDR0_S2P = 0;
    public static final int IDR0_S1P = 1;
    /** TTF[3:2]: translation table formats ({@link #TTF_AARCH32}, {@link #TTF_AARCH64}, {@link #TTF_BOTH}). */
    public static final int IDR0_TTF = 2;
    public static final int IDR0_TTF_WIDTH = 2;
    public static final int IDR0_COHACC = 4;
    public static final int IDR0_BTM = 5;
    /** HTTU[7:6]: {@link #HTTU_NONE}, {@link #HTTU_ACCESS}, {@link #HTTU_ACCESS_DIRTY}. */
    public static final int IDR0_HTTU = 6;
    public static final int IDR0_HTTU_WIDTH = 2;
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
    /** TTENDIAN[22:21]: {@link #TTENDIAN_MIXED}, {@link #TTENDIAN_LITTLE}, {@link #TTENDIAN_BIG}. */
    public static final int IDR0_TTENDIAN = 21;
    public static final int IDR0_TTENDIAN_WIDTH = 2;
    public static final int IDR0_ATSRECERR = 23;
    /** STALL_MODEL[25:24]: {@link #STALL_MODEL_STALL_TERMINATE}, {@link #STALL_MODEL_NO_STALL}, {@link #STALL_MODEL_FORCED}. */
    public static final int IDR0_STALL_MODEL = 24;
    public static final int IDR0_STALL_MODEL_WIDTH = 2;
    public static final int IDR0_TERM_MODEL = 26;
    /** ST_LEVEL[28:27]: {@link #ST_LEVEL_LINEAR} or {@link #ST_LEVEL_2LVL}. */
    public static final int IDR0_ST_LEVEL = 27;
    public static final int IDR0_ST_LEVEL_WIDTH = 2;
    public static final int IDR0_RME_IMPL = 30;

    /** IDR0.TTF: AArch32 (LPAE) tables only. */
    public static final int TTF_AARCH32 = 1;
    /** IDR0.TTF: AArch64 tables only. */
    public static final int TTF_AARCH64 = 2;
    /** IDR0.TTF: both formats. */
    public static final int TTF_BOTH = 3;
    /** IDR0.HTTU: no hardware table updates. */
    public static final int HTTU_NONE = 0;
    /** IDR0.HTTU: hardware access-flag updates. */
    public static final int HTTU_ACCESS = 1;
    /** IDR0.HTTU: hardware access-flag and dirty-state updates. */
    public static final int HTTU_ACCESS_DIRTY = 2;
    /** IDR0.TTENDIAN: both endiannesses. */
    public static final int TTENDIAN_MIXED = 0;
    /** IDR0.TTENDIAN: little-endian tables only. */
    public static final int TTENDIAN_LITTLE = 2;
    /** IDR0.TTENDIAN: big-endian tables only. */
    public static final int TTENDIAN_BIG = 3;
    /** IDR0.STALL_MODEL: stall and terminate both supported. */
    public static final int STALL_MODEL_STALL_TERMINATE = 0;
    /** IDR0.STALL_MODEL: stalling not supported. */
    public static final int STALL_MODEL_NO_STALL = 1;
    /** IDR0.STALL_MODEL: stalling forced. */
    public static final int STALL_MODEL_FORCED = 2;
    /** IDR0.ST_LEVEL: linear stream tables only. */
    public static final int ST_LEVEL_LINEAR = 0;
    /** IDR0.ST_LEVEL: 2-level stream tables supported. */
    public static final int ST_LEVEL_2LVL = 1;

    // ------------------------------------------------------------------ IDR1

    public static final int IDR1_SIDSIZE = 0;
    public static final int IDR1_SIDSIZE_WIDTH = 6;
    public static final int IDR1_SSIDSIZE = 6;
    public static final int IDR1_SSIDSIZE_WIDTH = 5;
    public static final int IDR1_PRIQS = 11;
    public static final int IDR1_PRIQS_WIDTH = 5;
    public static final int IDR1_EVENTQS = 16;
    public static final int IDR1_EVENTQS_WIDTH = 5;
    public static final int IDR1_CMDQS = 21;
    public static final int IDR1_CMDQS_WIDTH = 5;
    public static final int IDR1_ATTR_PERMS_OVR = 26;
    public static final int IDR1_ATTR_TYPES_OVR = 27;
    public static final int IDR1_REL = 28;
    public static final int IDR1_QUEUES_PRESET = 29;
    public static final int IDR1_TABLES_PRESET = 30;
    public static final int IDR1_ECMDQ = 31;

    // ------------------------------------------------------------------ IDR3

    public static final int IDR3_HAD = 2;
    public static final int IDR3_PBHA = 3;
    public static final int IDR3_XNX = 4;
    public static final int IDR3_PPS = 5;
    public static final int IDR3_MPAM = 7;
    public static final int IDR3_FWB = 8;
    public static final int IDR3_STT = 9;
    public static final int IDR3_RIL = 10;
    public static final int IDR3_BBML = 11;
    public static final int IDR3_BBML_WIDTH = 2;
    public static final int IDR3_E0PD = 13;
    public static final int IDR3_PTWNNC = 14;
    public static final int IDR3_DPT = 15;

    // ------------------------------------------------------------------ IDR5

    /** OAS[2:0], decoded by {@link Encodings#oasBits}. */
    public static final int IDR5_OAS = 0;
    public static final int IDR5_OAS_WIDTH = 3;
    public static final int IDR5_GRAN4K = 4;
    public static final int IDR5_GRAN16K = 5;
    public static final int IDR5_GRAN64K = 6;
    public static final int IDR5_VAX = 10;
    public static final int IDR5_VAX_WIDTH = 2;
    public static final int IDR5_STALL_MAX = 16;
    public static final int IDR5_STALL_MAX_WIDTH = 16;

    // ------------------------------------------------------------------ CR0 / CR0ACK

    public static final int CR0_SMMUEN = 0;
    public static final int CR0_PRIQEN = 1;
    public static final int CR0_EVENTQEN = 2;
    public static final int CR0_CMDQEN = 3;
    public static final int CR0_ATSCHK = 4;

    // ------------------------------------------------------------------ CR1, CR2

    /** CR1 QUEUE_IC[1:0]: inner cacheability of queue accesses ({@link #CR1_CACHE_NC}…). */
    public static final int CR1_QUEUE_IC = 0;
    /** CR1 QUEUE_OC[3:2]. */
    public static final int CR1_QUEUE_OC = 2;
    /** CR1 QUEUE_SH[5:4]: shareability of queue accesses ({@link Encodings#SH_ISH}…). */
    public static final int CR1_QUEUE_SH = 4;
    /** CR1 TABLE_IC[7:6]: inner cacheability of table walks and fetches. */
    public static final int CR1_TABLE_IC = 6;
    /** CR1 TABLE_OC[9:8]. */
    public static final int CR1_TABLE_OC = 8;
    /** CR1 TABLE_SH[11:10]. */
    public static final int CR1_TABLE_SH = 10;
    /** Width of every CR1 field. */
    public static final int CR1_FIELD_WIDTH = 2;
    /** CR1 cacheability: non-cacheable (not the TCR-style encoding of {@link Encodings#CACHE_NC}). */
    public static final int CR1_CACHE_NC = 0;
    /** CR1 cacheability: write-back. */
    public static final int CR1_CACHE_WB = 1;
    /** CR1 cacheability: write-through. */
    public static final int CR1_CACHE_WT = 2;

    /** CR2 E2H: EL2&amp;0 translation regime (needs IDR0.HYP). */
    public static final int CR2_E2H = 0;
    /** CR2 RECINVSID: record C_BAD_STREAMID events. */
    public static final int CR2_RECINVSID = 1;
    /** CR2 PTM: private TLB maintenance (ignore broadcast TLBIs). */
    public static final int CR2_PTM = 2;

    // ------------------------------------------------------------------ GBPA

    public static final int GBPA_MEMATTR = 0;
    public static final int GBPA_MTCFG = 4;
    public static final int GBPA_ALLOCCFG = 8;
    public static final int GBPA_SHCFG = 12;
    public static final int GBPA_PRIVCFG = 16;
    public static final int GBPA_INSTCFG = 18;
    /** GBPA ABORT: with SMMUEN=0, incoming transactions abort instead of bypassing. */
    public static final int GBPA_ABORT = 20;
    /** GBPA UPDATE: written 1 with new values; reads 1 until the update has taken effect. */
    public static final int GBPA_UPDATE = 31;
    /** GBPA after reset: bypass, SHCFG=0b01 (use the incoming shareability). */
    public static final long GBPA_RESET = 0x1000;

    // ------------------------------------------------------------------ IRQ_CTRL / IRQ_CTRLACK

    public static final int IRQ_CTRL_GERROR_IRQEN = 0;
    public static final int IRQ_CTRL_PRIQ_IRQEN = 1;
    public static final int IRQ_CTRL_EVENTQ_IRQEN = 2;

    // ------------------------------------------------------------------ GERROR / GERRORN (see Gerror)

    public static final int GERROR_CMDQ_ERR = Gerror.CMDQ_ERR;
    public static final int GERROR_EVENTQ_ABT_ERR = Gerror.EVENTQ_ABT_ERR;
    public static final int GERROR_PRIQ_ABT_ERR = Gerror.PRIQ_ABT_ERR;
    public static final int GERROR_MSI_CMDQ_ABT_ERR = Gerror.MSI_CMDQ_ABT_ERR;
    public static final int GERROR_MSI_EVENTQ_ABT_ERR = Gerror.MSI_EVENTQ_ABT_ERR;
    public static final int GERROR_MSI_PRIQ_ABT_ERR = Gerror.MSI_PRIQ_ABT_ERR;
    public static final int GERROR_MSI_GERROR_ABT_ERR = Gerror.MSI_GERROR_ABT_ERR;
    public static final int GERROR_SFM_ERR = Gerror.SFM_ERR;

    // ------------------------------------------------------------------ *_IRQ_CFG0/1/2 (MSI configuration)

    /** IRQ_CFG0 ADDR[51:2]: the MSI address; 0 means "use the wired interrupt". */
    public static final int IRQ_CFG0_ADDR = 2;
    public static final int IRQ_CFG0_ADDR_WIDTH = 50;
    /** IRQ_CFG2 MEMATTR[3:0]: memory type of the MSI write ({@link #MSI_MEMATTR_DEVICE_NGNRE}…). */
    public static final int IRQ_CFG2_MEMATTR = 0;
    /** IRQ_CFG2 SH[5:4]: shareability of the MSI write. */
    public static final int IRQ_CFG2_SH = 4;
    /** MSI MemAttr Device-nGnRE, what Linux programs for interrupt doorbells. */
    public static final int MSI_MEMATTR_DEVICE_NGNRE = 0x1;
    /** MSI MemAttr Normal inner/outer write-back. */
    public static final int MSI_MEMATTR_OIWB = 0xF;

    // ------------------------------------------------------------------ AIDR

    /** SMMUv3.2 (AIDR ArchMajorRev=0, ArchMinorRev=2). */
    public static final long AIDR_V3_2 = 0x02;
}
