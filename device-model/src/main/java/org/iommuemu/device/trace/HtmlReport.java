package org.iommuemu.device.trace;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.iommuemu.proto.v1.TraceKind;
import org.iommuemu.proto.v1.TraceRecord;

/**
 * A scenario run as one self-contained HTML page: inline CSS and inline SVG charts, no scripts, no external
 * resources. Sections (stable ids): {@code summary}, {@code expectations}, {@code cache-hit-rates},
 * {@code command-mix}, {@code faults}, {@code dma-throughput}. Every string that comes from input (scenario, step
 * and instance names, failure messages) is escaped.
 */
public final class HtmlReport {
    /** Most rows of the fault table. */
    static final int MAX_FAULT_ROWS = 1000;
    /** Buckets of the DMA throughput chart. */
    static final int BUCKETS = 40;

    private final StringBuilder h = new StringBuilder(16 << 10);

    private HtmlReport() {
    }

    /**
     * The page for run summary {@code report} (ScenarioRunner.Result#report) and the run's trace {@code records}
     * ({@code dropped}: records the trace lost).
     */
    public static String render(Map<String, Object> report, List<TraceRecord> records, long dropped) {
        HtmlReport r = new HtmlReport();
        r.page(report, records, dropped);
        return r.h.toString();
    }

    /** {@code s} with the five HTML special characters escaped. */
    public static String escape(Object s) {
        String v = String.valueOf(s);
        StringBuilder b = new StringBuilder(v.length() + 16);
        for (int i = 0; i < v.length(); i++) {
            char c = v.charAt(i);
            switch (c) {
                case '<' -> b.append("&lt;");
                case '>' -> b.append("&gt;");
                case '&' -> b.append("&amp;");
                case '"' -> b.append("&quot;");
                case '\'' -> b.append("&#39;");
                default -> b.append(c);
            }
        }
        return b.toString();
    }

    private HtmlReport a(Object... parts) {
        for (Object p : parts) {
            h.append(p);
        }
        return this;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Object o) {
        return o instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
    }

    @SuppressWarnings("unchecked")
    private static List<Object> list(Object o) {
        return o instanceof List<?> l ? (List<Object>) l : List.of();
    }

    private static long num(Object o) {
        return o instanceof Number n ? n.longValue() : 0;
    }

    private void page(Map<String, Object> report, List<TraceRecord> records, long dropped) {
        String scenario = String.valueOf(report.getOrDefault("scenario", "scenario"));
        boolean passed = list(report.get("failures")).isEmpty();
        a("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>iommu-emu report: ",
                escape(scenario), "</title>\n<style>\n", CSS, "</style>\n</head>\n<body>\n");
        a("<h1>iommu-emu run: ", escape(scenario), " <span class=\"verdict ", passed ? "pass" : "fail", "\">",
                passed ? "PASSED" : "FAILED", "</span></h1>\n");
        summary(report, dropped);
        expectations(report);
        hitRates(report);
        commandMix(report);
        faults(records);
        throughput(records);
        a("</body>\n</html>\n");
    }

    private void row(String k, Object v) {
        a("<tr><th>", escape(k), "</th><td>", escape(v), "</td></tr>\n");
    }

    private void summary(Map<String, Object> report, long dropped) {
        a("<section id=\"summary\">\n<h2>Summary</h2>\n<table class=\"kv\">\n");
        row("scenario", report.get("scenario"));
        row("transport", report.get("transport"));
        row("driver", report.get("driver"));
        row("steps run", report.get("steps_run") + " of " + report.get("steps")
                + (Boolean.TRUE.equals(report.get("stopped")) ? " (stopped)" : ""));
        row("expects", report.get("expects_passed") + " passed, " + report.get("expects_failed") + " failed");
        Map<String, Object> dma = map(report.get("dma"));
        row("DMA of dma and traffic steps", dma.get("reads") + " reads, " + dma.get("writes") + " writes, "
                + dma.get("bytes") + " bytes, " + dma.get("faulted") + " faulted");
        row("simulated time", report.get("sim_time_ns") + " ns over all instances");
        row("trace records lost", dropped);
        if (report.get("driver_track") != null) {
            row("driver track", report.get("driver_track"));
        }
        a("</table>\n<table class=\"grid\">\n<tr><th>instance</th><th>translations</th><th>faults</th>"
                + "<th>walks</th><th>simulated ns</th></tr>\n");
        for (Map.Entry<String, Object> e : map(report.get("iommus")).entrySet()) {
            Map<String, Object> m = map(e.getValue());
            a("<tr><td>", escape(e.getKey()), "</td><td>", num(m.get("translations")), "</td><td>",
                    num(m.get("faults")), "</td><td>", num(m.get("walks")), "</td><td>", num(m.get("sim_time_ns")),
                    "</td></tr>\n");
        }
        a("</table>\n");
        List<Object> failures = list(report.get("failures"));
        if (!failures.isEmpty()) {
            a("<h3>Failures</h3>\n<ul class=\"failures\">\n");
            for (Object f : failures) {
                a("<li>", escape(f), "</li>\n");
            }
            a("</ul>\n");
        }
        a("</section>\n");
    }

    private void expectations(Map<String, Object> report) {
        a("<section id=\"expectations\">\n<h2>Expectations</h2>\n");
        List<Object> expects = list(report.get("expects"));
        if (expects.isEmpty()) {
            a("<p class=\"none\">The scenario has no expect steps.</p>\n</section>\n");
            return;
        }
        a("<table class=\"grid\">\n<tr><th>step</th><th>expect</th><th>result</th><th>why</th></tr>\n");
        for (Object o : expects) {
            Map<String, Object> e = map(o);
            boolean ok = Boolean.TRUE.equals(e.get("passed"));
            a("<tr class=\"expect ", ok ? "pass" : "fail", "\"><td>", escape(e.get("name")), "</td><td>",
                    escape(e.get("what")), "</td><td class=\"result\">", ok ? "PASS" : "FAIL", "</td><td>",
                    e.get("failure") == null ? "" : escape(e.get("failure")), "</td></tr>\n");
        }
        a("</table>\n</section>\n");
    }

    /** A horizontal bar chart: one bar per label, values 0..max. */
    private void bars(String cls, String data, List<String> labels, List<Double> values, double max, String unit) {
        int rowH = 24;
        int width = 560;
        int labelW = 170;
        int height = Math.max(1, labels.size()) * rowH + 10;
        a("<svg class=\"chart ", cls, "\" ", data, " xmlns=\"http://www.w3.org/2000/svg\" width=\"", width,
                "\" height=\"", height, "\" viewBox=\"0 0 ", width, " ", height, "\">\n");
        for (int i = 0; i < labels.size(); i++) {
            double v = values.get(i);
            int y = 5 + i * rowH;
            int w = max <= 0 ? 0 : (int) Math.round((width - labelW - 80) * Math.max(0, v) / max);
            a("<text x=\"", labelW - 6, "\" y=\"", y + 16, "\" text-anchor=\"end\">", escape(labels.get(i)),
                    "</text>\n");
            a("<rect class=\"bar\" x=\"", labelW, "\" y=\"", y + 3, "\" width=\"", Math.max(w, 1), "\" height=\"",
                    rowH - 6, "\"><title>", escape(labels.get(i)), ": ", fmt(v), unit, "</title></rect>\n");
            a("<text x=\"", labelW + w + 6, "\" y=\"", y + 16, "\">", fmt(v), escape(unit), "</text>\n");
        }
        a("</svg>\n");
    }

    private static String fmt(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : String.format(Locale.ROOT, "%.1f", v);
    }

    private void hitRates(Map<String, Object> report) {
        a("<section id=\"cache-hit-rates\">\n<h2>Cache hit rates</h2>\n");
        for (Map.Entry<String, Object> e : map(report.get("iommus")).entrySet()) {
            Map<String, Object> caches = map(map(e.getValue()).get("caches"));
            List<String> labels = new ArrayList<>();
            List<Double> values = new ArrayList<>();
            for (Map.Entry<String, Object> c : caches.entrySet()) {
                Map<String, Object> cm = map(c.getValue());
                Object rate = cm.get("hit_rate");
                labels.add(c.getKey() + " (" + num(cm.get("hits")) + "/" + (num(cm.get("hits"))
                        + num(cm.get("misses"))) + ")");
                values.add(rate instanceof Number n ? 100 * n.doubleValue() : 0.0);
            }
            a("<h3>", escape(e.getKey()), "</h3>\n");
            bars("hit-rate", "data-iommu=\"" + escape(e.getKey()) + "\"", labels, values, 100, "%");
        }
        a("</section>\n");
    }

    private void commandMix(Map<String, Object> report) {
        a("<section id=\"command-mix\">\n<h2>Command mix</h2>\n");
        for (Map.Entry<String, Object> e : map(report.get("iommus")).entrySet()) {
            Map<String, Object> commands = map(map(e.getValue()).get("commands"));
            a("<h3>", escape(e.getKey()), "</h3>\n");
            if (commands.isEmpty()) {
                a("<p class=\"none\">No commands consumed.</p>\n");
                continue;
            }
            List<String> labels = new ArrayList<>();
            List<Double> values = new ArrayList<>();
            double max = 0;
            long total = 0;
            for (Map.Entry<String, Object> c : commands.entrySet()) {
                labels.add(c.getKey());
                values.add((double) num(c.getValue()));
                max = Math.max(max, num(c.getValue()));
                total += num(c.getValue());
            }
            bars("commands", "data-iommu=\"" + escape(e.getKey()) + "\"", labels, values, max, "");
            a("<table class=\"grid commands\">\n<tr><th>command</th><th>count</th><th>share</th></tr>\n");
            for (Map.Entry<String, Object> c : commands.entrySet()) {
                a("<tr><td>", escape(c.getKey()), "</td><td>", num(c.getValue()), "</td><td>",
                        String.format(Locale.ROOT, "%.1f%%", 100.0 * num(c.getValue()) / total), "</td></tr>\n");
            }
            a("</table>\n");
        }
        a("</section>\n");
    }

    private void faults(List<TraceRecord> records) {
        a("<section id=\"faults\">\n<h2>Faults</h2>\n");
        List<TraceRecord> faults = records.stream().filter(r -> r.getKind() == TraceKind.TRACE_TRANSLATE
                && r.getResult() == 1).toList();
        if (faults.isEmpty()) {
            a("<p class=\"none\">No translation faults.</p>\n</section>\n");
            return;
        }
        a("<table class=\"grid faults\">\n<tr><th>simulated time (ns)</th><th>instance</th><th>stream</th>"
                + "<th>substream</th><th>iova</th><th>type</th></tr>\n");
        for (int i = 0; i < faults.size() && i < MAX_FAULT_ROWS; i++) {
            TraceRecord r = faults.get(i);
            a("<tr class=\"fault\"><td>", r.getSimTimeNs(), "</td><td>", escape(r.getIommu()), "</td><td>",
                    r.getStream(), "</td><td>", r.getSubstream() < 0 ? "-" : r.getSubstream(), "</td><td>0x",
                    Long.toHexString(r.getAddress()), "</td><td>", escape(r.getName().isEmpty() ? "code "
                    + r.getCode() : r.getName()), "</td></tr>\n");
        }
        a("</table>\n");
        if (faults.size() > MAX_FAULT_ROWS) {
            a("<p>", faults.size() - MAX_FAULT_ROWS, " more faults not shown.</p>\n");
        }
        a("</section>\n");
    }

    private void throughput(List<TraceRecord> records) {
        a("<section id=\"dma-throughput\">\n<h2>DMA throughput over simulated time</h2>\n");
        List<TraceRecord> dma = records.stream().filter(r -> r.getKind() == TraceKind.TRACE_DMA).toList();
        if (dma.isEmpty()) {
            a("<p class=\"none\">No DMA was traced.</p>\n</section>\n");
            return;
        }
        long lo = Long.MAX_VALUE;
        long hi = Long.MIN_VALUE;
        for (TraceRecord r : dma) {
            lo = Math.min(lo, r.getSimTimeNs());
            hi = Math.max(hi, r.getSimTimeNs() + r.getDurationNs());
        }
        long span = Math.max(1, hi - lo);
        long[] bytes = new long[BUCKETS];
        for (TraceRecord r : dma) {
            int b = (int) Math.min(BUCKETS - 1, (r.getSimTimeNs() - lo) * BUCKETS / span);
            bytes[b] += r.getResult();
        }
        long max = 1;
        for (long b : bytes) {
            max = Math.max(max, b);
        }
        int width = 640;
        int height = 220;
        int left = 70;
        int bottom = 30;
        int plotW = width - left - 10;
        int plotH = height - bottom - 10;
        double bw = (double) plotW / BUCKETS;
        a("<svg class=\"chart throughput\" xmlns=\"http://www.w3.org/2000/svg\" width=\"", width, "\" height=\"",
                height, "\" viewBox=\"0 0 ", width, " ", height, "\">\n");
        a("<line class=\"axis\" x1=\"", left, "\" y1=\"", 10 + plotH, "\" x2=\"", left + plotW, "\" y2=\"",
                10 + plotH, "\"/>\n<line class=\"axis\" x1=\"", left, "\" y1=\"10\" x2=\"", left, "\" y2=\"",
                10 + plotH, "\"/>\n");
        a("<text x=\"", left - 4, "\" y=\"18\" text-anchor=\"end\">", max, " B</text>\n");
        a("<text x=\"", left, "\" y=\"", height - 8, "\">", lo, " ns</text>\n");
        a("<text x=\"", left + plotW, "\" y=\"", height - 8, "\" text-anchor=\"end\">", hi, " ns</text>\n");
        for (int i = 0; i < BUCKETS; i++) {
            int bh = (int) Math.round((double) plotH * bytes[i] / max);
            a("<rect class=\"bar\" x=\"", String.format(Locale.ROOT, "%.1f", left + i * bw + 1), "\" y=\"",
                    10 + plotH - bh, "\" width=\"", String.format(Locale.ROOT, "%.1f", Math.max(1, bw - 2)),
                    "\" height=\"", bh, "\"><title>", bytes[i], " bytes from ", lo + span * i / BUCKETS,
                    " ns</title></rect>\n");
        }
        a("</svg>\n<p class=\"note\">Bytes moved by ", dma.size(), " DMA requests, in ", BUCKETS,
                " buckets of ", span / BUCKETS, " simulated ns.</p>\n</section>\n");
    }

    private static final String CSS = """
            body { font-family: sans-serif; margin: 24px; color: #222; background: #fff; }
            h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
            h3 { font-size: 15px; margin-bottom: 4px; }
            section { margin-bottom: 28px; }
            table { border-collapse: collapse; margin: 8px 0; }
            th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; }
            table.kv th { background: #f4f4f4; }
            table.grid th { background: #e8eef8; }
            .verdict { padding: 2px 8px; border-radius: 4px; color: #fff; font-size: 16px; }
            .verdict.pass, tr.pass td.result { background: #2e7d32; color: #fff; }
            .verdict.fail, tr.fail td.result { background: #c62828; color: #fff; }
            svg.chart { display: block; margin: 6px 0; background: #fafafa; border: 1px solid #ddd; }
            svg.chart text { font-size: 12px; fill: #333; }
            svg.chart rect.bar { fill: #3f6fb5; }
            svg.hit-rate rect.bar { fill: #2e8b57; }
            svg.chart line.axis { stroke: #666; }
            p.none { color: #666; font-style: italic; }
            """;
}
