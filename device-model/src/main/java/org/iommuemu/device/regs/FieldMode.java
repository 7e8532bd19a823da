package org.iommuemu.device.regs;

/**
 * How software (an MMIO write) affects the bits of one register field. The device itself changes any
 * field through {@link Register#set}, {@link Register#setBits} or {@link Field#set}, whatever its mode.
 *
 * <p>These are the access types of the register tables in the Arm SMMUv3 and Intel VT-d specifications
 * (RO, RW, RW1C / W1C, RW1S, WO).
 */
public enum FieldMode {
    /** Software writes are ignored; reads return what the device stored. */
    READ_ONLY,
    /** Software writes replace the field; reads return the stored value. */
    READ_WRITE,
    /** Writing 1 to a bit clears it, writing 0 leaves it; reads return the stored value (RW1C). */
    WRITE_ONE_TO_CLEAR,
    /** Writing 1 to a bit sets it, writing 0 leaves it; reads return the stored value (RW1S). */
    WRITE_ONE_TO_SET,
    /**
     * Software writes replace the field and reach the write hooks, but reads return zero (VT-d GCMD, the
     * SMMUv3 GBPA.UPDATE request bit).
     */
    WRITE_ONLY
}
