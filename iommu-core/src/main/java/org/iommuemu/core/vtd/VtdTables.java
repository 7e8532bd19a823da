package org.iommuemu.core.vtd;

import org.iommuemu.core.bits.Bits;

/**
 * The VT-d in-memory translation structures above the page tables: root entries, legacy and scalable-mode
 * context entries, PASID directory entries and PASID table entries ({@code spec/VTD.md} §3; Intel VT-d
 * architecture, "Root Entry", "Context Entry", "Scalable-Mode Context-Entry", "Scalable-Mode PASID Directory
 * Entry", "Scalable-Mode PASID Table Entry"). Positions agree with Linux's {@code intel/iommu.h} and
 * {@code intel/pasid.h}.
 *
 * <p>Entries are little-endian 64-bit words: {@code qw0} at the entry's address, {@code qw1} at +8 and so on.
 * Bit positions are given within their word. The encoders here are what the driver writes; the device decodes
 * with the same constants and checks reserved bits with the {@code *_RSVD} masks.
 *
 * <p>Requester ids: bus in bits 15:8, devfn in bits 7:0. The root table has 256 16-byte entries indexed by bus;
 * a legacy context table 256 16-byte entries indexed by devfn; a scalable-mode root entry points at two
 * context tables (devfn 0–127 through the lower pointer, 128–255 through the upper one), each of 128 32-byte
 * entries.
 */
public final class VtdTables {
    private VtdTables() {}

    /** Bytes in a root entry, a legacy context entry. */
    public static final int ROOT_ENTRY_SIZE = 16;
    public static final int CONTEXT_ENTRY_SIZE = 16;
    /** Bytes in a scalable-mode context entry. */
    public static final int SM_CONTEXT_ENTRY_SIZE = 32;
    /** Bytes in a PASID directory entry and a PASID table entry. */
    public static final int PASID_DIR_ENTRY_SIZE = 8;
    public static final int PASID_ENTRY_SIZE = 64;
    /** PASID table entries per 4 KB PASID table (PASID[5:0] indexes it, PASID[19:6] the directory). */
    public static final int PASIDS_PER_TABLE_LG2 = 6;

    /** The address bits of every pointer field: 4 KB-aligned, up to bit 63. */
    public static final long PTR_MASK = Bits.maskHiLo(63, 12);

    // ---------------------------------------------------------------------------------------- root entry

    /** Root entry qw0: present (legacy P, scalable LP). */
    public static final int ROOT_P = 0;
    /** Scalable root entry qw1: upper context table present (UP). */
    public static final int ROOT_UP = 0;
    /** Reserved bits of a root entry word: bits 11:1 (the upper word of a legacy root entry is all reserved). */
    public static final long ROOT_RSVD = Bits.maskHiLo(11, 1);

    // ---------------------------------------------------------------------------------------- legacy context

    public static final int CTX_P = 0;
    public static final int CTX_FPD = 1;
    /** qw0[3:2] translation type. */
    public static final int CTX_TT = 2;
    /** TT: untranslated requests through the second-stage table (device-TLB disabled). */
    public static final int TT_MULTI_LEVEL = 0;
    /** TT: as {@link #TT_MULTI_LEVEL}, and translated/translation requests allowed (device TLB). */
    public static final int TT_DEV_IOTLB = 1;
    /** TT: untranslated requests pass through (needs ECAP.PT). */
    public static final int TT_PASS_THROUGH = 2;
    /** qw1[2:0] address width: 1 = 39-bit (3-level), 2 = 48-bit (4-level), 3 = 57-bit (5-level). */
    public static final int CTX_AW = 0;
    /** qw1[23:8] domain id. */
    public static final int CTX_DID = 8;
    /** Reserved bits of a legacy context entry: qw0 11:4; qw1 bit 7 and 63:24. */
    public static final long CTX_RSVD0 = Bits.maskHiLo(11, 4);
    public static final long CTX_RSVD1 = Bits.maskHiLo(63, 24) | (1L << 7);

    // ---------------------------------------------------------------------------------------- scalable context

    public static final int SMCTX_P = 0;
    public static final int SMCTX_FPD = 1;
    /** Device-TLB enable. */
    public static final int SMCTX_DTE = 2;
    /** PASID enable: requests with a PASID are allowed. */
    public static final int SMCTX_PASIDE = 3;
    /** Page-request enable. */
    public static final int SMCTX_PRE = 4;
    /** qw0[11:9] PASID directory size: 2^(PDTS+7) entries. */
    public static final int SMCTX_PDTS = 9;
    /** qw1[19:0] RID_PASID: the PASID of requests without one. */
    public static final int SMCTX_RID_PASID = 0;
    public static final int SMCTX_RID_PASID_WIDTH = 20;
    /** Reserved bits: qw0 8:5, qw1 63:21 (bit 20, RID_PRIV, is accepted and ignored), qw2 and qw3 all. */
    public static final long SMCTX_RSVD0 = Bits.maskHiLo(8, 5);
    public static final long SMCTX_RSVD1 = Bits.maskHiLo(63, 21);

    // ---------------------------------------------------------------------------------------- PASID directory

    public static final int PDE_P = 0;
    public static final int PDE_FPD = 1;
    /** Reserved bits of a PASID directory entry: 11:2. */
    public static final long PDE_RSVD = Bits.maskHiLo(11, 2);

    // ---------------------------------------------------------------------------------------- PASID entry

    public static final int PE_P = 0;
    public static final int PE_FPD = 1;
    /** qw0[4:2] second-stage address width, as the legacy context entry's AW. */
    public static final int PE_AW = 2;
    /** qw0[8:6] PASID-granular translation type. */
    public static final int PE_PGTT = 6;
    public static final int PGTT_FIRST_STAGE = 1;
    public static final int PGTT_SECOND_STAGE = 2;
    public static final int PGTT_NESTED = 3;
    public static final int PGTT_PASS_THROUGH = 4;
    /** qw0 bit 9: second-stage accessed/dirty enable. */
    public static final int PE_SSADE = 9;
    /** qw1[15:0] domain id. */
    public static final int PE_DID = 0;
    /** qw1 bit 23: page-walk snoop. */
    public static final int PE_PWSNP = 23;
    /** qw1 bit 24: page snoop. */
    public static final int PE_PGSNP = 24;
    /** qw2 bit 0: supervisor requests enable. */
    public static final int PE_SRE = 0;
    /** qw2[3:2] first-stage paging mode: 0 4-level, 1 5-level. */
    public static final int PE_FSPM = 2;
    /** qw2 bit 4: write-protect enable (supervisor writes obey R/W). */
    public static final int PE_WPE = 4;
    /** Reserved bits this model checks: qw0 bit 5 and 11:10; qw2 11:8. */
    public static final long PE_RSVD0 = (1L << 5) | Bits.maskHiLo(11, 10);
    public static final long PE_RSVD2 = Bits.maskHiLo(11, 8);

    // ---------------------------------------------------------------------------------------- helpers

    /** The bus of a requester id. */
    public static int bus(int requesterId) {
        return (requesterId >>> 8) & 0xFF;
    }

    /** The device/function of a requester id. */
    public static int devfn(int requesterId) {
        return requesterId & 0xFF;
    }

    /** Levels of a second-stage table for an address-width field AW (1..3), or 0 for a reserved value. */
    public static int levelsOfAw(int aw) {
        return aw >= 1 && aw <= 3 ? aw + 2 : 0;
    }

    /** The AW field for a table of {@code levels} (3..5). */
    public static int awOfLevels(int levels) {
        if (levels < 3 || levels > 5) {
            throw new IllegalArgumentException("levels must be 3..5, was " + levels);
        }
        return levels - 2;
    }

    /** The address of the root entry of {@code bus} in the root table at {@code rootTable}. */
    public static long rootEntryAddress(long rootTable, int bus) {
        return rootTable + (long) ROOT_ENTRY_SIZE * bus;
    }

    /** Legacy root entry qw0 pointing at the context table {@code contextTable}. */
    public static long rootEntry(long contextTable) {
        return (contextTable & PTR_MASK) | (1L << ROOT_P);
    }

    /** Legacy context entry qw0. */
    public static long contextQw0(long ssptptr, int translationType, boolean faultProcessingDisable) {
        return (ssptptr & PTR_MASK) | ((long) (translationType & 3) << CTX_TT)
                | (faultProcessingDisable ? 1L << CTX_FPD : 0) | (1L << CTX_P);
    }

    /** Legacy context entry qw1. */
    public static long contextQw1(int domainId, int levels) {
        return ((long) (domainId & 0xFFFF) << CTX_DID) | awOfLevels(levels);
    }

    /** Scalable-mode context entry qw0 for a PASID directory of {@code 2^(pdts+7)} entries. */
    public static long smContextQw0(long pasidDir, int pdts, boolean pasidEnable, boolean faultProcessingDisable) {
        return (pasidDir & PTR_MASK) | ((long) (pdts & 7) << SMCTX_PDTS)
                | (pasidEnable ? 1L << SMCTX_PASIDE : 0) | (faultProcessingDisable ? 1L << SMCTX_FPD : 0)
                | (1L << SMCTX_P);
    }

    /** The PASID directory size field for a directory of at least {@code entries} entries (128..2^14). */
    public static int pdtsFor(int entries) {
        int lg2 = 64 - Long.numberOfLeadingZeros(Math.max(entries, 128) - 1L);
        if (lg2 > 14) {
            throw new IllegalArgumentException("a PASID directory holds at most 2^14 entries, asked " + entries);
        }
        return lg2 - 7;
    }

    /** Entries of a PASID directory of size field PDTS. */
    public static int pasidDirEntries(int pdts) {
        return 1 << (pdts + 7);
    }

    /** PASID directory entry pointing at the PASID table {@code pasidTable}. */
    public static long pasidDirEntry(long pasidTable) {
        return (pasidTable & PTR_MASK) | (1L << PDE_P);
    }

    /** PASID table entry qw0 (second-stage pointer, address width, PGTT). */
    public static long pasidQw0(int pgtt, long ssptptr, int ssLevels, boolean faultProcessingDisable) {
        long v = (1L << PE_P) | ((long) (pgtt & 7) << PE_PGTT) | (faultProcessingDisable ? 1L << PE_FPD : 0);
        if (pgtt == PGTT_SECOND_STAGE || pgtt == PGTT_NESTED) {
            v |= (ssptptr & PTR_MASK) | ((long) awOfLevels(ssLevels) << PE_AW);
        }
        return v;
    }

    /** PASID table entry qw1 (domain id; page-walk snoop as Linux sets it on coherent units). */
    public static long pasidQw1(int domainId, boolean pageWalkSnoop) {
        return (domainId & 0xFFFFL) | (pageWalkSnoop ? 1L << PE_PWSNP : 0);
    }

    /** PASID table entry qw2 (first-stage pointer, paging mode, supervisor requests, write protect). */
    public static long pasidQw2(long fsptptr, int fsLevels, boolean supervisor, boolean writeProtect) {
        if (fsLevels != 4 && fsLevels != 5) {
            throw new IllegalArgumentException("first-stage tables have 4 or 5 levels, not " + fsLevels);
        }
        return (fsptptr & PTR_MASK) | ((long) (fsLevels - 4) << PE_FSPM)
                | (supervisor ? 1L << PE_SRE : 0) | (writeProtect ? 1L << PE_WPE : 0);
    }
}
