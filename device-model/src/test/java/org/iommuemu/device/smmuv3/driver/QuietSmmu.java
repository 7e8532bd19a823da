package org.iommuemu.device.smmuv3.driver;

import java.util.List;
import org.iommuemu.core.driver.smmuv3.SmmuV3Domains;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.driver.smmuv3.TlbiPlanner;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.device.machine.InProcessSmmuHost;
import org.iommuemu.device.machine.InterruptHub;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.device.smmuv3.SmmuV3Device;

/**
 * An SMMU, its initialised driver and its domains built as the bus builds them — nobody keeps interrupt records
 * (DriverRig's recorder would allocate) — for the tests that prove a hot path allocates nothing.
 */
record QuietSmmu(SparseRam ram, BuddyPageAllocator alloc, SmmuV3Device device, SmmuV3Driver driver,
        SmmuV3Domains smmu) {
    /** One round of the operation measured. */
    @FunctionalInterface
    interface Round {
        void run() throws Exception;
    }

    static QuietSmmu create() {
        return create(SmmuV3Config.defaults());
    }

    /** {@link #create()} with an SMMU configured by {@code config}. */
    static QuietSmmu create(SmmuV3Config config) {
        SparseRam ram = new SparseRam(List.of(new RamRegion(DriverRig.RAM_BASE, DriverRig.RAM_SIZE)));
        BuddyPageAllocator alloc = new BuddyPageAllocator(ram, DriverRig.RAM_BASE, DriverRig.RAM_SIZE);
        InterruptHub hub = new InterruptHub(ram);
        SmmuV3Device device = new SmmuV3Device("smmu0", config, ram, hub);
        SmmuV3Driver driver = SmmuV3Driver.probe(new InProcessSmmuHost(device, ram, alloc, hub),
                SmmuV3DriverOptions.defaults());
        driver.init();
        return new QuietSmmu(ram, alloc, device, driver,
                new SmmuV3Domains(driver, "smmu0", TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD));
    }

    /**
     * Bytes this thread allocates running {@code round} {@code rounds} times: after two warm-up windows, the least
     * of three measured ones, so a per-round allocation shows and a one-off (class loading, a late compilation)
     * does not. Skips the test where HotSpot's per-thread allocation counter is missing.
     */
    @SuppressWarnings("deprecation") // Thread.getId: threadId() arrives in Java 19
    static long leastAllocated(int rounds, Round round) throws Exception {
        java.lang.management.ThreadMXBean plain = java.lang.management.ManagementFactory.getThreadMXBean();
        org.junit.jupiter.api.Assumptions.assumeTrue(plain instanceof com.sun.management.ThreadMXBean,
                "no HotSpot thread MXBean");
        com.sun.management.ThreadMXBean bean = (com.sun.management.ThreadMXBean) plain;
        long thread = Thread.currentThread().getId();
        long bytes = Long.MAX_VALUE;
        for (int window = -2; window < 3; window++) {
            long before = bean.getThreadAllocatedBytes(thread);
            for (int i = 0; i < rounds; i++) {
                round.run();
            }
            if (window >= 0) {
                bytes = Math.min(bytes, bean.getThreadAllocatedBytes(thread) - before);
            }
        }
        return bytes;
    }
}
