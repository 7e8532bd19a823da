package org.iommuemu.device.regs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

class RegisterFileTest {
    /** One hook invocation. */
    private record Call(String reg, long oldValue, long newValue, long written, long mask) {}

    private final List<Call> calls = new ArrayList<>();
    private final RegisterFile file = new RegisterFile("dev0", 0x100);

    private WriteHook recorder(String name) {
        return (o, n, w, m) -> calls.add(new Call(name, o, n, w, m));
    }

    @Nested
    class FieldModes {
        private final Register r = file.reg32(0x10, "R", 0x0000_00A5L)
                .field("RO", 0, 8, FieldMode.READ_ONLY)
                .field("RW", 8, 8, FieldMode.READ_WRITE)
                .field("W1C", 16, 4, FieldMode.WRITE_ONE_TO_CLEAR)
                .field("W1S", 20, 4, FieldMode.WRITE_ONE_TO_SET)
                .field("WO", 24, 4, FieldMode.WRITE_ONLY);

        @Test
        void readOnlyIgnoresSoftwareButTakesDeviceUpdates() {
            file.write(0x10, 4, 0xFF);
            assertThat(file.read(0x10, 4) & 0xFF).isEqualTo(0xA5);
            r.fieldHandle("RO").set(0x3C);
            assertThat(file.read(0x10, 4) & 0xFF).isEqualTo(0x3C);
        }

        @Test
        void readWriteStoresAndReadsBack() {
            file.write(0x10, 4, 0x7700);
            assertThat(file.read(0x10, 4) & 0xFF00).isEqualTo(0x7700);
            file.write(0x10, 4, 0x0100);
            assertThat(r.fieldHandle("RW").get()).isEqualTo(0x01);
        }

        @Test
        void writeOneToClear() {
            r.fieldHandle("W1C").set(0xF);
            file.write(0x10, 4, 0x5_0000);
            assertThat(r.fieldHandle("W1C").get()).isEqualTo(0xA);
            file.write(0x10, 4, 0);
            assertThat(r.fieldHandle("W1C").get()).isEqualTo(0xA);
            assertThat(file.read(0x10, 4) & 0xF_0000).isEqualTo(0xA_0000);
        }

        @Test
        void writeOneToSet() {
            file.write(0x10, 4, 0x10_0000);
            file.write(0x10, 4, 0x40_0000);
            file.write(0x10, 4, 0);
            assertThat(r.fieldHandle("W1S").get()).isEqualTo(0x5);
            assertThat(file.read(0x10, 4) & 0xF0_0000).isEqualTo(0x50_0000);
        }

        @Test
        void writeOnlyReadsZeroButReachesHookAndStoredValue() {
            r.afterWrite(recorder("R"));
            file.write(0x10, 4, 0x0900_0000);
            assertThat(file.read(0x10, 4) & 0xF00_0000L).isZero();
            assertThat(r.value() & 0xF00_0000L).isEqualTo(0x900_0000L);
            assertThat(r.readValue() & 0xF00_0000L).isZero();
            assertThat(calls).containsExactly(new Call("R", 0xA5, 0x0900_00A5L, 0x0900_0000L, 0xFFFF_FFFFL));
        }

        @Test
        void reservedBitsReadZeroAndIgnoreWrites() {
            file.write(0x10, 4, 0xF000_0000L);
            assertThat(file.read(0x10, 4) & 0xF000_0000L).isZero();
            r.set(0xFFFF_FFFFL);
            assertThat(r.value()).isEqualTo(0x0FFF_FFFFL);
            r.setBits(0xF000_0000L, 0xF000_0000L);
            assertThat(r.value()).isEqualTo(0x0FFF_FFFFL);
        }

        @Test
        void masksAreExposed() {
            assertThat(r.definedMask()).isEqualTo(0x0FFF_FFFFL);
            assertThat(r.masks().writeOnly()).isEqualTo(0x0F00_0000L);
            assertThat(r.fields()).extracting(Field::name).containsExactly("RO", "RW", "W1C", "W1S", "WO");
        }
    }

    @Nested
    class ResetValues {
        @Test
        void resetValueDropsReservedBitsAndResetRestoresIt() {
            Register r = file.reg32(0x0, "R", 0xFFFF_FFFFL).field("A", 0, 4, FieldMode.READ_WRITE)
                    .field("B", 31, 1, FieldMode.WRITE_ONE_TO_CLEAR);
            Register q = file.reg64(0x8, "Q", 0x8000_0000_0000_0001L).field("LO", 0, 1, FieldMode.READ_ONLY)
                    .field("HI", 63, 1, FieldMode.READ_WRITE);
            assertThat(r.resetValue()).isEqualTo(0x8000_000FL);
            assertThat(file.read(0x0, 4)).isEqualTo(0x8000_000FL);
            assertThat(file.read(0x8, 8)).isEqualTo(0x8000_0000_0000_0001L);
            file.write(0x0, 4, 0x8000_0000L);
            file.write(0x8, 8, 0);
            r.setBits(0xF, 0x3);
            assertThat(file.read(0x0, 4)).isEqualTo(0x3L);
            assertThat(q.value()).isEqualTo(1L);
            file.reset();
            assertThat(r.value()).isEqualTo(0x8000_000FL);
            assertThat(q.value()).isEqualTo(0x8000_0000_0000_0001L);
        }

        @Test
        void registerWithoutFieldsReadsZero() {
            Register r = file.reg32(0x20, "EMPTY", 0x1234);
            assertThat(r.resetValue()).isZero();
            file.write(0x20, 4, 0xFFFF_FFFFL);
            assertThat(file.read(0x20, 4)).isZero();
        }

        @Test
        void resetDoesNotRunHooks() {
            file.reg32(0x0, "R", 1).field("A", 0, 1, FieldMode.READ_WRITE).afterWrite(recorder("R"));
            file.reset();
            assertThat(calls).isEmpty();
        }
    }

    @Nested
    class SixtyFourBitHalves {
        private final Register q = file.reg64(0x40, "Q", 0)
                .field("LO_RW", 0, 16, FieldMode.READ_WRITE)
                .field("LO_W1C", 16, 8, FieldMode.WRITE_ONE_TO_CLEAR)
                .field("HI_RW", 32, 16, FieldMode.READ_WRITE)
                .field("HI_W1C", 56, 8, FieldMode.WRITE_ONE_TO_CLEAR)
                .afterWrite(recorder("Q"));

        @Test
        void halvesReadIndependently() {
            q.set(0xAB00_1234_00CD_5678L);
            assertThat(file.read(0x40, 4)).isEqualTo(0x00CD_5678L);
            assertThat(file.read(0x44, 4)).isEqualTo(0xAB00_1234L);
            assertThat(file.read(0x40, 8)).isEqualTo(0xAB00_1234_00CD_5678L);
        }

        @Test
        void halfWriteMergesWithTheOtherHalf() {
            q.set(0x0000_1111_0000_2222L);
            file.write(0x44, 4, 0x0000_9999L);
            assertThat(q.value()).isEqualTo(0x0000_9999_0000_2222L);
            file.write(0x40, 4, 0x0000_7777L);
            assertThat(q.value()).isEqualTo(0x0000_9999_0000_7777L);
            assertThat(calls).containsExactly(
                    new Call("Q", 0x0000_1111_0000_2222L, 0x0000_9999_0000_2222L, 0x0000_9999_0000_0000L,
                            0xFFFF_FFFF_0000_0000L),
                    new Call("Q", 0x0000_9999_0000_2222L, 0x0000_9999_0000_7777L, 0x7777L, 0xFFFF_FFFFL));
        }

        @Test
        void writeOneToClearInOneHalfDoesNotTouchTheOther() {
            q.set(0xFF00_0000_00FF_0000L);
            file.write(0x44, 4, 0xFF00_0000L);
            assertThat(q.value()).isEqualTo(0x0000_0000_00FF_0000L);
            q.set(0xFF00_0000_00FF_0000L);
            file.write(0x40, 4, 0x00FF_0000L);
            assertThat(q.value()).isEqualTo(0xFF00_0000_0000_0000L);
        }

        @Test
        void fullWriteReachesHookOnce() {
            file.write(0x40, 8, 0x0000_ABCD_0000_1234L);
            assertThat(q.value()).isEqualTo(0x0000_ABCD_0000_1234L);
            assertThat(calls).containsExactly(
                    new Call("Q", 0, 0x0000_ABCD_0000_1234L, 0x0000_ABCD_0000_1234L, -1L));
        }

        @Test
        void upperBitsOfA32BitWriteAreIgnored() {
            file.write(0x40, 4, 0xFFFF_FFFF_0000_0001L);
            assertThat(q.value()).isEqualTo(1L);
        }
    }

    @Nested
    class PairsOf32BitRegisters {
        private final Register lo = file.reg32(0x50, "LO", 0).field("V", 0, 32, FieldMode.READ_WRITE)
                .afterWrite(recorder("LO"));
        private final Register hi = file.reg32(0x54, "HI", 0).field("V", 0, 16, FieldMode.READ_WRITE)
                .afterWrite(recorder("HI"));

        @Test
        void eightByteReadCombinesLowAndHigh() {
            lo.set(0x1111_2222L);
            hi.set(0x3333L);
            assertThat(file.read(0x50, 8)).isEqualTo(0x0000_3333_1111_2222L);
        }

        @Test
        void eightByteWriteIsTwo32BitWritesLowFirst() {
            file.write(0x50, 8, 0xAAAA_BBBB_CCCC_DDDDL);
            assertThat(lo.value()).isEqualTo(0xCCCC_DDDDL);
            assertThat(hi.value()).isEqualTo(0xBBBBL);
            assertThat(calls).containsExactly(
                    new Call("LO", 0, 0xCCCC_DDDDL, 0xCCCC_DDDDL, 0xFFFF_FFFFL),
                    new Call("HI", 0, 0xBBBBL, 0xAAAA_BBBBL, 0xFFFF_FFFFL));
        }

        @Test
        void eightByteAccessWithAnUnknownHighWord() {
            file.reg32(0x58, "ALONE", 0).field("V", 0, 32, FieldMode.READ_WRITE);
            file.write(0x58, 8, 0x1234_5678_9ABC_DEF0L);
            assertThat(file.register("ALONE").value()).isEqualTo(0x9ABC_DEF0L);
            assertThat(file.read(0x58, 8)).isEqualTo(0x9ABC_DEF0L);
        }
    }

    @Nested
    class Aliases {
        private final Register prod = file.reg32(0x80, "PROD", 0).field("WR", 0, 20, FieldMode.READ_WRITE)
                .field("OVF", 31, 1, FieldMode.WRITE_ONE_TO_CLEAR).afterWrite(recorder("PROD"));

        @Test
        void aliasReadsAndWritesTheSameRegister() {
            file.alias(0x10, prod);
            file.write(0x10, 4, 0x42);
            assertThat(prod.value()).isEqualTo(0x42);
            assertThat(file.read(0x80, 4)).isEqualTo(0x42);
            prod.fieldHandle("OVF").set(1);
            assertThat(file.read(0x10, 4)).isEqualTo(0x8000_0042L);
            file.write(0x10, 4, 0x8000_0042L);
            assertThat(file.read(0x80, 4)).isEqualTo(0x42);
            assertThat(calls).hasSize(2);
            assertThat(file.at(0x10)).isSameAs(prod);
            assertThat(file.aliasesOf(prod)).containsExactly(0x10L);
            assertThat(file.registers()).containsExactly(prod);
        }

        @Test
        void aliasOf64BitRegisterSupportsHalves() {
            Register q = file.reg64(0x88, "Q", 0).field("V", 0, 64, FieldMode.READ_WRITE);
            file.alias(0x18, q);
            file.write(0x1C, 4, 0xABCD);
            assertThat(q.value()).isEqualTo(0xABCD_0000_0000L);
            assertThat(file.read(0x18, 8)).isEqualTo(0xABCD_0000_0000L);
        }

        @Test
        void aliasDeclarationErrors() {
            RegisterFile other = new RegisterFile("other", 0x100);
            Register foreign = other.reg32(0, "X", 0);
            assertThatThrownBy(() -> file.alias(0x0, foreign)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.alias(0x80, prod)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("overlaps");
            Register q = file.reg64(0x88, "Q", 0);
            assertThatThrownBy(() -> file.alias(0x14, q)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("aligned");
            assertThatThrownBy(() -> file.alias(0x100, prod)).isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Nested
    class UnknownOffsets {
        private final Logger logger = (Logger) LoggerFactory.getLogger(RegisterFile.class);
        private final ListAppender<ILoggingEvent> appender = new ListAppender<>();

        @Test
        void readZeroIgnoreWritesAndLogOncePerOffset() {
            appender.start();
            logger.addAppender(appender);
            try {
                Register r = file.reg32(0x0, "R", 0).field("V", 0, 32, FieldMode.READ_WRITE);
                assertThat(file.read(0x40, 4)).isZero();
                assertThat(file.read(0x40, 4)).isZero();
                file.write(0x40, 4, 0xFFFF_FFFFL);
                assertThat(file.read(0x40, 4)).isZero();
                file.write(0x48, 8, -1L);
                file.write(0x48, 8, -1L);
                assertThat(file.read(0x48, 8)).isZero();
                assertThat(r.value()).isZero();
                assertThat(appender.list).hasSize(3);
                assertThat(appender.list.get(0).getFormattedMessage()).contains("dev0").contains("0x40");
                assertThat(appender.list.get(1).getFormattedMessage()).contains("0x48");
                assertThat(appender.list.get(2).getFormattedMessage()).contains("0x4c");
            } finally {
                logger.detachAppender(appender);
            }
        }
    }

    @Nested
    class Hooks {
        @Test
        void hookSeesOldNewWrittenAndMaskUnderTheLock() {
            Register r = file.reg32(0x0, "R", 0x0F).field("W1C", 0, 4, FieldMode.WRITE_ONE_TO_CLEAR);
            boolean[] locked = new boolean[1];
            r.afterWrite((o, n, w, m) -> locked[0] = Thread.holdsLock(file.lock()));
            r.afterWrite(recorder("R"));
            file.write(0x0, 4, 0xF0F3L);
            assertThat(locked[0]).isTrue();
            assertThat(calls).containsExactly(new Call("R", 0x0F, 0x0C, 0xF0F3L, 0xFFFF_FFFFL));
        }

        @Test
        void hookRunsEvenWhenNothingChangesAndMayUpdateOtherRegisters() {
            Register ack = file.reg32(0x4, "ACK", 0).field("EN", 0, 1, FieldMode.READ_ONLY);
            file.reg32(0x0, "CTRL", 0).field("EN", 0, 1, FieldMode.READ_WRITE)
                    .afterWrite((o, n, w, m) -> ack.set(n))
                    .afterWrite(recorder("CTRL"));
            file.write(0x0, 4, 1);
            file.write(0x0, 4, 1);
            assertThat(file.read(0x4, 4)).isEqualTo(1);
            assertThat(calls).hasSize(2);
        }

        @Test
        void readOnlyRegisterStillRunsHooks() {
            file.reg32(0x0, "RO", 5).field("V", 0, 8, FieldMode.READ_ONLY).afterWrite(recorder("RO"));
            file.write(0x0, 4, 9);
            assertThat(calls).containsExactly(new Call("RO", 5, 5, 9, 0xFFFF_FFFFL));
        }
    }

    @Nested
    class FieldHandles {
        private final Register r = file.reg64(0x8, "R", 0).field("A", 4, 8, FieldMode.READ_WRITE)
                .flag("F", 63, FieldMode.READ_ONLY);
        private final Field a = r.fieldHandle("A");
        private final Field f = r.fieldHandle("F");

        @Test
        void getSetAndDecode() {
            a.set(0xAB);
            f.set(true);
            assertThat(r.value()).isEqualTo(0x8000_0000_0000_0AB0L);
            assertThat(a.get()).isEqualTo(0xAB);
            assertThat(f.isSet()).isTrue();
            assertThat(a.get(0xFF0L)).isEqualTo(0xFF);
            assertThat(f.isSet(0)).isFalse();
            assertThat(a.place(0x1FF)).isEqualTo(0xFF0L);
            f.set(false);
            assertThat(r.value()).isEqualTo(0xAB0L);
            assertThat(a.mask()).isEqualTo(0xFF0L);
            assertThat(a.lo()).isEqualTo(4);
            assertThat(a.width()).isEqualTo(8);
            assertThat(a.mode()).isEqualTo(FieldMode.READ_WRITE);
            assertThat(a.register()).isSameAs(r);
            assertThat(f.toString()).isEqualTo("R.F[63] READ_ONLY");
            assertThat(a.toString()).isEqualTo("R.A[11:4] READ_WRITE");
        }

        @Test
        void fieldValueTooWideIsRejected() {
            assertThatThrownBy(() -> a.set(0x100)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> r.fieldHandle("NOPE")).isInstanceOf(IllegalArgumentException.class);
            assertThat(r.hasField("A")).isTrue();
            assertThat(r.hasField("NOPE")).isFalse();
        }
    }

    @Nested
    class DeclarationErrors {
        @Test
        void overlappingRegisters() {
            file.reg64(0x10, "Q", 0);
            assertThatThrownBy(() -> file.reg32(0x14, "R", 0)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("overlaps Q");
            assertThatThrownBy(() -> file.reg32(0x10, "S", 0)).isInstanceOf(IllegalArgumentException.class);
        }

        @Test
        void misalignedOrOutsideWindow() {
            assertThatThrownBy(() -> file.reg32(0x2, "R", 0)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.reg64(0x4, "R", 0)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.reg32(0x100, "R", 0)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.reg64(0xFC, "R", 0)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.reg32(-4, "R", 0)).isInstanceOf(IllegalArgumentException.class);
        }

        @Test
        void fieldsOutsideTheWidthOrOverlapping() {
            Register r = file.reg32(0x0, "R", 0).field("A", 0, 8, FieldMode.READ_WRITE);
            assertThatThrownBy(() -> r.field("B", 30, 4, FieldMode.READ_WRITE))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("does not fit");
            assertThatThrownBy(() -> r.field("B", 7, 2, FieldMode.READ_ONLY))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("overlaps");
            assertThatThrownBy(() -> r.field("A", 8, 1, FieldMode.READ_ONLY))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("already");
            assertThatThrownBy(() -> r.field("Z", 8, 0, FieldMode.READ_ONLY))
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> r.field("Z", -1, 1, FieldMode.READ_ONLY))
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> r.field("", 8, 1, FieldMode.READ_ONLY))
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> r.afterWrite(null)).isInstanceOf(IllegalArgumentException.class);
            Register q = file.reg64(0x8, "Q", 0);
            q.field("TOP", 32, 32, FieldMode.READ_WRITE);
            assertThatThrownBy(() -> q.field("OVER", 60, 8, FieldMode.READ_WRITE))
                    .isInstanceOf(IllegalArgumentException.class);
        }

        @Test
        void duplicateNamesAndTooWideResetValues() {
            file.reg32(0x0, "R", 0);
            assertThatThrownBy(() -> file.reg32(0x4, "R", 0)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.reg32(0x8, "W", 0x1_0000_0000L))
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.register("NOPE")).isInstanceOf(IllegalArgumentException.class);
        }

        @Test
        void badWindows() {
            assertThatThrownBy(() -> new RegisterFile("d", 0)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> new RegisterFile("d", 12)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> new RegisterFile("d", RegisterFile.MAX_WINDOW + 8))
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> new RegisterFile("", 8)).isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Nested
    class AccessErrors {
        @Test
        void badWidthAlignmentOrOffset() {
            assertThatThrownBy(() -> file.read(0x0, 2)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.read(0x4, 8)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.read(0x2, 4)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.read(0x100, 4)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.read(-4, 4)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.write(0xFC, 8, 0)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> file.write(0x0, 1, 0)).isInstanceOf(IllegalArgumentException.class);
            assertThat(file.read(0xF8, 8)).isZero();
            assertThat(file.at(0x100)).isNull();
        }
    }

    @Nested
    class Performance {
        @Test
        void knownRegisterAccessesAllocateNothing() {
            Register ack = file.reg32(0x4, "ACK", 0).field("V", 0, 32, FieldMode.READ_ONLY);
            file.reg32(0x0, "CTRL", 0).field("V", 0, 32, FieldMode.READ_WRITE)
                    .afterWrite((o, n, w, m) -> ack.set(n));
            Register q = file.reg64(0x8, "Q", 0).field("LO", 0, 32, FieldMode.WRITE_ONE_TO_CLEAR)
                    .field("HI", 32, 32, FieldMode.READ_WRITE);
            Field v = ack.fieldHandle("V");
            long[] sink = new long[1];
            long bytes = AllocationMeter.bytesAllocated(() -> {
                for (int i = 0; i < 100_000; i++) {
                    file.write(0x0, 4, i);
                    file.write(0x0, 8, i);
                    file.write(0xC, 4, i);
                    file.write(0x8, 8, i);
                    sink[0] += file.read(0x0, 8) + file.read(0xC, 4) + file.read(0x8, 8) + v.get();
                    q.setBits(0xFF, i);
                }
            });
            // any per-access allocation would amount to megabytes
            assertThat(bytes).as("bytes allocated by 600k accesses").isLessThan(64 * 1024);
        }

        @Test
        void writesAndTheirHooksAreAtomicWithRespectToEachOther() throws Exception {
            Register ack = file.reg32(0x4, "ACK", 0).field("V", 0, 32, FieldMode.READ_ONLY);
            Register ctrl = file.reg32(0x0, "CTRL", 0).field("V", 0, 32, FieldMode.READ_WRITE)
                    .afterWrite((o, n, w, m) -> ack.set(n));
            Register counter = file.reg32(0x8, "COUNT", 0).field("V", 0, 32, FieldMode.READ_WRITE);
            Register w1s = file.reg32(0xC, "W1S", 0).field("V", 0, 32, FieldMode.WRITE_ONE_TO_SET);
            int threads = 4;
            int rounds = 20_000;
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                CountDownLatch start = new CountDownLatch(1);
                List<Future<?>> futures = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int id = t;
                    futures.add(pool.submit(() -> {
                        start.await();
                        for (int i = 0; i < rounds; i++) {
                            file.write(0x0, 4, id * 1_000_000L + i);
                            synchronized (file.lock()) {
                                counter.set(counter.value() + 1);
                            }
                            file.write(0xC, 4, 1L << (id * 8 + (i % 8)));
                        }
                        return null;
                    }));
                }
                start.countDown();
                for (Future<?> f : futures) {
                    f.get(60, TimeUnit.SECONDS);
                }
            } finally {
                pool.shutdownNow();
            }
            assertThat(ack.value()).as("the last hook saw the last write").isEqualTo(ctrl.value());
            assertThat(counter.value()).isEqualTo((long) threads * rounds);
            assertThat(w1s.value()).isEqualTo(0xFFFF_FFFFL);
        }
    }
}
