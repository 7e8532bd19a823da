package org.iommuemu.device.scenario;

import io.grpc.Channel;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.iommuemu.core.api.FlushPolicy;
import org.iommuemu.core.api.IommuApiException;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.api.SgEntry;
import org.iommuemu.core.driver.smmuv3.NestedTables;
import org.iommuemu.core.memory.BuddyPageAllocator;
import org.iommuemu.core.memory.PageAllocator;
import org.iommuemu.core.pgtable.PtFormat;
import org.iommuemu.device.machine.DriverEventLog;
import org.iommuemu.device.machine.DriverHost;
import org.iommuemu.device.machine.DriverInstance;
import org.iommuemu.device.machine.SmmuDriverInstance;
import org.iommuemu.device.machine.VtdDriverInstance;
import org.iommuemu.device.remote.BusPhysicalMemory;
import org.iommuemu.device.remote.BusSmmuHost;
import org.iommuemu.device.remote.BusVtdHost;
import org.iommuemu.proto.v1.DescribeReply;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.FeedAttach;
import org.iommuemu.proto.v1.FeedDomain;
import org.iommuemu.proto.v1.FeedFree;
import org.iommuemu.proto.v1.FeedRange;
import org.iommuemu.proto.v1.IommuKind;
import org.iommuemu.proto.v1.MachineGrpc;
import org.iommuemu.proto.v1.SanitizerEvent;
import org.iommuemu.proto.v1.SanitizerFeedRequest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A scenario's driver runs in the runner's process: iommu-core's SMMUv3 and VT-d drivers, unchanged, program each
 * instance through a {@link BusSmmuHost} or {@link BusVtdHost} — MMIO, memory and interrupts over the
 * {@code Machine} service — as a guest kernel's driver would from outside the emulator. Instances are held as
 * {@link DriverInstance}s, exactly as the server's {@code Driver} service holds its own, so the stages, granules,
 * formats and refusals are the same. Its pages come from the machine's driver heap ({@code Machine.Describe}), so the
 * server's own {@code Driver} service must not be used at the same time.
 *
 * <p>Instances are probed and initialised on first use; {@link #close} disables them again, as a driver's shutdown
 * does, and closes their interrupt streams. Not thread-safe: the runner is one thread.
 */
final class ClientDriver implements ScenarioDriver {
    private static final Logger log = LoggerFactory.getLogger(ClientDriver.class);

    /** A domain; a nested one has its nesting tables (mapped in its parent), else null. */
    private record Domain(IommuDomain api, DriverInstance.Stage stage, List<String> iommus, NestedTables tables) {}

    /** The block of nesting tables a nested domain gets, as the Driver service gives. */
    private static final long NESTED_TABLES_BYTES = 4L << 20;

    private final Channel channel;
    private final BusPhysicalMemory memory;
    private final PageAllocator heap;
    private final Map<String, IommuKind> kinds = new HashMap<>();
    private final Map<String, DriverInstance> instances = new LinkedHashMap<>();
    private final Map<Long, Domain> domains = new HashMap<>();
    private long nextId = 1;

    /** The server sanitizer's feed, or null when the run does not feed it. */
    private final Feed feed;

    ClientDriver(Channel channel, DescribeReply described) {
        this(channel, described, false);
    }

    /**
     * A client-side driver; with {@code feedSanitizer}, what its IOMMU API does (domains, maps, unmaps, flushes,
     * attachments, heap frees) is sent to the server's stale-DMA sanitizer ({@code Driver.SanitizerFeed}), one
     * event per call, before the call returns, so the DMA that follows is checked against it.
     */
    ClientDriver(Channel channel, DescribeReply described, boolean feedSanitizer) {
        if (described.getDriverHeapSize() == 0) {
            throw new ScenarioException("the server reports no driver heap for a client-side driver to use");
        }
        this.channel = channel;
        this.memory = new BusPhysicalMemory(MachineGrpc.newBlockingStub(channel), described);
        this.feed = feedSanitizer ? new Feed(DriverGrpc.newBlockingStub(channel)) : null;
        PageAllocator buddy = new BuddyPageAllocator(memory, described.getDriverHeapBase(),
                described.getDriverHeapSize());
        this.heap = feed == null ? buddy : new DriverHost.ObservedHeap(buddy, () -> feed);
        described.getIommusList().forEach(i -> kinds.put(i.getName(), i.getKind()));
    }

    /**
     * Sends each thing the client-side IOMMU API does to the server's sanitizer, in order. A refusal of the feed is
     * a bug of this class (the events come from a real driver), so it is thrown.
     */
    private static final class Feed implements IommuDomain.MappingObserver, DriverInstance.StreamListener,
            DriverHost.HeapListener {
        private final DriverGrpc.DriverBlockingStub stub;
        private final Map<IommuDomain, Long> ids = new java.util.IdentityHashMap<>();
        /**
         * Added to this driver's domain ids: the feed's ids are the server's to keep apart, and another run (or a
         * run that died before its tear-down) may feed the same server.
         */
        private final long base = java.util.concurrent.ThreadLocalRandom.current().nextLong(1, 1L << 62) << 1;

        Feed(DriverGrpc.DriverBlockingStub stub) {
            this.stub = stub;
        }

        private void send(SanitizerEvent e) {
            stub.sanitizerFeed(SanitizerFeedRequest.newBuilder().addEvents(e).build());
        }

        private long id(IommuDomain d) {
            Long id = ids.get(d);
            if (id == null) {
                throw new IllegalStateException("domain '" + d.name() + "' was not announced to the sanitizer feed");
            }
            return id;
        }

        void created(long localId, IommuDomain d, boolean lazy, IommuDomain parent) {
            long id = base + localId;
            ids.put(d, id);
            // flush_timeout 0: the domain's clock never advances (see createDomain)
            send(SanitizerEvent.newBuilder().setDomain(FeedDomain.newBuilder().setDomain(id).setName(d.name())
                    .setLazy(lazy).setParent(parent == null ? 0 : id(parent))).build());
            d.mappingObserver(this);
        }

        @Override
        public void mapped(IommuDomain d, long iova, long pa, long size, int prot) {
            send(SanitizerEvent.newBuilder().setMapped(FeedRange.newBuilder().setDomain(id(d)).setIova(iova)
                    .setPa(pa).setSize(size).setClockNs(d.clockNanos())).build());
        }

        @Override
        public void unmapped(IommuDomain d, long iova, long size) {
            send(SanitizerEvent.newBuilder().setUnmapped(FeedRange.newBuilder().setDomain(id(d)).setIova(iova)
                    .setSize(size).setClockNs(d.clockNanos())).build());
        }

        @Override
        public void flushStarting(IommuDomain d) {
            send(SanitizerEvent.newBuilder().setFlushStarting(id(d)).build());
        }

        @Override
        public void flushed(IommuDomain d) {
            send(SanitizerEvent.newBuilder().setFlushed(id(d)).build());
        }

        @Override
        public void destroyed(IommuDomain d) {
            send(SanitizerEvent.newBuilder().setDestroyed(id(d)).build());
            ids.remove(d);
        }

        @Override
        public void streamChanged(String iommu, int streamId, int substreamId, IommuDomain domain) {
            FeedAttach.Builder a = FeedAttach.newBuilder().setIommu(iommu).setStreamId(streamId)
                    .setDomain(domain == null ? 0 : ids.getOrDefault(domain, 0L));
            if (substreamId >= 0) {
                a.setSubstreamId(substreamId);
            }
            send(SanitizerEvent.newBuilder().setAttached(a).build());
        }

        /** The run is over: the server forgets the domains still live (they are not destroyed here). */
        void closeAll() {
            for (IommuDomain d : List.copyOf(ids.keySet())) {
                d.mappingObserver(null);
                try {
                    destroyed(d);
                } catch (RuntimeException e) {
                    log.warn("sanitizer feed: forgetting domain '{}' at close failed: {}", d.name(), e.getMessage());
                }
            }
        }

        @Override
        public void freed(long pa, long bytes) {
            send(SanitizerEvent.newBuilder().setFreed(FeedFree.newBuilder().setPa(pa).setBytes(bytes)).build());
        }
    }

    private DriverInstance instance(String iommu) {
        DriverInstance i = instances.get(iommu);
        if (i == null) {
            if (kinds.get(iommu) == IommuKind.VTD) {
                BusVtdHost host = new BusVtdHost(channel, iommu, memory, heap);
                i = VtdDriverInstance.takeOver(iommu, host, host);
            } else {
                BusSmmuHost host = new BusSmmuHost(channel, iommu, memory, heap);
                i = SmmuDriverInstance.takeOver(iommu, host, host);
            }
            if (feed != null) {
                i.streamListener(feed);
            }
            instances.put(iommu, i);
        }
        return i;
    }

    @Override
    public Created createDomain(Scenario.Domain d, Long parent) {
        DriverInstance.Stage stage = d.stage == 1 ? DriverInstance.Stage.S1 : DriverInstance.Stage.S2;
        int oas = 48;
        List<DriverInstance> owned = new ArrayList<>();
        for (String m : d.iommus) {
            DriverInstance o = instance(m);
            String refusal = o.refusal(stage, 1L << d.granuleLg2, parent != null);
            if (refusal != null) {
                throw new IllegalArgumentException(refusal);
            }
            oas = Math.min(oas, o.outputBits());
            owned.add(o);
        }
        NestedTables tables = null;
        if (parent != null) {
            IommuDomain p = domain(parent).api();
            oas = Math.min(oas, p.format().vaBits()); // a nested domain's output is an IPA
            try {
                tables = NestedTables.create(p, memory, heap, NESTED_TABLES_BYTES);
            } catch (IommuApiException e) {
                throw new IllegalStateException("nesting tables: " + e.getMessage(), e);
            }
        }
        PtFormat fmt = owned.get(0).format(stage, d.granuleLg2, d.inputBits, oas);
        IommuDomain api;
        try {
            api = IommuDomain.builder(fmt, memory, tables != null ? tables : heap).name(d.name)
                    .flushPolicy(d.lazy ? FlushPolicy.LAZY : FlushPolicy.STRICT)
                    .clock(() -> 0L) // as the service's flush_timeout_ns 0: no flush by wall-clock time
                    .build();
        } catch (IommuApiException e) {
            throw new IllegalStateException("create: " + e.getMessage(), e);
        }
        long id = nextId++;
        domains.put(id, new Domain(api, stage, List.copyOf(d.iommus), tables));
        if (feed != null) {
            feed.created(id, api, d.lazy, parent == null ? null : domain(parent).api());
        }
        return new Created(id, "domain " + id + " of the client-side driver, " + oas + "-bit output");
    }

    private Domain domain(long id) {
        Domain d = domains.get(id);
        if (d == null) {
            throw new IllegalArgumentException("no domain " + id);
        }
        return d;
    }

    @Override
    public int attach(long domain, String iommu, int stream, Integer substream, boolean ats) {
        Domain d = domain(domain);
        DriverInstance ops = instance(iommu);
        try {
            if (substream != null) {
                ops.attachSubstream(d.api(), stream, substream);
            } else if (d.tables() != null) {
                ops.attachNested(d.api(), d.tables(), stream);
            } else {
                ops.attachStream(d.api(), d.stage(), stream);
            }
        } catch (IommuApiException e) {
            throw new IllegalStateException("attach: " + e.getMessage(), e);
        }
        if (ats) {
            try {
                ops.enableAts(stream);
            } catch (IommuApiException e) {
                throw new IllegalStateException("attach: ats: " + e.getMessage(), e);
            } catch (UnsupportedOperationException e) {
                throw new IllegalStateException("attach: ats: not implemented by the client-side driver: "
                        + e.getMessage() + " (the stream stays attached without ATS)", e);
            }
        }
        return ops.contextId(d.api());
    }

    @Override
    public void detach(String iommu, int stream, Integer substream) {
        try {
            if (substream != null) {
                instance(iommu).detachSubstream(stream, substream);
            } else {
                instance(iommu).detachStream(stream);
            }
        } catch (IommuApiException e) {
            throw new IllegalStateException("detach: " + e.getMessage(), e);
        }
    }

    @Override
    public long map(long domain, long iova, long pa, long size, int prot) {
        try {
            return domain(domain).api().map(iova, pa, size, prot);
        } catch (IommuApiException e) {
            throw new IllegalStateException("map: " + e.getMessage(), e);
        }
    }

    @Override
    public long mapSg(long domain, long iova, List<long[]> entries, int prot) {
        List<SgEntry> sg = new ArrayList<>();
        for (long[] e : entries) {
            sg.add(SgEntry.of(e[0], e[1]));
        }
        try {
            return domain(domain).api().mapSg(iova, sg, prot);
        } catch (IommuApiException e) {
            throw new IllegalStateException("map_sg: " + e.getMessage(), e);
        }
    }

    @Override
    public long unmap(long domain, long iova, long size) {
        try {
            return domain(domain).api().unmap(iova, size);
        } catch (IommuApiException e) {
            throw new IllegalStateException("unmap: " + e.getMessage(), e);
        }
    }

    @Override
    public boolean flush(long domain) {
        try {
            return domain(domain).api().flushQueue();
        } catch (IommuApiException e) {
            throw new IllegalStateException("flush: " + e.getMessage(), e);
        }
    }

    @Override
    public void destroyDomain(long domain) {
        Domain d = domain(domain);
        try {
            d.api().destroy();
            if (d.tables() != null) {
                d.tables().close(); // unmaps the block from the parent and frees it
            }
        } catch (IommuApiException e) {
            throw new IllegalStateException("destroy: " + e.getMessage(), e);
        }
        domains.remove(domain);
    }

    @Override
    public long allocBuffer(long size) {
        return heap.allocBytes(size, "dma-buffer");
    }

    @Override
    public void freeBuffer(long pa) {
        heap.free(pa);
    }

    @Override
    public Map<String, Long> events(String iommu) {
        Map<String, Long> counts = new TreeMap<>();
        DriverInstance i = instances.get(iommu);
        if (i == null) {
            return counts;
        }
        i.drainEvents();
        DriverEventLog.Snapshot snap = i.events().since(Long.MAX_VALUE);
        snap.countsByType().forEach((type, n) -> counts.put(snap.typeNames().get(type), n));
        return counts;
    }

    @Override
    public void close() {
        if (feed != null) {
            feed.closeAll();
        }
        for (Map.Entry<String, DriverInstance> e : instances.entrySet()) {
            try {
                e.getValue().shutdown();
            } catch (RuntimeException ex) {
                log.warn("{}: disabling the unit at shutdown failed: {}", e.getKey(), ex.getMessage());
            }
        }
        instances.clear();
    }
}
