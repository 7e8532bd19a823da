package org.iommuemu.device.machine;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The ATS port: completion, streams without an ATC, the bound on unread invalidations, a device that leaves. */
class AtcPortTest {
    @Test
    void aSyncIsPendingUntilEveryInvalidationBeforeItIsCompleted() {
        AtcPort port = new AtcPort("smmu0", 60_000);
        AtcPort.Endpoint dev = port.register(7);
        assertThat(port.syncState()).isEqualTo(AtcPort.COMPLETE);
        port.invalidate(7, false, 3, 0x12345, 13);
        port.invalidate(9, true, -1, 0, 64); // no ATC on stream 9: done at once
        assertThat(port.syncState()).isEqualTo(AtcPort.PENDING);
        AtcPort.Invalidation inv = dev.poll();
        assertThat(inv.address()).as("aligned down to its 8 KB span").isEqualTo(0x12000);
        assertThat(inv.substreamId()).isEqualTo(3);
        assertThat(dev.poll()).isNull();
        assertThat(dev.complete(inv.id() + 100)).as("an unknown id is ignored").isFalse();
        assertThat(port.syncState()).isEqualTo(AtcPort.PENDING);
        assertThat(dev.complete(inv.id())).isTrue();
        assertThat(port.syncState()).isEqualTo(AtcPort.COMPLETE);
        assertThat(port.stats()).isEqualTo(new AtcPort.Stats(0, 0, 1, 1, 0, 1));
    }

    @Test
    void aDeviceThatDoesNotReadFailsTheSyncOnceItsQueueIsFull() {
        AtcPort port = new AtcPort("smmu0", 60_000);
        port.register(1);
        for (int i = 0; i < AtcPort.MAX_QUEUED; i++) {
            port.invalidate(1, false, -1, (long) i << 12, 12);
        }
        assertThat(port.syncState()).isEqualTo(AtcPort.PENDING);
        port.invalidate(1, false, -1, 0x100_0000, 12);
        assertThat(port.syncState()).as("one too many: not delivered, the sync fails").isEqualTo(AtcPort.TIMED_OUT);
        assertThat(port.failedStream()).isEqualTo(1);
        assertThat(port.stats().timedOut()).isEqualTo(AtcPort.MAX_QUEUED + 1);
        assertThat(port.syncState()).as("a retried sync completes").isEqualTo(AtcPort.COMPLETE);
    }

    @Test
    void aDeviceThatLeavesFailsItsOutstandingInvalidationsAtOnce() {
        AtcPort port = new AtcPort("dmar0", 60_000);
        AtcPort.Endpoint dev = port.register(0x10);
        port.invalidate(0x10, false, -1, 0, 12);
        dev.disconnect(false);
        assertThat(port.syncState()).isEqualTo(AtcPort.TIMED_OUT);
        port.invalidate(0x10, false, -1, 0, 12);
        assertThat(port.syncState()).as("the session lives: the next one waits for its next stream")
                .isEqualTo(AtcPort.PENDING);
        dev.disconnect(true);
        assertThat(port.syncState()).isEqualTo(AtcPort.TIMED_OUT);
        port.invalidate(0x10, false, -1, 0, 12);
        assertThat(port.syncState()).as("no ATC any more: done at once").isEqualTo(AtcPort.COMPLETE);
        assertThat(port.stats().withoutDevice()).isEqualTo(1);
    }

    @Test
    void anInvalidationPastItsDeadlineTimesOut() throws Exception {
        AtcPort port = new AtcPort("smmu0", 1);
        port.register(2);
        port.invalidate(2, false, -1, 0, 12);
        int state = AtcPort.PENDING;
        for (int i = 0; i < 60_000 && state == AtcPort.PENDING; i++) {
            Thread.sleep(1);
            state = port.syncState();
        }
        assertThat(state).isEqualTo(AtcPort.TIMED_OUT);
        assertThat(port.failedStream()).isEqualTo(2);
    }
}
