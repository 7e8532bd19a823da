package org.iommuemu.it.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Prints a JMH JSON result file as a table: score and error in the benchmark's unit, MB/s for the 4 KiB
 * bus benchmarks, and the DMA/echo ratio of each pair. Run by the {@code bench} profile after JMH.
 */
public final class BenchReport {
    /** DMA benchmark → the echo benchmark it is compared with. */
    private static final Map<String, String> PAIRS = Map.of(
            "dmaUnaryRead4k", "echoUnary4k",
            "dmaTransferRead4k", "echoStream4k");

    private BenchReport() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: BenchReport JMH_RESULT.json");
            System.exit(2);
        }
        JsonNode runs = new ObjectMapper().readTree(Path.of(args[0]).toFile());
        // name + parameters -> score, so each parameter set gets its own ratio
        Map<String, Double> scores = new LinkedHashMap<>();
        System.out.printf(Locale.ROOT, "%-58s %16s %12s %-10s %10s %10s%n", "benchmark", "score", "± error", "unit",
                "MB/s", "B/op");
        for (JsonNode run : runs) {
            String full = run.get("benchmark").asText();
            String name = full.substring(full.lastIndexOf('.') + 1);
            JsonNode m = run.get("primaryMetric");
            double score = m.get("score").asDouble();
            double error = m.get("scoreError").asDouble();
            String unit = m.get("scoreUnit").asText();
            String params = run.has("params") ? run.get("params").toString() : "";
            String label = full.replace("org.iommuemu.it.bench.", "") + (params.isEmpty() ? "" : " " + params);
            String mbs = name.endsWith("4k") && unit.equals("ops/s")
                    ? String.format(Locale.ROOT, "%10.1f", score * BusBenchmark.SIZE / 1e6) : "";
            JsonNode alloc = run.path("secondaryMetrics").path("gc.alloc.rate.norm");
            String bytesPerOp = alloc.isMissingNode() ? "" : String.format(Locale.ROOT, "%10.1f",
                    alloc.get("score").asDouble());
            System.out.printf(Locale.ROOT, "%-58s %16.1f %12.1f %-10s %10s %10s%n", label, score,
                    Double.isNaN(error) ? 0 : error, unit, mbs, bytesPerOp);
            scores.put(name + " " + params, score);
        }
        for (Map.Entry<String, Double> e : scores.entrySet()) {
            String key = e.getKey();
            int space = key.indexOf(' ');
            String name = key.substring(0, space);
            String params = key.substring(space + 1);
            String echoName = PAIRS.get(name);
            Double echo = echoName == null ? null : scores.get(echoName + " " + params);
            if (echo != null) {
                System.out.printf(Locale.ROOT, "ratio %s / %s %s = %.3f%n", name, echoName, params, e.getValue() / echo);
            }
        }
    }
}
