package org.iommuemu.device.campaign;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * Puts the JSON reports of a campaign's shards ({@code --shard I/N}, I = 0..N-1, run anywhere) back together into the
 * report of the whole campaign: the same bytes {@code campaign} writes without {@code --shard}. The shards must come
 * from the same campaign file, scenario, seed, run count, budget, plan and sweep, and have the same baseline (they
 * do when they ran the same files and version); each shard must be there exactly once. The summary is recomputed
 * from the merged results the way a report computes it.
 */
public final class CampaignMerge {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    /** Keys that must be equal in every shard's report. */
    private static final List<String> SAME = List.of("campaign", "scenario", "seed", "runs", "run_timeout_ms",
            "faults", "sweep", "baseline");

    private CampaignMerge() {}

    /** A shard's report and where it came from (for messages). */
    public record Part(String source, Map<String, Object> report) {}

    /**
     * Reads a shard report's JSON.
     *
     * @throws CampaignException when it is not a campaign report
     */
    @SuppressWarnings("unchecked")
    public static Part read(String source, String json) {
        Map<String, Object> m;
        try {
            m = JSON.readValue(json, LinkedHashMap.class);
        } catch (JsonProcessingException e) {
            throw new CampaignException(source + ": not JSON: " + e.getOriginalMessage());
        }
        for (String k : List.of("campaign", "seed", "runs", "shard", "faults", "baseline", "summary", "results")) {
            if (!m.containsKey(k)) {
                throw new CampaignException(source + ": not a campaign report (no '" + k + "')");
            }
        }
        return new Part(source, m);
    }

    /**
     * The whole campaign's report from its shards' reports, in any order.
     *
     * @throws CampaignException naming the file when the shards do not make up one campaign
     */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> merge(List<Part> parts) {
        if (parts.isEmpty()) {
            throw new CampaignException("no reports to merge");
        }
        Part first = parts.get(0);
        int count = -1;
        Map<Integer, String> seen = new TreeMap<>();
        Map<Integer, Map<String, Object>> results = new TreeMap<>();
        for (Part p : parts) {
            for (String k : SAME) {
                if (!Objects.equals(first.report.get(k), p.report.get(k))) {
                    throw new CampaignException(p.source + ": '" + k + "' differs from " + first.source
                            + " (shards of one campaign must share it)");
                }
            }
            CampaignRunner.Shard shard;
            try {
                shard = CampaignRunner.Shard.parse(String.valueOf(p.report.get("shard")));
            } catch (IllegalArgumentException e) {
                throw new CampaignException(p.source + ": bad shard '" + p.report.get("shard") + "'");
            }
            if (count < 0) {
                count = shard.count();
            } else if (shard.count() != count) {
                throw new CampaignException(p.source + ": shard " + shard + " is not one of " + count + " like "
                        + first.source + "'s");
            }
            String before = seen.put(shard.index(), p.source);
            if (before != null) {
                throw new CampaignException(p.source + ": shard " + shard + " is given twice (also " + before + ")");
            }
            for (Object o : (List<Object>) p.report.get("results")) {
                Map<String, Object> r = (Map<String, Object>) o;
                int index = ((Number) r.get("index")).intValue();
                if (!shard.owns(index)) {
                    throw new CampaignException(p.source + ": run " + index + " is not in shard " + shard);
                }
                results.put(index, r);
            }
        }
        if (seen.size() != count) {
            List<String> missing = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                if (!seen.containsKey(i)) {
                    missing.add(i + "/" + count);
                }
            }
            throw new CampaignException("shard(s) " + String.join(", ", missing) + " missing: " + seen.size()
                    + " of " + count + " given");
        }
        int runs = ((Number) first.report.get("runs")).intValue();
        if (results.size() != runs) {
            throw new CampaignException("the shards hold " + results.size() + " run(s), the campaign has " + runs);
        }
        Map<String, Object> m = new LinkedHashMap<>(first.report);
        m.put("shard", CampaignRunner.Shard.ALL.toString());
        List<Object> all = new ArrayList<>(results.values());
        m.put("summary", CampaignReport.summary((List<?>) first.report.get("faults"), all));
        m.put("results", all);
        return m;
    }

    /** A report map as JSON, the way {@link CampaignReport#toJson} writes it. */
    public static String toJson(Map<String, Object> report) {
        try {
            return JSON.writeValueAsString(report) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The human table of a (merged) report. */
    public static String table(Map<String, Object> report) {
        return CampaignReport.table(report);
    }
}
