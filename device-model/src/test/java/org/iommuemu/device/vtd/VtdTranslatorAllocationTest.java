package org.iommuemu.device.vtd;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.vtd.VtdRegs;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.vtd.VtdRig.FsTable;
import org.iommuemu.device.vtd.VtdRig.SsTable;
import org.junit.jupiter.api.Test;

/**
 * The translation path allocates nothing: micro-TLB hits, IOTLB hits, walks after an IOTLB invalidation (full or
 * resumed from the paging-structure cache), nested walks with their second-stage steps, and faults. The fault
 * reporter here discards reports (the recording one allocates).
 */
class VtdTranslatorAllocationTest {
    private static final int SID = 0x0210;
    private static final int PASID = 3;
    private static final int DID = 5;
    private static final long PA = 0x9000_0000L;
    private static final int ROUNDS = 2_000;

    private final Translation out = new Translation();
    private long sink;

    /** One round of the operation measured. */
    @FunctionalInterface
    interface Round {
        void run();
    }

    /**
     * Bytes this thread allocates running {@code round} {@link #ROUNDS} times: the least of three windows after two
     * warm-up ones, so that a per-round allocation shows and a one-off (class loading, compilation) does not.
     */
    @SuppressWarnings("deprecation") // Thread.getId: threadId() arrives in Java 19
    private static long leastAllocated(Round round) {
        java.lang.management.ThreadMXBean plain = java.lang.management.ManagementFactory.getThreadMXBean();
        org.junit.jupiter.api.Assumptions.assumeTrue(plain instanceof com.sun.management.ThreadMXBean,
                "no HotSpot thread MXBean");
        com.sun.management.ThreadMXBean bean = (com.sun.management.ThreadMXBean) plain;
        long thread = Thread.currentThread().getId();
        long bytes = Long.MAX_VALUE;
        for (int window = -2; window < 3; window++) {
            long before = bean.getThreadAllocatedBytes(thread);
            for (int i = 0; i < ROUNDS; i++) {
                round.run();
            }
            if (window >= 0) {
                bytes = Math.min(bytes, bean.getThreadAllocatedBytes(thread) - before);
            }
        }
        return bytes;
    }

    private void translate(VtdRig rig, int pasid, long iova, int access, boolean ok) {
        Translation t = rig.translator.translate(rig.rootTable, rig.ttm, SID, pasid, iova, access, out);
        if (t.isOk() != ok) {
            throw new AssertionError(t.toString());
        }
        sink += t.physicalAddress();
    }

    private static VtdRig quiet(int ttm) {
        return VtdRig.withReporter(VtdConfig.defaults(), ttm, (sid, pasid, address, reason, w, p, x) -> { });
    }

    @Test
    void legacyHitAndMissPaths() {
        VtdRig rig = quiet(VtdRegs.TTM_LEGACY);
        SsTable ss = rig.ss(4);
        rig.context(SID, ss.root, 4, DID);
        ss.map(0x1000, PA, 12, 3);
        ss.map(0x2000, PA + 0x1000, 12, 3);

        assertThat(leastAllocated(() -> translate(rig, -1, 0x1008, Access.WRITE, true))).as("micro-TLB hit")
                .isZero();
        assertThat(leastAllocated(() -> {
            translate(rig, -1, 0x1008, 0, true);
            translate(rig, -1, 0x2008, 0, true);
        })).as("IOTLB hits").isZero();
        assertThat(leastAllocated(() -> {
            rig.caches.invalidateIotlbAll();
            translate(rig, -1, 0x1008, Access.WRITE, true);
        })).as("full walk").isZero();
        assertThat(leastAllocated(() -> {
            rig.caches.invalidateIotlbPage(DID, 0x1000, 0, true);
            translate(rig, -1, 0x1008, 0, true);
        })).as("walk resumed from the paging-structure cache").isZero();
        assertThat(leastAllocated(() -> {
            translate(rig, -1, 0x5008, 0, false);
            translate(rig, -1, 1L << 50, 0, false);
        })).as("faults").isZero();
        assertThat(sink).isNotZero();
    }

    @Test
    void scalableHitAndMissPaths() {
        VtdRig rig = quiet(VtdRegs.TTM_SCALABLE);
        FsTable fs = rig.fs(4);
        SsTable ss = rig.ss(4);
        fs.map(0x1000, PA, 12, 0x67);
        long dir = rig.smContext(SID, 0);
        rig.firstStage(dir, PASID, DID, fs);
        // a nested PASID whose first-stage tables the second stage maps to themselves
        FsTable nestedFs = rig.fs(4);
        nestedFs.map(0, 0x4000_0000L, 12, 0x67);
        ss.map(nestedFs.root, nestedFs.root, 12, 3);
        for (int level = 3; level >= 1; level--) {
            long table = nestedFs.get(0, level) & 0xF_FFFF_FFFF_F000L;
            ss.map(table, table, 12, 3);
        }
        ss.map(0x4000_0000L, PA, 12, 3);
        rig.nested(dir, PASID + 1, DID, nestedFs, ss);

        assertThat(leastAllocated(() -> translate(rig, PASID, 0x1008, Access.WRITE, true))).as("micro-TLB hit")
                .isZero();
        assertThat(leastAllocated(() -> {
            translate(rig, PASID, 0x1008, 0, true);
            translate(rig, PASID + 1, 0x8, 0, true);
        })).as("IOTLB hits, two PASIDs").isZero();
        assertThat(leastAllocated(() -> {
            rig.caches.invalidateIotlbAll();
            translate(rig, PASID, 0x1008, Access.WRITE, true);
            translate(rig, PASID + 1, 0x8, Access.WRITE, true);
        })).as("first-stage and nested walks").isZero();
        assertThat(leastAllocated(() -> {
            translate(rig, PASID, 0x7000, 0, false);
            translate(rig, PASID, 0x1008, Access.PRIVILEGED | Access.INSTRUCTION, false);
        })).as("faults").isZero();
        assertThat(sink).isNotZero();
    }
}
