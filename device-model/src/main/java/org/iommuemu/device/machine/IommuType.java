package org.iommuemu.device.machine;

import java.util.Locale;

/** The architecture an IOMMU instance follows. */
public enum IommuType {
    SMMUV3("smmuv3"),
    VTD("vtd");

    private final String id;

    IommuType(String id) {
        this.id = id;
    }

    /** The name used on the command line and in configuration files. */
    public String id() {
        return id;
    }

    /** Parses "smmuv3" or "vtd" (case-insensitive). */
    public static IommuType parse(String text) {
        for (IommuType t : values()) {
            if (t.id.equals(text.toLowerCase(Locale.ROOT))) {
                return t;
            }
        }
        throw new IllegalArgumentException("unknown IOMMU kind '" + text + "' (expected smmuv3 or vtd)");
    }
}
