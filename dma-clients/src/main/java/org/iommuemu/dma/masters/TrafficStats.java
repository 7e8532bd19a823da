package org.iommuemu.dma.masters;

import java.util.Map;
import org.iommuemu.proto.v1.FaultKind;

/**
 * What a {@link TrafficGenerator} run did.
 *
 * @param ops requests answered (reads + writes, faulted ones included; rejected ones not)
 * @param reads read requests answered
 * @param writes write requests answered
 * @param bytes bytes moved: the full size of each request that succeeded plus the bytes done before each fault
 * @param faults requests that faulted
 * @param faultsByKind faults by the bus's fault kind (kinds with none are absent)
 * @param rejected requests the bus rejected with an error status (a bad parameter, a detached session)
 * @param elapsedNanos wall time from the first submission to the last reply
 */
public record TrafficStats(long ops, long reads, long writes, long bytes, long faults,
        Map<FaultKind, Long> faultsByKind, long rejected, long elapsedNanos) {
    public TrafficStats {
        faultsByKind = Map.copyOf(faultsByKind);
    }

    /** Answered requests per second of wall time. */
    public double opsPerSecond() {
        return elapsedNanos == 0 ? 0 : ops * 1e9 / elapsedNanos;
    }

    /** Bytes moved per second of wall time, in MB (10^6 bytes). */
    public double megabytesPerSecond() {
        return elapsedNanos == 0 ? 0 : bytes * 1e3 / elapsedNanos;
    }

    @Override
    public String toString() {
        return String.format("%d ops (%d reads, %d writes), %d bytes, %d faults %s, %d rejected, %.0f ops/s, %.1f MB/s",
                ops, reads, writes, bytes, faults, faultsByKind, rejected, opsPerSecond(), megabytesPerSecond());
    }
}
