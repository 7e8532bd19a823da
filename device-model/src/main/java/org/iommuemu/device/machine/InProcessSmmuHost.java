package org.iommuemu.device.machine;

import org.iommuemu.core.driver.smmuv3.SmmuHost;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.memory.PhysicalMemory;

/**
 * The SMMUv3 driver's host interface in the same process as the device ({@link InProcessIommuHost}: MMIO straight
 * to the register window, the machine's RAM, interrupts delivered after the MMIO access that raised them).
 *
 * <p>Wired lines and MSIs are told apart by the device's source name: "eventq", "gerror", "priq", "cmd-sync". A
 * CMD_SYNC whose MSI was written to RAM completed a poll: a memory write, not a CPU interrupt.
 */
public final class InProcessSmmuHost extends InProcessIommuHost<SmmuHost.Irq> implements SmmuHost {
    /**
     * @param device    the SMMU instance (its MMIO window)
     * @param memory    the machine's physical memory
     * @param allocator where the driver's queues and tables come from
     * @param hub       the machine's interrupt controller, which the device raises its interrupts on
     */
    public InProcessSmmuHost(IommuDevice device, PhysicalMemory memory, PageAllocator allocator, InterruptHub hub) {
        super(device, memory, allocator, hub, (source, landedInRam) -> {
            Irq irq = Irq.fromSource(source);
            return irq == Irq.CMD_SYNC && landedInRam ? null : irq;
        });
    }

    /** A host for instance {@code iommu} of {@code machine}. */
    public static InProcessSmmuHost of(Machine machine, String iommu, PageAllocator allocator) {
        return new InProcessSmmuHost(instance(machine, iommu), machine.memory(), allocator, machine.interrupts());
    }
}
