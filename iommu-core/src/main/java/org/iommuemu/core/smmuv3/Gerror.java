package org.iommuemu.core.smmuv3;

/**
 * GERROR / GERRORN bits and the toggle protocol ({@code spec/SMMUV3.md} §3). Bit positions; masks are
 * {@code 1 << bit}.
 *
 * <p>An error is <em>active</em> while GERROR[n] differs from GERRORN[n]. The SMMU raises an error by
 * toggling GERROR[n], only if it is not already active; software acknowledges by writing GERRORN with the
 * value it read from GERROR. All methods are static and allocation-free.
 */
public final class Gerror {
    private Gerror() {}

    public static final int CMDQ_ERR = 0;
    public static final int EVENTQ_ABT_ERR = 2;
    public static final int PRIQ_ABT_ERR = 3;
    public static final int MSI_CMDQ_ABT_ERR = 4;
    public static final int MSI_EVENTQ_ABT_ERR = 5;
    public static final int MSI_PRIQ_ABT_ERR = 6;
    public static final int MSI_GERROR_ABT_ERR = 7;
    /** Service failure mode (QEMU calls it MSI_SFM_ERR; same bit, §9.8). */
    public static final int SFM_ERR = 8;

    /** Every defined bit (bit 1 is reserved): 0x1FD, as Linux's GERROR_ERR_MASK. */
    public static final int VALID_MASK = 1 << CMDQ_ERR | 1 << EVENTQ_ABT_ERR | 1 << PRIQ_ABT_ERR
            | 1 << MSI_CMDQ_ABT_ERR | 1 << MSI_EVENTQ_ABT_ERR | 1 << MSI_PRIQ_ABT_ERR | 1 << MSI_GERROR_ABT_ERR
            | 1 << SFM_ERR;

    /** The active errors: GERROR XOR GERRORN, defined bits only. */
    public static int active(int gerror, int gerrorn) {
        return (gerror ^ gerrorn) & VALID_MASK;
    }

    /** Whether error {@code bit} is active. */
    public static boolean isActive(int gerror, int gerrorn, int bit) {
        return (active(gerror, gerrorn) & (1 << bit)) != 0;
    }

    /** GERROR after raising error {@code bit}: toggled if not already active, unchanged otherwise. */
    public static int raise(int gerror, int gerrorn, int bit) {
        return isActive(gerror, gerrorn, bit) ? gerror : gerror ^ (1 << bit);
    }

    /** The name of a bit as the spec writes it, or {@code "RESERVED_n"}. */
    public static String name(int bit) {
        switch (bit) {
            case CMDQ_ERR:
                return "CMDQ_ERR";
            case EVENTQ_ABT_ERR:
                return "EVENTQ_ABT_ERR";
            case PRIQ_ABT_ERR:
                return "PRIQ_ABT_ERR";
            case MSI_CMDQ_ABT_ERR:
                return "MSI_CMDQ_ABT_ERR";
            case MSI_EVENTQ_ABT_ERR:
                return "MSI_EVENTQ_ABT_ERR";
            case MSI_PRIQ_ABT_ERR:
                return "MSI_PRIQ_ABT_ERR";
            case MSI_GERROR_ABT_ERR:
                return "MSI_GERROR_ABT_ERR";
            case SFM_ERR:
                return "SFM_ERR";
            default:
                return "RESERVED_" + bit;
        }
    }
}
