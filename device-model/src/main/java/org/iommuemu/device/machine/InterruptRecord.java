package org.iommuemu.device.machine;

/**
 * One interrupt raised by an IOMMU.
 *
 * @param sequence machine-wide number, increasing by one per interrupt
 * @param iommu instance that raised it
 * @param source what raised it ("eventq", "gerror", "cmd-sync", "fault-event"...)
 * @param msi message-signalled (a memory write) rather than a wired line
 * @param msiAddress MSI target address
 * @param msiData MSI payload
 * @param landedInRam the MSI address was RAM, so the write was performed there (SMMUv3 CMD_SYNC MSI polling relies on it)
 */
public record InterruptRecord(long sequence, String iommu, String source, boolean msi, long msiAddress, int msiData,
        boolean landedInRam) {}
