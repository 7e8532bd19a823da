package org.iommuemu.device.vtd;

import static org.iommuemu.core.vtd.VtdRegs.*;
import static org.iommuemu.device.regs.FieldMode.READ_ONLY;
import static org.iommuemu.device.regs.FieldMode.READ_WRITE;
import static org.iommuemu.device.regs.FieldMode.WRITE_ONE_TO_CLEAR;
import static org.iommuemu.device.regs.FieldMode.WRITE_ONLY;

import org.iommuemu.device.regs.Field;
import org.iommuemu.device.regs.FieldMode;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.regs.RegisterFile;

/**
 * The VT-d remapping-unit programming interface: register offsets and field positions (Intel VT-d
 * architecture, "Register Descriptions"; {@code spec/VTD.md} §1, §2 and §4) and their declaration for one
 * device.
 *
 * <p>Fields of features the configuration does not advertise are left undeclared, so they read as zero and
 * ignore writes: the interrupt-remapping commands and status (IRE, SIRTP, CFI) and IRTA without ECAP.IR;
 * QIE/QIES, the invalidation-queue registers and FSTS.IQE/ICE/ITE without ECAP.QI; SFL, EAFL, AFLOG and
 * FSTS.AFO/APF without CAP.AFL; the page-request registers without ECAP.PRS; RTADDR.TTM and IQA.DW without
 * ECAP.SMTS; IOTLB.DW/DR without CAP.DWD/DRD. PMEN and the protected-memory range registers are declared
 * but empty (CAP.PLMR = CAP.PHMR = 0). GCMD.WBF is accepted whatever CAP.RWBF says.
 *
 * <p>Each fault recording register is declared as two 64-bit registers, {@code FRCDn_LO} (the faulting
 * address) and {@code FRCDn_HI} (source id, reason, PASID, type and the write-one-to-clear F bit at 63).
 */
public final class VtdRegisters {
    final RegisterFile file;
    final Register gcmd;
    final Register gsts;
    final Register rtaddr;
    final Register irta;
    final Register aflog;
    final Register fsts;
    /** FRCDn_LO and FRCDn_HI for each fault recording register n. */
    final Register[] frcdLo;
    final Register[] frcdHi;
    /** GSTS.TES: DMA remapping enabled. */
    final Field translationEnabled;

    VtdRegisters(String deviceName, VtdConfig c) {
        file = new RegisterFile(deviceName, VtdConfig.MMIO_SIZE);
        RegisterFile f = file;

        f.reg32(VER, "VER", c.ver()).field("MIN", 0, 4, READ_ONLY).field("MAX", 4, 4, READ_ONLY);

        Register cap = f.reg64(CAP, "CAP", c.cap());
        ro(cap, "ND", CAP_ND, 3);
        ro(cap, "AFL", CAP_AFL, 1);
        ro(cap, "RWBF", CAP_RWBF, 1);
        ro(cap, "PLMR", CAP_PLMR, 1);
        ro(cap, "PHMR", CAP_PHMR, 1);
        ro(cap, "CM", CAP_CM, 1);
        ro(cap, "SAGAW", CAP_SAGAW, 5);
        ro(cap, "MGAW", CAP_MGAW, 6);
        ro(cap, "ZLR", CAP_ZLR, 1);
        ro(cap, "FRO", CAP_FRO, 10);
        ro(cap, "SLLPS", CAP_SLLPS, 4);
        ro(cap, "PSI", CAP_PSI, 1);
        ro(cap, "NFR", CAP_NFR, 8);
        ro(cap, "MAMV", CAP_MAMV, 6);
        ro(cap, "DWD", CAP_DWD, 1);
        ro(cap, "DRD", CAP_DRD, 1);
        ro(cap, "FL1GP", CAP_FL1GP, 1);
        ro(cap, "PI", CAP_PI, 1);
        ro(cap, "FL5LP", CAP_FL5LP, 1);
        ro(cap, "ECMDS", CAP_ECMDS, 1);
        ro(cap, "ESIRTPS", CAP_ESIRTPS, 1);
        ro(cap, "ESRTPS", CAP_ESRTPS, 1);

        Register ecap = f.reg64(ECAP, "ECAP", c.ecap());
        ro(ecap, "C", ECAP_C, 1);
        ro(ecap, "QI", ECAP_QI, 1);
        ro(ecap, "DT", ECAP_DT, 1);
        ro(ecap, "IR", ECAP_IR, 1);
        ro(ecap, "EIM", ECAP_EIM, 1);
        ro(ecap, "PT", ECAP_PT, 1);
        ro(ecap, "SC", ECAP_SC, 1);
        ro(ecap, "IRO", ECAP_IRO, 10);
        ro(ecap, "MHMV", ECAP_MHMV, 4);
        ro(ecap, "MTS", ECAP_MTS, 1);
        ro(ecap, "NEST", ECAP_NEST, 1);
        ro(ecap, "PRS", ECAP_PRS, 1);
        ro(ecap, "ERS", ECAP_ERS, 1);
        ro(ecap, "SRS", ECAP_SRS, 1);
        ro(ecap, "NWFS", ECAP_NWFS, 1);
        ro(ecap, "EAFS", ECAP_EAFS, 1);
        ro(ecap, "PSS", ECAP_PSS, 5);
        ro(ecap, "PASID", ECAP_PASID, 1);
        ro(ecap, "DIT", ECAP_DIT, 1);
        ro(ecap, "PDS", ECAP_PDS, 1);
        ro(ecap, "SMTS", ECAP_SMTS, 1);
        ro(ecap, "VCS", ECAP_VCS, 1);
        ro(ecap, "SLADS", ECAP_SLADS, 1);
        ro(ecap, "SLTS", ECAP_SLTS, 1);
        ro(ecap, "FLTS", ECAP_FLTS, 1);
        ro(ecap, "SMPWCS", ECAP_SMPWCS, 1);
        ro(ecap, "RPS", ECAP_RPS, 1);
        ro(ecap, "PMS", ECAP_PMS, 1);

        gcmd = f.reg32(GCMD, "GCMD", 0);
        gsts = f.reg32(GSTS, "GSTS", 0);
        command(c.ir(), "CFI", "CFIS", GCMD_CFI);
        command(c.ir(), "SIRTP", "IRTPS", GCMD_SIRTP);
        command(c.ir(), "IRE", "IRES", GCMD_IRE);
        command(c.qi(), "QIE", "QIES", GCMD_QIE);
        command(true, "WBF", "WBFS", GCMD_WBF);
        command(c.afl(), "EAFL", "AFLS", GCMD_EAFL);
        command(c.afl(), "SFL", "FLS", GCMD_SFL);
        command(true, "SRTP", "RTPS", GCMD_SRTP);
        command(true, "TE", "TES", GCMD_TE);

        rtaddr = f.reg64(RTADDR, "RTADDR", 0);
        if (c.smts()) {
            rtaddr.field("TTM", RTADDR_TTM, 2, READ_WRITE);
        }
        rtaddr.field("RTA", RTADDR_RTA, 52, READ_WRITE);

        f.reg64(CCMD, "CCMD", 0)
                .field("DID", 0, 16, READ_WRITE)
                .field("SID", 16, 16, READ_WRITE)
                .field("FM", 32, 2, READ_WRITE)
                .field("CAIG", 59, 2, READ_ONLY)
                .field("CIRG", 61, 2, READ_WRITE)
                .flag("ICC", 63, READ_WRITE);

        fsts = f.reg32(FSTS, "FSTS", 0)
                .flag("PFO", FSTS_PFO, WRITE_ONE_TO_CLEAR)
                .flag("PPF", FSTS_PPF, READ_ONLY)
                .field("FRI", FSTS_FRI, 8, READ_ONLY);
        if (c.afl()) {
            fsts.flag("AFO", FSTS_AFO, WRITE_ONE_TO_CLEAR).flag("APF", FSTS_APF, WRITE_ONE_TO_CLEAR);
        }
        if (c.qi()) {
            fsts.flag("IQE", FSTS_IQE, WRITE_ONE_TO_CLEAR)
                    .flag("ICE", FSTS_ICE, WRITE_ONE_TO_CLEAR)
                    .flag("ITE", FSTS_ITE, WRITE_ONE_TO_CLEAR);
        }
        event(f, true, "FE", FECTL);

        aflog = f.reg64(AFLOG, "AFLOG", 0);
        if (c.afl()) {
            aflog.field("FLS", 9, 3, READ_WRITE).field("FLA", 12, 52, READ_WRITE);
        }

        // No protected memory regions (CAP.PLMR = CAP.PHMR = 0): these read as zero.
        f.reg32(PMEN, "PMEN", 0);
        f.reg32(PLMBASE, "PLMBASE", 0);
        f.reg32(PLMLIMIT, "PLMLIMIT", 0);
        f.reg64(PHMBASE, "PHMBASE", 0);
        f.reg64(PHMLIMIT, "PHMLIMIT", 0);

        Register iqh = f.reg64(IQH, "IQH", 0);
        Register iqt = f.reg64(IQT, "IQT", 0);
        Register iqa = f.reg64(IQA, "IQA", 0);
        Register ics = f.reg32(ICS, "ICS", 0);
        Register iqercd = f.reg64(IQERCD, "IQERCD", 0);
        if (c.qi()) {
            iqh.field("QH", 4, 15, READ_ONLY);
            iqt.field("QT", 4, 15, READ_WRITE);
            iqa.field("QS", 0, 3, READ_WRITE).field("IQA", 12, 52, READ_WRITE);
            if (c.smts()) {
                iqa.flag("DW", 11, READ_WRITE);
            }
            ics.flag("IWC", 0, WRITE_ONE_TO_CLEAR);
            iqercd.field("IQEI", 0, 4, READ_ONLY)
                    .field("ITESID", 32, 16, READ_ONLY)
                    .field("ICESID", 48, 16, READ_ONLY);
        }
        event(f, c.qi(), "IE", IECTL);

        irta = f.reg64(IRTA, "IRTA", 0);
        if (c.ir()) {
            irta.field("S", 0, 4, READ_WRITE).field("IRTA", 12, 52, READ_WRITE);
            if (c.eim()) {
                irta.flag("EIME", 11, READ_WRITE);
            }
        }

        Register pqh = f.reg64(PQH, "PQH", 0);
        Register pqt = f.reg64(PQT, "PQT", 0);
        Register pqa = f.reg64(PQA, "PQA", 0);
        Register prs = f.reg32(PRS, "PRS", 0);
        if (c.prs()) {
            pqh.field("PQH", 5, 14, READ_WRITE);
            pqt.field("PQT", 5, 14, READ_ONLY);
            pqa.field("PQS", 0, 3, READ_WRITE).field("PQA", 12, 52, READ_WRITE);
            prs.flag("PPR", 0, WRITE_ONE_TO_CLEAR).flag("PRO", 1, WRITE_ONE_TO_CLEAR);
        }
        event(f, c.prs(), "PE", PECTL);

        long iva = c.iotlbRegisterOffset();
        f.reg64(iva, "IVA", 0)
                .field("AM", 0, 6, READ_WRITE)
                .flag("IH", 6, READ_WRITE)
                .field("ADDR", 12, 52, READ_WRITE);
        Register iotlb = f.reg64(iva + 8, "IOTLB", 0).field("DID", 32, 16, READ_WRITE);
        if (c.dwd()) {
            iotlb.flag("DW", 48, READ_WRITE);
        }
        if (c.drd()) {
            iotlb.flag("DR", 49, READ_WRITE);
        }
        iotlb.field("IAIG", 57, 2, READ_ONLY).field("IIRG", 60, 2, READ_WRITE).flag("IVT", 63, READ_WRITE);

        int records = c.faultRecordCount();
        frcdLo = new Register[records];
        frcdHi = new Register[records];
        for (int n = 0; n < records; n++) {
            long base = c.faultRecordOffset() + 16L * n;
            frcdLo[n] = f.reg64(base, "FRCD" + n + "_LO", 0).field("FI", FRCD_LO_FI, 52, READ_ONLY);
            frcdHi[n] = f.reg64(base + 8, "FRCD" + n + "_HI", 0)
                    .field("SID", FRCD_HI_SID, 16, READ_ONLY)
                    .flag("T2", 28, READ_ONLY)
                    .flag("PRIV", 29, READ_ONLY)
                    .flag("EXE", 30, READ_ONLY)
                    .flag("PP", 31, READ_ONLY)
                    .field("FR", FRCD_HI_FR, 8, READ_ONLY)
                    .field("PV", FRCD_HI_PV, 20, READ_ONLY)
                    .field("AT", 60, 2, READ_ONLY)
                    .flag("T", FRCD_HI_T, READ_ONLY)
                    .flag("F", FRCD_HI_F, WRITE_ONE_TO_CLEAR);
        }

        translationEnabled = gsts.fieldHandle("TES");
    }

    /** Declares a GCMD command bit (write-only) and its GSTS status bit (read-only), if supported. */
    private void command(boolean supported, String command, String status, int bit) {
        if (supported) {
            gcmd.flag(command, bit, WRITE_ONLY);
            gsts.flag(status, bit, READ_ONLY);
        }
    }

    private static void ro(Register r, String name, int lo, int width) {
        r.field(name, lo, width, FieldMode.READ_ONLY);
    }

    /** An event's control (IM reset 1, IP read-only), data and address registers at ctl, +4, +8, +0xC. */
    private static void event(RegisterFile f, boolean supported, String prefix, long ctl) {
        Register control = f.reg32(ctl, prefix + "CTL", supported ? ECTL_RESET : 0);
        Register data = f.reg32(ctl + 4, prefix + "DATA", 0);
        Register addr = f.reg32(ctl + 8, prefix + "ADDR", 0);
        Register upper = f.reg32(ctl + 12, prefix + "UADDR", 0);
        if (supported) {
            control.flag("IP", ECTL_IP, READ_ONLY).flag("IM", ECTL_IM, READ_WRITE);
            data.field("IMD", 0, 16, READ_WRITE).field("EIMD", 16, 16, READ_WRITE);
            addr.field("MA", 2, 30, READ_WRITE);
            upper.field("MUA", 0, 32, READ_WRITE);
        }
    }
}
