package org.iommuemu.device.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.Translation;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Bus threads translating through one SMMU while the driver remaps pages and invalidates through the command
 * queue. Each remap moves a page to a fresh physical page (round r maps page {@code pas[r]}), so every result
 * names the round it came from: a translation started after round r's TLBI + CMD_SYNC completed must see round r
 * or later, and none may see a round whose descriptor was not yet written, or any other address.
 *
 * <p>No sleeps: the driver waits (yielding) until the translators have made progress in each round, and the
 * threads start together on a latch. The executor's timeout only guards against a hang.
 */
class SmmuConcurrencyTest {
    private static final long IOVA = 0x7_0000_0000L;
    private static final long OA_MASK = Bits.maskHiLo(47, 12);
    private static final int TRANSLATORS = 3;
    private static final int ROUNDS = 120;
    /** Translations (by all threads together) the driver waits for in each round. */
    private static final long PROGRESS_PER_ROUND = 60;

    private final ExecutorService pool = Executors.newFixedThreadPool(TRANSLATORS + 1);

    @AfterEach
    void shutdown() throws InterruptedException {
        pool.shutdownNow();
        assertThat(pool.awaitTermination(30, TimeUnit.SECONDS)).isTrue();
    }

    /** One remappable page of one stream: its leaf descriptor and the physical page of each round. */
    private record Page(int sid, int ssid, int asid, int vmid, boolean stage2, long slot, long[] pas) {}

    private static Page stage1Page(SmmuTestRig rig, int sid, int asid) {
        PageTable pt = rig.stage1(12, 48);
        long[] pas = pagesPerRound(rig);
        rig.map(pt, IOVA, pas[0], 4096, Prot.READ | Prot.WRITE);
        long cds = rig.cdTable(0);
        rig.writeCd(cds, 0, SmmuTestRig.cdFor(pt, asid));
        rig.installSte(sid, Ste.stage1(cds, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0));
        return new Page(sid, -1, asid, 0, false, SmmuTestRig.leafSlot(pt, IOVA), pas);
    }

    private static Page stage2Page(SmmuTestRig rig, int sid, int vmid) {
        PageTable pt = rig.stage2(12, 40);
        long[] pas = pagesPerRound(rig);
        rig.map(pt, IOVA, pas[0], 4096, Prot.READ | Prot.WRITE);
        rig.installSte(sid, SmmuTestRig.s2Ste(vmid, pt));
        return new Page(sid, -1, -1, vmid, true, SmmuTestRig.leafSlot(pt, IOVA), pas);
    }

    private static long[] pagesPerRound(SmmuTestRig rig) {
        long[] pas = new long[ROUNDS + 1];
        for (int r = 0; r <= ROUNDS; r++) {
            pas[r] = rig.page();
        }
        return pas;
    }

    /** The round whose page {@code pa} (with {@code offset}) is, or -1 if it is none of them. */
    private static int roundOf(Page p, long pa, long offset) {
        for (int r = 0; r < p.pas.length; r++) {
            if (p.pas[r] + offset == pa) {
                return r;
            }
        }
        return -1;
    }

    /** Round r's invalidation of page {@code p}, varying the command with the round. */
    private static Command tlbi(Page p, int r) {
        if (p.stage2) {
            return r % 2 == 0 ? Command.tlbiS2Ipa(p.vmid, IOVA, true) : Command.tlbiS12Vmall(p.vmid);
        }
        return switch (r % 3) {
            case 0 -> Command.tlbiNhVa(0, p.asid, IOVA, true);
            case 1 -> Command.tlbiNhAsid(0, p.asid);
            default -> Command.tlbiNhVaa(0, IOVA, true);
        };
    }

    @Test
    void translatorsSeeOldOrNewWhileTheDriverRemapsAndOnlyNewAfterTheSync() throws Exception {
        SmmuTestRig rig = SmmuTestRig.started();
        // each translator has its own stage-1 stream; all of them share one stage-1 and one stage-2 stream
        List<Page> pages = new ArrayList<>();
        for (int t = 0; t < TRANSLATORS; t++) {
            pages.add(stage1Page(rig, 1 + t, 1 + t));
        }
        Page shared1 = stage1Page(rig, 20, 20);
        Page shared2 = stage2Page(rig, 21, 9);
        pages.add(shared1);
        pages.add(shared2);

        AtomicLong completedRound = new AtomicLong(); // rounds whose TLBI + CMD_SYNC completed
        AtomicLong progress = new AtomicLong();
        Queue<String> problems = new ConcurrentLinkedQueue<>();
        CountDownLatch start = new CountDownLatch(1);
        List<Future<long[]>> translators = new ArrayList<>();
        for (int t = 0; t < TRANSLATORS; t++) {
            Page[] mine = {pages.get(t), shared1, shared2};
            translators.add(pool.submit(() -> {
                Translation out = new Translation();
                start.await();
                long i = 0;
                while (completedRound.get() < ROUNDS) {
                    Page p = mine[(int) (i % mine.length)];
                    long offset = (i * 72) & 0xFF8;
                    int access = (i & 4) != 0 ? Access.WRITE : 0;
                    long before = completedRound.get();
                    rig.smmu.translate(p.sid, p.ssid, IOVA + offset, access, out);
                    long after = completedRound.get();
                    if (!out.isOk()) {
                        problems.add("stream " + p.sid + ": " + out);
                    } else {
                        int r = roundOf(p, out.physicalAddress(), offset);
                        if (r < 0) {
                            problems.add("stream " + p.sid + ": garbage " + Bits.hex(out.physicalAddress()));
                        } else if (r < before || r > after + 1) {
                            problems.add("stream " + p.sid + ": round " + r + " seen between completed rounds "
                                    + before + " and " + after);
                        }
                    }
                    progress.incrementAndGet();
                    i++;
                }
                // the last round is complete: every stream translates to the last page
                for (Page p : mine) {
                    long pa = rig.smmu.translate(p.sid, p.ssid, IOVA + 0x10, 0, out).physicalAddress();
                    if (!out.isOk() || pa != p.pas[ROUNDS] + 0x10) {
                        problems.add("stream " + p.sid + " after the last sync: " + out);
                    }
                }
                return new long[] {i};
            }));
        }

        Future<?> driver = pool.submit(() -> {
            start.await();
            for (int r = 1; r <= ROUNDS; r++) {
                long target = progress.get() + PROGRESS_PER_ROUND;
                while (progress.get() < target) {
                    Thread.yield();
                }
                Command[] tlbis = new Command[pages.size()];
                for (int k = 0; k < pages.size(); k++) {
                    Page p = pages.get(k);
                    long d = rig.r64(p.slot);
                    rig.w64(p.slot, (d & ~OA_MASK) | p.pas[r]); // same attributes, next round's page
                    tlbis[k] = tlbi(p, r);
                }
                rig.issue(tlbis); // ... + CMD_SYNC, and CONS checked past it
                completedRound.set(r);
            }
            return null;
        });

        start.countDown();
        driver.get(120, TimeUnit.SECONDS);
        long total = 0;
        for (Future<long[]> f : translators) {
            total += f.get(120, TimeUnit.SECONDS)[0];
        }

        assertThat(problems).isEmpty();
        assertThat(total).isGreaterThanOrEqualTo(ROUNDS * PROGRESS_PER_ROUND);
        assertThat(rig.stats().faults()).isZero();
        rig.assertNoEvents();
        var tlb = rig.cache("iotlb");
        assertThat(tlb.hits() + tlb.misses()).as("one IOTLB lookup per translation, summed over threads")
                .isEqualTo(rig.stats().translations());
    }

    @Test
    void concurrentFaultsAreRecordedOnceOrCountedLost() throws Exception {
        SmmuTestRig rig = new SmmuTestRig(SmmuTestRig.smallQueues().build());
        rig.commandQueue(8).eventQueue(4).linearStreamTable(8).enable();
        int perThread = 400;
        CountDownLatch start = new CountDownLatch(1);
        AtomicLong producersLeft = new AtomicLong(TRANSLATORS);
        List<Future<?>> producers = new ArrayList<>();
        for (int t = 0; t < TRANSLATORS; t++) {
            int base = 16 + t * 64; // thread t faults on streams base .. base+63 (all STEs invalid)
            producers.add(pool.submit(() -> {
                start.await();
                Translation out = new Translation();
                for (int i = 0; i < perThread; i++) {
                    rig.smmu.translate(base + (i & 63), -1, 0x1000, 0, out);
                    if (out.code() != EventType.C_BAD_STE) {
                        throw new AssertionError(out.toString());
                    }
                }
                producersLeft.decrementAndGet();
                return null;
            }));
        }
        Future<List<EventRecord>> consumer = pool.submit(() -> {
            List<EventRecord> seen = new ArrayList<>();
            start.await();
            while (producersLeft.get() > 0) {
                seen.addAll(rig.events());
                Thread.yield();
            }
            seen.addAll(rig.events());
            return seen;
        });

        start.countDown();
        for (Future<?> f : producers) {
            f.get(120, TimeUnit.SECONDS);
        }
        List<EventRecord> seen = consumer.get(120, TimeUnit.SECONDS);

        long total = (long) TRANSLATORS * perThread;
        assertThat(seen.size() + rig.stats().eventsLost()).as("recorded + lost = faults").isEqualTo(total);
        assertThat(rig.eventsOfType(EventType.C_BAD_STE)).isEqualTo(seen.size());
        assertThat(seen).allSatisfy(e -> {
            assertThat(e.type()).isEqualTo(EventType.C_BAD_STE);
            assertThat(e.streamId()).isBetween(16, 16 + TRANSLATORS * 64 - 1);
        });
    }
}
