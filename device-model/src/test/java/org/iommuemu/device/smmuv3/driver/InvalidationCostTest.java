package org.iommuemu.device.smmuv3.driver;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.smmuv3.SmmuV3Domains;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.junit.jupiter.api.Test;

/**
 * The shape of the Tegra210 measurements that motivated range flushing, in the device's simulated time (which is
 * deterministic: the cost model charges each MMIO access, queue read, command and CMD_SYNC): unmapping 4 MiB of
 * 4 KB pages (a) page by page, each with its own TLBI and CMD_SYNC, against (b) one unmap, one range TLBI, one
 * CMD_SYNC.
 */
class InvalidationCostTest {
    private static final long IOVA = 0x4000_0000L;
    private static final long SIZE = 4L << 20;
    private static final int SID = 0x30;

    private record Run(DriverRig rig, IommuDomain domain) {
        long simNs() {
            return rig.smmu.stats().simTimeNs();
        }
    }

    private static Run mapped(boolean ril) throws Exception {
        DriverRig rig = DriverRig.started(SmmuV3Config.builder().rangeInvalidation(ril).build(),
                SmmuV3DriverOptions.defaults());
        SmmuV3Domains smmu = new SmmuV3Domains(rig.driver, "smmu0", Integer.MAX_VALUE);
        IommuDomain d = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 48), rig.ram, rig.alloc).name("bench")
                .flushPolicy(FlushPolicy.STRICT).build();
        smmu.attachStream(d, SmmuV3Domains.Stage.S1, SID);
        long pa = rig.alloc.allocBytes(SIZE, "dma");
        for (long off = 0; off < SIZE; off += 4096) { // 4K pages, as the page-by-page driver maps them
            d.map(IOVA + off, pa + off, 4096, Prot.READ | Prot.WRITE);
        }
        return new Run(rig, d);
    }

    @Test
    void rangeInvalidationWithOneSyncCostsAtLeast50TimesLessSimulatedTimeThanPerPage() throws Exception {
        Run perPage = mapped(false);
        long syncs0 = perPage.rig.executed(CommandOp.CMD_SYNC);
        long t0 = perPage.simNs();
        for (long off = 0; off < SIZE; off += 4096) {
            perPage.domain.unmap(IOVA + off, 4096);
        }
        long perPageNs = perPage.simNs() - t0;
        assertThat(perPage.rig.executed(CommandOp.TLBI_NH_VA)).isEqualTo(1024);
        assertThat(perPage.rig.executed(CommandOp.CMD_SYNC) - syncs0).isEqualTo(1024);

        Run range = mapped(true);
        long before = range.rig.executed(CommandOp.TLBI_NH_VA);
        long t1 = range.simNs();
        assertThat(range.domain.unmap(IOVA, SIZE)).isEqualTo(SIZE);
        long rangeNs = range.simNs() - t1;
        assertThat(range.rig.executed(CommandOp.TLBI_NH_VA) - before).isEqualTo(1);

        assertThat(rangeNs).as("simulated ns: per page %d, range %d (%.0fx)", perPageNs, rangeNs,
                (double) perPageNs / rangeNs).isPositive().isLessThanOrEqualTo(perPageNs / 50);
    }
}
