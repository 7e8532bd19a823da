package org.iommuemu.core.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Property test: random sequences of scalar, bulk, zero and compare-and-exchange accesses of random
 * widths at random addresses (biased towards page and region boundaries, gaps and the top of the address
 * space) agree with a byte-map reference model, including which accesses fail, and with the model's
 * count of backing pages. Each sequence is generated from a seed; a failure names the seed and the
 * operations up to the failing one, so it can be replayed with {@link #replay}.
 */
class SparseRamModelTest {
    private static final int SEEDS = 300;
    private static final int OPS_PER_SEED = 60;

    private static final List<RamRegion> REGIONS = List.of(
            new RamRegion(0x1000, 0x2000),
            new RamRegion(0x3000, 0x2000), // adjacent to the first
            new RamRegion(0x8000, 0x1000), // after a gap
            new RamRegion(-0x2000L, 0x2000)); // ends exactly at 2^64

    /** Where interesting things happen: region and page boundaries, gaps, both ends of the space. */
    private static final long[] ANCHORS = {
        0, 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x8000, 0x9000, -0x2000L, -0x1000L, -0x10L,
    };

    private enum Op { R8, R16, R32, R64, W8, W16, W32, W64, READ, WRITE, ZERO, CAS, CAS_MATCH }

    @Test
    void randomOperationSequencesAgreeWithAByteMapModel() throws Exception {
        for (long seed = 0; seed < SEEDS; seed++) {
            replay(seed);
        }
    }

    /** Runs the sequence of one seed, failing with the seed and the operations so far on a disagreement. */
    static void replay(long seed) throws Exception {
        Random rnd = new Random(seed);
        SparseRam ram = new SparseRam(REGIONS);
        Model model = new Model();
        List<String> log = new ArrayList<>();
        for (int i = 0; i < OPS_PER_SEED; i++) {
            Op op = Op.values()[rnd.nextInt(Op.values().length)];
            long pa = ANCHORS[rnd.nextInt(ANCHORS.length)]
                    + (rnd.nextInt(4) == 0 ? rnd.nextInt(0x2201) - 0x1100 : rnd.nextInt(49) - 24);
            long value = rnd.nextLong();
            int len = switch (op) {
                case R8, W8 -> 1;
                case R16, W16 -> 2;
                case R32, W32 -> 4;
                case R64, W64, CAS, CAS_MATCH -> 8;
                case READ, WRITE -> rnd.nextInt(10) == 0 ? rnd.nextInt(9000) : rnd.nextInt(300);
                // sometimes long enough for zero to give pages back (SparseRam.DROP_THRESHOLD)
                case ZERO -> rnd.nextInt(10) == 0 ? (int) SparseRam.DROP_THRESHOLD + rnd.nextInt(9000)
                        : rnd.nextInt(10) == 0 ? rnd.nextInt(9000) : rnd.nextInt(300);
            };
            if (op == Op.CAS || op == Op.CAS_MATCH) {
                pa &= ~7L;
            }
            log.add(op + " " + len + " @ 0x" + Long.toHexString(pa));
            try {
                step(ram, model, op, pa, len, value);
                assertThat(ram.backedPages()).as("backed pages").isEqualTo(model.backed.size());
            } catch (AssertionError e) {
                fail("seed " + seed + ", operations " + log + ": " + e.getMessage(), e);
            }
        }
        for (RamRegion r : REGIONS) {
            byte[] all = new byte[(int) r.size()];
            ram.read(r.base(), all, 0, all.length);
            for (int j = 0; j < all.length; j++) {
                if (all[j] != model.get(r.base() + j)) {
                    fail("seed " + seed + ": byte at 0x" + Long.toHexString(r.base() + j) + " is " + all[j]
                            + ", model has " + model.get(r.base() + j) + "; operations " + log);
                }
            }
        }
    }

    private static void step(SparseRam ram, Model model, Op op, long pa, int len, long value) throws Exception {
        boolean ramOk = len == 0 || model.isRam(pa, len);
        byte[] data = new byte[len];
        new Random(value).nextBytes(data);
        long expected = op == Op.CAS_MATCH && ramOk ? model.value(pa, 8) : value >>> 3;
        try {
            switch (op) {
                case R8 -> assertThat(ram.read8(pa)).isEqualTo((int) model.value(pa, 1));
                case R16 -> assertThat(ram.read16(pa)).isEqualTo((int) model.value(pa, 2));
                case R32 -> assertThat(ram.read32(pa)).isEqualTo((int) model.value(pa, 4));
                case R64 -> assertThat(ram.read64(pa)).isEqualTo(model.value(pa, 8));
                case W8 -> ram.write8(pa, (int) value);
                case W16 -> ram.write16(pa, (int) value);
                case W32 -> ram.write32(pa, (int) value);
                case W64 -> ram.write64(pa, value);
                case READ -> {
                    byte[] dst = new byte[len + 2];
                    ram.read(pa, dst, 1, len);
                    for (int j = 0; j < len; j++) {
                        assertThat(dst[j + 1]).as("byte %d of the read", j).isEqualTo(model.get(pa + j));
                    }
                }
                case WRITE -> ram.write(pa, data, 0, len);
                case ZERO -> ram.zero(pa, len);
                case CAS, CAS_MATCH -> assertThat(ram.compareAndExchange64(pa, expected, value))
                        .as("witness").isEqualTo(model.value(pa, 8));
            }
        } catch (MemoryAccessException e) {
            assertThat(ramOk).as("%s of %d at 0x%s failed but is all RAM", op, len, Long.toHexString(pa)).isFalse();
            assertThat(e.reason()).isEqualTo(MemoryAccessException.Reason.NOT_RAM);
            assertThat(e.address()).isEqualTo(pa);
            assertThat(e.length()).isEqualTo(len);
            return;
        }
        assertThat(ramOk).as("%s of %d at 0x%s succeeded but is not all RAM", op, len, Long.toHexString(pa)).isTrue();
        // The access succeeded: apply it to the model.
        switch (op) {
            case W8, W16, W32, W64 -> model.putValue(pa, len, value);
            case WRITE -> {
                for (int j = 0; j < len; j++) {
                    model.put(pa + j, data[j]);
                }
            }
            case ZERO -> model.zero(pa, len);
            case CAS, CAS_MATCH -> {
                if (model.value(pa, 8) == expected) {
                    model.putValue(pa, 8, value);
                } else {
                    model.backed.add(pa >>> 12); // a failed CAS still installs the page
                }
            }
            default -> { }
        }
    }

    /** Bytes by address (absent: zero) and the pages that should be backed. */
    private static final class Model {
        final Map<Long, Byte> bytes = new HashMap<>();
        final Set<Long> backed = new HashSet<>();

        boolean isRam(long pa, long len) {
            if (Long.compareUnsigned(pa + len - 1, pa) < 0) {
                return false; // wraps
            }
            for (long j = 0; j < len; j++) {
                long a = pa + j;
                if (REGIONS.stream().noneMatch(r -> r.contains(a, 1))) {
                    return false;
                }
            }
            return true;
        }

        byte get(long pa) {
            return bytes.getOrDefault(pa, (byte) 0);
        }

        void put(long pa, byte b) {
            bytes.put(pa, b);
            backed.add(pa >>> 12);
        }

        long value(long pa, int n) {
            long v = 0;
            for (int j = 0; j < n; j++) {
                v |= (get(pa + j) & 0xffL) << (8 * j);
            }
            return v;
        }

        void putValue(long pa, int n, long value) {
            for (int j = 0; j < n; j++) {
                put(pa + j, (byte) (value >>> (8 * j)));
            }
        }

        void zero(long pa, long len) {
            for (long j = 0; j < len; j++) {
                bytes.remove(pa + j);
            }
            // A long range gives back the pages wholly inside it; partly covered pages, and every page of a
            // short range, keep their backing (cleared in place).
            if (len < SparseRam.DROP_THRESHOLD) {
                return;
            }
            long firstWhole = (pa >>> 12) + ((pa & 0xfff) == 0 ? 0 : 1);
            long endWhole = pa + len == 0 ? 1L << 52 : (pa + len) >>> 12; // exclusive; the range may end at 2^64
            for (long p = firstWhole; p < endWhole; p++) {
                backed.remove(p);
            }
        }
    }
}
