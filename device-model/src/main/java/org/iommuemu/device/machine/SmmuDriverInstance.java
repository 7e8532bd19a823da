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
public final class SmmuDriverInstance implements DriverInstance {
    private final String name;
    private final SmmuHost host;
    private final AutoCloseable hostCloser;
    private final SmmuV3Driver driver;
    private final SmmuV3Domains domains;
    private final DriverEventLog events;

    private SmmuDriverInstance(String name, SmmuHost host, AutoCloseable hostCloser, SmmuV3Driver driver,
            SmmuV3Domains domains, DriverEventLog events) {
        this.name = name;
        this.host = host;
        this.hostCloser = hostCloser;
        this.driver = driver;
        this.domains = domains;
        this.events = events;
    }

    @Override
    public String name() {
        return name;
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

    @FunctionalInterface
    private interface Call {
        void run() throws IommuApiException;
    }

    private static void call(Call c) throws IommuApiException {
        try {
            c.run();
        } catch (SmmuV3DriverException e) {
            throw failure(e);
        }
    }

    static Failure failure(SmmuV3DriverException e) {
        return new Failure(e.getMessage(), e.kind() == SmmuV3DriverException.Kind.MEMORY, e);
    }

    @Override
    public void attachStream(IommuDomain domain, Stage stage, int streamId) throws IommuApiException {
        try {
            call(() -> domains.attachStream(domain, stage(stage), streamId));
        } finally {
            changed(streamId, -1);
        }
    }

    @Override
    public void attachSubstream(IommuDomain domain, int streamId, int substreamId) throws IommuApiException {
        try {
            call(() -> domains.attachSubstream(domain, streamId, substreamId));
        } finally {
            changed(streamId, substreamId);
        }
    }

    @Override
    public void attachNested(IommuDomain domain, NestedTables tables, int streamId) throws IommuApiException {
        try {
            call(() -> domains.attachNested(domain, tables, streamId));
        } finally {
            changed(streamId, -1);
        }
    }

    @Override
    public void detachStream(int streamId) throws IommuApiException {
        try {
            call(() -> domains.detachStream(streamId));
        } finally {
            changed(streamId, -1);
        }
    }

    @Override
    public void detachSubstream(int streamId, int substreamId) throws IommuApiException {
        try {
            call(() -> domains.detachSubstream(streamId, substreamId));
        } finally {
            changed(streamId, substreamId);
        }
    }

    private volatile StreamListener listener;

    @Override
    public void streamListener(StreamListener listener) {
        this.listener = listener;
    }

    /** Tells the listener what the stream (substream {@code ssid}, or -1) is attached to now. */
    private void changed(int streamId, int ssid) {
        StreamListener l = listener;
        if (l != null) {
            l.streamChanged(name, streamId, ssid, ssid < 0 ? domainOf(streamId) : domainOf(streamId, ssid));
        }
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
    public void drainEvents() {
        try {
            driver.drainEvents();
        } catch (SmmuV3DriverException e) {
            throw failure(e);
        }
    }

    @Override
    public DriverEventLog events() {
        return events;
    }

    @Override
    public void shutdown() {
        try {
            driver.disable();
        } catch (SmmuV3DriverException e) {
            throw failure(e);
        } finally {
            DriverInstance.closeQuietly(hostCloser, null);
        }
    }
}
