package org.iommuemu.core.vtd;

import org.iommuemu.core.bits.Bits;

/**
 * VT-d queued-invalidation descriptors ({@code spec/VTD.md} §5; Intel VT-d architecture, "Queued
 * Invalidation"): type codes, field positions and encoders. A descriptor is two 64-bit words in 128-bit mode
 * (IQA.DW=0) and four in 256-bit mode, the upper two then reserved for every type this model knows.
 * The type is {@code qw0[3:0] | qw0[11:9] << 4}.
 *
 * <p>The encoders return qw0 or qw1 of one descriptor; the driver writes them into its queue, the device
 * decodes with the same constants and rejects set bits under the {@code *_RSVD*} masks (QEMU's masks).
 */
public final class InvDesc {
    private InvDesc() {}

    public static final int TYPE_CONTEXT_CACHE = 1;
    public static final int TYPE_IOTLB = 2;
    public static final int TYPE_DEVICE_TLB = 3;
    public static final int TYPE_IEC = 4;
    public static final int TYPE_WAIT = 5;
    public static final int TYPE_PASID_IOTLB = 6;
    public static final int TYPE_PASID_CACHE = 7;
    public static final int TYPE_PASID_DEVICE_TLB = 8;
    public static final int TYPE_PAGE_GROUP_RESPONSE = 9;

    /** The type of a descriptor from its qw0. */
    public static int type(long qw0) {
        return (int) ((qw0 & 0xF) | ((qw0 >>> 9) & 0x7) << 4);
    }

    /** A short name of a descriptor type, for messages and counters. */
    public static String typeName(int type) {
        return switch (type) {
            case TYPE_CONTEXT_CACHE -> "CC_INV";
            case TYPE_IOTLB -> "IOTLB_INV";
            case TYPE_DEVICE_TLB -> "DEV_TLB_INV";
            case TYPE_IEC -> "IEC_INV";
            case TYPE_WAIT -> "INV_WAIT";
            case TYPE_PASID_IOTLB -> "P_IOTLB_INV";
            case TYPE_PASID_CACHE -> "PC_INV";
            case TYPE_PASID_DEVICE_TLB -> "P_DEV_TLB_INV";
            case TYPE_PAGE_GROUP_RESPONSE -> "PGRP_RESP";
            default -> "TYPE_" + Integer.toHexString(type);
        };
    }

    /** qw0[5:4]: the granularity of context-cache, IOTLB, PASID-IOTLB and PASID-cache descriptors. */
    public static final int G = 4;
    /** qw0[31:16]: the domain id. */
    public static final int DID = 16;
    /** Context-cache qw0[47:32]: the source id; [49:48] the function mask. */
    public static final int CC_SID = 32;
    public static final int CC_FM = 48;
    /** IOTLB qw0 bit 6 / 7: drain writes / reads. */
    public static final int IOTLB_DW = 6;
    public static final int IOTLB_DR = 7;
    /** qw0[51:32] of PASID-based descriptors. */
    public static final int PASID = 32;
    /** qw1 of IOTLB and PASID-IOTLB: AM[5:0], IH bit 6, ADDR[63:12]. */
    public static final int ADDR_AM = 0;
    public static final int ADDR_IH = 6;
    /** Device-TLB qw0: SID[47:32]; qw1: S bit 0 (size), ADDR[63:12]. */
    public static final int DEV_SID = 32;
    public static final int DEV_S = 0;
    /** Invalidation wait qw0: IF 4, SW 5, FN 6, PD 7, status data [63:32]; qw1: status address [63:2]. */
    public static final int WAIT_IF = 4;
    public static final int WAIT_SW = 5;
    public static final int WAIT_FN = 6;
    public static final int WAIT_PD = 7;
    public static final int WAIT_DATA = 32;
    /** The status value Linux's driver writes and polls for (QI_DONE). */
    public static final int STATUS_DONE = 2;

    /** Context-cache G and IOTLB G: see {@link VtdRegs#CC_GLOBAL} and {@link VtdRegs#IOTLB_GLOBAL}. */
    /** PASID-IOTLB G: every non-global entry of a PASID; page-selective within a PASID. */
    public static final int PIOTLB_PASID = 2;
    public static final int PIOTLB_PAGE = 3;
    /** PASID-cache G: domain-selective, PASID-selective, global. */
    public static final int PC_DOMAIN = 0;
    public static final int PC_PASID = 1;
    public static final int PC_GLOBAL = 3;

    // Reserved bits (QEMU's masks; bits 11:9 are the type's high bits and are not reserved)
    public static final long CC_RSVD0 = 0xFFFC_0000_0000_F1C0L;
    public static final long IOTLB_RSVD0 = 0xFFFF_FFFF_0000_F100L;
    public static final long ADDR_RSVD1 = 0xF80L;
    public static final long DEV_RSVD0 = 0xFFFF_0000_FFE0_F1F0L;
    public static final long DEV_RSVD1 = 0xFFEL;
    public static final long IEC_RSVD0 = 0xFFFF_0000_07FF_F1E0L;
    public static final long WAIT_RSVD0 = 0xFFFF_F100L;
    public static final long WAIT_RSVD1 = 0x3L;
    public static final long PIOTLB_RSVD0 = 0xFFF0_0000_0000_F1C0L;
    public static final long PC_RSVD0 = 0xFFF0_0000_0000_F1C0L;
    public static final long PDEV_RSVD0 = 0xFFF0_0000_0000_F000L;
    public static final long PDEV_RSVD1 = 0x7FEL;

    private static long typeBits(int type) {
        return (type & 0xF) | (long) ((type >>> 4) & 7) << 9;
    }

    /** Context-cache invalidation: {@code g} 1 global, 2 domain ({@code did}), 3 device ({@code sid}, {@code fm}). */
    public static long contextCache(int g, int did, int sid, int fm) {
        return typeBits(TYPE_CONTEXT_CACHE) | ((long) (g & 3) << G) | ((long) (did & 0xFFFF) << DID)
                | ((long) (sid & 0xFFFF) << CC_SID) | ((long) (fm & 3) << CC_FM);
    }

    /** IOTLB invalidation qw0: {@code g} 1 global, 2 domain, 3 page-selective (address in {@link #addr}). */
    public static long iotlb(int g, int did, boolean drainReads, boolean drainWrites) {
        return typeBits(TYPE_IOTLB) | ((long) (g & 3) << G) | ((long) (did & 0xFFFF) << DID)
                | (drainReads ? 1L << IOTLB_DR : 0) | (drainWrites ? 1L << IOTLB_DW : 0);
    }

    /** PASID-based IOTLB invalidation qw0: {@code g} {@link #PIOTLB_PASID} or {@link #PIOTLB_PAGE}. */
    public static long pasidIotlb(int g, int did, int pasid) {
        return typeBits(TYPE_PASID_IOTLB) | ((long) (g & 3) << G) | ((long) (did & 0xFFFF) << DID)
                | ((long) (pasid & 0xFFFFF) << PASID);
    }

    /** PASID-cache invalidation: {@code g} {@link #PC_DOMAIN}, {@link #PC_PASID} or {@link #PC_GLOBAL}. */
    public static long pasidCache(int g, int did, int pasid) {
        return typeBits(TYPE_PASID_CACHE) | ((long) (g & 3) << G) | ((long) (did & 0xFFFF) << DID)
                | ((long) (pasid & 0xFFFFF) << PASID);
    }

    /**
     * qw1 of IOTLB and PASID-IOTLB page-selective invalidations: {@code 2^am} 4 KB pages from {@code addr}
     * (which must be aligned to that span), {@code ih} when only leaf entries changed.
     */
    public static long addr(long addr, int am, boolean ih) {
        if (am < 0 || am > 63) {
            throw new IllegalArgumentException("address mask must be 0..63, was " + am);
        }
        if (am < 52 && !Bits.isAligned(addr, 12 + am)) {
            throw new IllegalArgumentException("address " + Bits.hex(addr) + " is not aligned to 2^" + am + " pages");
        }
        return (addr & VtdTables.PTR_MASK) | (ih ? 1L << ADDR_IH : 0) | am;
    }

    /** Device-TLB invalidation qw0 for source id {@code sid}. */
    public static long deviceTlb(int sid) {
        return typeBits(TYPE_DEVICE_TLB) | ((long) (sid & 0xFFFF) << DEV_SID);
    }

    /** PASID-based device-TLB qw0: SID[31:16]; qw1: G bit 0 (every PASID), S bit 11, ADDR[63:12]. */
    public static final int PDEV_SID = 16;
    public static final int PDEV_G = 0;
    public static final int PDEV_S = 11;

    /** PASID-based device-TLB invalidation qw0 for source id {@code sid} and PASID {@code pasid}. */
    public static long pasidDeviceTlb(int sid, int pasid) {
        return typeBits(TYPE_PASID_DEVICE_TLB) | ((long) (sid & 0xFFFF) << PDEV_SID)
                | ((long) (pasid & 0xFFFFF) << PASID);
    }

    /**
     * qw1 of a device-TLB invalidation covering the {@code 2^spanLg2} bytes at {@code addr} (aligned to them):
     * S=0 for one 4 KB page; otherwise S=1 with address bits 12..spanLg2-2 set, so that the lowest clear bit N gives
     * 2^(N+1) bytes; {@code spanLg2} 64 is the whole address space (every address bit set).
     */
    public static long deviceTlbAddr(long addr, int spanLg2) {
        return sizedAddress(addr, spanLg2, DEV_S);
    }

    /**
     * qw1 of a PASID-based device-TLB invalidation: as {@link #deviceTlbAddr} with the size bit at 11, and G
     * ({@code global}: entries of every PASID).
     */
    public static long pasidDeviceTlbAddr(long addr, int spanLg2, boolean global) {
        return sizedAddress(addr, spanLg2, PDEV_S) | (global ? 1L << PDEV_G : 0);
    }

    private static long sizedAddress(long addr, int spanLg2, int sizeBit) {
        if (spanLg2 < 12 || spanLg2 > 64) {
            throw new IllegalArgumentException("device-TLB span must be 2^12..2^64 bytes, was 2^" + spanLg2);
        }
        if (spanLg2 == 12) {
            if (!Bits.isAligned(addr, 12)) {
                throw new IllegalArgumentException("address " + Bits.hex(addr) + " is not 4 KB aligned");
            }
            return addr;
        }
        if (spanLg2 < 64 && !Bits.isAligned(addr, spanLg2)) {
            throw new IllegalArgumentException("address " + Bits.hex(addr) + " is not aligned to 2^" + spanLg2);
        }
        long low = spanLg2 == 64 ? -1L : (1L << (spanLg2 - 1)) - 1;
        return ((addr | low) & VtdTables.PTR_MASK) | 1L << sizeBit;
    }

    /** Interrupt-entry-cache invalidation qw0, global. */
    public static long iecGlobal() {
        return typeBits(TYPE_IEC);
    }

    /**
     * Invalidation wait qw0: {@code statusWrite} writes {@code data} to the address in qw1, {@code interrupt}
     * sets ICS.IWC and raises the completion event, {@code fence} holds later descriptors until this one is done.
     */
    public static long waitQw0(boolean statusWrite, boolean interrupt, boolean fence, int data) {
        return typeBits(TYPE_WAIT) | (statusWrite ? 1L << WAIT_SW : 0) | (interrupt ? 1L << WAIT_IF : 0)
                | (fence ? 1L << WAIT_FN : 0) | ((long) data << WAIT_DATA);
    }

    /** Invalidation wait qw1: the status address (4-byte aligned). */
    public static long waitQw1(long statusAddress) {
        if ((statusAddress & 3) != 0) {
            throw new IllegalArgumentException("status address " + Bits.hex(statusAddress) + " is not 4-byte aligned");
        }
        return statusAddress;
    }
}
