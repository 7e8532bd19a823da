package org.iommuemu.device.config;

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
 *
 * <p>Values are checked as they are read (so an error names its line), keys are matched in file order (so an
 * unknown key is reported where it stands), and required keys are checked at the end of their section.
 */
public final class ServeConfig {
    private String bind;
    private Integer port;
    private List<Ram> ram;
    private List<Iommu> iommus;
    private LimitsSection limits;

    public String bind() {
        return bind;
    }

    public Integer port() {
        return port;
    }

    @JsonProperty("bind")
    void setBind(String value) {
        bind = value;
    }

    @JsonProperty("port")
    void setPort(int value) {
        if (value < 0 || value > 65535) {
            throw new IllegalArgumentException("port " + value + " is not a TCP port (0 to 65535)");
        }
        port = value;
    }

    @JsonProperty("ram")
    void setRam(List<Ram> value) {
        ram = value;
    }

    @JsonProperty("iommus")
    void setIommus(List<Iommu> value) {
        iommus = value;
    }

    @JsonProperty("limits")
    void setLimits(LimitsSection value) {
        limits = value;
    }

    /** A RAM region: {@code size} is required, {@code base} defaults to 0x8000_0000. */
    public static final class Ram {
        private long base = SparseRam.DEFAULT_RAM_BASE;
        private Long size;

        @JsonProperty("base")
        void setBase(Object value) {
            base = number(value, "base");
        }

        @JsonProperty("size")
        void setSize(Object value) {
            size = number(value, "size");
        }
    }

    /** An IOMMU instance: {@code name} and {@code kind} (smmuv3 or vtd) are required. */
    public static final class Iommu {
        private String name;
        private IommuType kind;

        @JsonProperty("name")
        void setName(String value) {
            name = value;
        }

        @JsonProperty("kind")
        void setKind(String value) {
            kind = IommuType.parse(value);
        }
    }

    /** Bus limits; omitted keys keep their defaults. */
    public static final class LimitsSection {
        private Long maxDmaLength;
        private Long maxMemAccessLength;
        private Integer maxSessions;
        private Integer maxTransferInFlight;

        @JsonProperty("max_dma_length")
        void setMaxDmaLength(Object value) {
            maxDmaLength = number(value, "max_dma_length");
        }

        @JsonProperty("max_mem_access_length")
        void setMaxMemAccessLength(Object value) {
            maxMemAccessLength = number(value, "max_mem_access_length");
        }

        @JsonProperty("max_sessions")
        void setMaxSessions(int value) {
            maxSessions = value;
        }

        @JsonProperty("max_transfer_in_flight")
        void setMaxTransferInFlight(int value) {
            maxTransferInFlight = value;
        }

        Limits apply(Limits base) {
            long dma = maxDmaLength == null ? base.maxDmaLength() : maxDmaLength;
            long mem = maxMemAccessLength == null ? base.maxMemAccessLength() : maxMemAccessLength;
            int sessions = maxSessions == null ? base.maxSessions() : maxSessions;
            int inFlight = maxTransferInFlight == null ? base.maxTransferInFlight() : maxTransferInFlight;
            return new Limits(dma, Math.max(dma, mem) + Limits.MESSAGE_OVERHEAD, mem, sessions, inFlight);
        }
    }

    /** Reads a non-negative number or a size string ("4GiB", "0x1000"). */
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
            try {
                return Sizes.parse(s);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(field + ": " + e.getMessage(), e);
            }
        }
        throw new IllegalArgumentException(field + " must be a number or a size like 4GiB, got " + value);
    }

    /**
     * The machine this file describes, starting from {@code base} for whatever it leaves out.
     *
     * @throws ConfigException when a required key is missing
     * @throws IllegalArgumentException when the values do not make a valid machine (overlapping RAM, duplicate
     *     names...)
     */
    public MachineConfig apply(MachineConfig base) {
        MachineConfig c = base;
        if (ram != null) {
            List<RamRegion> regions = new ArrayList<>();
            for (int i = 0; i < ram.size(); i++) {
                Ram r = ram.get(i);
                if (r == null || r.size == null) {
                    throw new ConfigException("ram[" + i + "]: size is required");
                }
                regions.add(new RamRegion(r.base, r.size));
            }
            c = c.withRam(regions);
        }
        if (iommus != null) {
            List<IommuSpec> specs = new ArrayList<>();
            for (int i = 0; i < iommus.size(); i++) {
                Iommu m = iommus.get(i);
                if (m == null || m.name == null || m.kind == null) {
                    throw new ConfigException("iommus[" + i + "]: name and kind are required");
                }
                specs.add(new IommuSpec(m.name, m.kind));
            }
            c = c.withIommus(specs);
        }
        if (limits != null) {
            c = c.withLimits(limits.apply(c.limits()));
        }
        return c;
    }
}
