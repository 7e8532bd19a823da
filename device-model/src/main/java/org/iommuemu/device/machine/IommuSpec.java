package org.iommuemu.device.machine;

import java.util.regex.Pattern;
import org.iommuemu.device.smmuv3.SmmuV3Config;
import org.iommuemu.device.vtd.VtdConfig;

/**
 * One IOMMU instance of a machine: its name, architecture and, for an SMMUv3, what it implements.
 *
 * @param name instance name used on the bus, e.g. "smmu0": letters, digits, '-', '_' and '.', 1..32 characters
 * @param type the architecture
 * @param smmuv3 the features, queue sizes, cache sizes and costs of an SMMUv3 instance; null for
 *     {@link SmmuV3Config#defaults()} (and always null for other architectures)
 * @param vtd the capabilities, cache sizes and costs of a VT-d instance; null for {@link VtdConfig#defaults()}
 *     (and always null for other architectures)
 */
public record IommuSpec(String name, IommuType type, SmmuV3Config smmuv3, VtdConfig vtd) {
    private static final Pattern NAME = Pattern.compile("[A-Za-z][A-Za-z0-9_.-]{0,31}");

    public IommuSpec {
        if (name == null || !NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("bad IOMMU instance name '" + name
                    + "': use 1 to 32 letters, digits, '-', '_' or '.', starting with a letter");
        }
        if (type == null) {
            throw new IllegalArgumentException("IOMMU instance '" + name + "' has no kind");
        }
        if (smmuv3 != null && type != IommuType.SMMUV3) {
            throw new IllegalArgumentException("IOMMU instance '" + name + "' is " + type
                    + ", not smmuv3: it takes no SMMUv3 settings");
        }
        if (vtd != null && type != IommuType.VTD) {
            throw new IllegalArgumentException("IOMMU instance '" + name + "' is " + type
                    + ", not vtd: it takes no VT-d settings");
        }
    }

    /** An instance with the architecture's default features. */
    public IommuSpec(String name, IommuType type) {
        this(name, type, null, null);
    }

    /** An SMMUv3 (or default) instance. */
    public IommuSpec(String name, IommuType type, SmmuV3Config smmuv3) {
        this(name, type, smmuv3, null);
    }

    /** The VT-d configuration this instance is built with. */
    public VtdConfig vtdOrDefaults() {
        return vtd == null ? VtdConfig.defaults() : vtd;
    }

    /** The SMMUv3 configuration this instance is built with. */
    public SmmuV3Config smmuv3OrDefaults() {
        return smmuv3 == null ? SmmuV3Config.defaults() : smmuv3;
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
