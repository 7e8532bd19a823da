package org.iommuemu.core.pgtable;

/**
 * Format-neutral mapping attributes, as the IOMMU API passes them (Linux's IOMMU_READ, IOMMU_WRITE...).
 * A format encodes what it can express; {@link PtFormat#supportedProt()} says which bits survive an
 * encode/decode round trip.
 */
public final class Prot {
    private Prot() {}

    /** DMA may read. */
    public static final int READ = 1;
    /** DMA may write. */
    public static final int WRITE = 2;
    /** Instruction fetches are not allowed (execute-never). */
    public static final int NOEXEC = 4;
    /** Privileged accesses only (e.g. SMMUv3 stage 1 AP[1]=0, x86 U/S=0). */
    public static final int PRIV = 8;
    /** Normal cacheable, coherent memory. */
    public static final int CACHE = 16;
    /** Device memory (MMIO). */
    public static final int MMIO = 32;
    /** Every defined bit. */
    public static final int ALL = READ | WRITE | NOEXEC | PRIV | CACHE | MMIO;

    public static boolean canRead(int prot) {
        return (prot & READ) != 0;
    }

    public static boolean canWrite(int prot) {
        return (prot & WRITE) != 0;
    }

    /** "RW-NOEXEC-CACHE"-style text for messages. */
    public static String toString(int prot) {
        StringBuilder b = new StringBuilder();
        b.append((prot & READ) != 0 ? 'R' : '-').append((prot & WRITE) != 0 ? 'W' : '-');
        if ((prot & NOEXEC) != 0) {
            b.append("-NOEXEC");
        }
        if ((prot & PRIV) != 0) {
            b.append("-PRIV");
        }
        if ((prot & CACHE) != 0) {
            b.append("-CACHE");
        }
        if ((prot & MMIO) != 0) {
            b.append("-MMIO");
        }
        if ((prot & ~ALL) != 0) {
            b.append("-?").append(Integer.toHexString(prot & ~ALL));
        }
        return b.toString();
    }
}
