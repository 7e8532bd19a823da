package org.iommuemu.core.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.lang.management.ManagementFactory;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.iommuemu.core.memory.MemoryAccessException.Reason;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class SparseRamTest {
    private static final long BASE = SparseRam.DEFAULT_RAM_BASE;
    private static final int PAGE = SparseRam.PAGE_SIZE;

    /** RAM in two adjacent regions, a gap, a small region, and a region ending exactly at 2^64. */
    private static final RamRegion LOW_A = new RamRegion(0x1_0000L, 0x2000);
    private static final RamRegion LOW_B = new RamRegion(0x1_2000L, 0x2000);
    private static final RamRegion AFTER_GAP = new RamRegion(0x2_0000L, 0x1000);
    private static final RamRegion TOP = new RamRegion(-0x4000L, 0x4000);

    private static SparseRam layout() {
        return SparseRam.of(TOP, AFTER_GAP, LOW_B, LOW_A);
    }

    // ------------------------------------------------------------------ construction

    @Nested
    class Construction {
        @Test
        void defaultRamIsFourGibAtTwoGib() {
            SparseRam ram = SparseRam.withDefaultRam();
            assertThat(ram.regions()).containsExactly(new RamRegion(0x8000_0000L, 4L << 30));
            assertThat(SparseRam.DEFAULT_RAM_BASE).isEqualTo(0x8000_0000L);
            assertThat(SparseRam.DEFAULT_RAM_SIZE).isEqualTo(4L << 30);
        }

        @Test
        void regionsAreSortedUnsignedAndUnmodifiable() {
            SparseRam ram = layout();
            assertThat(ram.regions()).containsExactly(LOW_A, LOW_B, AFTER_GAP, TOP);
            assertThatThrownBy(() -> ram.regions().add(LOW_A)).isInstanceOf(UnsupportedOperationException.class);
        }

        @Test
        void overlappingRegionsAreRejectedNamingBoth() {
            RamRegion a = new RamRegion(0x1000, 0x3000);
            RamRegion b = new RamRegion(0x3000, 0x1000);
            assertThatThrownBy(() -> SparseRam.of(b, a))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining(a.toString())
                    .hasMessageContaining(b.toString())
                    .hasMessageContaining("overlap");
        }

        @Test
        void unalignedRegionsAreRejected() {
            assertThatThrownBy(() -> SparseRam.of(new RamRegion(0x1800, 0x1000)))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("4 KiB-aligned");
            assertThatThrownBy(() -> SparseRam.of(new RamRegion(0x1000, 0x1001)))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("4 KiB-aligned");
        }

        @Test
        void oversizedRegionsAreRejected() {
            assertThatThrownBy(() -> SparseRam.of(new RamRegion(0, SparseRam.MAX_REGION_SIZE + PAGE)))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("1 TiB");
            assertThatCode(() -> SparseRam.of(new RamRegion(0, SparseRam.MAX_REGION_SIZE))).doesNotThrowAnyException();
        }

        @Test
        void noRegionsMeansNoRam() {
            SparseRam ram = new SparseRam(List.of());
            assertThat(ram.isRam(0, 1)).isFalse();
            assertNotRam(() -> ram.read8(0), 0, 1);
        }
    }

    // ------------------------------------------------------------------ isRam

    @Test
    void isRamTreatsAdjacentRegionsAsContiguousAndRejectsGapsEmptyAndWrappingRanges() {
        SparseRam ram = layout();
        assertThat(ram.isRam(LOW_A.base(), 0x4000)).isTrue(); // LOW_A + LOW_B
        assertThat(ram.isRam(LOW_A.base(), 0x4001)).isFalse();
        assertThat(ram.isRam(LOW_B.last(), 1)).isTrue();
        assertThat(ram.isRam(LOW_A.base() - 1, 2)).isFalse();
        assertThat(ram.isRam(0x1_4000L, 1)).isFalse(); // gap
        assertThat(ram.isRam(AFTER_GAP.base(), 0)).isFalse();
        assertThat(ram.isRam(TOP.base(), 0x4000)).isTrue(); // ends exactly at 2^64
        assertThat(ram.isRam(-8, 8)).isTrue();
        assertThat(ram.isRam(-8, 9)).isFalse(); // wraps
        assertThat(ram.isRam(0, -1)).isFalse();
        assertThat(ram.isRam(-1, -1)).isFalse();
    }

    // ------------------------------------------------------------------ sparseness

    @Nested
    class Sparseness {
        private final SparseRam ram = SparseRam.withDefaultRam();

        @Test
        void freshRamHasNoBackingAndReadsZeroWithoutAllocating() throws Exception {
            assertThat(ram.backedPages()).isZero();
            assertThat(ram.read8(BASE)).isZero();
            assertThat(ram.read16(BASE + 0x11)).isZero();
            assertThat(ram.read32(BASE + 0x2000)).isZero();
            assertThat(ram.read64(BASE + (4L << 30) - 8)).isZero();
            assertThat(ram.read64(BASE + PAGE - 3)).isZero(); // crossing a page
            byte[] dst = new byte[5 * PAGE + 7];
            Arrays.fill(dst, (byte) 0x5a);
            ram.read(BASE + 0x123, dst, 0, dst.length);
            assertThat(dst).containsOnly(0);
            assertThat(ram.backedPages()).isZero();
        }

        @Test
        void writesBackExactlyThePagesTheyTouch() throws Exception {
            ram.write64(BASE, 1);
            assertThat(ram.backedPages()).isEqualTo(1);
            ram.write8(BASE + PAGE - 1, 1); // same page
            assertThat(ram.backedPages()).isEqualTo(1);
            ram.write32(BASE + 3 * PAGE - 2, -1); // pages 2 and 3
            assertThat(ram.backedPages()).isEqualTo(3);
            ram.write(BASE + 10L * PAGE + 1, new byte[2 * PAGE], 0, 2 * PAGE); // pages 10, 11, 12
            assertThat(ram.backedPages()).isEqualTo(6);
            ram.write16(BASE + (1L << 31), 7); // a page in another directory chunk
            assertThat(ram.backedPages()).isEqualTo(7);
        }

        @Test
        void zeroClearsSmallRangesInPlaceAndDropsThePagesOfLargeOnes() throws Exception {
            byte[] ones = new byte[4 * PAGE];
            Arrays.fill(ones, (byte) 0xff);
            ram.write(BASE, ones, 0, ones.length); // pages 0..3
            assertThat(ram.backedPages()).isEqualTo(4);

            ram.zero(BASE + PAGE - 16, 2 * PAGE + 32); // page 0 tail, pages 1 and 2, page 3 head
            assertThat(ram.backedPages()).as("a small range is cleared in place").isEqualTo(4);
            assertThat(ram.read64(BASE + PAGE - 24)).isEqualTo(-1L);
            assertThat(ram.read64(BASE + PAGE - 16)).isZero();
            assertThat(ram.read64(BASE + 2 * PAGE)).isZero();
            assertThat(ram.read64(BASE + 3 * PAGE + 8)).isZero();
            assertThat(ram.read64(BASE + 3 * PAGE + 16)).isEqualTo(-1L);

            ram.zero(BASE, 4 * PAGE);
            assertThat(ram.backedPages()).isEqualTo(4);
            assertThat(ram.read64(BASE + 3 * PAGE + 16)).isZero();

            byte[] big = new byte[(int) SparseRam.DROP_THRESHOLD + 2 * PAGE];
            Arrays.fill(big, (byte) 0x5a);
            ram.write(BASE, big, 0, big.length);
            long backed = ram.backedPages();
            ram.zero(BASE + PAGE - 16, SparseRam.DROP_THRESHOLD + 32); // a large range: its full pages go
            assertThat(ram.backedPages()).as("the 16 fully covered pages were given back").isEqualTo(backed - 16);
            assertThat(ram.read64(BASE + PAGE - 24)).isEqualTo(0x5a5a5a5a5a5a5a5aL);
            assertThat(ram.read64(BASE + 8 * PAGE)).isZero();
            ram.zero(BASE, 1L << 20);
            assertThat(ram.backedPages()).isZero();
            ram.zero(BASE + 100 * PAGE + 5, 10 * PAGE); // never written: allocates nothing
            assertThat(ram.backedPages()).isZero();
            ram.zero(BASE, 4L << 30); // the whole 4 GiB is cheap
            assertThat(ram.backedPages()).isZero();
        }

        @Test
        void zeroOfNegativeLengthIsABugAndOfZeroLengthDoesNothing() throws Exception {
            assertThatThrownBy(() -> ram.zero(BASE, -1)).isInstanceOf(IllegalArgumentException.class);
            ram.zero(0, 0);
        }

        @Test
        void casOnANeverWrittenPageInstallsIt() throws Exception {
            assertThat(ram.compareAndExchange64(BASE + 0x5000, 0, 42)).isZero();
            assertThat(ram.backedPages()).isEqualTo(1);
            assertThat(ram.read64(BASE + 0x5000)).isEqualTo(42);
        }
    }

    // ------------------------------------------------------------------ encoding

    @Nested
    class LittleEndian {
        private final SparseRam ram = SparseRam.withDefaultRam();

        @Test
        void scalarWritesAreLittleEndianByteByByte() throws Exception {
            ram.write16(BASE, 0xBEEF);
            ram.write32(BASE + 8, 0x11223344);
            ram.write64(BASE + 16, 0x0102030405060708L);
            assertThat(bytes(BASE, 2)).containsExactly(0xEF, 0xBE);
            assertThat(bytes(BASE + 8, 4)).containsExactly(0x44, 0x33, 0x22, 0x11);
            assertThat(bytes(BASE + 16, 8)).containsExactly(8, 7, 6, 5, 4, 3, 2, 1);
        }

        @Test
        void scalarReadsAssembleLittleEndianAndZeroExtendNarrowValues() throws Exception {
            ram.write(BASE, new byte[] {(byte) 0xf1, (byte) 0xf2, (byte) 0xf3, (byte) 0xf4, 5, 6, 7, (byte) 0x88}, 0, 8);
            assertThat(ram.read8(BASE)).isEqualTo(0xf1);
            assertThat(ram.read16(BASE)).isEqualTo(0xf2f1);
            assertThat(ram.read32(BASE)).isEqualTo(0xf4f3f2f1);
            assertThat(ram.read64(BASE)).isEqualTo(0x88070605f4f3f2f1L);
        }

        @Test
        void narrowWritesTruncateTheValue() throws Exception {
            ram.write64(BASE, -1L);
            ram.write8(BASE, 0x1234);
            ram.write16(BASE + 2, 0xABCDEF);
            assertThat(bytes(BASE, 8)).containsExactly(0x34, 0xff, 0xEF, 0xCD, 0xff, 0xff, 0xff, 0xff);
        }

        @ParameterizedTest
        @ValueSource(longs = {1, 3, 5, 7, PAGE - 7, PAGE - 4, PAGE - 3, PAGE - 1})
        void unalignedAndPageCrossingAccessesRoundTrip(long offset) throws Exception {
            long pa = BASE + 7L * PAGE + offset;
            ram.write64(pa, 0x0102030405060708L);
            assertThat(bytes(pa, 8)).containsExactly(8, 7, 6, 5, 4, 3, 2, 1);
            assertThat(ram.read64(pa)).isEqualTo(0x0102030405060708L);
            ram.write32(pa + 1, 0xA0B0C0D0);
            assertThat(ram.read32(pa + 1)).isEqualTo(0xA0B0C0D0);
            assertThat(bytes(pa, 8)).containsExactly(8, 0xD0, 0xC0, 0xB0, 0xA0, 3, 2, 1);
            ram.write16(pa + 5, 0xEEFF);
            assertThat(ram.read16(pa + 5)).isEqualTo(0xEEFF);
            assertThat(ram.read64(pa)).isEqualTo(0x01EEFFA0B0C0D008L);
        }

        @Test
        void accessesCrossingIntoAnAdjacentRegionWork() throws Exception {
            SparseRam two = layout();
            long boundary = LOW_B.base();
            two.write64(boundary - 3, 0x1122334455667788L);
            assertThat(two.read64(boundary - 3)).isEqualTo(0x1122334455667788L);
            assertThat(two.read8(boundary - 3)).isEqualTo(0x88);
            assertThat(two.read8(boundary)).isEqualTo(0x55);
            assertThat(two.read32(boundary - 2)).isEqualTo(0x44556677);
            two.write16(boundary - 1, 0xAABB);
            assertThat(two.read16(boundary - 1)).isEqualTo(0xAABB);
            assertThat(two.backedPages()).isEqualTo(2);
        }

        private int[] bytes(long pa, int n) throws MemoryAccessException {
            int[] out = new int[n];
            for (int i = 0; i < n; i++) {
                out[i] = ram.read8(pa + i);
            }
            return out;
        }
    }

    // ------------------------------------------------------------------ bulk

    @Nested
    class Bulk {
        @Test
        void bulkRoundTripAcrossSeveralPagesAndTwoAdjacentRegions() throws Exception {
            SparseRam ram = layout();
            byte[] src = pattern(0x3000 + 77);
            long pa = LOW_A.base() + 0x800;
            ram.write(pa, src, 0, src.length);
            byte[] dst = new byte[src.length + 10];
            ram.read(pa, dst, 5, src.length);
            assertThat(Arrays.copyOfRange(dst, 5, 5 + src.length)).isEqualTo(src);
            assertThat(ram.read8(pa + 0x1800)).isEqualTo(src[0x1800] & 0xff); // first byte of LOW_B
            assertThat(ram.backedPages()).isEqualTo(4);
        }

        @Test
        void bulkWriteHonoursOffsetAndLength() throws Exception {
            SparseRam ram = SparseRam.withDefaultRam();
            byte[] src = pattern(100);
            ram.write(BASE + PAGE - 10, src, 30, 20);
            byte[] dst = new byte[22];
            ram.read(BASE + PAGE - 11, dst, 0, 22);
            assertThat(dst[0]).isZero();
            assertThat(Arrays.copyOfRange(dst, 1, 21)).isEqualTo(Arrays.copyOfRange(src, 30, 50));
            assertThat(dst[21]).isZero();
        }

        @Test
        void bulkWriteBeyondTheEndOfRamWritesNothing() throws Exception {
            SparseRam ram = layout();
            long pa = LOW_B.last() - 0x1100; // runs 0x100 bytes past LOW_B into the gap
            byte[] src = pattern(0x1200);
            MemoryAccessException e = catchThrowableOfType(
                    () -> ram.write(pa, src, 0, src.length), MemoryAccessException.class);
            assertThat(e.reason()).isEqualTo(Reason.NOT_RAM);
            assertThat(e.address()).isEqualTo(pa);
            assertThat(e.length()).isEqualTo(0x1200);
            assertThat(ram.backedPages()).isZero();
            byte[] dst = new byte[0x1101];
            ram.read(pa, dst, 0, dst.length);
            assertThat(dst).containsOnly(0);
        }

        @Test
        void zeroBeyondTheEndOfRamClearsNothing() throws Exception {
            SparseRam ram = layout();
            ram.write64(AFTER_GAP.base(), -1);
            assertNotRam(() -> ram.zero(AFTER_GAP.base(), 0x1001), AFTER_GAP.base(), 0x1001);
            assertThat(ram.read64(AFTER_GAP.base())).isEqualTo(-1);
            assertThat(ram.backedPages()).isEqualTo(1);
        }

        @Test
        void badArrayBoundsAreCallerBugsEvenOutsideRam() {
            SparseRam ram = SparseRam.withDefaultRam();
            byte[] buf = new byte[8];
            assertThatThrownBy(() -> ram.read(BASE, buf, -1, 4)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> ram.read(BASE, buf, 2, 7)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> ram.write(BASE, buf, 0, -1)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> ram.write(0, buf, 4, 5)).isInstanceOf(IndexOutOfBoundsException.class);
        }

        @Test
        void zeroLengthBulkAccessesDoNothingAnywhere() throws Exception {
            SparseRam ram = SparseRam.withDefaultRam();
            ram.read(0, new byte[4], 4, 0);
            ram.write(-1, new byte[4], 0, 0);
            assertThat(ram.backedPages()).isZero();
        }
    }

    // ------------------------------------------------------------------ outside RAM

    /** An access of {@code length} bytes at {@code pa}, of one kind. */
    @FunctionalInterface
    private interface Access {
        void run(SparseRam ram, long pa) throws MemoryAccessException;
    }

    private record Kind(String name, int length, Access access) {
        @Override
        public String toString() {
            return name;
        }
    }

    private static List<Kind> kinds() {
        return List.of(
                new Kind("read8", 1, SparseRam::read8),
                new Kind("read16", 2, SparseRam::read16),
                new Kind("read32", 4, SparseRam::read32),
                new Kind("read64", 8, SparseRam::read64),
                new Kind("write8", 1, (r, pa) -> r.write8(pa, 0xff)),
                new Kind("write16", 2, (r, pa) -> r.write16(pa, 0xffff)),
                new Kind("write32", 4, (r, pa) -> r.write32(pa, -1)),
                new Kind("write64", 8, (r, pa) -> r.write64(pa, -1L)),
                new Kind("cas64", 8, (r, pa) -> r.compareAndExchange64(pa, 0, -1L)),
                new Kind("read", 24, (r, pa) -> r.read(pa, new byte[24], 0, 24)),
                new Kind("write", 24, (r, pa) -> r.write(pa, filled(24), 0, 24)),
                new Kind("zero", 24, (r, pa) -> r.zero(pa, 24)));
    }

    @Test
    void accessesOutsideRamFailWithNotRamAndChangeNothing() throws Exception {
        SparseRam ram = layout();
        for (Kind kind : kinds()) {
            int n = kind.length();
            boolean cas = kind.name().startsWith("cas");
            long[] addresses = {
                LOW_A.base() - 8, // below the first region, overlapping it for bulk kinds
                LOW_A.base() - n, // ends just below
                LOW_B.last() + 1, // just above two adjacent regions
                LOW_B.last() - n / 2, // straddles the end (a CAS never can: regions are page-aligned)
                0x1_8000L, // in the gap
                AFTER_GAP.base() - n / 2, // straddles the start of a region, from the gap
                0, // the very bottom, no RAM
                n == 1 ? TOP.base() - 1 : -(n / 2), // wraps at 2^64 (a single byte cannot)
                0x7fff_ffff_ffff_fff8L, // far away
            };
            int tested = 0;
            for (long pa : addresses) {
                if (cas && (pa & 7) != 0 || ram.isRam(pa, n)) {
                    continue;
                }
                assertNotRam(() -> kind.access().run(ram, pa), pa, n);
                tested++;
            }
            assertThat(tested).as("addresses tested for %s", kind).isGreaterThanOrEqualTo(cas ? 5 : n == 1 ? 7 : 8);
        }
        assertThat(ram.backedPages()).isZero();
        for (RamRegion r : ram.regions()) {
            byte[] dst = new byte[(int) r.size()];
            ram.read(r.base(), dst, 0, dst.length);
            assertThat(dst).as("region %s", r).containsOnly(0);
        }
    }

    @Test
    void accessesWrappingAt2To64FailEvenWithRamAtZero() throws Exception {
        SparseRam ram = SparseRam.of(new RamRegion(0, 0x1000), TOP);
        ram.write64(-8, 0x1122334455667788L); // ends exactly at 2^64: fine
        assertThat(ram.read64(-8)).isEqualTo(0x1122334455667788L);
        assertNotRam(() -> ram.read64(-4), -4, 8);
        assertNotRam(() -> ram.write64(-4, 0), -4, 8);
        assertNotRam(() -> ram.read32(-2), -2, 4);
        assertNotRam(() -> ram.write16(-1, 0), -1, 2);
        assertNotRam(() -> ram.read(-16, new byte[32], 0, 32), -16, 32);
        assertNotRam(() -> ram.write(-16, new byte[32], 0, 32), -16, 32);
        assertNotRam(() -> ram.zero(-16, 32), -16, 32);
        assertThat(ram.read64(-8)).isEqualTo(0x1122334455667788L);
        assertThat(ram.read64(0)).isZero();
    }

    @Test
    void aWriteStraddlingTheEndOfRamChangesNoByte() throws Exception {
        SparseRam ram = layout();
        long pa = AFTER_GAP.last() - 3;
        ram.write32(pa, 0x01020304);
        assertNotRam(() -> ram.write64(pa, -1L), pa, 8);
        assertNotRam(() -> ram.write32(pa + 1, -1), pa + 1, 4);
        assertNotRam(() -> ram.write16(pa + 3, -1), pa + 3, 2);
        assertThat(ram.read32(pa)).isEqualTo(0x01020304);
    }

    // ------------------------------------------------------------------ compare-and-exchange

    @Nested
    class CompareAndExchange {
        private final SparseRam ram = SparseRam.withDefaultRam();

        @Test
        void returnsTheWitnessAndExchangesOnlyOnAMatch() throws Exception {
            long pa = BASE + 0x40;
            ram.write64(pa, 5);
            assertThat(ram.compareAndExchange64(pa, 4, 9)).isEqualTo(5);
            assertThat(ram.read64(pa)).isEqualTo(5);
            assertThat(ram.compareAndExchange64(pa, 5, 9)).isEqualTo(5);
            assertThat(ram.read64(pa)).isEqualTo(9);
            assertThat(ram.compareAndSet64(pa, 9, -1L)).isTrue();
            assertThat(ram.compareAndSet64(pa, 9, 0)).isFalse();
            assertThat(ram.read64(pa)).isEqualTo(-1L);
            assertThat(ram.read32(pa + 4)).isEqualTo(-1); // little-endian view of the same word
        }

        @ParameterizedTest
        @ValueSource(longs = {1, 2, 4, 7, PAGE - 4})
        void misalignedCasIsAProgrammingError(long offset) {
            long pa = BASE + offset;
            assertThatThrownBy(() -> ram.compareAndExchange64(pa, 0, 1))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining(Long.toHexString(pa));
            assertThat(ram.backedPages()).isZero();
        }

        @Test
        void misalignmentIsReportedEvenOutsideRam() {
            assertThatThrownBy(() -> ram.compareAndExchange64(3, 0, 1)).isInstanceOf(IllegalArgumentException.class);
        }

        @Test
        void byteArrayDataIsEightAlignedSoAtomicViewsWorkAtEveryAlignedOffset() {
            // SparseRam's static initializer checks this too; here every slot of a page is exercised.
            VarHandle le64 = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
            byte[] page = new byte[PAGE];
            for (int off = 0; off < PAGE; off += 8) {
                assertThat((long) le64.compareAndExchange(page, off, 0L, (long) off)).isZero();
                assertThat((long) le64.getAcquire(page, off)).isEqualTo(off);
            }
        }
    }

    // ------------------------------------------------------------------ concurrency

    @Nested
    class Concurrency {
        private static final int THREADS = 8;

        @Test
        void casIncrementsOfOneWordAreExact() throws Exception {
            SparseRam ram = SparseRam.withDefaultRam();
            long pa = BASE + 0x1230; // never written: the first CASes race to install the page
            int perThread = 100_000;
            runConcurrently(t -> {
                for (int i = 0; i < perThread; i++) {
                    casIncrement(ram, pa);
                }
            });
            assertThat(ram.read64(pa)).isEqualTo((long) THREADS * perThread);
            assertThat(ram.backedPages()).isEqualTo(1);
        }

        @Test
        void casIncrementsOnManyFreshPagesAreExact() throws Exception {
            SparseRam ram = SparseRam.withDefaultRam();
            int pages = 2000;
            int perPage = 10;
            long start = BASE + (3L << 30); // its own directory chunks, none installed yet
            runConcurrently(t -> {
                for (int p = 0; p < pages; p++) {
                    long shared = start + (long) p * PAGE;
                    long own = shared + 8L * (t + 1);
                    for (int i = 0; i < perPage; i++) {
                        casIncrement(ram, shared);
                        casIncrement(ram, own);
                    }
                }
            });
            for (int p = 0; p < pages; p++) {
                long shared = start + (long) p * PAGE;
                assertThat(ram.read64(shared)).isEqualTo((long) THREADS * perPage);
                for (int t = 0; t < THREADS; t++) {
                    assertThat(ram.read64(shared + 8L * (t + 1))).isEqualTo(perPage);
                }
            }
            assertThat(ram.backedPages()).isEqualTo(pages);
        }

        @Test
        void concurrentWritersToDistinctWordsOfFreshPagesLoseNothing() throws Exception {
            SparseRam ram = SparseRam.withDefaultRam();
            int pages = 1000;
            int wordsPerPage = PAGE / 8;
            runConcurrently(t -> {
                for (int p = 0; p < pages; p++) {
                    long page = BASE + (long) p * PAGE;
                    for (int w = t; w < wordsPerPage; w += THREADS) {
                        if ((w & 1) == 0) {
                            ram.write64(page + 8L * w, value(p, w));
                        } else {
                            ram.write32(page + 8L * w, (int) value(p, w));
                            ram.write32(page + 8L * w + 4, (int) (value(p, w) >>> 32));
                        }
                    }
                }
            });
            for (int p = 0; p < pages; p++) {
                for (int w = 0; w < wordsPerPage; w++) {
                    assertThat(ram.read64(BASE + (long) p * PAGE + 8L * w)).isEqualTo(value(p, w));
                }
            }
            assertThat(ram.backedPages()).isEqualTo(pages);
        }

        private long value(int page, int word) {
            return ((long) page << 32) | (word * 0x9E37L + 1);
        }

        private void casIncrement(SparseRam ram, long pa) throws MemoryAccessException {
            long seen = ram.read64(pa);
            while (true) {
                long witness = ram.compareAndExchange64(pa, seen, seen + 1);
                if (witness == seen) {
                    return;
                }
                seen = witness;
            }
        }

        @FunctionalInterface
        private interface Worker {
            void run(int thread) throws Exception;
        }

        private void runConcurrently(Worker worker) throws Exception {
            ExecutorService pool = Executors.newFixedThreadPool(THREADS);
            try {
                CountDownLatch go = new CountDownLatch(1);
                List<Future<Void>> done = new ArrayList<>();
                for (int t = 0; t < THREADS; t++) {
                    int thread = t;
                    Callable<Void> task = () -> {
                        go.await();
                        worker.run(thread);
                        return null;
                    };
                    done.add(pool.submit(task));
                }
                go.countDown();
                for (Future<Void> f : done) {
                    f.get(60, TimeUnit.SECONDS);
                }
            } finally {
                pool.shutdownNow();
            }
        }
    }

    // ------------------------------------------------------------------ allocation-free hot paths

    @Test
    void hotPathsDoNotAllocate() throws Exception {
        java.lang.management.ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        Assumptions.assumeTrue(mx instanceof com.sun.management.ThreadMXBean,
                "needs com.sun.management.ThreadMXBean to count allocated bytes");
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) mx;
        Assumptions.assumeTrue(threads.isThreadAllocatedMemorySupported() && threads.isThreadAllocatedMemoryEnabled());
        SparseRam ram = layout();
        byte[] buf = new byte[3 * PAGE];
        ram.write(LOW_A.base(), buf, 0, buf.length); // back the pages first: installing a page allocates it
        int rounds = 20_000;
        long sink = exercise(ram, buf, rounds); // warm up (linkage of the VarHandle call sites allocates once)
        long tid = Thread.currentThread().getId();
        long before = threads.getThreadAllocatedBytes(tid);
        sink += exercise(ram, buf, rounds);
        long allocated = threads.getThreadAllocatedBytes(tid) - before;
        // One object per operation would be at least 16 bytes x 13 operations x rounds.
        assertThat(allocated).as("bytes allocated by %d rounds (sink %d)", rounds, sink).isLessThan(rounds);
    }

    private static long exercise(SparseRam ram, byte[] buf, int rounds) throws MemoryAccessException {
        long a = LOW_A.base();
        long sum = 0;
        for (int i = 0; i < rounds; i++) {
            long pa = a + ((i * 8L) & 0x1ff8);
            ram.write64(pa, i);
            sum += ram.read64(pa);
            ram.write32(pa + 4, i);
            sum += ram.read32(pa + 4);
            ram.write16(pa + 1, i);
            sum += ram.read16(pa + 1);
            ram.write8(pa + 3, i);
            sum += ram.read8(pa + 3);
            sum += ram.read64(LOW_B.base() - 4); // crosses pages and regions
            sum += ram.compareAndExchange64(pa, i, i + 1);
            ram.read(a + 5, buf, 0, 2 * PAGE);
            ram.write(a + 5, buf, 0, 2 * PAGE);
            sum += ram.isRam(a, 0x4000) ? 1 : 0;
        }
        return sum;
    }

    // ------------------------------------------------------------------ helpers

    @FunctionalInterface
    private interface Failing {
        void run() throws MemoryAccessException;
    }

    private static void assertNotRam(Failing access, long pa, long length) {
        Throwable thrown = org.assertj.core.api.Assertions.catchThrowable(access::run);
        assertThat(thrown).as("access of %d at %s", length, Long.toHexString(pa))
                .isInstanceOf(MemoryAccessException.class);
        MemoryAccessException e = (MemoryAccessException) thrown;
        assertThat(e.reason()).isEqualTo(Reason.NOT_RAM);
        assertThat(e.address()).as("address").isEqualTo(pa);
        assertThat(e.length()).as("length").isEqualTo(length);
    }

    private static byte[] filled(int n) {
        byte[] b = new byte[n];
        Arrays.fill(b, (byte) 0xff);
        return b;
    }

    private static byte[] pattern(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 31 + (i >>> 8) + 1);
        }
        return b;
    }
}
