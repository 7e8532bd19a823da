/**
 * The machine seen from outside the emulator, over the bus: {@link org.iommuemu.device.remote.BusPhysicalMemory}
 * (guest RAM through {@code Machine.MemRead}, {@code MemWrite} and {@code MemCompareExchange}) and
 * {@link org.iommuemu.device.remote.BusSmmuHost} (the SMMUv3 driver's host interface through MMIO RPCs, that
 * memory and the {@code Machine.Interrupts} stream). With them the unchanged SMMUv3 driver of iommu-core runs in
 * another process than the device it drives, as a guest kernel's driver would.
 */
package org.iommuemu.device.remote;
