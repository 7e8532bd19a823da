package org.iommuemu.device.xlate;

/**
 * The permission and attribute bits of a cached translation ({@link IotlbEntry#perms()}), combined over the
 * stages that produced it. The device decides what to grant; the cache only stores the bits, except for
 * {@link #DIRTY_WRITABLE}, which it interprets on lookup.
 *
 * <p>Bits 0..7 are permissions, bits 8..13 the first stage's own permissions of a nested entry
 * ({@link #FIRST_STAGE_SHIFT}), bits 16..23 an attribute byte the device defines (e.g. the MAIR attribute
 * index or VT-d memory type), the rest are reserved and must be zero.
 */
public final class Perm {
    private Perm() {}

    /** Unprivileged data read (SMMUv3 AP[1]=1 read; VT-d R or first-stage U/S=1). */
    public static final int READ = 1;
    /** Unprivileged data write. */
    public static final int WRITE = 1 << 1;
    /** Unprivileged instruction fetch (not UXN / not XD). */
    public static final int EXEC = 1 << 2;
    /** Privileged data read. */
    public static final int PRIV_READ = 1 << 3;
    /** Privileged data write. */
    public static final int PRIV_WRITE = 1 << 4;
    /** Privileged instruction fetch (not PXN). */
    public static final int PRIV_EXEC = 1 << 5;
    /**
     * Writable only through a dirty-state update: the leaf is writable-clean (Arm HTTU: DBM=1 with AP[2]=1
     * or S2AP[1]=0; VT-d A/D tracking with D=0). The entry serves reads, but a write lookup misses, so the
     * walker marks the descriptor dirty in memory and inserts a writable entry in place of this one.
     */
    public static final int DIRTY_WRITABLE = 1 << 6;
    /**
     * Where a nested entry keeps what its first stage alone allows (bits {@link #READ}..{@link #PRIV_EXEC}
     * shifted up), so that a permission fault served from the cache is reported against the stage that denied
     * the access. The cache never interprets these bits.
     */
    public static final int FIRST_STAGE_SHIFT = 8;
    /** The first-stage permission bits of a nested entry. */
    public static final int FIRST_STAGE_MASK = 0x3F << FIRST_STAGE_SHIFT;
    /** Where the device-defined attribute byte starts. */
    public static final int ATTR_SHIFT = 16;
    /** The device-defined attribute byte. */
    public static final int ATTR_MASK = 0xFF << ATTR_SHIFT;
    /** Every bit an entry may carry. */
    public static final int VALID_MASK = 0x7F | FIRST_STAGE_MASK | ATTR_MASK;

    /** Read and write at both privilege levels, no execute. */
    public static final int RW = READ | WRITE | PRIV_READ | PRIV_WRITE;

    /** The attribute byte of {@code perms}. */
    public static int attr(int perms) {
        return (perms & ATTR_MASK) >>> ATTR_SHIFT;
    }

    /** {@code perms} with the attribute byte replaced. */
    public static int withAttr(int perms, int attr) {
        return (perms & ~ATTR_MASK) | ((attr & 0xFF) << ATTR_SHIFT);
    }

    /** The first-stage permissions of a nested entry, in the bits of {@link #READ}..{@link #PRIV_EXEC}. */
    public static int firstStage(int perms) {
        return (perms & FIRST_STAGE_MASK) >>> FIRST_STAGE_SHIFT;
    }

    /** {@code perms} with the first-stage permissions of a nested entry set to {@code firstStage}. */
    public static int withFirstStage(int perms, int firstStage) {
        return (perms & ~FIRST_STAGE_MASK) | ((firstStage & 0x3F) << FIRST_STAGE_SHIFT);
    }

    /** "rwx/RWX" style text: lower case unprivileged, upper case privileged, "+dbm" for DIRTY_WRITABLE. */
    public static String toString(int perms) {
        StringBuilder b = new StringBuilder(12);
        b.append((perms & READ) != 0 ? 'r' : '-').append((perms & WRITE) != 0 ? 'w' : '-')
                .append((perms & EXEC) != 0 ? 'x' : '-').append('/')
                .append((perms & PRIV_READ) != 0 ? 'R' : '-').append((perms & PRIV_WRITE) != 0 ? 'W' : '-')
                .append((perms & PRIV_EXEC) != 0 ? 'X' : '-');
        if ((perms & DIRTY_WRITABLE) != 0) {
            b.append("+dbm");
        }
        if (attr(perms) != 0) {
            b.append(" attr=").append(attr(perms));
        }
        return b.toString();
    }
}
