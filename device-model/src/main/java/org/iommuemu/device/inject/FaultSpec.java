package org.iommuemu.device.inject;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.ArrayList;
import java.util.List;
import org.iommuemu.device.config.ServeConfig;

/**
 * One fault: its kind, which opportunities it targets, when it fires and its kind-specific values. The same shape
 * as the bus API's {@code FaultSpec} ({@link #fromProto}) and as YAML/JSON (read with
 * {@link org.iommuemu.device.config.YamlFiles}, so a bad value is reported at its file:line:col):
 *
 * <pre>
 * kind: ignore_iotlb_invalidation
 * label: stale TLB
 * target:
 *   iommu: smmu0
 *   opcodes: [0x12]          # SMMUv3 opcodes / VT-d descriptor types
 * trigger:
 *   probability: 0.5         # absent: 1
 *   seed: 42
 *   skip_first: 2
 *   count: 1                 # 0 or absent: no limit
 * params:                    # memory kinds
 *   address: 0x8000_1000
 *   bit: 0
 * </pre>
 *
 * <p>Values are checked as they are set (a {@link FaultSpecException} naming the field: {@code trigger.probability},
 * {@code params.bit}...); {@link #validate} checks what depends on the kind. Mutable while it is built; the injector
 * keeps its own {@link #copy}.
 */
public final class FaultSpec {
    private InjectionKind kind;
    private String label = "";
    private Target target = new Target();
    private Trigger trigger = new Trigger();
    private Params params = new Params();

    public FaultSpec() {}

    public FaultSpec(InjectionKind kind) {
        this.kind = kind;
    }

    public InjectionKind kind() {
        return kind;
    }

    public String label() {
        return label;
    }

    public Target target() {
        return target;
    }

    public Trigger trigger() {
        return trigger;
    }

    public Params params() {
        return params;
    }

    public FaultSpec label(String value) {
        label = value == null ? "" : value;
        return this;
    }

    /** Sets target selectors in place: {@code spec.target(t -> t.opcodes(0x12))}. */
    public FaultSpec target(java.util.function.Consumer<Target> edit) {
        edit.accept(target);
        return this;
    }

    /** Sets the trigger in place. */
    public FaultSpec trigger(java.util.function.Consumer<Trigger> edit) {
        edit.accept(trigger);
        return this;
    }

    /** Sets kind-specific values in place. */
    public FaultSpec params(java.util.function.Consumer<Params> edit) {
        edit.accept(params);
        return this;
    }

    /** Shorthand for {@code target().iommu(name)}. */
    public FaultSpec iommu(String name) {
        target.iommu(name);
        return this;
    }

    @JsonProperty("kind")
    void setKind(String value) {
        try {
            kind = InjectionKind.parse(value);
        } catch (IllegalArgumentException e) {
            throw new FaultSpecException("kind", e.getMessage());
        }
    }

    @JsonProperty("label")
    void setLabel(String value) {
        label(value);
    }

    @JsonProperty("target")
    void setTarget(Target value) {
        target = value == null ? new Target() : value;
    }

    @JsonProperty("trigger")
    void setTrigger(Trigger value) {
        trigger = value == null ? new Trigger() : value;
    }

    @JsonProperty("params")
    void setParams(Params value) {
        params = value == null ? new Params() : value;
    }

    /** Which opportunities the fault applies to; an empty selector matches everything. */
    public static final class Target {
        private String iommu = "";
        private int firstStream = -1;
        private int lastStream = -1;
        private long addressStart;
        private long addressEnd;
        private boolean addresses;
        private int[] opcodes = new int[0];
        private List<String> methods = List.of();

        /** The instance, or empty for every instance. */
        public String iommu() {
            return iommu;
        }

        public boolean hasStreams() {
            return firstStream >= 0;
        }

        public boolean hasAddresses() {
            return addresses;
        }

        public int firstStream() {
            return firstStream;
        }

        public int lastStream() {
            return lastStream;
        }

        public long addressStart() {
            return addressStart;
        }

        public long addressEnd() {
            return addressEnd;
        }

        public int[] opcodes() {
            return opcodes.clone();
        }

        /** gRPC methods ("Dma/Read", "Machine/Describe"...), empty for every method. */
        public List<String> methods() {
            return methods;
        }

        /** Whether {@code s}'s selector is set. */
        boolean has(InjectionKind.Selector s) {
            return switch (s) {
                case OPCODES -> opcodes.length > 0;
                case STREAMS -> hasStreams();
                case ADDRESSES -> addresses;
                case METHODS -> !methods.isEmpty();
            };
        }

        /**
         * Whether an opportunity at {@code stream} (negative: the opportunity has none) and {@code address}
         * ({@code hasAddress} false: it has none) matches the stream and address selectors. A set selector never
         * matches an opportunity without that coordinate.
         */
        boolean matchesStreamAndAddress(long stream, boolean hasAddress, long address) {
            if (firstStream >= 0 && (stream < 0 || stream < Integer.toUnsignedLong(firstStream)
                    || stream > Integer.toUnsignedLong(lastStream))) {
                return false;
            }
            return !addresses || hasAddress && Long.compareUnsigned(address, addressStart) >= 0
                    && Long.compareUnsigned(address, addressEnd) < 0;
        }

        /** Whether gRPC method {@code fullName} ("iommuemu.v1.Dma/Read") matches the method selector. */
        public boolean matchesMethod(String fullName) {
            if (methods.isEmpty()) {
                return true;
            }
            for (String m : methods) {
                if (fullName.equals(m) || fullName.endsWith("." + m)) {
                    return true;
                }
            }
            return false;
        }

        public Target iommu(String name) {
            iommu = name == null ? "" : name;
            return this;
        }

        public Target streams(long first, long last) {
            if (first < 0 || last < first || last > 0xFFFF_FFFFL) {
                throw new FaultSpecException("target.stream_ids", "first " + first + " and last " + last
                        + " are not an inclusive range of 32-bit stream ids (first <= last)");
            }
            firstStream = (int) first;
            lastStream = (int) last;
            return this;
        }

        public Target addresses(long start, long end) {
            if (Long.compareUnsigned(end, start) <= 0) {
                throw new FaultSpecException("target.addresses", "end 0x" + Long.toHexString(end)
                        + " must be above start 0x" + Long.toHexString(start));
            }
            addressStart = start;
            addressEnd = end;
            addresses = true;
            return this;
        }

        public Target opcodes(int... codes) {
            for (int c : codes) {
                if (c < 0 || c > 0xFFFF) {
                    throw new FaultSpecException("target.opcodes", "opcode " + c + " is not 0..0xffff");
                }
            }
            opcodes = codes.clone();
            return this;
        }

        /** Methods as "Service/Method" ("Dma/Read") or fully qualified ("iommuemu.v1.Dma/Read"). */
        public Target methods(List<String> names) {
            for (int i = 0; i < names.size(); i++) {
                String m = names.get(i);
                if (m == null || !m.matches("[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*")) {
                    throw new FaultSpecException("target.methods[" + i + "]", "'" + m
                            + "' is not a gRPC method as Service/Method (e.g. Dma/Read)");
                }
            }
            methods = List.copyOf(names);
            return this;
        }

        boolean matchesOpcode(int code) {
            if (opcodes.length == 0) {
                return true;
            }
            for (int c : opcodes) {
                if (c == code) {
                    return true;
                }
            }
            return false;
        }

        @JsonProperty("iommu")
        void setIommu(String value) {
            iommu(value);
        }

        @JsonProperty("stream_ids")
        void setStreamIds(IdRange value) {
            if (value.first == null || value.last == null) {
                throw new FaultSpecException("target.stream_ids", "first and last are required");
            }
            streams(value.first, value.last);
        }

        @JsonProperty("addresses")
        void setAddresses(AddressRange value) {
            if (value.start == null || value.end == null) {
                throw new FaultSpecException("target.addresses", "start and end are required");
            }
            addresses(value.start, value.end);
        }

        @JsonProperty("opcodes")
        void setOpcodes(List<Object> values) {
            int[] codes = new int[values.size()];
            for (int i = 0; i < codes.length; i++) {
                long v = number(values.get(i), "target.opcodes[" + i + "]");
                if (v > 0xFFFF) {
                    throw new FaultSpecException("target.opcodes[" + i + "]", "opcode " + v + " is not 0..0xffff");
                }
                codes[i] = (int) v;
            }
            opcodes(codes);
        }

        @JsonProperty("methods")
        void setMethods(List<String> values) {
            methods(values);
        }

        Target copy() {
            Target t = new Target();
            t.iommu = iommu;
            t.firstStream = firstStream;
            t.lastStream = lastStream;
            t.addressStart = addressStart;
            t.addressEnd = addressEnd;
            t.addresses = addresses;
            t.opcodes = opcodes.clone();
            t.methods = methods;
            return t;
        }
    }

    /** YAML form of {@code stream_ids}. */
    static final class IdRange {
        private Long first;
        private Long last;

        @JsonProperty("first")
        void setFirst(Object v) {
            first = number(v, "target.stream_ids.first");
        }

        @JsonProperty("last")
        void setLast(Object v) {
            last = number(v, "target.stream_ids.last");
        }
    }

    /** YAML form of {@code addresses}. */
    static final class AddressRange {
        private Long start;
        private Long end;

        @JsonProperty("start")
        void setStart(Object v) {
            start = number(v, "target.addresses.start");
        }

        @JsonProperty("end")
        void setEnd(Object v) {
            end = number(v, "target.addresses.end");
        }
    }

    /** When a matching opportunity fires. */
    public static final class Trigger {
        private double probability = 1.0;
        private boolean probabilitySet;
        private long seed;
        private long skipFirst;
        private long count;

        public double probability() {
            return probability;
        }

        public boolean hasProbability() {
            return probabilitySet;
        }

        public long seed() {
            return seed;
        }

        public long skipFirst() {
            return skipFirst;
        }

        /** At most this many firings; 0: no limit. */
        public long count() {
            return count;
        }

        boolean isDefault() {
            return !probabilitySet && seed == 0 && skipFirst == 0 && count == 0;
        }

        public Trigger probability(double p) {
            if (!(p >= 0 && p <= 1)) {
                throw new FaultSpecException("trigger.probability", "probability " + p + " is not between 0 and 1");
            }
            probability = p;
            probabilitySet = true;
            return this;
        }

        public Trigger seed(long value) {
            seed = value;
            return this;
        }

        public Trigger skipFirst(long n) {
            if (n < 0) {
                throw new FaultSpecException("trigger.skip_first", "must not be negative, got " + n);
            }
            skipFirst = n;
            return this;
        }

        public Trigger count(long n) {
            if (n < 0) {
                throw new FaultSpecException("trigger.count", "must not be negative, got " + n);
            }
            count = n;
            return this;
        }

        @JsonProperty("probability")
        void setProbability(double value) {
            probability(value);
        }

        @JsonProperty("seed")
        void setSeed(Object value) {
            seed(number(value, "trigger.seed"));
        }

        @JsonProperty("skip_first")
        void setSkipFirst(Object value) {
            skipFirst(signedNumber(value, "trigger.skip_first"));
        }

        @JsonProperty("count")
        void setCount(Object value) {
            count(signedNumber(value, "trigger.count"));
        }

        Trigger copy() {
            Trigger t = new Trigger();
            t.probability = probability;
            t.probabilitySet = probabilitySet;
            t.seed = seed;
            t.skipFirst = skipFirst;
            t.count = count;
            return t;
        }
    }

    /** Kind-specific values; the ones a kind does not use must stay zero. */
    public static final class Params {
        private long address;
        private int bit;
        private int fieldLsb;
        private int fieldWidth;
        private long fieldValue;
        private long delayNs;
        private long wallDelayMs;
        private String cache = "";
        private int capacity;

        public long address() {
            return address;
        }

        public int bit() {
            return bit;
        }

        public int fieldLsb() {
            return fieldLsb;
        }

        public int fieldWidth() {
            return fieldWidth;
        }

        public long fieldValue() {
            return fieldValue;
        }

        public long delayNs() {
            return delayNs;
        }

        public long wallDelayMs() {
            return wallDelayMs;
        }

        /** A cache's name as Telemetry lists it ("iotlb", "cfg", "context"...), or empty. */
        public String cache() {
            return cache;
        }

        public int capacity() {
            return capacity;
        }

        public Params address(long pa) {
            address = pa;
            return this;
        }

        /** A bit: 0..63 of a word for most kinds, up to 255 of a command for COMMAND_CORRUPT (checked by kind). */
        public Params bit(int b) {
            if (b < 0 || b > 255) {
                throw new FaultSpecException("params.bit", "bit " + b + " is not 0..255");
            }
            bit = b;
            return this;
        }

        /** A field of the word: bits [lsb, lsb + width) take {@code value}. */
        public Params field(int lsb, int width, long value) {
            if (lsb < 0 || lsb > 63) {
                throw new FaultSpecException("params.field_lsb", "lsb " + lsb + " is not 0..63");
            }
            if (width < 0 || width > 64 || lsb + width > 64) {
                throw new FaultSpecException("params.field_width", "width " + width + " with lsb " + lsb
                        + " does not fit a 64-bit word");
            }
            fieldLsb = lsb;
            fieldWidth = width;
            fieldValue = value;
            return this;
        }

        public Params delayNs(long ns) {
            if (ns < 0) {
                throw new FaultSpecException("params.delay_ns", "must not be negative, got " + ns);
            }
            delayNs = ns;
            return this;
        }

        public Params wallDelayMs(long ms) {
            if (ms < 0 || ms > 600_000) {
                throw new FaultSpecException("params.wall_delay_ms", "must be 0..600000 (ten minutes), got " + ms);
            }
            wallDelayMs = ms;
            return this;
        }

        public Params cache(String name) {
            cache = name == null ? "" : name;
            return this;
        }

        public Params capacity(long entries) {
            if (entries < 0 || entries > 1 << 24) {
                throw new FaultSpecException("params.capacity", "must be 0..16777216 entries, got " + entries);
            }
            capacity = (int) entries;
            return this;
        }

        @JsonProperty("address")
        void setAddress(Object v) {
            address(number(v, "params.address"));
        }

        @JsonProperty("bit")
        void setBit(int v) {
            bit(v);
        }

        @JsonProperty("field_lsb")
        void setFieldLsb(int v) {
            field(v, fieldWidth, fieldValue);
        }

        @JsonProperty("field_width")
        void setFieldWidth(int v) {
            if (v < 0 || v > 64) {
                throw new FaultSpecException("params.field_width", "width " + v + " is not 0..64");
            }
            fieldWidth = v;
        }

        @JsonProperty("field_value")
        void setFieldValue(Object v) {
            fieldValue = number(v, "params.field_value");
        }

        @JsonProperty("delay_ns")
        void setDelayNs(Object v) {
            delayNs(number(v, "params.delay_ns"));
        }

        @JsonProperty("wall_delay_ms")
        void setWallDelayMs(Object v) {
            wallDelayMs(signedNumber(v, "params.wall_delay_ms"));
        }

        @JsonProperty("cache")
        void setCache(String v) {
            cache(v);
        }

        @JsonProperty("capacity")
        void setCapacity(Object v) {
            capacity(signedNumber(v, "params.capacity"));
        }

        /** Whether parameter {@code p} is set (non-zero). */
        boolean has(InjectionKind.Param p) {
            return switch (p) {
                case ADDRESS -> address != 0;
                case BIT -> bit != 0;
                case FIELD -> fieldLsb != 0 || fieldWidth != 0 || fieldValue != 0;
                case DELAY -> delayNs != 0;
                case WALL_DELAY -> wallDelayMs != 0;
                case CACHE -> !cache.isEmpty();
                case CAPACITY -> capacity != 0;
            };
        }

        Params copy() {
            Params p = new Params();
            p.address = address;
            p.bit = bit;
            p.fieldLsb = fieldLsb;
            p.fieldWidth = fieldWidth;
            p.fieldValue = fieldValue;
            p.delayNs = delayNs;
            p.wallDelayMs = wallDelayMs;
            p.cache = cache;
            p.capacity = capacity;
            return p;
        }
    }

    /**
     * A spec from parts read on their own (a campaign's fault entry carries a spec's keys beside its own); the parts
     * are copied, null ones are the defaults. Not validated.
     */
    public static FaultSpec of(InjectionKind kind, String label, Target target, Trigger trigger, Params params) {
        FaultSpec s = new FaultSpec(kind);
        s.label(label);
        s.target = target == null ? new Target() : target.copy();
        s.trigger = trigger == null ? new Trigger() : trigger.copy();
        s.params = params == null ? new Params() : params.copy();
        return s;
    }

    /** A deep copy. */
    public FaultSpec copy() {
        FaultSpec s = new FaultSpec(kind);
        s.label = label;
        s.target = target.copy();
        s.trigger = trigger.copy();
        s.params = params.copy();
        return s;
    }

    /**
     * Checks what depends on the kind and returns this spec.
     *
     * @throws FaultSpecException.Unimplemented for a kind not implemented yet
     * @throws FaultSpecException naming the field otherwise
     */
    public FaultSpec validate() {
        if (kind == null) {
            throw new FaultSpecException("kind", "is required");
        }
        if (!kind.implemented()) {
            throw new FaultSpecException.Unimplemented(kind);
        }
        for (InjectionKind.Selector sel : InjectionKind.Selector.values()) {
            if (target.has(sel) && !kind.selects(sel)) {
                throw new FaultSpecException(sel.field(), kind + " does not select by " + sel.field().substring(7)
                        + " (it selects by " + selectorsOf(kind) + ")");
            }
        }
        for (InjectionKind.Param par : InjectionKind.Param.values()) {
            if (params.has(par) && !kind.takes(par)) {
                throw new FaultSpecException(par.field(), kind + " does not take " + par.field()
                        + " (it takes " + paramsOf(kind) + ")");
            }
        }
        if (kind.mode() != InjectionKind.Mode.OPPORTUNITY && !trigger.isDefault()) {
            throw new FaultSpecException("trigger", kind + (kind.oneShot() ? " is carried out once, when injected"
                    : " acts for as long as it is active") + "; it takes no trigger");
        }
        if (kind.takes(InjectionKind.Param.BIT) && kind != InjectionKind.COMMAND_CORRUPT && params.bit > 63) {
            throw new FaultSpecException("params.bit", "bit " + params.bit + " is not 0..63");
        }
        if (kind == InjectionKind.BUS_REPLY_DELAY && params.wallDelayMs == 0) {
            throw new FaultSpecException("params.wall_delay_ms", kind + " needs a delay of 1..600000 ms");
        }
        if ((kind == InjectionKind.COMMAND_DELAY || kind == InjectionKind.SYNC_LATE) && params.delayNs == 0) {
            throw new FaultSpecException("params.delay_ns", kind + " needs a delay above 0 simulated nanoseconds");
        }
        if (kind.oneShot() && (params.address & 7) != 0) {
            throw new FaultSpecException("params.address", "0x" + Long.toHexString(params.address)
                    + " is not 8-byte aligned (the fault changes one 64-bit word)");
        }
        if (kind == InjectionKind.CACHE_SHRINK && params.capacity == 0) {
            throw new FaultSpecException("params.capacity", "is required: the entries the cache may hold while the"
                    + " fault is active (1..its configured capacity)");
        }
        if ((kind == InjectionKind.CACHE_SHRINK || kind == InjectionKind.CACHE_EVICT_RANDOM)
                && params.cache.isEmpty()) {
            throw new FaultSpecException("params.cache", "is required: the cache's name as Telemetry lists it (SMMUv3:"
                    + " iotlb, config, walk; VT-d: iotlb, context, pasid, walk)");
        }
        if (kind == InjectionKind.MEMORY_WRITE_FIELD) {
            if (params.fieldWidth == 0 || params.fieldLsb + params.fieldWidth > 64) {
                throw new FaultSpecException("params.field_width", "width " + params.fieldWidth + " with lsb "
                        + params.fieldLsb + " is not a field of a 64-bit word (1..64 bits)");
            }
            if (params.fieldWidth < 64 && (params.fieldValue >>> params.fieldWidth) != 0) {
                throw new FaultSpecException("params.field_value", "0x" + Long.toHexString(params.fieldValue)
                        + " does not fit " + params.fieldWidth + " bits");
            }
        }
        return this;
    }

    private static String selectorsOf(InjectionKind k) {
        List<String> out = new ArrayList<>();
        out.add("target.iommu");
        for (InjectionKind.Selector sel : InjectionKind.Selector.values()) {
            if (k.selects(sel)) {
                out.add(sel.field());
            }
        }
        return String.join(", ", out);
    }

    private static String paramsOf(InjectionKind k) {
        List<String> out = new ArrayList<>();
        for (InjectionKind.Param par : InjectionKind.Param.values()) {
            if (k.takes(par)) {
                out.add(par.field());
            }
        }
        return out.isEmpty() ? "no parameters" : String.join(", ", out);
    }

    /** The bus form. */
    public static FaultSpec fromProto(org.iommuemu.proto.v1.FaultSpec p) {
        FaultSpec s = new FaultSpec();
        if (p.getKindValue() != 0) {
            InjectionKind k = InjectionKind.byNumber(p.getKindValue());
            if (k == null) {
                throw new FaultSpecException("kind", "unknown injection kind " + p.getKindValue());
            }
            s.kind = k;
        }
        s.label(p.getLabel());
        if (p.hasTarget()) {
            var t = p.getTarget();
            s.target.iommu(t.getIommu());
            if (t.hasStreamIds()) {
                s.target.streams(Integer.toUnsignedLong(t.getStreamIds().getFirst()),
                        Integer.toUnsignedLong(t.getStreamIds().getLast()));
            }
            if (t.hasAddresses()) {
                s.target.addresses(t.getAddresses().getStart(), t.getAddresses().getEnd());
            }
            int[] codes = new int[t.getOpcodesCount()];
            for (int i = 0; i < codes.length; i++) {
                long c = Integer.toUnsignedLong(t.getOpcodes(i));
                if (c > 0xFFFF) {
                    throw new FaultSpecException("target.opcodes[" + i + "]", "opcode " + c + " is not 0..0xffff");
                }
                codes[i] = (int) c;
            }
            s.target.opcodes(codes);
            s.target.methods(t.getMethodsList());
        }
        if (p.hasTrigger()) {
            var t = p.getTrigger();
            if (t.hasProbability()) {
                s.trigger.probability(t.getProbability());
            }
            s.trigger.seed(t.getSeed());
            s.trigger.skipFirst(unsigned(t.getSkipFirst(), "trigger.skip_first"));
            s.trigger.count(unsigned(t.getCount(), "trigger.count"));
        }
        if (p.hasParams()) {
            var q = p.getParams();
            s.params.address(q.getAddress());
            if (Integer.toUnsignedLong(q.getBit()) > 255) {
                throw new FaultSpecException("params.bit", "bit " + Integer.toUnsignedLong(q.getBit())
                        + " is not 0..255");
            }
            s.params.bit(q.getBit());
            long lsb = Integer.toUnsignedLong(q.getFieldLsb());
            long width = Integer.toUnsignedLong(q.getFieldWidth());
            if (lsb > 63) {
                throw new FaultSpecException("params.field_lsb", "lsb " + lsb + " is not 0..63");
            }
            if (width > 64 || lsb + width > 64) {
                throw new FaultSpecException("params.field_width", "width " + width + " with lsb " + lsb
                        + " does not fit a 64-bit word");
            }
            s.params.field((int) lsb, (int) width, q.getFieldValue());
            s.params.delayNs(unsigned(q.getDelayNs(), "params.delay_ns"));
            s.params.wallDelayMs(unsigned(q.getWallDelayMs(), "params.wall_delay_ms"));
            s.params.cache(q.getCache());
            s.params.capacity(Integer.toUnsignedLong(q.getCapacity()));
        }
        return s;
    }

    /** This spec in the bus form. */
    public org.iommuemu.proto.v1.FaultSpec toProto() {
        var b = org.iommuemu.proto.v1.FaultSpec.newBuilder().setLabel(label);
        if (kind != null) {
            b.setKindValue(kind.number());
        }
        var t = org.iommuemu.proto.v1.FaultTarget.newBuilder().setIommu(target.iommu);
        if (target.hasStreams()) {
            t.setStreamIds(org.iommuemu.proto.v1.IdRange.newBuilder().setFirst(target.firstStream)
                    .setLast(target.lastStream));
        }
        if (target.hasAddresses()) {
            t.setAddresses(org.iommuemu.proto.v1.AddressRange.newBuilder().setStart(target.addressStart)
                    .setEnd(target.addressEnd));
        }
        for (int c : target.opcodes) {
            t.addOpcodes(c);
        }
        t.addAllMethods(target.methods);
        b.setTarget(t);
        var g = org.iommuemu.proto.v1.FaultTrigger.newBuilder().setSeed(trigger.seed)
                .setSkipFirst(trigger.skipFirst).setCount(trigger.count);
        if (trigger.probabilitySet) {
            g.setProbability(trigger.probability);
        }
        b.setTrigger(g);
        b.setParams(org.iommuemu.proto.v1.FaultParams.newBuilder().setAddress(params.address).setBit(params.bit)
                .setFieldLsb(params.fieldLsb).setFieldWidth(params.fieldWidth).setFieldValue(params.fieldValue)
                .setDelayNs(params.delayNs).setWallDelayMs(params.wallDelayMs).setCache(params.cache)
                .setCapacity(params.capacity));
        return b.build();
    }

    private static long unsigned(long v, String field) {
        if (v < 0) {
            throw new FaultSpecException(field, Long.toUnsignedString(v) + " is too large");
        }
        return v;
    }

    private static long number(Object value, String field) {
        try {
            return ServeConfig.number(value, field);
        } catch (IllegalArgumentException e) {
            throw new FaultSpecException("", e.getMessage());
        }
    }

    private static long signedNumber(Object value, String field) {
        long v = number(value, field);
        if (v < 0) {
            throw new FaultSpecException(field, Long.toUnsignedString(v) + " is too large");
        }
        return v;
    }

    @Override
    public String toString() {
        List<String> parts = new ArrayList<>();
        parts.add(String.valueOf(kind));
        if (!target.iommu.isEmpty()) {
            parts.add("iommu=" + target.iommu);
        }
        if (target.opcodes.length > 0) {
            StringBuilder sb = new StringBuilder("opcodes=");
            for (int i = 0; i < target.opcodes.length; i++) {
                sb.append(i == 0 ? "" : ",").append("0x").append(Integer.toHexString(target.opcodes[i]));
            }
            parts.add(sb.toString());
        }
        if (target.hasStreams()) {
            parts.add("streams=0x" + Integer.toHexString(target.firstStream) + "..0x"
                    + Integer.toHexString(target.lastStream));
        }
        if (target.addresses) {
            parts.add("addresses=[0x" + Long.toHexString(target.addressStart) + ",0x"
                    + Long.toHexString(target.addressEnd) + ")");
        }
        if (!target.methods.isEmpty()) {
            parts.add("methods=" + String.join(",", target.methods));
        }
        if (kind != null && kind.oneShot()) {
            parts.add("address=0x" + Long.toHexString(params.address));
        }
        if (!params.cache.isEmpty()) {
            parts.add("cache=" + params.cache);
        }
        if (params.capacity != 0) {
            parts.add("capacity=" + params.capacity);
        }
        if (!label.isEmpty()) {
            parts.add("label=" + label);
        }
        return String.join(" ", parts);
    }
}
