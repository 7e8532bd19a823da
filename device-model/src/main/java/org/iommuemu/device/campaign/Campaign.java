package org.iommuemu.device.campaign;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.ArrayList;
import java.util.List;
import org.iommuemu.device.config.ServeConfig;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.inject.InjectionKind;

/**
 * A campaign file as read (the format is in README, "Campaigns"): the scenario, how many runs, the seed, the per-run
 * wall-time budget, the fault plan and an optional sweep. Setters check each value as it is read, so
 * {@link org.iommuemu.device.config.YamlFiles} reports a bad value or an unknown key at its file:line:col;
 * {@link CampaignFile} checks the rest.
 */
public final class Campaign {
    /** Runs when the file says nothing and no {@code --runs} is given. */
    public static final int DEFAULT_RUNS = 10;
    /** The default wall-time budget of one run: generous, since a run that exceeds it is counted as hung. */
    public static final long DEFAULT_RUN_TIMEOUT_SECONDS = 300;

    String scenario;
    int runs = DEFAULT_RUNS;
    long seed;
    long runTimeoutSeconds = DEFAULT_RUN_TIMEOUT_SECONDS;
    List<PlannedFault> faults = new ArrayList<>();
    Sweep sweep;

    @JsonProperty("scenario")
    void setScenario(String value) {
        if (value == null || value.isBlank()) {
            throw new IllegalArgumentException("scenario must name a scenario file");
        }
        scenario = value;
    }

    @JsonProperty("runs")
    void setRuns(int value) {
        if (value < 1) {
            throw new IllegalArgumentException("runs must be at least 1, got " + value);
        }
        runs = value;
    }

    @JsonProperty("seed")
    void setSeed(Object value) {
        seed = seed(value, "seed");
    }

    @JsonProperty("run_timeout_seconds")
    void setRunTimeoutSeconds(long value) {
        if (value < 1) {
            throw new IllegalArgumentException("run_timeout_seconds must be at least 1, got " + value);
        }
        runTimeoutSeconds = value;
    }

    @JsonProperty("faults")
    void setFaults(List<PlannedFault> value) {
        faults = value == null ? new ArrayList<>() : value;
    }

    @JsonProperty("sweep")
    void setSweep(Sweep value) {
        sweep = value;
    }

    /** A 64-bit seed: any integer that fits 64 bits (unsigned ones above 2^63 wrap to negative). */
    static long seed(Object value, String field) {
        if (value instanceof Integer || value instanceof Long) {
            return ((Number) value).longValue();
        }
        if (value instanceof java.math.BigInteger big && big.bitLength() <= 64 && big.signum() >= 0) {
            return big.longValue();
        }
        throw new IllegalArgumentException(field + " must be a 64-bit integer, got " + value);
    }

    /** The scenario file, as the campaign file gives it (relative to the campaign file). */
    public String scenario() {
        return scenario;
    }

    public int runs() {
        return runs;
    }

    public long seed() {
        return seed;
    }

    public long runTimeoutSeconds() {
        return runTimeoutSeconds;
    }

    public List<PlannedFault> faults() {
        return faults;
    }

    /** The sweep, or null. */
    public Sweep sweep() {
        return sweep;
    }

    /**
     * One entry of the fault plan: the keys of a {@link FaultSpec} (as an {@code inject} step takes it) and the
     * probability that a run includes it. The campaign chooses the trigger's seed for each run, so the entry may not
     * give one.
     */
    public static final class PlannedFault {
        InjectionKind kind;
        String label = "";
        FaultSpec.Target target;
        FaultSpec.Trigger trigger;
        FaultSpec.Params params;
        double probability = 1.0;

        @JsonProperty("kind")
        void setKind(String value) {
            kind = InjectionKind.parse(value);
        }

        @JsonProperty("label")
        void setLabel(String value) {
            label = value == null ? "" : value;
        }

        @JsonProperty("target")
        void setTarget(FaultSpec.Target value) {
            target = value;
        }

        @JsonProperty("trigger")
        void setTrigger(FaultSpec.Trigger value) {
            if (value != null && value.seed() != 0) {
                throw new IllegalArgumentException("trigger.seed: the campaign chooses each run's trigger seeds"
                        + " (from its seed and the run index); leave it out");
            }
            trigger = value;
        }

        @JsonProperty("params")
        void setParams(FaultSpec.Params value) {
            params = value;
        }

        @JsonProperty("probability")
        void setProbability(double value) { // also used by tests
            if (!(value >= 0 && value <= 1)) {
                throw new IllegalArgumentException("probability " + value + " is not between 0 and 1");
            }
            probability = value;
        }

        /** The fault as the file gives it (trigger seed 0). */
        public FaultSpec spec() {
            return FaultSpec.of(kind, label, target, trigger, params);
        }

        /** The chance that a run includes this fault. */
        public double probability() {
            return probability;
        }

        /** The label, or the kind in lower case when it has none. */
        public String name() {
            return label.isEmpty() ? kind.name().toLowerCase(java.util.Locale.ROOT) : label;
        }
    }

    /**
     * A sweep over one trigger field of one planned fault: run {@code i} sets it to {@code values[i % values.size()]},
     * so {@code runs} that are a multiple of the number of values give each value as many runs.
     */
    public static final class Sweep {
        /** The fields a sweep can vary. */
        public enum Field { SKIP_FIRST, COUNT }

        String fault;
        Field field;
        List<Long> values = new ArrayList<>();

        @JsonProperty("fault")
        void setFault(String value) {
            fault = value;
        }

        @JsonProperty("field")
        void setField(String value) {
            field = switch (value) {
                case "skip_first" -> Field.SKIP_FIRST;
                case "count" -> Field.COUNT;
                default -> throw new IllegalArgumentException("field must be skip_first or count (a trigger field),"
                        + " got '" + value + "'");
            };
        }

        @JsonProperty("values")
        void setValues(List<Object> value) {
            values = new ArrayList<>();
            for (int i = 0; i < value.size(); i++) {
                values.add(ServeConfig.number(value.get(i), "values[" + i + "]"));
            }
        }

        /** The label (or kind name) of the planned fault it varies. */
        public String fault() {
            return fault;
        }

        public Field field() {
            return field;
        }

        public List<Long> values() {
            return List.copyOf(values);
        }

        /** The field's name in the file. */
        public String fieldName() {
            return field.name().toLowerCase(java.util.Locale.ROOT);
        }
    }
}
