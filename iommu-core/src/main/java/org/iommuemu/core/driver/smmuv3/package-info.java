/**
 * The Arm SMMUv3 driver, modelled on Linux's {@code arm-smmu-v3}: it programs an SMMU only through a
 * {@link org.iommuemu.core.driver.smmuv3.SmmuHost} (MMIO window, physical memory, page allocator, interrupts), so it
 * runs unchanged against the in-process device and a remote one.
 *
 * <ul>
 *   <li>{@link org.iommuemu.core.driver.smmuv3.SmmuV3Driver}: probe (ID registers into
 *       {@link org.iommuemu.core.driver.smmuv3.SmmuV3Features}), init in Linux's reset order, command submission,
 *       event draining, global-error handling, STE installation.</li>
 *   <li>{@code CommandQueue}, {@code EventQueue}, {@code StreamTable} (package-private): the three structures the
 *       driver owns in memory and how it keeps them consistent with the SMMU; {@code CdTable} (package-private): one
 *       stream's context-descriptor table (one CD, linear, or 2-level) and its safe updates.</li>
 *   <li>{@link org.iommuemu.core.driver.smmuv3.SmmuV3Domains}: IOMMU API domains on streams, substreams and nested
 *       streams, and their invalidations; {@link org.iommuemu.core.driver.smmuv3.NestedTables}: the block a nested
 *       domain's tables live in, mapped IPA == PA by its stage-2 parent.</li>
 *   <li>{@link org.iommuemu.core.driver.smmuv3.SmmuV3Listener}: what the driver reports (events, overflows, global and
 *       command errors); {@link org.iommuemu.core.driver.smmuv3.SmmuV3DriverException}: what it refuses or gives up
 *       on, with a kind.</li>
 * </ul>
 *
 * <p>Register numbers come from {@link org.iommuemu.core.smmuv3.SmmuRegs} and structure encodings from
 * {@link org.iommuemu.core.smmuv3}, shared with the device model. Logging uses {@link java.lang.System.Logger}, so
 * the module keeps no run-time dependency.
 */
package org.iommuemu.core.driver.smmuv3;
