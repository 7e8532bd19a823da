package org.iommuemu.device.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.grpc.ManagedChannel;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import org.iommuemu.device.bus.MetricsServer;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.scenario.ScenarioException;
import org.iommuemu.device.scenario.ScenarioFile;
import org.iommuemu.device.scenario.ScenarioRunner;
import org.iommuemu.dma.ClientSecurity;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code iommu-emu run FILE}: runs a scenario on the embedded machine (in-process bus, or Netty on loopback) or
 * against a separate {@code iommu-emu serve} ({@code --target}), and prints a line per step and a summary. Exits 0
 * when every expect holds, 1 when one fails (or a step cannot be carried out), 2 when the file is not a valid
 * scenario or the server cannot be used.
 */
@Command(name = "run", mixinStandardHelpOptions = true,
        description = {"Run a scenario file on the embedded machine, or against a running",
            "server with --target (see README, \"Scenarios\"): domains, buffers,",
            "devices and NICs, then map, map_sg, unmap, flush, dma, traffic,",
            "nic_receive, inject, clear_faults, wait and expect steps; external",
            "devices (docs/DEVICE-MODELS.md). Exit status: 0 every expect held;",
            "1 an expect failed or a step could not be done; 2 the file is not",
            "a valid scenario, or the server cannot be used."})
final class RunCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "FILE", description = "The scenario file (YAML).")
    Path file;

    @Option(names = "--report", paramLabel = "FILE", description = {"Also write the summary as JSON to FILE; as a",
        "self-contained HTML report when FILE ends in .html or .htm."})
    Path report;

    @Option(names = "--trace", paramLabel = "FILE", description = {"Write a Chrome trace-event JSON of the run to FILE",
        "(open it in Perfetto or chrome://tracing): one track per IOMMU,",
        "device and the driver; ts is simulated time in microseconds."})
    Path trace;

    @Option(names = "--transport", paramLabel = "KIND", defaultValue = "in-process",
            description = "How the run reaches the embedded machine: in-process (default) or netty (loopback TCP).")
    String transport;

    @Option(names = "--port", paramLabel = "N",
            description = {"Serve the embedded machine over Netty on loopback port N",
                "(implies --transport netty; default: a free port). External",
                "devices (external: true) connect there; a scenario with",
                "them is always served over Netty."})
    Integer port;

    @Option(names = "--target", paramLabel = "HOST:PORT",
            description = {"Run against a separate `iommu-emu serve` at HOST:PORT",
                "instead of an embedded machine. The file's machine",
                "section is then not applied: the server's instances",
                "are used."})
    String target;

    @Option(names = "--token-file", paramLabel = "FILE",
            description = {"With --target: send the bearer token FILE holds (the token",
                "alone, or the first line of a server's token file) to a",
                "server that authenticates (see docs/SECURITY.md). The run",
                "needs a host token."})
    Path tokenFile;

    @Option(names = "--tls-ca", paramLabel = "FILE",
            description = "With --target: use TLS, trusting server certificates signed by the PEM CA in FILE.")
    Path tlsCa;

    @Option(names = "--tls-cert", paramLabel = "FILE",
            description = "With --target and --tls-ca: present this PEM client certificate (mutual TLS).")
    Path tlsCert;

    @Option(names = "--tls-key", paramLabel = "FILE",
            description = "The PEM (PKCS#8) private key of --tls-cert.")
    Path tlsKey;

    @Option(names = "--driver", paramLabel = "SIDE", defaultValue = "server",
            description = {"Where the SMMUv3 and VT-d drivers run: server (default;",
                "the Driver service), or client (in this process, driving",
                "the units over the Machine service's MMIO, memory and",
                "interrupts)."})
    String driverSide;

    @Option(names = "--inject", paramLabel = "FILE",
            description = {"Inject the fault FILE describes (a FaultSpec in YAML,",
                "as an inject step takes it) before the first step;",
                "repeatable. The run clears it when it ends."})
    List<Path> injects = new ArrayList<>();

    @CommandLine.Mixin
    MetricsOptions metricsOptions;

    @Option(names = "--metrics-linger", paramLabel = "DURATION",
            description = {"With --metrics-port: keep serving the metrics this long",
                "after the run (e.g. 30s, 5m, 1h; a number alone is seconds;",
                "at most 24h), so that Prometheus can scrape the final",
                "values. Ctrl-C ends it early. Default: stop with the run."})
    String metricsLinger;

    @Option(names = "--trace-buffer", paramLabel = "RECORDS",
            description = {"Records the embedded machine's trace ring holds (a power",
                "of two, 16 to 4194304; default 65536; 104 bytes each)."})
    Long traceBuffer;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        ScenarioRunner.Result result = null;
        TraceOutputs outputs;
        try {
            if (!transport.equals("in-process") && !transport.equals("netty")) {
                throw new IommuEmu.UserError("--transport must be in-process or netty, got " + transport);
            }
            metricsOptions.check();
            Duration linger = metricsLinger == null ? Duration.ZERO : MetricsOptions.parseLinger(metricsLinger);
            if (metricsLinger != null && !metricsOptions.requested()) {
                throw new IommuEmu.UserError("--metrics-linger goes with --metrics-port");
            }
            if (target != null && (metricsOptions.requested() || traceBuffer != null)) {
                throw new IommuEmu.UserError((traceBuffer != null ? "--trace-buffer" : "--metrics-port")
                        + " is for the embedded machine; the server at --target has its own (serve --metrics-port,"
                        + " serve --trace-buffer)");
            }
            Integer ring = traceBuffer == null ? null : ServeCommand.checkTraceBuffer(traceBuffer);
            ScenarioRunner.Options options;
            if (target != null) {
                if (spec.commandLine().getParseResult().hasMatchedOption("--transport")) {
                    throw new IommuEmu.UserError("--transport is for the embedded machine; --target goes over"
                            + " TCP to the server it names");
                }
                if (!target.matches("[^\\s:]+:\\d{1,5}|\\[[0-9A-Fa-f:.]+\\]:\\d{1,5}")) {
                    throw new IommuEmu.UserError("--target must be HOST:PORT, got '" + target + "'");
                }
                if (port != null) {
                    throw new IommuEmu.UserError("--port is for the embedded machine; --target names the server's");
                }
                options = ScenarioRunner.Options.remote(target).withSecurity(security());
            } else {
                if (tokenFile != null || tlsCa != null || tlsCert != null || tlsKey != null) {
                    throw new IommuEmu.UserError("--token-file and --tls-* are for a server named by --target;"
                            + " the embedded machine needs neither");
                }
                options = transport.equals("netty") ? ScenarioRunner.Options.netty()
                        : ScenarioRunner.Options.inProcess();
                if (port != null) {
                    if (port < 0 || port > 65535) {
                        throw new IommuEmu.UserError("--port must be 0 to 65535, got " + port);
                    }
                    if (transport.equals("in-process") && spec.commandLine().getParseResult()
                            .hasMatchedOption("--transport")) {
                        throw new IommuEmu.UserError("--port serves over Netty; it cannot go with --transport"
                                + " in-process");
                    }
                    options = options.withPort(port);
                }
            }
            options = options.withDriver(switch (driverSide) {
                case "server" -> ScenarioRunner.DriverSide.SERVER;
                case "client" -> ScenarioRunner.DriverSide.CLIENT;
                default -> throw new IommuEmu.UserError("--driver must be server or client, got " + driverSide);
            });
            boolean html = report != null && isHtml(report);
            outputs = trace != null || html ? new TraceOutputs(out) : null;
            if (outputs != null) {
                outputs.traceBufferHint(target != null
                        ? "start the server with a larger --trace-buffer (or trace_buffer: in its --config file)"
                        : "give run a larger --trace-buffer");
                if (target != null && options.driver() == ScenarioRunner.DriverSide.CLIENT) {
                    outputs.driverTrackNote("not recorded: with --driver client against --target the driver runs in"
                            + " this process and the machine in the server's, so its domain, attach, map, unmap and"
                            + " flush calls reach the server only as registers and memory (its commands, events and"
                            + " the DMA are on the IOMMU and device tracks)");
                }
            }
            ScenarioFile.Loaded loaded = ScenarioFile.read(file);
            EmbeddedMachine embedded = new EmbeddedMachine(out, ring, metricsOptions.requested() ? metricsOptions
                    : null, outputs);
            try {
                result = ScenarioRunner.run(loaded, out, options.withInjections(FaultFiles.read(injects)), embedded);
                finish(out, result, outputs);
                embedded.linger(out, linger);
            } finally {
                embedded.close();
            }
        } catch (ScenarioException e) {
            throw new IommuEmu.UserError(e.getMessage());
        }
        out.flush();
        return result.passed() ? 0 : 1;
    }

    /** Writes the trace and report files the options ask for. */
    private void finish(PrintWriter out, ScenarioRunner.Result result, TraceOutputs outputs) {
        if (trace != null) {
            try {
                outputs.writeTrace(trace, result.report());
            } catch (IOException e) {
                throw new IommuEmu.UserError("--trace " + trace + ": cannot write: " + e.getMessage());
            }
        }
        if (report != null && isHtml(report)) {
            try {
                outputs.writeHtml(report, result.report());
            } catch (IOException e) {
                throw new IommuEmu.UserError("--report " + report + ": cannot write: " + e.getMessage());
            }
        } else if (report != null) {
            try {
                new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(report.toFile(),
                        result.report());
            } catch (IOException e) {
                throw new IommuEmu.UserError("--report " + report + ": cannot write: " + e.getMessage());
            }
        }
        out.flush();
    }

    /**
     * What {@code run} does to the embedded machine before it is served: sizes its trace ring, starts its metrics
     * endpoint (and keeps it for {@link #linger}); then hands the run's events on to the trace outputs, if any.
     */
    private static final class EmbeddedMachine implements ScenarioRunner.Observer {
        private final PrintWriter out;
        private final Integer ring;
        private final MetricsOptions metricsOptions;
        private final TraceOutputs outputs;
        private MetricsServer metrics;

        EmbeddedMachine(PrintWriter out, Integer ring, MetricsOptions metricsOptions, TraceOutputs outputs) {
            this.out = out;
            this.ring = ring;
            this.metricsOptions = metricsOptions;
            this.outputs = outputs;
        }

        @Override
        public void embedded(Machine machine) {
            if (ring != null) {
                machine.tracer().capacity(ring);
                out.println("  " + ServeCommand.traceBufferLine(ring));
            }
            if (metricsOptions != null) {
                metrics = metricsOptions.start(machine);
                out.println(metricsOptions.startLine(metrics));
            }
            out.flush();
        }

        @Override
        public void connected(ManagedChannel channel, List<String> instances, List<ScenarioRunner.DeviceInfo> devices) {
            if (outputs != null) {
                outputs.connected(channel, instances, devices);
            }
        }

        @Override
        public void stepsDone(long traceWritten) {
            if (outputs != null) {
                outputs.stepsDone(traceWritten);
            }
        }

        /**
         * Keeps the metrics endpoint serving the finished run's machine for {@code time} (Ctrl-C, or an interrupt
         * of this thread, ends it early).
         */
        void linger(PrintWriter out, Duration time) {
            if (metrics == null || time.isZero()) {
                return;
            }
            out.println("metrics: still serving " + metricsOptions.url(metrics) + " for " + format(time)
                    + " after the run; Ctrl-C stops it");
            out.flush();
            try {
                Thread.sleep(time.toMillis());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        /** Stops the metrics endpoint, if one was started. */
        void close() {
            if (metrics != null) {
                metrics.close();
                metrics = null;
            }
        }

        private static String format(Duration d) {
            return d.toMillis() % 1000 != 0 ? d.toMillis() + " ms" : d.toSeconds() + " s";
        }
    }

    private static boolean isHtml(Path file) {
        String n = String.valueOf(file.getFileName()).toLowerCase(java.util.Locale.ROOT);
        return n.endsWith(".html") || n.endsWith(".htm");
    }

    /** The token and TLS settings the flags give for the --target server. */
    private ClientSecurity security() {
        if ((tlsCert == null) != (tlsKey == null)) {
            throw new IommuEmu.UserError("--tls-cert and --tls-key go together (a client certificate and its key)");
        }
        if (tlsCert != null && tlsCa == null) {
            throw new IommuEmu.UserError("--tls-cert needs --tls-ca (the CA that signed the server's certificate)");
        }
        ClientSecurity sec = ClientSecurity.NONE;
        try {
            if (tokenFile != null) {
                sec = sec.withTokenFile(tokenFile);
            }
            for (Path p : new Path[] {tlsCa, tlsCert, tlsKey}) {
                if (p != null && !Files.isReadable(p)) {
                    throw new IommuEmu.UserError(p + ": not a readable file (--tls-ca, --tls-cert, --tls-key)");
                }
            }
            if (tlsCa != null) {
                sec = sec.withTls(tlsCa);
            }
            if (tlsCert != null) {
                sec = sec.withClientCertificate(tlsCert, tlsKey);
            }
            sec.channelCredentials(); // reads the files now, for a clear message
        } catch (IllegalArgumentException e) {
            throw new IommuEmu.UserError("--token-file/--tls-*: " + e.getMessage());
        }
        return sec;
    }
}
