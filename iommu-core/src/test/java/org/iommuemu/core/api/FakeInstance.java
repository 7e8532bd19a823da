package org.iommuemu.core.api;

import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;
import org.iommuemu.core.pgtable.IotlbGather;

/**
 * An {@link IommuInstanceOps} that records what it is asked to invalidate, and optionally samples a value
 * (e.g. the allocator's table-page count) at each unmap-side sync, to prove what happened before the sync
 * returned. Thread-safe.
 */
final class FakeInstance implements IommuInstanceOps {
    /** One iotlbSync call: the gathered range, its page size, whether tables were freed, and the sample. */
    record Sync(long start, long last, int pageLg2, boolean freedTables, boolean hasRange, long sample) {}

    /** One iotlbSyncMap call. */
    record SyncMap(long iova, long size) {}

    private final String name;
    private final long pageSizes;
    private final boolean needsMapSync;
    private final List<Sync> syncs = new ArrayList<>();
    private final List<SyncMap> syncMaps = new ArrayList<>();
    private final List<String> events;
    private int flushAlls;
    private volatile LongSupplier sampler = () -> 0;
    private volatile RuntimeException failNext;

    FakeInstance(String name, long pageSizes, boolean needsMapSync) {
        this(name, pageSizes, needsMapSync, new ArrayList<>());
    }

    /** An instance appending "name:kind" to a shared event log, to check the order across instances. */
    FakeInstance(String name, long pageSizes, boolean needsMapSync, List<String> events) {
        this.name = name;
        this.pageSizes = pageSizes;
        this.needsMapSync = needsMapSync;
        this.events = events;
    }

    void sampleWith(LongSupplier s) {
        this.sampler = s;
    }

    /** Makes the next invalidation of any kind throw {@code e}. */
    void failNext(RuntimeException e) {
        this.failNext = e;
    }

    private void maybeFail() {
        RuntimeException e = failNext;
        if (e != null) {
            failNext = null;
            throw e;
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public long pageSizes() {
        return pageSizes;
    }

    @Override
    public boolean needsMapSync() {
        return needsMapSync;
    }

    @Override
    public synchronized void iotlbSyncMap(IommuDomain domain, long iova, long size) {
        maybeFail();
        syncMaps.add(new SyncMap(iova, size));
        log("syncMap");
    }

    @Override
    public synchronized void iotlbSync(IommuDomain domain, IotlbGather gather) {
        maybeFail();
        syncs.add(new Sync(gather.start(), gather.last(), gather.pageLg2(), gather.freedTables(), gather.hasRange(),
                sampler.getAsLong()));
        log("sync");
    }

    @Override
    public synchronized void flushIotlbAll(IommuDomain domain) {
        maybeFail();
        flushAlls++;
        log("flushAll");
    }

    private void log(String what) {
        synchronized (events) {
            events.add(name + ":" + what);
        }
    }

    synchronized List<Sync> syncs() {
        return List.copyOf(syncs);
    }

    synchronized List<SyncMap> syncMaps() {
        return List.copyOf(syncMaps);
    }

    synchronized int flushAlls() {
        return flushAlls;
    }

    synchronized void clear() {
        syncs.clear();
        syncMaps.clear();
        flushAlls = 0;
    }

    @Override
    public String toString() {
        return name;
    }
}
