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
        for (JsonNode run : runs) {
            JsonNode dma = run.path("secondaryMetrics").path("dmaNanos");
            JsonNode echo = run.path("secondaryMetrics").path("echoNanos");
            if (!dma.isMissingNode() && !echo.isMissingNode()) {
                String full = run.get("benchmark").asText();
                double ratio = echo.get("score").asDouble() / dma.get("score").asDouble();
                // per-iteration ratios give the spread
                JsonNode dmaRaw = dma.path("rawData").path(0);
                JsonNode echoRaw = echo.path("rawData").path(0);
                double min = Double.MAX_VALUE;
                double max = 0;
                for (int i = 0; i < dmaRaw.size() && i < echoRaw.size(); i++) {
                    double r = echoRaw.get(i).asDouble() / dmaRaw.get(i).asDouble();
                    min = Math.min(min, r);
                    max = Math.max(max, r);
                }
                String name = full.substring(full.lastIndexOf('.') + 1);
                System.out.printf(Locale.ROOT, "paired ratio DMA/echo (throughput) %s = %.3f (per iteration %.3f .. %.3f)%n",
                        name, ratio, min, max);
                // pairs per iteration x batch = operations of each side; their own nanoseconds give their rate
                int batch = name.startsWith("pipelined") ? BusPairedBenchmark.PIPELINED_BATCH
                        : BusPairedBenchmark.UNARY_BATCH;
                double seconds = Double.parseDouble(run.path("measurementTime").asText("1 s").split(" ")[0]);
                double iterations = dmaRaw.size();
                double ops = run.get("primaryMetric").get("score").asDouble() * seconds * iterations * batch;
                double dmaRate = ops / (dma.get("score").asDouble() / 1e9);
                double echoRate = ops / (echo.get("score").asDouble() / 1e9);
                System.out.printf(Locale.ROOT, "  %s: DMA %.0f ops/s (%.1f MB/s), echo %.0f ops/s (%.1f MB/s), 4 KiB each%n",
                        name, dmaRate, dmaRate * BusBenchmark.SIZE / 1e6, echoRate, echoRate * BusBenchmark.SIZE / 1e6);
            }
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
