package org.iommuemu.device.campaign;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.iommuemu.device.config.ConfigException;
import org.iommuemu.device.config.YamlFiles;
import org.iommuemu.device.inject.FaultSpec;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.scenario.ScenarioException;
import org.iommuemu.device.scenario.ScenarioFile;

/**
 * Reads a campaign file strictly ({@link YamlFiles}: unknown keys and bad values name the file, line and column),
 * reads its scenario (relative to the campaign file) with {@link ScenarioFile}, and checks what the reader cannot:
 * that the scenario is given, that every fault is a valid {@link FaultSpec} on an instance of the scenario's
 * machine, that fault names (label, or kind) are unique, and that a sweep names a fault and has values. Those errors
 * name the entry's line and column.
 */
public final class CampaignFile {
    private CampaignFile() {}

    /**
     * A checked campaign.
     *
     * @param source   the campaign file as given
     * @param campaign what it says
     * @param scenario its scenario, read and checked
     */
    public record Loaded(String source, Campaign campaign, ScenarioFile.Loaded scenario) {}

    /** Reads and checks {@code file} and its scenario; throws {@link CampaignException} naming the place. */
    public static Loaded read(Path file) {
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new CampaignException(file + ": no such file");
        } catch (IOException e) {
            throw new CampaignException(file + ": cannot read: " + e.getMessage());
        }
        String source = file.toString();
        Campaign c;
        try {
            c = YamlFiles.parse(source, text, Campaign.class);
        } catch (ConfigException e) {
            throw new CampaignException(e.getMessage(), e);
        }
        List<int[]> faultAt = elementLocations(text, "faults");
        int[] top = keyLocation(text, "scenario");
        if (c.scenario == null) {
            throw new CampaignException(source + ": scenario is required (the scenario file to run, relative to"
                    + " this file)");
        }
        Path scenarioPath = relative(file, c.scenario);
        ScenarioFile.Loaded scenario;
        try {
            scenario = ScenarioFile.read(scenarioPath);
        } catch (ScenarioException e) {
            throw new CampaignException(at(source, top) + "scenario: " + e.getMessage(), e);
        }
        Set<String> instances = new java.util.TreeSet<>();
        for (IommuSpec spec : scenario.machine().iommus()) {
            instances.add(spec.name());
        }
        if (c.faults.isEmpty()) {
            throw new CampaignException(source + ": faults: the fault plan is empty (give at least one fault)");
        }
        Set<String> names = new HashSet<>();
        for (int i = 0; i < c.faults.size(); i++) {
            Campaign.PlannedFault f = c.faults.get(i);
            String where = at(source, i < faultAt.size() ? faultAt.get(i) : null) + "faults[" + i + "]";
            if (f == null || f.kind == null) {
                throw new CampaignException(where + ": kind is required");
            }
            where += " (" + f.name() + ")";
            FaultSpec spec;
            try {
                spec = f.spec().validate();
            } catch (IllegalArgumentException e) {
                throw new CampaignException(where + ": " + e.getMessage(), e);
            }
            if (spec.target().iommu().isEmpty()) {
                throw new CampaignException(where + ": target.iommu is required (instances: " + instances + ")");
            }
            if (!instances.contains(spec.target().iommu())) {
                throw new CampaignException(where + ": target.iommu: the scenario's machine has no instance '"
                        + spec.target().iommu() + "' (instances: " + instances + ")");
            }
            if (!names.add(f.name())) {
                throw new CampaignException(where + ": a second fault named '" + f.name() + "' (give each a"
                        + " label)");
            }
        }
        if (c.sweep != null) {
            Campaign.Sweep s = c.sweep;
            String where = at(source, keyLocation(text, "sweep")) + "sweep";
            if (s.fault == null || s.field == null || s.values.isEmpty()) {
                throw new CampaignException(where + ": fault, field and values are required");
            }
            if (!names.contains(s.fault)) {
                throw new CampaignException(where + ": fault '" + s.fault + "' is not the label (or kind) of a"
                        + " fault of the plan (" + String.join(", ", new java.util.TreeSet<>(names)) + ")");
            }
            for (Campaign.PlannedFault f : c.faults) {
                if (f.name().equals(s.fault) && f.kind.oneShot()) {
                    throw new CampaignException(where + ": " + f.kind + " is carried out once, when injected; it"
                            + " has no trigger to sweep");
                }
            }
        }
        return new Loaded(source, c, scenario);
    }

    private static Path relative(Path campaign, String scenario) {
        Path p = Path.of(scenario);
        if (p.isAbsolute()) {
            return p;
        }
        Path dir = campaign.getParent();
        return dir == null ? p : dir.resolve(p);
    }

    private static String at(String source, int[] loc) {
        return loc == null ? source + ": " : source + ":" + loc[0] + ":" + loc[1] + ": ";
    }

    /** Line and column of the top-level key {@code key}, or null. */
    private static int[] keyLocation(String text, String key) {
        try (JsonParser p = new YAMLFactory().createParser(text)) {
            int depth = 0;
            for (JsonToken t = p.nextToken(); t != null; t = p.nextToken()) {
                if (t == JsonToken.FIELD_NAME && depth == 1 && key.equals(p.currentName())) {
                    return new int[] {p.currentTokenLocation().getLineNr(), p.currentTokenLocation().getColumnNr()};
                } else if (t == JsonToken.START_ARRAY || t == JsonToken.START_OBJECT) {
                    depth++;
                } else if (t == JsonToken.END_ARRAY || t == JsonToken.END_OBJECT) {
                    depth--;
                }
            }
        } catch (IOException e) {
            return null; // the reader accepted the text already; locations are a courtesy
        }
        return null;
    }

    /** Line and column of each element of the top-level list {@code key}. */
    private static List<int[]> elementLocations(String text, String key) {
        List<int[]> at = new ArrayList<>();
        try (JsonParser p = new YAMLFactory().createParser(text)) {
            int depth = 0;
            boolean inList = false;
            String field = null;
            for (JsonToken t = p.nextToken(); t != null; t = p.nextToken()) {
                if (t == JsonToken.FIELD_NAME && depth == 1) {
                    field = p.currentName();
                } else if (t == JsonToken.START_ARRAY || t == JsonToken.START_OBJECT) {
                    if (depth == 1 && t == JsonToken.START_ARRAY && key.equals(field)) {
                        inList = true;
                    } else if (inList && depth == 2) {
                        at.add(new int[] {p.currentTokenLocation().getLineNr(),
                            p.currentTokenLocation().getColumnNr()});
                    }
                    depth++;
                } else if (t == JsonToken.END_ARRAY || t == JsonToken.END_OBJECT) {
                    depth--;
                    if (depth == 1) {
                        inList = false;
                    }
                } else if (inList && depth == 2) {
                    at.add(new int[] {p.currentTokenLocation().getLineNr(), p.currentTokenLocation().getColumnNr()});
                }
            }
        } catch (IOException e) {
            return List.of();
        }
        return at;
    }
}
