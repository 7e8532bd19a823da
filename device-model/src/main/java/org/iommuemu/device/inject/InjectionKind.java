package org.iommuemu.device.inject;

import java.util.EnumSet;
import java.util.Locale;
import java.util.Set;

/**
 * Every injection point the project plans (issue #7), grouped as the bus API's {@code InjectionKind}, whose numbers
 * these are. Each kind says whether the emulator can inject it today ({@link #implemented}; a spec of another kind
 * is refused with {@link FaultSpecException.Unimplemented}, never silently accepted), which target selectors pick
 * its opportunities ({@link Selector}), which parameters it takes ({@link Param}) and how it acts ({@link Mode}).
 * {@link FaultSpec#validate} refuses a selector or a parameter the kind does not use, naming the field.
 */
public enum InjectionKind {
    // table and descriptor memory
    MEMORY_FLIP_BIT(1, Group.MEMORY, true, Mode.ONE_SHOT, sel(), par(Param.ADDRESS, Param.BIT)),
    MEMORY_WRITE_FIELD(2, Group.MEMORY, true, Mode.ONE_SHOT, sel(), par(Param.ADDRESS, Param.FIELD)),
    WALK_READ_ABORT(3, Group.MEMORY, true, Mode.OPPORTUNITY, sel(Selector.STREAMS, Selector.ADDRESSES), par()),
    QUEUE_READ_ABORT(4, Group.MEMORY, true, Mode.OPPORTUNITY, sel(Selector.ADDRESSES), par()),
    // command processing
    COMMAND_DROP(10, Group.COMMANDS, true, Mode.OPPORTUNITY, cmd(), par()),
    COMMAND_DELAY(11, Group.COMMANDS, true, Mode.OPPORTUNITY, cmd(), par(Param.DELAY)),
    COMMAND_REORDER(12, Group.COMMANDS, true, Mode.OPPORTUNITY, cmd(), par()),
    COMMAND_CORRUPT(13, Group.COMMANDS, true, Mode.OPPORTUNITY, cmd(), par(Param.BIT)),
    SYNC_NEVER_COMPLETES(14, Group.COMMANDS, true, Mode.OPPORTUNITY, sel(), par()),
    SYNC_LATE(15, Group.COMMANDS, true, Mode.OPPORTUNITY, sel(), par(Param.DELAY)),
    ATC_INVALIDATION_TIMEOUT(16, Group.COMMANDS, true, Mode.OPPORTUNITY, sel(Selector.STREAMS), par()),
    // event and fault reporting
    EVENT_QUEUE_OVERFLOW(20, Group.EVENTS, true, Mode.OPPORTUNITY, sel(Selector.STREAMS), par()),
    // interrupt kinds select by source code (target.opcodes), see machine.InjectedInterrupts
    INTERRUPT_DROP(21, Group.EVENTS, true, Mode.OPPORTUNITY, sel(Selector.OPCODES), par()),
    INTERRUPT_DELAY(22, Group.EVENTS, true, Mode.OPPORTUNITY, sel(Selector.OPCODES), par(Param.DELAY)),
    INTERRUPT_SPURIOUS(23, Group.EVENTS, true, Mode.OPPORTUNITY, sel(), par()),
    MSI_WRITE_FAIL(24, Group.EVENTS, true, Mode.OPPORTUNITY, sel(Selector.OPCODES), par()),
    // caches
    IGNORE_IOTLB_INVALIDATION(30, Group.CACHES, true, Mode.OPPORTUNITY, cmd(), par()),
    IGNORE_CONFIG_INVALIDATION(31, Group.CACHES, true, Mode.OPPORTUNITY, cmd(), par()),
    CACHE_SHRINK(32, Group.CACHES, true, Mode.WHILE_ACTIVE, sel(), par(Param.CACHE, Param.CAPACITY)),
    // no stream selector: cache entries are shared by the streams of a context and a lookup does not know its stream
    CACHE_EVICT_RANDOM(33, Group.CACHES, true, Mode.OPPORTUNITY, sel(), par(Param.CACHE)),
    // the bus
    BUS_REPLY_DELAY(40, Group.BUS, true, Mode.OPPORTUNITY, sel(Selector.METHODS, Selector.STREAMS),
            par(Param.WALL_DELAY)),
    BUS_RPC_UNAVAILABLE(41, Group.BUS, true, Mode.OPPORTUNITY, sel(Selector.METHODS, Selector.STREAMS), par()),
    BUS_STREAM_CUT(42, Group.BUS, true, Mode.OPPORTUNITY, sel(Selector.STREAMS), par()),
    BUS_DMA_READ_CORRUPT(43, Group.BUS, true, Mode.OPPORTUNITY, sel(Selector.STREAMS, Selector.ADDRESSES),
            par(Param.BIT));

    /** Where in the machine a kind strikes. */
    public enum Group { MEMORY, COMMANDS, EVENTS, CACHES, BUS }

    /** How a kind acts once injected. */
    public enum Mode {
        /** Carried out once, at {@code Inject} (memory corruption); it takes no trigger. */
        ONE_SHOT,
        /** Fires at the opportunities its selectors match, as its trigger says. */
        OPPORTUNITY,
        /** Changes the hardware for as long as it is active (until cleared); it takes no trigger. */
        WHILE_ACTIVE
    }

    /** A target selector ({@code target.*}) other than the instance, which every kind takes. */
    public enum Selector {
        OPCODES("target.opcodes"), STREAMS("target.stream_ids"), ADDRESSES("target.addresses"),
        METHODS("target.methods");

        private final String field;

        Selector(String field) {
            this.field = field;
        }

        public String field() {
            return field;
        }
    }

    /** A kind-specific value ({@code params.*}); the ones a kind does not take must stay zero. */
    public enum Param {
        ADDRESS("params.address"), BIT("params.bit"), FIELD("params.field_*"), DELAY("params.delay_ns"),
        WALL_DELAY("params.wall_delay_ms"), CACHE("params.cache"), CAPACITY("params.capacity");

        private final String field;

        Param(String field) {
            this.field = field;
        }

        public String field() {
            return field;
        }
    }

    private static final InjectionKind[] BY_NUMBER = new InjectionKind[64];

    static {
        for (InjectionKind k : values()) {
            BY_NUMBER[k.number] = k;
        }
    }

    private final int number;
    private final Group group;
    private final boolean implemented;
    private final Mode mode;
    private final Set<Selector> selectors;
    private final Set<Param> params;

    InjectionKind(int number, Group group, boolean implemented, Mode mode, Set<Selector> selectors,
            Set<Param> params) {
        this.number = number;
        this.group = group;
        this.implemented = implemented;
        this.mode = mode;
        this.selectors = selectors;
        this.params = params;
    }

    private static Set<Selector> sel(Selector... s) {
        EnumSet<Selector> set = EnumSet.noneOf(Selector.class);
        set.addAll(java.util.List.of(s));
        return java.util.Collections.unmodifiableSet(set);
    }

    /** A command kind's selectors: opcode, and the stream id and address the command carries (if it does). */
    private static Set<Selector> cmd() {
        return sel(Selector.OPCODES, Selector.STREAMS, Selector.ADDRESSES);
    }

    private static Set<Param> par(Param... p) {
        EnumSet<Param> set = EnumSet.noneOf(Param.class);
        set.addAll(java.util.List.of(p));
        return java.util.Collections.unmodifiableSet(set);
    }

    /** The bus API's enum number. */
    public int number() {
        return number;
    }

    public Group group() {
        return group;
    }

    /** Whether the emulator can inject this kind yet. */
    public boolean implemented() {
        return implemented;
    }

    public Mode mode() {
        return mode;
    }

    /** Whether {@code s} selects this kind's opportunities. */
    public boolean selects(Selector s) {
        return selectors.contains(s);
    }

    /** Whether this kind takes parameter {@code p}. */
    public boolean takes(Param p) {
        return params.contains(p);
    }

    /** Whether {@code opcodes} (command opcodes / descriptor types) select this kind's opportunities. */
    public boolean selectsOpcodes() {
        return selects(Selector.OPCODES);
    }

    /** Carried out once, when injected (memory corruption), rather than at opportunities. */
    public boolean oneShot() {
        return mode == Mode.ONE_SHOT;
    }

    /** The kind with bus number {@code n}, or null. */
    public static InjectionKind byNumber(int n) {
        return n > 0 && n < BY_NUMBER.length ? BY_NUMBER[n] : null;
    }

    /** The kind named {@code name} (any case, '-' or '_'). */
    public static InjectionKind parse(String name) {
        String n = name.trim().toUpperCase(Locale.ROOT).replace('-', '_');
        for (InjectionKind k : values()) {
            if (k.name().equals(n)) {
                return k;
            }
        }
        throw new IllegalArgumentException("kind '" + name + "' is not an injection kind (expected one of: "
                + java.util.Arrays.stream(values()).map(k -> k.name().toLowerCase(Locale.ROOT))
                        .collect(java.util.stream.Collectors.joining(", ")) + ")");
    }
}
