package org.iommuemu.device.vtd;

import org.iommuemu.core.vtd.VtdRegs;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.device.machine.InterruptSink;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.regs.Field;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.regs.RegisterFile;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An Intel VT-d DMA-remapping hardware unit as seen through its register interface.
 *
 * <p>Modelled so far (the register shell): VER, CAP and ECAP computed from {@link VtdConfig}; the global
 * command protocol ("Global Command Register" / "Global Status Register"), in which every command completes
 * before the write returns: TE, QIE, IRE, CFI and EAFL are mirrored in TES, QIES, IRES, CFIS and AFLS; SRTP
 * latches RTADDR as the active root-table pointer and sets RTPS; SIRTP latches IRTA and sets IRTPS; SFL
 * latches AFLOG and sets FLS; WBF completes at once (WBFS reads 0). The fault status bits are
 * write-one-to-clear and FSTS.PPF follows the F bits of the fault recording registers. With TE=0 DMA is
 * untranslated; with TE=1 {@link #translate} reports {@link Translation.Outcome#UNIMPLEMENTED}.
 *
 * <p>Thread-safe: register writes and their hooks serialise on the register file's lock; translate reads
 * volatile register state and allocates nothing.
 */
public final class VtdDevice implements IommuDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VtdDevice.class);

    /** Requester ids are bus:device.function, 16 bits. */
    public static final int REQUESTER_ID_BITS = 16;

    static final String UNIMPLEMENTED_MESSAGE = "VT-d translation (TE=1) is not modelled yet";

    private final String name;
    private final VtdConfig config;
    /** Read by the root/context/PASID walks and the invalidation queue (not modelled yet). */
    private final PhysicalMemory memory;
    /** Signalled by fault, invalidation-completion and page-request events (not modelled yet). */
    private final InterruptSink interrupts;
    private final VtdRegisters regs;
    private final List<String> features;

    /** Persistent enables: GCMD bit → GSTS bit, for the commands this unit supports. */
    private final Field[] enableCommands;
    private final Field[] enableStatus;
    private final Field srtp;
    private final Field rtps;
    private final Field sirtp;
    private final Field irtps;
    private final Field sfl;
    private final Field fls;
    private final Field wbf;

    private volatile long rootTableAddress;
    private volatile int translationTableMode;
    private volatile long interruptRemapTable;
    private volatile long faultLog;

    public VtdDevice(String name, VtdConfig config, PhysicalMemory memory, InterruptSink interrupts) {
        this.name = Objects.requireNonNull(name, "name");
        this.config = Objects.requireNonNull(config, "config");
        this.memory = Objects.requireNonNull(memory, "memory");
        this.interrupts = Objects.requireNonNull(interrupts, "interrupts");
        this.regs = new VtdRegisters(name, config);
        this.features = features(config);

        List<Field> cmds = new ArrayList<>();
        List<Field> sts = new ArrayList<>();
        String[][] enables = {{"TE", "TES"}, {"QIE", "QIES"}, {"IRE", "IRES"}, {"CFI", "CFIS"}, {"EAFL", "AFLS"}};
        for (String[] pair : enables) {
            if (regs.gcmd.hasField(pair[0])) {
                cmds.add(regs.gcmd.fieldHandle(pair[0]));
                sts.add(regs.gsts.fieldHandle(pair[1]));
            }
        }
        enableCommands = cmds.toArray(new Field[0]);
        enableStatus = sts.toArray(new Field[0]);
        srtp = regs.gcmd.fieldHandle("SRTP");
        rtps = regs.gsts.fieldHandle("RTPS");
        sirtp = optional(regs.gcmd, "SIRTP");
        irtps = optional(regs.gsts, "IRTPS");
        sfl = optional(regs.gcmd, "SFL");
        fls = optional(regs.gsts, "FLS");
        wbf = regs.gcmd.fieldHandle("WBF");

        regs.gcmd.afterWrite((oldValue, newValue, written, mask) -> globalCommand(newValue));
        for (int n = 0; n < regs.frcdHi.length; n++) {
            regs.frcdHi[n].afterWrite((oldValue, newValue, written, mask) -> updatePrimaryPendingFault());
        }
    }

    private static Field optional(Register reg, String field) {
        return reg.hasField(field) ? reg.fieldHandle(field) : null;
    }

    /**
     * Carries out a GCMD write. Software is expected to write the current persistent state plus one changed
     * bit; if several commands arrive together each is carried out, as hardware does bit by bit.
     */
    private void globalCommand(long command) {
        long status = regs.gsts.value();
        int commands = 0;
        for (int i = 0; i < enableCommands.length; i++) {
            boolean want = enableCommands[i].isSet(command);
            if (want != enableStatus[i].isSet(status)) {
                enableStatus[i].set(want);
                commands++;
            }
        }
        if (srtp.isSet(command)) {
            long rtaddr = regs.rtaddr.value();
            rootTableAddress = Bits.alignDown(rtaddr, VtdRegs.RTADDR_RTA);
            translationTableMode = (int) Bits.extract(rtaddr, VtdRegs.RTADDR_TTM, 2);
            rtps.set(true);
            commands++;
        }
        if (sirtp != null && sirtp.isSet(command)) {
            interruptRemapTable = regs.irta.value();
            irtps.set(true);
            commands++;
        }
        if (sfl != null && sfl.isSet(command)) {
            faultLog = regs.aflog.value();
            fls.set(true);
            commands++;
        }
        if (wbf.isSet(command)) {
            commands++; // nothing is buffered: the flush is complete and WBFS stays clear
        }
        if (commands > 1 && LOG.isDebugEnabled()) {
            LOG.debug("{}: GCMD write {} carried {} commands at once; each was carried out", name,
                    Bits.hex(command), commands);
        }
    }

    /** FSTS.PPF is set while any fault recording register holds a fault (F=1). */
    private void updatePrimaryPendingFault() {
        boolean pending = false;
        for (Field f : regs.frcdFault) {
            pending |= f.isSet();
        }
        regs.fstsPpf.set(pending);
    }

    private static List<String> features(VtdConfig c) {
        List<String> f = new ArrayList<>();
        f.add("VER" + c.versionMajor() + "." + c.versionMinor());
        f.add("ND" + c.nd());
        for (int level = 1; level <= 3; level++) {
            if ((c.sagaw() & (1 << level)) != 0) {
                f.add("SAGAW" + (30 + 9 * level));
            }
        }
        f.add("MGAW" + c.guestAddressWidth());
        add(f, c.afl(), "AFL");
        add(f, c.cm(), "CM");
        add(f, (c.sllps() & 1) != 0, "SLLPS_2M");
        add(f, (c.sllps() & 2) != 0, "SLLPS_1G");
        add(f, c.psi(), "PSI");
        add(f, c.dwd(), "DWD");
        add(f, c.drd(), "DRD");
        add(f, c.fl1gp(), "FL1GP");
        add(f, c.pi(), "PI");
        add(f, c.fl5lp(), "FL5LP");
        add(f, c.coherent(), "C");
        add(f, c.qi(), "QI");
        add(f, c.dt(), "DT");
        add(f, c.ir(), "IR");
        add(f, c.eim(), "EIM");
        add(f, c.pt(), "PT");
        add(f, c.sc(), "SC");
        add(f, c.nest(), "NEST");
        add(f, c.prs(), "PRS");
        add(f, c.pasid(), "PASID" + c.pasidBits());
        add(f, c.smts(), "SMTS");
        add(f, c.slads(), "SLADS");
        add(f, c.slts(), "SLTS");
        add(f, c.flts(), "FLTS");
        add(f, c.rps(), "RPS");
        return List.copyOf(f);
    }

    private static void add(List<String> list, boolean present, String feature) {
        if (present) {
            list.add(feature);
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public IommuType type() {
        return IommuType.VTD;
    }

    public VtdConfig config() {
        return config;
    }

    @Override
    public long mmioSize() {
        return VtdConfig.MMIO_SIZE;
    }

    @Override
    public long mmioRead(long offset, int width) {
        return regs.file.read(offset, width);
    }

    @Override
    public void mmioWrite(long offset, int width, long value) {
        regs.file.write(offset, width, value);
    }

    @Override
    public int streamIdBits() {
        return REQUESTER_ID_BITS;
    }

    @Override
    public int substreamIdBits() {
        return config.pasidBits();
    }

    @Override
    public List<String> features() {
        return features;
    }

    @Override
    public boolean translationModelled() {
        return false;
    }

    /** With DMA remapping disabled (GSTS.TES=0) requests pass untranslated. */
    @Override
    public Translation translate(int streamId, int substreamId, long iova, int access, Translation out) {
        if (!regs.translationEnabled.isSet()) {
            return out.ok(iova, -1L);
        }
        return out.unimplemented(UNIMPLEMENTED_MESSAGE);
    }

    @Override
    public void reset() {
        synchronized (regs.file.lock()) {
            regs.file.reset();
            rootTableAddress = 0;
            translationTableMode = 0;
            interruptRemapTable = 0;
            faultLog = 0;
        }
    }

    /** The root-table address latched by the last SRTP command (0 before the first). */
    public long rootTableAddress() {
        return rootTableAddress;
    }

    /** RTADDR.TTM latched by the last SRTP: {@link VtdRegisters#TTM_LEGACY} or {@link VtdRegisters#TTM_SCALABLE}. */
    public int translationTableMode() {
        return translationTableMode;
    }

    /** The IRTA value latched by the last SIRTP command. */
    public long interruptRemapTable() {
        return interruptRemapTable;
    }

    /** The AFLOG value latched by the last SFL command. */
    public long faultLog() {
        return faultLog;
    }

    /** The register file, for tests and the device's own subsystems. */
    RegisterFile registerFile() {
        return regs.file;
    }

    @Override
    public String toString() {
        return "VT-d " + name;
    }
}
