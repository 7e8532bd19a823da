/**
 * The Intel VT-d driver, modelled on Linux's {@code intel-iommu} ({@code drivers/iommu/intel}): it programs a DMA
 * remapping unit only through a {@link org.iommuemu.core.driver.vtd.VtdHost} (4 KB register window, physical memory,
 * page allocator, MSIs), so it runs against an in-process device and a remote one alike.
 *
 * <ul>
 *   <li>{@link org.iommuemu.core.driver.vtd.VtdDriver}: probe (VER/CAP/ECAP into
 *       {@link org.iommuemu.core.driver.vtd.VtdFeatures}), init in Linux's order, the GCMD/GSTS handshake, queued
 *       invalidation, fault draining.</li>
 *   <li>{@code InvalidationQueue}, {@code ContextTables}, {@code PasidTable} (package-private): the structures the
 *       driver owns in memory and how it keeps them consistent with the unit.</li>
 *   <li>{@link org.iommuemu.core.driver.vtd.VtdDomains}: IOMMU API domains on requester ids and PASIDs (second stage
 *       in legacy or scalable mode, first stage in scalable mode) and their invalidations, planned by
 *       {@link org.iommuemu.core.driver.vtd.PsiPlanner}.</li>
 *   <li>{@link org.iommuemu.core.driver.vtd.VtdListener}: what the driver reports (faults as
 *       {@link org.iommuemu.core.driver.vtd.VtdFault}, overflows, queue errors);
 *       {@link org.iommuemu.core.driver.vtd.VtdDriverException}: what it refuses or gives up on, with a kind.</li>
 * </ul>
 *
 * <p>Register numbers and structure encodings come from {@link org.iommuemu.core.vtd}, shared with the device model.
 * Domain ids come from the SMMUv3 driver's {@link org.iommuemu.core.driver.smmuv3.IdAllocator}. Logging uses
 * {@link java.lang.System.Logger}, so the module keeps no run-time dependency.
 */
package org.iommuemu.core.driver.vtd;
