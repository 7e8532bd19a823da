package org.iommuemu.device.smmuv3;

import java.util.concurrent.atomic.LongAdder;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.device.machine.InterruptSink;
import org.iommuemu.device.regs.Field;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.regs.RegisterFile;
import org.iommuemu.device.xlate.XlateStats;

/**
 * The SMMU's interrupts and global errors (spec §3, §4): each source (event queue, GERROR, CMD_SYNC) signals
 * with an MSI when the SMMU implements MSIs and software programmed an address in the source's IRQ_CFG0, and
 * with its wired interrupt otherwise. An MSI write that aborts raises the matching MSI_*_ABT_ERR global error.
 * A global error toggles its GERROR bit unless it is already active (GERROR != GERRORN) and, with
 * IRQ_CTRL.GERROR_IRQEN, signals the GERROR interrupt.
 *
 * <p>Called with the register file's lock held.
 */
final class Signals {
    private final String name;
    private final boolean msiImplemented;
    private final InterruptSink sink;
    private final XlateStats stats;
    private final Register gerror;
    private final Register gerrorn;
    private final Field gerrorIrqEnabled;
    private final Register gerrorCfg0;
    private final Register gerrorCfg1;
    final LongAdder interrupts = new LongAdder();
    final LongAdder globalErrors = new LongAdder();

    Signals(String name, boolean msiImplemented, InterruptSink sink, XlateStats stats, RegisterFile f) {
        this.name = name;
        this.msiImplemented = msiImplemented;
        this.sink = sink;
        this.stats = stats;
        this.gerror = f.register("GERROR");
        this.gerrorn = f.register("GERRORN");
        this.gerrorIrqEnabled = f.register("IRQ_CTRLACK").fieldHandle("GERROR_IRQEN");
        this.gerrorCfg0 = f.register("GERROR_IRQ_CFG0");
        this.gerrorCfg1 = f.register("GERROR_IRQ_CFG1");
    }

    /**
     * Signals {@code source}: an MSI of IRQ_CFG1's data to IRQ_CFG0's address, or the wired line. An aborted
     * MSI write raises global error {@code msiAbortBit}.
     */
    void signal(String source, Register cfg0, Register cfg1, int msiAbortBit) {
        interrupts.increment();
        long address = cfg0.value() & ~3L;
        if (msiImplemented && address != 0) {
            stats.msiWrite();
            if (!sink.msi(name, source, address, (int) cfg1.value())) {
                raise(msiAbortBit);
            }
        } else {
            sink.wired(name, source);
        }
    }

    /** An MSI to an explicit address (CMD_SYNC with CS=IRQ); an abort raises MSI_CMDQ_ABT_ERR. */
    void msi(String source, long address, int data) {
        interrupts.increment();
        stats.msiWrite();
        if (!sink.msi(name, source, address, data)) {
            raise(Gerror.MSI_CMDQ_ABT_ERR);
        }
    }

    /** A wired interrupt of {@code source}. */
    void wired(String source) {
        interrupts.increment();
        sink.wired(name, source);
    }

    /** Raises global error {@code bit} (toggles GERROR[bit] unless already active) and signals it. */
    void raise(int bit) {
        int g = (int) gerror.value();
        int raised = Gerror.raise(g, (int) gerrorn.value(), bit);
        if (raised == g) {
            return; // already active: nothing new to report
        }
        gerror.set(raised);
        globalErrors.increment();
        stats.gerror();
        if (gerrorIrqEnabled.isSet()) {
            signal("gerror", gerrorCfg0, gerrorCfg1, Gerror.MSI_GERROR_ABT_ERR);
        }
    }

    /** Whether global error {@code bit} is active. */
    boolean active(int bit) {
        return Gerror.isActive((int) gerror.value(), (int) gerrorn.value(), bit);
    }
}
