package org.iommuemu.device.smmuv3.walk;

import static org.iommuemu.device.smmuv3.walk.Vmsa.AF;
import static org.iommuemu.device.smmuv3.walk.Vmsa.AP1;
import static org.iommuemu.device.smmuv3.walk.Vmsa.AP2;
import static org.iommuemu.device.smmuv3.walk.Vmsa.AP_TABLE_NO_EL0;
import static org.iommuemu.device.smmuv3.walk.Vmsa.AP_TABLE_RO;
import static org.iommuemu.device.smmuv3.walk.Vmsa.DBM;
import static org.iommuemu.device.smmuv3.walk.Vmsa.HIERARCHICAL_BITS;
import static org.iommuemu.device.smmuv3.walk.Vmsa.NG;
import static org.iommuemu.device.smmuv3.walk.Vmsa.OA_47_0;
import static org.iommuemu.device.smmuv3.walk.Vmsa.OA_HI_SHIFT;
import static org.iommuemu.device.smmuv3.walk.Vmsa.PXN;
import static org.iommuemu.device.smmuv3.walk.Vmsa.PXN_TABLE;
import static org.iommuemu.device.smmuv3.walk.Vmsa.TYPE_TABLE_OR_PAGE;
import static org.iommuemu.device.smmuv3.walk.Vmsa.UXN;
import static org.iommuemu.device.smmuv3.walk.Vmsa.UXN_TABLE;
import static org.iommuemu.device.smmuv3.walk.WalkResult.CLASS_IN;
import static org.iommuemu.device.smmuv3.walk.WalkResult.CLASS_TT;
import static org.iommuemu.device.smmuv3.walk.WalkResult.PRIV_EXEC;
import static org.iommuemu.device.smmuv3.walk.WalkResult.PRIV_READ;
import static org.iommuemu.device.smmuv3.walk.WalkResult.PRIV_WRITE;
import static org.iommuemu.device.smmuv3.walk.WalkResult.READ_BITS;
import static org.iommuemu.device.smmuv3.walk.WalkResult.UNPRIV_EXEC;
import static org.iommuemu.device.smmuv3.walk.WalkResult.UNPRIV_READ;
import static org.iommuemu.device.smmuv3.walk.WalkResult.UNPRIV_WRITE;
import static org.iommuemu.device.smmuv3.walk.WalkResult.WRITE_BITS;

import java.util.Objects;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.smmuv3.walk.WalkResult.Fault;

/**
 * The SMMUv3 hardware translation-table walker: VMSAv8-64 long-descriptor walks for stage 1, stage 2 and
 * nested (stage 1 then stage 2) translation, with hardware access-flag and dirty-state updates (spec
 * PGTABLE.md §1; SMMUV3.md §5, §6, §8). It implements what the hardware does with the tables it finds,
 * independently of the driver-side page-table code, and returns architected outcomes in a caller-owned
 * {@link WalkResult}: it never throws for anything in guest memory or in a context.
 *
 * <h2>Walks</h2>
 * <ul>
 * <li><b>Stage 1</b> ({@link #translateStage1}): VA[55] selects the TTB0 or TTB1 half; the half's TxSZ and
 *     granule give the start level ({@code 4 - ceil((IA - G) / (G - 3))}) and index bits. Table descriptors
 *     pass on APTable, PXNTable and UXNTable (unless HADx) to everything below them. Leaf permissions: AP[2:1]
 *     with privileged read always allowed, privileged write when AP[2] = 0, unprivileged read when AP[1] = 1,
 *     unprivileged write when AP[2:1] = 01; APTable[1] removes write, APTable[0] removes unprivileged access.
 *     Execute: unprivileged unless UXN (or UXNTable, or WXN and unprivileged-writable); privileged unless PXN
 *     (or PXNTable, or WXN and writable, or unprivileged-writable: memory EL0 can write is never executable
 *     at EL1). An instruction fetch needs execute permission only, a data read read permission, a write write
 *     permission (an instruction-marked write is checked as a data write).
 * <li><b>Stage 2</b> ({@link #translateStage2}): S2SL0 and the granule give the start level; the first lookup
 *     may span up to 16 concatenated tables, indexed by all the IPA bits above the next level. S2AP[0] allows
 *     reads, S2AP[1] writes; XN (bit 54) forbids instruction fetches (with FEAT_XNX, XN[1:0] at bits [54:53]
 *     separate privileged and unprivileged). An instruction fetch needs no read permission.
 * <li><b>Nested</b> ({@link #translateNested}): every stage-1 table address (the TTB and each next-level
 *     address) is an IPA that stage 2 translates as a data read before the descriptor is read, and a stage-1
 *     hardware update translates it again as a write; a stage-2 fault there is reported with S2 = 1 and
 *     CLASS = TT. With S2PTW, a stage-1 table access that stage 2 maps as Device memory (MemAttr 0b00xx; with
 *     S2FWB MemAttr[2] = 0) is a stage-2 permission fault. The stage-1 output IPA then goes through stage 2 with
 *     the access's own kind (CLASS = IN); the permissions are those both stages allow.
 * </ul>
 *
 * <h2>Hardware updates (HTTU)</h2>
 * A leaf with AF = 0: with HA the walker sets AF; otherwise with AFFD it is treated as accessed (nothing is
 * written); otherwise F_ACCESS. A write through a writable-clean leaf (HD, and DBM = 1 with AP[2] = 1 in
 * stage 1 / S2AP[1] = 0 in stage 2) makes it writable-dirty (AP[2] cleared / S2AP[1] set); a read leaves it
 * clean. Both happen only for an access that is otherwise allowed (no update on a faulting access) and
 * together in one 64-bit compare-and-swap of the descriptor. If the descriptor changed meanwhile, the walker
 * re-evaluates the value it found from the same lookup (which may now be invalid: a translation fault, no
 * update), up to {@value #MAX_UPDATE_ATTEMPTS} attempts; a walker that keeps losing the race reports F_ACCESS
 * (when AF could not be set) or F_PERMISSION (when only the dirty state could not). HD takes effect only with
 * HA. Only leaves are updated.
 *
 * <h2>Fault precedence</h2>
 * Within one stage, in this order (the first that applies is reported):
 * <ol>
 * <li>the configuration is invalid: BAD_CONFIG (nested: the STE's stage 2 is checked before the CD's stage 1);
 * <li>stage 2 only: an input above the SMMU's IAS: F_ADDR_SIZE reported as a stage-1 fault (SMMUv3 §3.4);
 * <li>the input is outside the configured range (stage 1: a disabled half, EPDx = 1, or bits above TxSZ that
 *     are not all equal to VA[55], the top byte excepted with TBI; stage 2: an IPA of {@code 64 - S2T0SZ} bits
 *     or more): F_TRANSLATION at level 0;
 * <li>the TTB (S2TTB) has bits at or above the output size: F_ADDR_SIZE at level 0;
 * <li>for each lookup from the start level: (nested stage 1) the stage-2 translation of the descriptor IPA,
 *     with its own precedence, reported as CLASS = TT; an external abort reading the descriptor:
 *     F_WALK_EABT with FetchAddr; an invalid descriptor (bit 0 clear, type 0b01 at level 3, a block at a level
 *     without blocks): F_TRANSLATION at that level; a next-level table address at or above the output size:
 *     F_ADDR_SIZE at that level;
 * <li>at the leaf: an output address at or above the output size: F_ADDR_SIZE; AF = 0 without HA or AFFD:
 *     F_ACCESS (before permission, as the SMMUv3 spec says for stage 2 and QEMU does for both); the permission
 *     check: F_PERMISSION; then (stage 2, table accesses) S2PTW and Device memory: F_PERMISSION;
 * <li>the hardware update: (nested stage 1) the stage-2 translation of the descriptor IPA for writing, CLASS
 *     = TT with TTRnW = 0; an external abort on the compare-and-swap: F_WALK_EABT with TTRnW = 0.
 * </ol>
 * A nested walk reports stage-1 faults (S2 = 0) before any fault of the final stage-2 translation (S2 = 1,
 * CLASS = IN, IPA = the stage-1 output).
 *
 * <h2>Not modelled</h2>
 * The contiguous hint (a leaf covers its own entry's span; the bit is visible in the reported descriptor), PAN,
 * 52-bit VAs and FEAT_LPA2, small translation tables (STT), AArch32 and big-endian tables, hardware updates of
 * table descriptors, and stage-1 regimes other than EL1&amp;0 (STRW = EL2 would change AP[1] and nG).
 *
 * <h2>Performance</h2>
 * A walk allocates nothing (no boxing, no exceptions on fault paths; the only exception is the
 * {@link MemoryAccessException} the memory itself throws for an external abort): contexts carry precomputed
 * geometry, and results go into the caller's holder. The walker holds no mutable state and is thread-safe.
 * There is no caching inside a walk: a nested walk translates each stage-1 table address through stage 2
 * from scratch, which is what {@link WalkResult#reads()} counts; caches belong in the {@link DescriptorReader}
 * and the device's TLBs.
 */
public final class TableWalker {

    /** How many compare-and-swap attempts a hardware update makes before giving up on a contended descriptor. */
    public static final int MAX_UPDATE_ATTEMPTS = 64;

    private static final long FAULTED = -1L;
    private static final long VA_BIT55 = 1L << 55;

    private final DescriptorReader reader;

    /** A walker that reads and updates descriptors through {@code reader}. */
    public TableWalker(DescriptorReader reader) {
        this.reader = Objects.requireNonNull(reader, "reader");
    }

    public DescriptorReader reader() {
        return reader;
    }

    // ---------------------------------------------------------------- entry points

    /**
     * Translates {@code va} through stage 1 only (STE.Config = S1 translate, S2 bypass): the output is a
     * physical address.
     *
     * @param access {@link Access} flags
     * @return {@code out}
     */
    public WalkResult translateStage1(Stage1Context s1, long va, int access, WalkResult out) {
        out.begin(va, access);
        if (s1.invalidReason != null) {
            return out.badConfig(1, s1.invalidReason);
        }
        long oa = walkStage1(s1, null, va, WalkResult.requiredPermission(access), out);
        if (oa != FAULTED) {
            out.stages = WalkResult.STAGE_1;
            out.asid = s1.asid();
            out.ipa = 0;
            finish(out, oa, out.s1SizeLg2, out.s1Perms, out.s1FullPerms);
        }
        return out;
    }

    /**
     * Translates {@code ipa} through stage 2 only (STE.Config = S1 bypass, S2 translate). An input above the
     * SMMU's IAS ({@link Stage2Context#iasBits()}) is a stage-1 F_ADDR_SIZE (SMMUv3 §3.4).
     *
     * @param access {@link Access} flags
     * @return {@code out}
     */
    public WalkResult translateStage2(Stage2Context s2, long ipa, int access, WalkResult out) {
        out.begin(ipa, access);
        if (s2.invalidReason != null) {
            return out.badConfig(2, s2.invalidReason);
        }
        if ((ipa >>> s2.iasBits()) != 0) {
            out.fail(Fault.ADDR_SIZE, 0, false, CLASS_IN, 0);
            return out;
        }
        long pa = walkStage2(s2, ipa, WalkResult.requiredPermission(access), CLASS_IN, out);
        if (pa != FAULTED) {
            out.stages = WalkResult.STAGE_2;
            out.vmid = s2.vmid();
            out.ipa = ipa;
            finish(out, pa, out.s2SizeLg2, out.s2Perms, out.s2FullPerms);
        }
        return out;
    }

    /**
     * Translates {@code va} through stage 1 and then stage 2 (STE.Config = nested). Stage-1 table addresses and
     * the stage-1 output are IPAs. The context's stage-1 output size should already be capped by the SMMU's IAS.
     *
     * @param access {@link Access} flags
     * @return {@code out}
     */
    public WalkResult translateNested(Stage1Context s1, Stage2Context s2, long va, int access, WalkResult out) {
        out.begin(va, access);
        if (s2.invalidReason != null) {
            return out.badConfig(2, s2.invalidReason);
        }
        if (s1.invalidReason != null) {
            return out.badConfig(1, s1.invalidReason);
        }
        int need = WalkResult.requiredPermission(access);
        long ipa = walkStage1(s1, s2, va, need, out);
        if (ipa == FAULTED) {
            return out;
        }
        long pa = walkStage2(s2, ipa, need, CLASS_IN, out);
        if (pa != FAULTED) {
            out.stages = WalkResult.STAGE_1 | WalkResult.STAGE_2;
            out.asid = s1.asid();
            out.vmid = s2.vmid();
            out.ipa = ipa;
            finish(out, pa, Math.min(out.s1SizeLg2, out.s2SizeLg2), out.s1Perms & out.s2Perms,
                    out.s1FullPerms & out.s2FullPerms);
        }
        return out;
    }

    private static void finish(WalkResult out, long pa, int sizeLg2, int perms, int fullPerms) {
        out.outcome = WalkResult.Outcome.OK;
        out.outputAddress = pa;
        out.sizeLg2 = sizeLg2;
        out.inputBase = out.inputAddress & -(1L << sizeLg2);
        out.permissions = perms;
        out.writableClean = (fullPerms & ~perms & WRITE_BITS) != 0;
    }

    // ---------------------------------------------------------------- stage 1

    /**
     * Walks stage 1 for {@code va}; with {@code s2} non-null, every table access first goes through stage 2.
     * Returns the output address (PA, or IPA when nested) and fills the stage-1 leaf fields of {@code out}, or
     * returns {@link #FAULTED} with the fault recorded.
     */
    private long walkStage1(Stage1Context c, Stage2Context s2, long va, int need, WalkResult out) {
        boolean upper = (va & VA_BIT55) != 0;
        WalkGeometry h = upper ? c.half1 : c.half0;
        if (!h.enabled) {
            return out.fail(Fault.TRANSLATION, 0, false, CLASS_IN, 0);
        }
        // With TBI the top byte takes no part: bits [63:56] are taken as copies of bit 55.
        long checked = (upper ? c.tbi1() : c.tbi0()) ? (va << 8) >> 8 : va;
        if ((checked >> h.ia) != (upper ? -1L : 0L)) {
            return out.fail(Fault.TRANSLATION, 0, false, CLASS_IN, 0);
        }
        if ((h.ttb >>> h.oas) != 0) {
            return out.fail(Fault.ADDR_SIZE, 0, false, CLASS_IN, 0);
        }
        final int g = h.granuleLg2;
        final int stride = h.stride;
        int level = h.startLevel;
        int bits = h.startBits;
        long table = h.ttb;
        long inherited = 0;
        long desc = 0;
        long slot = 0;
        long slotPa = 0;
        boolean reevaluate = false;
        int attempts = 0;
        while (true) {
            int shift = g + (3 - level) * stride;
            if (!reevaluate) {
                slot = table + (((va >>> shift) & ((1L << bits) - 1)) << 3);
                slotPa = slot;
                if (s2 != null) {
                    slotPa = walkStage2(s2, slot, PRIV_READ, CLASS_TT, out);
                    if (slotPa == FAULTED) {
                        return FAULTED;
                    }
                }
                try {
                    desc = reader.read(slotPa, 1, level);
                } catch (MemoryAccessException e) {
                    return abort(out, slotPa, level, false, CLASS_TT, 0, true);
                }
                out.reads++;
            }
            reevaluate = false;
            int type = (int) desc & 3;
            if ((type & 1) == 0) {
                return out.fail(Fault.TRANSLATION, level, false, CLASS_IN, 0);
            }
            if (level < 3 && type == TYPE_TABLE_OR_PAGE) {
                long next = (desc & h.tableMask) | ((desc & h.oaHi) << OA_HI_SHIFT);
                if ((next >>> h.oas) != 0) {
                    return out.fail(Fault.ADDR_SIZE, level, false, CLASS_IN, 0);
                }
                if (!h.hierarchicalDisabled) {
                    inherited |= desc & HIERARCHICAL_BITS;
                }
                table = next;
                level++;
                bits = stride;
                continue;
            }
            if (level == 3 ? type != TYPE_TABLE_OR_PAGE : (h.blockLevels & (1 << level)) == 0) {
                return out.fail(Fault.TRANSLATION, level, false, CLASS_IN, 0);
            }
            long oaBase = (desc & OA_47_0 & -(1L << shift)) | ((desc & h.oaHi) << OA_HI_SHIFT);
            if ((oaBase >>> h.oas) != 0) {
                return out.fail(Fault.ADDR_SIZE, level, false, CLASS_IN, 0);
            }
            boolean setAf = false;
            if ((desc & AF) == 0) {
                if (c.ha()) {
                    setAf = true;
                } else if (!c.affd()) {
                    return out.fail(Fault.ACCESS, level, false, CLASS_IN, 0);
                }
            }
            int perms = stage1Permissions(desc, inherited, c);
            if ((perms & need) == 0) {
                return out.fail(Fault.PERMISSION, level, false, CLASS_IN, 0);
            }
            boolean clean = c.hdEffective && (desc & (DBM | AP2)) == (DBM | AP2);
            boolean markDirty = clean && (need & WRITE_BITS) != 0;
            if (setAf || markDirty) {
                long update = (desc | (setAf ? AF : 0)) & ~(markDirty ? AP2 : 0);
                long target = slotPa;
                if (s2 != null) {
                    target = walkStage2(s2, slot, PRIV_WRITE, CLASS_TT, out);
                    if (target == FAULTED) {
                        return FAULTED;
                    }
                }
                long witness;
                try {
                    witness = reader.compareAndExchange(target, desc, update, 1, level);
                } catch (MemoryAccessException e) {
                    return abort(out, target, level, false, CLASS_TT, 0, false);
                }
                out.updates++;
                if (witness != desc) {
                    if (++attempts >= MAX_UPDATE_ATTEMPTS) {
                        return out.fail(setAf ? Fault.ACCESS : Fault.PERMISSION, level, false, CLASS_IN, 0);
                    }
                    desc = witness;
                    slotPa = target;
                    reevaluate = true;
                    continue;
                }
                desc = update;
                clean &= !markDirty;
            }
            out.s1Level = level;
            out.s1SizeLg2 = shift;
            out.s1Descriptor = desc;
            out.s1FullPerms = perms;
            out.s1Perms = clean ? perms & ~WRITE_BITS : perms;
            out.global = (desc & NG) == 0;
            out.s1Mair = c.mair();
            return oaBase | (va & ((1L << shift) - 1));
        }
    }

    /**
     * Stage-1 permissions of a leaf under the table attributes {@code inherited} (Arm ARM VMSAv8-64 stage 1 for
     * the EL1&0 regime): a writable-clean leaf (HD and DBM) counts as writable.
     */
    private static int stage1Permissions(long desc, long inherited, Stage1Context c) {
        boolean readOnly = ((desc & AP2) != 0 && !(c.hdEffective && (desc & DBM) != 0))
                || (inherited & AP_TABLE_RO) != 0;
        boolean el0 = (desc & AP1) != 0 && (inherited & AP_TABLE_NO_EL0) == 0;
        boolean privWrite = !readOnly;
        boolean unprivWrite = el0 && !readOnly;
        boolean uxn = (desc & UXN) != 0 || (inherited & UXN_TABLE) != 0 || (unprivWrite && c.wxn());
        boolean pxn = (desc & PXN) != 0 || (inherited & PXN_TABLE) != 0 || (privWrite && c.wxn()) || unprivWrite;
        return PRIV_READ | (privWrite ? PRIV_WRITE : 0) | (pxn ? 0 : PRIV_EXEC) | (el0 ? UNPRIV_READ : 0)
                | (unprivWrite ? UNPRIV_WRITE : 0) | (uxn ? 0 : UNPRIV_EXEC);
    }

    // ---------------------------------------------------------------- stage 2

    /**
     * Walks stage 2 for {@code ipa}, needing the permission bit {@code need}. {@code clazz} is
     * {@link WalkResult#CLASS_TT} for the stage-1 table accesses of a nested walk (S2PTW applies; TTRnW follows
     * {@code need}) and {@link WalkResult#CLASS_IN} for the final translation, whose leaf fills the stage-2 fields
     * of {@code out}. Returns the physical address or {@link #FAULTED}.
     */
    private long walkStage2(Stage2Context c, long ipa, int need, int clazz, WalkResult out) {
        WalkGeometry geo = c.geometry;
        boolean readAccess = (need & WRITE_BITS) == 0;
        if ((ipa >>> geo.ia) != 0) {
            return s2Fail(out, Fault.TRANSLATION, 0, clazz, ipa, readAccess);
        }
        if ((geo.ttb >>> geo.oas) != 0) {
            return s2Fail(out, Fault.ADDR_SIZE, 0, clazz, ipa, readAccess);
        }
        final int g = geo.granuleLg2;
        final int stride = geo.stride;
        int level = geo.startLevel;
        int bits = geo.startBits;
        long table = geo.ttb;
        long desc = 0;
        long slot = 0;
        boolean reevaluate = false;
        int attempts = 0;
        while (true) {
            int shift = g + (3 - level) * stride;
            if (!reevaluate) {
                slot = table + (((ipa >>> shift) & ((1L << bits) - 1)) << 3);
                try {
                    desc = reader.read(slot, 2, level);
                } catch (MemoryAccessException e) {
                    return abort(out, slot, level, true, clazz, ipa, readAccess);
                }
                out.reads++;
            }
            reevaluate = false;
            int type = (int) desc & 3;
            if ((type & 1) == 0) {
                return s2Fail(out, Fault.TRANSLATION, level, clazz, ipa, readAccess);
            }
            if (level < 3 && type == TYPE_TABLE_OR_PAGE) {
                long next = (desc & geo.tableMask) | ((desc & geo.oaHi) << OA_HI_SHIFT);
                if ((next >>> geo.oas) != 0) {
                    return s2Fail(out, Fault.ADDR_SIZE, level, clazz, ipa, readAccess);
                }
                table = next;
                level++;
                bits = stride;
                continue;
            }
            if (level == 3 ? type != TYPE_TABLE_OR_PAGE : (geo.blockLevels & (1 << level)) == 0) {
                return s2Fail(out, Fault.TRANSLATION, level, clazz, ipa, readAccess);
            }
            long oaBase = (desc & OA_47_0 & -(1L << shift)) | ((desc & geo.oaHi) << OA_HI_SHIFT);
            if ((oaBase >>> geo.oas) != 0) {
                return s2Fail(out, Fault.ADDR_SIZE, level, clazz, ipa, readAccess);
            }
            boolean setAf = false;
            if ((desc & AF) == 0) {
                if (c.ha()) {
                    setAf = true;
                } else if (!c.affd()) {
                    return s2Fail(out, Fault.ACCESS, level, clazz, ipa, readAccess);
                }
            }
            int perms = stage2Permissions(desc, c);
            if ((perms & need) == 0) {
                return s2Fail(out, Fault.PERMISSION, level, clazz, ipa, readAccess);
            }
            if (clazz == CLASS_TT && c.ptw() && isDevice(desc, c.fwb())) {
                return s2Fail(out, Fault.PERMISSION, level, clazz, ipa, readAccess);
            }
            // Stage-2 dirty state lives in S2AP[1]: writable-clean is DBM with S2AP[1] = 0.
            boolean clean = c.hdEffective && (desc & (DBM | AP2)) == DBM;
            boolean markDirty = clean && !readAccess;
            if (setAf || markDirty) {
                long update = desc | (setAf ? AF : 0) | (markDirty ? AP2 : 0);
                long witness;
                try {
                    witness = reader.compareAndExchange(slot, desc, update, 2, level);
                } catch (MemoryAccessException e) {
                    return abort(out, slot, level, true, clazz, ipa, false);
                }
                out.updates++;
                if (witness != desc) {
                    if (++attempts >= MAX_UPDATE_ATTEMPTS) {
                        return s2Fail(out, setAf ? Fault.ACCESS : Fault.PERMISSION, level, clazz, ipa, readAccess);
                    }
                    desc = witness;
                    reevaluate = true;
                    continue;
                }
                desc = update;
                clean &= !markDirty;
            }
            if (clazz == CLASS_IN) {
                out.s2Level = level;
                out.s2SizeLg2 = shift;
                out.s2Descriptor = desc;
                out.s2FullPerms = perms;
                out.s2Perms = clean ? perms & ~WRITE_BITS : perms;
            }
            return oaBase | (ipa & ((1L << shift) - 1));
        }
    }

    /**
     * Stage-2 permissions of a leaf: S2AP[0] read and S2AP[1] write for privileged and unprivileged alike (a
     * writable-clean leaf counts as writable), execute unless XN; with FEAT_XNX, XN[1] (bit 54) is the
     * unprivileged execute-never and XN[1] XOR XN[0] the privileged one.
     */
    private static int stage2Permissions(long desc, Stage2Context c) {
        boolean read = (desc & AP1) != 0;
        boolean write = (desc & AP2) != 0 || (c.hdEffective && (desc & DBM) != 0);
        boolean uxn = (desc & UXN) != 0;
        boolean pxn = c.xnx() ? uxn ^ ((desc & PXN) != 0) : uxn;
        return (read ? READ_BITS : 0) | (write ? WRITE_BITS : 0) | (pxn ? 0 : PRIV_EXEC) | (uxn ? 0 : UNPRIV_EXEC);
    }

    /** Stage-2 MemAttr names Device memory: MemAttr[3:2] = 0b00, or with S2FWB MemAttr[2] = 0. */
    private static boolean isDevice(long desc, boolean fwb) {
        long memAttr = (desc >>> Vmsa.ATTR_SHIFT) & 0xF;
        return fwb ? (memAttr & 0b0100) == 0 : (memAttr & 0b1100) == 0;
    }

    // ---------------------------------------------------------------- fault helpers

    private static long s2Fail(WalkResult out, Fault f, int level, int clazz, long ipa, boolean readAccess) {
        out.fail(f, level, true, clazz, ipa);
        out.ttRnW = readAccess;
        return FAULTED;
    }

    private static long abort(WalkResult out, long pa, int level, boolean s2, int clazz, long ipa, boolean read) {
        out.fail(Fault.WALK_EABT, level, s2, clazz, ipa);
        out.fetchAddress = pa;
        out.ttRnW = read;
        return FAULTED;
    }
}
