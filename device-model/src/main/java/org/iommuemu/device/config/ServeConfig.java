package org.iommuemu.device.config;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.iommuemu.core.bits.Sizes;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.IommuType;
import org.iommuemu.device.machine.Limits;
import org.iommuemu.device.machine.MachineConfig;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.device.trace.Tracer;
import org.iommuemu.device.vtd.VtdConfig;
import org.iommuemu.device.xlate.CostModel;

/**
 * The file given to {@code iommu-emu serve --config}. Every key is optional; command-line flags override
 * it. Sizes and addresses are numbers or strings such as {@code 4GiB} and {@code 0x8000_0000}.
 *
 * <pre>
 * bind: 127.0.0.1
 * port: 7400
 * trace_buffer: 65536   # records in the trace ring (a power of two, 16 to 4194304)
 * ram:
 *   - base: 0x80000000
 *     size: 4GiB
 * iommus:
 *   - name: smmu0
 *     kind: smmuv3
 *     smmuv3:            # optional: what this SMMUv3 implements (SmmuV3Section)
 *       stage2: false
 *       range_invalidation: false
 *       cost:
 *         sync_ns: 500
 *   - name: dmar0
 *     kind: vtd
 *     vtd:               # optional: what this VT-d unit implements (VtdSection)
 *       scalable_mode: false
 *       caching_mode: true
 * limits:
 *   max_dma_length: 1MiB
 *   max_mem_access_length: 1MiB
 *   max_sessions: 1024
 *   max_transfer_in_flight: 128
 *   max_sessions_per_connection: 256
 *   max_ram: 64GiB
 * </pre>
 *
 * <p>Values are checked as they are read (so an error names its line), keys are matched in file order (so an
 * unknown key is reported where it stands), and required keys are checked at the end of their section.
 */
public final class ServeConfig {
    private String bind;
    private Integer port;
    private Integer traceBuffer;
    private List<Ram> ram;
    private List<Iommu> iommus;
    private LimitsSection limits;

    public String bind() {
        return bind;
    }

    public Integer port() {
        return port;
    }

    /** The trace ring's capacity in records ({@code trace_buffer}), or null when the file does not set it. */
    public Integer traceBuffer() {
        return traceBuffer;
    }

    @JsonProperty("trace_buffer")
    void setTraceBuffer(long value) {
        traceBuffer = Tracer.checkCapacity("trace_buffer", value);
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

    /**
     * An IOMMU instance: {@code name} and {@code kind} (smmuv3 or vtd) are required; an smmuv3 instance may have
     * an {@code smmuv3:} section ({@link SmmuV3Section}), a vtd instance a {@code vtd:} section ({@link VtdSection}).
     */
    public static final class Iommu {
        private String name;
        private IommuType kind;
        private SmmuV3Section smmuv3;
        private VtdSection vtd;

        @JsonProperty("name")
        void setName(String value) {
            name = value;
        }

        @JsonProperty("kind")
        void setKind(String value) {
            kind = IommuType.parse(value);
        }

        @JsonProperty("smmuv3")
        void setSmmuv3(SmmuV3Section value) {
            smmuv3 = value;
        }

        @JsonProperty("vtd")
        void setVtd(VtdSection value) {
            vtd = value;
        }
    }

    /**
     * The {@code smmuv3:} settings of an SMMUv3 instance: each feature can be switched off (or on) so that a
     * driver can be tested against less capable hardware, and the queue sizes, cache sizes and simulated costs
     * set. Omitted keys keep {@link SmmuV3Config#defaults()}, except that switching a feature off also switches
     * off the omitted keys that depend on it ({@code stage1: false} clears {@code asid16}, {@code two_level_cd}
     * and {@code ssid_bits}; {@code stage2: false} clears {@code vmid16}; {@code ats: false} clears
     * {@code pri}; {@code httu_access: false} clears {@code httu_dirty}). The combination is checked when the
     * machine is built: a contradiction the file spells out ({@code ats: false} with {@code pri: true}) is an
     * error.
     */
    public static final class SmmuV3Section {
        private final Map<String, Consumer<SmmuV3Config.Builder>> settings = new LinkedHashMap<>();
        private final Map<String, Boolean> flags = new LinkedHashMap<>();
        private CostSection cost;

        private void dependent(SmmuV3Config.Builder b, String parent, boolean parentDefault, String key,
                Consumer<SmmuV3Config.Builder> off) {
            if (!flags.getOrDefault(parent, parentDefault) && !settings.containsKey(key)) {
                off.accept(b);
            }
        }

        @JsonProperty("stage1")
        void setStage1(boolean value) {
            settings.put("stage1", b -> b.stage1(value));
            flags.put("stage1", value);
        }

        @JsonProperty("stage2")
        void setStage2(boolean value) {
            settings.put("stage2", b -> b.stage2(value));
            flags.put("stage2", value);
        }

        @JsonProperty("two_level_stream_table")
        void setTwoLevelStreamTable(boolean value) {
            settings.put("two_level_stream_table", b -> b.twoLevelStreamTable(value));
            flags.put("two_level_stream_table", value);
        }

        @JsonProperty("two_level_cd")
        void setTwoLevelCd(boolean value) {
            settings.put("two_level_cd", b -> b.twoLevelCd(value));
            flags.put("two_level_cd", value);
        }

        @JsonProperty("asid16")
        void setAsid16(boolean value) {
            settings.put("asid16", b -> b.asid16(value));
            flags.put("asid16", value);
        }

        @JsonProperty("vmid16")
        void setVmid16(boolean value) {
            settings.put("vmid16", b -> b.vmid16(value));
            flags.put("vmid16", value);
        }

        @JsonProperty("range_invalidation")
        void setRangeInvalidation(boolean value) {
            settings.put("range_invalidation", b -> b.rangeInvalidation(value));
            flags.put("range_invalidation", value);
        }

        @JsonProperty("msi")
        void setMsi(boolean value) {
            settings.put("msi", b -> b.msi(value));
            flags.put("msi", value);
        }

        @JsonProperty("sev")
        void setSev(boolean value) {
            settings.put("sev", b -> b.sev(value));
            flags.put("sev", value);
        }

        @JsonProperty("ats")
        void setAts(boolean value) {
            settings.put("ats", b -> b.ats(value));
            flags.put("ats", value);
        }

        @JsonProperty("atc_timeout_ms")
        void setAtcTimeoutMs(int value) {
            settings.put("atc_timeout_ms", b -> b.atcTimeoutMs(value));
        }

        @JsonProperty("pri")
        void setPri(boolean value) {
            settings.put("pri", b -> b.pri(value));
            flags.put("pri", value);
        }

        @JsonProperty("httu_access")
        void setHttuAccess(boolean value) {
            settings.put("httu_access", b -> b.httuAccess(value));
            flags.put("httu_access", value);
        }

        @JsonProperty("httu_dirty")
        void setHttuDirty(boolean value) {
            settings.put("httu_dirty", b -> b.httuDirty(value));
            flags.put("httu_dirty", value);
        }

        @JsonProperty("granule_4k")
        void setGranule4k(boolean value) {
            settings.put("granule_4k", b -> b.granule4k(value));
            flags.put("granule_4k", value);
        }

        @JsonProperty("granule_16k")
        void setGranule16k(boolean value) {
            settings.put("granule_16k", b -> b.granule16k(value));
            flags.put("granule_16k", value);
        }

        @JsonProperty("granule_64k")
        void setGranule64k(boolean value) {
            settings.put("granule_64k", b -> b.granule64k(value));
            flags.put("granule_64k", value);
        }

        @JsonProperty("sid_bits")
        void setSidBits(int value) {
            settings.put("sid_bits", b -> b.sidBits(value));
        }

        @JsonProperty("ssid_bits")
        void setSsidBits(int value) {
            settings.put("ssid_bits", b -> b.ssidBits(value));
        }

        @JsonProperty("oas_bits")
        void setOasBits(int value) {
            settings.put("oas_bits", b -> b.oasBits(value));
        }

        @JsonProperty("cmdq_log2")
        void setCmdqLog2(int value) {
            settings.put("cmdq_log2", b -> b.cmdqLog2(value));
        }

        @JsonProperty("eventq_log2")
        void setEventqLog2(int value) {
            settings.put("eventq_log2", b -> b.eventqLog2(value));
        }

        @JsonProperty("priq_log2")
        void setPriqLog2(int value) {
            settings.put("priq_log2", b -> b.priqLog2(value));
        }

        @JsonProperty("iotlb_capacity")
        void setIotlbCapacity(int value) {
            settings.put("iotlb_capacity", b -> b.iotlbCapacity(value));
        }

        @JsonProperty("config_cache_capacity")
        void setConfigCacheCapacity(int value) {
            settings.put("config_cache_capacity", b -> b.configCacheCapacity(value));
        }

        @JsonProperty("walk_cache_capacity")
        void setWalkCacheCapacity(int value) {
            settings.put("walk_cache_capacity", b -> b.walkCacheCapacity(value));
        }

        @JsonProperty("cost")
        void setCost(CostSection value) {
            cost = value;
        }

        SmmuV3Config apply(SmmuV3Config base) {
            SmmuV3Config.Builder b = base.toBuilder();
            settings.values().forEach(setting -> setting.accept(b));
            // switching a feature off also switches off what depends on it, unless the file sets that too
            dependent(b, "stage1", base.stage1(), "asid16", x -> x.asid16(false));
            dependent(b, "stage1", base.stage1(), "two_level_cd", x -> x.twoLevelCd(false));
            dependent(b, "stage1", base.stage1(), "ssid_bits", x -> x.ssidBits(0));
            dependent(b, "stage2", base.stage2(), "vmid16", x -> x.vmid16(false));
            dependent(b, "ats", base.ats(), "pri", x -> x.pri(false));
            dependent(b, "httu_access", base.httuAccess(), "httu_dirty", x -> x.httuDirty(false));
            if (cost != null) {
                b.cost(cost.apply(base.cost()));
            }
            return b.build();
        }
    }

    /**
     * The {@code vtd:} settings of a VT-d unit: capabilities switched on or off so that a driver can be tested
     * against different hardware, and cache sizes and simulated costs. Omitted keys keep {@link VtdConfig#defaults()}
     * (a scalable-mode unit with first- and second-stage and nested translation), except that
     * {@code scalable_mode: false} also clears the omitted scalable-only capabilities (first stage, second stage,
     * nesting, PASID, RID_PASID, second-stage A/D) and {@code queued_invalidation: false} is allowed only without
     * scalable mode. Contradictions the file spells out are errors when the machine is built.
     */
    public static final class VtdSection {
        private final Map<String, Consumer<VtdConfig.Builder>> settings = new LinkedHashMap<>();
        private final Map<String, Boolean> flags = new LinkedHashMap<>();
        private CostSection cost;

        /** Applies {@code dependent} unless the file sets {@code key} itself. */
        private void off(VtdConfig.Builder b, String key, Consumer<VtdConfig.Builder> dependent) {
            if (!settings.containsKey(key)) {
                dependent.accept(b);
            }
        }

        private void flag(String key, boolean value, Consumer<VtdConfig.Builder> setting) {
            settings.put(key, setting);
            flags.put(key, value);
        }

        @JsonProperty("scalable_mode")
        void setScalableMode(boolean value) {
            flag("scalable_mode", value, b -> b.smts(value));
        }

        @JsonProperty("caching_mode")
        void setCachingMode(boolean value) {
            flag("caching_mode", value, b -> b.cm(value));
        }

        @JsonProperty("queued_invalidation")
        void setQueuedInvalidation(boolean value) {
            flag("queued_invalidation", value, b -> b.qi(value));
        }

        @JsonProperty("page_selective_invalidation")
        void setPageSelectiveInvalidation(boolean value) {
            flag("page_selective_invalidation", value, b -> b.psi(value));
        }

        @JsonProperty("max_address_mask")
        void setMaxAddressMask(int value) {
            settings.put("max_address_mask", b -> b.mamv(value));
        }

        @JsonProperty("pass_through")
        void setPassThrough(boolean value) {
            flag("pass_through", value, b -> b.pt(value));
        }

        @JsonProperty("first_stage")
        void setFirstStage(boolean value) {
            flag("first_stage", value, b -> b.flts(value));
        }

        @JsonProperty("second_stage")
        void setSecondStage(boolean value) {
            flag("second_stage", value, b -> b.slts(value));
        }

        @JsonProperty("nested")
        void setNested(boolean value) {
            flag("nested", value, b -> b.nest(value));
        }

        @JsonProperty("pasid_bits")
        void setPasidBits(int value) {
            settings.put("pasid_bits", b -> {
                b.pasid(value > 0);
                b.pss(Math.max(0, value - 1));
            });
        }

        @JsonProperty("large_pages_2m")
        void setLargePages2m(boolean value) {
            flag("large_pages_2m", value, b -> { });
        }

        @JsonProperty("large_pages_1g")
        void setLargePages1g(boolean value) {
            flag("large_pages_1g", value, b -> { });
        }

        @JsonProperty("first_stage_1g")
        void setFirstStage1g(boolean value) {
            flag("first_stage_1g", value, b -> b.fl1gp(value));
        }

        @JsonProperty("five_level")
        void setFiveLevel(boolean value) {
            flag("five_level", value, b -> { });
        }

        @JsonProperty("address_width")
        void setAddressWidth(int value) {
            settings.put("address_width", b -> b.mgaw(value - 1));
        }

        @JsonProperty("fault_records")
        void setFaultRecords(int value) {
            settings.put("fault_records", b -> b.nfr(value - 1));
        }

        @JsonProperty("domain_id_bits")
        void setDomainIdBits(int value) {
            if (value < 4 || value > 16 || value % 2 != 0) {
                throw new IllegalArgumentException("domain_id_bits must be 4, 6, ..., 16, was " + value);
            }
            settings.put("domain_id_bits", b -> b.nd((value - 4) / 2));
        }

        @JsonProperty("device_tlb")
        void setDeviceTlb(boolean value) {
            flag("device_tlb", value, b -> b.dt(value));
        }

        @JsonProperty("atc_timeout_ms")
        void setAtcTimeoutMs(int value) {
            settings.put("atc_timeout_ms", b -> b.atcTimeoutMs(value));
        }

        @JsonProperty("iotlb_capacity")
        void setIotlbCapacity(int value) {
            settings.put("iotlb_capacity", b -> b.iotlbCapacity(value));
        }

        @JsonProperty("walk_cache_capacity")
        void setWalkCacheCapacity(int value) {
            settings.put("walk_cache_capacity", b -> b.walkCacheCapacity(value));
        }

        @JsonProperty("context_cache_capacity")
        void setContextCacheCapacity(int value) {
            settings.put("context_cache_capacity", b -> b.contextCacheCapacity(value));
        }

        @JsonProperty("pasid_cache_capacity")
        void setPasidCacheCapacity(int value) {
            settings.put("pasid_cache_capacity", b -> b.pasidCacheCapacity(value));
        }

        @JsonProperty("cost")
        void setCost(CostSection value) {
            cost = value;
        }

        VtdConfig apply(VtdConfig base) {
            VtdConfig.Builder b = base.toBuilder();
            settings.values().forEach(setting -> setting.accept(b));
            boolean scalable = flags.getOrDefault("scalable_mode", base.smts());
            boolean firstStage = flags.getOrDefault("first_stage", scalable && base.flts());
            boolean secondStage = flags.getOrDefault("second_stage", scalable && base.slts());
            if (!scalable) {
                // without scalable mode the scalable-only capabilities go too, unless the file names them
                off(b, "pasid_bits", x -> x.pasid(false).pss(0));
                b.rps(false);
            }
            off(b, "first_stage", x -> x.flts(firstStage));
            off(b, "second_stage", x -> x.slts(secondStage));
            if (!secondStage) {
                b.slads(false);
            }
            off(b, "nested", x -> x.nest(firstStage && secondStage && base.nest()));
            int sllps = base.sllps();
            sllps = flags.getOrDefault("large_pages_2m", (sllps & 1) != 0) ? sllps | 1 : sllps & ~1;
            sllps = flags.getOrDefault("large_pages_1g", (sllps & 2) != 0) ? sllps | 2 : sllps & ~2;
            b.sllps(sllps);
            if (flags.containsKey("five_level")) {
                boolean five = flags.get("five_level");
                b.sagaw(five ? base.sagaw() | 0b1000 : base.sagaw() & ~0b1000).fl5lp(five);
            }
            if (cost != null) {
                b.cost(cost.apply(base.cost()));
            }
            return b.build();
        }
    }

    /** Simulated nanoseconds per unit of hardware work ({@link CostModel}); omitted keys keep their defaults. */
    public static final class CostSection {
        private final Map<String, Long> costs = new LinkedHashMap<>();

        @JsonProperty("mmio_access_ns")
        void setMmioAccessNs(Object value) {
            costs.put("mmio_access_ns", number(value, "mmio_access_ns"));
        }

        @JsonProperty("table_read_ns")
        void setTableReadNs(Object value) {
            costs.put("table_read_ns", number(value, "table_read_ns"));
        }

        @JsonProperty("table_write_ns")
        void setTableWriteNs(Object value) {
            costs.put("table_write_ns", number(value, "table_write_ns"));
        }

        @JsonProperty("queue_read_ns")
        void setQueueReadNs(Object value) {
            costs.put("queue_read_ns", number(value, "queue_read_ns"));
        }

        @JsonProperty("cache_hit_ns")
        void setCacheHitNs(Object value) {
            costs.put("cache_hit_ns", number(value, "cache_hit_ns"));
        }

        @JsonProperty("cache_miss_ns")
        void setCacheMissNs(Object value) {
            costs.put("cache_miss_ns", number(value, "cache_miss_ns"));
        }

        @JsonProperty("command_ns")
        void setCommandNs(Object value) {
            costs.put("command_ns", number(value, "command_ns"));
        }

        @JsonProperty("sync_ns")
        void setSyncNs(Object value) {
            costs.put("sync_ns", number(value, "sync_ns"));
        }

        @JsonProperty("event_write_ns")
        void setEventWriteNs(Object value) {
            costs.put("event_write_ns", number(value, "event_write_ns"));
        }

        @JsonProperty("msi_write_ns")
        void setMsiWriteNs(Object value) {
            costs.put("msi_write_ns", number(value, "msi_write_ns"));
        }

        CostModel apply(CostModel base) {
            return new CostModel(costs.getOrDefault("mmio_access_ns", base.mmioAccessNs()),
                    costs.getOrDefault("table_read_ns", base.tableReadNs()),
                    costs.getOrDefault("table_write_ns", base.tableWriteNs()),
                    costs.getOrDefault("queue_read_ns", base.queueReadNs()),
                    costs.getOrDefault("cache_hit_ns", base.cacheHitNs()),
                    costs.getOrDefault("cache_miss_ns", base.cacheMissNs()),
                    costs.getOrDefault("command_ns", base.commandNs()),
                    costs.getOrDefault("sync_ns", base.syncNs()),
                    costs.getOrDefault("event_write_ns", base.eventWriteNs()),
                    costs.getOrDefault("msi_write_ns", base.msiWriteNs()));
        }
    }

    /** Bus limits; omitted keys keep their defaults. */
    public static final class LimitsSection {
        private Long maxDmaLength;
        private Long maxMemAccessLength;
        private Integer maxSessions;
        private Integer maxTransferInFlight;
        private Long maxRam;
        private Integer maxSessionsPerConnection;

        @JsonProperty("max_ram")
        void setMaxRam(Object value) {
            maxRam = number(value, "max_ram");
        }

        @JsonProperty("max_sessions_per_connection")
        void setMaxSessionsPerConnection(int value) {
            maxSessionsPerConnection = value;
        }

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
            long ram = maxRam == null ? base.maxRamBytes() : maxRam;
            int perConnection = maxSessionsPerConnection == null
                    ? Math.min(sessions, base.maxSessionsPerConnection()) : maxSessionsPerConnection;
            return new Limits(dma, Math.max(dma, mem) + Limits.MESSAGE_OVERHEAD, mem, sessions, inFlight, ram,
                    perConnection);
        }
    }

    /**
     * A configuration holding only the machine's RAM and IOMMU instances (either may be null: keep the base's),
     * for files that describe a machine inside a larger document (scenarios).
     */
    public static ServeConfig machineOnly(List<Ram> ram, List<Iommu> iommus) {
        ServeConfig c = new ServeConfig();
        c.ram = ram;
        c.iommus = iommus;
        return c;
    }

    /** Reads a non-negative number or a size string ("4GiB", "0x1000"). */
    public static long number(Object value, String field) {
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
                if (m.smmuv3 != null && m.kind != IommuType.SMMUV3) {
                    throw new ConfigException("iommus[" + i + "] (" + m.name + "): an smmuv3 section on a "
                            + m.kind.id() + " instance");
                }
                if (m.vtd != null && m.kind != IommuType.VTD) {
                    throw new ConfigException("iommus[" + i + "] (" + m.name + "): a vtd section on a "
                            + m.kind.id() + " instance");
                }
                SmmuV3Config smmu = null;
                if (m.smmuv3 != null) {
                    try {
                        smmu = m.smmuv3.apply(SmmuV3Config.defaults());
                    } catch (IllegalArgumentException e) {
                        throw new ConfigException("iommus[" + i + "] (" + m.name + ").smmuv3: " + e.getMessage());
                    }
                }
                VtdConfig vtdConfig = null;
                if (m.vtd != null) {
                    try {
                        vtdConfig = m.vtd.apply(VtdConfig.defaults());
                    } catch (IllegalArgumentException e) {
                        throw new ConfigException("iommus[" + i + "] (" + m.name + ").vtd: " + e.getMessage());
                    }
                }
                specs.add(new IommuSpec(m.name, m.kind, smmu, vtdConfig));
            }
            c = c.withIommus(specs);
        }
        if (limits != null) {
            c = c.withLimits(limits.apply(c.limits()));
        }
        return c;
    }
}
