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

    /**
     * A translated request (PCIe AT = translated): the address is a physical address an ATS translation gave the
     * device; the IOMMU checks that the stream may issue translated requests and does not walk (docs/ATS.md).
     */
    public static final int TRANSLATED = 8;
    /**
     * An ATS translation request: translate as an untranslated access would, but translation-class faults are not
     * recorded (the completion says "no access" instead), and the stream must allow ATS.
     */
    public static final int TRANSLATION_REQUEST = 16;

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
