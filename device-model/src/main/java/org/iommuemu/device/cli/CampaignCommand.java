package org.iommuemu.device.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.iommuemu.device.campaign.CampaignException;
import org.iommuemu.device.campaign.CampaignFile;
import org.iommuemu.device.campaign.CampaignReport;
import org.iommuemu.device.campaign.CampaignRunner;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code iommu-emu campaign FILE}: runs a scenario many times under a fault plan (see README, "Campaigns") and prints
 * a table of outcomes by fault on standard output; a progress line goes to standard error. Exits 0 when the
 * campaign ran, whatever its runs found, and 2 when the file, its scenario or an option is bad.
 */
@Command(name = "campaign", mixinStandardHelpOptions = true,
        description = {"Run a scenario many times under a fault plan (see README,",
            "\"Campaigns\"): each run draws its faults from the campaign seed and",
            "its index, runs on a fresh embedded machine, and is classified as",
            "detected, recovered, corrupted and/or hung against a run without",
            "the faults. Prints a table by fault. Exit status: 0 the campaign",
            "ran (whatever the outcomes); 2 a bad file or option."})
final class CampaignCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "FILE", description = "The campaign file (YAML).")
    Path file;

    @Option(names = "--seed", paramLabel = "S", description = "The campaign seed (default: the file's seed, else 0).")
    Long seed;

    @Option(names = "--runs", paramLabel = "N", description = "How many runs (default: the file's runs, else 10).")
    Integer runs;

    @Option(names = "--shard", paramLabel = "I/N",
            description = {"Run only the runs whose index %% N == I (0 <= I < N), so N",
                "machines split one campaign; campaign-merge puts their",
                "reports back together."})
    String shard;

    @Option(names = "--jobs", paramLabel = "N",
            description = {"Run N runs at once, each on its own machine (default 1).",
                "The report does not depend on N."})
    Integer jobs;

    @Option(names = "--report", paramLabel = "FILE.json",
            description = "Write the report (every run: seed, faults, outcome, evidence) as JSON to FILE.")
    Path report;

    @Option(names = "--progress", negatable = true,
            description = {"Show a progress line on standard error (default: only when",
                "the session is interactive)."})
    Boolean progress;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        CampaignFile.Loaded loaded;
        CampaignRunner.Settings settings;
        try {
            loaded = CampaignFile.read(file);
            CampaignRunner.Settings fromFile = CampaignRunner.Settings.of(loaded.campaign());
            if (runs != null && runs < 1) {
                throw new IommuEmu.UserError("--runs must be at least 1, got " + runs);
            }
            settings = new CampaignRunner.Settings(seed != null ? seed : fromFile.seed(),
                    runs != null ? runs : fromFile.runs(),
                    shard != null ? CampaignRunner.Shard.parse(shard) : CampaignRunner.Shard.ALL,
                    fromFile.runTimeoutMillis(), jobs != null ? jobs : 1);
        } catch (CampaignException e) {
            throw new IommuEmu.UserError(e.getMessage());
        } catch (IllegalArgumentException e) {
            throw new IommuEmu.UserError(e.getMessage());
        }
        if (report != null && report.toAbsolutePath().getParent() != null
                && !Files.isDirectory(report.toAbsolutePath().getParent())) {
            throw new IommuEmu.UserError("--report " + report + ": no such directory");
        }
        boolean showProgress = progress != null ? progress : System.console() != null;
        CampaignReport result;
        try {
            result = CampaignRunner.run(loaded, settings, showProgress ? bar(err) : null);
        } catch (CampaignException e) {
            throw new IommuEmu.UserError(e.getMessage());
        } finally {
            if (showProgress) {
                err.println();
                err.flush();
            }
        }
        if (report != null) {
            try {
                Files.writeString(report, result.toJson(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new IommuEmu.UserError("--report " + report + ": cannot write: " + e.getMessage());
            }
        }
        out.print(result.table());
        out.flush();
        return 0;
    }

    /** A progress line on {@code err}, rewritten in place with a carriage return after each run. */
    private static CampaignRunner.Progress bar(PrintWriter err) {
        return (done, total, all) -> {
            int width = 30;
            int filled = total == 0 ? width : (int) ((long) done * width / total);
            err.print("\r[" + "#".repeat(filled) + " ".repeat(width - filled) + "] " + done + "/" + total
                    + " runs: " + all.detected() + " detected, " + all.corrupted() + " corrupted, " + all.hung()
                    + " hung ");
            err.flush();
        };
    }
}
