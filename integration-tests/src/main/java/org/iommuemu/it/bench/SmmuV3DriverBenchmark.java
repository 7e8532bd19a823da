package org.iommuemu.it.bench;

import java.util.List;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.smmuv3.SmmuV3Domains;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.device.machine.InProcessSmmuHost;
import org.iommuemu.device.machine.InterruptHub;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.device.smmuv3.SmmuV3Device;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.infra.BenchmarkParams;

/**
 * Map and unmap of 4 MiB (1024 × 4K) through the SMMUv3 driver, in wall time, single thread, strict: the shape
 * of the Tegra210 figures that motivated range flushing. {@code perPage}: the SMMU without range invalidation,
 * 1024 unmap calls of one page, each with its TLBI and CMD_SYNC. {@code range}: one unmap call, one range TLBI,
 * one CMD_SYNC. The simulated time of each (deterministic, from the device's cost model) is printed once per
 * trial as "simulated ns" lines; {@code InvalidationCostTest} checks their ratio.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
public class SmmuV3DriverBenchmark {
    static final long IOVA = 0x4000_0000L;
    static final long SIZE = 4L << 20;
    static final int PAGE = 4096;
    static final int SID = 0x30;

    /** The machine, the driver and the domain (one per thread and trial). */
    @State(Scope.Thread)
    public static class Rig {
        @Param({"range", "perPage"})
        public String mode;

        private SmmuV3Device device;
        private IommuDomain domain;
        private long pa;

        @Setup(Level.Trial)
        public void setUp() throws Exception {
            SparseRam ram = new SparseRam(List.of(new RamRegion(0x8000_0000L, 256L << 20)));
            BuddyPageAllocator alloc = new BuddyPageAllocator(ram, 0x8000_0000L, 256L << 20);
            InterruptHub hub = new InterruptHub(ram);
            boolean range = mode.equals("range");
            device = new SmmuV3Device("smmu0", SmmuV3Config.builder().rangeInvalidation(range).build(), ram, hub);
            SmmuV3Driver driver = SmmuV3Driver.probe(new InProcessSmmuHost(device, ram, alloc, hub),
                    SmmuV3DriverOptions.defaults());
            driver.init();
            SmmuV3Domains smmu = new SmmuV3Domains(driver, "smmu0", Integer.MAX_VALUE);
            domain = IommuDomain.builder(Arm64Lpae.stage1(12, 48, 48), ram, alloc).name("bench")
                    .flushPolicy(FlushPolicy.STRICT).build();
            smmu.attachStream(domain, SmmuV3Domains.Stage.S1, SID);
            // 4 KB off a 2 MB boundary: map cannot use 2M blocks, the table holds 1024 4K leaves
            pa = alloc.allocBytes(SIZE + (2 << 20), "dma") + PAGE;
            long t0 = device.stats().simTimeNs();
            map();
            long t1 = device.stats().simTimeNs();
            unmap();
            long t2 = device.stats().simTimeNs();
            System.out.printf("%n%s: simulated ns for map 4 MiB %d, unmap 4 MiB %d%n", mode, t1 - t0, t2 - t1);
        }

        private void map() throws IommuApiException {
            if (mode.equals("range")) {
                domain.map(IOVA, pa, SIZE, Prot.READ | Prot.WRITE);
            } else {
                for (long off = 0; off < SIZE; off += PAGE) {
                    domain.map(IOVA + off, pa + off, PAGE, Prot.READ | Prot.WRITE);
                }
            }
        }

        private void unmap() throws IommuApiException {
            if (mode.equals("range")) {
                domain.unmap(IOVA, SIZE);
            } else {
                for (long off = 0; off < SIZE; off += PAGE) {
                    domain.unmap(IOVA + off, PAGE);
                }
            }
        }

        private boolean mapped() throws IommuApiException {
            return domain.iovaToPhys(IOVA) != IommuDomain.NO_MAPPING;
        }

        /** Per invocation, outside the measurement: mapped before an unmap, unmapped before a map. */
        @Setup(Level.Invocation)
        public void prepare(BenchmarkParams params) throws IommuApiException {
            boolean wantMapped = params.getBenchmark().endsWith(".unmap4MiB");
            if (mapped() != wantMapped) {
                if (wantMapped) {
                    map();
                } else {
                    unmap();
                }
            }
        }
    }

    /** Unmaps the 4 MiB, strict: every TLBI and CMD_SYNC completes before unmap returns. */
    @Benchmark
    public void unmap4MiB(Rig rig) throws IommuApiException {
        rig.unmap();
    }

    /** Maps the 4 MiB (the SMMU caches no invalid entries: no map-side invalidation). */
    @Benchmark
    public void map4MiB(Rig rig) throws IommuApiException {
        rig.map();
    }
}
