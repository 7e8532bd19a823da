/**
 * The SMMUv3 hardware translation-table walker: {@link org.iommuemu.device.smmuv3.walk.TableWalker} walks
 * VMSAv8-64 long-descriptor tables for stage 1, stage 2 and nested translation, given a decoded
 * {@link org.iommuemu.device.smmuv3.walk.Stage1Context} (from a CD) and/or
 * {@link org.iommuemu.device.smmuv3.walk.Stage2Context} (from an STE), and reports into a caller-owned
 * {@link org.iommuemu.device.smmuv3.walk.WalkResult} either a translation or an architected fault with its event
 * fields. Descriptors are read and updated only through a
 * {@link org.iommuemu.device.smmuv3.walk.DescriptorReader}, which the device wraps with its walk cache, fault
 * injection and cost accounting. Encodings follow {@code spec/PGTABLE.md} §1 and {@code spec/SMMUV3.md} §5, §6
 * and §8. Levels are Arm's lookup levels (0 at the top of a 4-level walk, 3 for pages), unlike the driver-side
 * {@code org.iommuemu.core.pgtable}, whose level 0 is the leaf level.
 */
package org.iommuemu.device.smmuv3.walk;
