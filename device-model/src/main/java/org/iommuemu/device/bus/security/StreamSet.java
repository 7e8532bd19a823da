package org.iommuemu.device.bus.security;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A set of stream ids (requester ids) written as a comma-separated list of ids and inclusive ranges, e.g.
 * {@code 16-31,0x40,0x100-0x1ff}. Ids are unsigned 32-bit values in decimal or {@code 0x} hex. Membership is a
 * binary search over the sorted, merged ranges: no allocation.
 */
public final class StreamSet {
    private final long[] first;
    private final long[] last;
    private final String text;

    private StreamSet(long[] first, long[] last, String text) {
        this.first = first;
        this.last = last;
        this.text = text;
    }

    /**
     * Parses {@code text}.
     *
     * @throws IllegalArgumentException naming the bad element
     */
    public static StreamSet parse(String text) {
        if (text == null || text.isBlank()) {
            throw new IllegalArgumentException("streams is empty: give ids and ranges such as 16-31,0x40");
        }
        List<long[]> ranges = new ArrayList<>();
        for (String part : text.split(",", -1)) {
            String p = part.trim();
            int dash = p.indexOf('-');
            long a = parseId(dash < 0 ? p : p.substring(0, dash), text);
            long b = dash < 0 ? a : parseId(p.substring(dash + 1), text);
            if (b < a) {
                throw new IllegalArgumentException("streams range '" + p + "' ends before it starts");
            }
            ranges.add(new long[] {a, b});
        }
        ranges.sort((x, y) -> Long.compare(x[0], y[0]));
        List<long[]> merged = new ArrayList<>();
        for (long[] r : ranges) {
            long[] top = merged.isEmpty() ? null : merged.get(merged.size() - 1);
            if (top != null && r[0] <= top[1] + 1) {
                top[1] = Math.max(top[1], r[1]);
            } else {
                merged.add(r.clone());
            }
        }
        long[] f = new long[merged.size()];
        long[] l = new long[merged.size()];
        StringBuilder canonical = new StringBuilder();
        for (int i = 0; i < f.length; i++) {
            f[i] = merged.get(i)[0];
            l[i] = merged.get(i)[1];
            canonical.append(i == 0 ? "" : ",").append(f[i]).append(f[i] == l[i] ? "" : "-" + l[i]);
        }
        return new StreamSet(f, l, canonical.toString());
    }

    private static long parseId(String s, String whole) {
        String t = s.trim();
        try {
            long v = t.startsWith("0x") || t.startsWith("0X") ? Long.parseLong(t.substring(2), 16) : Long.parseLong(t);
            if (v < 0 || v > 0xffff_ffffL) {
                throw new NumberFormatException();
            }
            return v;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("streams '" + whole + "': '" + t
                    + "' is not a stream id (decimal or 0x hex, 0 to 0xffffffff)");
        }
    }

    /** Whether the set holds {@code streamId} (read as unsigned). */
    public boolean contains(int streamId) {
        long id = Integer.toUnsignedLong(streamId);
        int i = Arrays.binarySearch(first, id);
        if (i >= 0) {
            return true;
        }
        int below = -i - 2; // the last range starting before id
        return below >= 0 && id <= last[below];
    }

    /** The set in canonical form (sorted, merged, decimal), as messages and token files show it. */
    @Override
    public String toString() {
        return text;
    }
}
