package org.iommuemu.core.smmuv3;

/**
 * Command opcodes, dw0[7:0] of every command-queue entry ({@code spec/SMMUV3.md} §7; Arm IHI0070 "Command
 * opcodes"). Plain {@code int} constants, so that the device can switch on a raw opcode without boxing.
 *
 * <p>{@link #CFGI_ALL} is not an opcode of its own: it is {@link #CFGI_STE_RANGE} with Range = 31 (Linux
 * and the architecture; QEMU's enum gives it 0x07 but its decoder handles it through 0x04, §9.1).
 */
public final class CommandOp {
    private CommandOp() {}

    public static final int PREFETCH_CONFIG = 0x01;
    public static final int PREFETCH_ADDR = 0x02;
    public static final int CFGI_STE = 0x03;
    public static final int CFGI_STE_RANGE = 0x04;
    /** Same opcode as {@link #CFGI_STE_RANGE}; the command carries Range = 31. */
    public static final int CFGI_ALL = CFGI_STE_RANGE;
    public static final int CFGI_CD = 0x05;
    public static final int CFGI_CD_ALL = 0x06;
    public static final int TLBI_NH_ALL = 0x10;
    public static final int TLBI_NH_ASID = 0x11;
    public static final int TLBI_NH_VA = 0x12;
    public static final int TLBI_NH_VAA = 0x13;
    public static final int TLBI_EL3_ALL = 0x18;
    public static final int TLBI_EL3_VA = 0x1A;
    public static final int TLBI_EL2_ALL = 0x20;
    public static final int TLBI_EL2_ASID = 0x21;
    public static final int TLBI_EL2_VA = 0x22;
    public static final int TLBI_EL2_VAA = 0x23;
    public static final int TLBI_S12_VMALL = 0x28;
    public static final int TLBI_S2_IPA = 0x2A;
    public static final int TLBI_NSNH_ALL = 0x30;
    public static final int ATC_INV = 0x40;
    public static final int PRI_RESP = 0x41;
    public static final int RESUME = 0x44;
    public static final int STALL_TERM = 0x45;
    public static final int CMD_SYNC = 0x46;

    /** Every opcode this emulator knows, in numeric order ({@link #CFGI_ALL} is {@link #CFGI_STE_RANGE}). */
    private static final int[] ALL = {
        PREFETCH_CONFIG, PREFETCH_ADDR, CFGI_STE, CFGI_STE_RANGE, CFGI_CD, CFGI_CD_ALL,
        TLBI_NH_ALL, TLBI_NH_ASID, TLBI_NH_VA, TLBI_NH_VAA, TLBI_EL3_ALL, TLBI_EL3_VA,
        TLBI_EL2_ALL, TLBI_EL2_ASID, TLBI_EL2_VA, TLBI_EL2_VAA, TLBI_S12_VMALL, TLBI_S2_IPA,
        TLBI_NSNH_ALL, ATC_INV, PRI_RESP, RESUME, STALL_TERM, CMD_SYNC
    };

    private static final String[] NAMES = new String[256];

    static {
        String[] names = {
            "PREFETCH_CONFIG", "PREFETCH_ADDR", "CFGI_STE", "CFGI_STE_RANGE", "CFGI_CD", "CFGI_CD_ALL",
            "TLBI_NH_ALL", "TLBI_NH_ASID", "TLBI_NH_VA", "TLBI_NH_VAA", "TLBI_EL3_ALL", "TLBI_EL3_VA",
            "TLBI_EL2_ALL", "TLBI_EL2_ASID", "TLBI_EL2_VA", "TLBI_EL2_VAA", "TLBI_S12_VMALL", "TLBI_S2_IPA",
            "TLBI_NSNH_ALL", "ATC_INV", "PRI_RESP", "RESUME", "STALL_TERM", "CMD_SYNC"
        };
        for (int i = 0; i < ALL.length; i++) {
            NAMES[ALL[i]] = names[i];
        }
    }

    /** Every known opcode, in numeric order (a fresh copy). */
    public static int[] all() {
        return ALL.clone();
    }

    /** Whether {@code opcode} is one of the opcodes above. */
    public static boolean isKnown(int opcode) {
        return opcode >= 0 && opcode < NAMES.length && NAMES[opcode] != null;
    }

    /** The spec name of a known opcode ({@code "CMD_SYNC"}…), or {@code "UNKNOWN_0xNN"}. */
    public static String name(int opcode) {
        return isKnown(opcode) ? NAMES[opcode] : "UNKNOWN_0x" + Integer.toHexString(opcode);
    }

    /** Whether the opcode is a TLB invalidation by address (VA or IPA), the ones with range fields. */
    public static boolean isTlbiByAddress(int opcode) {
        switch (opcode) {
            case TLBI_NH_VA:
            case TLBI_NH_VAA:
            case TLBI_EL3_VA:
            case TLBI_EL2_VA:
            case TLBI_EL2_VAA:
            case TLBI_S2_IPA:
                return true;
            default:
                return false;
        }
    }
}
