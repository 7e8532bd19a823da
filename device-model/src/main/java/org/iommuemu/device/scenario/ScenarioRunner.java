package org.iommuemu.device.scenario;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.api.SgEntry;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.core.bits.Sizes;
import org.iommuemu.core.driver.smmuv3.SmmuV3Domains;
import org.iommuemu.core.driver.smmuv3.SmmuV3Features;
import org.iommuemu.core.driver.smmuv3.SmmuV3Listener;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.smmuv3.EventRecord;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.device.bus.BusServer;
import org.iommuemu.device.machine.DeviceStats;
import org.iommuemu.device.machine.DriverHost;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Machine;
import org.iommuemu.dma.DmaClient;
import org.iommuemu.dma.DmaResult;
import org.iommuemu.dma.DmaSession;

/**
 * Runs a checked scenario ({@link ScenarioFile}) on an embedded machine: the machine's own SMMUv3 driver
 * ({@link DriverHost}) makes the domains, allocates the buffers from the driver heap and attaches the devices'
 * streams; each device is a DMA master on the bus, in process ({@link BusServer#inProcess}), through
 * {@link DmaClient}. After each DMA the driver drains the event queues, and the records it decodes are counted by
 * instance and type for {@code expect: events}.
 *
 * <p>A step that cannot be carried out (a map the domain refuses, a DMA the bus rejects) fails the run and stops
 * it; an expect that does not hold fails the run and the run goes on.
 */
public final class ScenarioRunner {
    private final Scenario s;
    private final Machine machine;
    private final PrintWriter out;
    private final Map<String, IommuDomain> domains = new HashMap<>();
    private final Map<String, SmmuV3Domains.Stage> stages = new HashMap<>();
    private final Map<String, Long> buffers = new HashMap<>();
    private final Map<String, DmaSession> sessions = new HashMap<>();
    private final Map<String, DmaResult> lastDma = new HashMap<>();
    private final Map<String, DriverHost.Owned> owned = new LinkedHashMap<>();
    /** Decoded event records by instance, then by type name. */
    private final Map<String, Map<String, AtomicLong>> events = new ConcurrentHashMap<>();
    private long dmaReads;
    private long dmaWrites;
    private long dmaBytes;
    private long dmaFaults;
    private int expectsPassed;
    private int expectsFailed;
    private final List<String> failures = new ArrayList<>();
    private int stepsRun;
    private boolean stopped;

    private ScenarioRunner(ScenarioFile.Loaded loaded, PrintWriter out) {
        this.s = loaded.scenario();
        this.machine = new Machine(loaded.machine());
        this.out = out;
    }

    /** What a run found; {@link #report} is the summary as plain data (for JSON). */
    public record Result(int steps, int stepsRun, int expectsPassed, List<String> failures,
            Map<String, Object> report) {
        public boolean passed() {
            return failures.isEmpty();
        }
    }

    /** Runs {@code loaded}, printing a line per step and then the summary to {@code out}. */
    public static Result run(ScenarioFile.Loaded loaded, PrintWriter out) {
        return run(loaded, out, false);
    }

    /**
     * Runs {@code loaded}; with {@code netty} the devices reach the machine over a Netty server on a free
     * loopback port instead of the in-process transport.
     */
    public static Result run(ScenarioFile.Loaded loaded, PrintWriter out, boolean netty) {
        return new ScenarioRunner(loaded, out).run(netty);
    }

    private Result run(boolean netty) {
        out.println("scenario " + s.source + ": " + s.domains.size() + " domain(s), " + s.buffers.size()
                + " buffer(s), " + s.devices.size() + " device(s), " + s.steps.size() + " step(s)"
                + (netty ? ", over Netty on loopback" : ""));
        String name = "iommu-emu-run-" + UUID.randomUUID();
        BusServer started;
        try {
            started = netty ? BusServer.netty(machine, "127.0.0.1", 0).start() : BusServer.inProcess(machine, name).start();
        } catch (IOException e) {
            throw new ScenarioException("cannot start the bus: " + e.getMessage(), e);
        }
        ManagedChannel channel = netty
                ? NettyChannelBuilder.forTarget(started.target()).usePlaintext()
                        .maxInboundMessageSize(DmaClient.MAX_INBOUND_MESSAGE).build()
                : InProcessChannelBuilder.forName(name).build();
        try (BusServer server = started; DmaClient client = DmaClient.over(channel)) {
            setUp(client);
            for (int i = 0; i < s.steps.size() && !stopped; i++) {
                step(i, s.steps.get(i));
                stepsRun++;
            }
            for (DmaSession session : sessions.values()) {
                session.close();
            }
        } finally {
            channel.shutdownNow();
            try {
                channel.awaitTermination(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        Map<String, Object> report = summary();
        out.flush();
        return new Result(s.steps.size(), stepsRun, expectsPassed, List.copyOf(failures), report);
    }

    // ------------------------------------------------------------------ set-up

    private void setUp(DmaClient client) {
        for (Scenario.Domain d : s.domains) {
            try {
                domain(d);
            } catch (Exception e) {
                throw new ScenarioException(s.source + ": domain " + d.name + ": " + e.getMessage(), e);
            }
        }
        for (Scenario.Buffer b : s.buffers) {
            try {
                long pa = machine.driverHost().heap().allocBytes(b.size, "scenario buffer " + b.name);
                buffers.put(b.name, pa);
                out.println("  buffer " + b.name + ": " + Sizes.format(b.size) + " at " + Bits.hex(pa));
            } catch (RuntimeException e) {
                throw new ScenarioException(s.source + ": buffer " + b.name + ": " + e.getMessage(), e);
            }
        }
        for (Scenario.Device d : s.devices) {
            try {
                owned.get(d.iommu).domains().attachStream(domains.get(d.domain), stages.get(d.domain), d.stream);
                sessions.put(d.name, client.attach(d.name, d.iommu, d.stream));
                out.println("  device " + d.name + ": stream " + Bits.hex(d.stream) + " of " + d.iommu
                        + " in domain " + d.domain);
            } catch (Exception e) {
                throw new ScenarioException(s.source + ": device " + d.name + ": " + e.getMessage(), e);
            }
        }
    }

    private void domain(Scenario.Domain d) throws Exception {
        SmmuV3Domains.Stage stage = d.stage == 1 ? SmmuV3Domains.Stage.S1 : SmmuV3Domains.Stage.S2;
        int oas = 48;
        for (String m : d.iommus) {
            DriverHost.Owned o = takeOver(m);
            SmmuV3Features f = o.driver().features();
            if (d.stage == 1 ? !f.stage1() : !f.stage2()) {
                throw new IllegalArgumentException(m + " does not implement stage " + d.stage);
            }
            if ((f.pageSizes() & (1L << d.granuleLg2)) == 0) {
                throw new IllegalArgumentException(m + " does not implement the " + (1 << d.granuleLg2 - 10)
                        + " KiB granule");
            }
            oas = Math.min(oas, f.oasBits());
        }
        Arm64Lpae fmt = d.stage == 1 ? Arm64Lpae.stage1(d.granuleLg2, d.inputBits, oas)
                : Arm64Lpae.stage2(d.granuleLg2, d.inputBits, oas);
        IommuDomain api = IommuDomain.builder(fmt, machine.memory(), machine.driverHost().heap()).name(d.name)
                .flushPolicy(d.lazy ? FlushPolicy.LAZY : FlushPolicy.STRICT)
                .clock(() -> 0L) // lazy domains flush when their queue fills or at a flush step, never by time
                .build();
        domains.put(d.name, api);
        stages.put(d.name, stage);
        out.println("  domain " + d.name + ": stage " + d.stage + ", " + (1 << d.granuleLg2 - 10) + " KiB granule, "
                + d.inputBits + "-bit input, " + (d.lazy ? "lazy" : "strict") + ", on " + d.iommus);
    }

    private DriverHost.Owned takeOver(String iommu) {
        DriverHost.Owned o = owned.get(iommu);
        if (o == null) {
            IommuDevice device = machine.iommu(iommu);
            o = machine.driverHost().smmu(device);
            Map<String, AtomicLong> byType = events.computeIfAbsent(iommu, k -> new ConcurrentHashMap<>());
            o.driver().addListener(new SmmuV3Listener() {
                @Override
                public void onEvent(EventRecord event) {
                    byType.computeIfAbsent(EventType.name(event.type()), k -> new AtomicLong()).incrementAndGet();
                }
            });
            owned.put(iommu, o);
        }
        return o;
    }

    // ------------------------------------------------------------------ steps

    private void step(int i, Scenario.Step st) {
        String tag = String.format("  [%d] ", i);
        String what = st.kind();
        try {
            if (st.map != null) {
                Scenario.Map m = st.map;
                long pa = pa(m);
                what = "map " + m.domain + " iova " + Bits.hex(m.iova) + " -> " + target(m) + " size "
                        + Sizes.format(m.size) + " prot " + Prot.toString(m.prot);
                long n = domains.get(m.domain).map(m.iova, pa, m.size, m.prot);
                ok(tag, what + " (" + Sizes.format(n) + " mapped)");
            } else if (st.mapSg != null) {
                Scenario.MapSg m = st.mapSg;
                List<SgEntry> sg = new ArrayList<>();
                long total = 0;
                for (Scenario.SgPart e : m.entries) {
                    sg.add(new SgEntry(pa(e), 0, e.size));
                    total += e.size;
                }
                what = "map_sg " + m.domain + " iova " + Bits.hex(m.iova) + " " + sg.size() + " entries, "
                        + Sizes.format(total) + " prot " + Prot.toString(m.prot);
                long n = domains.get(m.domain).mapSg(m.iova, sg, m.prot);
                ok(tag, what + " (" + Sizes.format(n) + " mapped)");
            } else if (st.unmap != null) {
                Scenario.Unmap u = st.unmap;
                what = "unmap " + u.domain + " iova " + Bits.hex(u.iova) + " size " + Sizes.format(u.size);
                long n = domains.get(u.domain).unmap(u.iova, u.size);
                ok(tag, what + " (" + Sizes.format(n) + " unmapped)");
            } else if (st.flush != null) {
                what = "flush " + st.flush.domain;
                boolean any = domains.get(st.flush.domain).flushQueue();
                ok(tag, what + (any ? " (flushed the queue)" : " (queue was empty)"));
            } else if (st.dma != null) {
                dma(tag, st.dma);
            } else {
                expect(tag, st.expect);
            }
        } catch (Exception e) {
            String msg = tag + "FAIL " + what + ": " + e.getClass().getSimpleName() + ": " + e.getMessage();
            out.println(msg);
            out.println("  stopping: the steps after this one would run on a machine the scenario did not"
                    + " intend");
            failures.add(ScenarioFile.stepName(s, stepIndex(tag)) + ": " + what + ": " + e.getMessage());
            stopped = true;
        }
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
        if (d.write) {
            what = "dma " + d.device + " write " + Sizes.format(size) + " at iova " + Bits.hex(d.iova) + " ("
                    + d.data + ")";
            r = session.write(d.iova, d.data.bytes(size));
            dmaWrites++;
        } else {
            what = "dma " + d.device + " read " + Sizes.format(size) + " at iova " + Bits.hex(d.iova);
            r = session.read(d.iova, size);
            dmaReads++;
        }
        lastDma.put(d.device, r);
        if (r.faulted()) {
            dmaFaults++;
            dmaBytes += r.fault().getBytesDone();
        } else {
            dmaBytes += size;
        }
        for (DriverHost.Owned o : owned.values()) {
            o.driver().drainEvents();
        }
        ok(tag, what + (r.faulted() ? ": fault " + r.fault().getKind() + " at " + Bits.hex(r.fault().getAddress())
                : ": done"));
    }

    private void expect(String tag, Scenario.Expect e) throws Exception {
        String what;
        String failure = null;
        if (e.memory != null) {
            Scenario.MemoryExpect m = e.memory;
            int size = (int) (long) m.size;
            what = "expect memory " + m.buffer + (m.offset != 0 ? "+" + Bits.hex(m.offset) : "") + " "
                    + Sizes.format(size) + " equals " + m.equals;
            byte[] got = new byte[size];
            machine.memory().read(buffers.get(m.buffer) + m.offset, got, 0, size);
            failure = differ(m.equals.bytes(size), got);
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
            Map<String, AtomicLong> byType = events.getOrDefault(ev.iommu, Map.of());
            long got = byType.containsKey(ev.typeName) ? byType.get(ev.typeName).get() : 0;
            if (got != ev.count) {
                failure = "the driver read " + got + " " + ev.typeName + " record(s) from " + ev.iommu
                        + " (all: " + counts(byType) + ")";
            }
        } else {
            Scenario.CounterExpect c = e.counter;
            what = "expect counter " + c.iommu + " " + c.name + (c.min != null && c.max != null
                    ? (c.min.equals(c.max) ? " = " + c.min : " in [" + c.min + ", " + c.max + "]")
                    : c.min != null ? " >= " + c.min : " <= " + c.max);
            long got = Counters.value(machine.iommu(c.iommu).stats(), c.name);
            what += " (is " + got + ")";
            if ((c.min != null && got < c.min) || (c.max != null && got > c.max)) {
                failure = c.name + " is " + got;
            }
        }
        if (failure == null) {
            expectsPassed++;
            out.println(tag + "PASS " + what);
        } else {
            expectsFailed++;
            out.println(tag + "FAIL " + what + ": " + failure);
            failures.add(ScenarioFile.stepName(s, stepIndex(tag)) + ": " + what + ": " + failure);
        }
    }

    private static String differ(byte[] want, byte[] got) {
        for (int i = 0; i < want.length; i++) {
            if (want[i] != got[i]) {
                return String.format("byte %d is 0x%02X, expected 0x%02X", i, got[i] & 0xFF, want[i] & 0xFF);
            }
        }
        return null;
    }

    private static String counts(Map<String, AtomicLong> byType) {
        if (byType.isEmpty()) {
            return "none";
        }
        StringBuilder b = new StringBuilder();
        new java.util.TreeMap<>(byType).forEach((k, v) -> b.append(b.length() == 0 ? "" : ", ").append(k)
                .append(' ').append(v.get()));
        return b.toString();
    }

    // ------------------------------------------------------------------ summary

    private Map<String, Object> summary() {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("scenario", s.source);
        r.put("steps", s.steps.size());
        r.put("steps_run", stepsRun);
        r.put("stopped", stopped);
        r.put("expects_passed", expectsPassed);
        r.put("expects_failed", expectsFailed);
        r.put("failures", List.copyOf(failures));
        Map<String, Object> dma = new LinkedHashMap<>();
        dma.put("reads", dmaReads);
        dma.put("writes", dmaWrites);
        dma.put("bytes", dmaBytes);
        dma.put("faulted", dmaFaults);
        r.put("dma", dma);
        out.println();
        out.println("summary");
        out.println("  steps: " + stepsRun + " of " + s.steps.size() + " run" + (stopped ? " (stopped at one that"
                + " could not be done)" : "") + "; expects: " + expectsPassed + " passed, " + expectsFailed
                + " failed");
        out.println("  DMA: " + (dmaReads + dmaWrites) + " ops (" + dmaReads + " reads, " + dmaWrites + " writes), "
                + dmaBytes + " bytes, " + dmaFaults + " faulted");
        Map<String, Object> instances = new LinkedHashMap<>();
        for (IommuDevice d : machine.iommus()) {
            DeviceStats st = d.stats();
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("translations", st.translations());
            m.put("faults", st.faults());
            m.put("walks", st.walks());
            m.put("sim_time_ns", st.simTimeNs());
            out.println("  " + d.name() + ": " + st.translations() + " translations, " + st.faults() + " faults, "
                    + st.walks() + " walks, " + st.simTimeNs() + " simulated ns");
            Map<String, Object> caches = new LinkedHashMap<>();
            StringBuilder line = new StringBuilder();
            for (DeviceStats.CacheStat c : st.caches()) {
                long lookups = c.hits() + c.misses();
                Map<String, Object> cm = new LinkedHashMap<>();
                cm.put("hits", c.hits());
                cm.put("misses", c.misses());
                cm.put("hit_rate", lookups == 0 ? null : (double) c.hits() / lookups);
                caches.put(c.cache(), cm);
                line.append(line.length() == 0 ? "" : ", ").append(c.cache()).append(' ')
                        .append(lookups == 0 ? "-" : String.format("%.1f%%", 100.0 * c.hits() / lookups))
                        .append(" (").append(c.hits()).append('/').append(lookups).append(')');
            }
            m.put("caches", caches);
            if (line.length() > 0) {
                out.println("    cache hit rates: " + line);
            }
            m.put("commands", codes(st.commands(), "    commands: "));
            m.put("events", codes(st.events(), "    events: "));
            Map<String, AtomicLong> decoded = events.get(d.name());
            if (decoded != null) {
                Map<String, Long> dm = new java.util.TreeMap<>();
                decoded.forEach((k, v) -> dm.put(k, v.get()));
                m.put("events_read_by_driver", dm);
            }
            instances.put(d.name(), m);
        }
        r.put("iommus", instances);
        out.println(failures.isEmpty() ? "scenario passed" : "scenario FAILED: " + failures.size() + " failure(s)");
        for (String f : failures) {
            out.println("  " + f);
        }
        return r;
    }

    private Map<String, Long> codes(List<DeviceStats.CodeCount> counts, String label) {
        Map<String, Long> m = new LinkedHashMap<>();
        StringBuilder line = new StringBuilder();
        for (DeviceStats.CodeCount c : counts) {
            m.put(c.name(), c.count());
            line.append(line.length() == 0 ? "" : ", ").append(c.name()).append(' ').append(c.count());
        }
        if (line.length() > 0) {
            out.println(label + line);
        }
        return m;
    }
}
