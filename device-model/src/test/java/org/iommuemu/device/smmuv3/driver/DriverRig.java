package org.iommuemu.device.smmuv3.driver;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import org.iommuemu.core.driver.smmuv3.SmmuHost;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.driver.smmuv3.SmmuV3Listener;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.MemoryAccessException;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.core.pgtable.IotlbGather;
import org.iommuemu.core.pgtable.PageTable;
import org.iommuemu.core.pgtable.PageTableException;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.Encodings;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.machine.DeviceStats;
import org.iommuemu.device.machine.InProcessSmmuHost;
import org.iommuemu.device.machine.InterruptHub;
import org.iommuemu.device.machine.InterruptRecord;
import org.iommuemu.device.machine.InterruptSink;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.device.smmuv3.SmmuV3Device;
import org.iommuemu.device.xlate.ConfigCache;

/**
 * One {@link SmmuV3Device} in 64 MiB of RAM, an {@link InProcessSmmuHost} over it and the driver, with a listener
 * that records what the driver reports and a hub subscriber that records every interrupt.
 */
final class DriverRig {
    static final long RAM_BASE = 0x8000_0000L;
    static final long RAM_SIZE = 64L << 20;

    final SmmuV3Config config;
    final SparseRam ram;
    final BuddyPageAllocator alloc;
    final InterruptHub hub;
    final SmmuV3Device smmu;
    final InProcessSmmuHost host;
    final List<InterruptRecord> interrupts = new CopyOnWriteArrayList<>();
    final List<EventRecord> events = new CopyOnWriteArrayList<>();
    final List<Integer> globalErrors = new CopyOnWriteArrayList<>();
    final List<long[]> commandErrors = new CopyOnWriteArrayList<>();
    final AtomicInteger overflows = new AtomicInteger();
    SmmuV3Driver driver;

    DriverRig(SmmuV3Config config) {
        this(config, sink -> sink);
    }

    /** A rig whose device signals through {@code wrap} applied to the hub (to lose some MSI writes, say). */
    DriverRig(SmmuV3Config config, UnaryOperator<InterruptSink> wrap) {
        this.config = config;
        this.ram = new SparseRam(List.of(new RamRegion(RAM_BASE, RAM_SIZE)));
        this.alloc = new BuddyPageAllocator(ram, RAM_BASE, RAM_SIZE);
        this.hub = new InterruptHub(ram);
        hub.subscribe(interrupts::add);
        this.smmu = new SmmuV3Device("smmu0", config, ram, wrap.apply(hub));
        this.host = new InProcessSmmuHost(smmu, ram, alloc, hub);
    }

    /** Default SMMU, default options, initialised. */
    static DriverRig started() {
        return started(SmmuV3Config.defaults(), SmmuV3DriverOptions.defaults());
    }

    static DriverRig started(SmmuV3Config config) {
        return started(config, SmmuV3DriverOptions.defaults());
    }

    static DriverRig started(SmmuV3Config config, SmmuV3DriverOptions options) {
        DriverRig rig = new DriverRig(config);
        rig.start(rig.host, options);
        return rig;
    }

    /** Probes and initialises a driver over {@code over} (the rig's host, or a wrapper of it). */
    SmmuV3Driver start(SmmuHost over, SmmuV3DriverOptions options) {
        driver = SmmuV3Driver.probe(over, options);
        driver.addListener(new SmmuV3Listener() {
            @Override
            public void onEvent(EventRecord event) {
                events.add(event);
            }

            @Override
            public void onEventOverflow() {
                overflows.incrementAndGet();
            }

            @Override
            public void onGlobalError(int bit) {
                globalErrors.add(bit);
            }

            @Override
            public void onCommandError(int cerror, int index, long dw0, long dw1) {
                commandErrors.add(new long[] {cerror, index, dw0, dw1});
            }
        });
        driver.init();
        return driver;
    }

    long read32(long offset) {
        return smmu.mmioRead(offset, 4);
    }

    long read64(long offset) {
        return smmu.mmioRead(offset, 8);
    }

    long r64(long pa) {
        try {
            return ram.read64(pa);
        } catch (MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }

    /** How many commands with {@code opcode} the device has executed. */
    long executed(int opcode) {
        for (DeviceStats.CodeCount c : smmu.stats().commands()) {
            if (c.code() == opcode) {
                return c.count();
            }
        }
        return 0;
    }

    long interruptsFrom(String source) {
        return interrupts.stream().filter(r -> r.source().equals(source)).count();
    }

    /** Translates one access without a substream. */
    Translation translate(int sid, long iova, int access) {
        return smmu.translate(sid, ConfigCache.NO_SUBSTREAM, iova, access, new Translation());
    }

    /**
     * Attaches stream {@code sid} by hand to a stage-1 table mapping one read-write 4 KB page {@code iova} to
     * {@code pa}: a 48-bit 4 KB-granule table, a one-CD table written into memory, and the STE through the driver.
     */
    PageTable stage1Stream(int sid, int asid, long iova, long pa) {
        try {
            Arm64Lpae fmt = Arm64Lpae.stage1(12, 48, 48);
            PageTable pt = new PageTable(fmt, ram, alloc);
            pt.map(iova, pa, 4096, Prot.READ | Prot.WRITE, new IotlbGather(g -> { }, alloc));
            long cds = alloc.allocPages(0, "cd");
            Cd cd = Cd.stage1(fmt.t0sz(), Encodings.tg0ForGranuleLg2(fmt.granuleLg2()), Encodings.oasEncoding(48), asid,
                    pt.root(), Cd.LINUX_MAIR);
            ram.write64s(cds, cd.encode(), 0, Cd.DWORDS);
            driver.writeSte(sid, Ste.stage1(cds, Ste.S1FMT_LINEAR, 0, Ste.S1DSS_SSID0));
            return pt;
        } catch (PageTableException | MemoryAccessException e) {
            throw new AssertionError(e);
        }
    }
}
