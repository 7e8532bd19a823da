/**
 * The IOMMU API, as Linux's {@code iommu.c} and dma-iommu's flush queue offer it to device drivers:
 * {@link org.iommuemu.core.api.IommuDomain domains} (one I/O address space over a page table) with map,
 * mapSg, unmap and iovaToPhys; the {@link org.iommuemu.core.api.IommuInstanceOps} an IOMMU driver provides
 * to them (page sizes and invalidations); the {@link org.iommuemu.core.api.FlushPolicy strict and lazy}
 * unmap policies and the {@link org.iommuemu.core.api.FlushQueueTimer timer} of the lazy one.
 */
package org.iommuemu.core.api;
