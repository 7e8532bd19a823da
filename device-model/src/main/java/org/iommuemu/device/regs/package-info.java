/**
 * A small register-file DSL for device models: each register is declared once with its offset, width,
 * reset value and fields ({@link org.iommuemu.device.regs.FieldMode read-only, read-write,
 * write-one-to-clear…}), and side effects hang on {@link org.iommuemu.device.regs.WriteHook after-write
 * hooks}, in the spirit of Renode's register declarations and QEMU's {@code REG32}/{@code FIELD} macros.
 * A device sees offsets only; the machine maps base addresses.
 */
package org.iommuemu.device.regs;
