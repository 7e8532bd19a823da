package org.iommuemu.device.scenario;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.bits.Sizes;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.dma.Atc;
import org.iommuemu.dma.AtcListener;
import org.iommuemu.dma.ClientSecurity;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaOptions;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;
import org.iommuemu.dma.masters.CompletionCode;
import org.iommuemu.dma.masters.Nic;
import org.iommuemu.dma.masters.NicDescriptor;
import org.iommuemu.dma.masters.TrafficGenerator;
import org.iommuemu.dma.masters.TrafficSpec;
import org.iommuemu.dma.masters.TrafficStats;
import org.iommuemu.proto.v1.CacheStats;
import org.iommuemu.proto.v1.CodeCount;
import org.iommuemu.proto.v1.DescribeReply;
import org.iommuemu.proto.v1.DescribeRequest;
import org.iommuemu.proto.v1.InstanceStats;
import org.iommuemu.proto.v1.IommuInstance;
import org.iommuemu.proto.v1.IommuKind;
import org.iommuemu.proto.v1.ClearFaultsRequest;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.SanitizerReport;
import org.iommuemu.proto.v1.SanitizerReportsRequest;
import org.iommuemu.proto.v1.FaultInjectionGrpc;
import org.iommuemu.proto.v1.InjectionRecord;
import org.iommuemu.proto.v1.ListFaultsRequest;
import org.iommuemu.proto.v1.InjectRequest;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.MemReadRequest;
import org.iommuemu.proto.v1.MemWriteRequest;
import org.iommuemu.proto.v1.StatsRequest;
import org.iommuemu.proto.v1.TelemetryGrpc;

/**
 * Runs a checked scenario ({@link ScenarioFile}) as a client of the bus, as any program driving the emulator
 * would: domains, buffers and attachments through a {@link ScenarioDriver} (by default the server's own driver,
 * the {@code Driver} service), DMA through {@link DmaClient} sessions on the {@code Dma} service, memory checks
 * through {@code Machine.MemRead}, counters from {@code Telemetry.Stats}. The server is embedded (a machine built
 * from the file's {@code machine} section, reached in process or over Netty on loopback) or a separate
 * {@code iommu-emu serve} ({@link Options#target}); then the file's {@code machine} section is not applied, and
 * the instances the scenario names must exist there.
 *
 * <p>Counters and event counts are measured from the start of the run, so a scenario means the same on a fresh
 * embedded machine and on a long-running server. At the end the runner detaches its devices, destroys its domains
 * and frees its buffers, so the same scenario can run again on the same server.
 *
 * <p>A step that cannot be carried out (a map the domain refuses, a DMA the bus rejects) fails the run and stops
 * it; an expect that does not hold fails the run and the run goes on.
 */
public final class ScenarioRunner {
    /** How the runner reaches a server. */
    public enum Transport {
        /** An embedded machine on the in-process gRPC transport (the default). */
        IN_PROCESS,
        /** An embedded machine served over Netty on a free loopback port. */
        NETTY,
        /** A separate server at {@link Options#target}. */
        REMOTE
    }

    /** Where the IOMMU driver runs. */
    public enum DriverSide {
        /** The server's own driver, through the {@code Driver} service (the default). */
        SERVER,
        /**
         * iommu-core's SMMUv3 driver in the runner's process, programming the instances over the {@code Machine}
         * service (MMIO, memory, interrupts): the driver out of process.
         */
        CLIENT
    }

    /**
     * How to run.
     *
     * @param transport             how the bus is reached
     * @param target                HOST:PORT of the server for {@link Transport#REMOTE}, else null
     * @param progressIntervalNanos how often long steps print a progress line
     * @param driver                where the driver runs
     * @param injections            faults to inject before the first step (as {@code run --inject}), cleared at
     *                              the end of the run
     * @param security              token and TLS settings for the {@link Transport#REMOTE} server
     * @param port                  the loopback TCP port of the {@link Transport#NETTY} server (0: a free one)
     */
    public record Options(Transport transport, String target, long progressIntervalNanos, DriverSide driver,
            List<FaultSpec> injections, ClientSecurity security, int port) {
        /** Long traffic and nic_receive steps print a progress line this often: every second. */
        public static final long DEFAULT_PROGRESS_NANOS = 1_000_000_000L;

        public Options {
            if ((transport == Transport.REMOTE) != (target != null)) {
                throw new IllegalArgumentException("a target goes with the REMOTE transport, and only with it");
            }
            if (progressIntervalNanos < 0) {
                throw new IllegalArgumentException("progress interval " + progressIntervalNanos + " ns");
            }
            java.util.Objects.requireNonNull(driver, "driver");
            injections = List.copyOf(injections);
            java.util.Objects.requireNonNull(security, "security");
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException("port " + port);
            }
        }

        public static Options inProcess() {
            return new Options(Transport.IN_PROCESS, null, DEFAULT_PROGRESS_NANOS, DriverSide.SERVER, List.of(),
                    ClientSecurity.NONE, 0);
        }

        public static Options netty() {
            return new Options(Transport.NETTY, null, DEFAULT_PROGRESS_NANOS, DriverSide.SERVER, List.of(),
                    ClientSecurity.NONE, 0);
        }

        public static Options remote(String target) {
            return new Options(Transport.REMOTE, target, DEFAULT_PROGRESS_NANOS, DriverSide.SERVER, List.of(),
                    ClientSecurity.NONE, 0);
        }

        /** These options with progress lines every {@code nanos} (0: at every check). */
        public Options withProgressEvery(long nanos) {
            return new Options(transport, target, nanos, driver, injections, security, port);
        }

        /** These options with the driver on {@code side}. */
        public Options withDriver(DriverSide side) {
            return new Options(transport, target, progressIntervalNanos, side, injections, security, port);
        }

        /** These options with {@code faults} injected before the first step. */
        public Options withInjections(List<FaultSpec> faults) {
            return new Options(transport, target, progressIntervalNanos, driver, faults, security, port);
        }

        /** These options with {@code settings} (token, TLS) for the remote server. */
        public Options withSecurity(ClientSecurity settings) {
            return new Options(transport, target, progressIntervalNanos, driver, injections, settings, port);
        }

        /**
         * These options serving the embedded machine over Netty on loopback port {@code tcpPort} (0: a free one);
         * an in-process transport becomes {@link Transport#NETTY}. Not for {@link Transport#REMOTE}.
         */
        public Options withPort(int tcpPort) {
            if (transport == Transport.REMOTE) {
                throw new IllegalArgumentException("a port is for the embedded machine; the remote server has its own");
            }
            return new Options(Transport.NETTY, null, progressIntervalNanos, driver, injections, security, tcpPort);
        }
    }

    /** How long the runner waits for a remote server to answer {@code Describe}. */
    static final long CONNECT_TIMEOUT_SECONDS = 10;

    private final Scenario s;
    private final ScenarioFile.Loaded loaded;
    private final Options options;
    private final PrintWriter out;
    private ScenarioDriver driver;
    private MachineGrpc.MachineBlockingStub cpu;
    private TelemetryGrpc.TelemetryBlockingStub telemetry;
    private FaultInjectionGrpc.FaultInjectionBlockingStub faults;
    /** The newest injection record's sequence when the run started: the report lists the records after it. */
    private long injectionsBefore;
    private DriverGrpc.DriverBlockingStub sanitizer;
    /** Whether this run switched the sanitizer on and reads its reports; its state before; reports before the run. */
    private boolean sanitizing;
    private boolean sanitizerWasOn;
    private long sanitizerBase;
    /** Faults the run injected and has not cleared: id → label (empty when none). */
    private final Map<Long, String> injected = new LinkedHashMap<>();
    private DescribeReply described;
    /** The scenario's external devices; null when it has none. */
    private ExternalDevices externals;
    private final Map<String, Long> domains = new LinkedHashMap<>();
    private final Map<String, Long> buffers = new LinkedHashMap<>();
    private final Map<String, DmaSession> sessions = new LinkedHashMap<>();
    private final Map<String, DmaResult> lastDma = new HashMap<>();
    /** The instances the run reports on: every one of an embedded machine, the ones the scenario names else. */
    private final Set<String> instances = new LinkedHashSet<>();
    private final Map<String, InstanceStats> baseStats = new HashMap<>();
    private final Map<String, Map<String, Long>> baseEvents = new HashMap<>();
    private final List<Scenario.Device> attached = new ArrayList<>();
    /** Per device: DMA ops, bytes, faults over dma and traffic steps. */
    private final Map<String, long[]> deviceDma = new HashMap<>();
    private final Map<String, NicState> nics = new HashMap<>();
    /** Per device: the substream (and attributes) its DMA carries. */
    private final Map<String, DmaOptions> dmaOptions = new HashMap<>();
    /** Per ATS device the runner drives: its session (in ATC mode) and its invalidation listener. */
    private final Map<String, AtsDevice> atsDevices = new LinkedHashMap<>();
    /** Runs the completions of ATS devices that answer invalidations late; null until one needs it. */
    private ScheduledExecutorService atcAnswers;

    /** An ATS device: the session whose DMA goes through {@code atc}, and the listener that keeps it coherent. */
    private record AtsDevice(DmaSession session, Atc atc, AtcListener listener) {}

    /** A NIC device and what its driver (the runner) keeps: where the rings are, the RX tail. */
    private static final class NicState {
        final Nic nic;
        final long ringPa;
        final int rxEntries;
        int rxTail;

        NicState(Nic nic, long ringPa, int rxEntries) {
            this.nic = nic;
            this.ringPa = ringPa;
            this.rxEntries = rxEntries;
        }
    }
    private long dmaReads;
    private long dmaWrites;
    private long dmaBytes;
    private long dmaFaults;
    private long dmaNanos;
    private int expectsPassed;
    private int expectsFailed;
    private final List<String> failures = new ArrayList<>();
    private final List<Failure> failed = new ArrayList<>();
    private int stepsRun;
    private boolean stopped;

    private Observer observer = new Observer() { };
    /** Each expect's outcome, for the report's "expects" list. */
    private final List<Map<String, Object>> expectResults = new ArrayList<>();

    /**
     * Watches a run from outside, on the bus the run uses (the trace for {@code --trace} and the HTML report). Every
     * method runs on the runner's thread.
     */
    public interface Observer {
        /**
         * The embedded machine is built and nothing serves it yet (not called for a server at
         * {@link Options#target}): the place to size its trace ring or serve its metrics. What this throws ends
         * the run before it starts.
         */
        default void embedded(Machine machine) {
        }

        /**
         * The server is reached and described; nothing has been set up yet. {@code instances} are the IOMMU
         * instances the run reports on; {@code devices} the scenario's devices (name, iommu, stream).
         */
        default void connected(ManagedChannel channel, List<String> instances, List<DeviceInfo> devices) {
        }

        /**
         * The steps are over (before tear-down); {@code traceWritten} is the server's {@code trace_written} now:
         * the trace up to it covers the run.
         */
        default void stepsDone(long traceWritten) {
        }
    }

    /** A device of the scenario: its name, IOMMU instance and stream id. */
    public record DeviceInfo(String name, String iommu, int stream) {}

    /** Runs {@code loaded} as the three-argument {@code run} does, and tells {@code observer} how it goes. */
    public static Result run(ScenarioFile.Loaded loaded, PrintWriter out, Options options, Observer observer) {
        ScenarioRunner r = new ScenarioRunner(loaded, out, options);
        r.observer = observer;
        return r.run();
    }

    private ScenarioRunner(ScenarioFile.Loaded loaded, PrintWriter out, Options options) {
        this.s = loaded.scenario();
        this.loaded = loaded;
        this.out = out;
        // an external program needs a TCP port to reach the embedded machine
        this.options = options.transport() == Transport.IN_PROCESS && s.devices.stream().anyMatch(d -> d.external)
                ? options.withPort(0) : options;
    }

    /**
     * What a run found; {@link #report} is the summary as plain data (for JSON); {@link #failed} says the same as
     * {@link #failures} with what failed, for programs that classify runs (campaigns).
     */
    public record Result(int steps, int stepsRun, int expectsPassed, List<String> failures,
            Map<String, Object> report, List<Failure> failed) {
        public Result {
            failures = List.copyOf(failures);
            failed = List.copyOf(failed);
        }

        public boolean passed() {
            return failures.isEmpty();
        }
    }

    /**
     * One failure of a run.
     *
     * @param step    the step's index, or -1 for the sanitizer's verdict after the steps
     * @param what    {@code step} (a step that could not be carried out; the run stopped there),
     *                {@code expect.KIND} (an expect that did not hold: {@code expect.memory}, {@code expect.read},
     *                {@code expect.fault}, {@code expect.events}, {@code expect.counter},
     *                {@code expect.device_counter}, {@code expect.sanitizer}), {@code sanitizer} (reports the
     *                scenario has no sanitizer expect for), or {@code external} (an external device that never
     *                attached, or whose command failed: step -1)
     * @param message the line {@link Result#failures} has
     */
    public record Failure(int step, String what, String message) {}

    /** Runs {@code loaded} on an embedded machine in process, printing a line per step and the summary. */
    public static Result run(ScenarioFile.Loaded loaded, PrintWriter out) {
        return run(loaded, out, Options.inProcess());
    }

    /**
     * Runs {@code loaded} as {@code options} say, printing a line per step and then the summary to {@code out}.
     *
     * @throws ScenarioException when the bus cannot be reached or set-up (domains, buffers, devices) fails
     */
    public static Result run(ScenarioFile.Loaded loaded, PrintWriter out, Options options) {
        return new ScenarioRunner(loaded, out, options).run();
    }

    private Result run() {
        out.println("scenario " + s.source + ": " + s.domains.size() + " domain(s), " + s.buffers.size()
                + " buffer(s), " + s.devices.size() + " device(s), " + s.steps.size() + " step(s)"
                + switch (options.transport()) {
                    case IN_PROCESS -> "";
                    case NETTY -> ", over Netty on loopback";
                    case REMOTE -> ", against the server at " + options.target();
                } + (options.driver() == DriverSide.CLIENT ? ", driver in this process over the bus" : ""));
        BusServer server = null;
        ManagedChannel channel;
        Machine machine = null;
        if (options.transport() == Transport.REMOTE) {
            channel = options.security().channel(options.target(), DmaClient.MAX_INBOUND_MESSAGE);
        } else {
            machine = new Machine(loaded.machine());
            observer.embedded(machine);
            String name = "iommu-emu-run-" + UUID.randomUUID();
            boolean netty = options.transport() == Transport.NETTY;
            try {
                server = (netty ? BusServer.netty(machine, "127.0.0.1", options.port())
                        : BusServer.inProcess(machine, name)).start();
            } catch (IOException e) {
                throw new ScenarioException("cannot start the bus: " + e.getMessage(), e);
            }
            channel = netty ? NettyChannelBuilder.forTarget(server.target()).usePlaintext()
                    .maxInboundMessageSize(DmaClient.MAX_INBOUND_MESSAGE).build()
                    : InProcessChannelBuilder.forName(name).build();
        }
        try (DmaClient client = DmaClient.over(channel)) {
            cpu = MachineGrpc.newBlockingStub(channel);
            telemetry = TelemetryGrpc.newBlockingStub(channel);
            faults = FaultInjectionGrpc.newBlockingStub(channel);
            sanitizer = DriverGrpc.newBlockingStub(channel);
            connect();
            List<Scenario.Device> external = s.devices.stream().filter(d -> d.external).toList();
            if (!external.isEmpty()) {
                String at = server != null ? server.target() : options.target();
                if (server != null) {
                    out.println("  bus: serving on " + at + " (port " + server.port() + ") for the external devices");
                }
                externals = new ExternalDevices(cpu, out, at, s.folder, external);
            }
            List<DeviceInfo> infos = new ArrayList<>();
            s.devices.forEach(d -> infos.add(new DeviceInfo(d.name, d.iommu, d.stream == null ? 0 : d.stream)));
            observer.connected(channel, List.copyOf(instances), infos);
            // the client driver's operations go on the embedded machine's driver track, as DriverService's do
            driver = options.driver() == DriverSide.SERVER ? new ServiceDriver(channel)
                    : machine != null ? new TracedDriver(new ClientDriver(channel, described, s.sanitizer),
                            machine.tracer())
                    : new ClientDriver(channel, described, s.sanitizer);
            baseline();
            injectionsBefore = faults.list(ListFaultsRequest.newBuilder().setRecordsAfter(Long.MAX_VALUE).build())
                    .getLastSequence();
            startSanitizer();
            setUp(client);
            for (FaultSpec f : options.injections()) {
                long id;
                try {
                    id = faults.inject(InjectRequest.newBuilder().setSpec(f.toProto()).build()).getFaultId();
                } catch (StatusRuntimeException e) {
                    throw new ScenarioException("--inject " + f.kind().name() + " on " + f.target().iommu() + ": "
                            + message(e), e);
                }
                injected.put(id, f.label() == null ? "" : f.label());
                out.println("  inject " + f.kind().name() + " on " + f.target().iommu() + " (--inject): fault " + id);
            }
            for (int i = 0; i < s.steps.size() && !stopped; i++) {
                step(i, s.steps.get(i));
                stepsRun++;
            }
            if (externals != null) {
                finishExternals();
            }
            Map<String, Object> sanitized = sanitizerVerdict();
            Map<String, Object> report = summary();
            report.put("sanitizer", sanitized);
            report.put("expects", List.copyOf(expectResults));
            observer.stepsDone(telemetry.stats(StatsRequest.newBuilder().addAllIommus(instances).build())
                    .getTraceWritten());
            tearDown();
            out.flush();
            return new Result(s.steps.size(), stepsRun, expectsPassed, failures, report, failed);
        } finally {
            if (externals != null) {
                externals.killAll();
            }
            if (driver != null) {
                driver.close();
            }
            if (atcAnswers != null) {
                atcAnswers.shutdownNow();
            }
            channel.shutdownNow();
            try {
                channel.awaitTermination(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (server != null) {
                server.close();
            }
        }
    }

    // ------------------------------------------------------------------ set-up

    /** Describes the server and checks that every instance the scenario names is there, of the kind it says. */
    private void connect() {
        try {
            described = cpu.withDeadlineAfter(CONNECT_TIMEOUT_SECONDS, TimeUnit.SECONDS)
                    .describe(DescribeRequest.getDefaultInstance());
        } catch (StatusRuntimeException e) {
            throw new ScenarioException("cannot reach the server" + (options.target() != null ? " at "
                    + options.target() : "") + ": " + e.getStatus().getCode() + (e.getStatus().getDescription()
                    != null ? ": " + e.getStatus().getDescription() : ""), e);
        }
        Map<String, IommuInstance> byName = new LinkedHashMap<>();
        for (IommuInstance i : described.getIommusList()) {
            byName.put(i.getName(), i);
        }
        Map<String, IommuKind> kinds = new LinkedHashMap<>();
        loaded.machine().iommus().forEach(spec -> kinds.put(spec.name(),
                spec.type() == IommuType.VTD ? IommuKind.VTD : IommuKind.SMMUV3));
        Set<String> named = new LinkedHashSet<>();
        s.domains.forEach(d -> named.addAll(d.iommus));
        s.devices.forEach(d -> named.add(d.iommu));
        for (Scenario.Step st : s.steps) {
            if (st.expect != null && st.expect.events != null) {
                named.add(st.expect.events.iommu);
            }
            if (st.expect != null && st.expect.counter != null) {
                named.add(st.expect.counter.iommu);
            }
            if (st.inject != null) {
                named.add(st.inject.target().iommu());
            }
        }
        for (FaultSpec f : options.injections()) {
            named.add(f.target().iommu());
        }
        for (String n : named) {
            IommuInstance i = byName.get(n);
            if (i == null) {
                throw new ScenarioException(s.source + ": the server has no IOMMU instance " + n + " (it has "
                        + byName.keySet() + ")");
            }
            IommuKind want = kinds.get(n);
            if (want != null && i.getKind() != want) {
                throw new ScenarioException(s.source + ": " + n + " on the server is " + i.getKind()
                        + ", and the scenario has it " + want);
            }
        }
        if (options.transport() == Transport.REMOTE) {
            out.println("  server " + described.getServerVersion() + ": " + byName.keySet() + " (the file's machine"
                    + " section is not applied)");
            instances.addAll(named);
        } else {
            instances.addAll(byName.keySet());
        }
    }

    /** Counters and driver event counts as the run starts: what the run reports is measured from here. */
    private void baseline() {
        for (InstanceStats st : stats()) {
            baseStats.put(st.getIommu(), st);
        }
        for (String i : instances) {
            baseEvents.put(i, driver.events(i));
        }
    }

    private List<InstanceStats> stats() {
        return telemetry.stats(StatsRequest.newBuilder().addAllIommus(instances).build()).getIommusList();
    }

    private InstanceStats statsOf(String iommu) {
        return telemetry.stats(StatsRequest.newBuilder().addIommus(iommu).build()).getIommus(0);
    }

    private void setUp(DmaClient client) {
        for (Scenario.Domain d : s.domains) {
            try {
                ScenarioDriver.Created c = driver.createDomain(d, d.nestParent == null ? null
                        : domains.get(d.nestParent));
                domains.put(d.name, c.handle());
                out.println("  domain " + d.name + ": stage " + d.stage + ", " + (1 << d.granuleLg2 - 10)
                        + " KiB granule, " + d.inputBits + "-bit input, " + (d.lazy ? "lazy" : "strict") + ", on "
                        + d.iommus + (d.nestParent != null ? ", nested on " + d.nestParent : "") + " ("
                        + c.description() + ")");
            } catch (RuntimeException e) {
                throw new ScenarioException(s.source + ": domain " + d.name + ": " + message(e), e);
            }
        }
        for (Scenario.Buffer b : s.buffers) {
            try {
                long pa = driver.allocBuffer(b.size);
                buffers.put(b.name, pa);
                out.println("  buffer " + b.name + ": " + Sizes.format(b.size) + " at " + Bits.hex(pa));
            } catch (RuntimeException e) {
                throw new ScenarioException(s.source + ": buffer " + b.name + ": " + message(e), e);
            }
        }
        for (Scenario.Device d : s.devices) {
            if (d.external) {
                try {
                    int ctx = driver.attach(domains.get(d.domain), d.iommu, d.stream, d.substream, d.ats);
                    attached.add(d);
                    out.println("  device " + d.name + ": stream " + Bits.hex(d.stream) + (d.substream != null
                            ? " substream " + d.substream : "") + " of " + d.iommu + " in domain " + d.domain
                            + " (context " + ctx + ")" + (d.ats ? ", ATS enabled on its stream" : "")
                            + ", external: its own program attaches on the bus");
                } catch (RuntimeException e) {
                    throw new ScenarioException(s.source + ": device " + d.name + ": " + message(e), e);
                }
                continue;
            }
            try {
                int ctx = driver.attach(domains.get(d.domain), d.iommu, d.stream, d.substream, d.ats);
                attached.add(d);
                DmaSession session = client.attach(d.name, d.iommu, d.stream, d.substream != null, d.ats);
                DmaOptions opts = d.substream == null ? DmaOptions.DEFAULT : DmaOptions.DEFAULT.withSubstream(
                        d.substream);
                dmaOptions.put(d.name, opts);
                sessions.put(d.name, session);
                deviceDma.put(d.name, new long[3]);
                out.println("  device " + d.name + ": stream " + Bits.hex(d.stream) + (d.substream != null
                        ? " substream " + d.substream : "") + " of " + d.iommu + " in domain " + d.domain
                        + " (context " + ctx + ")");
                if (d.ats) {
                    ats(d, session);
                }
                if (d.nic != null) {
                    nic(d, session);
                }
            } catch (RuntimeException e) {
                throw new ScenarioException(s.source + ": device " + d.name + ": " + message(e), e);
            }
        }
    }

    /**
     * Gives an ATS device its ATC: the session goes into ATC mode (every DMA of its dma, traffic and NIC steps
     * through the ATC) and listens for the IOMMU's invalidations, answering as its {@code atc.answer} says.
     */
    private void ats(Scenario.Device d, DmaSession session) {
        Scenario.AtcSpec spec = d.atc != null ? d.atc : new Scenario.AtcSpec();
        Atc atc = new Atc(spec.capacity);
        if (spec.answer == AtcListener.Answer.DELAYED && atcAnswers == null) {
            atcAnswers = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "scenario-atc-answers");
                t.setDaemon(true);
                return t;
            });
        }
        AtcListener listener = session.listenForInvalidations(atc, spec.answer,
                TimeUnit.NANOSECONDS.toMillis(spec.delayNanos), atcAnswers);
        session.useAtc(atc);
        atsDevices.put(d.name, new AtsDevice(session, atc, listener));
        out.println("    ats: its DMA goes through an ATC of " + spec.capacity + " regions, which "
                + spec.describe());
    }

    /** Allocates and maps a NIC's rings (RX then TX) at its ring_iova, as its driver's coherent allocation. */
    private void nic(Scenario.Device d, DmaSession session) {
        Scenario.Domain dom = domainSpec(d.domain);
        long bytes = Bits.alignUp(d.nic.ringBytes(), dom.granuleLg2);
        long pa = driver.allocBuffer(bytes);
        buffers.put("rings of " + d.name, pa);
        driver.map(domains.get(d.domain), d.nic.ringIova, pa, bytes, Prot.READ | Prot.WRITE);
        long tx = d.nic.ringIova + (long) d.nic.rxEntries * NicDescriptor.SIZE;
        nics.put(d.name, new NicState(new Nic(session, d.nic.ringIova, d.nic.rxEntries, tx, d.nic.txEntries,
                9000, 64 << 10, dmaOptions.get(d.name)), pa, d.nic.rxEntries)); // Nic's own defaults
        out.println("    nic: " + d.nic.rxEntries + " RX and " + d.nic.txEntries + " TX descriptors at iova "
                + Bits.hex(d.nic.ringIova) + " (" + Bits.hex(pa) + ")");
    }

    /** The element of {@code list} named {@code name} (ScenarioFile checked that every name used is defined). */
    private static <T> T named(List<T> list, java.util.function.Function<T, String> nameOf, String name) {
        for (T t : list) {
            if (nameOf.apply(t).equals(name)) {
                return t;
            }
        }
        throw new IllegalStateException("nothing named " + name);
    }

    private Scenario.Domain domainSpec(String name) {
        return named(s.domains, d -> d.name, name);
    }

    /**
     * Switches the server's stale-DMA sanitizer on before any domain is made (it shadows only domains made while it
     * is on), unless the file says {@code sanitizer: false} or the driver is the client-side one, whose domains the
     * server cannot see.
     */
    private void startSanitizer() {
        if (!s.sanitizer) {
            out.println("  sanitizer: off (sanitizer: false)");
            return;
        }
        try {
            sanitizerWasOn = sanitizer.sanitizerReports(SanitizerReportsRequest.getDefaultInstance()).getEnabled();
            sanitizerBase = sanitizer.sanitizerReports(SanitizerReportsRequest.newBuilder().setEnable(true)
                    .setAfterSequence(Long.MAX_VALUE).build()).getLastSequence();
        } catch (StatusRuntimeException e) {
            throw new ScenarioException("cannot switch the server's sanitizer on: " + message(e), e);
        }
        sanitizing = true;
        out.println("  sanitizer: on (every translated DMA is checked against what the driver mapped)");
    }

    /** The sanitizer's reports since the run started. */
    private List<SanitizerReport> sanitizerReports() {
        return sanitizer.sanitizerReports(SanitizerReportsRequest.newBuilder().setAfterSequence(sanitizerBase)
                .build()).getReportsList();
    }

    private static String kindName(SanitizerReport r) {
        return r.getKind().name().replaceFirst("^SANITIZER_", "");
    }

    /**
     * The sanitizer's reports over the run, printed; when the scenario expects none of them (it has no
     * {@code expect: sanitizer}), any report is a failure of the run.
     */
    private Map<String, Object> sanitizerVerdict() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("enabled", sanitizing);
        if (!sanitizing) {
            return m;
        }
        List<SanitizerReport> reports = sanitizerReports();
        Map<String, Long> byKind = new TreeMap<>();
        for (SanitizerReport r : reports) {
            byKind.merge(kindName(r), 1L, Long::sum);
        }
        m.put("reports", byKind);
        boolean expected = s.steps.stream().anyMatch(st -> st.expect != null && st.expect.sanitizer != null);
        if (!reports.isEmpty() && !expected) {
            fail(-1, "sanitizer", "sanitizer: " + reports.size() + " report(s) the scenario does not expect: "
                    + byKind);
        }
        for (int i = 0; i < Math.min(reports.size(), 10); i++) {
            out.println("  sanitizer report: " + reports.get(i).getDetail());
        }
        return m;
    }

    /** Gives back what the run took on the server; a failure here is reported, not fatal. */
    private void tearDown() {
        List<String> problems = new ArrayList<>();
        if (sanitizing && !sanitizerWasOn) {
            try {
                sanitizer.sanitizerReports(SanitizerReportsRequest.newBuilder().setEnable(false).build());
            } catch (StatusRuntimeException e) {
                problems.add("switching the sanitizer back off: " + message(e));
            }
        }
        for (long id : injected.keySet()) { // first, so the clean-up's own invalidations take effect
            try {
                faults.clear(ClearFaultsRequest.newBuilder().setFaultId(id).build());
            } catch (StatusRuntimeException e) {
                if (e.getStatus().getCode() != Status.Code.NOT_FOUND) { // a one-shot fault is gone already
                    problems.add("clearing injected fault " + id + ": " + message(e));
                }
            }
        }
        injected.clear();
        for (Map.Entry<String, AtsDevice> a : atsDevices.entrySet()) {
            // before its session ends: what the detach then invalidates finds no device, and completes at once
            try {
                a.getValue().listener().close();
            } catch (RuntimeException e) {
                problems.add("closing the ATC listener of " + a.getKey() + ": " + message(e));
            }
        }
        for (DmaSession session : sessions.values()) {
            try {
                session.close();
            } catch (RuntimeException e) {
                problems.add("closing session " + session + ": " + message(e));
            }
        }
        for (Scenario.Device d : attached) {
            try {
                driver.detach(d.iommu, d.stream, d.substream);
            } catch (RuntimeException e) {
                problems.add("detaching " + d.name + ": " + message(e));
            }
        }
        List<Map.Entry<String, Long>> created = new ArrayList<>(domains.entrySet());
        java.util.Collections.reverse(created); // nested domains before their parents
        for (Map.Entry<String, Long> d : created) {
            try {
                driver.destroyDomain(d.getValue());
            } catch (RuntimeException e) {
                problems.add("destroying domain " + d.getKey() + ": " + message(e));
            }
        }
        for (Map.Entry<String, Long> b : buffers.entrySet()) {
            try {
                driver.freeBuffer(b.getValue());
            } catch (RuntimeException e) {
                problems.add("freeing buffer " + b.getKey() + ": " + message(e));
            }
        }
        for (String p : problems) {
            out.println("  warning: clean-up: " + p);
        }
    }

    /** A failure's message without the exception class when it is a gRPC status (which says enough). */
    static String message(Throwable e) {
        return e instanceof StatusRuntimeException ? e.getMessage() : e.getClass().getSimpleName() + ": "
                + e.getMessage();
    }

    // ------------------------------------------------------------------ steps

    private void step(int i, Scenario.Step st) {
        String tag = String.format("  [%d] ", i);
        String what = st.kind();
        try {
            if (externals != null && st.expect != null && st.expect.deviceCounter != null) {
                externals.awaitAttach(st.expect.deviceCounter.device);
            }
            if (st.wait != null) { // waits for the device to attach first
                what = "wait " + st.wait.device + " " + st.wait.condition();
                out.println(tag + "...  " + what);
                out.flush();
                ok(tag, what + " " + externals.await(st.wait));
            } else if (st.map != null) {
                Scenario.Map m = st.map;
                long pa = pa(m);
                what = "map " + m.domain + " iova " + Bits.hex(m.iova) + " -> " + target(m) + " size "
                        + Sizes.format(m.size) + " prot " + Prot.toString(m.prot);
                long n = driver.map(domains.get(m.domain), m.iova, pa, m.size, m.prot);
                ok(tag, what + " (" + Sizes.format(n) + " mapped)");
            } else if (st.mapSg != null) {
                Scenario.MapSg m = st.mapSg;
                List<long[]> sg = new ArrayList<>();
                long total = 0;
                for (Scenario.SgPart e : m.entries) {
                    sg.add(new long[] {pa(e), e.size});
                    total += e.size;
                }
                what = "map_sg " + m.domain + " iova " + Bits.hex(m.iova) + " " + sg.size() + " entries, "
                        + Sizes.format(total) + " prot " + Prot.toString(m.prot);
                long n = driver.mapSg(domains.get(m.domain), m.iova, sg, m.prot);
                ok(tag, what + " (" + Sizes.format(n) + " mapped)");
            } else if (st.unmap != null) {
                Scenario.Unmap u = st.unmap;
                what = "unmap " + u.domain + " iova " + Bits.hex(u.iova) + " size " + Sizes.format(u.size);
                long n = driver.unmap(domains.get(u.domain), u.iova, u.size);
                ok(tag, what + " (" + Sizes.format(n) + " unmapped)");
            } else if (st.inject != null) {
                FaultSpec f = st.inject;
                what = "inject " + f.kind().name() + " on " + f.target().iommu();
                long id = faults.inject(InjectRequest.newBuilder().setSpec(f.toProto()).build()).getFaultId();
                injected.put(id, f.label() == null ? "" : f.label());
                ok(tag, what + (f.label() == null || f.label().isEmpty() ? "" : " (" + f.label() + ")")
                        + ": fault " + id);
            } else if (st.clearFaults != null) {
                String label = st.clearFaults.label;
                what = "clear_faults" + (label == null ? "" : " " + label);
                int n = 0;
                for (var it = injected.entrySet().iterator(); it.hasNext(); ) {
                    var e = it.next();
                    if (label == null || label.equals(e.getValue())) {
                        try {
                            faults.clear(ClearFaultsRequest.newBuilder().setFaultId(e.getKey()).build());
                            n++;
                        } catch (StatusRuntimeException ex) {
                            if (ex.getStatus().getCode() != Status.Code.NOT_FOUND) {
                                throw ex;
                            }
                        }
                        it.remove();
                    }
                }
                ok(tag, what + ": " + n + " cleared");
            } else if (st.flush != null) {
                what = "flush " + st.flush.domain;
                boolean any = driver.flush(domains.get(st.flush.domain));
                ok(tag, what + (any ? " (flushed the queue)" : " (queue was empty)"));
            } else if (st.dma != null) {
                dma(tag, st.dma);
            } else if (st.traffic != null) {
                what = "traffic " + st.traffic.device + " " + st.traffic.pattern;
                traffic(tag, st.traffic);
            } else if (st.nicReceive != null) {
                what = "nic_receive " + st.nicReceive.device;
                nicReceive(tag, st.nicReceive);
            } else {
                expect(tag, st.expect);
            }
        } catch (Exception e) {
            String msg = tag + "FAIL " + what + ": " + message(e);
            out.println(msg);
            out.println("  stopping: the steps after this one would run on a machine the scenario did not"
                    + " intend");
            fail(stepIndex(tag), "step", ScenarioFile.stepName(s, stepIndex(tag)) + ": " + what + ": " + message(e));
            stopped = true;
        }
    }

    /**
     * After the steps: an external device no step used must still have attached; the commands the runner started
     * are stopped, and one that failed on its own fails the run.
     */
    private void finishExternals() {
        if (!stopped) {
            for (Scenario.Device d : s.devices) {
                if (d.external) {
                    try {
                        externals.awaitAttach(d.name);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        fail(-1, "external", "interrupted while waiting for external device " + d.name);
                    } catch (RuntimeException e) {
                        out.println("  FAIL " + e.getMessage());
                        fail(-1, "external", e.getMessage());
                    }
                }
            }
        }
        for (String f : externals.finish()) {
            out.println("  FAIL " + f);
            fail(-1, "external", f);
        }
    }

    private void fail(int step, String what, String message) {
        failures.add(message);
        failed.add(new Failure(step, what, message));
    }

    private static int stepIndex(String tag) {
        return Integer.parseInt(tag.substring(tag.indexOf('[') + 1, tag.indexOf(']')));
    }

    private void ok(String tag, String what) {
        out.println(tag + "ok   " + what);
    }

    private long pa(Scenario.Target t) {
        return t.buffer != null ? buffers.get(t.buffer) + t.offset : t.pa;
    }

    private String target(Scenario.Target t) {
        return t.buffer != null ? t.buffer + (t.offset != 0 ? "+" + Bits.hex(t.offset) : "") + " ("
                + Bits.hex(pa(t)) + ")" : "pa " + Bits.hex(t.pa);
    }

    private void dma(String tag, Scenario.Dma d) {
        DmaSession session = sessions.get(d.device);
        int size = (int) (long) d.size;
        DmaResult r;
        String what;
        long t0 = System.nanoTime();
        if (d.write) {
            what = "dma " + d.device + " write " + Sizes.format(size) + " at iova " + Bits.hex(d.iova) + " ("
                    + d.data + ")";
            r = session.write(d.iova, com.google.protobuf.ByteString.copyFrom(d.data.bytes(size)),
                    dmaOptions.get(d.device));
            dmaWrites++;
        } else {
            what = "dma " + d.device + " read " + Sizes.format(size) + " at iova " + Bits.hex(d.iova);
            r = session.read(d.iova, size, dmaOptions.get(d.device));
            dmaReads++;
        }
        dmaNanos += System.nanoTime() - t0;
        lastDma.put(d.device, r);
        long[] dev = deviceDma.get(d.device);
        dev[0]++;
        if (r.faulted()) {
            dmaFaults++;
            dev[2]++;
            dmaBytes += r.fault().getBytesDone();
            dev[1] += r.fault().getBytesDone();
        } else {
            dmaBytes += size;
            dev[1] += size;
        }
        ok(tag, what + (r.faulted() ? ": fault " + r.fault().getKind() + " at " + Bits.hex(r.fault().getAddress())
                : ": done"));
    }

    private void traffic(String tag, Scenario.Traffic t) throws InterruptedException {
        TrafficSpec spec = t.build();
        String what = "traffic " + t.device + " " + t.pattern + " over " + Sizes.format(spec.range()) + " at iova "
                + Bits.hex(spec.base()) + ", " + (spec.maxOps() != 0 ? spec.maxOps() + " requests"
                        : Sizes.format(spec.maxBytes())) + " of " + Sizes.format(spec.requestSize()) + ", "
                + Math.round(spec.readFraction() * 100) + "% reads";
        out.println(tag + "...  " + what);
        TrafficStats st = new TrafficGenerator(sessions.get(t.device), spec, dmaOptions.get(t.device)).run((answered, fraction, elapsed) ->
                progress(answered + " requests answered", fraction, elapsed), options.progressIntervalNanos());
        dmaReads += st.reads();
        dmaWrites += st.writes();
        dmaBytes += st.bytes();
        dmaFaults += st.faults();
        dmaNanos += st.elapsedNanos();
        long[] dev = deviceDma.get(t.device);
        dev[0] += st.ops();
        dev[1] += st.bytes();
        dev[2] += st.faults();
        if (st.rejected() != 0) {
            throw new IllegalStateException(st.rejected() + " of the requests were rejected by the bus");
        }
        ok(tag, what + ": " + st.ops() + " done, " + st.faults() + " faulted" + (st.faultsByKind().isEmpty() ? ""
                : " " + st.faultsByKind()) + String.format(", %.0f ops/s, %.1f MB/s", st.opsPerSecond(),
                        st.megabytesPerSecond()));
    }

    private void progress(String done, double fraction, long elapsedNanos) {
        out.println(String.format("         ... %3.0f%% (%s, %.1f s)", fraction * 100, done, elapsedNanos / 1e9));
        out.flush();
    }

    private void nicReceive(String tag, Scenario.NicReceive n) {
        NicState nic = nics.get(n.device);
        Scenario.Device dev = named(s.devices, d -> d.name, n.device);
        long domain = domains.get(dev.domain);
        int granuleLg2 = domainSpec(dev.domain).granuleLg2;
        long slot = Bits.alignUp(n.size, granuleLg2);
        long slots = named(s.buffers, b -> b.name, n.buffer).size / slot;
        long pool = buffers.get(n.buffer);
        int size = (int) (long) n.size;
        String what = "nic_receive " + n.device + ": " + n.packets + " packets of " + size + " B into " + slots
                + " buffers of " + n.buffer + ", iovas from " + Bits.hex(n.iova);
        out.println(tag + "...  " + what);
        long start = System.nanoTime();
        long nextReport = start + options.progressIntervalNanos();
        Nic.Counters before = nic.nic.counters();
        byte[] packet = new byte[size];
        byte[] descriptor = new byte[NicDescriptor.SIZE];
        for (long i = 0; i < n.packets; i++) {
            long iova = n.iova + i * slot; // a fresh iova per buffer, as the IOVA allocator hands out
            long pa = pool + (i % slots) * slot;
            if (driver.map(domain, iova, pa, slot, Prot.WRITE) != slot) {
                throw new IllegalStateException("packet " + i + ": the map of its buffer was short");
            }
            int index = nic.rxTail;
            long descPa = nic.ringPa + (long) index * NicDescriptor.SIZE;
            memWrite(descPa, NicDescriptor.post(iova, slot).encode());
            nic.rxTail = index + 1 == nic.rxEntries ? 0 : index + 1;
            nic.nic.rxDoorbell(nic.rxTail);
            packet(n.data, i, packet);
            Nic.RxOutcome outcome = nic.nic.receive(packet);
            NicDescriptor done = NicDescriptor.decode(memRead(descPa, NicDescriptor.SIZE, descriptor));
            long unmapped = driver.unmap(domain, iova, slot);
            if (outcome != Nic.RxOutcome.DELIVERED || done.code() != CompletionCode.OK || done.length() != size) {
                throw new IllegalStateException("packet " + i + " at iova " + Bits.hex(iova) + ": " + outcome
                        + ", descriptor " + done + (nic.nic.lastFault() != null ? ", last fault "
                                + nic.nic.lastFault().getKind() + " at " + Bits.hex(nic.nic.lastFault().getAddress())
                                : ""));
            }
            if (unmapped != slot) {
                throw new IllegalStateException("packet " + i + ": unmap of its buffer removed " + unmapped
                        + " bytes, not " + slot);
            }
            String bad = differ(packet, memRead(pa, size));
            if (bad != null) {
                throw new IllegalStateException("packet " + i + " landed wrong: " + bad);
            }
            if (((i + 1) & 63) == 0) {
                long now = System.nanoTime();
                if (now - nextReport >= 0) {
                    nextReport = now + options.progressIntervalNanos();
                    progress((i + 1) + " packets", (double) (i + 1) / n.packets, now - start);
                }
            }
        }
        Nic.Counters after = nic.nic.counters();
        long elapsed = System.nanoTime() - start;
        ok(tag, what + ": " + (after.rxPackets() - before.rxPackets()) + " delivered and checked, "
                + String.format("%.0f packets/s", n.packets * 1e9 / elapsed));
    }

    /** Packet {@code i}: the pattern, or bytes from seed + i. */
    private static void packet(Scenario.Data data, long i, byte[] into) {
        if (data.pattern != null) {
            java.util.Arrays.fill(into, (byte) (int) data.pattern);
        } else {
            new java.util.Random(data.seed + i).nextBytes(into);
        }
    }

    private void memWrite(long pa, byte[] data) {
        cpu.memWrite(MemWriteRequest.newBuilder().setAddress(pa).setData(com.google.protobuf.ByteString.copyFrom(
                data)).build());
    }

    private void expect(String tag, Scenario.Expect e) throws Exception {
        String what;
        String failure = null;
        if (e.memory != null) {
            Scenario.MemoryExpect m = e.memory;
            int size = (int) (long) m.size;
            what = "expect memory " + m.buffer + (m.offset != 0 ? "+" + Bits.hex(m.offset) : "") + " "
                    + Sizes.format(size) + " equals " + m.equals;
            failure = differ(m.equals.bytes(size), memRead(buffers.get(m.buffer) + m.offset, size));
        } else if (e.read != null) {
            what = "expect read " + e.read.device + " equals " + e.read.equals;
            DmaResult r = lastDma.get(e.read.device);
            if (r == null) {
                failure = "device " + e.read.device + " has made no DMA yet";
            } else if (r.faulted()) {
                failure = "its last DMA faulted: " + r;
            } else {
                failure = differ(e.read.equals.bytes(r.data().size()), r.data().toByteArray());
            }
        } else if (e.fault != null) {
            what = "expect fault " + e.fault.device + " " + e.fault.kind;
            DmaResult r = lastDma.get(e.fault.device);
            String got = r == null ? null : r.faulted() ? r.fault().getKind().name() : "NONE";
            if (got == null) {
                failure = "device " + e.fault.device + " has made no DMA yet";
            } else if (!got.equals(e.fault.kind)) {
                failure = "the last DMA of " + e.fault.device + " gave " + (r.faulted() ? r.toString() : "no fault");
            }
        } else if (e.events != null) {
            Scenario.EventsExpect ev = e.events;
            what = "expect events " + ev.iommu + " " + ev.typeName + " = " + ev.count;
            Map<String, Long> byType = eventsSinceStart(ev.iommu);
            long got = byType.getOrDefault(ev.typeName, 0L);
            if (got != ev.count) {
                failure = "the driver read " + got + " " + ev.typeName + " record(s) from " + ev.iommu
                        + " (all: " + counts(byType) + ")";
            }
        } else if (e.deviceCounter != null) {
            Scenario.DeviceCounterExpect c = e.deviceCounter;
            what = "expect device_counter " + c.device + " " + c.name + c.bounds();
            long got = deviceCounter(c.device, c.name);
            what += " (is " + got + ")";
            if (!c.holds(got)) {
                failure = c.name + " is " + got;
            }
        } else if (e.sanitizer != null) {
            Scenario.SanitizerExpect x = e.sanitizer;
            what = "expect sanitizer " + (x.kind == null ? "reports" : x.kind) + x.bounds();
            if (!sanitizing) {
                failure = "the sanitizer is off in this run (sanitizer: false, or --driver client)";
            } else {
                long got = sanitizerReports().stream().filter(r -> x.kind == null || kindName(r).equals(x.kind))
                        .count();
                what += " (is " + got + ")";
                if (!x.holds(got)) {
                    failure = "the sanitizer made " + got;
                }
            }
        } else {
            Scenario.CounterExpect c = e.counter;
            what = "expect counter " + c.iommu + " " + c.name + c.bounds();
            long got = Counters.since(baseStats.get(c.iommu), statsOf(c.iommu), c.name);
            what += " (is " + got + ")";
            if (!c.holds(got)) {
                failure = c.name + " is " + got;
            }
        }
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("step", stepIndex(tag));
        result.put("name", ScenarioFile.stepName(s, stepIndex(tag)));
        result.put("what", what);
        result.put("passed", failure == null);
        result.put("failure", failure);
        expectResults.add(result);
        if (failure == null) {
            expectsPassed++;
            out.println(tag + "PASS " + what);
        } else {
            expectsFailed++;
            out.println(tag + "FAIL " + what + ": " + failure);
            fail(stepIndex(tag), "expect." + e.kind(), ScenarioFile.stepName(s, stepIndex(tag)) + ": " + what + ": "
                    + failure);
        }
    }

    private long deviceCounter(String device, String name) {
        if (externals != null && externals.has(device)) {
            ExternalDevices.Counters c = externals.counters(device);
            return switch (name) {
                case "dma_ops" -> c.ops();
                case "dma_bytes" -> c.bytes();
                default -> c.faults(); // ScenarioFile allows only the dma_ counters for a device that is not a NIC
            };
        }
        if (name.startsWith("atc_")) {
            AtsDevice a = atsDevices.get(device); // ScenarioFile allows atc_ counters only for the runner's ATS devices
            return switch (name) {
                case "atc_hits" -> a.atc().hits();
                case "atc_misses" -> a.atc().misses();
                case "atc_translations" -> a.session().atcTranslations();
                case "atc_translate_faults" -> a.session().atcRefusals();
                case "atc_invalidations" -> a.listener().received();
                case "atc_invalidated" -> a.atc().invalidated();
                default -> a.listener().completed();
            };
        }
        long[] dma = deviceDma.get(device);
        Nic.Counters n = nics.containsKey(device) ? nics.get(device).nic.counters() : null;
        return switch (name) {
            case "dma_ops" -> dma[0];
            case "dma_bytes" -> dma[1];
            case "dma_faults" -> dma[2];
            case "rx_packets" -> n.rxPackets();
            case "rx_bytes" -> n.rxBytes();
            case "rx_drops" -> n.rxDropsNoDescriptor() + n.rxDropsTooSmall();
            default -> n.rxFaults();
        };
    }

    private static String differ(byte[] want, byte[] got) {
        for (int i = 0; i < want.length; i++) {
            if (want[i] != got[i]) {
                return String.format("byte %d is 0x%02X, expected 0x%02X", i, got[i] & 0xFF, want[i] & 0xFF);
            }
        }
        return null;
    }

    private static String counts(Map<String, Long> byType) {
        if (byType.isEmpty()) {
            return "none";
        }
        StringBuilder b = new StringBuilder();
        new TreeMap<>(byType).forEach((k, v) -> b.append(b.length() == 0 ? "" : ", ").append(k).append(' ')
                .append(v));
        return b.toString();
    }

    /** The records the driver has read from {@code iommu} since the run started, by type (reading the queue now). */
    private Map<String, Long> eventsSinceStart(String iommu) {
        Map<String, Long> base = baseEvents.getOrDefault(iommu, Map.of());
        Map<String, Long> now = new TreeMap<>();
        driver.events(iommu).forEach((type, n) -> {
            long d = n - base.getOrDefault(type, 0L);
            if (d != 0) {
                now.put(type, d);
            }
        });
        return now;
    }

    /** Reads guest memory through the Machine service, in pieces the server accepts. */
    private byte[] memRead(long pa, int size) {
        return memRead(pa, size, new byte[size]);
    }

    private byte[] memRead(long pa, int size, byte[] got) {
        long max = Math.max(1, described.getLimits().getMaxMemAccessLength());
        for (int done = 0; done < size; ) {
            int n = (int) Math.min(size - done, max);
            cpu.memRead(MemReadRequest.newBuilder().setAddress(pa + done).setLength(n).build()).getData()
                    .copyTo(got, done);
            done += n;
        }
        return got;
    }

    // ------------------------------------------------------------------ summary

    private Map<String, Object> summary() {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("scenario", s.source);
        r.put("transport", options.transport().name().toLowerCase(java.util.Locale.ROOT).replace('_', '-'));
        r.put("driver", options.driver().name().toLowerCase(java.util.Locale.ROOT));
        r.put("steps", s.steps.size());
        r.put("steps_run", stepsRun);
        r.put("stopped", stopped);
        r.put("expects_passed", expectsPassed);
        r.put("expects_failed", expectsFailed);
        r.put("failures", List.copyOf(failures));
        long ops = dmaReads + dmaWrites;
        double seconds = dmaNanos / 1e9;
        Map<String, Object> dma = new LinkedHashMap<>();
        dma.put("reads", dmaReads);
        dma.put("writes", dmaWrites);
        dma.put("bytes", dmaBytes);
        dma.put("faulted", dmaFaults);
        dma.put("wall_ns", dmaNanos);
        dma.put("ops_per_second", ops == 0 ? null : ops / seconds);
        dma.put("bytes_per_second", ops == 0 ? null : dmaBytes / seconds);
        r.put("dma", dma);
        out.println();
        out.println("summary");
        out.println("  steps: " + stepsRun + " of " + s.steps.size() + " run" + (stopped ? " (stopped at one that"
                + " could not be done)" : "") + "; expects: " + expectsPassed + " passed, " + expectsFailed
                + " failed");
        out.println("  DMA by dma and traffic steps: " + ops + " ops (" + dmaReads + " reads, " + dmaWrites + " writes), " + dmaBytes
                + " bytes, " + dmaFaults + " faulted" + (ops == 0 ? "" : String.format(
                        "; %.0f ops/s, %.2f MiB/s over the bus", ops / seconds, dmaBytes / seconds / (1 << 20))));
        Map<String, Object> nicReport = new LinkedHashMap<>();
        for (Map.Entry<String, NicState> e : nics.entrySet()) {
            Nic.Counters c = e.getValue().nic.counters();
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("rx_packets", c.rxPackets());
            m.put("rx_bytes", c.rxBytes());
            m.put("rx_drops", c.rxDropsNoDescriptor() + c.rxDropsTooSmall());
            m.put("rx_faults", c.rxFaults());
            nicReport.put(e.getKey(), m);
            out.println("  NIC " + e.getKey() + ": " + c.rxPackets() + " packets received (" + c.rxBytes()
                    + " bytes), " + m.get("rx_drops") + " dropped, " + c.rxFaults() + " DMA faults");
        }
        if (!nicReport.isEmpty()) {
            r.put("nics", nicReport);
        }
        Map<String, Object> atcReport = new LinkedHashMap<>();
        for (Map.Entry<String, AtsDevice> e : atsDevices.entrySet()) {
            Map<String, Object> m = new LinkedHashMap<>();
            for (String c : Scenario.DeviceCounterExpect.NAMES) {
                if (c.startsWith("atc_")) {
                    m.put(c, deviceCounter(e.getKey(), c));
                }
            }
            atcReport.put(e.getKey(), m);
            out.println("  ATC of " + e.getKey() + ": " + m.get("atc_hits") + " hits, " + m.get("atc_misses")
                    + " misses, " + m.get("atc_translations") + " translation requests ("
                    + m.get("atc_translate_faults") + " refused or no access), " + m.get("atc_invalidations") + " invalidations received ("
                    + m.get("atc_invalidated") + " regions dropped), " + m.get("atc_completions") + " answered");
        }
        if (!atcReport.isEmpty()) {
            r.put("atc", atcReport);
        }
        if (externals != null) {
            r.put("external", externals.report());
        }
        Map<String, Object> byInstance = new LinkedHashMap<>();
        long simTotal = 0;
        for (InstanceStats now : stats()) {
            InstanceStats base = baseStats.getOrDefault(now.getIommu(), InstanceStats.getDefaultInstance());
            String n = now.getIommu();
            Map<String, Object> m = new LinkedHashMap<>();
            long sim = Counters.since(base, now, "sim_time_ns");
            simTotal += sim;
            for (String c : List.of("translations", "faults", "walks")) {
                m.put(c, Counters.since(base, now, c));
            }
            m.put("sim_time_ns", sim);
            out.println("  " + n + ": " + m.get("translations") + " translations, " + m.get("faults") + " faults, "
                    + m.get("walks") + " walks, " + sim + " simulated ns");
            Map<String, Object> caches = new LinkedHashMap<>();
            StringBuilder line = new StringBuilder();
            for (CacheStats c : now.getCachesList()) {
                String k = "caches." + c.getCache() + ".";
                long hits = Counters.since(base, now, k + "hits");
                long lookups = hits + Counters.since(base, now, k + "misses");
                Map<String, Object> cm = new LinkedHashMap<>();
                cm.put("hits", hits);
                cm.put("misses", lookups - hits);
                cm.put("hit_rate", lookups == 0 ? null : (double) hits / lookups);
                caches.put(c.getCache(), cm);
                line.append(line.length() == 0 ? "" : ", ").append(c.getCache()).append(' ')
                        .append(lookups == 0 ? "-" : String.format("%.1f%%", 100.0 * hits / lookups))
                        .append(" (").append(hits).append('/').append(lookups).append(')');
            }
            m.put("caches", caches);
            if (line.length() > 0) {
                out.println("    cache hit rates: " + line);
            }
            m.put("commands", codes(base.getCommandsList(), now.getCommandsList(), "    commands: "));
            m.put("events", codes(base.getEventsList(), now.getEventsList(), "    events: "));
            m.put("injected", codes(base.getInjectedFaultsList(), now.getInjectedFaultsList(), "    injected: "));
            m.put("events_read_by_driver", eventsSinceStart(n));
            byInstance.put(n, m);
        }
        r.put("iommus", byInstance);
        r.put("injections", injectionRecords());
        r.put("sim_time_ns", simTotal);
        out.println("  simulated time: " + simTotal + " ns over all instances");
        out.println(failures.isEmpty() ? "scenario passed" : "scenario FAILED: " + failures.size() + " failure(s)");
        for (String f : failures) {
            out.println("  " + f);
        }
        return r;
    }

    /** Injection records shown in the output; the report keeps every one the server still holds. */
    private static final int RECORD_LINES = 20;

    /**
     * The faults that fired during the run (what, where, when in simulated time), as the server's injection log has
     * them; printed (the first {@value #RECORD_LINES}) and returned for the report.
     */
    private List<Map<String, Object>> injectionRecords() {
        List<Map<String, Object>> out = new ArrayList<>();
        List<InjectionRecord> records;
        try {
            records = faults.list(ListFaultsRequest.newBuilder().setRecordsAfter(injectionsBefore).build())
                    .getRecordsList();
        } catch (StatusRuntimeException e) {
            this.out.println("  injections: not available (" + message(e) + ")");
            return out;
        }
        for (InjectionRecord rec : records) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("sequence", rec.getSequence());
            m.put("fault_id", rec.getFaultId());
            m.put("kind", rec.getKind().name());
            m.put("iommu", rec.getIommu());
            m.put("sim_time_ns", rec.getSimTimeNs());
            m.put("code", rec.getCode());
            m.put("address", rec.getAddress());
            m.put("detail", rec.getDetail());
            out.add(m);
            if (out.size() <= RECORD_LINES) {
                this.out.println("    injected #" + rec.getSequence() + " (fault " + rec.getFaultId() + ", "
                        + rec.getKind().name() + ") on " + (rec.getIommu().isEmpty() ? "the machine" : rec.getIommu())
                        + " at " + rec.getSimTimeNs() + " simulated ns: " + rec.getDetail());
            }
        }
        if (out.size() > RECORD_LINES) {
            this.out.println("    ... and " + (out.size() - RECORD_LINES) + " more injection record(s) in the report");
        }
        return out;
    }

    /** The counts that grew since {@code base}, by name, printed on one line after {@code label}. */
    private Map<String, Long> codes(List<CodeCount> base, List<CodeCount> now, String label) {
        Map<String, Long> before = new HashMap<>();
        for (CodeCount c : base) {
            before.put(c.getName(), c.getCount());
        }
        Map<String, Long> m = new LinkedHashMap<>();
        StringBuilder line = new StringBuilder();
        for (CodeCount c : now) {
            long d = c.getCount() - before.getOrDefault(c.getName(), 0L);
            if (d == 0) {
                continue;
            }
            m.put(c.getName(), d);
            line.append(line.length() == 0 ? "" : ", ").append(c.getName()).append(' ').append(d);
        }
        if (line.length() > 0) {
            out.println(label + line);
        }
        return m;
    }
}
