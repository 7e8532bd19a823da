package org.iommuemu.core.bits;

import java.util.Locale;
import java.util.Objects;

/**
 * Byte sizes and addresses as people write them: {@code 4096}, {@code 0x8000_0000}, {@code 4G},
 * {@code 512 MiB}. Used by the command line ({@code --ram SIZE[@BASE]}) and by scenario files.
 *
 * <p>Syntax accepted by {@link #parse}: optional surrounding blanks; a decimal number, or a hexadecimal
 * one after {@code 0x}; underscores between digits ({@code 0x8000_0000}, {@code 1_000}); then, after
 * optional blanks, an optional unit, case-insensitive: {@code B}, {@code K}/{@code KB}/{@code KiB},
 * {@code M}/{@code MB}/{@code MiB}, {@code G}/{@code GB}/{@code GiB}, {@code T}/{@code TB}/{@code TiB}.
 * Every unit is a binary multiple (a kilobyte here is 1024 bytes, as memory sizes always are).
 *
 * <p>With hexadecimal numbers a trailing {@code B} is a hex digit ({@code 0x1B} is 27); write
 * {@code 0x1 B} for one byte. The result is an unsigned 64-bit quantity, like every address in this
 * project: values of 2^63 and more come back as negative {@code long}s.
 */
public final class Sizes {
    private Sizes() {}

    private static final String[] UNIT_NAMES = {"B", "KiB", "MiB", "GiB", "TiB"};

    /**
     * Parses a size or address.
     *
     * @throws IllegalArgumentException for text that is not a size, or a value that does not fit in 64
     *     unsigned bits
     */
    public static long parse(String text) {
        Objects.requireNonNull(text, "size text");
        String s = text.strip();
        if (s.isEmpty()) {
            throw bad(text, "it is empty");
        }
        int radix = 10;
        int i = 0;
        if (s.length() >= 2 && s.charAt(0) == '0' && (s.charAt(1) == 'x' || s.charAt(1) == 'X')) {
            radix = 16;
            i = 2;
        }
        StringBuilder digits = new StringBuilder(s.length());
        boolean lastWasUnderscore = false;
        for (; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '_') {
                if (digits.length() == 0) {
                    throw bad(text, "an underscore may only stand between digits");
                }
                lastWasUnderscore = true;
            } else if (Character.digit(c, radix) >= 0 && c < 0x80) {
                digits.append(c);
                lastWasUnderscore = false;
            } else {
                break;
            }
        }
        if (digits.length() == 0) {
            throw bad(text, radix == 16 ? "no hexadecimal digits after 0x" : "it does not start with a number");
        }
        if (lastWasUnderscore) {
            throw bad(text, "an underscore may only stand between digits");
        }
        String unit = s.substring(i).strip();
        int shift = unitShift(unit);
        if (shift < 0) {
            throw bad(text, "unknown unit '" + unit + "' (use B, K, KiB, M, MiB, G, GiB, T or TiB)");
        }
        long value;
        try {
            value = Long.parseUnsignedLong(digits, 0, digits.length(), radix);
        } catch (NumberFormatException e) {
            throw bad(text, "it does not fit in 64 bits");
        }
        if (shift > 0 && (value >>> (64 - shift)) != 0) {
            throw bad(text, "it does not fit in 64 bits");
        }
        return value << shift;
    }

    /**
     * Formats an unsigned byte count with the largest binary unit up to TiB that divides it exactly:
     * {@code "4 GiB"}, {@code "12 KiB"}, {@code "4097 B"}. {@link #parse} reads the result back.
     */
    public static String format(long bytes) {
        int unit = 0;
        if (bytes != 0) {
            unit = Math.min(Long.numberOfTrailingZeros(bytes) / 10, UNIT_NAMES.length - 1);
        }
        return Long.toUnsignedString(bytes >>> (10 * unit)) + " " + UNIT_NAMES[unit];
    }

    /** log2 of the unit's multiple, or -1 for an unknown unit. */
    private static int unitShift(String unit) {
        switch (unit.toUpperCase(Locale.ROOT)) {
            case "":
            case "B":
                return 0;
            case "K":
            case "KB":
            case "KIB":
                return 10;
            case "M":
            case "MB":
            case "MIB":
                return 20;
            case "G":
            case "GB":
            case "GIB":
                return 30;
            case "T":
            case "TB":
            case "TIB":
                return 40;
            default:
                return -1;
        }
    }

    private static IllegalArgumentException bad(String text, String why) {
        return new IllegalArgumentException("bad size '" + text + "': " + why);
    }
}
