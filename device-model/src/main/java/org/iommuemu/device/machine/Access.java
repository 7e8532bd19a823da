package org.iommuemu.device.machine;

/** Bit flags describing one DMA access, passed to {@link IommuDevice#translate}. A read has no WRITE bit. */
public final class Access {
    private Access() {}

    /** A write (SMMUv3 RnW=0). */
    public static final int WRITE = 1;
    /** A privileged access (SMMUv3 PnU=1). */
    public static final int PRIVILEGED = 2;
    /** An instruction fetch (SMMUv3 InD=1). */
    public static final int INSTRUCTION = 4;

    public static boolean isWrite(int access) {
        return (access & WRITE) != 0;
    }

    public static boolean isPrivileged(int access) {
        return (access & PRIVILEGED) != 0;
    }

    public static boolean isInstruction(int access) {
        return (access & INSTRUCTION) != 0;
    }
}
