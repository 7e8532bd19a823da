package org.iommuemu.device.machine;

import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.driver.smmuv3.NestedTables;
import org.iommuemu.core.driver.smmuv3.SmmuHost;
import org.iommuemu.core.driver.smmuv3.SmmuV3Domains;
import org.iommuemu.core.driver.smmuv3.SmmuV3Driver;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverException;
import org.iommuemu.core.driver.smmuv3.SmmuV3DriverOptions;
import org.iommuemu.core.driver.smmuv3.SmmuV3Features;
import org.iommuemu.core.driver.smmuv3.TlbiPlanner;
import org.iommuemu.core.pgtable.PtFormat;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;

/**
 * An SMMUv3 instance a driver owns: {@link SmmuV3Driver} and its {@link SmmuV3Domains} behind the
 * architecture-neutral {@link DriverInstance}, over any {@link SmmuHost} (the machine's in-process one, or a
 * {@code remote.BusSmmuHost} for a driver outside the emulator). Domains are AArch64 LPAE tables of the stage asked
 * for.
 */
public final class SmmuDriverInstance extends OwnedInstance<SmmuV3DriverException> {
    private final SmmuHost host;
    private final SmmuV3Driver driver;
    private final SmmuV3Domains domains;

    private SmmuDriverInstance(String name, SmmuHost host, AutoCloseable hostCloser, SmmuV3Driver driver,
            SmmuV3Domains domains, DriverEventLog events) {
        super(name, hostCloser, events, SmmuV3DriverException.class);
        this.host = host;
        this.driver = driver;
        this.domains = domains;
    }

    @Override
    public IommuType type() {
        return IommuType.SMMUV3;
    }

    @Override
    public String driverName() {
        return "the SMMUv3 driver";
    }

    /**
     * Probes and initialises the SMMUv3 behind {@code host} (stream table, queues, SMMUEN with every stream aborting)
     * and logs what the driver reads into a new {@link DriverEventLog}.
     *
     * @param closeHost what {@link #shutdown} (or a failed take-over) closes after the driver
     * @throws SmmuV3DriverException when probe or init fails (the host is then closed)
     */
    public static SmmuDriverInstance takeOver(String name, SmmuHost host, AutoCloseable closeHost) {
        try {
            SmmuV3Driver driver = SmmuV3Driver.probe(host, SmmuV3DriverOptions.defaults());
            DriverEventLog events = new DriverEventLog();
            driver.addListener(events);
            driver.init();
            return new SmmuDriverInstance(name, host, closeHost, driver,
                    new SmmuV3Domains(driver, name, TlbiPlanner.DEFAULT_CONTEXT_THRESHOLD), events);
        } catch (RuntimeException e) {
            DriverInstance.closeQuietly(closeHost, e);
            throw e;
        }
    }

    public SmmuHost host() {
        return host;
    }

    public SmmuV3Driver driver() {
        return driver;
    }

    public SmmuV3Domains domains() {
        return domains;
    }

    private static SmmuV3Domains.Stage stage(Stage s) {
        return s == Stage.S1 ? SmmuV3Domains.Stage.S1 : SmmuV3Domains.Stage.S2;
    }

    @Override
    public String refusal(Stage stage, long granule, boolean nested) {
        SmmuV3Features f = driver.features();
        if (stage == Stage.S1 ? !f.stage1() : !f.stage2()) {
            return "stage: " + name + " does not implement stage " + (stage == Stage.S1 ? 1 : 2);
        }
        if (granule != 4096 && granule != 16384 && granule != 65536) {
            return "granule must be 4096, 16384 or 65536 bytes, got " + Long.toUnsignedString(granule);
        }
        if ((f.pageSizes() & granule) == 0) {
            return "granule: " + name + " does not implement the " + (granule >> 10) + " KiB granule";
        }
        if (nested && !f.nested()) {
            return "nest_parent: " + name + " does not implement both stages, so it cannot nest";
        }
        return null;
    }

    @Override
    public int outputBits() {
        return driver.features().oasBits();
    }

    @Override
    public int defaultInputBits(Stage stage) {
        return 48;
    }

    @Override
    public PtFormat format(Stage stage, int granuleLg2, int inputBits, int outputBits) {
        try {
            return stage == Stage.S1
                    ? Arm64Lpae.stage1(granuleLg2, inputBits, outputBits)
                    : Arm64Lpae.stage2(granuleLg2, inputBits, outputBits);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(e.getMessage().replace("iasBits", "input_bits")
                    .replace("oasBits", "output_bits"), e);
        }
    }

    @Override
    public int substreamBits() {
        return domains.substreamBits();
    }

    @Override
    public int contextId(IommuDomain domain) {
        return domains.contextId(domain);
    }

    @Override
    protected Failure failure(SmmuV3DriverException e) {
        return toFailure(e);
    }

    public static Failure toFailure(SmmuV3DriverException e) {
        return new Failure(e.getMessage(), e.kind() == SmmuV3DriverException.Kind.MEMORY, e);
    }

    @Override
    protected void attachStreamNow(IommuDomain domain, Stage stage, int streamId) throws IommuApiException {
        domains.attachStream(domain, stage(stage), streamId);
    }

    @Override
    public void enableAts(int streamId) throws IommuApiException {
        call(() -> domains.enableAts(streamId));
    }

    @Override
    protected void attachSubstreamNow(IommuDomain domain, int streamId, int substreamId) throws IommuApiException {
        domains.attachSubstream(domain, streamId, substreamId);
    }

    @Override
    public void attachNested(IommuDomain domain, NestedTables tables, int streamId) throws IommuApiException {
        attachNestedStream(streamId, () -> domains.attachNested(domain, tables, streamId));
    }

    @Override
    protected void detachStreamNow(int streamId) throws IommuApiException {
        domains.detachStream(streamId);
    }

    @Override
    protected void detachSubstreamNow(int streamId, int substreamId) throws IommuApiException {
        domains.detachSubstream(streamId, substreamId);
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
        driver.drainEvents();
    }

    @Override
    protected void disableNow() {
        driver.disable();
    }
}
