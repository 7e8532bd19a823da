package org.iommuemu.core.driver.vtd;

import static org.iommuemu.core.vtd.VtdRegs.*;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.fmt.VtdSs;

/**
 * What a VT-d remapping unit implements, decoded from VER, CAP and ECAP ({@code spec/VTD.md} §1–§2) as Linux's
 * {@code intel-iommu} reads them ({@code cap_*} / {@code ecap_*}).
 *
 * <p>Values are as advertised; which of them the driver uses is decided by {@link #refusal} and the driver's
 * options (scalable mode only with {@link #smts}, and only when a translation stage is usable in it).
 *
 * @param version VER (Max in bits 7:4, Min in 3:0)
 * @param cap raw CAP
 * @param ecap raw ECAP
 * @param domainIdBits log2 of the number of domain ids, from CAP.ND (2^(4+2·ND), at most 16 bits)
 * @param rwbf CAP.RWBF: table writes must be followed by a write-buffer flush (GCMD.WBF)
 * @param cm CAP.CM caching mode: not-present entries may be cached, so a new mapping needs an invalidation
 * @param sagaw CAP.SAGAW bit mask: bit 1 3-level (39-bit), bit 2 4-level (48-bit), bit 3 5-level (57-bit)
 * @param mgawBits CAP.MGAW + 1: the widest guest (second-stage input) address
 * @param sllps CAP.SLLPS: bit 0 2 MB, bit 1 1 GB second-stage leaves ({@link VtdSs#SLLPS_2M}, {@link VtdSs#SLLPS_1G})
 * @param psi CAP.PSI page-selective IOTLB invalidation
 * @param faultRecords CAP.NFR + 1 fault recording registers
 * @param faultRecordOffset CAP.FRO × 16: the first fault recording register's offset
 * @param mamv CAP.MAMV: the largest address mask (log2 of 4 KB pages) of a page-selective invalidation
 * @param dwd CAP.DWD write draining
 * @param drd CAP.DRD read draining
 * @param fl1gp CAP.FL1GP first-stage 1 GB pages
 * @param fl5lp CAP.FL5LP first-stage 5-level paging
 * @param esrtps CAP.ESRTPS: SRTP also invalidates every cache
 * @param coherent ECAP.C: page walks snoop, so table writes need no cache flush
 * @param qi ECAP.QI queued invalidation
 * @param dt ECAP.DT device TLBs (ATS)
 * @param ir ECAP.IR interrupt remapping
 * @param pt ECAP.PT pass-through
 * @param sc ECAP.SC snoop control (SNP in second-stage leaves)
 * @param iotlbRegOffset ECAP.IRO × 16: the IVA register's offset (the IOTLB register is 8 above)
 * @param nest ECAP.NEST nested translation
 * @param pasid ECAP.PASID
 * @param pasidBits ECAP.PSS + 1: PASID width (0 without ECAP.PASID)
 * @param smts ECAP.SMTS scalable-mode translation
 * @param slts ECAP.SLTS second-stage translation in scalable mode
 * @param flts ECAP.FLTS first-stage translation in scalable mode
 * @param smpwc ECAP.SMPWCS scalable-mode page-walk coherency (PASID entry PWSNP)
 */
public record VtdFeatures(
        int version,
        long cap,
        long ecap,
        int domainIdBits,
        boolean rwbf,
        boolean cm,
        int sagaw,
        int mgawBits,
        int sllps,
        boolean psi,
        int faultRecords,
        long faultRecordOffset,
        int mamv,
        boolean dwd,
        boolean drd,
        boolean fl1gp,
        boolean fl5lp,
        boolean esrtps,
        boolean coherent,
        boolean qi,
        boolean dt,
        boolean ir,
        boolean pt,
        boolean sc,
        long iotlbRegOffset,
        boolean nest,
        boolean pasid,
        int pasidBits,
        boolean smts,
        boolean slts,
        boolean flts,
        boolean smpwc) {

    /** Decodes the three identification registers. */
    public static VtdFeatures fromRegisters(int ver, long cap, long ecap) {
        int nd = (int) Bits.extract(cap, CAP_ND, 3);
        boolean pasid = Bits.bit(ecap, ECAP_PASID);
        return new VtdFeatures(
                ver & 0xFF,
                cap,
                ecap,
                Math.min(16, 4 + 2 * nd),
                Bits.bit(cap, CAP_RWBF),
                Bits.bit(cap, CAP_CM),
                (int) Bits.extract(cap, CAP_SAGAW, 5),
                (int) Bits.extract(cap, CAP_MGAW, 6) + 1,
                (int) Bits.extract(cap, CAP_SLLPS, 2),
                Bits.bit(cap, CAP_PSI),
                (int) Bits.extract(cap, CAP_NFR, 8) + 1,
                Bits.extract(cap, CAP_FRO, 10) * 16,
                (int) Bits.extract(cap, CAP_MAMV, 6),
                Bits.bit(cap, CAP_DWD),
                Bits.bit(cap, CAP_DRD),
                Bits.bit(cap, CAP_FL1GP),
                Bits.bit(cap, CAP_FL5LP),
                Bits.bit(cap, CAP_ESRTPS),
                Bits.bit(ecap, ECAP_C),
                Bits.bit(ecap, ECAP_QI),
                Bits.bit(ecap, ECAP_DT),
                Bits.bit(ecap, ECAP_IR),
                Bits.bit(ecap, ECAP_PT),
                Bits.bit(ecap, ECAP_SC),
                Bits.extract(ecap, ECAP_IRO, 10) * 16,
                Bits.bit(ecap, ECAP_NEST),
                pasid,
                pasid ? (int) Bits.extract(ecap, ECAP_PSS, 5) + 1 : 0,
                Bits.bit(ecap, ECAP_SMTS),
                Bits.bit(ecap, ECAP_SLTS),
                Bits.bit(ecap, ECAP_FLTS),
                Bits.bit(ecap, ECAP_SMPWCS));
    }

    /** VER.Max. */
    public int versionMajor() {
        return version >>> 4 & 0xF;
    }

    /** VER.Min. */
    public int versionMinor() {
        return version & 0xF;
    }

    /** The number of domain ids (2^(4+2·ND)). */
    public int domainIds() {
        return 1 << domainIdBits;
    }

    /** Whether CAP.SAGAW reports second-stage tables of {@code levels} (3, 4 or 5) levels. */
    public boolean secondStageLevels(int levels) {
        return levels >= 3 && levels <= 5 && (sagaw & 1 << (levels - 2)) != 0;
    }

    /** Whether SAGAW reports any second-stage table this driver can build (3, 4 or 5 levels). */
    public boolean anySecondStageLevels() {
        return (sagaw & 0b1110) != 0;
    }

    /** The most levels SAGAW reports (5, 4 or 3), or 0 for none usable. */
    public int maxSecondStageLevels() {
        for (int levels = 5; levels >= 3; levels--) {
            if (secondStageLevels(levels)) {
                return levels;
            }
        }
        return 0;
    }

    /** Whether scalable mode is usable: ECAP.SMTS with QI and at least one stage (first, or second with SAGAW). */
    public boolean scalableUsable() {
        return smts && qi && (flts || slts && anySecondStageLevels());
    }

    /**
     * Page sizes (bit n = 2^n bytes) of second-stage leaves: 4 KB, and 2 MB / 1 GB when CAP.SLLPS reports them.
     */
    public long secondStagePageSizes() {
        return 1L << 12 | ((sllps & VtdSs.SLLPS_2M) != 0 ? 1L << 21 : 0) | ((sllps & VtdSs.SLLPS_1G) != 0 ? 1L << 30 : 0);
    }

    /** Page sizes of first-stage leaves: 4 KB and 2 MB always, 1 GB with CAP.FL1GP. */
    public long firstStagePageSizes() {
        return 1L << 12 | 1L << 21 | (fl1gp ? 1L << 30 : 0);
    }

    /**
     * Why the driver cannot use this unit, or null when it can: what Linux's {@code intel-iommu} refuses (CAP and
     * ECAP reading all ones, "BIOS is broken"; no address width the driver can build tables for, "cannot get a valid
     * agaw") and what this driver does not implement (register-based invalidation: Linux falls back to it when
     * ECAP.QI is clear, this driver refuses instead). Every reason is listed.
     *
     * @param wantScalable the driver would use scalable mode when the unit offers it
     */
    public String refusal(boolean wantScalable) {
        List<String> why = new ArrayList<>();
        if (cap == -1L || ecap == -1L) {
            why.add("CAP or ECAP reads all ones (CAP=" + Bits.hex(cap) + ", ECAP=" + Bits.hex(ecap)
                    + "): the unit is not there");
        } else {
            if (!qi) {
                why.add("no queued invalidation (ECAP.QI=0); this driver does not implement register-based"
                        + " invalidation (Linux falls back to CCMD/IOTLB registers)");
            }
            boolean scalable = wantScalable && scalableUsable();
            if (!scalable && !anySecondStageLevels()) {
                why.add("no second-stage address width the driver can use (CAP.SAGAW=0x" + Integer.toHexString(sagaw)
                        + "; needs 3-, 4- or 5-level tables: bits 1..3)"
                        + (smts && wantScalable ? " and scalable mode has no usable stage (FLTS="
                                + flts + ", SLTS=" + slts + ")" : ""));
            }
        }
        return why.isEmpty() ? null : String.join("; ", why);
    }

    /** The implemented features by name, for logs. */
    public List<String> names() {
        List<String> f = new ArrayList<>();
        f.add("VER" + versionMajor() + "." + versionMinor());
        f.add("DID" + domainIdBits);
        for (int levels = 3; levels <= 5; levels++) {
            if (secondStageLevels(levels)) {
                f.add("SAGAW" + (12 + 9 * levels));
            }
        }
        f.add("MGAW" + mgawBits);
        add(f, rwbf, "RWBF");
        add(f, cm, "CM");
        add(f, (sllps & VtdSs.SLLPS_2M) != 0, "SLLPS_2M");
        add(f, (sllps & VtdSs.SLLPS_1G) != 0, "SLLPS_1G");
        add(f, psi, "PSI(MAMV" + mamv + ")");
        f.add("NFR" + faultRecords);
        add(f, dwd, "DWD");
        add(f, drd, "DRD");
        add(f, fl1gp, "FL1GP");
        add(f, fl5lp, "FL5LP");
        add(f, esrtps, "ESRTPS");
        add(f, coherent, "C");
        add(f, qi, "QI");
        add(f, dt, "DT");
        add(f, ir, "IR");
        add(f, pt, "PT");
        add(f, sc, "SC");
        add(f, nest, "NEST");
        add(f, pasid, "PASID" + pasidBits);
        add(f, smts, "SMTS");
        add(f, slts, "SLTS");
        add(f, flts, "FLTS");
        add(f, smpwc, "SMPWC");
        return f;
    }

    private static void add(List<String> list, boolean present, String name) {
        if (present) {
            list.add(name);
        }
    }
}
