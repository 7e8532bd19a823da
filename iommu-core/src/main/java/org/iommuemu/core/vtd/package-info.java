/**
 * Intel VT-d as numbers and encodings ({@code spec/VTD.md}), shared by the device model, which declares its
 * registers and decodes what a guest wrote, and by the driver, which encodes: {@link org.iommuemu.core.vtd.VtdRegs}
 * (register offsets and fields), {@link org.iommuemu.core.vtd.VtdTables} (root, context and PASID structures),
 * {@link org.iommuemu.core.vtd.InvDesc} (queued-invalidation descriptors) and
 * {@link org.iommuemu.core.vtd.FaultReason} (fault reason codes).
 */
package org.iommuemu.core.vtd;
