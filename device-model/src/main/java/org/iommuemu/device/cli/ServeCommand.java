package org.iommuemu.device.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.bits.Sizes;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.device.BuildInfo;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.bus.MetricsServer;
import org.iommuemu.device.bus.security.BusSecurity;
import org.iommuemu.device.bus.security.Principal;
import org.iommuemu.device.bus.security.Role;
import org.iommuemu.device.bus.security.StreamSet;
import org.iommuemu.device.bus.security.TokenStore;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.trace.Tracer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code iommu-emu serve}: the machine behind the gRPC bus on TCP, until SIGINT / SIGTERM. */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve the emulated machine on the gRPC bus (Machine and Dma services, health, reflection).",
            "Stops on Ctrl-C or SIGTERM after finishing the requests in flight. Binds to loopback unless",
            "told otherwise; another address needs --tokens/--generate-tokens (or --insecure-no-auth).",
            "See docs/SECURITY.md for tokens, roles and TLS."})
final class ServeCommand implements Callable<Integer> {
    static final int DEFAULT_PORT = 7400;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--bind", paramLabel = "ADDRESS",
            description = "Address to listen on (default 127.0.0.1: this machine only).")
    String bind;

    @Option(names = "--port", paramLabel = "PORT",
            description = "TCP port (default " + DEFAULT_PORT + "); 0 picks a free port and prints it.")
    Integer port;

    @Mixin
    MachineOptions machineOptions;

    @Mixin
    MetricsOptions metricsOptions;

    @Option(names = "--trace-buffer", paramLabel = "RECORDS",
            description = {"Records the trace ring holds (a power of two, 16 to",
                "4194304; default 65536, or the config file's trace_buffer).",
                "Each takes 104 bytes while a Telemetry.Trace stream is open."})
    Long traceBuffer;

    @Option(names = "--inject", paramLabel = "FILE",
            description = {"Start with the fault FILE describes injected (a",
                "FaultSpec in YAML, as FaultInjection.Inject and a",
                "scenario's inject step take it); repeatable."})
    List<Path> injects = new ArrayList<>();

    @Option(names = "--tokens", paramLabel = "FILE",
            description = {"Authenticate every call with the bearer tokens FILE lists, one",
                "a line: ROLE TOKEN [name=NAME] [iommu=INSTANCE] [streams=IDS]",
                "(ROLE host or device; see docs/SECURITY.md)."})
    Path tokens;

    @Option(names = "--generate-tokens", paramLabel = "FILE",
            description = {"Generate a host token (and one device token per",
                "--device-token), write them to FILE with mode 0600, and",
                "authenticate with them. Refuses an existing FILE unless",
                "--overwrite-tokens is given."})
    Path generateTokens;

    @Option(names = "--device-token", paramLabel = "IOMMU[:IDS]",
            description = {"With --generate-tokens: also generate a device token bound",
                "to instance IOMMU and, if given, stream ids IDS (e.g.",
                "smmu0:16-31,0x40). Repeatable."})
    List<String> deviceTokens = new ArrayList<>();

    @Option(names = "--overwrite-tokens", description = "Let --generate-tokens replace an existing file.")
    boolean overwriteTokens;

    @Option(names = "--tls-cert", paramLabel = "FILE",
            description = "Serve TLS with this PEM certificate chain (needs --tls-key).")
    Path tlsCert;

    @Option(names = "--tls-key", paramLabel = "FILE", description = "The PEM (PKCS#8) private key of --tls-cert.")
    Path tlsKey;

    @Option(names = "--tls-client-ca", paramLabel = "FILE",
            description = {"With --tls-cert: require every client to present a",
                "certificate this PEM CA signed (mutual TLS)."})
    Path tlsClientCa;

    @Option(names = "--insecure-no-auth",
            description = {"Allow a non-loopback --bind without authentication",
                "(anyone who reaches the port controls the machine);",
                "prints a warning."})
    boolean insecureNoAuth;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        MachineConfig config = machineOptions.machine();
        String host = bind != null ? bind
                : machineOptions.file() != null && machineOptions.file().bind() != null
                        ? machineOptions.file().bind() : "127.0.0.1";
        int p = port != null ? port
                : machineOptions.file() != null && machineOptions.file().port() != null
                        ? machineOptions.file().port() : DEFAULT_PORT;
        if (p < 0 || p > 65535) {
            throw new IommuEmu.UserError("--port " + p + " is not a TCP port (0 to 65535)");
        }
        PrintWriter err = spec.commandLine().getErr();
        checkSecurityFlags();
        boolean loopback = isLoopback(host);
        if (!loopback && tokens == null && generateTokens == null) {
            if (!insecureNoAuth) {
                throw new IommuEmu.UserError("--bind " + host + " is not a loopback address: give --tokens FILE or"
                        + " --generate-tokens FILE, or --insecure-no-auth to serve without authentication");
            }
            err.println("iommu-emu: warning: serving on " + host + " without authentication (--insecure-no-auth):"
                    + " anyone who can reach the port can program the IOMMUs and read or write guest memory.");
            err.flush();
        }
        metricsOptions.check();
        Integer ring = machineOptions.file() != null ? machineOptions.file().traceBuffer() : null;
        if (traceBuffer != null) {
            ring = checkTraceBuffer(traceBuffer);
        }
        List<FaultSpec> faults = FaultFiles.read(injects);
        Machine machine = new Machine(config);
        if (ring != null) {
            machine.tracer().capacity(ring);
        }
        List<String> securityLines = new ArrayList<>();
        BusSecurity security = BusSecurity.none().withTokens(loadTokens(machine, err, securityLines));
        if (tlsCert != null) {
            try {
                security = security.withTls(tlsCert, tlsKey, tlsClientCa);
            } catch (IllegalArgumentException e) {
                throw new IommuEmu.UserError(e.getMessage());
            }
        }
        if (!loopback && security.authenticates() && !security.tls()) {
            err.println("iommu-emu: warning: tokens travel in clear text on " + host + " without TLS;"
                    + " give --tls-cert and --tls-key to encrypt the connection.");
            err.flush();
        }
        securityLines.add("  tls: " + (!security.tls() ? "off (plaintext)"
                : security.mutualTls() ? "on, client certificates required" : "on"));
        List<String> injected = new ArrayList<>();
        for (FaultSpec f : faults) {
            try {
                injected.add("  fault " + machine.faults().inject(f) + ": " + f.kind().name() + " on "
                        + f.target().iommu());
            } catch (IllegalArgumentException e) {
                throw new IommuEmu.UserError("--inject " + f.kind().name() + ": " + e.getMessage());
            }
        }
        BusServer server;
        try {
            server = BusServer.netty(machine, host, p, null, security);
        } catch (RuntimeException e) {
            throw new IommuEmu.UserError("--tls-cert/--tls-key/--tls-client-ca: cannot use them: " + rootMessage(e));
        }
        try {
            server.start();
        } catch (IOException e) {
            throw new IommuEmu.UserError("cannot listen on " + host + ":" + p + ": " + rootMessage(e));
        }
        MetricsServer metrics = null;
        if (metricsOptions.requested()) {
            try {
                metrics = metricsOptions.start(machine);
            } catch (IommuEmu.UserError e) {
                server.shutdown(BusServer.DEFAULT_GRACE);
                throw e;
            }
        }
        MetricsServer metricsToClose = metrics;
        CountDownLatch stopped = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            if (metricsToClose != null) {
                metricsToClose.close();
            }
            server.shutdown(BusServer.DEFAULT_GRACE);
            stopped.countDown();
        }, "iommu-emu-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);

        out.println("iommu-emu " + BuildInfo.version() + " serving on " + server.target());
        for (IommuDevice d : machine.iommus()) {
            out.println("  iommu " + d.name() + " (" + d.type().id() + "): " + Bits.hex(d.mmioSize())
                    + "-byte register window, " + d.streamIdBits() + "-bit stream ids"
                    + (d.translationModelled() ? "" : ", translation not modelled yet (disabled/bypass behaviour only)"));
        }
        for (RamRegion r : machine.memory().regions()) {
            out.println("  ram " + Sizes.format(r.size()) + " at " + Bits.hex(r.base()));
        }
        injected.forEach(out::println);
        securityLines.forEach(out::println);
        if (metrics != null) {
            out.println(metricsOptions.startLine(metrics));
        }
        if (ring != null) {
            out.println("  " + traceBufferLine(ring));
        }
        out.println("port " + server.port());
        out.println("Press Ctrl-C to stop.");
        out.flush();
        server.awaitTermination();
        stopped.await();
        return 0;
    }

    private void checkSecurityFlags() {
        if (tokens != null && generateTokens != null) {
            throw new IommuEmu.UserError("--tokens and --generate-tokens exclude each other: read tokens or make new");
        }
        if (generateTokens == null && (!deviceTokens.isEmpty() || overwriteTokens)) {
            throw new IommuEmu.UserError("--device-token and --overwrite-tokens go with --generate-tokens");
        }
        if (insecureNoAuth && (tokens != null || generateTokens != null)) {
            throw new IommuEmu.UserError("--insecure-no-auth contradicts --tokens / --generate-tokens");
        }
        if ((tlsCert == null) != (tlsKey == null)) {
            throw new IommuEmu.UserError("--tls-cert and --tls-key go together (the server certificate and its key)");
        }
        if (tlsClientCa != null && tlsCert == null) {
            throw new IommuEmu.UserError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)");
        }
    }

    private static boolean isLoopback(String host) {
        try {
            return InetAddress.getByName(host).isLoopbackAddress();
        } catch (UnknownHostException e) {
            throw new IommuEmu.UserError("--bind " + host + ": unknown host");
        }
    }

    /** The token store the flags ask for (null: no authentication); adds its start-up lines to {@code lines}. */
    private TokenStore loadTokens(Machine machine, PrintWriter err, List<String> lines) {
        TokenStore store;
        String from;
        if (tokens != null) {
            try {
                store = TokenStore.read(tokens);
            } catch (IOException e) {
                throw new IommuEmu.UserError("--tokens " + tokens + ": cannot read it (" + e.getClass().getSimpleName()
                        + ")");
            } catch (IllegalArgumentException e) {
                throw new IommuEmu.UserError("--tokens " + e.getMessage());
            }
            warnIfShared(tokens, err);
            from = "from " + tokens;
        } else if (generateTokens != null) {
            List<TokenStore.Entry> entries = new ArrayList<>();
            entries.add(new TokenStore.Entry(TokenStore.newToken(), new Principal("host", Role.HOST, null, null)));
            for (String d : deviceTokens) {
                int colon = d.indexOf(':');
                String iommu = colon < 0 ? d : d.substring(0, colon);
                try {
                    StreamSet streams = colon < 0 ? null : StreamSet.parse(d.substring(colon + 1));
                    entries.add(new TokenStore.Entry(TokenStore.newToken(),
                            new Principal("device-" + entries.size(), Role.DEVICE, iommu, streams)));
                } catch (IllegalArgumentException e) {
                    throw new IommuEmu.UserError("--device-token " + d + ": " + e.getMessage());
                }
            }
            store = TokenStore.of(entries);
            checkInstances(store, machine, "--device-token");
            try {
                TokenStore.write(generateTokens, entries, overwriteTokens);
            } catch (FileAlreadyExistsException e) {
                throw new IommuEmu.UserError("--generate-tokens " + generateTokens
                        + ": the file exists; give --overwrite-tokens to replace it");
            } catch (IOException e) {
                throw new IommuEmu.UserError("--generate-tokens " + generateTokens + ": cannot write it ("
                        + rootMessage(e) + ")");
            }
            from = "generated into " + generateTokens + " (mode 0600)";
        } else {
            lines.add("  authentication: off (loopback only)");
            return null;
        }
        checkInstances(store, machine, "--tokens " + tokens);
        long hosts = store.principals().stream().filter(x -> x.role() == Role.HOST).count();
        lines.add("  authentication: bearer tokens " + from + ": " + hosts + " host, "
                + (store.principals().size() - hosts) + " device");
        return store;
    }

    private static void checkInstances(TokenStore store, Machine machine, String what) {
        for (Principal x : store.principals()) {
            if (x.iommu() != null && machine.iommu(x.iommu()) == null) {
                throw new IommuEmu.UserError(what + ": " + x + " is bound to iommu '" + x.iommu()
                        + "', which this machine does not have (instances: " + machine.iommuNames() + ")");
            }
        }
    }

    /** A token file others can read is worth a warning (not a refusal: the user may have reasons). */
    private static void warnIfShared(Path file, PrintWriter err) {
        try {
            Set<PosixFilePermission> perms = Files.getPosixFilePermissions(file);
            perms.retainAll(EnumSet.of(PosixFilePermission.GROUP_READ, PosixFilePermission.GROUP_WRITE,
                    PosixFilePermission.OTHERS_READ, PosixFilePermission.OTHERS_WRITE));
            if (!perms.isEmpty()) {
                err.println("iommu-emu: warning: --tokens " + file + " can be read or written by other users"
                        + " (mode " + PosixFilePermissions.toString(Files.getPosixFilePermissions(file))
                        + "); chmod 600 it");
                err.flush();
            }
        } catch (UnsupportedOperationException | IOException e) {
            // no POSIX permissions here: nothing to check
        }
    }

    /** Checks a {@code --trace-buffer} value (of serve or run). */
    static int checkTraceBuffer(long records) {
        try {
            return Tracer.checkCapacity("--trace-buffer", records);
        } catch (IllegalArgumentException e) {
            throw new IommuEmu.UserError(e.getMessage());
        }
    }

    /** What a trace ring of {@code records} costs, for the start-up lines. */
    static String traceBufferLine(int records) {
        long bytes = (long) records * Tracer.BYTES_PER_RECORD;
        String size = bytes < (1 << 20) ? String.format(java.util.Locale.ROOT, "%.1f KiB", bytes / 1024.0)
                : String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / (1024.0 * 1024.0));
        return "trace buffer: " + records + " records (" + size + " while a Telemetry.Trace stream is open)";
    }

    static String rootMessage(Throwable t) {
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.getMessage();
    }
}
