package org.iommuemu.device.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.bits.Sizes;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.device.BuildInfo;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.device.machine.MachineConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code iommu-emu serve}: the machine behind the gRPC bus on TCP, until SIGINT / SIGTERM. */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve the emulated machine on the gRPC bus (Machine and Dma services, health, reflection).",
            "Stops on Ctrl-C or SIGTERM after finishing the requests in flight."})
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

    @Option(names = "--inject", paramLabel = "FILE",
            description = {"Start with the fault FILE describes injected (a",
                "FaultSpec in YAML, as FaultInjection.Inject and a",
                "scenario's inject step take it); repeatable."})
    List<Path> injects = new ArrayList<>();

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
        warnIfExposed(host, spec.commandLine().getErr());
        List<FaultSpec> faults = FaultFiles.read(injects);
        Machine machine = new Machine(config);
        List<String> injected = new ArrayList<>();
        for (FaultSpec f : faults) {
            try {
                injected.add("  fault " + machine.faults().inject(f) + ": " + f.kind().name() + " on "
                        + f.target().iommu());
            } catch (IllegalArgumentException e) {
                throw new IommuEmu.UserError("--inject " + f.kind().name() + ": " + e.getMessage());
            }
        }
        BusServer server = BusServer.netty(machine, host, p);
        try {
            server.start();
        } catch (IOException e) {
            throw new IommuEmu.UserError("cannot listen on " + host + ":" + p + ": " + rootMessage(e));
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
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
        out.println("port " + server.port());
        out.println("Press Ctrl-C to stop.");
        out.flush();
        server.awaitTermination();
        stopped.await();
        return 0;
    }

    private static void warnIfExposed(String host, PrintWriter err) {
        try {
            InetAddress a = InetAddress.getByName(host);
            if (!a.isLoopbackAddress()) {
                err.println("iommu-emu: warning: binding to " + host + " exposes the bus beyond this machine, and the"
                        + " bus has no authentication yet: anyone who can reach it can program the IOMMUs and"
                        + " read or write guest memory.");
                err.flush();
            }
        } catch (UnknownHostException e) {
            throw new IommuEmu.UserError("--bind " + host + ": unknown host");
        }
    }

    private static String rootMessage(Throwable t) {
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.getMessage();
    }
}
