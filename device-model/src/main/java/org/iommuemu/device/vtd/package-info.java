/**
 * The Intel VT-d DMA-remapping unit model: {@link org.iommuemu.device.vtd.VtdDevice}, its configuration
 * ({@link org.iommuemu.device.vtd.VtdConfig}, which also computes VER, CAP and ECAP) and its register
 * declarations ({@link org.iommuemu.device.vtd.VtdRegisters}), its DMA-remapping path
 * ({@link org.iommuemu.device.vtd.VtdTranslator}) and translation caches
 * ({@link org.iommuemu.device.vtd.VtdCaches}). Encodings follow the Intel VT-d specification as summarised in
 * {@code spec/VTD.md}.
 */
package org.iommuemu.device.vtd;
