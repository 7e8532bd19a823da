package org.iommuemu.core.driver.vtd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.iommuemu.core.vtd.VtdRegs.*;

import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.vtd.InvDesc;
import org.junit.jupiter.api.Test;

class InvalidationQueueTest {
    private final FakeVtd hw = new FakeVtd();
    private final List<Object[]> errors = new ArrayList<>();

    private VtdDriver start(VtdDriverOptions options) {
        VtdDriver d = VtdDriver.probe(hw, options);
        d.addListener(new VtdListener() {
            @Override
            public void onQueueError(QueueError error, int index, long qw0, long qw1, long iqercd) {
                errors.add(new Object[] {error, index, qw0, qw1});
            }
        });
        d.init();
        hw.executed.clear();
        return d;
    }

    private static long[] iotlbDomainDescriptors(int n) {
        long[] words = new long[2 * n];
        for (int i = 0; i < n; i++) {
            words[2 * i] = InvDesc.iotlb(IOTLB_DOMAIN, i + 1, false, false);
        }
        return words;
    }

    @Test
    void batchesEndWithOneStatusWriteWait() {
        VtdDriver d = start(VtdDriverOptions.defaults());
        d.submit(iotlbDomainDescriptors(40));
        assertThat(hw.invalidations()).hasSize(40);
        assertThat(hw.waits()).isEqualTo(3); // 16 + 16 + 8
        assertThat(hw.invalidations()).extracting(x -> (int) Bits.extract(x.qw0(), InvDesc.DID, 16))
                .containsExactlyElementsOf(java.util.stream.IntStream.rangeClosed(1, 40).boxed().toList());
        FakeVtd.Desc wait = hw.executed.get(16);
        assertThat(wait.type()).isEqualTo(InvDesc.TYPE_WAIT);
        assertThat(Bits.bit(wait.qw0(), InvDesc.WAIT_SW)).isTrue();
        assertThat(Bits.bit(wait.qw0(), InvDesc.WAIT_IF)).isFalse();
        assertThat(wait.qw0() >>> 32).isEqualTo(InvDesc.STATUS_DONE);
        assertThat(d.stats().descriptors()).isEqualTo(3 + 40); // init's global invalidations too
        // IQT in the 256-bit encoding: index << 5
        long iqt = hw.reg(IQT);
        assertThat(iqt & 0x1F).isZero();
        assertThat(iqt >>> 5).isEqualTo((1 + 3 + 40 + 3) % 256); // init's batch of 3 and its wait, then ours
    }

    @Test
    void theQueueWrapsAround() {
        VtdDriver d = start(VtdDriverOptions.defaults().withQueueEntriesLog2(7)); // 128 256-bit entries
        for (int round = 0; round < 20; round++) {
            d.submit(iotlbDomainDescriptors(15));
        }
        assertThat(hw.invalidations()).hasSize(300);
        assertThat(hw.waits()).isEqualTo(20);
        assertThat(hw.executed).extracting(FakeVtd.Desc::index).contains(127, 0);
    }

    @Test
    void aFullQueueWaitsForTheUnitToMakeRoom() {
        VtdDriver d = start(VtdDriverOptions.defaults().withQueueEntriesLog2(7));
        hw.perKick = 0; // the unit consumes one descriptor per register read only
        d.submit(iotlbDomainDescriptors(400));
        assertThat(hw.invalidations()).hasSize(400);
    }

    @Test
    void aHungUnitTimesOutNamingTheStatusWord() {
        VtdDriver d = start(VtdDriverOptions.defaults().withQueuePolls(50));
        hw.hung = true;
        assertThatThrownBy(d::sync).isInstanceOfSatisfying(VtdDriverException.class,
                        e -> assertThat(e.kind()).isEqualTo(VtdDriverException.Kind.QUEUE_TIMEOUT))
                .hasMessageContaining("did not complete after 50 polls").hasMessageContaining("status word")
                .hasMessageContaining("read " + InvalidationQueue.STATUS_IN_USE);
    }

    @Test
    void anInvalidDescriptorIsReportedReplacedAndTheQueueGoesOn() {
        VtdDriver d = start(VtdDriverOptions.defaults());
        long bad = InvDesc.iotlb(IOTLB_DOMAIN, 0x99, false, false) | 1L << 8; // a reserved bit
        hw.rejects = qw0 -> qw0 == bad;
        d.submit(InvDesc.iotlb(IOTLB_DOMAIN, 1, false, false), 0, bad, 0, InvDesc.iotlb(IOTLB_DOMAIN, 2, false, false), 0);
        assertThat(errors).hasSize(1);
        assertThat(errors.get(0)[0]).isEqualTo(VtdListener.QueueError.IQE);
        assertThat((long) errors.get(0)[2]).isEqualTo(bad);
        assertThat(hw.fsts & 1 << FSTS_IQE).isZero();
        // the bad slot now holds a wait; the descriptor after it ran
        assertThat(hw.invalidations()).extracting(x -> (int) Bits.extract(x.qw0(), InvDesc.DID, 16))
                .containsExactly(1, 0x99, 2);
        assertThat(d.stats().queueErrors()).isEqualTo(1);
        hw.rejects = qw0 -> false;
        d.submit(InvDesc.iotlb(IOTLB_DOMAIN, 3, false, false), 0);
        assertThat(hw.invalidations()).hasSize(4);
    }

    private List<int[]> abandoned(VtdDriver d) {
        List<int[]> abandoned = new ArrayList<>();
        d.addListener(new VtdListener() {
            @Override
            public void onInvalidationAbandoned(int sourceId, int attempts) {
                abandoned.add(new int[] {sourceId, attempts});
            }
        });
        return abandoned;
    }

    @Test
    void anIteLeavesTheNamedDevicesInvalidationsOutOfTheResubmittedBatchAndReportsThem() {
        VtdDriver d = start(VtdDriverOptions.defaults());
        List<int[]> abandoned = abandoned(d);
        d.submit(InvDesc.iotlb(IOTLB_DOMAIN, 7, false, false), 0, InvDesc.deviceTlb(0x100), 0,
                InvDesc.deviceTlb(0x200), 0);
        // 0x100 never answers: ITE naming it; the batch again without it; then 0x200 does not answer either
        assertThat(errors).extracting(e -> e[0]).containsExactly(VtdListener.QueueError.ITE,
                VtdListener.QueueError.ITE);
        assertThat(abandoned).extracting(a -> a[0]).containsExactly(0x100, 0x200);
        assertThat(hw.invalidations()).extracting(FakeVtd.Desc::type).containsExactly(
                InvDesc.TYPE_IOTLB, InvDesc.TYPE_DEVICE_TLB, InvDesc.TYPE_IOTLB, InvDesc.TYPE_DEVICE_TLB,
                InvDesc.TYPE_IOTLB);
        assertThat(hw.invalidations().get(3).qw0() >>> InvDesc.DEV_SID).isEqualTo(0x200);
        assertThat(hw.waits()).as("the last submission's wait completed").isEqualTo(1);
        assertThat(d.stats().iteRetries()).isEqualTo(2);
        assertThat(d.stats().invalidationsAbandoned()).isEqualTo(2);
        assertThat(hw.fsts & 1 << FSTS_ITE).isZero();
        d.submit(InvDesc.iotlb(IOTLB_DOMAIN, 3, false, false), 0); // the queue still works
        assertThat(hw.invalidations()).last().extracting(FakeVtd.Desc::type).isEqualTo(InvDesc.TYPE_IOTLB);
    }

    @Test
    void anIteNamingNoDeviceOfTheBatchResubmitsItWholeAtMostTwiceThenGivesItUp() {
        VtdDriver d = start(VtdDriverOptions.defaults());
        List<int[]> abandoned = abandoned(d);
        hw.iteSid = 0; // an older unit: ITESID 0
        d.submit(InvDesc.iotlb(IOTLB_DOMAIN, 7, false, false), 0, InvDesc.deviceTlb(0x100), 0);
        int attempts = InvalidationQueue.ITE_RETRIES + 1;
        assertThat(errors).extracting(e -> e[0]).hasSize(attempts).containsOnly(VtdListener.QueueError.ITE);
        assertThat(abandoned).singleElement().satisfies(a -> assertThat(a).containsExactly(0, attempts));
        assertThat(hw.invalidations()).as("the whole batch submitted each time").extracting(FakeVtd.Desc::type)
                .containsExactly(InvDesc.TYPE_IOTLB, InvDesc.TYPE_DEVICE_TLB, InvDesc.TYPE_IOTLB,
                        InvDesc.TYPE_DEVICE_TLB, InvDesc.TYPE_IOTLB, InvDesc.TYPE_DEVICE_TLB);
        assertThat(d.stats().iteRetries()).isEqualTo(InvalidationQueue.ITE_RETRIES);
        assertThat(d.stats().invalidationsAbandoned()).isEqualTo(1);
        d.submit(InvDesc.iotlb(IOTLB_DOMAIN, 3, false, false), 0);
        assertThat(hw.invalidations()).last().extracting(FakeVtd.Desc::type).isEqualTo(InvDesc.TYPE_IOTLB);
    }

    @Test
    void aDeviceThatAnswersTheResubmittedBatchCompletesIt() {
        VtdDriver d = start(VtdDriverOptions.defaults());
        List<int[]> abandoned = abandoned(d);
        hw.iteSid = 0;
        hw.deviceTlbTimeouts = 1;
        d.submit(InvDesc.deviceTlb(0x100), 0);
        assertThat(errors).extracting(e -> e[0]).containsExactly(VtdListener.QueueError.ITE);
        assertThat(abandoned).isEmpty();
        assertThat(d.stats().iteRetries()).isEqualTo(1);
        assertThat(d.stats().invalidationsAbandoned()).isZero();
        assertThat(hw.invalidations()).extracting(FakeVtd.Desc::type)
                .containsExactly(InvDesc.TYPE_DEVICE_TLB, InvDesc.TYPE_DEVICE_TLB);
        assertThat(hw.waits()).isEqualTo(1);
    }

    @Test
    void batchedSubmissionAllocatesNothing() {
        VtdDriver d = start(VtdDriverOptions.defaults());
        InvalidationQueue q = d.queue();
        hw.recording = false;
        long bytes = AllocationProbe.bytes(() -> {
            synchronized (q) {
                q.openBatch();
                for (int i = 0; i < 20; i++) {
                    q.descriptor(InvDesc.iotlb(IOTLB_DOMAIN, 5, false, false), 0);
                }
                q.closeBatch();
            }
        });
        assertThat(bytes).isZero();
    }
}
