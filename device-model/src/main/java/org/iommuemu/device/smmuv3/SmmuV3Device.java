package org.iommuemu.device.smmuv3;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.LongAdder;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.core.smmuv3.Command;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.smmuv3.Gerror;
import org.iommuemu.core.smmuv3.SmmuRegs;
import org.iommuemu.device.inject.CacheFaults;
import org.iommuemu.device.inject.FaultInjector;
import org.iommuemu.device.inject.FaultSpecException;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.AtcPort;
import org.iommuemu.device.machine.DeviceStats;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.InjectedInterrupts;
import org.iommuemu.device.machine.InterruptSink;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.regs.RegisterFile;
import org.iommuemu.device.trace.Tracer;
import org.iommuemu.device.xlate.CacheStats;
import org.iommuemu.device.xlate.ConfigCache;
import org.iommuemu.device.xlate.InjectableCache;
import org.iommuemu.device.xlate.SimClock;
import org.iommuemu.device.xlate.TranslationCaches;
import org.iommuemu.device.xlate.XlateStats;

/**
 * An Arm SMMUv3 (architecture version 3.2) as seen through its non-secure register interface.
 *
 * <p>Modelled: the ID registers computed from {@link SmmuV3Config} (each feature can be switched off); the
 * CR0/CR0ACK and IRQ_CTRL/IRQ_CTRLACK protocols and the GBPA update handshake (all complete at once); with
 * SMMUEN=0, bypass or abort as GBPA says; with SMMUEN=1, translation through linear or 2-level stream tables,
 * linear or 2-level CD tables, stage 1, stage 2 and nested walks, with real caches (IOTLB, configuration cache,
 * walk cache) that stay stale until invalidated ({@link Translator}); the command queue with every command and
 * its error protocol ({@link CommandQueue}); the event queue with overflow ({@link EventQueue}); GERROR and the
 * interrupts as MSIs or wired lines ({@link Signals}); a cost model and counters ({@code Telemetry.Stats}).
 * With {@code ats} (IDR0.ATS; off by default, ATC_INV is then CERROR_ILL): ATS translation requests and translated
 * requests checked against STE.EATS, and ATC_INV delivered to the devices' ATCs through the {@link AtcPort}, a
 * CMD_SYNC waiting for their completions (docs/ATS.md). Not modelled: stalling (IDR0.STALL_MODEL says so and a CD or
 * STE asking for it is rejected), PRI (PRI_RESP is CERROR_ILL without it), the PRI queue, split-stage ATS, the
 * secure side.
 *
 * <p>Thread-safe: register writes, their hooks, command processing and event writes serialise on the register
 * file's lock; translations run concurrently on the caches' own locks and allocate nothing on a cache hit.
 */
public final class SmmuV3Device implements IommuDevice {
    static final String GBPA_ABORT_MESSAGE = "SMMUEN=0 and GBPA.ABORT=1: incoming transactions abort";

    private final String name;
    private final SmmuV3Config config;
    private final PhysicalMemory memory;
    private final InterruptSink interrupts;
    private final SmmuV3Registers regs;
    private final List<String> features;
    private final XlateStats stats;
    private final TranslationCaches caches;
    private final ConfigCache<SmmuConfig> configs;
    private final Signals signals;
    private final EventQueue events;
    private final CommandQueue commands;
    private final InstanceFaults faults;
    private final InjectedInterrupts irqs;
    private final Register eventqCfg0;
    private final Register eventqCfg1;
    private final Translator translator;
    private final AtcPort atc;
    private final LongAdder mmioReads = new LongAdder();
    private final LongAdder mmioWrites = new LongAdder();

    public SmmuV3Device(String name, SmmuV3Config config, PhysicalMemory memory, InterruptSink interrupts) {
        this(name, config, memory, interrupts, new FaultInjector());
    }

    /**
     * A device whose injection points (command consumption, TLB invalidation) answer to {@code injector}, the
     * machine's: the device attaches itself under its name.
     */
    public SmmuV3Device(String name, SmmuV3Config config, PhysicalMemory memory, InterruptSink interrupts,
            FaultInjector injector) {
        this.name = Objects.requireNonNull(name, "name");
        this.config = Objects.requireNonNull(config, "config");
        this.memory = Objects.requireNonNull(memory, "memory");
        this.interrupts = Objects.requireNonNull(interrupts, "interrupts");
        this.regs = new SmmuV3Registers(name, config);
        this.features = features(config);
        this.stats = new XlateStats(config.cost(), new SimClock());
        this.caches = new TranslationCaches(config.iotlbCapacity(), config.walkCacheCapacity());
        this.configs = new ConfigCache<>(config.configCacheCapacity());
        RegisterFile f = regs.file;
        this.faults = injector.attach(name, stats.clock());
        this.irqs = new InjectedInterrupts(interrupts, faults, stats.clock());
        this.signals = new Signals(name, config.msi(), irqs, stats, f);
        this.eventqCfg0 = f.register("EVENTQ_IRQ_CFG0");
        this.eventqCfg1 = f.register("EVENTQ_IRQ_CFG1");
        this.events = new EventQueue(memory, stats, signals, f, config.eventqLog2(), faults);
        Command.Features commandFeatures = Command.Features.fromIdRegisters((int) config.idr0(), (int) config.idr3());
        this.atc = new AtcPort(name, config.atcTimeoutMs());
        this.commands = new CommandQueue(memory, stats, signals, caches, configs, commandFeatures, f,
                config.cmdqLog2(), faults, atc);
        // an ATC invalidation completed or timed out: a CMD_SYNC stalled on it may now move
        atc.waker(() -> {
            synchronized (f.lock()) {
                commands.process();
            }
        });
        this.translator = new Translator(name, config, memory, caches, configs, events, f, faults);
        Map<String, InjectableCache> named = new LinkedHashMap<>();
        named.put("iotlb", caches.iotlb());
        named.put("config", configs);
        named.put("walk", caches.walkCache());
        CacheFaults cacheFaults = new CacheFaults(faults, named);
        faults.check(spec -> {
            cacheFaults.check(spec);
            // SMMUv3 commands are 128 bits: COMMAND_CORRUPT cannot flip a bit beyond them
            if (spec.kind() == InjectionKind.COMMAND_CORRUPT && spec.params().bit() > 127) {
                throw new FaultSpecException("params.bit", "bit " + spec.params().bit() + " is beyond the 128-bit"
                        + " commands of SMMUv3 " + name + " (0..127); name a VT-d instance with 256-bit descriptors"
                        + " in target.iommu");
            }
        });

        // The update completes at once, so the acknowledgement mirrors the request; enabling the command queue
        // consumes what is already there.
        regs.cr0.afterWrite((oldValue, newValue, written, mask) -> {
            regs.cr0ack.set(newValue);
            commands.process();
        });
        f.register("CMDQ_PROD").afterWrite((oldValue, newValue, written, mask) -> {
            commands.process();
            spurious();
        });
        // Acknowledging a command error (GERRORN) resumes consumption from CMDQ_CONS.
        regs.gerrorn.afterWrite((oldValue, newValue, written, mask) -> commands.process());
        regs.irqCtrl.afterWrite((oldValue, newValue, written, mask) -> regs.irqCtrlAck.set(newValue));
        // GBPA: the attribute fields are read-only to plain writes; a write with UPDATE=1 latches them and
        // the update is complete (UPDATE reads 0) before anyone can read the register again.
        long latched = regs.gbpa.definedMask() & ~regs.gbpaUpdate.mask();
        regs.gbpa.afterWrite((oldValue, newValue, written, mask) -> {
            if (regs.gbpaUpdate.isSet(written)) {
                regs.gbpa.set(written & latched);
            }
        });
    }

    private static List<String> features(SmmuV3Config c) {
        List<String> f = new ArrayList<>();
        f.add("GBPA");
        if (c.stage1()) {
            f.add("S1P");
        }
        if (c.stage2()) {
            f.add("S2P");
        }
        f.add("TTF_AARCH64");
        f.add("COHACC");
        if (c.httu() == 1) {
            f.add("HTTU_A");
        } else if (c.httu() == 2) {
            f.add("HTTU_AD");
        }
        if (c.ats()) {
            f.add("ATS");
        }
        if (c.pri()) {
            f.add("PRI");
        }
        if (c.asid16()) {
            f.add("ASID16");
        }
        if (c.vmid16()) {
            f.add("VMID16");
        }
        if (c.msi()) {
            f.add("MSI");
        }
        if (c.sev()) {
            f.add("SEV");
        }
        if (c.twoLevelStreamTable()) {
            f.add("ST_2LVL");
        }
        if (c.twoLevelCd()) {
            f.add("CD2L");
        }
        if (c.rangeInvalidation()) {
            f.add("RIL");
        }
        if (c.granule4k()) {
            f.add("GRAN4K");
        }
        if (c.granule16k()) {
            f.add("GRAN16K");
        }
        if (c.granule64k()) {
            f.add("GRAN64K");
        }
        f.add("OAS" + c.oasBits());
        f.add("SIDSIZE" + c.sidBits());
        if (c.ssidBits() > 0) {
            f.add("SSIDSIZE" + c.ssidBits());
        }
        return List.copyOf(f);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public IommuType type() {
        return IommuType.SMMUV3;
    }

    public SmmuV3Config config() {
        return config;
    }

    @Override
    public long mmioSize() {
        return SmmuV3Registers.MMIO_SIZE;
    }

    /**
     * INTERRUPT_SPURIOUS: after a CMDQ_PROD write, the event queue interrupt (MSI or wired line, as configured) with
     * no new record behind it. Called with the register-file lock held.
     */
    private void spurious() {
        if (faults.any() && faults.fires(InjectionKind.INTERRUPT_SPURIOUS, 0, SmmuRegs.CMDQ_PROD,
                "CMDQ_PROD write, offset")) {
            signals.signal("eventq", eventqCfg0, eventqCfg1, Gerror.MSI_EVENTQ_ABT_ERR);
        }
    }

    @Override
    public long mmioRead(long offset, int width) {
        mmioReads.increment();
        stats.mmioAccess();
        if (commands.latePending() || commands.atcPending()) {
            completeLateSync();
        }
        long v = regs.file.read(offset, width);
        irqs.deliverDue();
        return v;
    }

    @Override
    public void mmioWrite(long offset, int width, long value) {
        mmioWrites.increment();
        stats.mmioAccess();
        if (commands.latePending() || commands.atcPending()) {
            completeLateSync();
        }
        regs.file.write(offset, width, value);
        irqs.deliverDue();
    }

    /** An injected late CMD_SYNC completes once simulated time (which register accesses advance) reaches it. */
    private void completeLateSync() {
        synchronized (regs.file.lock()) {
            commands.process();
        }
    }

    @Override
    public int streamIdBits() {
        return config.sidBits();
    }

    @Override
    public int substreamIdBits() {
        return config.ssidBits();
    }

    @Override
    public List<String> features() {
        return features;
    }

    @Override
    public boolean translationModelled() {
        return true;
    }

    /**
     * With the SMMU disabled, every transaction bypasses or aborts as GBPA says; enabled, it is translated by
     * its stream's configuration ({@link Translator}).
     */
    @Override
    public Translation translate(int streamId, int substreamId, long iova, int access, Translation out) {
        if ((access & (Access.TRANSLATED | Access.TRANSLATION_REQUEST)) != 0) {
            return ats(streamId, substreamId, iova, access, out);
        }
        if (!regs.smmuEnabled.isSet()) {
            if (regs.gbpaAbort.isSet()) {
                return out.fault(FaultType.ABORTED, 0, GBPA_ABORT_MESSAGE);
            }
            return out.ok(iova, -1L);
        }
        return translator.translate(streamId, substreamId, iova, access, out);
    }

    /** A translated request or an ATS translation request ({@link Access}); see {@link Translator}. */
    private Translation ats(int streamId, int substreamId, long address, int access, Translation out) {
        boolean request = (access & Access.TRANSLATION_REQUEST) != 0;
        if (!regs.smmuEnabled.isSet()) {
            if (request) {
                return out.fault(FaultType.ABORTED, 0, "SMMUEN=0: ATS translation requests are refused"
                        + " (Unsupported Request)");
            }
            if (regs.gbpaAbort.isSet()) {
                return out.fault(FaultType.ABORTED, 0, GBPA_ABORT_MESSAGE);
            }
            return out.ok(address, -1L);
        }
        return request ? translator.translationRequest(streamId, substreamId, address, access, out)
                : translator.translatedRequest(streamId, substreamId, address, access & ~Access.TRANSLATED, out);
    }

    @Override
    public AtcPort atc() {
        return atc;
    }

    @Override
    public void reset() {
        synchronized (regs.file.lock()) {
            atc.reset();
            regs.file.reset();
            commands.resetInjected();
            caches.invalidateAll();
            configs.invalidateAll();
        }
    }

    @Override
    public DeviceStats stats() {
        XlateStats.Snapshot snap = stats.snapshot();
        // per-thread micro-TLB and configuration memo hits: lookups answered before they reached the shared cache
        List<DeviceStats.CacheStat> cacheStats = List.of(
                cacheStat("iotlb", caches.iotlb().stats(), translator.microTlbHits()),
                cacheStat("config", configs.stats(), translator.configMemoHits()),
                cacheStat("walk", caches.walkCache().stats(), 0));
        List<DeviceStats.CodeCount> byOpcode = new ArrayList<>();
        snap.commandsByOpcode().forEach((op, n) -> byOpcode.add(new DeviceStats.CodeCount(op, CommandOp.name(op), n)));
        List<DeviceStats.CodeCount> byType = new ArrayList<>();
        snap.eventsByType().forEach((type, n) -> byType.add(new DeviceStats.CodeCount(type, EventType.name(type), n)));
        return new DeviceStats(translator.translations(), translator.faults(), cacheStats, translator.walks(),
                translator.walkReads(), mmioReads.sum(), mmioWrites.sum(), byOpcode, byType, events.lost.sum(),
                signals.globalErrors.sum(), snap.simNanos() + translator.translationNanos(), signals.interrupts.sum());
    }

    @Override
    public long simTimeNs() {
        return stats.clock().now() + translator.translationNanos();
    }

    @Override
    public void tracer(Tracer tracer, int track) {
        stats.tracer(tracer, track);
        irqs.tracer(tracer, track);
        commands.tracer(tracer, track);
    }

    @Override
    public String commandCodeName(int code) {
        return CommandOp.name(code);
    }

    @Override
    public String eventCodeName(int code) {
        return EventType.name(code);
    }

    private static DeviceStats.CacheStat cacheStat(String name, CacheStats s, long frontHits) {
        return new DeviceStats.CacheStat(name, s.hits() + frontHits, s.misses(), s.inserts(), s.evictions(),
                s.invalidated(), s.entries(), s.capacity());
    }

    /** The register file, for tests and the device's own subsystems. */
    RegisterFile registerFile() {
        return regs.file;
    }

    @Override
    public String toString() {
        return "SMMUv3 " + name;
    }
}
