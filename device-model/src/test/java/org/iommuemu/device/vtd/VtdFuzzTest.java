package org.iommuemu.device.vtd;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.core.vtd.VtdTables;
import org.iommuemu.device.FuzzWords;
import org.iommuemu.device.machine.DmaEngine;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.InterruptHub;
import org.iommuemu.device.machine.Translation;
import org.junit.jupiter.api.Timeout;

/**
 * Jazzer targets for the VT-d model: arbitrary MMIO sequences, arbitrary invalidation-queue descriptors, arbitrary
 * root / context / PASID-directory / PASID entries, arbitrary paging-structure memory under a walk. Each input
 * starts from a device a driver has brought up (root table set, translation and queued invalidation enabled, one
 * legacy or scalable-mode source id that translates).
 *
 * <p>A finding is any exception or error escaping the device, or an input that runs past its timeout. Without
 * {@code JAZZER_FUZZ} these run the committed corpus under {@code src/test/resources} as ordinary tests; see
 * docs/FUZZING.md.
 */
class VtdFuzzTest {
    /** Bus 1, device 1, function 0. */
    private static final int SID = 0x0108;
    private static final int DID = 3;
    private static final int PASID = 5;
    private static final long IOVA = 0x4000_0000L;
    private static final long RW = 3;
    private static final long FS_LEAF = 0b111;
    private static final int SRTP = 1 << VtdRegs.GCMD_SRTP;
    private static final int TE = 1 << VtdRegs.GCMD_TE;
    private static final int QIE = 1 << VtdRegs.GCMD_QIE;
    private static final int IQE = 1 << VtdRegs.FSTS_IQE;
    private static final int ITE = 1 << VtdRegs.FSTS_ITE;

    /** A brought-up device over the RAM of a {@link VtdRig} whose tables it walks. */
    private static final class Setup {
        final VtdRig rig;
        final boolean scalable;
        final boolean wide;
        final VtdDevice vtd;
        final long queue;
        final long status;
        final VtdRig.SsTable ss;
        final long dir;
        final DmaEngine engine;
        final DmaOutcome outcome = new DmaOutcome();
        final Translation translation = new Translation();
        final byte[] buffer = new byte[8192];
        int tail;

        Setup(boolean scalable, boolean wide) {
            this.scalable = scalable;
            // IQA.DW is honoured only when scalable mode is supported: otherwise descriptors stay 128-bit.
            this.wide = wide && VtdConfig.defaults().smts();
            rig = scalable ? VtdRig.scalable(VtdConfig.defaults()) : VtdRig.legacy(VtdConfig.defaults());
            ss = rig.ss(4);
            ss.map(IOVA, rig.page(), 12, RW);
            if (scalable) {
                dir = rig.smContext(SID, 0);
                rig.secondStage(dir, 0, DID, ss);
                VtdRig.FsTable fs = rig.fs(4);
                fs.map(IOVA, rig.page(), 12, FS_LEAF);
                rig.firstStage(dir, PASID, DID, fs);
            } else {
                dir = 0;
                rig.context(SID, ss.root, 4, DID);
            }
            vtd = new VtdDevice("dmar0", VtdConfig.defaults(), rig.ram, new InterruptHub(rig.ram));
            vtd.mmioWrite(VtdRegs.RTADDR, 8, rig.rootTable | (scalable ? 1L << 10 : 0));
            vtd.mmioWrite(VtdRegs.GCMD, 4, SRTP);
            vtd.mmioWrite(VtdRegs.GCMD, 4, TE);
            queue = rig.page();
            status = rig.page();
            vtd.mmioWrite(VtdRegs.IQA, 8, queue | (wide ? 1L << 11 : 0));
            vtd.mmioWrite(VtdRegs.IQT, 8, 0);
            vtd.mmioWrite(VtdRegs.GCMD, 4, TE | QIE);
            engine = new DmaEngine(rig.ram);
        }

        int entries() {
            return wide ? 128 : 256;
        }

        int descSize() {
            return wide ? 32 : 16;
        }

        /** Places one descriptor at the tail (the upper half of a 256-bit one from {@code qw2, qw3}). */
        void put(long qw0, long qw1, long qw2, long qw3) {
            long at = queue + (long) tail * descSize();
            rig.write(at, qw0);
            rig.write(at + 8, qw1);
            if (wide) {
                rig.write(at + 16, qw2);
                rig.write(at + 24, qw3);
            }
            tail = (tail + 1) % entries();
        }

        /** Moves IQT to the tail: the device consumes up to it. */
        void submit() {
            vtd.mmioWrite(VtdRegs.IQT, 8, (long) tail * descSize());
        }

        /**
         * Linux's qi_check_fault, in short: a descriptor the device refused (IQE) is replaced by a harmless wait and
         * IQE cleared; ITE is cleared. Processing resumes from IQH. Every refused descriptor takes one round, so a
         * queue full of bad ones takes as many rounds as it has entries.
         */
        void recover() {
            for (int i = 0; i <= entries(); i++) {
                long fsts = vtd.mmioRead(VtdRegs.FSTS, 4);
                if ((fsts & (IQE | ITE)) == 0) {
                    return;
                }
                if ((fsts & IQE) != 0) {
                    long head = vtd.mmioRead(VtdRegs.IQH, 8);
                    long at = queue + (head & 0xFFF & ~(long) (descSize() - 1));
                    // a wait needs SW, IF or FN to be valid: a fence-only wait does nothing else
                    rig.write(at, InvDesc.waitQw0(false, false, true, 0));
                    rig.write(at + 8, 0);
                    if (wide) {
                        rig.write(at + 16, 0);
                        rig.write(at + 24, 0);
                    }
                }
                vtd.mmioWrite(VtdRegs.FSTS, 4, fsts & (IQE | ITE));
            }
            throw new AssertionError("the invalidation queue stays in error: FSTS "
                    + Long.toHexString(vtd.mmioRead(VtdRegs.FSTS, 4)) + ", IQERCD "
                    + Long.toHexString(vtd.mmioRead(VtdRegs.IQERCD, 8)) + ", IQH "
                    + Long.toHexString(vtd.mmioRead(VtdRegs.IQH, 8)) + ", IQT "
                    + Long.toHexString(vtd.mmioRead(VtdRegs.IQT, 8)) + ", wide " + wide);
        }

        /** Global context-cache, PASID-cache (scalable mode) and IOTLB invalidation, then a wait. */
        void invalidateAll() {
            recover();
            put(InvDesc.contextCache(VtdRegs.CC_GLOBAL, 0, 0, 0), 0, 0, 0);
            if (scalable) {
                put(InvDesc.pasidCache(InvDesc.PC_GLOBAL, 0, 0), 0, 0, 0);
            }
            put(InvDesc.iotlb(VtdRegs.IOTLB_GLOBAL, 0, false, false), 0, 0, 0);
            submit();
        }

        /** The queue still works: a status-writing wait at the tail is carried out. */
        void assertQueueDrains() {
            recover();
            put(InvDesc.waitQw0(true, false, false, 0x5A5A), InvDesc.waitQw1(status), 0, 0);
            submit();
            try {
                assertThat(rig.ram.read32(status)).as("wait status").isEqualTo(0x5A5A);
            } catch (MemoryAccessException e) {
                throw new AssertionError(e);
            }
        }

        void translate(FuzzedDataProvider data) {
            int sid = data.consumeBoolean() ? SID : data.consumeInt(0, 0xFFFF);
            int pasid = data.consumeBoolean() ? data.pickValue(new int[] {-1, 0, PASID}) : data.consumeInt(-1, 1 << 20);
            long iova = data.consumeBoolean() ? IOVA + data.consumeInt(0, 0x2000) : data.consumeLong();
            Translation t = vtd.translate(sid, pasid, iova, data.consumeInt(0, 7), translation);
            assertThat(t.outcome()).isNotNull();
        }

        void dma(FuzzedDataProvider data) {
            long iova = IOVA + data.consumeInt(-64, 0x1100);
            int len = data.consumeInt(0, buffer.length);
            int pasid = data.pickValue(new int[] {-1, PASID});
            if (data.consumeBoolean()) {
                engine.write(vtd, SID, pasid, iova, buffer, 0, len, data.consumeInt(0, 7), outcome);
            } else {
                engine.read(vtd, SID, pasid, iova, buffer, 0, len, data.consumeInt(0, 7), outcome);
            }
        }
    }

    /** Register writes and reads at arbitrary offsets and widths, with a translation or a DMA now and then. */
    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void mmio(FuzzedDataProvider data) {
        Setup s = new Setup(data.consumeBoolean(), data.consumeBoolean());
        long size = s.vtd.mmioSize();
        int n = data.consumeInt(1, 48);
        for (int i = 0; i < n && data.remainingBytes() > 0; i++) {
            int op = data.consumeInt(0, 9);
            if (op <= 6) {
                int width = data.consumeBoolean() ? 8 : 4;
                long offset = switch (data.consumeInt(0, 3)) {
                    case 0 -> data.consumeLong(0, 0x3F) * 4;
                    case 1 -> 0x400 + data.consumeLong(0, 0x3F) * 4;
                    case 2 -> 0x500 + data.consumeLong(0, 0x3F) * 4;
                    default -> data.consumeLong(0, size / 4 - 1) * 4;
                };
                offset = Math.min(offset & ~(long) (width - 1), size - width);
                if (op <= 4) {
                    long value = data.consumeLong();
                    s.vtd.mmioWrite(offset, width, width == 4 ? value & 0xFFFF_FFFFL : value);
                } else {
                    long v = s.vtd.mmioRead(offset, width);
                    assertThat(width == 8 || (v >>> 32) == 0).as("a 32-bit read fits 32 bits").isTrue();
                }
            } else if (op <= 8) {
                s.translate(data);
            } else {
                s.dma(data);
            }
        }
        s.vtd.reset();
        assertThat(s.vtd.mmioRead(VtdRegs.GSTS, 4)).as("GSTS after reset").isZero();
    }

    /**
     * Arbitrary 128- or 256-bit invalidation descriptors (type often a real one), submitted in batches with
     * Linux's recovery from a queue error; at the end a status-writing wait must still be carried out.
     */
    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void invalidationQueue(FuzzedDataProvider data) {
        Setup s = new Setup(data.consumeBoolean(), data.consumeBoolean());
        int batches = data.consumeInt(1, 8);
        for (int b = 0; b < batches && data.remainingBytes() > 0; b++) {
            int n = data.consumeInt(1, 6);
            for (int i = 0; i < n; i++) {
                long qw0 = data.consumeLong();
                if (data.consumeBoolean()) {
                    qw0 = (qw0 & ~0xE0FL) | data.consumeInt(1, 9);
                }
                long qw1 = data.consumeBoolean() ? s.status : data.consumeLong();
                boolean upper = data.consumeInt(0, 3) == 0;
                s.put(qw0, qw1, upper ? data.consumeLong() : 0, upper ? data.consumeLong() : 0);
            }
            s.submit();
            s.recover();
            s.translate(data);
        }
        s.assertQueueDrains();
    }

    /**
     * Arbitrary changes to the root entry, the context entry, the PASID-directory entry or a PASID entry of the
     * translating source id (or to another context entry), then (usually) global invalidations, then translations.
     */
    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void descriptors(FuzzedDataProvider data) {
        Setup s = new Setup(data.consumeBoolean(), false);
        VtdRig rig = s.rig;
        int rounds = data.consumeInt(1, 4);
        for (int r = 0; r < rounds && data.remainingBytes() > 0; r++) {
            long at;
            int words;
            switch (data.consumeInt(0, 4)) {
                case 0 -> {
                    at = VtdTables.rootEntryAddress(rig.rootTable, VtdTables.bus(SID));
                    words = 2;
                }
                case 1 -> {
                    at = s.scalable ? rig.smContextEntryAddress(SID) : rig.contextEntryAddress(SID);
                    words = s.scalable ? 4 : 2;
                }
                case 2 -> {
                    int other = data.consumeInt(0, 0xFFFF);
                    at = s.scalable ? rig.smContextEntryAddress(other) : rig.contextEntryAddress(other);
                    words = s.scalable ? 4 : 2;
                }
                case 3 -> {
                    at = s.scalable ? s.dir + 8L * data.consumeInt(0, 1) : rig.contextEntryAddress(SID) + 8;
                    words = 1;
                }
                default -> {
                    at = s.scalable ? rig.pasidEntryAddress(s.dir, data.pickValue(new int[] {0, PASID}))
                            : rig.contextEntryAddress(SID);
                    words = s.scalable ? 8 : 2;
                }
            }
            // the entry's address comes from the (fuzzed) tables above it: it may be outside RAM, where the device
            // (which reads it the same way) reports the fault and there is nothing for the harness to mutate
            for (int w = 0; w < words && rig.isRam(at + 8L * w); w++) {
                rig.write(at + 8L * w, FuzzWords.mutate(data, rig.read(at + 8L * w)));
            }
            if (data.consumeInt(0, 3) != 0) {
                s.invalidateAll();
            }
            int t = data.consumeInt(1, 4);
            for (int i = 0; i < t; i++) {
                s.translate(data);
            }
        }
        s.assertQueueDrains();
    }

    /**
     * Arbitrary second-stage (or, in scalable mode, first-stage) paging-structure memory under a walk: entries that
     * point at tables of a small pool, leaves with arbitrary attributes, arbitrary words, then translations, with
     * or without IOTLB invalidation in between.
     */
    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void pageTables(FuzzedDataProvider data) {
        Setup s = new Setup(data.consumeBoolean(), false);
        VtdRig rig = s.rig;
        long[] pool = new long[5];
        pool[0] = s.ss.root;
        for (int i = 1; i < pool.length; i++) {
            pool[i] = rig.page();
        }
        int steps = data.consumeInt(1, 40);
        for (int i = 0; i < steps && data.remainingBytes() > 0; i++) {
            int op = data.consumeInt(0, 7);
            if (op <= 4) {
                long slot = data.pickValue(pool) + 8L * data.consumeInt(0, 511);
                long value = switch (data.consumeInt(0, 3)) {
                    case 0 -> data.pickValue(pool) | (data.consumeLong() & 0xFFF0_0000_0000_0FFFL);
                    case 1 -> data.pickValue(pool) | RW | (data.consumeBoolean() ? 1L << 7 : 0);
                    case 2 -> 0;
                    default -> data.consumeLong();
                };
                rig.write(slot, value);
            } else if (op == 5) {
                s.invalidateAll();
            } else {
                s.translate(data);
            }
        }
        s.assertQueueDrains();
    }
}
