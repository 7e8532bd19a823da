package org.iommuemu.core.pgtable.fmt;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Supplier;
import org.iommuemu.core.pgtable.PtFormat;

/**
 * The formats by name, in their most common configuration, for places that name a format in text
 * (benchmarks, scenario files, the bus). Other configurations are built with each format's factories.
 */
public final class Formats {
    private Formats() {}

    private static final Map<String, Supplier<PtFormat>> BY_NAME = new LinkedHashMap<>();

    static {
        BY_NAME.put("arm64-lpae-s1-4k", () -> Arm64Lpae.stage1(12, 48, 48));
        BY_NAME.put("arm64-lpae-s1-16k", () -> Arm64Lpae.stage1(14, 47, 48));
        BY_NAME.put("arm64-lpae-s1-64k", () -> Arm64Lpae.stage1(16, 48, 48));
        BY_NAME.put("arm64-lpae-s2-4k", () -> Arm64Lpae.stage2(12, 48, 48));
        BY_NAME.put("arm64-lpae-s2-16k", () -> Arm64Lpae.stage2(14, 48, 48));
        BY_NAME.put("arm64-lpae-s2-64k", () -> Arm64Lpae.stage2(16, 48, 48));
        BY_NAME.put("armv7s", Armv7s::create);
        BY_NAME.put("vtd-ss", () -> VtdSs.levels(4));
        BY_NAME.put("x86-64", () -> X86Pt.levels(4));
        BY_NAME.put("amdv1", AmdV1::create);
    }

    /** The format called {@code name}; the message of the exception lists the names. */
    public static PtFormat byName(String name) {
        Supplier<PtFormat> s = BY_NAME.get(name);
        if (s == null) {
            throw new IllegalArgumentException("unknown page-table format '" + name + "' (known: "
                    + String.join(", ", BY_NAME.keySet()) + ")");
        }
        return s.get();
    }

    /** Every name {@link #byName} knows, in a stable order. */
    public static Iterable<String> names() {
        return BY_NAME.keySet();
    }
}
