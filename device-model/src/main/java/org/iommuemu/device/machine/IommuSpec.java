package org.iommuemu.device.machine;

import java.util.regex.Pattern;

/**
 * One IOMMU instance of a machine: its name and architecture.
 *
 * @param name instance name used on the bus, e.g. "smmu0": letters, digits, '-', '_' and '.', 1..32 characters
 * @param type the architecture
 */
public record IommuSpec(String name, IommuType type) {
    private static final Pattern NAME = Pattern.compile("[A-Za-z][A-Za-z0-9_.-]{0,31}");

    public IommuSpec {
        if (name == null || !NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("bad IOMMU instance name '" + name
                    + "': use 1 to 32 letters, digits, '-', '_' or '.', starting with a letter");
        }
        if (type == null) {
            throw new IllegalArgumentException("IOMMU instance '" + name + "' has no kind");
        }
    }

    /** Parses {@code NAME=KIND}, e.g. {@code smmu0=smmuv3}, as given to {@code --iommu}. */
    public static IommuSpec parse(String text) {
        int eq = text.indexOf('=');
        if (eq < 0) {
            throw new IllegalArgumentException("expected NAME=KIND (e.g. smmu0=smmuv3), got '" + text + "'");
        }
        return new IommuSpec(text.substring(0, eq).trim(), IommuType.parse(text.substring(eq + 1).trim()));
    }
}
