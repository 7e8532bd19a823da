package org.iommuemu.device.machine;

import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.smmuv3.NestedTables;
import org.iommuemu.core.driver.vtd.VtdDomains;
import org.iommuemu.core.driver.vtd.VtdDriver;
import org.iommuemu.core.driver.vtd.VtdDriverException;
import org.iommuemu.core.driver.vtd.VtdDriverOptions;
import org.iommuemu.core.driver.vtd.VtdFault;
import org.iommuemu.core.driver.vtd.VtdFeatures;
import org.iommuemu.core.driver.vtd.VtdHost;
import org.iommuemu.core.driver.vtd.VtdListener;
import org.iommuemu.core.pgtable.PtFormat;
import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.core.pgtable.fmt.X86Pt;
import org.iommuemu.core.vtd.FaultReason;

/**
 * A VT-d unit a driver owns: {@link VtdDriver} and its {@link VtdDomains} behind the architecture-neutral
 * {@link DriverInstance}, over any {@link VtdHost} (the machine's in-process one, or a {@code remote.BusVtdHost} for a
 * driver outside the emulator).
 *
 * <p>Stages: a STAGE_2 domain is a second-stage ({@code vtd-ss}) table — a legacy context entry, or in scalable mode
 * a PASID entry with PGTT=2 — of 3, 4 or 5 levels for 39, 48 or 57 input bits (as CAP.SAGAW allows); a STAGE_1
 * domain is a first-stage ({@code x86-64}) table, scalable mode only, of 4 levels (48 bits) or 5 (57 bits, with
 * CAP.FL5LP). The granule is 4 KB. Substreams are PASIDs (scalable mode). Nested domains are refused: the VT-d driver
 * does not build them. Faults the driver reads are logged with their fault reason as type (the names of
 * {@link FaultReason}); fault overflows count as overflows and invalidation-queue errors as command errors, and so
 * does each invalidation batch the driver gives up after its ITE retries. ATS ({@link #enableAts}) is the VT-d
 * driver's device TLBs.
 */
public final class VtdDriverInstance extends OwnedInstance<VtdDriverException> {
    private final VtdHost host;
    private final VtdDriver driver;
    private final VtdDomains domains;

    private VtdDriverInstance(String name, VtdHost host, AutoCloseable hostCloser, VtdDriver driver,
            VtdDomains domains, DriverEventLog events) {
        super(name, hostCloser, events, VtdDriverException.class);
        this.host = host;
        this.driver = driver;
        this.domains = domains;
    }

    /** A listener that logs what the driver reads into {@code log}. */
    private static VtdListener logger(DriverEventLog log) {
        return new VtdListener() {
            @Override
            public void onFault(VtdFault f) {
                log.record(new DriverEventLog.Event(f.reason(), FaultReason.name(f.reason()), f.sourceId(),
                        f.pasidPresent() ? f.pasid() : -1, f.address(), f.read(), false, 0));
            }

            @Override
            public void onFaultOverflow() {
                log.onEventOverflow();
            }

            @Override
            public void onQueueError(QueueError error, int index, long qw0, long qw1, long iqercd) {
                log.onCommandError(error.ordinal(), index, qw0, qw1);
            }

            @Override
            public void onInvalidationAbandoned(int sourceId, int attempts) {
                // a batch given up after its ITE retries: one more command error, beyond the ITEs themselves
                log.onCommandError(QueueError.ITE.ordinal(), -1, sourceId, attempts);
            }
        };
    }

    @Override
    public IommuType type() {
        return IommuType.VTD;
    }

    @Override
    public String driverName() {
        return "the VT-d driver";
    }

    /**
     * Probes and initialises the VT-d unit behind {@code host} (root table, queued invalidation, fault event,
     * translation enabled with every device blocked; scalable mode when the unit offers it, as Linux prefers) and
     * logs the faults the driver reads into a new {@link DriverEventLog}.
     *
     * @param closeHost what {@link #shutdown} (or a failed take-over) closes after the driver
     * @throws VtdDriverException when probe or init fails (the host is then closed)
     */
    public static VtdDriverInstance takeOver(String name, VtdHost host, AutoCloseable closeHost) {
        try {
            VtdDriver driver = VtdDriver.probe(host, VtdDriverOptions.defaults());
            DriverEventLog events = new DriverEventLog();
            driver.addListener(logger(events));
            driver.init();
            return new VtdDriverInstance(name, host, closeHost, driver, new VtdDomains(driver, name), events);
        } catch (RuntimeException e) {
            DriverInstance.closeQuietly(closeHost, e);
            throw e;
        }
    }

    public VtdHost host() {
        return host;
    }

    public VtdDriver driver() {
        return driver;
    }

    public VtdDomains domains() {
        return domains;
    }

    @Override
    public String refusal(Stage stage, long granule, boolean nested) {
        VtdFeatures f = driver.features();
        if (granule != 4096) {
            return "granule: VT-d page tables have 4 KiB pages, got " + Long.toUnsignedString(granule);
        }
        if (nested) {
            return "nest_parent: " + name + " is VT-d, and the VT-d driver does not build nested domains";
        }
        if (stage == Stage.S1 && !(driver.scalableMode() && f.flts())) {
            return "stage: " + name + " has no first-stage translation (" + (driver.scalableMode()
                    ? "ECAP.FLTS=0" : "legacy mode: first-stage tables need scalable mode") + ")";
        }
        if (stage == Stage.S2 && (driver.scalableMode() ? !f.slts() : !f.anySecondStageLevels())) {
            return "stage: " + name + " has no second-stage translation";
        }
        return null;
    }

    @Override
    public int outputBits() {
        return Math.min(driver.features().mgawBits(), VtdSs.MAX_OA_BITS);
    }

    @Override
    public int defaultInputBits(Stage stage) {
        if (stage == Stage.S1) {
            return 48;
        }
        VtdFeatures f = driver.features();
        return f.secondStageLevels(4) ? 48 : 30 + 9 * (f.maxSecondStageLevels() - 2);
    }

    @Override
    public PtFormat format(Stage stage, int granuleLg2, int inputBits, int outputBits) {
        VtdFeatures f = driver.features();
        int levels = switch (inputBits) {
            case 39 -> 3;
            case 48 -> 4;
            case 57 -> 5;
            default -> throw new IllegalArgumentException("input_bits " + inputBits + ": VT-d tables take 39, 48"
                    + " or 57 bits (3, 4 or 5 levels)" + (stage == Stage.S1 ? "; first stage 48 or 57" : ""));
        };
        if (stage == Stage.S1) {
            if (levels == 3 || levels == 5 && !f.fl5lp()) {
                throw new IllegalArgumentException("input_bits " + inputBits + ": " + name + "'s first stage walks"
                        + (f.fl5lp() ? " 48 or 57" : " 48") + " bits");
            }
            return X86Pt.levels(levels).withOaBits(Math.max(X86Pt.MIN_OA_BITS, outputBits)).withPages1G(f.fl1gp());
        }
        if (!f.secondStageLevels(levels)) {
            throw new IllegalArgumentException("input_bits " + inputBits + ": " + name + " walks no " + levels
                    + "-level second-stage table (CAP.SAGAW=0x" + Integer.toHexString(f.sagaw()) + ")");
        }
        return VtdSs.levels(levels).withOaBits(Math.max(VtdSs.MIN_OA_BITS, outputBits)).withLargePages(f.sllps());
    }

    @Override
    public int substreamBits() {
        return domains.pasidBits();
    }

    @Override
    public int contextId(IommuDomain domain) {
        return domains.domainId(domain);
    }

    @Override
    protected Failure failure(VtdDriverException e) {
        return toFailure(e);
    }

    public static Failure toFailure(VtdDriverException e) {
        return new Failure(e.getMessage(), e.kind() == VtdDriverException.Kind.MEMORY, e);
    }

    @Override
    protected void attachStreamNow(IommuDomain domain, Stage stage, int streamId) throws IommuApiException {
        domains.attachDevice(domain, streamId);
    }

    /**
     * Enables device TLBs (ATS) for the requester id {@code streamId}, attached to a whole-device domain here: TT=01
     * or DTE in its context entry, and device-TLB invalidations after every invalidation of its domains, PASID
     * domains included (docs/ATS.md).
     *
     * @throws IommuApiException INCOMPATIBLE_INSTANCE without ECAP.DT; NOT_ATTACHED when nothing is attached
     */
    @Override
    public void enableAts(int streamId) throws IommuApiException {
        call(() -> domains.enableAts(streamId));
    }

    @Override
    protected void attachSubstreamNow(IommuDomain domain, int streamId, int substreamId) throws IommuApiException {
        domains.attachPasid(domain, streamId, substreamId);
    }

    @Override
    public void attachNested(IommuDomain domain, NestedTables tables, int streamId) {
        throw new UnsupportedOperationException("the VT-d driver does not build nested domains");
    }

    @Override
    protected void detachStreamNow(int streamId) throws IommuApiException {
        domains.detachDevice(streamId);
    }

    @Override
    protected void detachSubstreamNow(int streamId, int substreamId) throws IommuApiException {
        domains.detachPasid(streamId, substreamId);
    }

    @Override
    public IommuDomain domainOf(int streamId) {
        return domains.domainOf(streamId);
    }

    @Override
    public IommuDomain domainOf(int streamId, int substreamId) {
        return domains.domainOf(streamId, substreamId);
    }

    @Override
    protected void drainNow() {
        driver.drainFaults();
    }

    @Override
    protected void disableNow() {
        driver.disable();
    }
}
