package org.iommuemu.device.machine;

import org.iommuemu.core.driver.vtd.VtdHost;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;

/**
 * The VT-d driver's host interface in the same process as the device ({@link InProcessIommuHost}: MMIO straight to
 * the register window, the machine's RAM, interrupts delivered after the MMIO access that raised them).
 *
 * <p>Only MSIs that reached the interrupt controller (the doorbell window) are interrupts: one the unit wrote to RAM
 * is a memory write, and one that aborted reached nobody. Sources are told apart by name: "fault-event",
 * "inv-completion" ({@link VtdHost.Irq#fromSource}).
 */
public final class InProcessVtdHost extends InProcessIommuHost<VtdHost.Irq> implements VtdHost {
    /**
     * @param device    the VT-d unit (its MMIO window)
     * @param memory    the machine's physical memory
     * @param allocator where the driver's tables and queue come from
     * @param hub       the machine's interrupt controller, which the device raises its MSIs on
     */
    public InProcessVtdHost(IommuDevice device, PhysicalMemory memory, PageAllocator allocator, InterruptHub hub) {
        super(device, memory, allocator, hub, (source, landedInRam) -> landedInRam ? null : Irq.fromSource(source));
    }

    /** A host for VT-d unit {@code iommu} of {@code machine}. */
    public static InProcessVtdHost of(Machine machine, String iommu, PageAllocator allocator) {
        IommuDevice d = instance(machine, iommu);
        if (d.type() != IommuType.VTD) {
            throw new IllegalArgumentException("IOMMU instance '" + iommu + "' is " + d.type() + ", not VT-d");
        }
        return new InProcessVtdHost(d, machine.memory(), allocator, machine.interrupts());
    }
}
