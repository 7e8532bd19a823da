package org.iommuemu.device.smmuv3.walk;

import org.iommuemu.core.bits.Bits;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.Translation;

/**
 * The outcome of one table walk: a mutable holder that the caller owns and reuses, so walks allocate nothing.
 * Every walk sets the request, the counters and every field its {@link #outcome()} makes meaningful; the
 * others keep whatever an earlier walk left ({@link #fault()} and the bad-configuration accessors answer null / 0
 * unless the outcome is theirs).
 *
 * <h2>Success</h2>
 * {@link #outputAddress()} is the physical address of the access. The translation holds for the naturally
 * aligned block {@code [inputBase(), inputBase() + 2^sizeLg2())} of input addresses, with {@link #permissions()}
 * for every access in it: the leaf's size for one stage, the smaller of the two leaves for a nested walk (as
 * an IOTLB entry would cache it). Levels are Arm's (0..3). For a nested walk {@link #ipa()} is the stage-1
 * output. Permissions are the ones the leaf (or both leaves) grant now; a write through a writable-clean leaf
 * (DBM set, not yet dirty) would be allowed, but only by a walk that marks it dirty, so such a leaf leaves the
 * write bits clear and sets {@link #writableClean()}: an IOTLB must walk again for a write. With TBI the input
 * addresses keep the top byte the access carried; an IOTLB honouring TBI must ignore it when matching.
 *
 * <h2>Fault</h2>
 * {@link #fault()} is the event type (F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION, F_WALK_EABT) and the
 * other fields are those of the event record (SMMUV3.md §8): S2 ({@link #faultS2()}), CLASS ({@link #faultClass()}:
 * {@link #CLASS_TT} when the fault arose fetching or updating a stage-1 table descriptor — including the stage-2
 * translation of its IPA — else {@link #CLASS_IN}), InputAddr, IPA (for stage-2 faults: the IPA stage 2 was
 * translating), FetchAddr (for F_WALK_EABT: the physical address of the descriptor access that aborted), RnW,
 * PnU and InD as the access gave them, and TTRnW (for {@link #CLASS_TT}: whether the table access was a read, as
 * opposed to a hardware update). {@link #faultLevel()} is the lookup level (0 for the range and TTB checks before
 * the first lookup); the SMMU event record does not carry it.
 *
 * <h2>Bad configuration</h2>
 * The context was invalid ({@link Stage1Context#validate} or {@link Stage2Context#validate} gave a reason): the
 * device reports C_BAD_CD for stage 1 and C_BAD_STE for stage 2 ({@link #badConfigStage()}).
 *
 * <p>{@link #reads()} and {@link #updates()} count the descriptor reads and compare-and-swap updates the walk
 * issued through its {@link DescriptorReader}, whatever the outcome. Not thread-safe: one holder per thread.
 */
public final class WalkResult {

    /** What happened to the walk. */
    public enum Outcome {
        /** Translated: the success fields are valid. */
        OK,
        /** An architected translation fault: the fault fields are valid. */
        FAULT,
        /** The stage-1 (C_BAD_CD) or stage-2 (C_BAD_STE) configuration is invalid. */
        BAD_CONFIG
    }

    /** The translation faults a walk reports, with their SMMUv3 event type (SMMUV3.md §8). */
    public enum Fault {
        /** No valid descriptor, input outside the configured range, or a disabled table half. */
        TRANSLATION(0x10, FaultType.TRANSLATION),
        /** A table or output address (or the TTB) beyond the configured output size. */
        ADDR_SIZE(0x11, FaultType.ADDRESS_SIZE),
        /** AF = 0 without hardware update and without AFFD. */
        ACCESS(0x12, FaultType.ACCESS_FLAG),
        /** The leaf (with inherited table attributes) does not allow the access; or S2PTW found Device memory. */
        PERMISSION(0x13, FaultType.PERMISSION),
        /** A descriptor read or update failed: an external abort on the walk. */
        WALK_EABT(0x0B, FaultType.EXTERNAL_ABORT);

        private final int eventType;
        private final FaultType faultType;

        Fault(int eventType, FaultType faultType) {
            this.eventType = eventType;
            this.faultType = faultType;
        }

        /** The SMMUv3 event record type code. */
        public int eventType() {
            return eventType;
        }

        /** The machine's architecture-neutral fault kind. */
        public FaultType faultType() {
            return faultType;
        }
    }

    /** Event CLASS: the fault arose fetching a CD (never produced by the walker). */
    public static final int CLASS_CD = 0;
    /** Event CLASS: the fault arose fetching (or updating) a stage-1 translation table descriptor. */
    public static final int CLASS_TT = 1;
    /** Event CLASS: the fault arose translating the input address itself. */
    public static final int CLASS_IN = 2;

    /** {@link #stages()} bit: stage 1 took part. */
    public static final int STAGE_1 = 1;
    /** {@link #stages()} bit: stage 2 took part. */
    public static final int STAGE_2 = 2;

    /** {@link #permissions()} bits: privileged read, write, instruction fetch; then the same unprivileged. */
    public static final int PRIV_READ = 1;
    public static final int PRIV_WRITE = 2;
    public static final int PRIV_EXEC = 4;
    public static final int UNPRIV_READ = 8;
    public static final int UNPRIV_WRITE = 16;
    public static final int UNPRIV_EXEC = 32;
    static final int READ_BITS = PRIV_READ | UNPRIV_READ;
    static final int WRITE_BITS = PRIV_WRITE | UNPRIV_WRITE;

    // request
    long inputAddress;
    int access;

    Outcome outcome = Outcome.OK;
    int reads;
    int updates;

    // success
    long outputAddress;
    long ipa;
    long inputBase;
    int sizeLg2;
    int stages;
    int permissions;
    boolean writableClean;
    boolean global;
    int asid;
    int vmid;
    // stage-1 leaf
    int s1Level;
    int s1SizeLg2;
    long s1Descriptor;
    int s1Perms;
    int s1FullPerms;
    long s1Mair;
    // stage-2 leaf
    int s2Level;
    int s2SizeLg2;
    long s2Descriptor;
    int s2Perms;
    int s2FullPerms;

    // fault
    Fault fault;
    int faultLevel;
    boolean faultS2;
    int faultClass;
    long faultIpa;
    long fetchAddress;
    boolean ttRnW;

    // bad configuration
    int badConfigStage;
    String badConfigReason;

    /**
     * The permission bit an access needs: a write needs write permission (whatever InD says: the model treats
     * an instruction-marked write as a data write), otherwise an instruction fetch needs execute and a data read
     * needs read; privileged or unprivileged as PnU says.
     */
    public static int requiredPermission(int access) {
        boolean priv = Access.isPrivileged(access);
        if (Access.isWrite(access)) {
            return priv ? PRIV_WRITE : UNPRIV_WRITE;
        }
        if (Access.isInstruction(access)) {
            return priv ? PRIV_EXEC : UNPRIV_EXEC;
        }
        return priv ? PRIV_READ : UNPRIV_READ;
    }

    // ---------------------------------------------------------------- filled by the walker

    /** Starts a walk: only the request and the counters; each outcome sets the fields it defines. */
    void begin(long inputAddress, int access) {
        this.inputAddress = inputAddress;
        this.access = access;
        this.reads = 0;
        this.updates = 0;
    }

    /** Records a fault; returns {@code -1} for the walker to pass up as "no address". */
    long fail(Fault f, int level, boolean s2, int clazz, long ipa) {
        this.outcome = Outcome.FAULT;
        this.fault = f;
        this.faultLevel = level;
        this.faultS2 = s2;
        this.faultClass = clazz;
        this.faultIpa = s2 ? ipa : 0;
        this.fetchAddress = 0;
        this.ttRnW = true;
        return -1L;
    }

    WalkResult badConfig(int stage, String reason) {
        this.outcome = Outcome.BAD_CONFIG;
        this.badConfigStage = stage;
        this.badConfigReason = reason;
        return this;
    }

    // ---------------------------------------------------------------- request

    /** The input address as the access gave it (InputAddr). */
    public long inputAddress() {
        return inputAddress;
    }

    /** The {@link Access} flags of the walked access. */
    public int access() {
        return access;
    }

    /** RnW: the access was a read. */
    public boolean rnw() {
        return !Access.isWrite(access);
    }

    /** PnU: the access was privileged. */
    public boolean pnu() {
        return Access.isPrivileged(access);
    }

    /** InD: the access was marked as an instruction fetch. */
    public boolean ind() {
        return Access.isInstruction(access);
    }

    // ---------------------------------------------------------------- outcome and statistics

    public Outcome outcome() {
        return outcome;
    }

    public boolean isOk() {
        return outcome == Outcome.OK;
    }

    /** Descriptor reads issued by the walk (both stages). */
    public int reads() {
        return reads;
    }

    /** Hardware descriptor updates (compare-and-swap attempts) issued by the walk. */
    public int updates() {
        return updates;
    }

    // ---------------------------------------------------------------- success

    /** The physical address the input address translates to. */
    public long outputAddress() {
        return outputAddress;
    }

    /** For a nested walk, the intermediate physical address (the stage-1 output); for stage 2 only, the input; else 0. */
    public long ipa() {
        return ipa;
    }

    /** First input address of the block this translation covers. */
    public long inputBase() {
        return inputBase;
    }

    /** log2 of the bytes this translation covers. */
    public int sizeLg2() {
        return sizeLg2;
    }

    /**
     * Bytes from the input address to the end of the translated block ({@link Translation#contiguousBytes()}):
     * they all translate linearly with the same permissions.
     */
    public long contiguousBytes() {
        return (1L << sizeLg2) - (inputAddress & ((1L << sizeLg2) - 1));
    }

    /** The output address of {@link #inputBase()}. */
    public long outputBase() {
        return outputAddress & -(1L << sizeLg2);
    }

    /** {@link #STAGE_1} and/or {@link #STAGE_2}: the stages that translated. */
    public int stages() {
        return outcome == Outcome.OK ? stages : 0;
    }

    /** Level of the leaf: stage 1's when stage 1 took part, else stage 2's. */
    public int level() {
        return (stages() & STAGE_1) != 0 ? s1Level : s2Level;
    }

    /** Arm level of the stage-1 leaf, or -1. */
    public int s1Level() {
        return (stages() & STAGE_1) != 0 ? s1Level : -1;
    }

    /** Arm level of the stage-2 leaf (of the final stage-2 translation, not of table fetches), or -1. */
    public int s2Level() {
        return (stages() & STAGE_2) != 0 ? s2Level : -1;
    }

    /** log2 of the bytes the stage-1 leaf covers, or 0 without stage 1. */
    public int s1SizeLg2() {
        return (stages() & STAGE_1) != 0 ? s1SizeLg2 : 0;
    }

    /** log2 of the bytes the final stage-2 leaf covers, or 0 without stage 2. */
    public int s2SizeLg2() {
        return (stages() & STAGE_2) != 0 ? s2SizeLg2 : 0;
    }

    /** {@link #PRIV_READ} ... {@link #UNPRIV_EXEC}: what the translation allows without another walk. */
    public int permissions() {
        return permissions;
    }

    /**
     * For a successful walk that used stage 1: what the stage-1 leaf alone allows (same bits as
     * {@link #permissions()}), so a cache of nested translations can tell which stage forbids an access; 0
     * without stage 1.
     */
    public int stage1Permissions() {
        return (stages() & STAGE_1) != 0 ? s1Perms : 0;
    }

    /** Whether an access with these {@link Access} flags may use this translation without another walk. */
    public boolean permits(int access) {
        return (permissions & requiredPermission(access)) != 0;
    }

    /** A writable-clean leaf limits the write permission: a write would succeed, but only by walking again. */
    public boolean writableClean() {
        return writableClean;
    }

    /** Whether the stage-1 leaf is global (nG = 0); true when stage 1 did not take part (VMID-tagged only). */
    public boolean global() {
        return (stages() & STAGE_1) == 0 || global;
    }

    /** The context's ASID when stage 1 took part, else -1. */
    public int asid() {
        return (stages() & STAGE_1) != 0 ? asid : -1;
    }

    /** The context's VMID when stage 2 took part, else -1. */
    public int vmid() {
        return (stages() & STAGE_2) != 0 ? vmid : -1;
    }

    /** The stage-1 leaf descriptor as the walk left it (after any hardware update). */
    public long s1Descriptor() {
        return (stages() & STAGE_1) != 0 ? s1Descriptor : 0;
    }

    /** The stage-2 leaf descriptor of the final translation, as the walk left it. */
    public long s2Descriptor() {
        return (stages() & STAGE_2) != 0 ? s2Descriptor : 0;
    }

    /** Stage-1 AttrIndx[2:0]. */
    public int s1AttrIndx() {
        return (int) (s1Descriptor() >>> Vmsa.ATTR_SHIFT) & 7;
    }

    /** The MAIR attribute byte stage-1 AttrIndx selects. */
    public int s1MemoryAttributes() {
        return (stages() & STAGE_1) != 0 ? (int) (s1Mair >>> (8 * s1AttrIndx())) & 0xFF : 0;
    }

    /** Stage-1 SH[1:0]. */
    public int s1Shareability() {
        return (int) (s1Descriptor() >>> Vmsa.SH_SHIFT) & 3;
    }

    /** Stage-2 MemAttr[3:0]. */
    public int s2MemAttr() {
        return (int) (s2Descriptor() >>> Vmsa.ATTR_SHIFT) & 0xF;
    }

    /** Stage-2 SH[1:0]. */
    public int s2Shareability() {
        return (int) (s2Descriptor() >>> Vmsa.SH_SHIFT) & 3;
    }

    // ---------------------------------------------------------------- fault

    /** The fault, or null when the walk did not fault. */
    public Fault fault() {
        return outcome == Outcome.FAULT ? fault : null;
    }

    /** The lookup level the fault arose at (0 for checks before the first lookup). */
    public int faultLevel() {
        return faultLevel;
    }

    /** Event S2: the fault arose in stage 2. */
    public boolean faultS2() {
        return faultS2;
    }

    /** Event CLASS: {@link #CLASS_TT} or {@link #CLASS_IN}. */
    public int faultClass() {
        return faultClass;
    }

    /** Event IPA: for a stage-2 fault, the IPA being translated; else 0. */
    public long faultIpa() {
        return faultIpa;
    }

    /** Event FetchAddr: for F_WALK_EABT, the physical address of the descriptor access that aborted. */
    public long fetchAddress() {
        return fetchAddress;
    }

    /** Event TTRnW: the translation-table access was a read (false: a hardware update wrote it). */
    public boolean ttRnW() {
        return ttRnW;
    }

    // ---------------------------------------------------------------- bad configuration

    /** 1 for an invalid stage-1 context (C_BAD_CD), 2 for stage 2 (C_BAD_STE), 0 otherwise. */
    public int badConfigStage() {
        return outcome == Outcome.BAD_CONFIG ? badConfigStage : 0;
    }

    /** Why the configuration is invalid, or null. */
    public String badConfigReason() {
        return outcome == Outcome.BAD_CONFIG ? badConfigReason : null;
    }

    /** A description for logs and test failures (allocates). */
    @Override
    public String toString() {
        String req = Bits.hex(inputAddress) + (Access.isWrite(access) ? " W" : " R")
                + (Access.isPrivileged(access) ? "P" : "U") + (Access.isInstruction(access) ? "I" : "D");
        String stats = " reads=" + reads + " updates=" + updates;
        return switch (outcome) {
            case OK -> "OK " + req + " -> " + Bits.hex(outputAddress) + " ipa=" + Bits.hex(ipa) + " block "
                    + Bits.hex(inputBase) + "/2^" + sizeLg2 + " s1L" + s1Level() + " s2L" + s2Level() + " perms="
                    + permString(permissions) + (writableClean ? " clean" : "") + (global() ? " global" : " nG")
                    + stats;
            case FAULT -> "FAULT " + fault + " " + req + " level " + faultLevel + (faultS2 ? " S2" : " S1")
                    + " class=" + (faultClass == CLASS_TT ? "TT" : faultClass == CLASS_IN ? "IN" : "CD")
                    + (faultS2 ? " ipa=" + Bits.hex(faultIpa) : "")
                    + (fault == Fault.WALK_EABT ? " fetch=" + Bits.hex(fetchAddress) : "")
                    + (faultClass == CLASS_TT ? (ttRnW ? " TTRnW=1" : " TTRnW=0") : "") + stats;
            case BAD_CONFIG -> "BAD_CONFIG " + (badConfigStage == 1 ? "C_BAD_CD" : "C_BAD_STE") + " " + req + ": "
                    + badConfigReason + stats;
        };
    }

    /** "rwx/r--" style: privileged, then unprivileged. */
    public static String permString(int perms) {
        return "" + ((perms & PRIV_READ) != 0 ? 'r' : '-') + ((perms & PRIV_WRITE) != 0 ? 'w' : '-')
                + ((perms & PRIV_EXEC) != 0 ? 'x' : '-') + '/' + ((perms & UNPRIV_READ) != 0 ? 'r' : '-')
                + ((perms & UNPRIV_WRITE) != 0 ? 'w' : '-') + ((perms & UNPRIV_EXEC) != 0 ? 'x' : '-');
    }
}
