package org.iommuemu.device.scenario;

import java.util.List;
import org.iommuemu.core.smmuv3.CommandOp;
import org.iommuemu.core.smmuv3.EventType;
import org.iommuemu.device.machine.DeviceStats;

/**
 * The counter names an {@code expect: counter} can name, read from {@link DeviceStats}: {@code translations},
 * {@code faults}, {@code walks}, {@code walk_reads}, {@code mmio_reads}, {@code mmio_writes}, {@code events_lost},
 * {@code global_errors}, {@code interrupts}, {@code sim_time_ns}; {@code commands.OPCODE} (e.g.
 * {@code commands.TLBI_NH_VA}); {@code events.TYPE} (e.g. {@code events.F_TRANSLATION}); and
 * {@code caches.CACHE.FIELD} with CACHE iotlb, config or walk and FIELD hits, misses, inserts, evictions,
 * invalidated or entries. Counts are since the machine started (the driver's initialisation included).
 */
final class Counters {
    static final List<String> PLAIN = List.of("translations", "faults", "walks", "walk_reads", "mmio_reads",
            "mmio_writes", "events_lost", "global_errors", "interrupts", "sim_time_ns");
    static final List<String> CACHES = List.of("iotlb", "config", "walk");
    static final List<String> CACHE_FIELDS = List.of("hits", "misses", "inserts", "evictions", "invalidated",
            "entries");

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
            throw new IllegalArgumentException("counter '" + name + "': '" + p[1] + "' is not an SMMUv3 command"
                    + " (CMD_SYNC, TLBI_NH_VA, CFGI_STE...)");
        }
        if (p.length == 2 && p[0].equals("events")) {
            for (int t : EventType.all()) {
                if (EventType.name(t).equals(p[1])) {
                    return;
                }
            }
            throw new IllegalArgumentException("counter '" + name + "': '" + p[1] + "' is not an SMMUv3 event"
                    + " type (F_TRANSLATION, F_PERMISSION...)");
        }
        if (p.length == 3 && p[0].equals("caches") && CACHES.contains(p[1]) && CACHE_FIELDS.contains(p[2])) {
            return;
        }
        throw new IllegalArgumentException("unknown counter '" + name + "' (one of " + PLAIN
                + ", commands.OPCODE, events.TYPE, caches." + CACHES + "." + CACHE_FIELDS + ")");
    }

    /** The value of counter {@code name} (checked by {@link #check}) in {@code s}; 0 for what was never seen. */
    static long value(DeviceStats s, String name) {
        switch (name) {
            case "translations": return s.translations();
            case "faults": return s.faults();
            case "walks": return s.walks();
            case "walk_reads": return s.walkReads();
            case "mmio_reads": return s.mmioReads();
            case "mmio_writes": return s.mmioWrites();
            case "events_lost": return s.eventsLost();
            case "global_errors": return s.globalErrors();
            case "interrupts": return s.interrupts();
            case "sim_time_ns": return s.simTimeNs();
            default: break;
        }
        String[] p = name.split("\\.");
        if (p[0].equals("commands") || p[0].equals("events")) {
            List<DeviceStats.CodeCount> counts = p[0].equals("commands") ? s.commands() : s.events();
            return counts.stream().filter(c -> c.name().equals(p[1])).mapToLong(DeviceStats.CodeCount::count).sum();
        }
        for (DeviceStats.CacheStat c : s.caches()) {
            if (c.cache().equals(p[1])) {
                return switch (p[2]) {
                    case "hits" -> c.hits();
                    case "misses" -> c.misses();
                    case "inserts" -> c.inserts();
                    case "evictions" -> c.evictions();
                    case "invalidated" -> c.invalidated();
                    default -> c.entries();
                };
            }
        }
        return 0;
    }
}
