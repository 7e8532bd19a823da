package org.iommuemu.core.vtd;

/**
 * The VT-d remapping-unit programming interface as numbers: register offsets and field positions (Intel VT-d
 * architecture, "Register Descriptions"; {@code spec/VTD.md} §1, §2 and §4), as Linux's
 * {@code drivers/iommu/intel/iommu.h} and QEMU's {@code intel_iommu_internal.h} use them.
 *
 * <p>Shared by the device model, which declares its register file from these constants, and the driver,
 * which programs it. Single-bit fields are a bit position ({@code GCMD_TE = 31}); multi-bit fields a low bit,
 * read with {@link org.iommuemu.core.bits.Bits#extract} and written with {@link org.iommuemu.core.bits.Bits#deposit}.
 */
public final class VtdRegs {
    private VtdRegs() {}

    public static final long VER = 0x00;
    public static final long CAP = 0x08;
    public static final long ECAP = 0x10;
    public static final long GCMD = 0x18;
    public static final long GSTS = 0x1C;
    public static final long RTADDR = 0x20;
    public static final long CCMD = 0x28;
    public static final long FSTS = 0x34;
    public static final long FECTL = 0x38;
    public static final long FEDATA = 0x3C;
    public static final long FEADDR = 0x40;
    public static final long FEUADDR = 0x44;
    public static final long AFLOG = 0x58;
    public static final long PMEN = 0x64;
    public static final long PLMBASE = 0x68;
    public static final long PLMLIMIT = 0x6C;
    public static final long PHMBASE = 0x70;
    public static final long PHMLIMIT = 0x78;
    public static final long IQH = 0x80;
    public static final long IQT = 0x88;
    public static final long IQA = 0x90;
    public static final long ICS = 0x9C;
    public static final long IECTL = 0xA0;
    public static final long IEDATA = 0xA4;
    public static final long IEADDR = 0xA8;
    public static final long IEUADDR = 0xAC;
    public static final long IQERCD = 0xB0;
    public static final long IRTA = 0xB8;
    public static final long PQH = 0xC0;
    public static final long PQT = 0xC8;
    public static final long PQA = 0xD0;
    public static final long PRS = 0xDC;
    public static final long PECTL = 0xE0;
    public static final long PEDATA = 0xE4;
    public static final long PEADDR = 0xE8;
    public static final long PEUADDR = 0xEC;

    // CAP
    public static final int CAP_ND = 0;
    public static final int CAP_AFL = 3;
    public static final int CAP_RWBF = 4;
    public static final int CAP_PLMR = 5;
    public static final int CAP_PHMR = 6;
    public static final int CAP_CM = 7;
    public static final int CAP_SAGAW = 8;
    public static final int CAP_MGAW = 16;
    public static final int CAP_ZLR = 22;
    public static final int CAP_FRO = 24;
    public static final int CAP_SLLPS = 34;
    public static final int CAP_PSI = 39;
    public static final int CAP_NFR = 40;
    public static final int CAP_MAMV = 48;
    public static final int CAP_DWD = 54;
    public static final int CAP_DRD = 55;
    public static final int CAP_FL1GP = 56;
    public static final int CAP_PI = 59;
    public static final int CAP_FL5LP = 60;
    public static final int CAP_ECMDS = 61;
    public static final int CAP_ESIRTPS = 62;
    public static final int CAP_ESRTPS = 63;

    // ECAP
    public static final int ECAP_C = 0;
    public static final int ECAP_QI = 1;
    public static final int ECAP_DT = 2;
    public static final int ECAP_IR = 3;
    public static final int ECAP_EIM = 4;
    public static final int ECAP_PT = 6;
    public static final int ECAP_SC = 7;
    public static final int ECAP_IRO = 8;
    public static final int ECAP_MHMV = 20;
    public static final int ECAP_MTS = 25;
    public static final int ECAP_NEST = 26;
    public static final int ECAP_PRS = 29;
    public static final int ECAP_ERS = 30;
    public static final int ECAP_SRS = 31;
    public static final int ECAP_NWFS = 33;
    public static final int ECAP_EAFS = 34;
    public static final int ECAP_PSS = 35;
    public static final int ECAP_PASID = 40;
    public static final int ECAP_DIT = 41;
    public static final int ECAP_PDS = 42;
    public static final int ECAP_SMTS = 43;
    public static final int ECAP_VCS = 44;
    public static final int ECAP_SLADS = 45;
    public static final int ECAP_SLTS = 46;
    public static final int ECAP_FLTS = 47;
    public static final int ECAP_SMPWCS = 48;
    public static final int ECAP_RPS = 49;
    public static final int ECAP_PMS = 51;

    // GCMD / GSTS: the command bit and its status bit share a position
    public static final int GCMD_CFI = 23;
    public static final int GCMD_SIRTP = 24;
    public static final int GCMD_IRE = 25;
    public static final int GCMD_QIE = 26;
    public static final int GCMD_WBF = 27;
    public static final int GCMD_EAFL = 28;
    public static final int GCMD_SFL = 29;
    public static final int GCMD_SRTP = 30;
    public static final int GCMD_TE = 31;

    // RTADDR
    public static final int RTADDR_TTM = 10;
    public static final int RTADDR_RTA = 12;
    /** RTADDR.TTM: legacy root and context tables. */
    public static final int TTM_LEGACY = 0;
    /** RTADDR.TTM: scalable-mode root and context tables. */
    public static final int TTM_SCALABLE = 1;

    // FSTS
    public static final int FSTS_PFO = 0;
    public static final int FSTS_PPF = 1;
    public static final int FSTS_AFO = 2;
    public static final int FSTS_APF = 3;
    public static final int FSTS_IQE = 4;
    public static final int FSTS_ICE = 5;
    public static final int FSTS_ITE = 6;
    public static final int FSTS_FRI = 8;

    // FECTL / IECTL / PECTL
    public static final int ECTL_IP = 30;
    public static final int ECTL_IM = 31;
    /** Interrupt mask set, nothing pending: the reset value of the event control registers. */
    public static final long ECTL_RESET = 1L << ECTL_IM;

    // FRCD high register
    public static final int FRCD_HI_SID = 0;
    public static final int FRCD_HI_FR = 32;
    public static final int FRCD_HI_PV = 40;
    public static final int FRCD_HI_T = 62;
    public static final int FRCD_HI_F = 63;

    // CCMD (register-based context-cache invalidation)
    public static final int CCMD_DID = 0;
    public static final int CCMD_SID = 16;
    public static final int CCMD_FM = 32;
    public static final int CCMD_CAIG = 59;
    public static final int CCMD_CIRG = 61;
    public static final int CCMD_ICC = 63;
    /** CCMD.CIRG / CAIG and the context-cache descriptor's G: global, domain-selective, device-selective. */
    public static final int CC_GLOBAL = 1;
    public static final int CC_DOMAIN = 2;
    public static final int CC_DEVICE = 3;

    // IVA and IOTLB registers (at ECAP.IRO × 16 and + 8)
    public static final int IVA_AM = 0;
    public static final int IVA_IH = 6;
    public static final int IVA_ADDR = 12;
    public static final int IOTLB_DID = 32;
    public static final int IOTLB_DW = 48;
    public static final int IOTLB_DR = 49;
    public static final int IOTLB_IAIG = 57;
    public static final int IOTLB_IIRG = 60;
    public static final int IOTLB_IVT = 63;
    /** IOTLB.IIRG / IAIG and the IOTLB descriptor's G: global, domain-selective, page-selective. */
    public static final int IOTLB_GLOBAL = 1;
    public static final int IOTLB_DOMAIN = 2;
    public static final int IOTLB_PAGE = 3;

    // Invalidation queue
    public static final int IQA_QS = 0;
    public static final int IQA_DW = 11;
    public static final int IQA_IQA = 12;
    /** IQH.QH / IQT.QT: the descriptor index is the register value shifted right by 4 (128-bit) or 5 (256-bit). */
    public static final int IQ_INDEX_SHIFT_128 = 4;
    public static final int IQ_INDEX_SHIFT_256 = 5;
    public static final int ICS_IWC = 0;
    public static final int IQERCD_IQEI = 0;
    public static final int IQERCD_ITESID = 32;
    public static final int IQERCD_ICESID = 48;
    /**
     * IQERCD.IQEI reasons this model reports (VT-d 4.x "Invalidation Queue Error Record Register"): a
     * hardware detected error fetching a descriptor, the tail pointer beyond the queue or misaligned (IQT bit 4
     * set with 256-bit descriptors), a descriptor of an unknown or unsupported type, reserved bits set, or a
     * 128-bit descriptor of a type that needs 256 bits.
     */
    public static final int IQEI_INFO_UNAVAILABLE = 0;
    public static final int IQEI_TAIL_BEYOND_SIZE = 1;
    public static final int IQEI_FETCH_ABORT = 2;
    public static final int IQEI_INVALID_TYPE = 3;
    public static final int IQEI_RESERVED = 4;
    public static final int IQEI_WIDTH = 5;
    public static final int IQEI_TAIL_MISALIGNED = 6;

    // FRCD low register
    public static final int FRCD_LO_FI = 12;
    // FRCD high register, more fields
    public static final int FRCD_HI_PRIV = 29;
    public static final int FRCD_HI_EXE = 30;
    public static final int FRCD_HI_PP = 31;
    public static final int FRCD_HI_AT = 60;
}
