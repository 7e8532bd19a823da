package org.iommuemu.device.scenario;

import java.util.List;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.core.vtd.FaultReason;
import org.iommuemu.device.inject.InjectionKind;
import org.iommuemu.device.vtd.VtdDevice;
import org.iommuemu.proto.v1.CacheStats;
import org.iommuemu.proto.v1.CodeCount;
import org.iommuemu.proto.v1.InstanceStats;

/**
 * The counter names an {@code expect: counter} can name, read from {@link DeviceStats}: {@code translations},
 * {@code faults}, {@code walks}, {@code walk_reads}, {@code mmio_reads}, {@code mmio_writes}, {@code events_lost},
 * {@code global_errors}, {@code interrupts}, {@code sim_time_ns}; {@code commands.OPCODE} (e.g.
 * {@code commands.TLBI_NH_VA}); {@code events.TYPE} (e.g. {@code events.F_TRANSLATION}); and
 * {@code caches.CACHE.FIELD} with CACHE iotlb, config or walk (SMMUv3), iotlb, context, pasid or walk (VT-d) and
 * FIELD hits, misses, inserts, evictions,
 * invalidated (counts), or entries (a gauge); and {@code ats.FIELD} ({@link #ATS}: translation requests, translated
 * requests and ATC invalidations of the instance, docs/ATS.md). Counts are since the run started (the driver's
 * initialisation
 * included when the run is the first to use an instance).
 */
final class Counters {
    static final List<String> PLAIN = List.of("translations", "faults", "walks", "walk_reads", "mmio_reads",
            "mmio_writes", "events_lost", "global_errors", "interrupts", "sim_time_ns");
    static final List<String> CACHES = List.of("iotlb", "config", "walk", "context", "pasid");
    static final List<String> CACHE_FIELDS = List.of("hits", "misses", "inserts", "evictions", "invalidated",
            "entries");
    /** The fields of {@code ats.FIELD}: the instance's {@code InstanceStats.ats}. */
    static final List<String> ATS = List.of("translation_requests", "translated_requests", "invalidations_sent",
            "invalidations_completed", "invalidations_timed_out", "invalidations_without_device");

    private Counters() {}

    /** Throws IllegalArgumentException when {@code name} is not a counter. */
    static void check(String name) {
        if (PLAIN.contains(name)) {
            return;
        }
        String[] p = name.split("\\.", -1);
        if (p.length == 2 && p[0].equals("commands")) {
            for (int op : CommandOp.all()) {
                if (CommandOp.name(op).equals(p[1])) {
                    return;
                }
            }
            for (int code : VtdDevice.commandCodes()) {
                if (VtdDevice.commandName(code).equals(p[1])) {
                    return;
                }
            }
            throw new IllegalArgumentException("counter '" + name + "': '" + p[1] + "' is neither an SMMUv3 command"
                    + " (CMD_SYNC, TLBI_NH_VA, CFGI_STE...) nor a VT-d invalidation (IOTLB_INV, INV_WAIT, CCMD...)");
        }
        if (p.length == 2 && p[0].equals("events")) {
            if (eventType(p[1]) >= 0) {
                return;
            }
            throw new IllegalArgumentException("counter '" + name + "': '" + p[1] + "' is neither an SMMUv3 event"
                    + " type (F_TRANSLATION, F_PERMISSION...) nor a VT-d fault reason (READ, WRITE, SM_WRITE...)");
        }
        if (p.length == 3 && p[0].equals("caches") && CACHES.contains(p[1]) && CACHE_FIELDS.contains(p[2])) {
            return;
        }
        if (p.length == 2 && p[0].equals("ats")) {
            if (ATS.contains(p[1])) {
                return;
            }
            throw new IllegalArgumentException("counter '" + name + "': '" + p[1] + "' is not an ATS counter (one of "
                    + ATS + ")");
        }
        if (p.length == 2 && p[0].equals("injected")) {
            try {
                InjectionKind.parse(p[1]);
                return;
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("counter '" + name + "': " + e.getMessage());
            }
        }
        throw new IllegalArgumentException("unknown counter '" + name + "' (one of " + PLAIN
                + ", commands.OPCODE, events.TYPE, injected.KIND, caches." + CACHES + "." + CACHE_FIELDS + ", ats."
                + ATS + ")");
    }

    /** The code of an SMMUv3 event type or a VT-d fault reason named {@code name}, or -1. */
    static int eventType(String name) {
        int t = smmuEventType(name);
        return t >= 0 ? t : FaultReason.byName(name);
    }

    /** The code of the SMMUv3 event type named {@code name}, or -1. */
    static int smmuEventType(String name) {
        for (int t : EventType.all()) {
            if (EventType.name(t).equals(name)) {
                return t;
            }
        }
        return -1;
    }

    /** The value of counter {@code name} (checked by {@link #check}) in {@code s}; 0 for what was never seen. */
    static long value(InstanceStats s, String name) {
        switch (name) {
            case "translations": return s.getTranslations();
            case "faults": return s.getFaults();
            case "walks": return s.getWalks();
            case "walk_reads": return s.getWalkReads();
            case "mmio_reads": return s.getMmioReads();
            case "mmio_writes": return s.getMmioWrites();
            case "events_lost": return s.getEventsLost();
            case "global_errors": return s.getGlobalErrors();
            case "interrupts": return s.getInterrupts();
            case "sim_time_ns": return s.getSimTimeNs();
            default: break;
        }
        String[] p = name.split("\\.");
        if (p[0].equals("ats")) {
            org.iommuemu.proto.v1.AtsStats a = s.getAts();
            return switch (p[1]) {
                case "translation_requests" -> a.getTranslationRequests();
                case "translated_requests" -> a.getTranslatedRequests();
                case "invalidations_sent" -> a.getInvalidationsSent();
                case "invalidations_completed" -> a.getInvalidationsCompleted();
                case "invalidations_timed_out" -> a.getInvalidationsTimedOut();
                default -> a.getInvalidationsWithoutDevice();
            };
        }
        if (p[0].equals("injected")) {
            String kind = InjectionKind.parse(p[1]).name();
            return s.getInjectedFaultsList().stream().filter(c -> c.getName().equals(kind))
                    .mapToLong(CodeCount::getCount).sum();
        }
        if (p[0].equals("commands") || p[0].equals("events")) {
            List<CodeCount> counts = p[0].equals("commands") ? s.getCommandsList() : s.getEventsList();
            return counts.stream().filter(c -> c.getName().equals(p[1])).mapToLong(CodeCount::getCount).sum();
        }
        for (CacheStats c : s.getCachesList()) {
            if (c.getCache().equals(p[1])) {
                return switch (p[2]) {
                    case "hits" -> c.getHits();
                    case "misses" -> c.getMisses();
                    case "inserts" -> c.getInserts();
                    case "evictions" -> c.getEvictions();
                    case "invalidated" -> c.getInvalidated();
                    default -> c.getEntries();
                };
            }
        }
        return 0;
    }

    /**
     * Counter {@code name} since {@code base} was taken: the difference for counts, the value now for the one gauge
     * ({@code caches.CACHE.entries}).
     */
    static long since(InstanceStats base, InstanceStats now, String name) {
        long v = value(now, name);
        return name.endsWith(".entries") ? v : v - value(base, name);
    }
}
