package org.iommuemu.device.scenario;

import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.iommuemu.device.trace.DriverOp;
import org.iommuemu.device.trace.TraceKind;
import org.iommuemu.device.trace.Tracer;

/**
 * A {@link ScenarioDriver} whose operations go on the driver track of a machine in this process: {@code run
 * --driver client} on an embedded machine. The client driver programs the IOMMU over the bus like an operating
 * system would, so the server's {@code DriverService} never sees its domain, attach, map, unmap and flush calls;
 * this wrapper records each of them when it returns, with the same fields the server's driver records (domain,
 * iova or stream, bytes, 0 done / 1 refused), so a trace looks the same whichever side the driver runs on.
 * Buffer allocation and event reads are not driver operations there either, and are not recorded.
 */
final class TracedDriver implements ScenarioDriver {
    private final ScenarioDriver inner;
    private final Tracer tracer;

    /** Wraps {@code inner}, recording into {@code tracer} while it is on. */
    TracedDriver(ScenarioDriver inner, Tracer tracer) {
        this.inner = inner;
        this.tracer = tracer;
    }

    /** Runs {@code call} and, while tracing, records it as {@code op}, with result 1 when it threw. */
    private <R> R traced(DriverOp op, long domain, long iova, long size, Supplier<R> call) {
        boolean ok = false;
        try {
            R r = call.get();
            ok = true;
            return r;
        } finally {
            if (tracer.on()) {
                tracer.record(TraceKind.DRIVER, -1, domain, -1, iova, size, op.ordinal(), ok ? 0 : 1, 0);
            }
        }
    }

    @Override
    public Created createDomain(Scenario.Domain d, Long parent) {
        return traced(DriverOp.DOMAIN_ALLOC, 0, 0, 0, () -> inner.createDomain(d, parent));
    }

    @Override
    public int attach(long domain, String iommu, int stream, Integer substream, boolean ats) {
        return traced(DriverOp.ATTACH, domain, stream, 0, () -> inner.attach(domain, iommu, stream, substream, ats));
    }

    @Override
    public void detach(String iommu, int stream, Integer substream) {
        traced(DriverOp.DETACH, 0, stream, 0, () -> {
            inner.detach(iommu, stream, substream);
            return null;
        });
    }

    @Override
    public long map(long domain, long iova, long pa, long size, int prot) {
        return traced(DriverOp.MAP, domain, iova, size, () -> inner.map(domain, iova, pa, size, prot));
    }

    @Override
    public long mapSg(long domain, long iova, List<long[]> entries, int prot) {
        long bytes = 0;
        for (long[] e : entries) {
            bytes += e[1];
        }
        return traced(DriverOp.MAP_SG, domain, iova, bytes, () -> inner.mapSg(domain, iova, entries, prot));
    }

    @Override
    public long unmap(long domain, long iova, long size) {
        return traced(DriverOp.UNMAP, domain, iova, size, () -> inner.unmap(domain, iova, size));
    }

    @Override
    public boolean flush(long domain) {
        return traced(DriverOp.FLUSH, domain, 0, 0, () -> inner.flush(domain));
    }

    @Override
    public void destroyDomain(long domain) {
        traced(DriverOp.DOMAIN_FREE, domain, 0, 0, () -> {
            inner.destroyDomain(domain);
            return null;
        });
    }

    @Override
    public long allocBuffer(long size) {
        return inner.allocBuffer(size);
    }

    @Override
    public void freeBuffer(long pa) {
        inner.freeBuffer(pa);
    }

    @Override
    public Map<String, Long> events(String iommu) {
        return inner.events(iommu);
    }

    @Override
    public void close() {
        inner.close();
    }
}
