package org.iommuemu.device.machine;

import java.util.List;

/**
 * A snapshot of what one IOMMU instance did, for {@code Telemetry.Stats}. Every count only grows.
 *
 * @param translations translations requested by DMA (one per translated chunk)
 * @param faults translations that ended in a fault or an abort
 * @param caches per-cache counters ("iotlb", "config", "walk")
 * @param walks page-table walks started
 * @param walkReads descriptor reads walks made from memory (what a walk cache answered is not counted)
 * @param mmioReads register reads
 * @param mmioWrites register writes
 * @param commands commands consumed, by opcode (only those seen)
 * @param events event / fault records written, by type (only those seen)
 * @param eventsLost records that could not be written (queue full or disabled)
 * @param globalErrors global errors raised
 * @param simTimeNs simulated nanoseconds charged by the cost model
 * @param interrupts interrupts and MSI writes raised
 */
public record DeviceStats(long translations, long faults, List<CacheStat> caches, long walks, long walkReads,
        long mmioReads, long mmioWrites, List<CodeCount> commands, List<CodeCount> events, long eventsLost,
        long globalErrors, long simTimeNs, long interrupts) {

    public DeviceStats {
        caches = List.copyOf(caches);
        commands = List.copyOf(commands);
        events = List.copyOf(events);
    }

    /** Counters of one cache. */
    public record CacheStat(String cache, long hits, long misses, long inserts, long evictions, long invalidated,
            long entries, long capacity) {}

    /** A count by architected code, with the code's name in the specification. */
    public record CodeCount(int code, String name, long count) {}

    /** All zero: a device that counts nothing yet. */
    public static DeviceStats none() {
        return new DeviceStats(0, 0, List.of(), 0, 0, 0, 0, List.of(), List.of(), 0, 0, 0, 0);
    }
}
