/**
 * The Arm SMMUv3 device model: {@link org.iommuemu.device.smmuv3.SmmuV3Device}, its configuration
 * ({@link org.iommuemu.device.smmuv3.SmmuV3Config}, which also computes the ID registers) and its
 * register declarations ({@link org.iommuemu.device.smmuv3.SmmuV3Registers}). Encodings follow the Arm
 * SMMUv3 architecture specification as summarised in {@code spec/SMMUV3.md}.
 */
package org.iommuemu.device.smmuv3;
