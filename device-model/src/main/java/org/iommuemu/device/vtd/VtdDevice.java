package org.iommuemu.device.vtd;

import org.iommuemu.core.vtd.VtdRegs;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.LongAdder;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.vtd.FaultReason;
import org.iommuemu.core.vtd.InvDesc;
import org.iommuemu.core.memory.PhysicalMemory;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.machine.InjectedInterrupts;
import org.iommuemu.device.machine.InterruptSink;
import org.iommuemu.device.inject.CacheFaults;
import org.iommuemu.device.inject.FaultInjector;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.inject.FaultSpecException;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.inject.InstanceFaults;
import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.AtcPort;
import org.iommuemu.device.machine.DeviceStats;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.Translation;
import org.iommuemu.device.regs.Field;
import org.iommuemu.device.regs.Register;
import org.iommuemu.device.regs.RegisterFile;
import org.iommuemu.device.trace.Tracer;
import org.iommuemu.device.xlate.CacheStats;
import org.iommuemu.device.xlate.InjectableCache;
import org.iommuemu.device.xlate.SimClock;
import org.iommuemu.device.xlate.XlateStats;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An Intel VT-d DMA-remapping hardware unit.
 *
 * <p>Registers: VER, CAP and ECAP computed from {@link VtdConfig}; the global command protocol ("Global Command
 * Register" / "Global Status Register"), in which every command completes before the write returns: TE, IRE, CFI
 * and EAFL are mirrored in TES, IRES, CFIS and AFLS; QIE starts or stops the {@link InvalidationQueue}; SRTP
 * latches RTADDR as the active root-table pointer and sets RTPS; SIRTP latches IRTA and sets IRTPS; SFL latches
 * AFLOG and sets FLS; WBF completes at once (WBFS reads 0). Register-based invalidation: CCMD (context cache:
 * global, domain, device with function mask; CAIG reports the granularity done, ICC clears) and the IOTLB register
 * at ECAP.IRO (global, domain, page-selective from IVA — the whole domain without CAP.PSI or with AM beyond
 * CAP.MAMV; IAIG reports what was done, IVT clears). Faults go to {@link FaultRecording} (the fault recording
 * registers at CAP.FRO, FSTS, the fault event's MSI), the invalidation completion event to IECTL/IEDATA/IEADDR.
 *
 * <p>With TE=0 DMA is untranslated; with TE=1 {@link #translate} walks the root, context and PASID structures and
 * the page tables through the context, PASID, IOTLB and paging-structure caches.
 *
 * <p>Thread-safe: register writes and their hooks (queue processing included) serialise on the register file's
 * lock; translate reads volatile register state and allocates nothing.
 */
public final class VtdDevice implements IommuDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VtdDevice.class);

    /** Requester ids are bus:device.function, 16 bits. */
    public static final int REQUESTER_ID_BITS = 16;

    /** Command codes the register-based invalidations are counted under (descriptor types are 1..9). */
    public static final int CODE_CCMD = 0x81;
    public static final int CODE_IOTLB_REGISTER = 0x82;

    private final String name;
    private final VtdConfig config;
    private final PhysicalMemory memory;
    private final InterruptSink interrupts;
    private final VtdRegisters regs;
    private final List<String> features;
    private final XlateStats stats;
    private final LongAdder interruptCount = new LongAdder();
    private final LongAdder mmioReads = new LongAdder();
    private final LongAdder mmioWrites = new LongAdder();
    private final EventInterrupt faultEvent;
    private final EventInterrupt completionEvent;
    private final FaultRecording faults;
    private final VtdCaches caches;
    private final CacheInvalidation invalidation;
    private final VtdTranslator translator;
    private final AtcPort atc;
    private final InvalidationQueue queue;
    private final InstanceFaults injected;
    private final InjectedInterrupts irqs;
    private final CacheFaults cacheFaults;
    private final Field qie;
    private final Field qies;
    private final Register ccmd;
    private final Register iva;
    private final Register iotlb;

    /** Persistent enables: GCMD bit → GSTS bit, for the commands this unit supports. */
    private final Field[] enableCommands;
    private final Field[] enableStatus;
    private final Field srtp;
    private final Field rtps;
    private final Field sirtp;
    private final Field irtps;
    private final Field sfl;
    private final Field fls;
    private final Field wbf;

    private volatile long rootTableAddress;
    private volatile int translationTableMode;
    private volatile long interruptRemapTable;
    private volatile long faultLog;

    public VtdDevice(String name, VtdConfig config, PhysicalMemory memory, InterruptSink interrupts) {
        this(name, config, memory, interrupts, new FaultInjector());
    }

    /**
     * A unit whose injection points (invalidation queue, IOTLB invalidation) answer to {@code injector}, the
     * machine's: the unit attaches itself under its name.
     */
    public VtdDevice(String name, VtdConfig config, PhysicalMemory memory, InterruptSink interrupts,
            FaultInjector injector) {
        this.name = Objects.requireNonNull(name, "name");
        this.config = Objects.requireNonNull(config, "config");
        this.memory = Objects.requireNonNull(memory, "memory");
        this.interrupts = Objects.requireNonNull(interrupts, "interrupts");
        this.regs = new VtdRegisters(name, config);
        this.features = features(config);

        List<Field> cmds = new ArrayList<>();
        List<Field> sts = new ArrayList<>();
        String[][] enables = {{"TE", "TES"}, {"IRE", "IRES"}, {"CFI", "CFIS"}, {"EAFL", "AFLS"}};
        for (String[] pair : enables) {
            if (regs.gcmd.hasField(pair[0])) {
                cmds.add(regs.gcmd.fieldHandle(pair[0]));
                sts.add(regs.gsts.fieldHandle(pair[1]));
            }
        }
        enableCommands = cmds.toArray(new Field[0]);
        enableStatus = sts.toArray(new Field[0]);
        srtp = regs.gcmd.fieldHandle("SRTP");
        rtps = regs.gsts.fieldHandle("RTPS");
        sirtp = optional(regs.gcmd, "SIRTP");
        irtps = optional(regs.gsts, "IRTPS");
        sfl = optional(regs.gcmd, "SFL");
        fls = optional(regs.gsts, "FLS");
        wbf = regs.gcmd.fieldHandle("WBF");

        qie = optional(regs.gcmd, "QIE");
        qies = optional(regs.gsts, "QIES");
        ccmd = regs.file.register("CCMD");
        iva = regs.file.register("IVA");
        iotlb = regs.file.register("IOTLB");

        this.stats = new XlateStats(config.cost(), new SimClock());
        this.atc = new AtcPort(name, config.atcTimeoutMs());
        this.injected = injector.attach(name, stats.clock());
        RegisterFile f = regs.file;
        irqs = new InjectedInterrupts(interrupts, injected, stats.clock());
        faultEvent = new EventInterrupt(name, "fault-event", f.register("FECTL"), f.register("FEDATA"),
                f.register("FEADDR"), f.register("FEUADDR"), irqs, stats, interruptCount);
        faults = new FaultRecording(regs, faultEvent, stats, injected);
        caches = new VtdCaches(config);
        invalidation = caches;
        translator = new VtdTranslator(name, config, memory, caches, stats, faults, injected);
        if (config.qi()) {
            completionEvent = new EventInterrupt(name, "inv-completion", f.register("IECTL"), f.register("IEDATA"),
                    f.register("IEADDR"), f.register("IEUADDR"), irqs, stats, interruptCount);
            queue = new InvalidationQueue(config, regs, memory, invalidation, faults, completionEvent, stats,
                    injected, atc);
            InvalidationQueue q = queue;
            // a device-TLB invalidation completed or timed out: a wait stalled on it may now complete
            atc.waker(() -> {
                synchronized (f.lock()) {
                    q.retryLate();
                }
            });
            // INTERRUPT_SPURIOUS: after an IQT write, a fault event MSI with no status behind it
            f.register("IQT").afterWrite((oldValue, newValue, written, mask) -> {
                if (injected.any() && injected.fires(InjectionKind.INTERRUPT_SPURIOUS, 0, VtdRegs.IQT,
                        "IQT write, offset")) {
                    faultEvent.spurious();
                }
            });
        } else {
            completionEvent = null;
            queue = null;
        }
        Map<String, InjectableCache> named = new LinkedHashMap<>();
        named.put("iotlb", caches.iotlb());
        named.put("context", caches.contexts());
        named.put("pasid", caches.pasids());
        named.put("walk", caches.walkCache());
        cacheFaults = new CacheFaults(injected, named);
        injected.check(this::checkFault);
        regs.gcmd.afterWrite((oldValue, newValue, written, mask) -> globalCommand(newValue));
        ccmd.afterWrite((oldValue, newValue, written, mask) -> contextCommand(newValue));
        iotlb.afterWrite((oldValue, newValue, written, mask) -> iotlbCommand(newValue));
    }

    /** The faults this unit cannot take ({@link InstanceFaults.Check}). */
    private void checkFault(FaultSpec spec) {
        cacheFaults.check(spec);
        // COMMAND_CORRUPT flips a bit of a descriptor: 0..127, or 0..255 on a queue of 256-bit descriptors
        if (spec.kind() == InjectionKind.COMMAND_CORRUPT && spec.params().bit() > 127
                && (queue == null || !queue.wide())) {
            throw new FaultSpecException("params.bit", "bit " + spec.params().bit() + " is beyond the 128-bit"
                    + " descriptors of " + name + "'s invalidation queue (0..127; 0..255 needs IQA.DW=1, 256-bit"
                    + " descriptors, latched when queued invalidation is enabled)");
        }
        if (spec.kind() == InjectionKind.MSI_WRITE_FAIL) {
            throw new FaultSpecException("target.iommu", name + " is a VT-d unit: VT-d architects no report of an"
                    + " interrupt write that aborts (no status bit, no error record), so MSI_WRITE_FAIL has no faithful"
                    + " outcome there; target an SMMUv3 instance");
        }
    }

    /** A CCMD write: with ICC set, the context-cache invalidation CIRG asks for; CAIG says what was done. */
    private void contextCommand(long value) {
        if (!Bits.bit(value, VtdRegs.CCMD_ICC)) {
            return;
        }
        int cirg = (int) Bits.extract(value, VtdRegs.CCMD_CIRG, 2);
        int done = cirg;
        if (cirg != 0 && injected.any() && injected.firing(InjectionKind.IGNORE_CONFIG_INVALIDATION, CODE_CCMD,
                cirg == VtdRegs.CC_DEVICE ? Bits.extract(value, VtdRegs.CCMD_SID, 16) : -1, false, 0, 0,
                "CCMD register, MMIO") != null) {
            cirg = -1; // injected: the stale-configuration bug, the invalidation completes and drops nothing
        }
        switch (cirg) {
            case VtdRegs.CC_GLOBAL -> invalidation.invalidateContextAll();
            case VtdRegs.CC_DOMAIN -> invalidation.invalidateContextDomain((int) Bits.extract(value, VtdRegs.CCMD_DID, 16));
            case VtdRegs.CC_DEVICE -> invalidation.invalidateContextDevice((int) Bits.extract(value, VtdRegs.CCMD_SID, 16),
                    (int) Bits.extract(value, VtdRegs.CCMD_FM, 2));
            default -> { } // reserved granularity: nothing done, CAIG reads 0
        }
        if (cirg != 0) { // -1: ignored by an injected fault, still a command
            stats.command(CODE_CCMD);
        }
        ccmd.setBits(1L << VtdRegs.CCMD_ICC | 3L << VtdRegs.CCMD_CAIG,
                (long) done << VtdRegs.CCMD_CAIG);
    }

    /** An IOTLB-register write: with IVT set, the invalidation IIRG asks for (page-selective from IVA). */
    private void iotlbCommand(long value) {
        if (!Bits.bit(value, VtdRegs.IOTLB_IVT)) {
            return;
        }
        int iirg = (int) Bits.extract(value, VtdRegs.IOTLB_IIRG, 2);
        int did = (int) Bits.extract(value, VtdRegs.IOTLB_DID, 16);
        int done = iirg;
        boolean page = iirg == VtdRegs.IOTLB_PAGE;
        if (iirg != 0 && injected.any() && injected.firing(InjectionKind.IGNORE_IOTLB_INVALIDATION,
                CODE_IOTLB_REGISTER, -1, page, page ? Bits.alignDown(iva.value(), VtdRegs.IVA_ADDR) : 0, 0,
                "IOTLB register, MMIO") != null) {
            iirg = -1; // injected: the stale-TLB bug, the invalidation completes and drops nothing
        }
        switch (iirg) {
            case VtdRegs.IOTLB_GLOBAL -> invalidation.invalidateIotlbAll();
            case VtdRegs.IOTLB_DOMAIN -> invalidation.invalidateIotlbDomain(did);
            case VtdRegs.IOTLB_PAGE -> {
                long iva = this.iva.value();
                int am = (int) Bits.extract(iva, VtdRegs.IVA_AM, 6);
                if (!config.psi() || am > config.mamv()) {
                    invalidation.invalidateIotlbDomain(did);
                    done = VtdRegs.IOTLB_DOMAIN;
                } else {
                    invalidation.invalidateIotlbPage(did, Bits.alignDown(iva, VtdRegs.IVA_ADDR), am,
                            Bits.bit(iva, VtdRegs.IVA_IH));
                }
            }
            default -> { } // reserved granularity: nothing done, IAIG reads 0
        }
        if (iirg != 0) { // -1: ignored by an injected fault, still a command
            stats.command(CODE_IOTLB_REGISTER);
        }
        iotlb.setBits(1L << VtdRegs.IOTLB_IVT | 3L << VtdRegs.IOTLB_IAIG,
                (long) done << VtdRegs.IOTLB_IAIG);
    }

    private static Field optional(Register reg, String field) {
        return reg.hasField(field) ? reg.fieldHandle(field) : null;
    }

    /**
     * Carries out a GCMD write. Software is expected to write the current persistent state plus one changed
     * bit; if several commands arrive together each is carried out, as hardware does bit by bit.
     */
    private void globalCommand(long command) {
        long status = regs.gsts.value();
        int commands = 0;
        for (int i = 0; i < enableCommands.length; i++) {
            boolean want = enableCommands[i].isSet(command);
            if (want != enableStatus[i].isSet(status)) {
                enableStatus[i].set(want);
                commands++;
            }
        }
        if (qie != null && qie.isSet(command) != qies.isSet(status)) {
            queue.enable(qie.isSet(command));
            commands++;
        }
        if (srtp.isSet(command)) {
            long rtaddr = regs.rtaddr.value();
            rootTableAddress = Bits.alignDown(rtaddr, VtdRegs.RTADDR_RTA);
            translationTableMode = (int) Bits.extract(rtaddr, VtdRegs.RTADDR_TTM, 2);
            rtps.set(true);
            commands++;
        }
        if (sirtp != null && sirtp.isSet(command)) {
            interruptRemapTable = regs.irta.value();
            irtps.set(true);
            commands++;
        }
        if (sfl != null && sfl.isSet(command)) {
            faultLog = regs.aflog.value();
            fls.set(true);
            commands++;
        }
        if (wbf.isSet(command)) {
            commands++; // nothing is buffered: the flush is complete and WBFS stays clear
        }
        if (commands > 1 && LOG.isDebugEnabled()) {
            LOG.debug("{}: GCMD write {} carried {} commands at once; each was carried out", name,
                    Bits.hex(command), commands);
        }
    }

    private static List<String> features(VtdConfig c) {
        List<String> f = new ArrayList<>();
        f.add("VER" + c.versionMajor() + "." + c.versionMinor());
        f.add("ND" + c.nd());
        for (int level = 1; level <= 3; level++) {
            if ((c.sagaw() & (1 << level)) != 0) {
                f.add("SAGAW" + (30 + 9 * level));
            }
        }
        f.add("MGAW" + c.guestAddressWidth());
        add(f, c.afl(), "AFL");
        add(f, c.cm(), "CM");
        add(f, (c.sllps() & 1) != 0, "SLLPS_2M");
        add(f, (c.sllps() & 2) != 0, "SLLPS_1G");
        add(f, c.psi(), "PSI");
        add(f, c.dwd(), "DWD");
        add(f, c.drd(), "DRD");
        add(f, c.fl1gp(), "FL1GP");
        add(f, c.pi(), "PI");
        add(f, c.fl5lp(), "FL5LP");
        add(f, c.coherent(), "C");
        add(f, c.qi(), "QI");
        add(f, c.dt(), "DT");
        add(f, c.ir(), "IR");
        add(f, c.eim(), "EIM");
        add(f, c.pt(), "PT");
        add(f, c.sc(), "SC");
        add(f, c.nest(), "NEST");
        add(f, c.prs(), "PRS");
        add(f, c.pasid(), "PASID" + c.pasidBits());
        add(f, c.smts(), "SMTS");
        add(f, c.slads(), "SLADS");
        add(f, c.slts(), "SLTS");
        add(f, c.flts(), "FLTS");
        add(f, c.rps(), "RPS");
        return List.copyOf(f);
    }

    private static void add(List<String> list, boolean present, String feature) {
        if (present) {
            list.add(feature);
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public IommuType type() {
        return IommuType.VTD;
    }

    public VtdConfig config() {
        return config;
    }

    @Override
    public long mmioSize() {
        return VtdConfig.MMIO_SIZE;
    }

    @Override
    public long mmioRead(long offset, int width) {
        mmioReads.increment();
        stats.mmioAccess();
        if (queue != null && (queue.latePending() || queue.atcPending())) {
            retryLateWait();
        }
        long v = regs.file.read(offset, width);
        irqs.deliverDue();
        return v;
    }

    @Override
    public void mmioWrite(long offset, int width, long value) {
        mmioWrites.increment();
        stats.mmioAccess();
        if (queue != null && (queue.latePending() || queue.atcPending())) {
            retryLateWait();
        }
        regs.file.write(offset, width, value);
        irqs.deliverDue();
    }

    /** An injected late invalidation wait completes once simulated time (register accesses advance it) reaches it. */
    private void retryLateWait() {
        synchronized (regs.file.lock()) {
            queue.retryLate();
        }
    }

    @Override
    public int streamIdBits() {
        return REQUESTER_ID_BITS;
    }

    @Override
    public int substreamIdBits() {
        return config.pasidBits();
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
     * With DMA remapping disabled (GSTS.TES=0) requests pass untranslated; enabled, they are translated through the
     * structures at the root-table address SRTP latched ({@link VtdTranslator}).
     */
    @Override
    public Translation translate(int streamId, int substreamId, long iova, int access, Translation out) {
        if ((access & (Access.TRANSLATED | Access.TRANSLATION_REQUEST)) != 0) {
            boolean request = (access & Access.TRANSLATION_REQUEST) != 0;
            if (!regs.translationEnabled.isSet()) {
                return request ? out.fault(FaultType.ABORTED, 0, "DMA remapping is disabled (GSTS.TES=0): "
                        + "translation requests are refused (Unsupported Request)") : out.ok(iova, -1L);
            }
            return translator.atsRequest(rootTableAddress, translationTableMode, streamId, substreamId, iova,
                    access & ~(Access.TRANSLATED | Access.TRANSLATION_REQUEST), request, out);
        }
        if (!regs.translationEnabled.isSet()) {
            return out.ok(iova, -1L);
        }
        return translator.translate(rootTableAddress, translationTableMode, streamId, substreamId, iova, access, out);
    }

    @Override
    public AtcPort atc() {
        return atc;
    }

    @Override
    public void reset() {
        atc.reset();
        synchronized (regs.file.lock()) {
            regs.file.reset();
            faults.reset();
            if (queue != null) {
                queue.reset();
            }
            invalidation.invalidateContextAll();
            invalidation.invalidatePasidCacheAll();
            invalidation.invalidateIotlbAll();
            rootTableAddress = 0;
            translationTableMode = 0;
            interruptRemapTable = 0;
            faultLog = 0;
        }
    }

    /** The root-table address latched by the last SRTP command (0 before the first). */
    public long rootTableAddress() {
        return rootTableAddress;
    }

    /** RTADDR.TTM latched by the last SRTP: {@link VtdRegisters#TTM_LEGACY} or {@link VtdRegisters#TTM_SCALABLE}. */
    public int translationTableMode() {
        return translationTableMode;
    }

    /** The IRTA value latched by the last SIRTP command. */
    public long interruptRemapTable() {
        return interruptRemapTable;
    }

    /** The AFLOG value latched by the last SFL command. */
    public long faultLog() {
        return faultLog;
    }

    @Override
    public DeviceStats stats() {
        XlateStats.Snapshot snap = stats.snapshot();
        List<DeviceStats.CodeCount> byCode = new ArrayList<>();
        snap.commandsByOpcode().forEach((code, n) -> byCode.add(new DeviceStats.CodeCount(code, commandName(code), n)));
        List<DeviceStats.CodeCount> byReason = new ArrayList<>();
        snap.eventsByType().forEach((fr, n) -> byReason.add(new DeviceStats.CodeCount(fr, FaultReason.name(fr), n)));
        long lost = faults.dropped.sum() + faults.collapsed.sum();
        List<DeviceStats.CacheStat> cacheStats = List.of(
                cacheStat("iotlb", caches.iotlbStats(), translator.microTlbHits()),
                cacheStat("context", caches.contextStats(), translator.contextMemoHits()),
                cacheStat("pasid", caches.pasidStats(), translator.pasidMemoHits()),
                cacheStat("walk", caches.walkStats(), 0));
        return new DeviceStats(translator.translations(), translator.faults(), cacheStats, translator.walks(),
                translator.walkReads(), mmioReads.sum(), mmioWrites.sum(), byCode, byReason, lost, snap.gerrors(),
                snap.simNanos(), interruptCount.sum());
    }

    private static DeviceStats.CacheStat cacheStat(String name, CacheStats s, long frontHits) {
        return new DeviceStats.CacheStat(name, s.hits() + frontHits, s.misses(), s.inserts(), s.evictions(),
                s.invalidated(), s.entries(), s.capacity());
    }

    @Override
    public long simTimeNs() {
        return stats.clock().now();
    }

    @Override
    public void tracer(Tracer tracer, int track) {
        stats.tracer(tracer, track);
        irqs.tracer(tracer, track);
        queue.tracer(tracer, track);
    }

    @Override
    public String eventCodeName(int code) {
        return FaultReason.name(code);
    }

    @Override
    public String commandCodeName(int code) {
        return commandName(code);
    }

    /** The name a command code is reported under: a descriptor type, or a register-based invalidation. */
    public static String commandName(int code) {
        return switch (code) {
            case CODE_CCMD -> "CCMD";
            case CODE_IOTLB_REGISTER -> "IOTLB_REG";
            default -> InvDesc.typeName(code);
        };
    }

    /** Every command code {@link #stats()} can report: the descriptor types and the register-based invalidations. */
    public static List<Integer> commandCodes() {
        return List.of(1, 2, 3, 4, 5, 6, 7, 8, 9, CODE_CCMD, CODE_IOTLB_REGISTER);
    }

    /** Queued-invalidation descriptors consumed so far (0 without ECAP.QI). */
    public long descriptorsProcessed() {
        return queue == null ? 0 : queue.processed.sum();
    }

    /** The primary fault logging the translation path reports to (for tests). */
    FaultReporter faultReporter() {
        return faults;
    }

    /** The register file, for tests and the device's own subsystems. */
    RegisterFile registerFile() {
        return regs.file;
    }

    @Override
    public String toString() {
        return "VT-d " + name;
    }
}
