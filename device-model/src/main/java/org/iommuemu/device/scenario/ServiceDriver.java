package org.iommuemu.device.scenario;

import io.grpc.Channel;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.iommuemu.core.pgtable.Prot;
import org.iommuemu.proto.v1.AllocBufferRequest;
import org.iommuemu.proto.v1.AttachDeviceRequest;
import org.iommuemu.proto.v1.CodeCount;
import org.iommuemu.proto.v1.CreateDomainReply;
import org.iommuemu.proto.v1.CreateDomainRequest;
import org.iommuemu.proto.v1.DestroyDomainRequest;
import org.iommuemu.proto.v1.DetachDeviceRequest;
import org.iommuemu.proto.v1.DomainStage;
import org.iommuemu.proto.v1.DriverGrpc;
import org.iommuemu.proto.v1.EventsReply;
import org.iommuemu.proto.v1.EventsRequest;
import org.iommuemu.proto.v1.FlushMode;
import org.iommuemu.proto.v1.FlushRequest;
import org.iommuemu.proto.v1.FreeBufferRequest;
import org.iommuemu.proto.v1.MapRequest;
import org.iommuemu.proto.v1.MapSgRequest;
import org.iommuemu.proto.v1.SgEntry;
import org.iommuemu.proto.v1.UnmapRequest;

/** A scenario's driver is the server's: every domain step is a {@code Driver} RPC. */
final class ServiceDriver implements ScenarioDriver {
    private final DriverGrpc.DriverBlockingStub driver;

    ServiceDriver(Channel channel) {
        this.driver = DriverGrpc.newBlockingStub(channel);
    }

    static org.iommuemu.proto.v1.Prot prot(int prot) {
        return org.iommuemu.proto.v1.Prot.newBuilder().setRead((prot & Prot.READ) != 0)
                .setWrite((prot & Prot.WRITE) != 0).setNoexec((prot & Prot.NOEXEC) != 0)
                .setPriv((prot & Prot.PRIV) != 0).build();
    }

    @Override
    public Created createDomain(Scenario.Domain d, Long parent) {
        CreateDomainRequest.Builder b = CreateDomainRequest.newBuilder().addAllIommus(d.iommus).setName(d.name)
                .setStage(d.stage == 1 ? DomainStage.STAGE_1 : DomainStage.STAGE_2).setGranule(1L << d.granuleLg2)
                .setInputBits(d.inputBits).setFlush(d.lazy ? FlushMode.LAZY : FlushMode.STRICT);
        if (d.lazy) {
            b.setFlushTimeoutNs(0); // reproducible: nothing flushes because of wall-clock time
        }
        if (parent != null) {
            b.setNestParent(parent);
        }
        CreateDomainReply r = driver.createDomain(b.build());
        return new Created(r.getDomain(), "domain " + r.getDomain() + " of the server's driver, "
                + r.getOutputBits() + "-bit output");
    }

    @Override
    public int attach(long domain, String iommu, int stream, Integer substream, boolean ats) {
        AttachDeviceRequest.Builder b = AttachDeviceRequest.newBuilder().setDomain(domain).setIommu(iommu)
                .setStreamId(stream).setAts(ats);
        if (substream != null) {
            b.setSubstreamId(substream);
        }
        return driver.attachDevice(b.build()).getContextId();
    }

    @Override
    public void detach(String iommu, int stream, Integer substream) {
        DetachDeviceRequest.Builder b = DetachDeviceRequest.newBuilder().setIommu(iommu).setStreamId(stream);
        if (substream != null) {
            b.setSubstreamId(substream);
        }
        driver.detachDevice(b.build());
    }

    @Override
    public long map(long domain, long iova, long pa, long size, int prot) {
        return driver.map(MapRequest.newBuilder().setDomain(domain).setIova(iova).setPa(pa).setSize(size)
                .setProt(prot(prot)).build()).getMapped();
    }

    @Override
    public long mapSg(long domain, long iova, List<long[]> entries, int prot) {
        MapSgRequest.Builder b = MapSgRequest.newBuilder().setDomain(domain).setIova(iova).setProt(prot(prot));
        for (long[] e : entries) {
            b.addEntries(SgEntry.newBuilder().setPa(e[0]).setLength(e[1]));
        }
        return driver.mapSg(b.build()).getMapped();
    }

    @Override
    public long unmap(long domain, long iova, long size) {
        return driver.unmap(UnmapRequest.newBuilder().setDomain(domain).setIova(iova).setSize(size).build())
                .getUnmapped();
    }

    @Override
    public boolean flush(long domain) {
        return driver.flush(FlushRequest.newBuilder().setDomain(domain).build()).getFlushed();
    }

    @Override
    public void destroyDomain(long domain) {
        driver.destroyDomain(DestroyDomainRequest.newBuilder().setDomain(domain).build());
    }

    @Override
    public long allocBuffer(long size) {
        return driver.allocBuffer(AllocBufferRequest.newBuilder().setSize(size).build()).getPa();
    }

    @Override
    public void freeBuffer(long pa) {
        driver.freeBuffer(FreeBufferRequest.newBuilder().setPa(pa).build());
    }

    @Override
    public Map<String, Long> events(String iommu) {
        EventsReply r = driver.events(EventsRequest.newBuilder().setIommu(iommu)
                .setAfterSequence(Long.MAX_VALUE).build()); // the counts only
        Map<String, Long> counts = new TreeMap<>();
        for (CodeCount c : r.getStats().getEventsReadList()) {
            counts.put(c.getName(), c.getCount());
        }
        return counts;
    }

    @Override
    public void close() {
        // nothing held here: the channel belongs to the runner
    }
}
