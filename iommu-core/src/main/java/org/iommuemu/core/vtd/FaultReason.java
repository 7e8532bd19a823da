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
    /** Invalid root table address (here: RTADDR.TTM programmed to a reserved value). */
    public static final int SM_INVALID_ROOT_TABLE = 0x30;
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
    public static final int SM_ERE_CLEAR = 0x5C;
    public static final int SM_SRE_CLEAR = 0x5D;
    public static final int SM_FS_ACCESS = 0x70;
    public static final int SM_FS_NOT_PRESENT = 0x71;
    public static final int SM_FS_RESERVED = 0x72;
    public static final int SM_FS_TOP_ACCESS = 0x73;
    /** Nested: a first-stage table or output address (an IPA) beyond the second stage's width. */
    public static final int SM_NESTED_ADDRESS = 0x74;
    /** Nested: the second stage denies reading the first-stage top-level table. */
    public static final int SM_NESTED_TOP_READ = 0x75;
    /** Nested: the second stage denies reading a first-stage table. */
    public static final int SM_NESTED_READ = 0x76;
    /** Nested: the second stage denies a first-stage accessed/dirty update. */
    public static final int SM_NESTED_WRITE = 0x77;
    public static final int SM_SS_ACCESS = 0x78;
    public static final int SM_SS_PERMISSION = 0x79;
    public static final int SM_SS_RESERVED = 0x7A;
    public static final int SM_FS_NOT_CANONICAL = 0x80;
    public static final int SM_FS_USER = 0x81;
    public static final int SM_EXECUTE = 0x82;
    public static final int SM_ADDRESS_BEYOND_AW = 0x83;
    public static final int SM_SS_OUTPUT_BEYOND = 0x84;
    public static final int SM_WRITE = 0x85;
    public static final int SM_READ = 0x86;

    private static final int[] ALL = {
            ROOT_NOT_PRESENT, CONTEXT_NOT_PRESENT, CONTEXT_INVALID, ADDRESS_BEYOND_AW, WRITE, READ,
            PAGING_ENTRY_ACCESS, ROOT_TABLE_ACCESS, CONTEXT_ACCESS, ROOT_RESERVED, CONTEXT_RESERVED,
            PAGING_ENTRY_RESERVED, CONTEXT_TT_BLOCKED, SM_INVALID_ROOT_TABLE, SM_TTM_PASID, SM_ROOT_ACCESS,
            SM_ROOT_NOT_PRESENT, SM_ROOT_RESERVED, SM_CONTEXT_ACCESS, SM_CONTEXT_NOT_PRESENT,
            SM_CONTEXT_RESERVED, SM_CONTEXT_INVALID, SM_PASIDE_CLEAR, SM_PASID_TOO_LARGE,
            SM_PASID_DIR_ACCESS, SM_PASID_DIR_NOT_PRESENT, SM_PASID_DIR_RESERVED, SM_PASID_ENTRY_ACCESS,
            SM_PASID_ENTRY_NOT_PRESENT, SM_PASID_ENTRY_RESERVED, SM_PASID_ENTRY_INVALID, SM_ERE_CLEAR,
            SM_SRE_CLEAR, SM_FS_ACCESS, SM_FS_NOT_PRESENT, SM_FS_RESERVED, SM_FS_TOP_ACCESS,
            SM_NESTED_ADDRESS, SM_NESTED_TOP_READ, SM_NESTED_READ, SM_NESTED_WRITE, SM_SS_ACCESS,
            SM_SS_PERMISSION, SM_SS_RESERVED, SM_FS_NOT_CANONICAL, SM_FS_USER, SM_EXECUTE,
            SM_ADDRESS_BEYOND_AW, SM_SS_OUTPUT_BEYOND, SM_WRITE, SM_READ};

    /** Every fault reason this model produces, in code order. */
    public static int[] all() {
        return ALL.clone();
    }

    /**
     * The short name of a fault reason (this class's constant name, e.g. {@code WRITE}, {@code SM_PASID_ENTRY_NOT_PRESENT}),
     * for counters and scenario files; {@code FR_0xNN} for a code without one.
     */
    public static String name(int reason) {
        return switch (reason) {
            case ROOT_NOT_PRESENT -> "ROOT_NOT_PRESENT";
            case CONTEXT_NOT_PRESENT -> "CONTEXT_NOT_PRESENT";
            case CONTEXT_INVALID -> "CONTEXT_INVALID";
            case ADDRESS_BEYOND_AW -> "ADDRESS_BEYOND_AW";
            case WRITE -> "WRITE";
            case READ -> "READ";
            case PAGING_ENTRY_ACCESS -> "PAGING_ENTRY_ACCESS";
            case ROOT_TABLE_ACCESS -> "ROOT_TABLE_ACCESS";
            case CONTEXT_ACCESS -> "CONTEXT_ACCESS";
            case ROOT_RESERVED -> "ROOT_RESERVED";
            case CONTEXT_RESERVED -> "CONTEXT_RESERVED";
            case PAGING_ENTRY_RESERVED -> "PAGING_ENTRY_RESERVED";
            case CONTEXT_TT_BLOCKED -> "CONTEXT_TT_BLOCKED";
            case SM_INVALID_ROOT_TABLE -> "SM_INVALID_ROOT_TABLE";
            case SM_TTM_PASID -> "SM_TTM_PASID";
            case SM_ROOT_ACCESS -> "SM_ROOT_ACCESS";
            case SM_ROOT_NOT_PRESENT -> "SM_ROOT_NOT_PRESENT";
            case SM_ROOT_RESERVED -> "SM_ROOT_RESERVED";
            case SM_CONTEXT_ACCESS -> "SM_CONTEXT_ACCESS";
            case SM_CONTEXT_NOT_PRESENT -> "SM_CONTEXT_NOT_PRESENT";
            case SM_CONTEXT_RESERVED -> "SM_CONTEXT_RESERVED";
            case SM_CONTEXT_INVALID -> "SM_CONTEXT_INVALID";
            case SM_PASIDE_CLEAR -> "SM_PASIDE_CLEAR";
            case SM_PASID_TOO_LARGE -> "SM_PASID_TOO_LARGE";
            case SM_PASID_DIR_ACCESS -> "SM_PASID_DIR_ACCESS";
            case SM_PASID_DIR_NOT_PRESENT -> "SM_PASID_DIR_NOT_PRESENT";
            case SM_PASID_DIR_RESERVED -> "SM_PASID_DIR_RESERVED";
            case SM_PASID_ENTRY_ACCESS -> "SM_PASID_ENTRY_ACCESS";
            case SM_PASID_ENTRY_NOT_PRESENT -> "SM_PASID_ENTRY_NOT_PRESENT";
            case SM_PASID_ENTRY_RESERVED -> "SM_PASID_ENTRY_RESERVED";
            case SM_PASID_ENTRY_INVALID -> "SM_PASID_ENTRY_INVALID";
            case SM_ERE_CLEAR -> "SM_ERE_CLEAR";
            case SM_SRE_CLEAR -> "SM_SRE_CLEAR";
            case SM_FS_ACCESS -> "SM_FS_ACCESS";
            case SM_FS_NOT_PRESENT -> "SM_FS_NOT_PRESENT";
            case SM_FS_RESERVED -> "SM_FS_RESERVED";
            case SM_FS_TOP_ACCESS -> "SM_FS_TOP_ACCESS";
            case SM_NESTED_ADDRESS -> "SM_NESTED_ADDRESS";
            case SM_NESTED_TOP_READ -> "SM_NESTED_TOP_READ";
            case SM_NESTED_READ -> "SM_NESTED_READ";
            case SM_NESTED_WRITE -> "SM_NESTED_WRITE";
            case SM_SS_ACCESS -> "SM_SS_ACCESS";
            case SM_SS_PERMISSION -> "SM_SS_PERMISSION";
            case SM_SS_RESERVED -> "SM_SS_RESERVED";
            case SM_FS_NOT_CANONICAL -> "SM_FS_NOT_CANONICAL";
            case SM_FS_USER -> "SM_FS_USER";
            case SM_EXECUTE -> "SM_EXECUTE";
            case SM_ADDRESS_BEYOND_AW -> "SM_ADDRESS_BEYOND_AW";
            case SM_SS_OUTPUT_BEYOND -> "SM_SS_OUTPUT_BEYOND";
            case SM_WRITE -> "SM_WRITE";
            case SM_READ -> "SM_READ";
            default -> String.format("FR_0x%02X", reason);
        };
    }

    /** The code of a short name from {@link #name}, or -1. */
    public static int byName(String name) {
        for (int r : ALL) {
            if (name(r).equals(name)) {
                return r;
            }
        }
        return -1;
    }

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
            case SM_INVALID_ROOT_TABLE -> "invalid root table address (reserved RTADDR.TTM)";
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
            case SM_ERE_CLEAR -> "execute request while the PASID entry's ERE is clear";
            case SM_SRE_CLEAR -> "supervisor request while the PASID entry's SRE is clear";
            case SM_FS_ACCESS -> "error accessing a first-stage paging entry";
            case SM_FS_NOT_PRESENT -> "first-stage paging entry not present";
            case SM_FS_RESERVED -> "reserved bits set in a first-stage paging entry";
            case SM_FS_TOP_ACCESS -> "error accessing the first-stage top-level table";
            case SM_NESTED_ADDRESS -> "nested: first-stage address beyond the second stage's width";
            case SM_NESTED_TOP_READ -> "nested: second stage denies reading the first-stage top-level table";
            case SM_NESTED_READ -> "nested: second stage denies reading a first-stage table";
            case SM_NESTED_WRITE -> "nested: second stage denies a first-stage accessed/dirty update";
            case SM_SS_ACCESS -> "error accessing a second-stage paging entry";
            case SM_SS_PERMISSION -> "second-stage paging entry without read or write permission";
            case SM_SS_RESERVED -> "reserved bits set in a second-stage paging entry";
            case SM_FS_NOT_CANONICAL -> "first-stage input address not canonical";
            case SM_FS_USER -> "user request to a supervisor page";
            case SM_EXECUTE -> "execute request to a page without execute permission";
            case SM_ADDRESS_BEYOND_AW -> "address beyond the address width";
            case SM_SS_OUTPUT_BEYOND -> "second-stage output address beyond the host address width";
            case SM_WRITE -> "write access denied";
            case SM_READ -> "read access denied";
            default -> "fault reason 0x" + Integer.toHexString(reason);
        };
    }
}
