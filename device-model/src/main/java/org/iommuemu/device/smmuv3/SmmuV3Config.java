package org.iommuemu.device.smmuv3;

import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.device.xlate.CostModel;

/**
 * What an emulated SMMUv3 implements, and the ID register values that advertise it (Arm SMMUv3
 * architecture, "SMMU_IDR0" to "SMMU_IDR5"; field positions in {@code spec/SMMUV3.md} §2).
 *
 * <p>Fixed by the model rather than configurable: AArch64 translation tables only (IDR0.TTF=2),
 * little-endian tables (TTENDIAN=2), coherent table and queue access (COHACC=1), no stalling
 * (STALL_MODEL=1), TERM_MODEL=0 (CD.A chooses between abort and RAZ/WI), no broadcast TLB maintenance,
 * no hypervisor (E2H) or secure/realm features, 48-bit or smaller input addresses (VAX=0).
 *
 * @param sidBits StreamID width, 0..32 (IDR1.SIDSIZE)
 * @param ssidBits SubstreamID width, 0..20 (IDR1.SSIDSIZE); 0 without stage 1
 * @param oasBits output address size: 32, 36, 40, 42, 44, 48 or 52 (IDR5.OAS)
 * @param stage1 stage-1 translation (IDR0.S1P)
 * @param stage2 stage-2 translation (IDR0.S2P)
 * @param twoLevelStreamTable 2-level stream tables (IDR0.ST_LEVEL=1)
 * @param twoLevelCd 2-level context-descriptor tables (IDR0.CD2L); needs stage 1
 * @param asid16 16-bit ASIDs (IDR0.ASID16); needs stage 1
 * @param vmid16 16-bit VMIDs (IDR0.VMID16); needs stage 2
 * @param rangeInvalidation range TLB invalidation (IDR3.RIL)
 * @param msi message-signalled interrupts (IDR0.MSI)
 * @param sev send-event on CMD_SYNC (IDR0.SEV)
 * @param ats PCIe ATS (IDR0.ATS)
 * @param pri PCIe PRI and the PRI queue (IDR0.PRI); needs ATS
 * @param httuAccess hardware access-flag update (IDR0.HTTU ≥ 1)
 * @param httuDirty hardware dirty-state update (IDR0.HTTU = 2); needs httuAccess
 * @param granule4k 4 KB translation granule (IDR5.GRAN4K)
 * @param granule16k 16 KB granule (IDR5.GRAN16K)
 * @param granule64k 64 KB granule (IDR5.GRAN64K)
 * @param cmdqLog2 log2 of the largest command queue, 0..19 (IDR1.CMDQS)
 * @param eventqLog2 log2 of the largest event queue, 0..19 (IDR1.EVENTQS)
 * @param priqLog2 log2 of the largest PRI queue, 0..19 (IDR1.PRIQS; reported as 0 without PRI)
 * @param iotlbCapacity IOTLB entries
 * @param configCacheCapacity configuration-cache entries (STEs and CDs)
 * @param walkCacheCapacity walk-cache entries (intermediate table descriptors)
 * @param cost simulated nanoseconds per MMIO access, table read, command, sync...
 * @param atcTimeoutMs wall-clock milliseconds an ATC invalidation (ATC_INV) may stay without the device's completion
 *     before the CMD_SYNC after it fails with CERROR_ATC_INV_SYNC (docs/ATS.md), 1..600000
 */
public record SmmuV3Config(
        int sidBits,
        int ssidBits,
        int oasBits,
        boolean stage1,
        boolean stage2,
        boolean twoLevelStreamTable,
        boolean twoLevelCd,
        boolean asid16,
        boolean vmid16,
        boolean rangeInvalidation,
        boolean msi,
        boolean sev,
        boolean ats,
        boolean pri,
        boolean httuAccess,
        boolean httuDirty,
        boolean granule4k,
        boolean granule16k,
        boolean granule64k,
        int cmdqLog2,
        int eventqLog2,
        int priqLog2,
        int iotlbCapacity,
        int configCacheCapacity,
        int walkCacheCapacity,
        CostModel cost,
        int atcTimeoutMs) {

    /** The largest queue log2 size the architecture allows (IDR1.CMDQS/EVENTQS/PRIQS). */
    public static final int MAX_QUEUE_LOG2 = 19;

    /** IDR0.TTF: AArch64 tables only. */
    public static final int TTF_AARCH64 = SmmuRegs.TTF_AARCH64;
    /** IDR0.TTENDIAN: little-endian only. */
    public static final int TTENDIAN_LITTLE = SmmuRegs.TTENDIAN_LITTLE;
    /** IDR0.STALL_MODEL: stalling not supported. */
    public static final int STALL_MODEL_NO_STALL = SmmuRegs.STALL_MODEL_NO_STALL;

    /** @throws IllegalArgumentException for values out of range or combinations the architecture forbids */
    public SmmuV3Config {
        check(sidBits >= 0 && sidBits <= 32, "sidBits must be 0..32, was " + sidBits);
        check(ssidBits >= 0 && ssidBits <= 20, "ssidBits must be 0..20, was " + ssidBits);
        check(oasEncoding(oasBits) >= 0, "oasBits must be 32, 36, 40, 42, 44, 48 or 52, was " + oasBits);
        check(stage1 || stage2, "at least one of stage1 and stage2 must be implemented");
        check(stage1 || ssidBits == 0, "substreams (ssidBits > 0) need stage 1");
        check(stage1 || !twoLevelCd, "2-level CD tables need stage 1");
        check(stage1 || !asid16, "16-bit ASIDs need stage 1");
        check(stage2 || !vmid16, "16-bit VMIDs need stage 2");
        check(!pri || ats, "PRI needs ATS");
        check(!httuDirty || httuAccess, "hardware dirty update needs hardware access-flag update");
        check(granule4k || granule16k || granule64k, "at least one translation granule is needed");
        check(cmdqLog2 >= 0 && cmdqLog2 <= MAX_QUEUE_LOG2, "cmdqLog2 must be 0..19, was " + cmdqLog2);
        check(eventqLog2 >= 0 && eventqLog2 <= MAX_QUEUE_LOG2, "eventqLog2 must be 0..19, was " + eventqLog2);
        check(priqLog2 >= 0 && priqLog2 <= MAX_QUEUE_LOG2, "priqLog2 must be 0..19, was " + priqLog2);
        check(iotlbCapacity >= 1 && iotlbCapacity <= 1 << 20, "iotlbCapacity must be 1..2^20, was " + iotlbCapacity);
        check(configCacheCapacity >= 1 && configCacheCapacity <= 1 << 20,
                "configCacheCapacity must be 1..2^20, was " + configCacheCapacity);
        check(walkCacheCapacity >= 1 && walkCacheCapacity <= 1 << 20,
                "walkCacheCapacity must be 1..2^20, was " + walkCacheCapacity);
        check(cost != null, "cost model missing");
        check(atcTimeoutMs >= 1 && atcTimeoutMs <= MAX_ATC_TIMEOUT_MS,
                "atcTimeoutMs must be 1.." + MAX_ATC_TIMEOUT_MS + ", was " + atcTimeoutMs);
    }

    /** Default wall-clock time an ATC invalidation may take, in milliseconds. */
    public static final int DEFAULT_ATC_TIMEOUT_MS = 1000;
    /** The longest ATC invalidation timeout, in milliseconds (ten minutes). */
    public static final int MAX_ATC_TIMEOUT_MS = 600_000;

    /** Default IOTLB entries. */
    public static final int DEFAULT_IOTLB_CAPACITY = 2048;
    /** Default configuration-cache entries (STEs and CDs). */
    public static final int DEFAULT_CONFIG_CACHE_CAPACITY = 256;
    /** Default walk-cache entries. */
    public static final int DEFAULT_WALK_CACHE_CAPACITY = 512;

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("SMMUv3 config: " + message);
        }
    }

    /**
     * A capable SMMUv3.2 with what Linux uses: 16-bit StreamIDs, 20-bit SubstreamIDs, 48-bit OAS, both
     * stages, 2-level stream and CD tables, 16-bit ASIDs and VMIDs, range invalidation, MSI, SEV, HTTU
     * access and dirty, all three granules, 2^19-entry queues; no ATS, no PRI.
     */
    public static SmmuV3Config defaults() {
        return new SmmuV3Config(16, 20, 48, true, true, true, true, true, true, true, true, true, false, false,
                true, true, true, true, true, MAX_QUEUE_LOG2, MAX_QUEUE_LOG2, MAX_QUEUE_LOG2,
                DEFAULT_IOTLB_CAPACITY, DEFAULT_CONFIG_CACHE_CAPACITY, DEFAULT_WALK_CACHE_CAPACITY, CostModel.DEFAULTS,
                DEFAULT_ATC_TIMEOUT_MS);
    }

    /** A builder starting from {@link #defaults()}. */
    public static Builder builder() {
        return defaults().toBuilder();
    }

    /** A builder starting from this configuration. */
    public Builder toBuilder() {
        return new Builder(this);
    }

    /** The IDR5.OAS encoding of an output address size, or -1 if there is none. */
    public static int oasEncoding(int bits) {
        return switch (bits) {
            case 32 -> 0;
            case 36 -> 1;
            case 40 -> 2;
            case 42 -> 3;
            case 44 -> 4;
            case 48 -> 5;
            case 52 -> 6;
            default -> -1;
        };
    }

    /** IDR0.HTTU: 0 none, 1 access flag, 2 access flag and dirty state. */
    public int httu() {
        return httuDirty ? 2 : httuAccess ? 1 : 0;
    }

    /** SMMU_IDR0: the implemented features. */
    public long idr0() {
        long v = 0;
        v = Bits.deposit(v, SmmuV3Registers.IDR0_S2P, 1, b(stage2));
        v = Bits.deposit(v, SmmuV3Registers.IDR0_S1P, 1, b(stage1));
        v = Bits.deposit(v, SmmuV3Registers.IDR0_TTF, 2, TTF_AARCH64);
        v = Bits.deposit(v, SmmuV3Registers.IDR0_COHACC, 1, 1);
        v = Bits.deposit(v, SmmuV3Registers.IDR0_HTTU, 2, httu());
        v = Bits.deposit(v, SmmuV3Registers.IDR0_ATS, 1, b(ats));
        v = Bits.deposit(v, SmmuV3Registers.IDR0_ASID16, 1, b(asid16));
        v = Bits.deposit(v, SmmuV3Registers.IDR0_MSI, 1, b(msi));
        v = Bits.deposit(v, SmmuV3Registers.IDR0_SEV, 1, b(sev));
        v = Bits.deposit(v, SmmuV3Registers.IDR0_PRI, 1, b(pri));
        v = Bits.deposit(v, SmmuV3Registers.IDR0_VMID16, 1, b(vmid16));
        v = Bits.deposit(v, SmmuV3Registers.IDR0_CD2L, 1, b(twoLevelCd));
        v = Bits.deposit(v, SmmuV3Registers.IDR0_TTENDIAN, 2, TTENDIAN_LITTLE);
        v = Bits.deposit(v, SmmuV3Registers.IDR0_STALL_MODEL, 2, STALL_MODEL_NO_STALL);
        v = Bits.deposit(v, SmmuV3Registers.IDR0_TERM_MODEL, 1, 0);
        v = Bits.deposit(v, SmmuV3Registers.IDR0_ST_LEVEL, 2, b(twoLevelStreamTable));
        return v;
    }

    /** SMMU_IDR1: table and queue sizes. No queue or table is preset; no attribute overrides. */
    public long idr1() {
        long v = 0;
        v = Bits.deposit(v, SmmuV3Registers.IDR1_SIDSIZE, 6, sidBits);
        v = Bits.deposit(v, SmmuV3Registers.IDR1_SSIDSIZE, 5, ssidBits);
        v = Bits.deposit(v, SmmuV3Registers.IDR1_PRIQS, 5, pri ? priqLog2 : 0);
        v = Bits.deposit(v, SmmuV3Registers.IDR1_EVENTQS, 5, eventqLog2);
        v = Bits.deposit(v, SmmuV3Registers.IDR1_CMDQS, 5, cmdqLog2);
        return v;
    }

    /** SMMU_IDR2: no VATOS interface. */
    public long idr2() {
        return 0;
    }

    /** SMMU_IDR3: range invalidation only. */
    public long idr3() {
        return Bits.deposit(0, SmmuV3Registers.IDR3_RIL, 1, b(rangeInvalidation));
    }

    /** SMMU_IDR4: implementation defined; zero. */
    public long idr4() {
        return 0;
    }

    /** SMMU_IDR5: output address size and granules; no stalls (STALL_MAX=0), 48-bit VA (VAX=0). */
    public long idr5() {
        long v = 0;
        v = Bits.deposit(v, SmmuV3Registers.IDR5_OAS, 3, oasEncoding(oasBits));
        v = Bits.deposit(v, SmmuV3Registers.IDR5_GRAN4K, 1, b(granule4k));
        v = Bits.deposit(v, SmmuV3Registers.IDR5_GRAN16K, 1, b(granule16k));
        v = Bits.deposit(v, SmmuV3Registers.IDR5_GRAN64K, 1, b(granule64k));
        return v;
    }

    private static long b(boolean flag) {
        return flag ? 1 : 0;
    }

    /** Builds a {@link SmmuV3Config}; validation happens in {@link #build()}. */
    public static final class Builder {
        private int sidBits;
        private int ssidBits;
        private int oasBits;
        private boolean stage1;
        private boolean stage2;
        private boolean twoLevelStreamTable;
        private boolean twoLevelCd;
        private boolean asid16;
        private boolean vmid16;
        private boolean rangeInvalidation;
        private boolean msi;
        private boolean sev;
        private boolean ats;
        private boolean pri;
        private boolean httuAccess;
        private boolean httuDirty;
        private boolean granule4k;
        private boolean granule16k;
        private boolean granule64k;
        private int cmdqLog2;
        private int eventqLog2;
        private int priqLog2;
        private int iotlbCapacity;
        private int configCacheCapacity;
        private int walkCacheCapacity;
        private CostModel cost;
        private int atcTimeoutMs;

        private Builder(SmmuV3Config c) {
            sidBits = c.sidBits;
            ssidBits = c.ssidBits;
            oasBits = c.oasBits;
            stage1 = c.stage1;
            stage2 = c.stage2;
            twoLevelStreamTable = c.twoLevelStreamTable;
            twoLevelCd = c.twoLevelCd;
            asid16 = c.asid16;
            vmid16 = c.vmid16;
            rangeInvalidation = c.rangeInvalidation;
            msi = c.msi;
            sev = c.sev;
            ats = c.ats;
            pri = c.pri;
            httuAccess = c.httuAccess;
            httuDirty = c.httuDirty;
            granule4k = c.granule4k;
            granule16k = c.granule16k;
            granule64k = c.granule64k;
            cmdqLog2 = c.cmdqLog2;
            eventqLog2 = c.eventqLog2;
            priqLog2 = c.priqLog2;
            iotlbCapacity = c.iotlbCapacity;
            configCacheCapacity = c.configCacheCapacity;
            walkCacheCapacity = c.walkCacheCapacity;
            cost = c.cost;
            atcTimeoutMs = c.atcTimeoutMs;
        }

        /** Wall-clock milliseconds an ATC invalidation may take before its CMD_SYNC fails. */
        public Builder atcTimeoutMs(int v) {
            atcTimeoutMs = v;
            return this;
        }

        /** IOTLB entries (LRU beyond that). */
        public Builder iotlbCapacity(int v) {
            iotlbCapacity = v;
            return this;
        }

        /** Configuration-cache entries (STEs and CDs; LRU beyond that). */
        public Builder configCacheCapacity(int v) {
            configCacheCapacity = v;
            return this;
        }

        /** Walk-cache entries (intermediate table descriptors; LRU beyond that). */
        public Builder walkCacheCapacity(int v) {
            walkCacheCapacity = v;
            return this;
        }

        /** Simulated nanoseconds charged per MMIO access, table read, command, sync... */
        public Builder cost(CostModel v) {
            cost = v;
            return this;
        }

        public Builder sidBits(int v) {
            sidBits = v;
            return this;
        }

        public Builder ssidBits(int v) {
            ssidBits = v;
            return this;
        }

        public Builder oasBits(int v) {
            oasBits = v;
            return this;
        }

        public Builder stage1(boolean v) {
            stage1 = v;
            return this;
        }

        public Builder stage2(boolean v) {
            stage2 = v;
            return this;
        }

        public Builder twoLevelStreamTable(boolean v) {
            twoLevelStreamTable = v;
            return this;
        }

        public Builder twoLevelCd(boolean v) {
            twoLevelCd = v;
            return this;
        }

        public Builder asid16(boolean v) {
            asid16 = v;
            return this;
        }

        public Builder vmid16(boolean v) {
            vmid16 = v;
            return this;
        }

        public Builder rangeInvalidation(boolean v) {
            rangeInvalidation = v;
            return this;
        }

        public Builder msi(boolean v) {
            msi = v;
            return this;
        }

        public Builder sev(boolean v) {
            sev = v;
            return this;
        }

        public Builder ats(boolean v) {
            ats = v;
            return this;
        }

        public Builder pri(boolean v) {
            pri = v;
            return this;
        }

        public Builder httuAccess(boolean v) {
            httuAccess = v;
            return this;
        }

        public Builder httuDirty(boolean v) {
            httuDirty = v;
            return this;
        }

        public Builder granule4k(boolean v) {
            granule4k = v;
            return this;
        }

        public Builder granule16k(boolean v) {
            granule16k = v;
            return this;
        }

        public Builder granule64k(boolean v) {
            granule64k = v;
            return this;
        }

        public Builder cmdqLog2(int v) {
            cmdqLog2 = v;
            return this;
        }

        public Builder eventqLog2(int v) {
            eventqLog2 = v;
            return this;
        }

        public Builder priqLog2(int v) {
            priqLog2 = v;
            return this;
        }

        public SmmuV3Config build() {
            return new SmmuV3Config(sidBits, ssidBits, oasBits, stage1, stage2, twoLevelStreamTable, twoLevelCd,
                    asid16, vmid16, rangeInvalidation, msi, sev, ats, pri, httuAccess, httuDirty, granule4k,
                    granule16k, granule64k, cmdqLog2, eventqLog2, priqLog2, iotlbCapacity, configCacheCapacity,
                    walkCacheCapacity, cost, atcTimeoutMs);
        }
    }
}
