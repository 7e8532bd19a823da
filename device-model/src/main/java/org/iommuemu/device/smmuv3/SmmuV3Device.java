package org.iommuemu.device.smmuv3;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.InterruptSink;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.regs.RegisterFile;

/**
 * An Arm SMMUv3 (architecture version 3.2) as seen through its non-secure register interface.
 *
 * <p>Modelled so far (the register shell): the ID registers computed from {@link SmmuV3Config}; the
 * CR0/CR0ACK and IRQ_CTRL/IRQ_CTRLACK update protocols, which complete at once; the GBPA update
 * handshake; GERROR read-only and GERRORN read-write; and the incoming-transaction behaviour while the
 * SMMU is disabled (CR0.SMMUEN=0): bypass, or abort when GBPA.ABORT=1 ("Global bypass attribute" in the
 * architecture). Queues, stream tables, context descriptors and the translation walk are register storage
 * only: with SMMUEN=1 {@link #translate} reports {@link Translation.Outcome#UNIMPLEMENTED}.
 *
 * <p>Thread-safe: register writes and their hooks serialise on the register file's lock; translate reads
 * volatile register state and allocates nothing.
 */
public final class SmmuV3Device implements IommuDevice {
    static final String GBPA_ABORT_MESSAGE = "SMMUEN=0 and GBPA.ABORT=1: incoming transactions abort";
    static final String UNIMPLEMENTED_MESSAGE = "SMMUv3 translation (SMMUEN=1) is not modelled yet";

    private final String name;
    private final SmmuV3Config config;
    /** Read by the queues and table walks (not modelled yet). */
    private final PhysicalMemory memory;
    /** Signalled by GERROR, the event queue and CMD_SYNC (not modelled yet). */
    private final InterruptSink interrupts;
    private final SmmuV3Registers regs;
    private final List<String> features;

    public SmmuV3Device(String name, SmmuV3Config config, PhysicalMemory memory, InterruptSink interrupts) {
        this.name = Objects.requireNonNull(name, "name");
        this.config = Objects.requireNonNull(config, "config");
        this.memory = Objects.requireNonNull(memory, "memory");
        this.interrupts = Objects.requireNonNull(interrupts, "interrupts");
        this.regs = new SmmuV3Registers(name, config);
        this.features = features(config);

        // The update completes at once, so the acknowledgement mirrors the request.
        regs.cr0.afterWrite((oldValue, newValue, written, mask) -> regs.cr0ack.set(newValue));
        regs.irqCtrl.afterWrite((oldValue, newValue, written, mask) -> regs.irqCtrlAck.set(newValue));
        // GBPA: the attribute fields are read-only to plain writes; a write with UPDATE=1 latches them and
        // the update is complete (UPDATE reads 0) before anyone can read the register again.
        long latched = regs.gbpa.definedMask() & ~regs.gbpaUpdate.mask();
        regs.gbpa.afterWrite((oldValue, newValue, written, mask) -> {
            if (regs.gbpaUpdate.isSet(written)) {
                regs.gbpa.set(written & latched);
            }
        });
    }

    private static List<String> features(SmmuV3Config c) {
        List<String> f = new ArrayList<>();
        f.add("GBPA");
        if (c.stage1()) {
            f.add("S1P");
        }
        if (c.stage2()) {
            f.add("S2P");
        }
        f.add("TTF_AARCH64");
        f.add("COHACC");
        if (c.httu() == 1) {
            f.add("HTTU_A");
        } else if (c.httu() == 2) {
            f.add("HTTU_AD");
        }
        if (c.ats()) {
            f.add("ATS");
        }
        if (c.pri()) {
            f.add("PRI");
        }
        if (c.asid16()) {
            f.add("ASID16");
        }
        if (c.vmid16()) {
            f.add("VMID16");
        }
        if (c.msi()) {
            f.add("MSI");
        }
        if (c.sev()) {
            f.add("SEV");
        }
        if (c.twoLevelStreamTable()) {
            f.add("ST_2LVL");
        }
        if (c.twoLevelCd()) {
            f.add("CD2L");
        }
        if (c.rangeInvalidation()) {
            f.add("RIL");
        }
        if (c.granule4k()) {
            f.add("GRAN4K");
        }
        if (c.granule16k()) {
            f.add("GRAN16K");
        }
        if (c.granule64k()) {
            f.add("GRAN64K");
        }
        f.add("OAS" + c.oasBits());
        f.add("SIDSIZE" + c.sidBits());
        if (c.ssidBits() > 0) {
            f.add("SSIDSIZE" + c.ssidBits());
        }
        return List.copyOf(f);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public IommuType type() {
        return IommuType.SMMUV3;
    }

    public SmmuV3Config config() {
        return config;
    }

    @Override
    public long mmioSize() {
        return SmmuV3Registers.MMIO_SIZE;
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
        return config.sidBits();
    }

    @Override
    public int substreamIdBits() {
        return config.ssidBits();
    }

    @Override
    public List<String> features() {
        return features;
    }

    @Override
    public boolean translationModelled() {
        return false;
    }

    /**
     * With the SMMU disabled, every transaction bypasses or aborts as GBPA says; the stream id is not
     * checked (the machine keeps it below 2^SIDSIZE).
     */
    @Override
    public Translation translate(int streamId, int substreamId, long iova, int access, Translation out) {
        if (!regs.smmuEnabled.isSet()) {
            if (regs.gbpaAbort.isSet()) {
                return out.fault(FaultType.ABORTED, 0, GBPA_ABORT_MESSAGE);
            }
            return out.ok(iova, -1L);
        }
        return out.unimplemented(UNIMPLEMENTED_MESSAGE);
    }

    @Override
    public void reset() {
        regs.file.reset();
    }

    /** The register file, for tests and the device's own subsystems. */
    RegisterFile registerFile() {
        return regs.file;
    }

    @Override
    public String toString() {
        return "SMMUv3 " + name;
    }
}
