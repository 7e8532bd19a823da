package org.iommuemu.device.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.iommuemu.device.campaign.CampaignException;
import org.iommuemu.device.campaign.CampaignMerge;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code iommu-emu campaign-merge SHARD.json...}: the whole campaign's report and table from its shards' reports,
 * the same bytes and table a run without {@code --shard} gives. Exits 0, or 2 when the reports do not make up one
 * campaign (the message names the file).
 */
@Command(name = "campaign-merge", mixinStandardHelpOptions = true,
        description = {"Merge the JSON reports of a campaign's shards (campaign",
            "--shard I/N --report FILE, for I = 0..N-1) into the whole",
            "campaign's report: prints its table, and writes the report with",
            "--report. Exit status: 0 merged; 2 the reports are not the shards",
            "of one campaign."})
final class CampaignMergeCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Parameters(arity = "1..*", paramLabel = "SHARD.json", description = "Every shard's report, in any order.")
    List<Path> shards;

    @Option(names = "--report", paramLabel = "FILE.json", description = "Write the merged report as JSON to FILE.")
    Path report;

    @Override
    public Integer call() {
        List<CampaignMerge.Part> parts = new ArrayList<>();
        for (Path p : shards) {
            String text;
            try {
                text = Files.readString(p, StandardCharsets.UTF_8);
            } catch (NoSuchFileException e) {
                throw new IommuEmu.UserError(p + ": no such file");
            } catch (IOException e) {
                throw new IommuEmu.UserError(p + ": cannot read: " + e.getMessage());
            }
            try {
                parts.add(CampaignMerge.read(p.toString(), text));
            } catch (CampaignException e) {
                throw new IommuEmu.UserError(e.getMessage());
            }
        }
        Map<String, Object> merged;
        try {
            merged = CampaignMerge.merge(parts);
        } catch (CampaignException e) {
            throw new IommuEmu.UserError(e.getMessage());
        }
        if (report != null) {
            try {
                Files.writeString(report, CampaignMerge.toJson(merged), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new IommuEmu.UserError("--report " + report + ": cannot write: " + e.getMessage());
            }
        }
        PrintWriter out = spec.commandLine().getOut();
        out.print(CampaignMerge.table(merged));
        out.flush();
        return 0;
    }
}
