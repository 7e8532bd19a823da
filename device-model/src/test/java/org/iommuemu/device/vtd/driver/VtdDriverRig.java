package org.iommuemu.device.vtd.driver;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.vtd.VtdDomains;
import org.iommuemu.core.driver.vtd.VtdDriver;
import org.iommuemu.core.driver.vtd.VtdDriverOptions;
import org.iommuemu.core.driver.vtd.VtdFault;
import org.iommuemu.core.driver.vtd.VtdListener;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.pgtable.PtFormat;
import org.iommuemu.device.machine.DmaEngine;
import org.iommuemu.device.machine.DmaOutcome;
import org.iommuemu.device.machine.InProcessVtdHost;
import org.iommuemu.device.machine.InterruptHub;
import org.iommuemu.device.machine.InterruptRecord;
import org.iommuemu.device.vtd.VtdConfig;
import org.iommuemu.device.vtd.VtdDevice;

/**
 * One {@link VtdDevice} in 64 MiB of RAM, an {@link InProcessVtdHost} over it, the driver and its domains, with a
 * listener that records what the driver reports and a hub subscriber that records every interrupt.
 */
final class VtdDriverRig {
    static final long RAM_BASE = 0x8000_0000L;
    static final long RAM_SIZE = 64L << 20;

    final VtdConfig config;
    final SparseRam ram = new SparseRam(List.of(new RamRegion(RAM_BASE, RAM_SIZE)));
    final BuddyPageAllocator alloc = new BuddyPageAllocator(ram, RAM_BASE, RAM_SIZE);
    final InterruptHub hub = new InterruptHub(ram);
    final VtdDevice vtd;
    final InProcessVtdHost host;
    final DmaEngine dma = new DmaEngine(ram);
    final List<InterruptRecord> interrupts = new CopyOnWriteArrayList<>();
    final List<VtdFault> faults = new CopyOnWriteArrayList<>();
    final List<Object[]> queueErrors = new CopyOnWriteArrayList<>();
    VtdDriver driver;
    VtdDomains domains;

    VtdDriverRig(VtdConfig config) {
        this.config = config;
        hub.subscribe(interrupts::add);
        this.vtd = new VtdDevice("dmar0", config, ram, hub);
        this.host = new InProcessVtdHost(vtd, ram, alloc, hub);
    }

    static VtdDriverRig started(VtdConfig config, VtdDriverOptions options) {
        VtdDriverRig rig = new VtdDriverRig(config);
        rig.start(options);
        return rig;
    }

    VtdDriver start(VtdDriverOptions options) {
        driver = VtdDriver.probe(host, options);
        driver.addListener(new VtdListener() {
            @Override
            public void onFault(VtdFault fault) {
                faults.add(fault);
            }

            @Override
            public void onQueueError(QueueError error, int index, long qw0, long qw1, long iqercd) {
                queueErrors.add(new Object[] {error, index, qw0, qw1, iqercd});
            }
        });
        driver.init();
        domains = new VtdDomains(driver, "dmar0");
        return driver;
    }

    IommuDomain domain(PtFormat fmt, String name) throws IommuApiException {
        return IommuDomain.builder(fmt, ram, alloc).name(name).build();
    }

    long allocDma(String tag) {
        return alloc.allocPages(0, tag);
    }

    DmaOutcome read(int rid, int pasid, long iova, byte[] into) {
        return dma.read(vtd, rid, pasid, iova, into, 0, into.length, 0, new DmaOutcome());
    }

    DmaOutcome write(int rid, int pasid, long iova, byte[] from) {
        return dma.write(vtd, rid, pasid, iova, from, 0, from.length, 0, new DmaOutcome());
    }

    long interruptsFrom(String source) {
        return interrupts.stream().filter(r -> r.source().equals(source)).count();
    }

    long read64(long offset) {
        return vtd.mmioRead(offset, 8);
    }

    long read32(long offset) {
        return vtd.mmioRead(offset, 4);
    }
}
