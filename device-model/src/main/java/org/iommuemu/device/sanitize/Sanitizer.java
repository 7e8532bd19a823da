package org.iommuemu.device.sanitize;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.iommuemu.core.api.IommuDomain;
import org.iommuemu.core.bits.Bits;
import org.iommuemu.device.machine.DmaEngine;
import org.iommuemu.device.machine.DriverHost;
import org.iommuemu.device.machine.DriverInstance;
import org.iommuemu.device.machine.IommuDevice;
import org.iommuemu.device.machine.Translation;

/**
 * The stale-DMA sanitizer of one machine (issue #7): a shadow of what the in-process driver means to have mapped,
 * checked against every DMA chunk the IOMMU translated successfully. Off by default; {@link #enable} switches it
 * at run time.
 *
 * <p><b>What it watches.</b> Domains {@link #track tracked} while it is on (the bus's {@code Driver} service tracks
 * each domain it creates; a domain created while the sanitizer was off is never checked) get a {@link DomainShadow}
 * as their {@link IommuDomain.MappingObserver}. Which stream and substream of which instance is attached to which
 * domain comes from the {@link DriverInstance.StreamListener} that {@link DriverHost} gives every instance it takes
 * over; frees of the driver heap (buffers, page-table pages, queues) from its {@link DriverHost.HeapListener}. A
 * stream the in-process driver did not attach (a client programming the IOMMU itself, the scenario runner's
 * {@code --driver client}) is not checked.
 *
 * <p><b>The check</b> ({@link DmaEngine.Checker}, called by the DMA engine once per translated chunk): with the
 * stream's domain (the substream's, else the whole stream's), piece by piece along the chunk (see
 * {@link DomainShadow#check}),
 * <ol>
 *   <li>iova not live, but unmapped (its last unmap is kept however long ago) and that unmap's invalidation
 *       completed (strict unmap returned, or a lazy unmap covered by a finished queue flush):
 *       {@link SanitizerReport.Kind#STALE_TRANSLATION};</li>
 *   <li>iova in a lazy unmap not flushed yet: allowed while {@code clock - unmapTime <= flushQueueTimeoutNanos} on
 *       the domain's clock, else {@link SanitizerReport.Kind#LAZY_BOUND_EXCEEDED}. A bus domain made with
 *       {@code flush_timeout_ns: 0} has a clock that never advances: its unmaps are never stale until flushed;</li>
 *   <li>the output page is not reached by a live mapping of the domain (of its stage-2 parent when nested) — checked
 *       only when the shadow does not give the same address for the iova, so the common case is one binary search:
 *       {@link SanitizerReport.Kind#UNMAPPED_MEMORY};</li>
 *   <li>a page of the chunk was freed back to the driver heap after the live mapping was made (whether or not it
 *       was handed out again since): {@link SanitizerReport.Kind#FREED_MEMORY}.</li>
 * </ol>
 * One report at most per chunk: its first bad piece. Reports are kept in a bounded log ({@link #LOG} newest) with
 * counts by kind, overall and per instance.
 *
 * <p><b>Translated (ATS) requests</b> carry a physical address that the IOMMU passed through: they are judged by
 * that address against every domain of the stream (whole stream and substreams), see {@link #checkTranslated}:
 * {@link SanitizerReport.Kind#TRANSLATED_STALE_ATC} or {@link SanitizerReport.Kind#TRANSLATED_UNMAPPED_MEMORY}.
 *
 * <p><b>Cost.</b> Off: the DMA engine reads one volatile field, domains created meanwhile get no observer. On: every
 * check and shadow update holds one lock; a check allocates nothing unless it records a report; shadow updates
 * cost a count per 4 KiB page mapped or unmapped.
 */
public final class Sanitizer implements DmaEngine.Checker, DriverInstance.StreamListener, DriverHost.HeapListener {
    /** Reports kept. */
    public static final int LOG = 1024;
    /** Heap frees remembered for the provenance of FREED_MEMORY reports. */
    static final int FREES = 1024;
    private static final int PAGE_SHIFT = 12;
    private static final SanitizerReport.Kind[] KINDS = SanitizerReport.Kind.values();

    final Object lock = new Object();
    private final DmaEngine dma;
    private final String[] instances;
    private volatile boolean enabled;

    // guarded by lock
    private final List<DomainShadow> shadows = new ArrayList<>();
    /** (instance, stream, substream) → index of the attached domain's shadow in {@link #shadows}. */
    private final LongLongMap attached = new LongLongMap();
    /** (instance, stream) → index in {@link #streamDomains}: every shadow attached to the stream or a substream. */
    private final LongLongMap streamLists = new LongLongMap();
    private final List<StreamDomains> streamDomains = new ArrayList<>();
    /** Physical page → sequence of the last heap free that covered it. */
    private final LongLongMap freedPages = new LongLongMap();
    private final long[] freePa = new long[FREES];
    private final long[] freeBytes = new long[FREES];
    private final long[] freeSeq = new long[FREES];
    private int freeNext;
    private long sequence;
    private long reportSequence;
    private final ArrayDeque<SanitizerReport> log = new ArrayDeque<>();
    private final long[][] counts;
    /** Domains an outside driver feeds ({@code Driver.SanitizerFeed}), by the feeder's id; guarded by lock. */
    private final java.util.Map<Long, DomainShadow> fed = new java.util.HashMap<>();
    /** Fed domain ids created while the sanitizer was off: their events are ignored; guarded by lock. */
    private final java.util.Set<Long> fedIgnored = new java.util.HashSet<>();
    /** The translation of the chunk being checked (provenance of its report); set and cleared under lock. */
    private Translation serving;
    /** Whether the chunk being checked is a translated (ATS) request; set and cleared under lock. */
    private boolean atsChunk;

    /**
     * A sanitizer for the instances {@code instances} (the machine's, in order) that checks DMA of {@code dma}
     * once enabled.
     */
    public Sanitizer(DmaEngine dma, List<String> instances) {
        this.dma = dma;
        this.instances = instances.toArray(new String[0]);
        this.counts = new long[this.instances.length][KINDS.length];
    }

    /** Switches checking on or off. Domains are shadowed only if tracked while on. */
    public void enable(boolean on) {
        synchronized (lock) {
            enabled = on;
            dma.checker(on ? this : null);
        }
    }

    public boolean isEnabled() {
        return enabled;
    }

    /**
     * Starts shadowing {@code domain} (a new, empty domain) when the sanitizer is on; {@code parent} is a nested
     * domain's stage-2 parent, else null. Does nothing when off, or when the domain has an observer already.
     */
    public void track(IommuDomain domain, IommuDomain parent) {
        synchronized (lock) {
            if (!enabled || domain.mappingObserver() != null) {
                return;
            }
            DomainShadow p = parent == null ? null : shadowOf(parent);
            DomainShadow s = new DomainShadow(this, domain, p, shadows.size());
            shadows.add(s);
            domain.mappingObserver(s);
        }
    }

    private DomainShadow shadowOf(IommuDomain d) {
        return d.mappingObserver() instanceof DomainShadow s && s.owner == this ? s : null;
    }

    void forget(DomainShadow s) {
        synchronized (lock) {
            shadows.set(s.index, null);
        }
    }

    long nextSequence() {
        return ++sequence;
    }

    long lastSequence() {
        return sequence;
    }

    private int instanceIndex(String name) {
        for (int i = 0; i < instances.length; i++) {
            if (instances[i].equals(name)) {
                return i;
            }
        }
        return -1;
    }

    private static long key(int inst, int sid, int ssid) {
        return ((long) inst << 56) | ((long) ((ssid + 1) & 0xFF_FFFF) << 32) | Integer.toUnsignedLong(sid);
    }

    /**
     * The shadows one stream's translations come from: its whole-stream domain's and its substreams' (an index of
     * {@link #shadows} once per attachment). A translated (ATS) request carries no substream the SMMU checks, so
     * any of them may have given the device its address.
     */
    private static final class StreamDomains {
        int[] shadows = new int[4];
        int n;

        void add(int index) {
            if (n == shadows.length) {
                shadows = java.util.Arrays.copyOf(shadows, n * 2);
            }
            shadows[n++] = index;
        }

        void remove(int index) {
            for (int i = 0; i < n; i++) {
                if (shadows[i] == index) {
                    shadows[i] = shadows[--n];
                    return;
                }
            }
        }
    }

    /** Stream {@code sid} (substream {@code ssid}, -1: whole) of instance {@code inst} is now on {@code s} or none. */
    private void attach(int inst, int sid, int ssid, DomainShadow s) {
        long k = key(inst, sid, ssid);
        long old = attached.get(k);
        long sk = ((long) inst << 32) | Integer.toUnsignedLong(sid);
        long list = streamLists.get(sk);
        if (old != LongLongMap.MISSING && list != LongLongMap.MISSING) {
            streamDomains.get((int) list).remove((int) old);
        }
        if (s == null) {
            attached.remove(k);
            return;
        }
        attached.put(k, s.index);
        if (list == LongLongMap.MISSING) {
            list = streamDomains.size();
            streamDomains.add(new StreamDomains());
            streamLists.put(sk, list);
        }
        streamDomains.get((int) list).add(s.index);
    }

    // ------------------------------------------------------------------ the feed of an outside driver

    /**
     * A domain an outside driver created ({@code id} its own, non-zero; {@code parent} a nested domain's fed
     * stage-2 parent, or 0): shadowed from now on if the sanitizer is on, its events ignored otherwise.
     *
     * @throws IllegalArgumentException for id 0 or an id that is live already
     */
    public void feedDomain(long id, String name, boolean lazy, long flushTimeoutNanos, long parent) {
        synchronized (lock) {
            if (id == 0) {
                throw new IllegalArgumentException("domain.domain: 0 means no domain; give a non-zero id");
            }
            if (fed.containsKey(id) || fedIgnored.contains(id)) {
                throw new IllegalArgumentException("domain.domain: id " + id + " is live already (destroy it first)");
            }
            DomainShadow p = parent == 0 ? null : fedShadow(parent, 0, "domain.parent");
            if (!enabled || parent != 0 && p == null) {
                fedIgnored.add(id);
                return;
            }
            DomainShadow s = new DomainShadow(this, null, new DomainShadow.Fed(name, lazy, flushTimeoutNanos), p,
                    shadows.size());
            shadows.add(s);
            fed.put(id, s);
        }
    }

    /**
     * The shadow of fed domain {@code id} with its clock moved to {@code clock}, or null when its events are
     * ignored (made while the sanitizer was off).
     *
     * @throws java.util.NoSuchElementException when the feed never created it (or destroyed it)
     */
    private DomainShadow fedShadow(long id, long clock, String field) {
        DomainShadow s = fed.get(id);
        if (s == null) {
            if (fedIgnored.contains(id)) {
                return null;
            }
            throw new java.util.NoSuchElementException(field + ": domain " + id + " was not created by the feed");
        }
        DomainShadow.Fed v = (DomainShadow.Fed) s.view;
        if (clock > v.clock) {
            v.clock = clock;
        }
        return s;
    }

    /** The fed domain mapped {@code [iova, iova + size)} to {@code pa}. */
    public void feedMapped(long id, long iova, long pa, long size, long clock) {
        synchronized (lock) {
            DomainShadow s = fedShadow(id, clock, "mapped.domain");
            if (s != null) {
                s.mapped(null, iova, pa, size, 0);
            }
        }
    }

    /** The fed domain unmapped {@code [iova, iova + size)} (strict: invalidated; lazy: queued). */
    public void feedUnmapped(long id, long iova, long size, long clock) {
        synchronized (lock) {
            DomainShadow s = fedShadow(id, clock, "unmapped.domain");
            if (s != null) {
                s.unmapped(null, iova, size);
            }
        }
    }

    /** A full flush of the fed domain is starting ({@code flushed}: it completed). */
    public void feedFlush(long id, boolean flushed) {
        synchronized (lock) {
            DomainShadow s = fedShadow(id, 0, flushed ? "flushed" : "flush_starting");
            if (s == null) {
                return;
            }
            if (flushed) {
                s.flushed(null);
            } else {
                s.flushStarting(null);
            }
        }
    }

    /** The fed domain was destroyed: its id may be used again. */
    public void feedDestroyed(long id) {
        synchronized (lock) {
            if (fedIgnored.remove(id)) {
                return;
            }
            DomainShadow s = fedShadow(id, 0, "destroyed");
            fed.remove(id);
            forget(s); // streams still attached to it are no longer checked
        }
    }

    /** Stream {@code sid} (substream {@code ssid}, -1: whole) of {@code iommu} is now on fed {@code id} (0: none). */
    public void feedAttached(String iommu, int sid, int ssid, long id) {
        synchronized (lock) {
            int inst = instanceIndex(iommu);
            if (inst < 0) {
                throw new java.util.NoSuchElementException("attached.iommu: iommu '" + iommu + "' not found");
            }
            attach(inst, sid, ssid, id == 0 ? null : fedShadow(id, 0, "attached.domain"));
        }
    }

    // ------------------------------------------------------------------ listeners

    @Override
    public void streamChanged(String iommu, int streamId, int substreamId, IommuDomain domain) {
        synchronized (lock) {
            int inst = instanceIndex(iommu);
            if (inst < 0) {
                return;
            }
            attach(inst, streamId, substreamId, domain == null ? null : shadowOf(domain));
        }
    }

    @Override
    public void freed(long pa, long bytes) {
        if (!enabled) {
            return;
        }
        synchronized (lock) {
            long seq = nextSequence();
            long last = (pa + bytes - 1) >>> PAGE_SHIFT;
            for (long p = pa >>> PAGE_SHIFT; p <= last; p++) {
                freedPages.put(p, seq);
            }
            int k = freeNext;
            freePa[k] = pa;
            freeBytes[k] = bytes;
            freeSeq[k] = seq;
            freeNext = (k + 1) % FREES;
        }
    }

    // ------------------------------------------------------------------ the check

    @Override
    public void check(IommuDevice device, int streamId, int substreamId, long iova, long pa, long len,
            boolean write, boolean translated, Translation how) {
        synchronized (lock) {
            serving = how;
            int inst = instanceIndex(device.name());
            if (inst < 0) {
                return;
            }
            if (translated) {
                atsChunk = true;
                checkTranslated(inst, streamId, substreamId, pa, len, write);
                atsChunk = false;
                serving = null;
                return;
            }
            long idx = substreamId >= 0 ? attached.get(key(inst, streamId, substreamId)) : LongLongMap.MISSING;
            if (idx == LongLongMap.MISSING) {
                idx = attached.get(key(inst, streamId, -1));
            }
            if (idx == LongLongMap.MISSING) {
                return;
            }
            DomainShadow s = shadows.get((int) idx);
            if (s != null) {
                s.check(inst, streamId, substreamId, iova, pa, len, write);
            }
            serving = null;
        }
    }

    /**
     * A translated (ATS) request of stream {@code sid}: {@code len} bytes at physical {@code pa}, which the SMMU
     * checked against the STE only (EATS), never against a CD, so a translation any domain of the stream gave is
     * legal: each 4 KiB page must be reached by a live mapping of the whole-stream domain or of a substream's
     * domain (one hash lookup per page and domain). A page none reaches is traced to the newest unmap whose output
     * covered it: that unmap's invalidation completed → {@link SanitizerReport.Kind#TRANSLATED_STALE_ATC} (the
     * device kept an ATC entry it was told to drop); a LAZY unmap not flushed yet is allowed within the domain's
     * bound, else {@link SanitizerReport.Kind#LAZY_BOUND_EXCEEDED}; no unmap known →
     * {@link SanitizerReport.Kind#TRANSLATED_UNMAPPED_MEMORY}. A stream with no tracked domain is not checked.
     */
    private void checkTranslated(int inst, int sid, int ssid, long pa, long len, boolean write) {
        long list = streamLists.get(((long) inst << 32) | Integer.toUnsignedLong(sid));
        if (list == LongLongMap.MISSING) {
            return;
        }
        StreamDomains sd = streamDomains.get((int) list);
        DomainShadow any = null;
        for (int i = 0; i < sd.n && any == null; i++) {
            any = shadows.get(sd.shadows[i]);
        }
        if (any == null) {
            return;
        }
        long lastPage = (pa + len - 1) >>> PAGE_SHIFT;
        pages:
        for (long p = pa >>> PAGE_SHIFT; p <= lastPage; p++) {
            for (int i = 0; i < sd.n; i++) {
                DomainShadow s = shadows.get(sd.shadows[i]);
                if (s != null && s.reachesPage(p)) {
                    continue pages;
                }
            }
            long at = p == pa >>> PAGE_SHIFT ? pa : p << PAGE_SHIFT;
            DomainShadow cause = null;
            int k = -1;
            for (int i = 0; i < sd.n; i++) {
                DomainShadow s = shadows.get(sd.shadows[i]);
                int g = s == null ? -1 : s.findGoneByPage(p);
                if (g >= 0 && (cause == null || s.physical().goneSeq(g) > cause.physical().goneSeq(k))) {
                    cause = s;
                    k = g;
                }
            }
            if (cause == null) {
                report(SanitizerReport.Kind.TRANSLATED_UNMAPPED_MEMORY, inst, sid, ssid, at, at, write, any, 0, -1, -1,
                        0, false, -1);
                return;
            }
            DomainShadow g = cause.physical();
            long iova = g.goneFirst(k) + (at - g.gonePa(k));
            if (g.goneFlushed(k)) {
                report(SanitizerReport.Kind.TRANSLATED_STALE_ATC, inst, sid, ssid, iova, at, write, cause,
                        g.goneSeq(k), g.goneFirst(k), g.goneLast(k), g.goneNanos(k), true, g.gonePa(k));
                return;
            }
            if (g.view.lazy() && g.view.clockNanos() - g.goneNanos(k) > g.view.flushQueueTimeoutNanos()) {
                report(SanitizerReport.Kind.LAZY_BOUND_EXCEEDED, inst, sid, ssid, iova, at, write, cause,
                        g.goneSeq(k), g.goneFirst(k), g.goneLast(k), g.goneNanos(k), false, g.gonePa(k));
                return;
            }
            // a lazy unmap within its flush window: the ATC may still hold it legally
        }
    }

    /** What served the chunk being checked, for a report: the IOTLB entry, a walk, or not known. */
    private String servedBy(String instance) {
        Translation t = serving;
        if (t == null || t.source() == Translation.Source.UNKNOWN) {
            return instance + " translation (the device did not say what served it)";
        }
        if (t.source() == Translation.Source.WALK) {
            return instance + " table walk: the page table in memory still gave this translation";
        }
        long size = t.entrySizeLg2() >= 63 ? Long.MIN_VALUE : 1L << t.entrySizeLg2();
        return instance + " IOTLB entry for iova [" + Bits.hex(t.entryVa()) + ", " + Bits.hex(t.entryVa() + size - 1)
                + "] (" + org.iommuemu.core.bits.Sizes.format(size) + ") tagged " + (t.entrySubTag() >= 0
                        ? "vmid/did " + t.entryTag() + " asid/pasid " + t.entrySubTag() : "vmid/did " + t.entryTag())
                + ": a cached translation that outlived the invalidation that should have removed it";
    }

    /** Rule 4, for a piece of a chunk through a live mapping made at {@code mapSeq}: whether it reported. */
    boolean checkFreed(int inst, int sid, int ssid, long iova, long pa, long len, boolean write, DomainShadow s,
            long mapSeq) {
        if (freedPages.size() == 0) {
            return false;
        }
        long last = (pa + len - 1) >>> PAGE_SHIFT;
        for (long p = pa >>> PAGE_SHIFT; p <= last; p++) {
            long f = freedPages.get(p);
            if (f != LongLongMap.MISSING && f > mapSeq) {
                long first = p << PAGE_SHIFT;
                long blockLast = first + (1L << PAGE_SHIFT) - 1;
                for (int k = 0; k < FREES; k++) {
                    if (freeSeq[k] == f) {
                        first = freePa[k];
                        blockLast = freePa[k] + freeBytes[k] - 1;
                    }
                }
                report(SanitizerReport.Kind.FREED_MEMORY, inst, sid, ssid, iova, pa, write, s, f, first, blockLast,
                        0, true, -1);
                return true;
            }
        }
        return false;
    }

    void report(SanitizerReport.Kind kind, int inst, int sid, int ssid, long iova, long pa, boolean write,
            DomainShadow s, long causeSeq, long causeFirst, long causeLast, long causeNanos, boolean flushed,
            long causePa) {
        String where = instances[inst] + " stream " + Integer.toUnsignedString(sid)
                + (ssid >= 0 ? " substream " + ssid : "") + (atsChunk ? " translated " : " ")
                + (write ? "write" : "read") + " at iova " + Bits.hex(iova) + " -> pa " + Bits.hex(pa) + " (domain '"
                + s.view.name() + "')";
        String why = switch (kind) {
            case STALE_TRANSLATION -> "through a stale translation: iova range [" + Bits.hex(causeFirst) + ", "
                    + Bits.hex(causeLast) + "]" + (causePa >= 0 ? " (pa " + Bits.hex(causePa) + ")" : "")
                    + " was unmapped at sanitizer sequence " + causeSeq + " (domain clock " + causeNanos
                    + " ns) and its invalidation had completed";
            case LAZY_BOUND_EXCEEDED -> "through a lazily unmapped translation older than the flush bound: iova range ["
                    + Bits.hex(causeFirst) + ", " + Bits.hex(causeLast) + "] was unmapped at sequence " + causeSeq
                    + " (domain clock " + causeNanos + " ns), now " + s.view.clockNanos() + " ns, bound "
                    + s.view.flushQueueTimeoutNanos() + " ns, not flushed yet";
            case UNMAPPED_MEMORY -> "to memory no live mapping of the domain reaches"
                    + (causePa >= 0 ? " (the driver mapped this iova to pa " + Bits.hex(causePa) + ")" : "");
            case FREED_MEMORY -> "to freed memory: the heap block [" + Bits.hex(causeFirst) + ", "
                    + Bits.hex(causeLast) + "] was freed at sanitizer sequence " + causeSeq
                    + ", after the mapping was made";
            case TRANSLATED_STALE_ATC -> "a translated (ATS) request to pa " + Bits.hex(pa) + ", which iova range ["
                    + Bits.hex(causeFirst) + ", " + Bits.hex(causeLast) + "] (pa " + Bits.hex(causePa)
                    + ") reached until it was unmapped at sanitizer sequence " + causeSeq + " (domain clock "
                    + causeNanos + " ns) and its invalidation, ATC_INV included, had completed: the device kept an"
                    + " ATC entry it was told to drop";
            case TRANSLATED_UNMAPPED_MEMORY -> "a translated (ATS) request to pa " + Bits.hex(pa) + ", which no live"
                    + " mapping of the stream's domains (whole stream or substream) reaches and no known unmap"
                    + " explains";
        };
        String served = atsChunk ? "the device's ATC (a translated request, passed through by " + instances[inst]
                + " without translation)" : servedBy(instances[inst]);
        SanitizerReport r = new SanitizerReport(++reportSequence, kind, instances[inst], sid, ssid, iova, pa, write,
                s.view.name(), causeSeq, causeFirst, causeLast, causeNanos, flushed,
                served, where + ": " + why + "; served by " + served);
        if (log.size() == LOG) {
            log.removeFirst();
        }
        log.addLast(r);
        counts[inst][kind.ordinal()]++;
    }

    // ------------------------------------------------------------------ results

    /** Reports with a sequence above {@code after}, oldest first (at most the last {@link #LOG}). */
    public List<SanitizerReport> reports(long after) {
        synchronized (lock) {
            List<SanitizerReport> out = new ArrayList<>();
            for (SanitizerReport r : log) {
                if (r.sequence() > after) {
                    out.add(r);
                }
            }
            return out;
        }
    }

    /** Reports made so far (the last report's sequence). */
    public long reportCount() {
        synchronized (lock) {
            return reportSequence;
        }
    }

    /** Reports by kind on instance {@code iommu} (kinds with none left out). */
    public Map<SanitizerReport.Kind, Long> counts(String iommu) {
        synchronized (lock) {
            Map<SanitizerReport.Kind, Long> m = new EnumMap<>(SanitizerReport.Kind.class);
            int inst = instanceIndex(iommu);
            if (inst >= 0) {
                for (SanitizerReport.Kind k : KINDS) {
                    if (counts[inst][k.ordinal()] != 0) {
                        m.put(k, counts[inst][k.ordinal()]);
                    }
                }
            }
            return m;
        }
    }

    /** Reports by kind on every instance. */
    public Map<SanitizerReport.Kind, Long> counts() {
        synchronized (lock) {
            Map<SanitizerReport.Kind, Long> m = new EnumMap<>(SanitizerReport.Kind.class);
            for (long[] c : counts) {
                for (SanitizerReport.Kind k : KINDS) {
                    if (c[k.ordinal()] != 0) {
                        m.merge(k, c[k.ordinal()], Long::sum);
                    }
                }
            }
            return m;
        }
    }
}
