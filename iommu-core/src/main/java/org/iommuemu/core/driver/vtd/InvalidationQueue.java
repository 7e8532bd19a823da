package org.iommuemu.core.driver.vtd;

import java.lang.System.Logger.Level;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.concurrent.PollBudget;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;

/**
 * The driver's side of queued invalidation ({@code spec/VTD.md} §5): descriptors are written at the software tail
 * in queue memory, IQT is moved past them, and each batch of at most {@link #MAX_BATCH} descriptors (Linux's
 * {@code QI_MAX_BATCHED_DESC_COUNT}) ends with one invalidation-wait descriptor whose completion is waited for, so
 * that when a submission returns every descriptor in it has taken effect.
 *
 * <p><b>Completion.</b> The wait descriptor has SW=1 (and neither IF nor FN, as Linux's {@code qi_submit_sync}): the
 * unit writes {@link InvDesc#STATUS_DONE} to a status word the driver owns. There is one status word per queue slot
 * (Linux's {@code desc_status}), the one of the wait's slot, set to {@link #STATUS_IN_USE} before the batch is
 * written: a late status write can only come from the wait that last used the slot, which the unit has consumed
 * before the queue wraps back to it.
 *
 * <p><b>Full queue.</b> Before writing a batch the driver waits, polling IQH, until the queue has room for it and its
 * wait descriptor (one slot always stays free: IQH == IQT means empty).
 *
 * <p><b>Errors</b>, handled as Linux's {@code qi_check_fault} while waiting (the waiter reads FSTS whenever the status
 * word is not done yet, so recovery needs no interrupt):
 * <ul>
 *   <li>IQE: the unit stopped at the descriptor IQH points at. It is reported ({@link VtdListener#onQueueError}),
 *       replaced by a harmless invalidation wait (SW=1 to that slot's own status word, which nobody waits for), IQE
 *       is cleared (write 1) and IQT is written again with its current value (a no-op for the unit, a restart for a
 *       model that fetches only on tail writes); the batch's own wait then completes and the submission returns.</li>
 *   <li>ITE: a device-TLB invalidation timed out and the unit aborted the pending waits. It is reported and cleared
 *       (IQT written again), and the batch — its descriptors and a new wait — is submitted again, as Linux's
 *       {@code qi_submit_sync} does when {@code qi_check_fault} says its wait was aborted. Linux retries for as long
 *       as the device is present (and stops asking a device that is gone). This driver is bounded instead: the
 *       device-TLB invalidations (plain and PASID-based) of the source id the ITE names (IQERCD.ITESID) are left out
 *       of the resubmission — that device had the unit's whole timeout to answer, and asking again would stall the
 *       queue for another timeout, or for good if it left — and the batch is submitted at most
 *       {@link #ITE_RETRIES} more times (an ITESID naming nothing in the batch, as older units report 0, resubmits
 *       it whole). Every device-TLB invalidation left out, and a batch still aborted after its retries, is given up:
 *       counted ({@link #abandoned}), logged and reported ({@link VtdListener#onInvalidationAbandoned}). The
 *       submission then returns (as Linux's device-TLB flushes, it does not fail its caller: the IOTLB invalidations
 *       took effect). The queue is usable at once: the unit moved IQH past the aborted wait and fetches again once
 *       ITE is cleared.</li>
 *   <li>ICE: reported and cleared.</li>
 * </ul>
 *
 * <p><b>Bounds.</b> Every wait is bounded by {@code polls} (an invalidation wait on a unit with device TLBs,
 * ECAP.DT, by up to {@link #DEVICE_WAIT_NANOS} of wall time more, polling with short sleeps: the unit holds the wait
 * until devices answer their device-TLB invalidations, which takes wall time, not polls) and ends in a
 * {@link VtdDriverException.Kind#QUEUE_TIMEOUT} naming IQH, IQT, the status word and FSTS.
 *
 * <p><b>Threads.</b> One submission at a time: this object's monitor (re-entrant) covers writing, moving IQT and
 * waiting. Descriptors are encoded into a preallocated buffer: a submission allocates nothing.
 */
final class InvalidationQueue implements DescriptorSink {
    private static final System.Logger log = System.getLogger(InvalidationQueue.class.getName());

    /** The most descriptors one invalidation wait covers. */
    static final int MAX_BATCH = 16;
    /** The status word's value while its wait is outstanding (Linux's QI_IN_USE). */
    static final int STATUS_IN_USE = 1;
    /** Times a batch whose wait an ITE aborted is submitted again before it is given up. */
    static final int ITE_RETRIES = 2;
    /** With ECAP.DT, how long an invalidation wait may wait for devices once its polls are spent. */
    static final long DEVICE_WAIT_NANOS = 2_000_000_000L;

    private final VtdHost host;
    private final PhysicalMemory memory;
    private final VtdListeners listeners;
    private final long base;
    private final int entriesLog2;
    private final int entries;
    private final boolean wide;
    private final int shift;
    private final int wordsPerDescriptor;
    private final long statusWords;
    private final int polls;
    /** How long a wait is polled: {@link #polls}, then with ECAP.DT up to {@link #DEVICE_WAIT_NANOS} more. */
    private final PollBudget waitBudget;
    private final int maxBatch;
    /** The current batch and its wait descriptor, {@link #wordsPerDescriptor} words each. */
    private final long[] words;

    private int tail;
    private int head;
    private int pending;
    private long descriptors;
    private long waits;
    private long queueErrors;
    private long iteRetries;
    private long abandoned;
    /** Set by {@link #checkErrors} when an ITE aborted the wait being waited for. */
    private boolean waitAborted;
    /** IQERCD.ITESID of the last ITE. */
    private int lastIteSid;

    /**
     * @param base        queue memory, 4 KB aligned, {@code 2^entriesLog2} descriptors
     * @param wide        256-bit descriptors (IQA.DW=1)
     * @param statusWords {@code 2^entriesLog2} 4-byte status words, one per slot
     * @param deviceTlbs the unit has device TLBs (ECAP.DT): a wait may wait for devices, so once its polls are spent
     *                   the driver keeps polling, sleeping in between, for up to {@link #DEVICE_WAIT_NANOS}
     */
    InvalidationQueue(VtdHost host, VtdListeners listeners, long base, int entriesLog2, boolean wide, long statusWords,
            boolean deviceTlbs, int polls) {
        this.host = host;
        this.memory = host.memory();
        this.listeners = listeners;
        this.base = base;
        this.entriesLog2 = entriesLog2;
        this.entries = 1 << entriesLog2;
        this.wide = wide;
        this.shift = wide ? VtdRegs.IQ_INDEX_SHIFT_256 : VtdRegs.IQ_INDEX_SHIFT_128;
        this.wordsPerDescriptor = wide ? 4 : 2;
        this.statusWords = statusWords;
        this.polls = polls;
        this.waitBudget = new PollBudget(polls, deviceTlbs ? DEVICE_WAIT_NANOS : 0);
        this.maxBatch = Math.min(MAX_BATCH, entries - 2);
        this.words = new long[wordsPerDescriptor * (maxBatch + 1)];
    }

    /** IQA as the driver programs it: the queue's address, DW, and QS for {@code 2^entriesLog2} descriptors. */
    long iqaRegister() {
        int qs = entriesLog2 - (wide ? 7 : 8);
        return base | (wide ? 1L << VtdRegs.IQA_DW : 0) | qs;
    }

    /** Bytes of queue memory for {@code 2^entriesLog2} descriptors of the given width. */
    static long bytes(int entriesLog2, boolean wide) {
        return (long) (wide ? 32 : 16) << entriesLog2;
    }

    int entriesLog2() {
        return entriesLog2;
    }

    boolean wide() {
        return wide;
    }

    long base() {
        return base;
    }

    int maxBatch() {
        return maxBatch;
    }

    // ------------------------------------------------------------------ submission

    /**
     * Opens a batch of descriptors given to {@link #descriptor}: they collect in the preallocated buffer, an
     * invalidation wait follows every {@link #maxBatch} of them, and {@link #closeBatch} issues the rest with a last
     * wait. The caller holds this queue's monitor from open to close, so no other submission interleaves.
     */
    void openBatch() {
        pending = 0;
    }

    @Override
    public void descriptor(long qw0, long qw1) {
        int at = wordsPerDescriptor * pending;
        words[at] = qw0;
        words[at + 1] = qw1;
        if (wide) {
            words[at + 2] = 0;
            words[at + 3] = 0;
        }
        if (++pending == maxBatch) {
            issueBatch(pending);
            pending = 0;
        }
    }

    /** Issues what the open batch still holds, with an invalidation wait, and waits for it. */
    void closeBatch() {
        if (pending > 0) {
            issueBatch(pending);
        }
        pending = 0;
    }

    /** Issues {@code qw0, qw1} pairs in order, batched, and returns once all have completed. */
    synchronized void submit(long... qwords) {
        if ((qwords.length & 1) != 0) {
            throw new IllegalArgumentException("descriptors are given as qw0, qw1 pairs: " + qwords.length + " words");
        }
        openBatch();
        for (int i = 0; i < qwords.length; i += 2) {
            descriptor(qwords[i], qwords[i + 1]);
        }
        closeBatch();
    }

    /** Issues an invalidation wait alone and waits for it: everything queued before it has completed. */
    synchronized void sync() {
        issueBatch(0);
    }

    /**
     * Issues the first {@code batch} descriptors of the buffer with a wait and waits for it; a wait an ITE aborts is
     * retried, then given up (see the class comment).
     */
    private void issueBatch(int batch) {
        int n = batch;
        for (int attempt = 1; ; attempt++) {
            if (issueOnce(n)) {
                return;
            }
            int sid = lastIteSid;
            int kept = dropDeviceTlbs(n, sid);
            if (kept < n || attempt > ITE_RETRIES) {
                abandoned++;
                int attempts = attempt;
                boolean whole = kept == n;
                log.log(Level.WARNING, () -> (whole ? "an invalidation batch was given up after " + attempts
                        + " waits aborted by ITE (ITESID 0x" + Integer.toHexString(sid) + ")"
                        : "device-TLB invalidations of source id 0x" + Integer.toHexString(sid) + " given up: the"
                                + " device did not answer in time (ITE); the rest of the batch is submitted again"));
                listeners.invalidationAbandoned(sid, attempts);
            }
            if (attempt > ITE_RETRIES) {
                return;
            }
            n = kept;
            iteRetries++;
        }
    }

    /**
     * Removes the device-TLB and PASID-based device-TLB descriptors of source id {@code sid} from the first
     * {@code n} descriptors of the buffer, keeping the others in order; returns how many are left.
     */
    private int dropDeviceTlbs(int n, int sid) {
        int kept = 0;
        for (int i = 0; i < n; i++) {
            int at = wordsPerDescriptor * i;
            long qw0 = words[at];
            int type = InvDesc.type(qw0);
            boolean drop = type == InvDesc.TYPE_DEVICE_TLB && ((qw0 >>> InvDesc.DEV_SID) & 0xFFFF) == sid
                    || type == InvDesc.TYPE_PASID_DEVICE_TLB && ((qw0 >>> InvDesc.PDEV_SID) & 0xFFFF) == sid;
            if (drop) {
                continue;
            }
            if (kept != i) {
                System.arraycopy(words, at, words, wordsPerDescriptor * kept, wordsPerDescriptor);
            }
            kept++;
        }
        return kept;
    }

    /** One submission of the batch and its wait; false when an ITE aborted the wait. */
    private boolean issueOnce(int batch) {
        int slots = batch + 1;
        waitForSpace(slots);
        int waitIndex = (tail + batch) & (entries - 1);
        long status = statusWord(waitIndex);
        int at = wordsPerDescriptor * batch;
        words[at] = InvDesc.waitQw0(true, false, false, InvDesc.STATUS_DONE);
        words[at + 1] = InvDesc.waitQw1(status);
        if (wide) {
            words[at + 2] = 0;
            words[at + 3] = 0;
        }
        int first = Math.min(slots, entries - tail);
        try {
            memory.write32(status, STATUS_IN_USE);
            memory.write64s(slotAddress(tail), words, 0, wordsPerDescriptor * first);
            if (first < slots) { // the batch wraps past the end of the queue
                memory.write64s(base, words, wordsPerDescriptor * first, wordsPerDescriptor * (slots - first));
            }
        } catch (MemoryAccessException e) {
            throw new VtdDriverException(VtdDriverException.Kind.MEMORY, "writing " + slots
                    + " descriptors to the invalidation queue at " + Bits.hex(base) + " failed: " + e.getMessage(), e);
        }
        tail = (tail + slots) & (entries - 1);
        descriptors += batch;
        waits++;
        host.mmioWrite(VtdRegs.IQT, 8, (long) tail << shift);
        return waitForCompletion(waitIndex, status);
    }

    private long slotAddress(int index) {
        return base + ((long) index << shift);
    }

    private long statusWord(int index) {
        return statusWords + 4L * index;
    }

    private int used() {
        return (tail - head) & (entries - 1);
    }

    private void waitForSpace(int slots) {
        if (entries - 1 - used() >= slots) {
            return;
        }
        for (int i = 0; i < polls; i++) {
            head = readHead();
            if (entries - 1 - used() >= slots) {
                return;
            }
            checkErrors(-1);
            Thread.onSpinWait();
        }
        throw new VtdDriverException(VtdDriverException.Kind.QUEUE_TIMEOUT, "invalidation queue full: no room for "
                + slots + " descriptors after " + polls + " polls of IQH (IQH index " + head + ", IQT index " + tail
                + ", " + entries + " entries, FSTS=0x" + Long.toHexString(host.mmioRead(VtdRegs.FSTS, 4)) + ")");
    }

    /** Waits for the wait at {@code waitIndex}: true when it completed, false when an ITE aborted it. */
    private boolean waitForCompletion(int waitIndex, long status) {
        waitAborted = false;
        waitBudget.start();
        while (true) {
            if (readStatus(status) == InvDesc.STATUS_DONE) {
                head = tail; // the wait completes only after everything before it
                return true;
            }
            checkErrors(waitIndex);
            if (waitAborted) {
                waitAborted = false;
                return false;
            }
            // with ECAP.DT the unit holds the wait until devices answer their device-TLB invalidations (or its own
            // timeout passes and it raises ITE), which takes wall time, not polls
            if (!waitBudget.pause()) {
                break;
            }
        }
        throw new VtdDriverException(VtdDriverException.Kind.QUEUE_TIMEOUT, "invalidation wait at queue index "
                + waitIndex + " did not complete after " + waitBudget.describe()
                + " of its status word at " + Bits.hex(status)
                + " (expected " + InvDesc.STATUS_DONE + ", read " + readStatus(status) + "; IQH index " + readHead()
                + ", IQT index " + tail + ", FSTS=0x" + Long.toHexString(host.mmioRead(VtdRegs.FSTS, 4)) + ")");
    }

    private int readHead() {
        return (int) (host.mmioRead(VtdRegs.IQH, 8) >>> shift) & (entries - 1);
    }

    private int readStatus(long status) {
        try {
            return memory.read32(status);
        } catch (MemoryAccessException e) {
            throw new VtdDriverException(VtdDriverException.Kind.MEMORY, "reading the invalidation-wait status word at "
                    + Bits.hex(status) + " failed: " + e.getMessage(), e);
        }
    }

    // ------------------------------------------------------------------ errors

    private static final int QUEUE_ERRORS = 1 << VtdRegs.FSTS_IQE | 1 << VtdRegs.FSTS_ITE | 1 << VtdRegs.FSTS_ICE;

    /**
     * Deals with IQE, ITE and ICE in FSTS (see the class comment). {@code waitIndex} is the slot of the wait being
     * waited for, or -1 while waiting for room; an ITE while a wait is outstanding sets {@link #waitAborted}.
     * Returns whether there was an error.
     */
    synchronized boolean checkErrors(int waitIndex) {
        int fsts = (int) host.mmioRead(VtdRegs.FSTS, 4);
        if ((fsts & QUEUE_ERRORS) == 0) {
            return false;
        }
        long iqercd = host.mmioRead(VtdRegs.IQERCD, 8);
        if (Bits.bit(fsts, VtdRegs.FSTS_IQE)) {
            recoverIqe(iqercd);
        }
        if (Bits.bit(fsts, VtdRegs.FSTS_ICE)) {
            queueErrors++;
            log.log(Level.WARNING, () -> "invalidation completion error (ICE), IQERCD=" + Bits.hex(iqercd));
            listeners.queueError(VtdListener.QueueError.ICE, -1, 0, 0, iqercd);
            host.mmioWrite(VtdRegs.FSTS, 4, 1L << VtdRegs.FSTS_ICE);
        }
        if (Bits.bit(fsts, VtdRegs.FSTS_ITE)) {
            queueErrors++;
            log.log(Level.WARNING, () -> "invalidation time-out error (ITE), IQERCD=" + Bits.hex(iqercd));
            listeners.queueError(VtdListener.QueueError.ITE, -1, 0, 0, iqercd);
            host.mmioWrite(VtdRegs.FSTS, 4, 1L << VtdRegs.FSTS_ITE);
            host.mmioWrite(VtdRegs.IQT, 8, (long) tail << shift);
            lastIteSid = (int) Bits.extract(iqercd, VtdRegs.IQERCD_ITESID, 16);
            if (waitIndex >= 0) {
                head = readHead(); // the unit moved IQH past the aborted wait
                waitAborted = true;
            }
        }
        return true;
    }

    private void recoverIqe(long iqercd) {
        int index = readHead();
        long at = slotAddress(index);
        long qw0;
        long qw1;
        try {
            qw0 = memory.read64(at);
            qw1 = memory.read64(at + 8);
            boolean outstanding = ((index - head) & (entries - 1)) < used();
            if (outstanding) {
                // a wait that writes its own slot's status word, which nobody polls: valid, and changes nothing
                memory.write32(statusWord(index), STATUS_IN_USE);
                memory.write64(at + 8, InvDesc.waitQw1(statusWord(index)));
                if (wide) {
                    memory.write64(at + 16, 0);
                    memory.write64(at + 24, 0);
                }
                memory.write64(at, InvDesc.waitQw0(true, false, false, InvDesc.STATUS_DONE));
            }
        } catch (MemoryAccessException e) {
            throw new VtdDriverException(VtdDriverException.Kind.MEMORY, "reading the descriptor at " + Bits.hex(at)
                    + " that caused an invalidation queue error failed: " + e.getMessage(), e);
        }
        queueErrors++;
        long q0 = qw0;
        log.log(Level.WARNING, () -> "invalidation queue error (IQE) at index " + index + ": "
                + InvDesc.typeName(InvDesc.type(q0)) + " " + Bits.hex(q0) + " " + Bits.hex(qw1) + ", IQEI "
                + Bits.extract(iqercd, VtdRegs.IQERCD_IQEI, 4) + " (replaced by an invalidation wait)");
        listeners.queueError(VtdListener.QueueError.IQE, index, qw0, qw1, iqercd);
        host.mmioWrite(VtdRegs.FSTS, 4, 1L << VtdRegs.FSTS_IQE);
        host.mmioWrite(VtdRegs.IQT, 8, (long) tail << shift);
    }

    // ------------------------------------------------------------------ counters

    /** Descriptors issued, invalidation waits not counted. */
    synchronized long descriptors() {
        return descriptors;
    }

    /** Invalidation waits issued (one per batch). */
    synchronized long waits() {
        return waits;
    }

    /** IQE, ITE and ICE handled. */
    synchronized long queueErrors() {
        return queueErrors;
    }

    /** Batches submitted again because an ITE aborted their wait. */
    synchronized long iteRetries() {
        return iteRetries;
    }

    /** Device-TLB invalidations of a source id left out after an ITE named it, and batches given up after retries. */
    synchronized long abandoned() {
        return abandoned;
    }
}
