package org.iommuemu.core.vtd;

/**
 * VT-d fault reason codes (FRCD.FR) of DMA-remapping faults ({@code spec/VTD.md} §6; Intel VT-d architecture,
 * "Non-Recoverable Fault Reason Encodings"), the ones this model produces. Legacy-mode codes are below 0x30,
 * scalable-mode codes 0x30 and above.
 */
public final class FaultReason {
    private FaultReason() {}

    // legacy mode
    public static final int ROOT_NOT_PRESENT = 0x1;
    public static final int CONTEXT_NOT_PRESENT = 0x2;
    public static final int CONTEXT_INVALID = 0x3;
    public static final int ADDRESS_BEYOND_AW = 0x4;
    public static final int WRITE = 0x5;
    public static final int READ = 0x6;
    public static final int PAGING_ENTRY_ACCESS = 0x7;
    public static final int ROOT_TABLE_ACCESS = 0x8;
    public static final int CONTEXT_ACCESS = 0x9;
    public static final int ROOT_RESERVED = 0xA;
    public static final int CONTEXT_RESERVED = 0xB;
    public static final int PAGING_ENTRY_RESERVED = 0xC;
    public static final int CONTEXT_TT_BLOCKED = 0xD;

    // scalable mode
    public static final int SM_TTM_PASID = 0x31;
    public static final int SM_ROOT_ACCESS = 0x38;
    public static final int SM_ROOT_NOT_PRESENT = 0x39;
    public static final int SM_ROOT_RESERVED = 0x3A;
    public static final int SM_CONTEXT_ACCESS = 0x40;
    public static final int SM_CONTEXT_NOT_PRESENT = 0x41;
    public static final int SM_CONTEXT_RESERVED = 0x42;
    public static final int SM_CONTEXT_INVALID = 0x43;
    public static final int SM_PASIDE_CLEAR = 0x45;
    public static final int SM_PASID_TOO_LARGE = 0x46;
    public static final int SM_PASID_DIR_ACCESS = 0x50;
    public static final int SM_PASID_DIR_NOT_PRESENT = 0x51;
    public static final int SM_PASID_DIR_RESERVED = 0x52;
    public static final int SM_PASID_ENTRY_ACCESS = 0x58;
    public static final int SM_PASID_ENTRY_NOT_PRESENT = 0x59;
    public static final int SM_PASID_ENTRY_RESERVED = 0x5A;
    public static final int SM_PASID_ENTRY_INVALID = 0x5B;
    public static final int SM_SRE_CLEAR = 0x5D;
    public static final int SM_FS_ACCESS = 0x70;
    public static final int SM_FS_NOT_PRESENT = 0x71;
    public static final int SM_FS_RESERVED = 0x72;
    public static final int SM_SS_ACCESS = 0x78;
    public static final int SM_SS_PERMISSION = 0x79;
    public static final int SM_SS_RESERVED = 0x7A;
    public static final int SM_FS_NOT_CANONICAL = 0x80;
    public static final int SM_FS_USER = 0x81;
    public static final int SM_ADDRESS_BEYOND_AW = 0x83;
    public static final int SM_SS_OUTPUT_BEYOND = 0x84;
    public static final int SM_WRITE = 0x85;
    public static final int SM_READ = 0x86;

    /** A short description of a fault reason, for messages and event records. */
    public static String describe(int reason) {
        return switch (reason) {
            case ROOT_NOT_PRESENT -> "root entry not present";
            case CONTEXT_NOT_PRESENT -> "context entry not present";
            case CONTEXT_INVALID -> "invalid context entry";
            case ADDRESS_BEYOND_AW -> "address beyond the address width";
            case WRITE -> "write access denied";
            case READ -> "read access denied";
            case PAGING_ENTRY_ACCESS -> "error accessing a paging entry";
            case ROOT_TABLE_ACCESS -> "error accessing the root entry";
            case CONTEXT_ACCESS -> "error accessing the context entry";
            case ROOT_RESERVED -> "reserved bits set in the root entry";
            case CONTEXT_RESERVED -> "reserved bits set in the context entry";
            case PAGING_ENTRY_RESERVED -> "reserved bits set in a paging entry";
            case CONTEXT_TT_BLOCKED -> "request blocked by the context entry's translation type";
            case SM_TTM_PASID -> "request with PASID while the root table is legacy";
            case SM_ROOT_ACCESS -> "error accessing the scalable root entry";
            case SM_ROOT_NOT_PRESENT -> "scalable root entry not present";
            case SM_ROOT_RESERVED -> "reserved bits set in the scalable root entry";
            case SM_CONTEXT_ACCESS -> "error accessing the scalable context entry";
            case SM_CONTEXT_NOT_PRESENT -> "scalable context entry not present";
            case SM_CONTEXT_RESERVED -> "reserved bits set in the scalable context entry";
            case SM_CONTEXT_INVALID -> "invalid scalable context entry";
            case SM_PASIDE_CLEAR -> "request with PASID while the context entry's PASIDE is clear";
            case SM_PASID_TOO_LARGE -> "PASID beyond the PASID directory size";
            case SM_PASID_DIR_ACCESS -> "error accessing the PASID directory entry";
            case SM_PASID_DIR_NOT_PRESENT -> "PASID directory entry not present";
            case SM_PASID_DIR_RESERVED -> "reserved bits set in the PASID directory entry";
            case SM_PASID_ENTRY_ACCESS -> "error accessing the PASID table entry";
            case SM_PASID_ENTRY_NOT_PRESENT -> "PASID table entry not present";
            case SM_PASID_ENTRY_RESERVED -> "reserved bits set in the PASID table entry";
            case SM_PASID_ENTRY_INVALID -> "invalid PASID table entry";
            case SM_SRE_CLEAR -> "supervisor request while the PASID entry's SRE is clear";
            case SM_FS_ACCESS -> "error accessing a first-stage paging entry";
            case SM_FS_NOT_PRESENT -> "first-stage paging entry not present";
            case SM_FS_RESERVED -> "reserved bits set in a first-stage paging entry";
            case SM_SS_ACCESS -> "error accessing a second-stage paging entry";
            case SM_SS_PERMISSION -> "second-stage paging entry without read or write permission";
            case SM_SS_RESERVED -> "reserved bits set in a second-stage paging entry";
            case SM_FS_NOT_CANONICAL -> "first-stage input address not canonical";
            case SM_FS_USER -> "user request to a supervisor page";
            case SM_ADDRESS_BEYOND_AW -> "address beyond the address width";
            case SM_SS_OUTPUT_BEYOND -> "second-stage output address beyond the host address width";
            case SM_WRITE -> "write access denied";
            case SM_READ -> "read access denied";
            default -> "fault reason 0x" + Integer.toHexString(reason);
        };
    }
}
