package org.iommuemu.device.inject;

import java.util.Locale;

/**
 * Every injection point the project plans (issue #7), grouped as the bus API's {@code InjectionKind}, whose numbers
 * these are. {@link #implemented} says which ones the emulator can inject today; a spec of another kind is refused
 * ({@link FaultSpecException.Unimplemented}), never silently accepted.
 */
public enum InjectionKind {
    // table and descriptor memory
    MEMORY_FLIP_BIT(1, Group.MEMORY, true, false),
    MEMORY_WRITE_FIELD(2, Group.MEMORY, true, false),
    WALK_READ_ABORT(3, Group.MEMORY, false, false),
    QUEUE_READ_ABORT(4, Group.MEMORY, false, false),
    // command processing
    COMMAND_DROP(10, Group.COMMANDS, true, true),
    COMMAND_DELAY(11, Group.COMMANDS, false, true),
    COMMAND_REORDER(12, Group.COMMANDS, false, true),
    COMMAND_CORRUPT(13, Group.COMMANDS, false, true),
    SYNC_NEVER_COMPLETES(14, Group.COMMANDS, true, false),
    SYNC_LATE(15, Group.COMMANDS, false, false),
    ATC_INVALIDATION_TIMEOUT(16, Group.COMMANDS, false, false),
    // event and fault reporting
    EVENT_QUEUE_OVERFLOW(20, Group.EVENTS, false, false),
    INTERRUPT_DROP(21, Group.EVENTS, false, false),
    INTERRUPT_DELAY(22, Group.EVENTS, false, false),
    INTERRUPT_SPURIOUS(23, Group.EVENTS, false, false),
    MSI_WRITE_FAIL(24, Group.EVENTS, false, false),
    // caches
    IGNORE_IOTLB_INVALIDATION(30, Group.CACHES, true, true),
    IGNORE_CONFIG_INVALIDATION(31, Group.CACHES, false, true),
    CACHE_SHRINK(32, Group.CACHES, false, false),
    CACHE_EVICT_RANDOM(33, Group.CACHES, false, false),
    // the bus
    BUS_REPLY_DELAY(40, Group.BUS, false, false),
    BUS_RPC_UNAVAILABLE(41, Group.BUS, false, false),
    BUS_STREAM_CUT(42, Group.BUS, false, false),
    BUS_DMA_READ_CORRUPT(43, Group.BUS, false, false);

    /** Where in the machine a kind strikes. */
    public enum Group { MEMORY, COMMANDS, EVENTS, CACHES, BUS }

    private static final InjectionKind[] BY_NUMBER = new InjectionKind[64];

    static {
        for (InjectionKind k : values()) {
            BY_NUMBER[k.number] = k;
        }
    }

    private final int number;
    private final Group group;
    private final boolean implemented;
    private final boolean selectsOpcodes;

    InjectionKind(int number, Group group, boolean implemented, boolean selectsOpcodes) {
        this.number = number;
        this.group = group;
        this.implemented = implemented;
        this.selectsOpcodes = selectsOpcodes;
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

    /** Whether {@code opcodes} (command opcodes / descriptor types) select this kind's opportunities. */
    public boolean selectsOpcodes() {
        return selectsOpcodes;
    }

    /** Carried out once, when injected (memory corruption), rather than at opportunities. */
    public boolean oneShot() {
        return this == MEMORY_FLIP_BIT || this == MEMORY_WRITE_FIELD;
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
