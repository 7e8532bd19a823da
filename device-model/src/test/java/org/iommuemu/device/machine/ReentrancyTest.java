package org.iommuemu.device.machine;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Device re-entrancy. A DMA reaches RAM only: an output address in the MSI doorbell window or anywhere else that is
 * not RAM (the IOMMUs' register windows are not in the physical address space a master can reach) is an external
 * abort, and raises no interrupt. An interrupt handler whose own MMIO or DMA raises further interrupts is not
 * re-entered: what it raises is delivered by the running delivery loop, one at a time, at a constant stack depth.
 */
class ReentrancyTest {
    private final Machine machine = new Machine(MachineConfig.defaults());

    @Test
    void aDmaToTheMsiDoorbellOrOutsideRamIsAnExternalAbortThatRaisesNothing() {
        long doorbell = machine.interrupts().doorbellBase();
        for (String iommu : new String[] {"smmu0", "dmar0"}) { // both pass DMA through before they are enabled
            IommuDevice d = machine.iommu(iommu);
            long raised = machine.interrupts().raised();
            for (long pa : new long[] {doorbell, doorbell + 0x40, 0, 0x1000}) {
                byte[] msi = {1, 0, 0, 0};
                DmaOutcome out = machine.dma().write(d, 3, -1, pa, msi, 0, 4, 0, new DmaOutcome());
                assertThat(out.status()).as("%s write to %x", iommu, pa).isEqualTo(DmaOutcome.Status.FAULT);
                assertThat(out.faultType()).isEqualTo(FaultType.EXTERNAL_ABORT);
                assertThat(out.bytesDone()).isZero();
                out = machine.dma().read(d, 3, -1, pa, new byte[4], 0, 4, 0, new DmaOutcome());
                assertThat(out.faultType()).as("%s read of %x", iommu, pa).isEqualTo(FaultType.EXTERNAL_ABORT);
            }
            assertThat(machine.interrupts().raised()).as("a DMA write to the doorbell is not an MSI")
                    .isEqualTo(raised);
        }
    }

    @Test
    void aHandlerWhoseMmioAndDmaRaiseInterruptsIsNeverReEntered() {
        IommuDevice smmu = machine.iommu("smmu0");
        smmu.mmioWrite(0x44, 4, (1L << 31) | (1L << 20)); // GBPA.ABORT: every DMA of the stream aborts
        PendingInterrupts<String> pending = new PendingInterrupts<>("smmu0", machine.interrupts(), (s, ram) -> s);
        // As the machine does after a faulting DMA: let the driver take the interrupts it raised
        machine.dma().afterFault(pending::deliver);
        int rounds = 100_000;
        AtomicInteger handled = new AtomicInteger();
        AtomicInteger depth = new AtomicInteger();
        AtomicInteger deepest = new AtomicInteger();
        AtomicInteger aborted = new AtomicInteger();
        pending.handler(irq -> {
            deepest.accumulateAndGet(depth.incrementAndGet(), Math::max);
            try {
                if (handled.incrementAndGet() < rounds) {
                    // The handler programs the device (MMIO), which raises the next interrupt, then issues DMA
                    // that faults; the fault's hook delivers pending interrupts, as after any DMA fault
                    smmu.mmioWrite(0x44, 4, (1L << 31) | (1L << 20));
                    machine.interrupts().wired("smmu0", "gerror");
                    DmaOutcome out = machine.dma().read(smmu, 1, -1, machine.config().ram().get(0).base(),
                            new byte[8], 0, 8, 0, new DmaOutcome());
                    if (out.faultType() == FaultType.ABORTED) {
                        aborted.incrementAndGet();
                    }
                    pending.deliver(); // as the end of every in-process MMIO access does
                }
            } finally {
                depth.decrementAndGet();
            }
        });
        machine.interrupts().wired("smmu0", "gerror");
        pending.deliver();
        assertThat(handled.get()).as("every interrupt was handled").isEqualTo(rounds);
        assertThat(deepest.get()).as("the handler never ran inside itself").isEqualTo(1);
        assertThat(aborted.get()).as("each DMA the handler issued aborted").isEqualTo(rounds - 1);
        assertThat(pending.size()).isZero();
        pending.close();
    }
}
