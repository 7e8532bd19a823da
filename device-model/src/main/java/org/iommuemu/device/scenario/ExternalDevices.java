package org.iommuemu.device.scenario;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.proto.v1.DmaSessionInfo;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.SessionsReply;
import org.iommuemu.proto.v1.SessionsRequest;

/**
 * The scenario's external devices ({@code external: true}): programs outside the runner that attach on their
 * stream over the bus and make the DMA themselves. The runner sees them only as the server does, through
 * {@code Machine.Sessions}: a device has attached when a session on its instance and stream appears that was
 * attached after the run started, and its counters are the sum over such sessions (live and ended). When a device
 * has a {@code command}, the runner starts it before the first step that uses the device, and at the end stops it
 * if it still runs; a command that exits with a non-zero status is a failure of the run, reported with its output.
 */
final class ExternalDevices {
    /** How often the runner asks the server for its sessions while it waits. */
    static final long POLL_MILLIS = 20;
    /** Lines of a command's output kept (the last ones) for a failure report. */
    static final int OUTPUT_LINES = 200;

    private final MachineGrpc.MachineBlockingStub cpu;
    private final PrintWriter out;
    private final String target;
    private final Path folder;
    private final long base;
    private final Map<String, State> devices = new LinkedHashMap<>();

    /** What the runner knows of one external device. */
    static final class State {
        final Scenario.Device device;
        boolean awaited;
        Process process;
        Thread reader;
        final ArrayDeque<String> output = new ArrayDeque<>();
        Integer exitCode;
        boolean killed;

        State(Scenario.Device device) {
            this.device = device;
        }

        String where() {
            return "stream " + Bits.hex(device.stream) + " of " + device.iommu;
        }
    }

    /** The device's counters over its sessions since the run started. */
    record Counters(int sessions, int live, long reads, long writes, long bytes, long faults) {
        long ops() {
            return reads + writes;
        }
    }

    /**
     * Notes the server's newest session now: only sessions attached after it belong to this run.
     *
     * @throws ScenarioException when the server cannot list sessions
     */
    ExternalDevices(MachineGrpc.MachineBlockingStub cpu, PrintWriter out, String target, Path folder,
            List<Scenario.Device> external) {
        this.cpu = cpu;
        this.out = out;
        this.target = target;
        this.folder = folder;
        try {
            this.base = cpu.sessions(SessionsRequest.getDefaultInstance()).getLastSequence();
        } catch (StatusRuntimeException e) {
            throw new ScenarioException("the server cannot list DMA sessions (Machine.Sessions: "
                    + e.getStatus().getCode() + "), which a scenario with external devices needs to see them"
                    + " attach" + (e.getStatus().getCode() == Status.Code.UNIMPLEMENTED ? ": it is older than"
                    + " this runner" : ""), e);
        }
        for (Scenario.Device d : external) {
            devices.put(d.name, new State(d));
        }
    }

    boolean has(String name) {
        return devices.containsKey(name);
    }

    /** Where external programs connect: HOST:PORT of the bus. */
    String target() {
        return target;
    }

    /**
     * Before a step that uses {@code name}: starts its command (if any) and waits for it to attach, once.
     *
     * @throws IllegalStateException when it does not attach in time, or its command exits first
     */
    void awaitAttach(String name) throws InterruptedException {
        State st = devices.get(name);
        if (st == null || st.awaited) {
            return;
        }
        st.awaited = true;
        Scenario.Device d = st.device;
        if (d.command != null) {
            start(st);
        }
        out.println("  waiting up to " + seconds(d.attachTimeoutNanos) + " for external device " + d.name + " to attach"
                + " on " + st.where() + (d.substream != null ? " (substream " + d.substream + ")" : "")
                + ": connect to " + target + " and call Dma.Attach with iommu " + d.iommu + ", stream_id "
                + Integer.toUnsignedString(d.stream) + (d.command != null ? " (its command is running)" : ""));
        out.flush();
        long t0 = System.nanoTime();
        long deadline = t0 + d.attachTimeoutNanos;
        while (true) {
            boolean gone = exited(st); // before the look: a program that attached and exited is seen attached
            List<DmaSessionInfo> mine = sessions(d);
            if (!mine.isEmpty()) {
                DmaSessionInfo first = mine.get(0);
                out.println("  external device " + d.name + " attached: session '" + first.getName() + "'"
                        + (first.getPeer().isEmpty() ? "" : " from " + first.getPeer())
                        + String.format(" after %.1f s", (System.nanoTime() - t0) / 1e9));
                return;
            }
            if (gone) {
                exitedEarly(st, "before it attached");
            }
            if (System.nanoTime() - deadline >= 0) {
                throw new IllegalStateException("external device " + d.name + " did not attach on " + st.where()
                        + " within " + seconds(d.attachTimeoutNanos) + " (attach_timeout): nothing called"
                        + " Dma.Attach there on " + target + output(st));
            }
            Thread.sleep(POLL_MILLIS);
        }
    }

    /** A wait step: polls until its condition holds; returns what it saw. */
    String await(Scenario.Wait w) throws InterruptedException {
        awaitAttach(w.device);
        State st = devices.get(w.device);
        long t0 = System.nanoTime();
        long deadline = t0 + w.timeoutNanos;
        while (true) {
            boolean gone = exited(st);
            Counters c = counters(w.device);
            boolean holds = w.detached ? c.sessions() > 0 && c.live() == 0 : w.attached ? c.sessions() > 0
                    : c.ops() >= w.dmaOps;
            if (holds) {
                return String.format("after %.1f s: ", (System.nanoTime() - t0) / 1e9) + describe(c);
            }
            if (gone) {
                exitedEarly(st, "while the runner waited for " + w.condition());
            }
            if (System.nanoTime() - deadline >= 0) {
                throw new IllegalStateException("external device " + w.device + " is not " + w.condition()
                        + " after " + seconds(w.timeoutNanos) + " (timeout): " + describe(c) + output(st));
            }
            Thread.sleep(POLL_MILLIS);
        }
    }

    /** The device's counters over the sessions of this run on its stream. */
    Counters counters(String name) {
        State st = devices.get(name);
        List<DmaSessionInfo> mine = sessions(st.device);
        long r = 0;
        long w = 0;
        long b = 0;
        long f = 0;
        int live = 0;
        for (DmaSessionInfo i : mine) {
            r += i.getReads();
            w += i.getWrites();
            b += i.getBytes();
            f += i.getFaults();
            live += i.getLive() ? 1 : 0;
        }
        return new Counters(mine.size(), live, r, w, b, f);
    }

    static String describe(Counters c) {
        return c.sessions() + " session(s) (" + c.live() + " live), " + c.ops() + " DMA ops (" + c.reads()
                + " reads, " + c.writes() + " writes), " + c.bytes() + " bytes, " + c.faults() + " faulted";
    }

    /** The sessions of this run on the device's instance and stream, ended ones first then live, by sequence. */
    private List<DmaSessionInfo> sessions(Scenario.Device d) {
        SessionsReply r = cpu.withDeadlineAfter(10, TimeUnit.SECONDS).sessions(SessionsRequest.newBuilder()
                .addIommus(d.iommu).setAfterSequence(base).build());
        List<DmaSessionInfo> mine = new ArrayList<>();
        for (List<DmaSessionInfo> l : List.of(r.getEndedList(), r.getLiveList())) {
            for (DmaSessionInfo i : l) {
                if (i.getStreamId() == d.stream) {
                    mine.add(i);
                }
            }
        }
        mine.sort((a, b) -> Long.compare(a.getSequence(), b.getSequence()));
        return mine;
    }

    private void start(State st) {
        List<String> argv = new ArrayList<>();
        for (String a : st.device.command) {
            argv.add(a.replace("{target}", target).replace("{iommu}", st.device.iommu)
                    .replace("{stream}", Bits.hex(st.device.stream)).replace("{name}", st.device.name));
        }
        ProcessBuilder pb = new ProcessBuilder(argv).redirectErrorStream(true);
        if (folder != null) {
            pb.directory(folder.toFile());
        }
        try {
            st.process = pb.start();
        } catch (IOException e) {
            throw new IllegalStateException("cannot start the command of external device " + st.device.name + " "
                    + argv + (folder != null ? " in " + folder : "") + ": " + e.getMessage(), e);
        }
        try {
            st.process.getOutputStream().close(); // no input
        } catch (IOException e) {
            // nothing to close
        }
        Process p = st.process;
        st.reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(),
                    StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    synchronized (st.output) {
                        if (st.output.size() == OUTPUT_LINES) {
                            st.output.removeFirst();
                        }
                        st.output.addLast(line);
                    }
                }
            } catch (IOException e) {
                // the process is gone
            }
        }, "external-" + st.device.name);
        st.reader.setDaemon(true);
        st.reader.start();
        out.println("  external device " + st.device.name + ": started " + String.join(" ", argv) + " (pid "
                + p.pid() + ")");
    }

    private static boolean exited(State st) {
        return st.process != null && !st.process.isAlive();
    }

    /** Throws: the device's command has exited, so it cannot attach or do more any longer. */
    private void exitedEarly(State st, String when) throws InterruptedException {
        if (exited(st)) {
            st.reader.join(2000);
            st.exitCode = st.process.exitValue();
            throw new IllegalStateException("the command of external device " + st.device.name + " exited with status "
                    + st.exitCode + " " + when + output(st));
        }
    }

    /** The command's last output lines, indented, for a failure message; empty without a command. */
    private static String output(State st) {
        if (st.process == null) {
            return "";
        }
        List<String> lines;
        synchronized (st.output) {
            lines = new ArrayList<>(st.output);
        }
        StringBuilder b = new StringBuilder("\n      its output" + (lines.size() == OUTPUT_LINES ? " (last "
                + OUTPUT_LINES + " lines)" : "") + ":");
        if (lines.isEmpty()) {
            b.append(" none");
        }
        for (String l : lines) {
            b.append("\n      | ").append(l);
        }
        return b.toString();
    }

    /**
     * At the end of the steps: stops the commands still running (that is no failure: a device may run until it
     * is stopped) and returns a failure message per command that exited on its own with a non-zero status.
     */
    List<String> finish() {
        List<String> failures = new ArrayList<>();
        for (State st : devices.values()) {
            if (st.process == null) {
                continue;
            }
            if (st.process.isAlive()) {
                st.killed = true;
                stop(st.process);
                out.println("  external device " + st.device.name + ": its command was still running; stopped it");
            }
            try {
                st.reader.join(2000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (!st.process.isAlive()) {
                st.exitCode = st.process.exitValue();
            }
            if (!st.killed && st.exitCode != null && st.exitCode != 0) {
                failures.add("external device " + st.device.name + ": its command exited with status " + st.exitCode
                        + output(st));
            } else if (!st.killed) {
                out.println("  external device " + st.device.name + ": its command exited with status "
                        + st.exitCode);
            }
        }
        return failures;
    }

    /** Stops every command still running, without waiting long: for a run that ends on an exception. */
    void killAll() {
        for (State st : devices.values()) {
            if (st.process != null && st.process.isAlive()) {
                st.killed = true;
                stop(st.process);
            }
        }
    }

    private static void stop(Process p) {
        p.destroy();
        try {
            if (!p.waitFor(5, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                p.waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    /** For the summary and the report: per device its counters and its command's exit status. */
    Map<String, Object> report() {
        Map<String, Object> all = new LinkedHashMap<>();
        for (State st : devices.values()) {
            Map<String, Object> m = new LinkedHashMap<>();
            Counters c;
            try {
                c = counters(st.device.name);
            } catch (StatusRuntimeException e) {
                out.println("  external device " + st.device.name + ": counters not available (" + e.getStatus()
                        .getCode() + ")");
                continue;
            }
            m.put("sessions", c.sessions());
            m.put("reads", c.reads());
            m.put("writes", c.writes());
            m.put("bytes", c.bytes());
            m.put("faults", c.faults());
            if (st.process != null) {
                m.put("exit_code", st.exitCode);
                m.put("stopped_by_runner", st.killed);
            }
            all.put(st.device.name, m);
            out.println("  external device " + st.device.name + " (" + st.where() + "): " + describe(c));
        }
        return all;
    }

    private static String seconds(long nanos) {
        return nanos % 1_000_000_000L == 0 ? nanos / 1_000_000_000L + " s" : String.format("%.3f s", nanos / 1e9);
    }
}
