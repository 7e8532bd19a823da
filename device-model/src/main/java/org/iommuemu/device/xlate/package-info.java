/**
 * Translation plumbing shared by the SMMUv3 and VT-d device models, as QEMU's smmu-common serves smmuv3:
 * the caches and the cost model.
 *
 * <ul>
 *   <li>{@link org.iommuemu.device.xlate.Iotlb}: leaf translations tagged by VMID / domain and ASID / PASID,
 *       all page sizes together, with every TLB invalidation form of both architectures;
 *       {@link org.iommuemu.device.xlate.IotlbEntry} is its caller-owned holder.
 *   <li>{@link org.iommuemu.device.xlate.WalkCache}: non-leaf table descriptors, so walks resume near the
 *       leaf; {@link org.iommuemu.device.xlate.WalkEntry} is its holder.
 *   <li>{@link org.iommuemu.device.xlate.TranslationCaches}: both, with the invalidations that concern both
 *       (leaf-only / invalidation hint).
 *   <li>{@link org.iommuemu.device.xlate.ConfigCache}: decoded STEs and CDs, context and PASID entries.
 *   <li>{@link org.iommuemu.device.xlate.CostModel}, {@link org.iommuemu.device.xlate.SimClock} and
 *       {@link org.iommuemu.device.xlate.XlateStats}: simulated time and the Telemetry counters.
 * </ul>
 *
 * <p>Caches are real (DESIGN.md): an entry stays until the driver invalidates it or capacity evicts it (least
 * recently used first), and nothing here reads guest memory. Lookups, inserts and invalidations allocate
 * nothing and box nothing; each cache is guarded by its own monitor, and inserts can carry the cache's epoch so
 * that a walk racing an invalidation cannot put back what it removed.
 */
package org.iommuemu.device.xlate;
