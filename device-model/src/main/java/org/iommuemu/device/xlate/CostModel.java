package org.iommuemu.device.xlate;

/**
 * What each kind of hardware work costs in simulated nanoseconds, so that scenarios can compare driver
 * strategies (per-page against range invalidation, strict against lazy flushing) in simulated time as well
 * as wall time (DESIGN.md). {@link XlateStats} charges these costs to a {@link SimClock} as it counts.
 *
 * <p>The {@link #DEFAULTS} are round numbers of the right order for an IOMMU integrated in an SoC or root
 * complex, not measurements of a part:
 * <ul>
 *   <li>{@code mmioAccessNs} 100: an uncached register access from a CPU crosses the interconnect to the
 *       IOMMU and back (a PCIe round trip would be several times more; integrated IOMMUs are closer).
 *   <li>{@code tableReadNs} 80: one fetch by the walker or the configuration fetcher (a descriptor, an STE,
 *       a CD, a context or PASID entry) from DRAM: DRAM load-to-use latency, the walker's reads rarely
 *       hitting a CPU cache.
 *   <li>{@code tableWriteNs} 100: an atomic descriptor update (hardware access/dirty flag update): a read
 *       and a write to DRAM.
 *   <li>{@code queueReadNs} 80: one command-queue / invalidation-queue entry fetched from memory, by the
 *       same path as a table read.
 *   <li>{@code cacheHitNs} 2: a lookup that hits (a couple of cycles of a TLB pipeline near 1 GHz).
 *   <li>{@code cacheMissNs} 5: a lookup that misses, before the walk; the walk's reads are charged as
 *       table reads.
 *   <li>{@code commandNs} 50: decoding one command or invalidation descriptor and applying it to the caches.
 *   <li>{@code syncNs} 200: completing a CMD_SYNC / invalidation wait: draining the translations in flight
 *       and ordering the completion after every earlier command (its MSI or memory write is charged apart).
 *   <li>{@code eventWriteNs} 100: writing an event record / fault record to memory and publishing it.
 *   <li>{@code msiWriteNs} 100: one posted MSI (or completion-status) write.
 * </ul>
 *
 * @param mmioAccessNs one register read or write
 * @param tableReadNs  one table or configuration-structure read
 * @param tableWriteNs one descriptor update written back by the IOMMU
 * @param queueReadNs  one command / invalidation-queue entry read
 * @param cacheHitNs   one cache lookup that hits
 * @param cacheMissNs  one cache lookup that misses
 * @param commandNs    one command processed
 * @param syncNs       one CMD_SYNC / invalidation-wait completion
 * @param eventWriteNs one event or fault record written
 * @param msiWriteNs   one MSI write
 */
public record CostModel(
        long mmioAccessNs,
        long tableReadNs,
        long tableWriteNs,
        long queueReadNs,
        long cacheHitNs,
        long cacheMissNs,
        long commandNs,
        long syncNs,
        long eventWriteNs,
        long msiWriteNs) {

    /** The documented defaults. */
    public static final CostModel DEFAULTS = new CostModel(100, 80, 100, 80, 2, 5, 50, 200, 100, 100);

    /** Every cost zero: counting without simulated time. */
    public static final CostModel FREE = new CostModel(0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    /** @throws IllegalArgumentException if a cost is negative */
    public CostModel {
        long[] all = {mmioAccessNs, tableReadNs, tableWriteNs, queueReadNs, cacheHitNs, cacheMissNs, commandNs,
            syncNs, eventWriteNs, msiWriteNs};
        for (long cost : all) {
            if (cost < 0) {
                throw new IllegalArgumentException("costs must be >= 0 ns: " + cost);
            }
        }
    }
}
