package org.iommuemu.device.config;

import com.fasterxml.jackson.annotation.JsonCreator;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.bits.Sizes;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.Limits;
import org.iommuemu.device.machine.MachineConfig;

/**
 * The file given to {@code iommu-emu serve --config}. Every key is optional; command-line flags override
 * it. Sizes and addresses are numbers or strings such as {@code 4GiB} and {@code 0x8000_0000}.
 *
 * <pre>
 * bind: 127.0.0.1
 * port: 7400
 * ram:
 *   - base: 0x80000000
 *     size: 4GiB
 * iommus:
 *   - name: smmu0
 *     kind: smmuv3
 *   - name: dmar0
 *     kind: vtd
 * limits:
 *   max_dma_length: 1MiB
 *   max_mem_access_length: 1MiB
 *   max_sessions: 1024
 *   max_transfer_in_flight: 128
 * </pre>
 */
public record ServeConfig(String bind, Integer port, List<Ram> ram, List<Iommu> iommus, LimitsConfig limits) {

    /** A RAM region. */
    public record Ram(long base, long size) {
        @JsonCreator
        public Ram(@JsonProperty(value = "base") Object base, @JsonProperty(value = "size", required = true) Object size) {
            this(base == null ? SparseRam.DEFAULT_RAM_BASE : number(base, "base"), number(size, "size"));
        }
    }

    /** An IOMMU instance. */
    public record Iommu(String name, IommuType kind) {
        @JsonCreator
        public Iommu(@JsonProperty(value = "name", required = true) String name,
                @JsonProperty(value = "kind", required = true) String kind) {
            this(name, IommuType.parse(kind));
        }
    }

    /** Bus limits; omitted keys keep their defaults. */
    public record LimitsConfig(Object maxDmaLength, Object maxMemAccessLength, Integer maxSessions,
            Integer maxTransferInFlight) {
        Limits apply(Limits base) {
            long dma = maxDmaLength == null ? base.maxDmaLength() : number(maxDmaLength, "max_dma_length");
            long mem = maxMemAccessLength == null ? base.maxMemAccessLength()
                    : number(maxMemAccessLength, "max_mem_access_length");
            int sessions = maxSessions == null ? base.maxSessions() : maxSessions;
            int inFlight = maxTransferInFlight == null ? base.maxTransferInFlight() : maxTransferInFlight;
            long msg = Math.max(dma, mem) + Limits.MESSAGE_OVERHEAD;
            return new Limits(dma, msg, mem, sessions, inFlight);
        }
    }

    /** Reads a number or a size string ("4GiB", "0x1000"). */
    static long number(Object value, String field) {
        if (value instanceof java.math.BigInteger big) {
            if (big.signum() < 0 || big.bitLength() > 64) {
                throw new IllegalArgumentException(field + " " + value + " is not an unsigned 64-bit number");
            }
            return big.longValue();
        }
        if (value instanceof Integer || value instanceof Long) {
            long v = ((Number) value).longValue();
            if (v < 0) {
                throw new IllegalArgumentException(field + " must not be negative, got " + value);
            }
            return v;
        }
        if (value instanceof String s) {
            return Sizes.parse(s);
        }
        throw new IllegalArgumentException(field + " must be a number or a size like 4GiB, got " + value);
    }

    /** The machine this file describes, starting from {@code base} for whatever it leaves out. */
    public MachineConfig apply(MachineConfig base) {
        MachineConfig c = base;
        if (ram != null) {
            List<RamRegion> regions = new ArrayList<>();
            for (Ram r : ram) {
                regions.add(new RamRegion(r.base(), r.size()));
            }
            c = c.withRam(regions);
        }
        if (iommus != null) {
            List<IommuSpec> specs = new ArrayList<>();
            for (Iommu i : iommus) {
                specs.add(new IommuSpec(i.name(), i.kind()));
            }
            c = c.withIommus(specs);
        }
        if (limits != null) {
            c = c.withLimits(limits.apply(c.limits()));
        }
        return c;
    }
}
