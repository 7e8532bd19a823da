/**
 * Page-table formats: implementations of {@link org.iommuemu.core.pgtable.PtFormat}, each knowing one
 * architecture's geometry and the encoding of one entry, and nothing about walking or mapping (spec
 * PGTABLE.md).
 *
 * <ul>
 *   <li>{@link org.iommuemu.core.pgtable.fmt.Arm64Lpae}: Arm VMSAv8-64 long descriptors, stage 1 and stage 2,
 *       4K/16K/64K granules (SMMUv3).</li>
 *   <li>{@link org.iommuemu.core.pgtable.fmt.Armv7s}: Arm short descriptors, 32-bit entries, two levels.</li>
 * </ul>
 */
package org.iommuemu.core.pgtable.fmt;
