package org.iommuemu.device.machine;

/**
 * Where a device sends its interrupts. The machine implements it: it delivers wired interrupts and MSIs
 * to {@code Machine.Interrupts} subscribers. A device calls it and returns; it never blocks the device.
 */
public interface InterruptSink {
    /** A wired interrupt line pulsed by {@code source} ("eventq", "gerror", "fault-event"...). */
    void wired(String iommu, String source);

    /**
     * A message-signalled interrupt: a 32-bit write of {@code data} to {@code address}.
     *
     * @return false when the write was aborted (the device reports that, e.g. SMMUv3 GERROR.MSI_*_ABT_ERR)
     */
    boolean msi(String iommu, String source, long address, int data);
}
