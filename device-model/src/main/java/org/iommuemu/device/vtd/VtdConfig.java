package org.iommuemu.device.vtd;

import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.device.xlate.CostModel;
import org.iommuemu.core.bits.Bits;

/**
 * What an emulated VT-d remapping unit implements, and the VER, CAP and ECAP values that advertise it
 * (Intel VT-d architecture, "Version Register", "Capability Register", "Extended Capability Register";
 * field positions in {@code spec/VTD.md} §1–§2). Components carry the spec's field encodings, named after
 * the fields: {@code nd=6} means 2^16 domain ids, {@code mgaw=47} a 48-bit guest address width,
 * {@code nfr=7} eight fault recording registers, {@code fro}/{@code iro} register offsets in 16-byte units.
 *
 * <p>Fixed by the model: no required write-buffer flushing (CAP.RWBF=0; GCMD.WBF is still accepted and
 * completes at once), no protected memory regions (PLMR=PHMR=0), no ZLR, no enhanced commands (ECMDS,
 * ESRTPS, ESIRTPS), no memory-type support, no execute or supervisor requests, no virtual command
 * interface, no page-request drain.
 *
 * @param versionMajor VER.Max, 1..15
 * @param versionMinor VER.Min, 0..15
 * @param nd CAP.ND: 2^(4+2·nd) domain ids, 0..6
 * @param afl CAP.AFL advanced fault logging
 * @param cm CAP.CM caching mode
 * @param sagaw CAP.SAGAW bit mask: bit 1 39-bit/3-level, bit 2 48-bit/4-level, bit 3 57-bit/5-level
 * @param mgaw CAP.MGAW: maximum guest address width − 1
 * @param fro CAP.FRO: offset of the first fault recording register / 16
 * @param sllps CAP.SLLPS: bit 0 2 MB, bit 1 1 GB second-stage pages
 * @param psi CAP.PSI page-selective invalidation
 * @param nfr CAP.NFR: number of fault recording registers − 1, 0..255
 * @param mamv CAP.MAMV maximum address-mask value, 0..63
 * @param dwd CAP.DWD write draining
 * @param drd CAP.DRD read draining
 * @param fl1gp CAP.FL1GP first-stage 1 GB pages
 * @param pi CAP.PI posted interrupts
 * @param fl5lp CAP.FL5LP first-stage 5-level paging
 * @param coherent ECAP.C page-walk coherency
 * @param qi ECAP.QI queued invalidation
 * @param dt ECAP.DT device-TLB (ATS)
 * @param ir ECAP.IR interrupt remapping
 * @param eim ECAP.EIM extended interrupt mode (x2APIC); needs IR
 * @param pt ECAP.PT pass-through
 * @param sc ECAP.SC snoop control
 * @param iro ECAP.IRO: offset of the IVA/IOTLB register pair / 16
 * @param mhmv ECAP.MHMV maximum handle-mask value, 0..15
 * @param nest ECAP.NEST nested translation; needs first- and second-stage translation
 * @param prs ECAP.PRS page requests
 * @param pasid ECAP.PASID
 * @param pss ECAP.PSS: PASID width − 1, 0..19
 * @param smts ECAP.SMTS scalable-mode translation
 * @param slads ECAP.SLADS second-stage accessed/dirty; needs second-stage translation
 * @param slts ECAP.SLTS second-stage translation (scalable mode)
 * @param flts ECAP.FLTS first-stage translation (scalable mode)
 * @param rps ECAP.RPS RID_PASID support
 * @param iotlbCapacity IOTLB entries
 * @param walkCacheCapacity paging-structure-cache entries (non-leaf entries of both stages)
 * @param contextCacheCapacity context-cache entries
 * @param pasidCacheCapacity PASID-cache entries
 * @param cost simulated nanoseconds per MMIO access, table read, descriptor, invalidation wait...
 * @param atcTimeoutMs wall-clock milliseconds a device-TLB invalidation may stay without the device's completion
 *     before the invalidation wait after it is aborted with FSTS.ITE (docs/ATS.md), 1..600000
 */
public record VtdConfig(
        int versionMajor,
        int versionMinor,
        int nd,
        boolean afl,
        boolean cm,
        int sagaw,
        int mgaw,
        int fro,
        int sllps,
        boolean psi,
        int nfr,
        int mamv,
        boolean dwd,
        boolean drd,
        boolean fl1gp,
        boolean pi,
        boolean fl5lp,
        boolean coherent,
        boolean qi,
        boolean dt,
        boolean ir,
        boolean eim,
        boolean pt,
        boolean sc,
        int iro,
        int mhmv,
        boolean nest,
        boolean prs,
        boolean pasid,
        int pss,
        boolean smts,
        boolean slads,
        boolean slts,
        boolean flts,
        boolean rps,
        int iotlbCapacity,
        int walkCacheCapacity,
        int contextCacheCapacity,
        int pasidCacheCapacity,
        CostModel cost,
        int atcTimeoutMs) {

    /** Default wall-clock time a device-TLB invalidation may take, in milliseconds. */
    public static final int DEFAULT_ATC_TIMEOUT_MS = 1000;
    /** The longest device-TLB invalidation timeout, in milliseconds (ten minutes). */
    public static final int MAX_ATC_TIMEOUT_MS = 600_000;

    /** The register window: one 4 KB page. */
    public static final long MMIO_SIZE = 0x1000;
    /** The first offset after the architectural fixed registers this model declares (PEUADDR ends at 0xF0). */
    public static final long FIRST_FREE_OFFSET = 0xF0;

    /** @throws IllegalArgumentException for values out of range or combinations that cannot work */
    public VtdConfig {
        check(versionMajor >= 1 && versionMajor <= 15, "versionMajor must be 1..15");
        check(versionMinor >= 0 && versionMinor <= 15, "versionMinor must be 0..15");
        check(nd >= 0 && nd <= 6, "nd must be 0..6 (7 is reserved), was " + nd);
        check(sagaw != 0 && (sagaw & ~0b1110) == 0, "sagaw may set bits 1..3 only, and one of them, was " + sagaw);
        check(mgaw >= 0 && mgaw <= 63, "mgaw must fit 6 bits, was " + mgaw);
        check(fro >= 0 && fro <= 0x3FF, "fro must fit 10 bits, was " + fro);
        check(iro >= 0 && iro <= 0x3FF, "iro must fit 10 bits, was " + iro);
        check(sllps >= 0 && sllps <= 0xF, "sllps must fit 4 bits, was " + sllps);
        check(nfr >= 0 && nfr <= 255, "nfr must be 0..255, was " + nfr);
        check(mamv >= 0 && mamv <= 63, "mamv must be 0..63, was " + mamv);
        check(mhmv >= 0 && mhmv <= 15, "mhmv must be 0..15, was " + mhmv);
        check(pss >= 0 && pss <= 19, "pss must be 0..19, was " + pss);
        check(!eim || ir, "eim needs ir");
        check(!smts || qi, "scalable mode (smts) needs queued invalidation (qi)");
        capacity(iotlbCapacity, "iotlbCapacity");
        capacity(walkCacheCapacity, "walkCacheCapacity");
        capacity(contextCacheCapacity, "contextCacheCapacity");
        capacity(pasidCacheCapacity, "pasidCacheCapacity");
        check(cost != null, "cost model missing");
        check(atcTimeoutMs >= 1 && atcTimeoutMs <= MAX_ATC_TIMEOUT_MS,
                "atcTimeoutMs must be 1.." + MAX_ATC_TIMEOUT_MS + ", was " + atcTimeoutMs);
        check(!nest || (flts && slts), "nest needs flts and slts");
        check(!slads || slts, "slads needs slts");
        long frcdStart = 16L * fro;
        long frcdEnd = frcdStart + 16L * (nfr + 1);
        long ivaStart = 16L * iro;
        long ivaEnd = ivaStart + 16;
        check(frcdStart >= FIRST_FREE_OFFSET && frcdEnd <= MMIO_SIZE,
                "fault recording registers [" + Bits.hex(frcdStart) + ", " + Bits.hex(frcdEnd)
                        + ") must lie in [0xf0, 0x1000)");
        check(ivaStart >= FIRST_FREE_OFFSET && ivaEnd <= MMIO_SIZE,
                "IVA/IOTLB registers at " + Bits.hex(ivaStart) + " must lie in [0xf0, 0x1000)");
        check(ivaEnd <= frcdStart || frcdEnd <= ivaStart, "IVA/IOTLB registers overlap the fault recording registers");
    }

    /** Default cache sizes: as the SMMUv3 model's IOTLB and walk cache; 256 context and PASID entries. */
    public static final int DEFAULT_IOTLB_CAPACITY = 1024;
    public static final int DEFAULT_WALK_CACHE_CAPACITY = 256;
    public static final int DEFAULT_CONTEXT_CACHE_CAPACITY = 256;
    public static final int DEFAULT_PASID_CACHE_CAPACITY = 256;

    private static void capacity(int value, String name) {
        check(value >= 1 && value <= 1 << 20, name + " must be 1..2^20, was " + value);
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("VT-d config: " + message);
        }
    }

    /**
     * A VT-d 3.0 unit with scalable mode, first- and second-stage and nested translation, 20-bit PASIDs,
     * queued invalidation, pass-through and snoop control; 3- and 4-level second-stage tables, 48-bit MGAW,
     * 2^16 domain ids, 2 MB and 1 GB pages, eight fault recording registers at 0x400 and the IVA/IOTLB pair at
     * 0x500 (where many Intel parts put them); no interrupt remapping, device TLB or page requests.
     */
    public static VtdConfig defaults() {
        return new VtdConfig(3, 0, 6, false, false, 0b0110, 47, 0x40, 0b0011, true, 7, 18, true, true, true,
                false, false, false, true, false, false, false, true, true, 0x50, 0xF, true, false, true, 19, true,
                true, true, true, true, DEFAULT_IOTLB_CAPACITY, DEFAULT_WALK_CACHE_CAPACITY,
                DEFAULT_CONTEXT_CACHE_CAPACITY, DEFAULT_PASID_CACHE_CAPACITY, CostModel.DEFAULTS, DEFAULT_ATC_TIMEOUT_MS);
    }

    /** A builder starting from {@link #defaults()}. */
    public static Builder builder() {
        return defaults().toBuilder();
    }

    public Builder toBuilder() {
        return new Builder(this);
    }

    /** Number of domain ids, 2^(4+2·ND). */
    public int domainCount() {
        return 1 << (4 + 2 * nd);
    }

    /** Maximum guest address width in bits (MGAW + 1). */
    public int guestAddressWidth() {
        return mgaw + 1;
    }

    /** Number of fault recording registers (NFR + 1). */
    public int faultRecordCount() {
        return nfr + 1;
    }

    /** Byte offset of fault recording register 0. */
    public long faultRecordOffset() {
        return 16L * fro;
    }

    /** Byte offset of the IVA register; IOTLB follows at +8. */
    public long iotlbRegisterOffset() {
        return 16L * iro;
    }

    /** Width of PASIDs (PSS + 1), or 0 without PASID support. */
    public int pasidBits() {
        return pasid ? pss + 1 : 0;
    }

    /** VER_REG. */
    public long ver() {
        return (versionMajor << 4) | versionMinor;
    }

    /** CAP_REG. */
    public long cap() {
        long v = 0;
        v = Bits.deposit(v, VtdRegs.CAP_ND, 3, nd);
        v = Bits.deposit(v, VtdRegs.CAP_AFL, 1, b(afl));
        v = Bits.deposit(v, VtdRegs.CAP_CM, 1, b(cm));
        v = Bits.deposit(v, VtdRegs.CAP_SAGAW, 5, sagaw);
        v = Bits.deposit(v, VtdRegs.CAP_MGAW, 6, mgaw);
        v = Bits.deposit(v, VtdRegs.CAP_FRO, 10, fro);
        v = Bits.deposit(v, VtdRegs.CAP_SLLPS, 4, sllps);
        v = Bits.deposit(v, VtdRegs.CAP_PSI, 1, b(psi));
        v = Bits.deposit(v, VtdRegs.CAP_NFR, 8, nfr);
        v = Bits.deposit(v, VtdRegs.CAP_MAMV, 6, mamv);
        v = Bits.deposit(v, VtdRegs.CAP_DWD, 1, b(dwd));
        v = Bits.deposit(v, VtdRegs.CAP_DRD, 1, b(drd));
        v = Bits.deposit(v, VtdRegs.CAP_FL1GP, 1, b(fl1gp));
        v = Bits.deposit(v, VtdRegs.CAP_PI, 1, b(pi));
        v = Bits.deposit(v, VtdRegs.CAP_FL5LP, 1, b(fl5lp));
        return v;
    }

    /** ECAP_REG. */
    public long ecap() {
        long v = 0;
        v = Bits.deposit(v, VtdRegs.ECAP_C, 1, b(coherent));
        v = Bits.deposit(v, VtdRegs.ECAP_QI, 1, b(qi));
        v = Bits.deposit(v, VtdRegs.ECAP_DT, 1, b(dt));
        v = Bits.deposit(v, VtdRegs.ECAP_IR, 1, b(ir));
        v = Bits.deposit(v, VtdRegs.ECAP_EIM, 1, b(eim));
        v = Bits.deposit(v, VtdRegs.ECAP_PT, 1, b(pt));
        v = Bits.deposit(v, VtdRegs.ECAP_SC, 1, b(sc));
        v = Bits.deposit(v, VtdRegs.ECAP_IRO, 10, iro);
        v = Bits.deposit(v, VtdRegs.ECAP_MHMV, 4, mhmv);
        v = Bits.deposit(v, VtdRegs.ECAP_NEST, 1, b(nest));
        v = Bits.deposit(v, VtdRegs.ECAP_PRS, 1, b(prs));
        v = Bits.deposit(v, VtdRegs.ECAP_PSS, 5, pss);
        v = Bits.deposit(v, VtdRegs.ECAP_PASID, 1, b(pasid));
        v = Bits.deposit(v, VtdRegs.ECAP_SMTS, 1, b(smts));
        v = Bits.deposit(v, VtdRegs.ECAP_SLADS, 1, b(slads));
        v = Bits.deposit(v, VtdRegs.ECAP_SLTS, 1, b(slts));
        v = Bits.deposit(v, VtdRegs.ECAP_FLTS, 1, b(flts));
        v = Bits.deposit(v, VtdRegs.ECAP_RPS, 1, b(rps));
        return v;
    }

    private static long b(boolean flag) {
        return flag ? 1 : 0;
    }

    /** Builds a {@link VtdConfig}; validation happens in {@link #build()}. */
    public static final class Builder {
        private int versionMajor;
        private int versionMinor;
        private int nd;
        private boolean afl;
        private boolean cm;
        private int sagaw;
        private int mgaw;
        private int fro;
        private int sllps;
        private boolean psi;
        private int nfr;
        private int mamv;
        private boolean dwd;
        private boolean drd;
        private boolean fl1gp;
        private boolean pi;
        private boolean fl5lp;
        private boolean coherent;
        private boolean qi;
        private boolean dt;
        private boolean ir;
        private boolean eim;
        private boolean pt;
        private boolean sc;
        private int iro;
        private int mhmv;
        private boolean nest;
        private boolean prs;
        private boolean pasid;
        private int pss;
        private boolean smts;
        private boolean slads;
        private boolean slts;
        private boolean flts;
        private boolean rps;
        private int iotlbCapacity;
        private int walkCacheCapacity;
        private int contextCacheCapacity;
        private int pasidCacheCapacity;
        private CostModel cost;
        private int atcTimeoutMs;

        private Builder(VtdConfig c) {
            versionMajor = c.versionMajor;
            versionMinor = c.versionMinor;
            nd = c.nd;
            afl = c.afl;
            cm = c.cm;
            sagaw = c.sagaw;
            mgaw = c.mgaw;
            fro = c.fro;
            sllps = c.sllps;
            psi = c.psi;
            nfr = c.nfr;
            mamv = c.mamv;
            dwd = c.dwd;
            drd = c.drd;
            fl1gp = c.fl1gp;
            pi = c.pi;
            fl5lp = c.fl5lp;
            coherent = c.coherent;
            qi = c.qi;
            dt = c.dt;
            ir = c.ir;
            eim = c.eim;
            pt = c.pt;
            sc = c.sc;
            iro = c.iro;
            mhmv = c.mhmv;
            nest = c.nest;
            prs = c.prs;
            pasid = c.pasid;
            pss = c.pss;
            smts = c.smts;
            slads = c.slads;
            slts = c.slts;
            flts = c.flts;
            rps = c.rps;
            iotlbCapacity = c.iotlbCapacity;
            walkCacheCapacity = c.walkCacheCapacity;
            contextCacheCapacity = c.contextCacheCapacity;
            pasidCacheCapacity = c.pasidCacheCapacity;
            cost = c.cost;
            atcTimeoutMs = c.atcTimeoutMs;
        }

        public Builder version(int major, int minor) {
            versionMajor = major;
            versionMinor = minor;
            return this;
        }

        public Builder nd(int v) {
            nd = v;
            return this;
        }

        public Builder afl(boolean v) {
            afl = v;
            return this;
        }

        public Builder cm(boolean v) {
            cm = v;
            return this;
        }

        public Builder sagaw(int v) {
            sagaw = v;
            return this;
        }

        public Builder mgaw(int v) {
            mgaw = v;
            return this;
        }

        public Builder fro(int v) {
            fro = v;
            return this;
        }

        public Builder sllps(int v) {
            sllps = v;
            return this;
        }

        public Builder psi(boolean v) {
            psi = v;
            return this;
        }

        public Builder nfr(int v) {
            nfr = v;
            return this;
        }

        public Builder mamv(int v) {
            mamv = v;
            return this;
        }

        public Builder dwd(boolean v) {
            dwd = v;
            return this;
        }

        public Builder drd(boolean v) {
            drd = v;
            return this;
        }

        public Builder fl1gp(boolean v) {
            fl1gp = v;
            return this;
        }

        public Builder pi(boolean v) {
            pi = v;
            return this;
        }

        public Builder fl5lp(boolean v) {
            fl5lp = v;
            return this;
        }

        public Builder coherent(boolean v) {
            coherent = v;
            return this;
        }

        public Builder qi(boolean v) {
            qi = v;
            return this;
        }

        public Builder dt(boolean v) {
            dt = v;
            return this;
        }

        public Builder ir(boolean v) {
            ir = v;
            return this;
        }

        public Builder eim(boolean v) {
            eim = v;
            return this;
        }

        public Builder pt(boolean v) {
            pt = v;
            return this;
        }

        public Builder sc(boolean v) {
            sc = v;
            return this;
        }

        public Builder iro(int v) {
            iro = v;
            return this;
        }

        public Builder mhmv(int v) {
            mhmv = v;
            return this;
        }

        public Builder nest(boolean v) {
            nest = v;
            return this;
        }

        public Builder prs(boolean v) {
            prs = v;
            return this;
        }

        public Builder pasid(boolean v) {
            pasid = v;
            return this;
        }

        public Builder pss(int v) {
            pss = v;
            return this;
        }

        public Builder smts(boolean v) {
            smts = v;
            return this;
        }

        public Builder slads(boolean v) {
            slads = v;
            return this;
        }

        public Builder slts(boolean v) {
            slts = v;
            return this;
        }

        public Builder flts(boolean v) {
            flts = v;
            return this;
        }

        public Builder rps(boolean v) {
            rps = v;
            return this;
        }


        public Builder iotlbCapacity(int v) {
            iotlbCapacity = v;
            return this;
        }

        public Builder walkCacheCapacity(int v) {
            walkCacheCapacity = v;
            return this;
        }

        public Builder contextCacheCapacity(int v) {
            contextCacheCapacity = v;
            return this;
        }

        public Builder pasidCacheCapacity(int v) {
            pasidCacheCapacity = v;
            return this;
        }

        public Builder cost(CostModel v) {
            cost = v;
            return this;
        }
        /** Wall-clock milliseconds a device-TLB invalidation may take before its invalidation wait fails (ITE). */
        public Builder atcTimeoutMs(int v) {
            atcTimeoutMs = v;
            return this;
        }

        public VtdConfig build() {
            return new VtdConfig(versionMajor, versionMinor, nd, afl, cm, sagaw, mgaw, fro, sllps, psi, nfr, mamv,
                    dwd, drd, fl1gp, pi, fl5lp, coherent, qi, dt, ir, eim, pt, sc, iro, mhmv, nest, prs, pasid, pss,
                    smts, slads, slts, flts, rps, iotlbCapacity, walkCacheCapacity,
                    contextCacheCapacity, pasidCacheCapacity, cost, atcTimeoutMs);
        }
    }
}
