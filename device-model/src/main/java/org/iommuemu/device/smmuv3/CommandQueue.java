package org.iommuemu.device.smmuv3;

import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.regs.Field;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.regs.RegisterFile;
import org.iommuemu.device.xlate.ConfigCache;
import org.iommuemu.device.xlate.Iotlb;
import org.iommuemu.device.xlate.Stage;
import org.iommuemu.device.xlate.TranslationCaches;
import org.iommuemu.device.xlate.XlateStats;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The command queue (spec §4, §7). Commands are consumed when CMDQ_PROD moves (and when the queue is enabled,
 * or a command error is acknowledged), in order, each read from guest memory; by the time CMDQ_CONS moves past a
 * command its effect is complete, so a CMD_SYNC completes as soon as it is reached.
 *
 * <p>Errors stop the queue at the failing command: CMDQ_CONS points at it with ERR set (CERROR_ILL for an unknown
 * or illegal command, CERROR_ABT when reading it aborts), GERROR.CMDQ_ERR toggles and its interrupt fires.
 * Consumption resumes, from CMDQ_CONS, once software acknowledges through GERRORN (Linux first overwrites the bad
 * slot with a CMD_SYNC).
 *
 * <p>Invalidations: CFGI_* drop configuration-cache entries (CFGI_STE also the stream's CDs, as QEMU does);
 * TLBI_* drop IOTLB and walk-cache entries (Leaf=1 spares the walk cache; a TTL level hint narrows IOTLB
 * invalidation by address). TLBI_S2_IPA drops stage-2 entries only: combined nested entries stay, as the
 * architecture allows, until a stage-1 invalidation of their VMID, so a driver that forgets it sees them. Commands the SMMU does not implement ({@link Command#check}) are CERROR_ILL;
 * PREFETCH_*, RESUME and STALL_TERM do nothing (no prefetching, no stall model). Called with the register file's
 * lock held.
 *
 * <p>Fault injection ({@link InstanceFaults}): COMMAND_DROP consumes a command without decoding or carrying it out
 * (CONS moves past it); SYNC_NEVER_COMPLETES stops the queue at a CMD_SYNC (CONS stays on it, no MSI), until a
 * later doorbell finds the fault no longer firing; IGNORE_IOTLB_INVALIDATION makes a TLBI_* count as executed and
 * drop nothing.
 */
final class CommandQueue {
    private static final Logger log = LoggerFactory.getLogger(CommandQueue.class);

    private final PhysicalMemory memory;
    private final XlateStats stats;
    private final Signals signals;
    private final TranslationCaches caches;
    private final ConfigCache<SmmuConfig> configs;
    private final Command.Features features;
    private final int maxLog2;
    private final Field enabled;
    private final Register base;
    private final Register prod;
    private final Register cons;
    private final InstanceFaults faults;

    CommandQueue(PhysicalMemory memory, XlateStats stats, Signals signals, TranslationCaches caches,
            ConfigCache<SmmuConfig> configs, Command.Features features, RegisterFile f, int maxLog2,
            InstanceFaults faults) {
        this.faults = faults;
        this.memory = memory;
        this.stats = stats;
        this.signals = signals;
        this.caches = caches;
        this.configs = configs;
        this.features = features;
        this.maxLog2 = maxLog2;
        this.enabled = f.register("CR0ACK").fieldHandle("CMDQEN");
        this.base = f.register("CMDQ_BASE");
        this.prod = f.register("CMDQ_PROD");
        this.cons = f.register("CMDQ_CONS");
    }

    /** Consumes commands from CMDQ_CONS up to CMDQ_PROD, unless disabled or stopped by an unacknowledged error. */
    void process() {
        if (!enabled.isSet() || signals.active(Gerror.CMDQ_ERR)) {
            return;
        }
        long b = base.value();
        int log2 = QueueBase.effectiveLog2Size(b, maxLog2);
        int mask = (int) ((2L << log2) - 1); // index and wrap bit
        int p = (int) prod.value() & mask;
        int consValue = (int) cons.value();
        int c = consValue & mask;
        int errorBits = consValue & ~mask; // ERR stays until the next error
        while (c != p) {
            long at = QueueBase.entryAddress(b, log2, c, QueuePointer.CMDQ_ENTRY_SIZE);
            long dw0;
            long dw1;
            try {
                dw0 = memory.read64(at);
                dw1 = memory.read64(at + 8);
            } catch (MemoryAccessException e) {
                stop(c, QueuePointer.CERROR_ABT, "reading the command at " + Long.toHexString(at) + " aborted");
                return;
            }
            stats.queueRead();
            int op = Command.opcode(dw0);
            if (op == CommandOp.CMD_SYNC && faults.fires(InjectionKind.SYNC_NEVER_COMPLETES, op, at, "CMDQ entry")) {
                return; // injected: the CMD_SYNC never completes; CONS stays on it, nothing after it is consumed
            }
            if (faults.fires(InjectionKind.COMMAND_DROP, op, at, "CMDQ entry")) {
                c = QueuePointer.inc(c, log2) & mask; // injected: consumed, never decoded nor carried out
                cons.set(Integer.toUnsignedLong(errorBits | c));
                continue;
            }
            String illegal = Command.check(dw0, dw1, features);
            if (illegal != null) {
                stop(c, QueuePointer.CERROR_ILL, illegal + " (opcode 0x" + Integer.toHexString(Command.opcode(dw0))
                        + " at index " + QueuePointer.index(c, log2) + ")");
                return;
            }
            execute(dw0, dw1, at);
            c = QueuePointer.inc(c, log2) & mask;
            cons.set(Integer.toUnsignedLong(errorBits | c));
        }
    }

    private void stop(int at, int cerror, String why) {
        log.debug("command queue stopped: {}", why);
        cons.set(Integer.toUnsignedLong(QueuePointer.withCmdqError(at, cerror)));
        signals.raise(Gerror.CMDQ_ERR);
    }

    private void execute(long dw0, long dw1, long at) {
        int op = Command.opcode(dw0);
        stats.command(op);
        if (isTlbi(op) && faults.fires(InjectionKind.IGNORE_IOTLB_INVALIDATION, op, at, "CMDQ entry")) {
            return; // injected: the stale-TLB bug, the invalidation is consumed and does nothing
        }
        switch (op) {
            case CommandOp.CFGI_STE -> configs.invalidateStream(Command.streamId(dw0));
            case CommandOp.CFGI_STE_RANGE -> configs.invalidateStreamRange(Command.streamId(dw0),
                    ConfigCache.steRangeLg2(Command.range(dw1)));
            case CommandOp.CFGI_CD -> configs.invalidate(Command.streamId(dw0), Command.substreamId(dw0));
            case CommandOp.CFGI_CD_ALL -> configs.invalidateSubstreams(Command.streamId(dw0));
            case CommandOp.TLBI_NH_ALL -> caches.invalidateVmid(Command.vmid(dw0), Stage.S1 | Stage.NESTED);
            case CommandOp.TLBI_NH_ASID -> caches.invalidateAsid(Command.vmid(dw0), Command.asid(dw0));
            case CommandOp.TLBI_NH_VA -> byVa(dw0, dw1, Command.asid(dw0));
            case CommandOp.TLBI_NH_VAA -> byVa(dw0, dw1, Iotlb.ANY_ASID);
            case CommandOp.TLBI_S12_VMALL -> caches.invalidateVmid(Command.vmid(dw0), Stage.ALL);
            case CommandOp.TLBI_S2_IPA -> {
                long address = Command.address(dw0, dw1);
                // strict: combined stage 1 + stage 2 entries stay until a stage-1 invalidation (TLBI_NH_ALL,
                // TLBI_S12_VMALL...), which the architecture allows and Linux issues after it for a nesting parent
                caches.invalidateIpa(Command.vmid(dw0), address, length(dw0, dw1, address), level(dw1),
                        Command.leaf(dw1), false);
            }
            case CommandOp.TLBI_NSNH_ALL -> caches.invalidateAll();
            case CommandOp.CMD_SYNC -> sync(dw0, dw1);
            default -> {
                // PREFETCH_CONFIG, PREFETCH_ADDR (no prefetching), RESUME and STALL_TERM (no stall model): nothing
                // to do. Everything else was refused by Command.check.
            }
        }
    }

    private static boolean isTlbi(int op) {
        return switch (op) {
            case CommandOp.TLBI_NH_ALL, CommandOp.TLBI_NH_ASID, CommandOp.TLBI_NH_VA, CommandOp.TLBI_NH_VAA,
                    CommandOp.TLBI_S12_VMALL, CommandOp.TLBI_S2_IPA, CommandOp.TLBI_NSNH_ALL,
                    CommandOp.TLBI_EL2_ALL, CommandOp.TLBI_EL2_ASID, CommandOp.TLBI_EL2_VA,
                    CommandOp.TLBI_EL2_VAA -> true;
            default -> false;
        };
    }

    private void byVa(long dw0, long dw1, int asid) {
        long address = Command.address(dw0, dw1);
        caches.invalidateVa(Command.vmid(dw0), asid, address, length(dw0, dw1, address), level(dw1),
                Command.leaf(dw1), Stage.S1 | Stage.NESTED);
    }

    /** Bytes a TLBI by address covers from {@code address}: one for a single address (TG=0), whatever its leaf size. */
    private static long length(long dw0, long dw1, long address) {
        long length = Command.tlbiRangeLength(Command.tg(dw1), Command.num(dw0), Command.scale(dw0));
        if (length == 0) {
            return 1;
        }
        return Long.compareUnsigned(address + length - 1, address) < 0 ? -address : length; // cut at 2^64
    }

    /** The level a TTL hint names (range TLBIs only), or any level. */
    private static int level(long dw1) {
        int tg = Command.tg(dw1);
        int ttl = Command.ttl(dw1);
        return tg != 0 && ttl != 0 && Encodings.granuleLg2ForRangeTg(tg) > 0 ? Iotlb.levelFromArmTtl(ttl)
                : Iotlb.ANY_LEVEL;
    }

    private void sync(long dw0, long dw1) {
        stats.sync();
        switch (Command.syncSignal(Command.syncCs(dw0), features)) {
            case MSI_WRITE -> signals.msi("cmd-sync", Command.syncMsiAddr(dw1), Command.syncMsiData(dw0));
            case WIRED_IRQ -> signals.wired("cmd-sync");
            case SEV -> signals.wired("sev");
            case NONE -> { }
        }
    }
}
