package org.iommuemu.device;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;

/** What the device fuzz targets share for changing guest-memory words. */
public final class FuzzWords {
    private FuzzWords() {}

    /** Keeps a word, flips one or two bits of it, or replaces it, as {@code data} says. */
    public static long mutate(FuzzedDataProvider data, long word) {
        return switch (data.consumeInt(0, 3)) {
            case 0 -> word;
            case 1 -> word ^ (1L << data.consumeInt(0, 63));
            case 2 -> word ^ (1L << data.consumeInt(0, 63)) ^ (1L << data.consumeInt(0, 63));
            default -> data.consumeLong();
        };
    }
}
