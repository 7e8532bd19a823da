package org.iommuemu.device.campaign;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.scenario.ScenarioRunner;

/**
 * A campaign's (or a shard's) result: the runs, sorted by index, and counts by fault. {@link #toJson} holds no wall
 * times and no timestamps, so the same campaign, seed, runs and shard give the same bytes; {@link #table} is the
 * short human summary.
 */
public final class CampaignReport {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final CampaignFile.Loaded loaded;
    private final CampaignRunner.Settings settings;
    private final ScenarioRunner.Result baseline;
    private final List<CampaignRunner.Run> runs;
    private final Map<String, CampaignRunner.Tally> byFault;
    private final CampaignRunner.Tally all;

    CampaignReport(CampaignFile.Loaded loaded, CampaignRunner.Settings settings, ScenarioRunner.Result baseline,
            List<CampaignRunner.Run> runs, Map<String, CampaignRunner.Tally> byFault, CampaignRunner.Tally all) {
        this.loaded = loaded;
        this.settings = settings;
        this.baseline = baseline;
        this.runs = List.copyOf(runs);
        this.byFault = byFault;
        this.all = all;
    }

    /** The runs, by index. */
    public List<CampaignRunner.Run> runs() {
        return runs;
    }

    /** The run with {@code index}, which must be in this report. */
    public CampaignRunner.Run run(int index) {
        return runs.stream().filter(r -> r.index() == index).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("run " + index + " is not in this report"));
    }

    /** Counts over every run of the report. */
    public CampaignRunner.Tally all() {
        return all;
    }

    /** Counts over the runs each fault was active in, by fault name. */
    public Map<String, CampaignRunner.Tally> byFault() {
        return byFault;
    }

    /** Whether the scenario passed without the campaign's faults. */
    public boolean baselinePassed() {
        return baseline.passed();
    }

    /** The report as plain data, in a fixed order. */
    public Map<String, Object> toMap() {
        Campaign c = loaded.campaign();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("campaign", loaded.source());
        m.put("scenario", scenarioSource());
        m.put("seed", settings.seed());
        m.put("runs", settings.runs());
        m.put("shard", settings.shard().toString());
        m.put("run_timeout_ms", settings.runTimeoutMillis());
        List<Object> plan = new ArrayList<>();
        for (Campaign.PlannedFault f : c.faults()) {
            Map<String, Object> p = new LinkedHashMap<>();
            FaultSpec s = f.spec();
            p.put("name", f.name());
            p.put("kind", s.kind().name());
            p.put("iommu", s.target().iommu());
            p.put("probability", f.probability());
            plan.add(p);
        }
        m.put("faults", plan);
        if (c.sweep() != null) {
            Map<String, Object> s = new LinkedHashMap<>();
            s.put("fault", c.sweep().fault());
            s.put("field", c.sweep().fieldName());
            s.put("values", c.sweep().values());
            m.put("sweep", s);
        }
        Map<String, Object> base = new LinkedHashMap<>();
        base.put("passed", baseline.passed());
        base.put("failures", baseline.failures());
        CampaignRunner.Observed o = CampaignRunner.observe(baseline);
        base.put("events", o.events());
        base.put("translation_faults", o.faults());
        base.put("sanitizer_reports", o.sanitizer());
        m.put("baseline", base);
        List<Map<String, Object>> rs = new ArrayList<>();
        for (CampaignRunner.Run r : runs) {
            rs.add(run(r, c));
        }
        m.put("summary", summary(plan, rs));
        m.put("results", rs);
        return m;
    }

    /**
     * The {@code summary} section from a report's plan ({@code faults}) and {@code results}: a row per planned fault
     * (the runs it was in), runs with no fault, all runs. Shared by reports and {@link CampaignMerge}, so a merged
     * report's counts are computed the same way.
     */
    @SuppressWarnings("unchecked")
    static Map<String, Object> summary(List<?> plan, List<?> results) {
        Map<String, CampaignRunner.Tally> byName = new LinkedHashMap<>();
        for (Object p : plan) {
            byName.put((String) ((Map<String, Object>) p).get("name"), new CampaignRunner.Tally());
        }
        CampaignRunner.Tally none = new CampaignRunner.Tally();
        CampaignRunner.Tally all = new CampaignRunner.Tally();
        for (Object o : results) {
            Map<String, Object> r = (Map<String, Object>) o;
            Map<String, Object> out = (Map<String, Object>) r.get("outcome");
            CampaignRunner.Outcome outcome = new CampaignRunner.Outcome((Boolean) out.get("detected"),
                    (Boolean) out.get("recovered"), (Boolean) out.get("corrupted"), (Boolean) out.get("hung"));
            boolean error = r.containsKey("error");
            List<Object> faults = (List<Object>) r.get("faults");
            boolean anyFired = false;
            for (Object f : faults) {
                Map<String, Object> fm = (Map<String, Object>) f;
                boolean fired = ((Number) fm.get("fired")).longValue() > 0;
                anyFired |= fired;
                CampaignRunner.Tally t = byName.get((String) fm.get("name"));
                if (t == null) {
                    throw new IllegalArgumentException("run " + r.get("index") + " names fault '" + fm.get("name")
                            + "', which is not in the plan");
                }
                t.add(outcome, fired, error);
            }
            if (faults.isEmpty()) {
                none.add(outcome, false, error);
            }
            all.add(outcome, anyFired, error);
        }
        Map<String, Object> summary = new LinkedHashMap<>();
        byName.forEach((name, t) -> summary.put(name, t.toMap()));
        summary.put("(no fault)", none.toMap());
        summary.put("(all runs)", all.toMap());
        return summary;
    }

    private String scenarioSource() {
        return loaded.campaign().scenario();
    }

    private static Map<String, Object> run(CampaignRunner.Run r, Campaign c) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("index", r.index());
        m.put("seed", r.seed());
        List<Object> faults = new ArrayList<>();
        for (CampaignRunner.Chosen ch : r.faults()) {
            Map<String, Object> f = new LinkedHashMap<>();
            f.put("name", ch.name());
            f.put("trigger_seed", ch.triggerSeed());
            if (ch.swept() != null) {
                f.put(c.sweep().fieldName(), ch.swept());
            }
            f.put("fired", r.fired().getOrDefault(ch.name(), 0L));
            faults.add(f);
        }
        m.put("faults", faults);
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("detected", r.outcome().detected());
        o.put("recovered", r.outcome().recovered());
        o.put("corrupted", r.outcome().corrupted());
        o.put("hung", r.outcome().hung());
        m.put("outcome", o);
        if (r.error() != null) {
            m.put("error", r.error());
        }
        if (!r.evidence().isEmpty()) {
            m.put("evidence", r.evidence());
        }
        m.put("failures", r.failures());
        return m;
    }

    /** The report as JSON (indented, ending with a newline). */
    public String toJson() {
        try {
            return JSON.writeValueAsString(toMap()) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The human summary: a row per fault (runs it was active in), then runs with none, then all runs. */
    public String table() {
        return table(toMap());
    }

    /** {@link #table} of a report as {@link #toMap} gives it or as its JSON reads back (a merged report too). */
    @SuppressWarnings("unchecked")
    static String table(Map<String, Object> report) {
        StringBuilder b = new StringBuilder();
        Map<String, Object> summary = (Map<String, Object>) report.get("summary");
        Map<String, Object> all = (Map<String, Object>) summary.get("(all runs)");
        String shard = (String) report.get("shard");
        b.append(String.format("campaign %s: scenario %s, seed %s, %s run(s)%s%n", report.get("campaign"),
                report.get("scenario"), report.get("seed"), all.get("runs"), shard.endsWith("/1") ? ""
                        : " of " + report.get("runs") + " (shard " + shard + ")"));
        Map<String, Object> base = (Map<String, Object>) report.get("baseline");
        if (!(Boolean) base.get("passed")) {
            b.append("  note: the scenario fails without the campaign's faults too (").append(((List<Object>) base
                    .get("failures")).size()).append(" failure(s)); runs are judged against that baseline\n");
        }
        int w = "(all runs)".length();
        for (String n : summary.keySet()) {
            w = Math.max(w, n.length());
        }
        String fmt = "  %-" + w + "s %6s %6s %9s %10s %10s %7s %5s%n";
        b.append(String.format(fmt, "fault", "runs", "fired", "detected", "recovered", "corrupted", "silent",
                "hung"));
        summary.forEach((n, v) -> {
            Map<String, Object> t = (Map<String, Object>) v;
            if (!n.equals("(no fault)") || ((Number) t.get("runs")).longValue() > 0) {
                b.append(String.format(fmt, n, t.get("runs"), t.get("fired"), t.get("detected"), t.get("recovered"),
                        t.get("corrupted"), t.get("silent"), t.get("hung")));
            }
        });
        long errors = ((Number) all.get("errors")).longValue();
        if (errors > 0) {
            b.append("  ").append(errors).append(" run(s) could not be carried out (see \"error\" in the"
                    + " report)\n");
        }
        return b.toString();
    }
}
