package org.iommuemu.device.machine;

/** The architecture-neutral kind of a failed DMA; mirrors {@code iommuemu.v1.FaultKind} on the bus. */
public enum FaultType {
    /** No valid translation (SMMUv3 F_TRANSLATION, VT-d not-present entries). */
    TRANSLATION,
    /** The translation forbids the access (SMMUv3 F_PERMISSION, VT-d read/write faults). */
    PERMISSION,
    /** Access flag clear without hardware update (SMMUv3 F_ACCESS). */
    ACCESS_FLAG,
    /** Address beyond the configured width (SMMUv3 F_ADDR_SIZE). */
    ADDRESS_SIZE,
    /** A memory access failed: output outside RAM, or a table fetch aborted. */
    EXTERNAL_ABORT,
    /** The stream's configuration is invalid (C_BAD_STE, C_BAD_CD, invalid context entries...). */
    BAD_CONFIGURATION,
    /** Aborted by configuration: GBPA.ABORT, STE abort, stream disabled, translation forbidden. */
    ABORTED
}
