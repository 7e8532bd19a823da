package org.iommuemu.core.driver.vtd;

import java.util.function.Consumer;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;

/**
 * Everything the VT-d driver may touch of the machine it runs on, as an operating system's driver sees a DMA
 * remapping unit: the unit's 4 KB register window, physical memory, a page allocator for the driver's own
 * structures (root, context and PASID tables, the invalidation queue, status words), and the unit's interrupts.
 * The driver never reaches the device any other way.
 *
 * <p>VT-d signals only by MSI: the fault event (FEDATA/FEADDR/FEUADDR, gated by FECTL.IM) and the
 * invalidation-completion event (IEDATA/IEADDR/IEUADDR, gated by IECTL.IM). A host reports an MSI of this unit that
 * reached the interrupt controller; an MSI the device wrote to RAM is a memory write, not an interrupt.
 *
 * <p>Interrupts may be delivered on any thread, at any time after they are raised, or never: the driver stays
 * correct because it also polls what it waits for (invalidation-wait status words; {@code drainFaults}).
 */
public interface VtdHost {
    /** The unit's interrupt sources. */
    enum Irq {
        /** A fault was recorded, or an invalidation-queue error (IQE, ITE, ICE) happened (FECTL). */
        FAULT_EVENT,
        /** An invalidation-wait descriptor with IF=1 completed (ICS.IWC, IECTL); this driver does not ask for it. */
        INVALIDATION_COMPLETION;

        /**
         * The interrupt a device source name stands for ("fault-event", "inv-completion", as the machine's interrupt
         * controller and the bus's {@code Interrupt.source} name them), or null for any other source.
         */
        public static Irq fromSource(String source) {
            return switch (source) {
                case "fault-event" -> FAULT_EVENT;
                case "inv-completion" -> INVALIDATION_COMPLETION;
                default -> null;
            };
        }
    }

    /**
     * Reads a register.
     *
     * @param offset byte offset in the unit's 4 KB window
     * @param width  4 or 8 bytes
     * @return the value, zero-extended
     */
    long mmioRead(long offset, int width);

    /** Writes a register ({@code width} 4 or 8; a 4-byte write uses the low 32 bits of {@code value}). */
    void mmioWrite(long offset, int width, long value);

    /** The machine's physical memory, where the driver's tables and queue live. */
    PhysicalMemory memory();

    /** The allocator the driver takes its tables' and queue's pages from. */
    PageAllocator allocator();

    /** Registers the one handler the host calls for each interrupt of this unit (replacing any earlier one). */
    void onInterrupt(Consumer<Irq> handler);
}
