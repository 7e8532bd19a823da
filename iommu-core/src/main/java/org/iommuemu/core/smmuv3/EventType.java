package org.iommuemu.core.smmuv3;

/**
 * Event record types, dw0[7:0] of an event-queue record ({@code spec/SMMUV3.md} §8; Arm IHI0070 "Event
 * records"). Plain {@code int} constants.
 *
 * <p>Word 3 of a record is type-dependent: the translation-class faults ({@link #F_TRANSLATION} to
 * {@link #F_PERMISSION}) carry the IPA and NSIPA there ({@link #hasIpa}); the fetch faults
 * ({@link #F_STE_FETCH}, {@link #F_CD_FETCH}, {@link #F_WALK_EABT}, {@link #F_VMS_FETCH}) carry FetchAddr
 * ({@link #hasFetchAddr}). F_CD_FETCH puts FetchAddr in word 3 as Linux and the architecture do, not in word
 * 2 as QEMU does (§9.2).
 */
public final class EventType {
    private EventType() {}

    /** Unsupported upstream transaction. */
    public static final int F_UUT = 0x01;
    /** StreamID out of range of the stream table. */
    public static final int C_BAD_STREAMID = 0x02;
    /** External abort fetching an STE (or L1 descriptor). */
    public static final int F_STE_FETCH = 0x03;
    /** Invalid or misconfigured STE. */
    public static final int C_BAD_STE = 0x04;
    /** Bad ATS translation request (layout unverified). */
    public static final int F_BAD_ATS_TREQ = 0x05;
    /** Traffic without a SubstreamID on a stream whose STE.S1DSS terminates it. */
    public static final int F_STREAM_DISABLED = 0x06;
    /** Translated (ATS) traffic where translation is forbidden. */
    public static final int F_TRANSL_FORBIDDEN = 0x07;
    /** SubstreamID out of range of the CD table, or substreams disabled. */
    public static final int C_BAD_SUBSTREAMID = 0x08;
    /** External abort fetching a CD (or L1 CD descriptor). */
    public static final int F_CD_FETCH = 0x09;
    /** Invalid or misconfigured CD. */
    public static final int C_BAD_CD = 0x0A;
    /** External abort on a translation table walk. */
    public static final int F_WALK_EABT = 0x0B;
    /** Translation fault. */
    public static final int F_TRANSLATION = 0x10;
    /** Address size fault. */
    public static final int F_ADDR_SIZE = 0x11;
    /** Access flag fault. */
    public static final int F_ACCESS = 0x12;
    /** Permission fault. */
    public static final int F_PERMISSION = 0x13;
    /** TLB conflict (layout unverified). */
    public static final int F_TLB_CONFLICT = 0x20;
    /** Configuration cache conflict. */
    public static final int F_CFG_CONFLICT = 0x21;
    /** Page request under the stall model (layout unverified). */
    public static final int E_PAGE_REQUEST = 0x24;
    /** External abort fetching a VMS (Linux only). */
    public static final int F_VMS_FETCH = 0x25;
    /** First IMPLEMENTATION DEFINED event type. */
    public static final int IMPDEF_FIRST = 0xE0;
    /** Last IMPLEMENTATION DEFINED event type. */
    public static final int IMPDEF_LAST = 0xEF;

    private static final int[] ALL = {
        F_UUT, C_BAD_STREAMID, F_STE_FETCH, C_BAD_STE, F_BAD_ATS_TREQ, F_STREAM_DISABLED, F_TRANSL_FORBIDDEN,
        C_BAD_SUBSTREAMID, F_CD_FETCH, C_BAD_CD, F_WALK_EABT, F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION,
        F_TLB_CONFLICT, F_CFG_CONFLICT, E_PAGE_REQUEST, F_VMS_FETCH
    };

    private static final String[] NAMES = new String[256];

    static {
        String[] names = {
            "F_UUT", "C_BAD_STREAMID", "F_STE_FETCH", "C_BAD_STE", "F_BAD_ATS_TREQ", "F_STREAM_DISABLED",
            "F_TRANSL_FORBIDDEN", "C_BAD_SUBSTREAMID", "F_CD_FETCH", "C_BAD_CD", "F_WALK_EABT", "F_TRANSLATION",
            "F_ADDR_SIZE", "F_ACCESS", "F_PERMISSION", "F_TLB_CONFLICT", "F_CFG_CONFLICT", "E_PAGE_REQUEST",
            "F_VMS_FETCH"
        };
        for (int i = 0; i < ALL.length; i++) {
            NAMES[ALL[i]] = names[i];
        }
    }

    /** Every architected type above, in numeric order (a fresh copy; IMPDEF types not included). */
    public static int[] all() {
        return ALL.clone();
    }

    /** Whether {@code type} is one of the architected types above. */
    public static boolean isKnown(int type) {
        return type >= 0 && type < NAMES.length && NAMES[type] != null;
    }

    /** Whether {@code type} is in the IMPLEMENTATION DEFINED range 0xE0–0xEF. */
    public static boolean isImpdef(int type) {
        return type >= IMPDEF_FIRST && type <= IMPDEF_LAST;
    }

    /** The spec name of a type ({@code "F_TRANSLATION"}…), {@code "IMPDEF_0xNN"} or {@code "UNKNOWN_0xNN"}. */
    public static String name(int type) {
        if (isKnown(type)) {
            return NAMES[type];
        }
        return (isImpdef(type) ? "IMPDEF_0x" : "UNKNOWN_0x") + Integer.toHexString(type);
    }

    /** Whether records of this type carry IPA and NSIPA in word 3 (the translation-class faults). */
    public static boolean hasIpa(int type) {
        return type >= F_TRANSLATION && type <= F_PERMISSION;
    }

    /** Whether records of this type carry FetchAddr in word 3 (the fetch and walk external aborts). */
    public static boolean hasFetchAddr(int type) {
        return type == F_STE_FETCH || type == F_CD_FETCH || type == F_WALK_EABT || type == F_VMS_FETCH;
    }
}
