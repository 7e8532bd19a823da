package org.iommuemu.core.driver.smmuv3;

import java.util.function.Consumer;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;

/**
 * Everything the SMMUv3 driver may touch of the machine it runs on, as an operating system's driver sees its
 * hardware: the instance's MMIO register window, physical memory, a page allocator for the driver's own
 * structures (queues, stream tables), and the instance's interrupts. The driver never reaches the device any
 * other way, so the same driver runs against an in-process device and against a remote one.
 *
 * <p>Implementations: device-model's {@code org.iommuemu.device.machine.InProcessSmmuHost} calls an
 * {@code SmmuV3Device} directly; {@code org.iommuemu.device.remote.BusSmmuHost} implements it from another process
 * over the {@code Machine} service (MMIO and memory RPCs, the interrupt stream).
 *
 * <p>Interrupts may be delivered on any thread, at any time after they are raised (including never, when the
 * host has no interrupt path): the driver stays correct because it also polls what it waits for.
 */
public interface SmmuHost {
    /** The instance's interrupt sources as the driver distinguishes them (wired lines or MSIs). */
    enum Irq {
        /** The event queue has new records (IRQ_CTRL.EVENTQ_IRQEN). */
        EVENTQ,
        /** A global error became active (IRQ_CTRL.GERROR_IRQEN). */
        GERROR,
        /** The PRI queue has new requests (not used by this driver yet). */
        PRIQ,
        /** A CMD_SYNC with CS=IRQ completed. */
        CMD_SYNC;

        /**
         * The interrupt a device source name stands for ("eventq", "gerror", "priq", "cmd-sync", as the machine's
         * interrupt controller and the bus's {@code Interrupt.source} name them), or null for one that is not an
         * interrupt ("sev": a send-event wakes pollers).
         */
        public static Irq fromSource(String source) {
            return switch (source) {
                case "eventq" -> EVENTQ;
                case "gerror" -> GERROR;
                case "priq" -> PRIQ;
                case "cmd-sync" -> CMD_SYNC;
                default -> null;
            };
        }
    }

    /**
     * Reads a register.
     *
     * @param offset byte offset in the instance's window (page 1 at {@code 0x10000})
     * @param width  4 or 8 bytes
     * @return the value, zero-extended
     */
    long mmioRead(long offset, int width);

    /** Writes a register ({@code width} 4 or 8; a 4-byte write uses the low 32 bits of {@code value}). */
    void mmioWrite(long offset, int width, long value);

    /** The machine's physical memory, where the driver's queues and tables live. */
    PhysicalMemory memory();

    /** The allocator the driver takes its queues' and tables' pages from. */
    PageAllocator allocator();

    /** Registers the one handler the host calls for each interrupt of this instance (replacing any earlier one). */
    void onInterrupt(Consumer<Irq> handler);
}
