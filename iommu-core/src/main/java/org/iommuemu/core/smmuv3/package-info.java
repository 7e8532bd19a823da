/**
 * The Arm SMMUv3 in-memory structures as the architecture and Linux encode them ({@code spec/SMMUV3.md}):
 * shared by the device model, which decodes what a guest wrote, and by drivers, which encode.
 *
 * <ul>
 *   <li>{@link org.iommuemu.core.smmuv3.Ste} (stream table entries, §5) and
 *       {@link org.iommuemu.core.smmuv3.L1StreamDescriptor}; {@link org.iommuemu.core.smmuv3.StreamTableBase}
 *       for STRTAB_BASE / STRTAB_BASE_CFG and stream-table indexing.</li>
 *   <li>{@link org.iommuemu.core.smmuv3.Cd} (context descriptors, §6) and
 *       {@link org.iommuemu.core.smmuv3.L1CdDescriptor}.</li>
 *   <li>{@link org.iommuemu.core.smmuv3.Command} and {@link org.iommuemu.core.smmuv3.CommandOp} (command
 *       queue, §7), with the legality rules of {@link org.iommuemu.core.smmuv3.Command#check}.</li>
 *   <li>{@link org.iommuemu.core.smmuv3.EventRecord} and {@link org.iommuemu.core.smmuv3.EventType} (event
 *       queue, §8).</li>
 *   <li>{@link org.iommuemu.core.smmuv3.QueuePointer} and {@link org.iommuemu.core.smmuv3.QueueBase} (queue
 *       arithmetic and base registers, §4); {@link org.iommuemu.core.smmuv3.Gerror} (§3).</li>
 *   <li>{@link org.iommuemu.core.smmuv3.BitField}, the named-field type every structure is declared with, and
 *       {@link org.iommuemu.core.smmuv3.Encodings} for shared value encodings.</li>
 * </ul>
 *
 * <p>Structures are immutable records whose canonical constructors reject values that do not fit their
 * fields, so encode and decode are exact inverses on the fields modelled. {@link org.iommuemu.core.smmuv3.SmmuRegs}
 * holds the register offsets and the control and ID register fields, for the device's register file and the
 * drivers alike.
 */
package org.iommuemu.core.smmuv3;
