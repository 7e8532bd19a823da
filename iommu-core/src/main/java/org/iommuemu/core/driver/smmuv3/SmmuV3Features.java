package org.iommuemu.core.driver.smmuv3;

import static org.iommuemu.core.smmuv3.SmmuRegs.*;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.smmuv3.Encodings;

/**
 * What an SMMUv3 instance implements, decoded from SMMU_IDR0, IDR1, IDR3 and IDR5 as Linux's
 * {@code arm_smmu_device_hw_probe} reads them ({@code spec/SMMUV3.md} §2).
 *
 * <p>Values are as advertised; policy lives with the driver (for instance the driver uses a 2-level stream table
 * only when {@link #twoLevelStreamTable} and more than 8 StreamID bits, as Linux does). An OAS encoding the
 * architecture reserves is read as 48 bits, as Linux does.
 *
 * @param idr0 raw SMMU_IDR0
 * @param idr1 raw SMMU_IDR1
 * @param idr3 raw SMMU_IDR3
 * @param idr5 raw SMMU_IDR5
 * @param stage1 IDR0.S1P
 * @param stage2 IDR0.S2P
 * @param ttf IDR0.TTF ({@link org.iommuemu.core.smmuv3.SmmuRegs#TTF_AARCH64}...)
 * @param coherent IDR0.COHACC: table and queue accesses are coherent
 * @param httu IDR0.HTTU: 0 none, 1 access flag, 2 access flag and dirty state
 * @param hyp IDR0.HYP: EL2 translation regime (TLBI_EL2_*)
 * @param ats IDR0.ATS
 * @param asid16 IDR0.ASID16
 * @param msi IDR0.MSI
 * @param sev IDR0.SEV
 * @param pri IDR0.PRI
 * @param vmid16 IDR0.VMID16
 * @param twoLevelCd IDR0.CD2L
 * @param ttEndian IDR0.TTENDIAN
 * @param stallModel IDR0.STALL_MODEL
 * @param twoLevelStreamTable IDR0.ST_LEVEL = 1
 * @param sidBits IDR1.SIDSIZE
 * @param ssidBits IDR1.SSIDSIZE
 * @param priqLog2 IDR1.PRIQS
 * @param eventqLog2 IDR1.EVENTQS
 * @param cmdqLog2 IDR1.CMDQS
 * @param attrTypesOverride IDR1.ATTR_TYPES_OVR (bypass STEs then carry SHCFG = incoming, as Linux writes)
 * @param embedded IDR1.TABLES_PRESET, QUEUES_PRESET or REL: fixed tables/queues, which this driver cannot use
 * @param rangeInvalidation IDR3.RIL
 * @param oasBits IDR5.OAS in bits
 * @param granule4k IDR5.GRAN4K
 * @param granule16k IDR5.GRAN16K
 * @param granule64k IDR5.GRAN64K
 */
public record SmmuV3Features(
        int idr0,
        int idr1,
        int idr3,
        int idr5,
        boolean stage1,
        boolean stage2,
        int ttf,
        boolean coherent,
        int httu,
        boolean hyp,
        boolean ats,
        boolean asid16,
        boolean msi,
        boolean sev,
        boolean pri,
        boolean vmid16,
        boolean twoLevelCd,
        int ttEndian,
        int stallModel,
        boolean twoLevelStreamTable,
        int sidBits,
        int ssidBits,
        int priqLog2,
        int eventqLog2,
        int cmdqLog2,
        boolean attrTypesOverride,
        boolean embedded,
        boolean rangeInvalidation,
        int oasBits,
        boolean granule4k,
        boolean granule16k,
        boolean granule64k) {

    /** Decodes the ID registers. */
    public static SmmuV3Features fromIdRegisters(int idr0, int idr1, int idr3, int idr5) {
        int oas = Encodings.oasBits((int) Bits.extract(idr5, IDR5_OAS, IDR5_OAS_WIDTH));
        return new SmmuV3Features(idr0, idr1, idr3, idr5,
                bit(idr0, IDR0_S1P),
                bit(idr0, IDR0_S2P),
                field(idr0, IDR0_TTF, IDR0_TTF_WIDTH),
                bit(idr0, IDR0_COHACC),
                field(idr0, IDR0_HTTU, IDR0_HTTU_WIDTH),
                bit(idr0, IDR0_HYP),
                bit(idr0, IDR0_ATS),
                bit(idr0, IDR0_ASID16),
                bit(idr0, IDR0_MSI),
                bit(idr0, IDR0_SEV),
                bit(idr0, IDR0_PRI),
                bit(idr0, IDR0_VMID16),
                bit(idr0, IDR0_CD2L),
                field(idr0, IDR0_TTENDIAN, IDR0_TTENDIAN_WIDTH),
                field(idr0, IDR0_STALL_MODEL, IDR0_STALL_MODEL_WIDTH),
                field(idr0, IDR0_ST_LEVEL, IDR0_ST_LEVEL_WIDTH) == ST_LEVEL_2LVL,
                field(idr1, IDR1_SIDSIZE, IDR1_SIDSIZE_WIDTH),
                field(idr1, IDR1_SSIDSIZE, IDR1_SSIDSIZE_WIDTH),
                field(idr1, IDR1_PRIQS, IDR1_PRIQS_WIDTH),
                field(idr1, IDR1_EVENTQS, IDR1_EVENTQS_WIDTH),
                field(idr1, IDR1_CMDQS, IDR1_CMDQS_WIDTH),
                bit(idr1, IDR1_ATTR_TYPES_OVR),
                bit(idr1, IDR1_TABLES_PRESET) || bit(idr1, IDR1_QUEUES_PRESET) || bit(idr1, IDR1_REL),
                bit(idr3, IDR3_RIL),
                oas < 0 ? 48 : oas,
                bit(idr5, IDR5_GRAN4K),
                bit(idr5, IDR5_GRAN16K),
                bit(idr5, IDR5_GRAN64K));
    }

    private static boolean bit(int reg, int n) {
        return Bits.bit(Integer.toUnsignedLong(reg), n);
    }

    private static int field(int reg, int lo, int width) {
        return (int) Bits.extract(Integer.toUnsignedLong(reg), lo, width);
    }

    /** Both stages: nested translation is possible. */
    public boolean nested() {
        return stage1 && stage2;
    }

    /** AArch64 translation tables (TTF 2 or 3). */
    public boolean aarch64Tables() {
        return ttf == TTF_AARCH64 || ttf == TTF_BOTH;
    }

    /** ASID width: 16 or 8 bits. */
    public int asidBits() {
        return asid16 ? 16 : 8;
    }

    /** VMID width: 16 or 8 bits. */
    public int vmidBits() {
        return vmid16 ? 16 : 8;
    }

    /** Hardware access-flag update (HTTU ≥ 1). */
    public boolean hardwareAccessFlag() {
        return httu >= HTTU_ACCESS;
    }

    /** Hardware dirty-state update (HTTU = 2). */
    public boolean hardwareDirty() {
        return httu >= HTTU_ACCESS_DIRTY;
    }

    /**
     * Whether CMD_SYNC completion is polled through an MSI write to memory, as Linux does when the SMMU has both
     * MSI and coherent access (ARM_SMMU_OPT_MSIPOLL); otherwise the driver polls CMDQ_CONS.
     */
    public boolean msiPolling() {
        return msi && coherent;
    }

    /**
     * The page and block sizes the SMMU can map, as Linux's pgsize_bitmap: 4 KB with 2 MB and 1 GB blocks,
     * 16 KB with 32 MB, 64 KB with 512 MB (and 4 TB when OAS is 52 bits).
     */
    public long pageSizes() {
        long sizes = 0;
        if (granule4k) {
            sizes |= 1L << 12 | 1L << 21 | 1L << 30;
        }
        if (granule16k) {
            sizes |= 1L << 14 | 1L << 25;
        }
        if (granule64k) {
            sizes |= 1L << 16 | 1L << 29;
            if (oasBits == 52) {
                sizes |= 1L << 42;
            }
        }
        return sizes;
    }

    /**
     * Why a driver cannot use this SMMU, or null if it can. Refused, as Linux refuses: no AArch64 table format,
     * neither translation stage, big-endian-only tables (the driver writes little-endian) or a reserved TTENDIAN,
     * an embedded implementation (preset tables or queues, or REL), a command queue of one entry (it cannot hold
     * a command and its CMD_SYNC), no translation granule.
     */
    public String refusal() {
        List<String> why = new ArrayList<>();
        if (!aarch64Tables()) {
            why.add("no AArch64 translation table format (IDR0.TTF=" + ttf + ")");
        }
        if (!stage1 && !stage2) {
            why.add("no translation stage (IDR0.S1P=0 and IDR0.S2P=0)");
        }
        if (ttEndian != TTENDIAN_MIXED && ttEndian != TTENDIAN_LITTLE) {
            why.add("no little-endian translation tables (IDR0.TTENDIAN=" + ttEndian + ")");
        }
        if (embedded) {
            why.add("embedded implementation (IDR1.TABLES_PRESET/QUEUES_PRESET/REL set: 0x"
                    + Integer.toHexString(idr1) + ")");
        }
        if (cmdqLog2 == 0) {
            why.add("a command queue of one entry (IDR1.CMDQS=0) cannot hold a command and its CMD_SYNC");
        }
        if (pageSizes() == 0) {
            why.add("no translation granule (IDR5.GRAN4K/16K/64K all 0)");
        }
        return why.isEmpty() ? null : String.join("; ", why);
    }

    /** Feature names for logs and diagnostics ("S1P", "S2P", "MSI", "RIL", "OAS48", "SIDSIZE16"...). */
    public List<String> names() {
        List<String> n = new ArrayList<>();
        add(n, stage1, "S1P");
        add(n, stage2, "S2P");
        add(n, nested(), "NESTED");
        add(n, aarch64Tables(), "TTF_AARCH64");
        add(n, coherent, "COHACC");
        add(n, httu == HTTU_ACCESS, "HTTU_A");
        add(n, httu == HTTU_ACCESS_DIRTY, "HTTU_AD");
        add(n, hyp, "HYP");
        add(n, ats, "ATS");
        add(n, pri, "PRI");
        add(n, asid16, "ASID16");
        add(n, vmid16, "VMID16");
        add(n, msi, "MSI");
        add(n, sev, "SEV");
        add(n, twoLevelStreamTable, "ST_2LVL");
        add(n, twoLevelCd, "CD2L");
        add(n, rangeInvalidation, "RIL");
        add(n, granule4k, "GRAN4K");
        add(n, granule16k, "GRAN16K");
        add(n, granule64k, "GRAN64K");
        n.add("OAS" + oasBits);
        n.add("SIDSIZE" + sidBits);
        n.add("SSIDSIZE" + ssidBits);
        return n;
    }

    private static void add(List<String> names, boolean present, String name) {
        if (present) {
            names.add(name);
        }
    }
}
