package org.iommuemu.it.bench;

import java.util.List;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.vtd.VtdDomains;
import org.iommuemu.core.driver.vtd.VtdDriver;
import org.iommuemu.core.driver.vtd.VtdDriverOptions;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.device.machine.InProcessVtdHost;
import org.iommuemu.device.machine.InterruptHub;
import org.iommuemu.device.vtd.VtdConfig;
import org.iommuemu.device.vtd.VtdDevice;
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

/**
 * Map and unmap of one 4 KB page through the VT-d driver (legacy mode, strict) over an in-process unit with device
 * TLBs (ECAP.DT), with the device's ATS off ({@code ats=off}: the common case, one IOTLB invalidation and a wait
 * per unmap) or on ({@code ats=on}: a device-TLB invalidation follows in the same batch; no device listens, so the
 * unit completes it at once). Run with {@code -prof gc}: neither allocates per operation.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
public class VtdDriverBenchmark {
    static final long IOVA = 0x4000_0000L;
    static final int PAGE = 4096;
    static final int RID = 0x30;

    /** The unit, the driver and a domain attached to RID (one per thread and trial). */
    @State(Scope.Thread)
    public static class Rig {
        @Param({"off", "on"})
        public String ats;

        private IommuDomain domain;
        private long pa;

        @Setup(Level.Trial)
        public void setUp() throws Exception {
            SparseRam ram = new SparseRam(List.of(new RamRegion(0x8000_0000L, 256L << 20)));
            BuddyPageAllocator alloc = new BuddyPageAllocator(ram, 0x8000_0000L, 256L << 20);
            InterruptHub hub = new InterruptHub(ram);
            VtdDevice device = new VtdDevice("dmar0", VtdConfig.builder().dt(true).build(), ram, hub);
            VtdDriver driver = VtdDriver.probe(new InProcessVtdHost(device, ram, alloc, hub),
                    VtdDriverOptions.defaults().withScalableMode(false));
            driver.init();
            VtdDomains domains = new VtdDomains(driver, "dmar0");
            domain = IommuDomain.builder(VtdSs.levels(4), ram, alloc).name("bench").flushPolicy(FlushPolicy.STRICT)
                    .build();
            domains.attachDevice(domain, RID);
            if (ats.equals("on")) {
                domains.enableAts(RID);
            }
            pa = alloc.allocPages(0, "dma");
            domain.map(IOVA, pa, PAGE, Prot.READ | Prot.WRITE); // the tables exist from here on
            domain.unmap(IOVA, PAGE);
        }
    }

    /** Maps one page and unmaps it: the unmap's IOTLB (and with ATS device-TLB) invalidation and its wait. */
    @Benchmark
    public long mapUnmap4K(Rig rig) throws IommuApiException {
        rig.domain.map(IOVA, rig.pa, PAGE, Prot.READ | Prot.WRITE);
        return rig.domain.unmap(IOVA, PAGE);
    }
}
