/**
 * The machine seen from outside the emulator, over the bus: {@link org.iommuemu.device.remote.BusPhysicalMemory}
 * (guest RAM through {@code Machine.MemRead}, {@code MemWrite} and {@code MemCompareExchange}) and
 * {@link org.iommuemu.device.remote.BusSmmuHost} (the SMMUv3 driver's host interface through MMIO RPCs, that
 * memory and the {@code Machine.Interrupts} stream). With them the unchanged SMMUv3 driver of iommu-core runs in
 * another process than the device it drives, as a guest kernel's driver would. What the hardware would answer
 * stays what it is in process (a {@code MemoryAccessException} for memory that is not RAM); what only a bus can
 * do wrong (a server gone, a deadline passed) is a {@link org.iommuemu.device.remote.BusUnavailableException},
 * so a driver call fails clearly instead of hanging or misreading a register.
 */
package org.iommuemu.device.remote;
