package org.iommuemu.device.campaign;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.CompletionService;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorCompletionService;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.scenario.ScenarioFile;
import org.iommuemu.device.scenario.ScenarioRunner;

/**
 * Runs a campaign: its scenario once without the campaign's faults (the baseline), then once per run index of the
 * shard with the faults that run draws, each on a fresh embedded machine in process, and classifies every run against
 * the baseline ({@link Outcome}).
 *
 * <p><b>Seeds.</b> Run {@code i}'s seed is the {@code (i+1)}-th {@code nextLong()} of a {@link SplittableRandom}
 * seeded with the campaign seed, so it depends on the campaign seed and {@code i} only (not on the shard, the number
 * of runs, or what other runs did). A {@code SplittableRandom} seeded with the run seed then makes two draws per
 * planned fault, in file order: {@code nextDouble()} (the fault is in the run when it is below the fault's
 * probability) and {@code nextLong()} (the fault's trigger seed). Every fault takes its two draws whether it is
 * included or not, so one fault's probability does not change what the others draw. A sweep sets its fault's
 * trigger field to {@code values[i % values.size()]}.
 *
 * <p><b>Wall time.</b> Each run (the baseline too) runs on a worker thread and is given {@code runTimeoutMillis} of
 * wall time; a run still going then is counted as hung, interrupted and abandoned (its thread is a daemon and the
 * next run gets a new one). That budget is the only thing in a campaign that depends on the clock, and the default
 * (five minutes) is far above what any run of a scenario that terminates takes, so the same seed gives the same
 * runs and the same report.
 *
 * <p><b>Jobs.</b> {@link Settings#jobs} runs go at once, each on its own machine and thread; the report is put
 * together in run-index order once all are done, so it is the same bytes whatever the number of jobs.
 */
public final class CampaignRunner {
    /** A shard: the runs whose index {@code % count == index}. */
    public record Shard(int index, int count) {
        public static final Shard ALL = new Shard(0, 1);

        public Shard {
            if (count < 1 || index < 0 || index >= count) {
                throw new IllegalArgumentException("shard " + index + "/" + count + ": need 0 <= I < N");
            }
        }

        /** Parses {@code I/N}. */
        public static Shard parse(String text) {
            String[] parts = text.split("/", -1);
            try {
                if (parts.length == 2) {
                    return new Shard(Integer.parseInt(parts[0].trim()), Integer.parseInt(parts[1].trim()));
                }
            } catch (NumberFormatException e) {
                // fall through
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--shard " + text + ": I must be 0..N-1 (shards are numbered"
                        + " from 0)");
            }
            throw new IllegalArgumentException("--shard must be I/N (like 0/4), got '" + text + "'");
        }

        public boolean owns(int run) {
            return run % count == index;
        }

        @Override
        public String toString() {
            return index + "/" + count;
        }
    }

    /** The most runs {@code --jobs} may run at once. */
    public static final int MAX_JOBS = 64;

    /**
     * How to run: the seed, the number of runs, the shard, the per-run wall-time budget and how many runs go at once
     * ({@code jobs}; the report does not depend on it).
     */
    public record Settings(long seed, int runs, Shard shard, long runTimeoutMillis, int jobs) {
        public Settings {
            if (runs < 1) {
                throw new IllegalArgumentException("runs must be at least 1, got " + runs);
            }
            if (runTimeoutMillis < 1) {
                throw new IllegalArgumentException("run timeout " + runTimeoutMillis + " ms");
            }
            if (jobs < 1 || jobs > MAX_JOBS) {
                throw new IllegalArgumentException("--jobs must be 1.." + MAX_JOBS + ", got " + jobs);
            }
        }

        /** One run at a time. */
        public Settings(long seed, int runs, Shard shard, long runTimeoutMillis) {
            this(seed, runs, shard, runTimeoutMillis, 1);
        }

        /** These settings running {@code n} runs at once. */
        public Settings withJobs(int n) {
            return new Settings(seed, runs, shard, runTimeoutMillis, n);
        }

        /** What the file says, everything in one shard. */
        public static Settings of(Campaign c) {
            return new Settings(c.seed(), c.runs(), Shard.ALL, TimeUnit.SECONDS.toMillis(c.runTimeoutSeconds()));
        }
    }

    /** Told after each run (on the calling thread). */
    public interface Progress {
        void update(int done, int total, Tally all);
    }

    /** Runs one scenario; tests stand in for {@link ScenarioRunner#run(ScenarioFile.Loaded, PrintWriter, ScenarioRunner.Options)}. */
    @FunctionalInterface
    interface ScenarioRun {
        ScenarioRunner.Result run(ScenarioFile.Loaded loaded, PrintWriter out, ScenarioRunner.Options options);
    }

    /**
     * A fault a run includes.
     *
     * @param fault       its index in the plan
     * @param name        its label, or its kind in lower case
     * @param spec        what is injected (trigger seed and swept field set)
     * @param triggerSeed the seed of its trigger
     * @param swept       the swept field's value, or null when the sweep is not on this fault
     */
    public record Chosen(int fault, String name, FaultSpec spec, long triggerSeed, Long swept) {}

    /**
     * How a run came out, against the baseline (the same scenario without the campaign's faults). A failure "new"
     * here is one at a step (by index and what failed) where the baseline had none.
     *
     * @param detected  the system under test noticed: a step could not be carried out (the run stopped, e.g. the
     *                  driver's QUEUE_TIMEOUT), or an expect failed (sanitizer expects aside), or the driver read
     *                  event or fault records of a type more often than in the baseline, or an instance counted more
     *                  translation faults
     * @param recovered the scenario's own checks came out as in the baseline: every step was carried out and every
     *                  expect held (sanitizer expects aside) — the system masked the fault, or it did not matter
     * @param corrupted data went where it should not: the sanitizer reported more stale, freed or unmapped accesses
     *                  of some kind than in the baseline, or a {@code memory} or {@code read} expect failed
     * @param hung      the run did not finish within its wall-time budget (the other flags are then false)
     */
    public record Outcome(boolean detected, boolean recovered, boolean corrupted, boolean hung) {
        /** Corrupted and not detected: the case a campaign is there to find. */
        public boolean silent() {
            return corrupted && !detected;
        }
    }

    /**
     * One run.
     *
     * @param index    the run index
     * @param seed     its seed
     * @param faults   the faults it included, in plan order
     * @param outcome  how it came out
     * @param error    why the run could not be set up or failed outside its steps, or null
     * @param fired    per included fault, how often its kind fired on its instance beyond the baseline
     * @param evidence what the classification rests on (plain data)
     * @param failures the run's failure lines
     */
    public record Run(int index, long seed, List<Chosen> faults, Outcome outcome, String error,
            Map<String, Long> fired, Map<String, Object> evidence, List<String> failures) {}

    /** Counts of runs by outcome. */
    public static final class Tally {
        long active;
        long fired;
        long detected;
        long recovered;
        long corrupted;
        long silent;
        long hung;
        long errors;

        void add(Run r, boolean didFire) {
            add(r.outcome, didFire, r.error != null);
        }

        void add(Outcome o, boolean didFire, boolean error) {
            active++;
            fired += didFire ? 1 : 0;
            detected += o.detected ? 1 : 0;
            recovered += o.recovered ? 1 : 0;
            corrupted += o.corrupted ? 1 : 0;
            silent += o.silent() ? 1 : 0;
            hung += o.hung ? 1 : 0;
            errors += error ? 1 : 0;
        }

        public long runs() {
            return active;
        }

        public long detected() {
            return detected;
        }

        public long corrupted() {
            return corrupted;
        }

        public long hung() {
            return hung;
        }

        long errors() {
            return errors;
        }

        Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("runs", active);
            m.put("fired", fired);
            m.put("detected", detected);
            m.put("recovered", recovered);
            m.put("corrupted", corrupted);
            m.put("silent", silent);
            m.put("hung", hung);
            m.put("errors", errors);
            return m;
        }
    }

    /** What the scenario showed with the campaign's faults left out. */
    record Observed(List<ScenarioRunner.Failure> failed, Map<String, Map<String, Long>> events,
            Map<String, Long> faults, Map<String, Map<String, Long>> injected, Map<String, Long> sanitizer) {}

    private final CampaignFile.Loaded loaded;
    private final Settings settings;
    private final ScenarioRun scenarioRun;

    CampaignRunner(CampaignFile.Loaded loaded, Settings settings, ScenarioRun scenarioRun) {
        this.loaded = loaded;
        this.settings = settings;
        this.scenarioRun = scenarioRun;
    }

    /**
     * Runs the campaign's shard.
     *
     * @throws CampaignException when the scenario does not run without the campaign's faults (the baseline)
     */
    public static CampaignReport run(CampaignFile.Loaded loaded, Settings settings, Progress progress) {
        return new CampaignRunner(loaded, settings, ScenarioRunner::run).run(progress);
    }

    /** The seeds of runs 0..runs-1. */
    public static long[] runSeeds(long campaignSeed, int runs) {
        SplittableRandom root = new SplittableRandom(campaignSeed);
        long[] seeds = new long[runs];
        for (int i = 0; i < runs; i++) {
            seeds[i] = root.nextLong();
        }
        return seeds;
    }

    /** The faults run {@code index} with seed {@code runSeed} includes. */
    public static List<Chosen> choose(Campaign c, int index, long runSeed) {
        SplittableRandom r = new SplittableRandom(runSeed);
        List<Chosen> chosen = new ArrayList<>();
        for (int j = 0; j < c.faults().size(); j++) {
            Campaign.PlannedFault f = c.faults().get(j);
            double u = r.nextDouble();
            long triggerSeed = r.nextLong();
            if (u >= f.probability()) {
                continue;
            }
            FaultSpec spec = f.spec();
            Long swept = null;
            if (c.sweep() != null && c.sweep().fault().equals(f.name())) {
                long v = c.sweep().values().get(index % c.sweep().values().size());
                swept = v;
                spec.trigger(t -> {
                    if (c.sweep().field() == Campaign.Sweep.Field.SKIP_FIRST) {
                        t.skipFirst(v);
                    } else {
                        t.count(v);
                    }
                });
            }
            spec.trigger(t -> t.seed(triggerSeed));
            chosen.add(new Chosen(j, f.name(), spec, triggerSeed, swept));
        }
        return chosen;
    }

    CampaignReport run(Progress progress) {
        Campaign c = loaded.campaign();
        long[] seeds = runSeeds(settings.seed(), settings.runs());
        List<Integer> mine = new ArrayList<>();
        for (int i = 0; i < settings.runs(); i++) {
            if (settings.shard().owns(i)) {
                mine.add(i);
            }
        }
        ExecutorService pool = Executors.newFixedThreadPool(settings.jobs(), r -> {
            Thread t = new Thread(r, "campaign-job");
            t.setDaemon(true);
            return t;
        });
        try {
            Attempt base = attempt(List.of());
            if (base.hung) {
                throw new CampaignException(loaded.source() + ": the scenario without the campaign's faults did not"
                        + " finish within run_timeout_seconds (" + settings.runTimeoutMillis() / 1000 + " s)");
            }
            if (base.error != null) {
                throw new CampaignException(loaded.source() + ": the scenario cannot run: " + base.error);
            }
            Observed baseline = observe(base.result);
            Map<String, Tally> byFault = new LinkedHashMap<>();
            c.faults().forEach(f -> byFault.put(f.name(), new Tally()));
            Tally all = new Tally();
            Tally sofar = new Tally();
            if (progress != null) {
                progress.update(0, mine.size(), sofar);
            }
            Run[] done = new Run[settings.runs()];
            CompletionService<Run> finished = new ExecutorCompletionService<>(pool);
            for (int i : mine) {
                finished.submit(() -> {
                    List<Chosen> chosen = choose(c, i, seeds[i]);
                    return classify(i, seeds[i], chosen, attempt(chosen), baseline);
                });
            }
            for (int n = 1; n <= mine.size(); n++) {
                Run r = take(finished);
                done[r.index()] = r;
                sofar.add(r, r.fired.values().stream().anyMatch(k -> k > 0));
                if (progress != null) {
                    progress.update(n, mine.size(), sofar);
                }
            }
            List<Run> runs = new ArrayList<>();
            for (int i : mine) { // tallies in index order, whatever order the runs finished in
                Run r = done[i];
                runs.add(r);
                all.add(r, r.fired.values().stream().anyMatch(k -> k > 0));
                for (Chosen ch : r.faults()) {
                    byFault.get(ch.name()).add(r, r.fired.getOrDefault(ch.name(), 0L) > 0);
                }
            }
            return new CampaignReport(loaded, settings, base.result, runs, byFault, all);
        } finally {
            pool.shutdownNow();
        }
    }

    private static Run take(CompletionService<Run> finished) {
        try {
            return finished.take().get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CampaignException("interrupted");
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            if (cause instanceof RuntimeException re) {
                throw re;
            }
            throw new IllegalStateException(cause);
        }
    }

    /** A run's raw result: its scenario result, or hung, or an error. */
    private record Attempt(ScenarioRunner.Result result, boolean hung, String error) {}

    /**
     * Runs the scenario with {@code chosen} on a thread of its own, waiting at most the run's budget. Thread-safe:
     * parallel jobs call it at once, each run on its own machine and thread.
     */
    private Attempt attempt(List<Chosen> chosen) {
        List<FaultSpec> specs = chosen.stream().map(Chosen::spec).toList();
        ExecutorService worker = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "campaign-run");
            t.setDaemon(true); // a run stuck for good must not keep the JVM alive
            return t;
        });
        PrintWriter out = new PrintWriter(new StringWriter()); // each run's own lines are not part of the campaign
        Future<ScenarioRunner.Result> f = worker.submit(() -> scenarioRun.run(loaded.scenario(), out,
                ScenarioRunner.Options.inProcess().withInjections(specs)));
        try {
            return new Attempt(f.get(settings.runTimeoutMillis(), TimeUnit.MILLISECONDS), false, null);
        } catch (TimeoutException e) {
            f.cancel(true);
            return new Attempt(null, true, null);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            return new Attempt(null, false, cause instanceof org.iommuemu.device.scenario.ScenarioException
                    ? cause.getMessage() : cause.getClass().getSimpleName() + ": " + cause.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            f.cancel(true);
            throw new CampaignException("interrupted");
        } finally {
            worker.shutdownNow();
        }
    }

    @SuppressWarnings("unchecked")
    static Observed observe(ScenarioRunner.Result r) {
        Map<String, Map<String, Long>> events = new TreeMap<>();
        Map<String, Long> faults = new TreeMap<>();
        Map<String, Map<String, Long>> injected = new TreeMap<>();
        Map<String, Object> iommus = (Map<String, Object>) r.report().getOrDefault("iommus", Map.of());
        iommus.forEach((name, v) -> {
            Map<String, Object> m = (Map<String, Object>) v;
            events.put(name, longs((Map<String, Object>) m.getOrDefault("events_read_by_driver", Map.of())));
            faults.put(name, ((Number) m.getOrDefault("faults", 0L)).longValue());
            injected.put(name, longs((Map<String, Object>) m.getOrDefault("injected", Map.of())));
        });
        Map<String, Object> sanitizer = (Map<String, Object>) r.report().getOrDefault("sanitizer", Map.of());
        Map<String, Long> reports = longs((Map<String, Object>) sanitizer.getOrDefault("reports", Map.of()));
        return new Observed(r.failed(), events, faults, injected, reports);
    }

    private static Map<String, Long> longs(Map<String, Object> m) {
        Map<String, Long> out = new TreeMap<>();
        m.forEach((k, v) -> out.put(k, ((Number) v).longValue()));
        return out;
    }

    private static String key(ScenarioRunner.Failure f) {
        return "steps[" + f.step() + "] " + f.what();
    }

    Run classify(int index, long seed, List<Chosen> chosen, Attempt a, Observed base) {
        if (a.hung) {
            return new Run(index, seed, chosen, new Outcome(false, false, false, true), null, Map.of(), Map.of(),
                    List.of());
        }
        if (a.error != null) {
            return new Run(index, seed, chosen, new Outcome(false, false, false, false), a.error, Map.of(),
                    Map.of(), List.of());
        }
        Observed o = observe(a.result);
        java.util.Set<String> before = new java.util.HashSet<>();
        base.failed().forEach(f -> before.add(key(f)));
        List<String> newFailed = new ArrayList<>();
        boolean stepError = false;
        boolean expectFailed = false;
        boolean dataWrong = false;
        for (ScenarioRunner.Failure f : o.failed()) {
            if (f.what().equals("sanitizer") || before.contains(key(f))) {
                continue;
            }
            newFailed.add(key(f));
            if (f.what().equals("step")) {
                stepError = true;
            } else if (!f.what().equals("expect.sanitizer")) {
                expectFailed = true;
                dataWrong |= f.what().equals("expect.memory") || f.what().equals("expect.read");
            }
        }
        Map<String, Object> newEvents = new TreeMap<>();
        o.events().forEach((inst, byType) -> {
            Map<String, Long> grew = grown(base.events().getOrDefault(inst, Map.of()), byType);
            if (!grew.isEmpty()) {
                newEvents.put(inst, grew);
            }
        });
        Map<String, Long> newFaults = grown(base.faults(), o.faults());
        Map<String, Long> newReports = grown(base.sanitizer(), o.sanitizer());
        boolean detected = stepError || expectFailed || !newEvents.isEmpty() || !newFaults.isEmpty();
        boolean recovered = !stepError && !expectFailed;
        boolean corrupted = !newReports.isEmpty() || dataWrong;
        Map<String, Long> fired = new LinkedHashMap<>();
        for (Chosen ch : chosen) {
            String inst = ch.spec().target().iommu();
            String kind = ch.spec().kind().name();
            long n = o.injected().getOrDefault(inst, Map.of()).getOrDefault(kind, 0L)
                    - base.injected().getOrDefault(inst, Map.of()).getOrDefault(kind, 0L);
            fired.put(ch.name(), Math.max(0, n));
        }
        Map<String, Object> evidence = new LinkedHashMap<>();
        evidence.put("new_failures", newFailed);
        evidence.put("new_events", newEvents);
        evidence.put("new_translation_faults", newFaults);
        evidence.put("new_sanitizer_reports", newReports);
        return new Run(index, seed, chosen, new Outcome(detected, recovered, corrupted, false), null, fired,
                evidence, a.result.failures());
    }

    /** The keys whose count in {@code now} is above {@code before}, with the difference. */
    private static Map<String, Long> grown(Map<String, Long> before, Map<String, Long> now) {
        Map<String, Long> out = new TreeMap<>();
        now.forEach((k, v) -> {
            long d = v - before.getOrDefault(k, 0L);
            if (d > 0) {
                out.put(k, d);
            }
        });
        return out;
    }
}
