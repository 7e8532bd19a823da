package org.iommuemu.core.driver.smmuv3;

import java.lang.System.Logger.Level;
import java.util.List;
import org.iommuemu.core.concurrent.PollBudget;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.QueueBase;
import org.iommuemu.core.smmuv3.QueuePointer;
import org.iommuemu.core.smmuv3.SmmuRegs;

/**
 * The driver's side of the command queue ({@code spec/SMMUV3.md} §4, §7): commands are written at the shadow
 * PROD in queue memory, CMDQ_PROD is moved past them, and each batch of at most {@link #MAX_BATCH} commands
 * (fewer when the queue is smaller) is followed by one CMD_SYNC whose completion is waited for, so that when a
 * submission returns every command in it has taken effect.
 *
 * <p><b>Completion.</b> With {@link #msiPolling} the CMD_SYNC has CS=IRQ and its MSIAddr names a 4-byte word
 * the driver owns (not the CMD_SYNC's own queue slot, as Linux's {@code arm_smmu_cmdq_poll_until_msi} does), and
 * MSIData is a sequence number that changes with every CMD_SYNC: the sync is complete when the word holds it.
 * A CMD_SYNC whose MSI write was lost (GERROR.MSI_CMDQ_ABT_ERR) still completes: from the second poll on, CMDQ_CONS
 * reaching PROD counts as completion too. Otherwise the CMD_SYNC has CS=SEV (CS=NONE when the SMMU has no SEV) and the driver polls CMDQ_CONS until it
 * reaches PROD (under the queue lock nothing follows the CMD_SYNC, so CONS passing it means CONS = PROD).
 *
 * <p><b>Full queue.</b> Before writing a batch the driver waits, polling CMDQ_CONS, until the queue has room for
 * it and its CMD_SYNC.
 *
 * <p><b>Command errors.</b> When the SMMU stops at a bad command (CMDQ_CONS.ERR written, GERROR.CMDQ_ERR
 * toggled) the driver recovers as Linux's {@code arm_smmu_cmdq_skip_err}: it reports the command, replaces an
 * illegal one (CERROR_ILL, or anything unknown) by a CMD_SYNC, leaves an aborted fetch (CERROR_ABT) or an ATC
 * timeout (CERROR_ATC_INV_SYNC) in place to be retried, and acknowledges GERRORN.CMDQ_ERR, which restarts
 * consumption. The GERROR interrupt handler does this, and so does a waiter that sees no progress, so recovery
 * needs no interrupt.
 *
 * <p><b>Bounds.</b> Every wait is bounded by {@code queuePolls} polls (a CMD_SYNC on an SMMU with ATS by up to two
 * seconds of wall time more, since it may wait for devices to answer ATC invalidations) and ends in a
 * {@link SmmuV3DriverException.Kind#QUEUE_TIMEOUT} naming PROD, CONS and what was awaited.
 *
 * <p><b>Threads.</b> One submission at a time: a lock (re-entrant, so an interrupt handler that runs on the
 * submitting thread can recover an error) covers writing, moving PROD and waiting. Linux lets producers fill the
 * queue concurrently; the emulated SMMU consumes synchronously, so little would be gained. A submission encodes
 * into a preallocated buffer and allocates nothing per command.
 */
final class CommandQueue implements TlbiPlanner.Sink {
    private static final System.Logger log = System.getLogger(CommandQueue.class.getName());

    /** The most commands one CMD_SYNC covers (Linux's CMDQ_BATCH_ENTRIES on a 64-bit host). */
    static final int MAX_BATCH = 64;

    private final SmmuHost host;
    private final PhysicalMemory memory;
    private final SmmuV3Listeners listeners;
    private final long base;
    private final int log2;
    private final int maxBatch;
    private final boolean msiPolling;
    private final int idleSyncCs;
    private final long syncWord;
    private final int polls;
    /** How long a CMD_SYNC is polled: {@link #polls}, then with ATS up to {@link #DEVICE_WAIT_NANOS} more. */
    private final PollBudget syncBudget;
    /** Commands of the current batch plus its CMD_SYNC, two words each. */
    private final long[] words;

    private int prod;
    private int cons;
    private int syncSequence;
    /** Commands collected by the open batch ({@link #openBatch}) and not yet issued. */
    private int pending;
    private long commands;
    private long syncs;
    private long commandErrors;

    /**
     * @param base     queue memory, aligned to its size
     * @param log2     the queue holds 2^log2 entries (at least 2)
     * @param syncWord the MSI target for CMD_SYNC completion (4-byte aligned RAM), used when {@code msiPolling}
     * @param sev      the SMMU implements SEV: CMD_SYNCs that are not MSI-polled say CS=SEV
     * @param ats      the SMMU implements ATS: a CMD_SYNC may wait for devices to answer ATC invalidations, so once
     *                 its polls are spent the driver keeps polling, sleeping in between, for up to
     *                 {@link #DEVICE_WAIT_NANOS} of wall time
     */
    CommandQueue(SmmuHost host, SmmuV3Listeners listeners, long base, int log2, boolean msiPolling, long syncWord,
            boolean sev, boolean ats, int polls) {
        this.host = host;
        this.memory = host.memory();
        this.listeners = listeners;
        this.base = base;
        this.log2 = log2;
        this.maxBatch = (int) Math.min(MAX_BATCH, QueuePointer.entries(log2) - 1);
        this.msiPolling = msiPolling;
        this.idleSyncCs = sev ? Command.CS_SEV : Command.CS_NONE;
        this.syncWord = syncWord;
        this.polls = polls;
        this.syncBudget = new PollBudget(polls, ats ? DEVICE_WAIT_NANOS : 0);
        this.words = new long[2 * (maxBatch + 1)];
    }

    /** The CMDQ_BASE value: the queue, its size and RA, as Linux programs it. */
    long baseRegister() {
        return new QueueBase(base, log2, true).encode();
    }

    int log2() {
        return log2;
    }

    /** Commands per CMD_SYNC: {@link #MAX_BATCH}, or one less than the queue size when that is smaller. */
    int maxBatch() {
        return maxBatch;
    }

    boolean msiPolling() {
        return msiPolling;
    }

    // ------------------------------------------------------------------ submission

    /** Issues {@code cmds}, in batches each followed by a CMD_SYNC, and returns once all have completed. */
    synchronized void submit(List<Command> cmds) {
        int n = cmds.size();
        int i = 0;
        do {
            int batch = Math.min(n - i, maxBatch);
            for (int k = 0; k < batch; k++) {
                cmds.get(i + k).encode(words, 2 * k);
            }
            issueBatch(batch);
            i += batch;
        } while (i < n);
    }

    /**
     * Opens a batch of commands given as words to {@link #command}: they collect in the preallocated buffer, a
     * CMD_SYNC follows every {@link #maxBatch} of them, and {@link #closeBatch} issues the rest with a last
     * CMD_SYNC. The caller holds this queue's monitor from open to close ({@code synchronized (queue)}), so no
     * other submission interleaves.
     */
    void openBatch() {
        pending = 0;
    }

    /** One command of the open batch (a {@link TlbiPlanner.Sink}, so plans go straight into the queue). */
    @Override
    public void command(long dw0, long dw1) {
        words[2 * pending] = dw0;
        words[2 * pending + 1] = dw1;
        if (++pending == maxBatch) {
            issueBatch(pending);
            pending = 0;
        }
    }

    /** Issues what the open batch still holds, with a CMD_SYNC, and waits for it. */
    void closeBatch() {
        if (pending > 0) {
            issueBatch(pending);
        }
        pending = 0;
    }

    /** Issues one command given as its two words, without {@link Command}'s checks, and a CMD_SYNC. */
    synchronized void submitRaw(long dw0, long dw1) {
        words[0] = dw0;
        words[1] = dw1;
        issueBatch(1);
    }

    /** Issues a CMD_SYNC alone and waits for it: every command issued before it has completed. */
    synchronized void sync() {
        issueBatch(0);
    }

    /** Writes {@code batch} commands from {@link #words} and a CMD_SYNC, moves PROD, waits for the sync. */
    private void issueBatch(int batch) {
        int entries = batch + 1;
        waitForSpace(entries);
        int sequence = 0;
        if (msiPolling) {
            sequence = ++syncSequence;
            if (sequence == 0) { // never expect the value a fresh word holds
                sequence = ++syncSequence;
            }
        }
        encodeSync(words, 2 * batch, msiPolling ? Command.CS_IRQ : idleSyncCs, sequence);
        int index = QueuePointer.index(prod, log2);
        int first = (int) Math.min(entries, QueuePointer.entries(log2) - index);
        try {
            memory.write64s(base + (long) index * Command.SIZE, words, 0, 2 * first);
            if (first < entries) { // the batch wraps past the end of the queue
                memory.write64s(base, words, 2 * first, 2 * (entries - first));
            }
        } catch (MemoryAccessException e) {
            throw new SmmuV3DriverException(SmmuV3DriverException.Kind.MEMORY,
                    "writing " + entries + " commands to the command queue at 0x" + Long.toHexString(base)
                            + " failed: " + e.getMessage(), e);
        }
        prod = QueuePointer.inc(prod, log2, entries);
        commands += batch;
        syncs++;
        host.mmioWrite(SmmuRegs.CMDQ_PROD, 4, Integer.toUnsignedLong(prod));
        waitForSync(sequence);
    }

    /** Encodes a CMD_SYNC into {@code into[at..at+1]} without allocating. */
    private void encodeSync(long[] into, int at, int cs, int sequence) {
        long dw0 = Command.OPCODE.put(0, CommandOp.CMD_SYNC);
        dw0 = Command.SYNC_CS.put(dw0, cs);
        long dw1 = 0;
        if (cs == Command.CS_IRQ) {
            // Linux: inner-shareable, write-back MSI (the word is ordinary coherent RAM)
            dw0 = Command.SYNC_MSH.put(dw0, Encodings.SH_ISH);
            dw0 = Command.SYNC_MSIATTR.put(dw0, SmmuRegs.MSI_MEMATTR_OIWB);
            dw0 = Command.SYNC_MSIDATA.put(dw0, Integer.toUnsignedLong(sequence));
            dw1 = Command.SYNC_MSIADDR.putAddress(0, syncWord);
        }
        into[at] = dw0;
        into[at + 1] = dw1;
    }

    private void waitForSpace(int entries) {
        if (QueuePointer.space(prod, cons, log2) >= entries) {
            return;
        }
        for (int i = 0; i < polls; i++) {
            cons = readCons();
            if (QueuePointer.space(prod, cons, log2) >= entries) {
                return;
            }
            recoverError();
            Thread.onSpinWait();
        }
        throw new SmmuV3DriverException(SmmuV3DriverException.Kind.QUEUE_TIMEOUT,
                "command queue full: no room for " + entries + " entries after " + polls + " polls of CMDQ_CONS"
                        + " (PROD=0x" + Integer.toHexString(prod) + ", CONS=0x" + Integer.toHexString(cons)
                        + ", 2^" + log2 + " entries)");
    }

    private void waitForSync(int sequence) {
        syncBudget.start();
        for (int i = 0; ; i++) {
            if (msiPolling) {
                if (readSyncWord() == sequence) {
                    cons = prod; // everything up to the CMD_SYNC was consumed
                    return;
                }
                if (i > 0) { // the MSI write may have been lost (GERROR.MSI_CMDQ_ABT_ERR): CONS tells too
                    cons = readCons();
                    if (QueuePointer.isEmpty(prod, cons, log2)) {
                        return;
                    }
                }
            } else {
                cons = readCons();
                if (QueuePointer.isEmpty(prod, cons, log2)) {
                    return;
                }
            }
            recoverError();
            // with ATS the SMMU holds the sync until devices answer its ATC invalidations (or its own timeout
            // passes), which takes wall time, not polls
            if (!syncBudget.pause()) {
                break;
            }
        }
        int consNow = readCons();
        throw new SmmuV3DriverException(SmmuV3DriverException.Kind.QUEUE_TIMEOUT,
                "CMD_SYNC did not complete after " + syncBudget.describe() + " of "
                        + (msiPolling ? "its MSI word at 0x" + Long.toHexString(syncWord) + " (expected 0x"
                                + Integer.toHexString(sequence) + ", read 0x" + Integer.toHexString(readSyncWord()) + ")"
                                : "CMDQ_CONS")
                        + " (PROD=0x" + Integer.toHexString(prod) + ", CONS=0x" + Integer.toHexString(consNow)
                        + ", CONS.ERR=" + QueuePointer.cmdqError(consNow) + ")");
    }

    /** With ATS, how long a CMD_SYNC may wait for devices after its polls are spent. */
    static final long DEVICE_WAIT_NANOS = 2_000_000_000L;

    private int readCons() {
        return (int) host.mmioRead(SmmuRegs.CMDQ_CONS, 4);
    }

    private int readSyncWord() {
        try {
            return memory.read32(syncWord);
        } catch (MemoryAccessException e) {
            throw new SmmuV3DriverException(SmmuV3DriverException.Kind.MEMORY,
                    "reading the CMD_SYNC MSI word at 0x" + Long.toHexString(syncWord) + " failed: " + e.getMessage(), e);
        }
    }

    // ------------------------------------------------------------------ errors

    /**
     * If GERROR.CMDQ_ERR is active, deals with the command CMDQ_CONS stopped at (see the class comment) and
     * acknowledges CMDQ_ERR in GERRORN, which restarts the queue. Returns whether there was an error.
     */
    synchronized boolean recoverError() {
        int gerror = (int) host.mmioRead(SmmuRegs.GERROR, 4);
        int gerrorn = (int) host.mmioRead(SmmuRegs.GERRORN, 4);
        if (!Gerror.isActive(gerror, gerrorn, Gerror.CMDQ_ERR)) {
            return false;
        }
        int consNow = readCons();
        int cerror = QueuePointer.cmdqError(consNow);
        int index = QueuePointer.index(consNow, log2);
        long at = base + (long) index * Command.SIZE;
        long dw0;
        long dw1;
        try {
            dw0 = memory.read64(at);
            dw1 = memory.read64(at + 8);
            if (cerror != QueuePointer.CERROR_ABT && cerror != QueuePointer.CERROR_ATC_INV_SYNC
                    && cerror != QueuePointer.CERROR_NONE) {
                // an illegal command: turn it into a CMD_SYNC that signals nothing
                memory.write64(at + 8, 0);
                memory.write64(at, Command.SYNC_CS.put(Command.OPCODE.put(0, CommandOp.CMD_SYNC), Command.CS_NONE));
            }
        } catch (MemoryAccessException e) {
            throw new SmmuV3DriverException(SmmuV3DriverException.Kind.MEMORY,
                    "reading the failed command at 0x" + Long.toHexString(at) + " failed: " + e.getMessage(), e);
        }
        commandErrors++;
        log.log(Level.WARNING, () -> "command queue error " + cerrorName(cerror) + " at index " + index + ": "
                + CommandOp.name(Command.opcode(dw0)) + " 0x" + Long.toHexString(dw0) + " 0x" + Long.toHexString(dw1)
                + (cerror == QueuePointer.CERROR_ABT ? " (retrying the fetch)" : cerror == QueuePointer.CERROR_ILL
                        ? " (skipped: replaced by CMD_SYNC)" : ""));
        listeners.commandError(cerror, index, dw0, dw1);
        host.mmioWrite(SmmuRegs.GERRORN, 4, Integer.toUnsignedLong(gerrorn ^ (1 << Gerror.CMDQ_ERR)));
        return true;
    }

    static String cerrorName(int cerror) {
        return switch (cerror) {
            case QueuePointer.CERROR_NONE -> "CERROR_NONE";
            case QueuePointer.CERROR_ILL -> "CERROR_ILL";
            case QueuePointer.CERROR_ABT -> "CERROR_ABT";
            case QueuePointer.CERROR_ATC_INV_SYNC -> "CERROR_ATC_INV_SYNC";
            default -> "CERROR_" + cerror;
        };
    }

    // ------------------------------------------------------------------ counters

    synchronized long commands() {
        return commands;
    }

    synchronized long syncs() {
        return syncs;
    }

    synchronized long commandErrors() {
        return commandErrors;
    }
}
