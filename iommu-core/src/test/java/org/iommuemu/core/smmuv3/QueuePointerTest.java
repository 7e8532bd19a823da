package org.iommuemu.core.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** QueuePointer and QueueBase against spec SMMUV3.md §4, at several queue sizes. */
class QueuePointerTest {

    @ParameterizedTest(name = "2^{0} entries")
    @ValueSource(ints = {0, 1, 3, 8, 19, 31})
    void emptyFullAndWrap(int n) {
        int wrapBit = 1 << n; // bit n; for n = 31 that is the sign bit
        assertThat(QueuePointer.isEmpty(0, 0, n)).isTrue();
        assertThat(QueuePointer.isFull(0, 0, n)).isFalse();
        // Same index, different wrap: full.
        assertThat(QueuePointer.isFull(wrapBit, 0, n)).isTrue();
        assertThat(QueuePointer.isFull(0, wrapBit, n)).isTrue();
        assertThat(QueuePointer.isEmpty(wrapBit, 0, n)).isFalse();
        assertThat(QueuePointer.isEmpty(wrapBit, wrapBit, n)).isTrue();
        assertThat(QueuePointer.used(wrapBit, 0, n)).isEqualTo(1L << n);
        assertThat(QueuePointer.space(wrapBit, 0, n)).isZero();
        assertThat(QueuePointer.space(0, 0, n)).isEqualTo(1L << n);

        // The last index increments to index 0 with the wrap flag toggled, both ways.
        int last = (int) ((1L << n) - 1);
        assertThat(QueuePointer.inc(last, n)).isEqualTo(wrapBit);
        assertThat(QueuePointer.inc(last | wrapBit, n)).isZero();
        assertThat(QueuePointer.index(last | wrapBit, n)).isEqualTo(last);
        assertThat(QueuePointer.wrap(last | wrapBit, n)).isTrue();
        assertThat(QueuePointer.wrap(last, n)).isFalse();
        assertThat(QueuePointer.pointer(last, true, n)).isEqualTo(last | wrapBit);
    }

    @ParameterizedTest(name = "2^{0} entries")
    @ValueSource(ints = {0, 1, 2, 3, 5})
    void fillAndDrainAroundTheRingTwice(int n) {
        long size = 1L << n;
        int prod = 0;
        int cons = 0;
        long produced = 0;
        long consumed = 0;
        // Interleave: fill completely, drain completely, several times; compare with a counter model.
        for (int round = 0; round < 4; round++) {
            while (!QueuePointer.isFull(prod, cons, n)) {
                assertThat(QueuePointer.used(prod, cons, n)).isEqualTo(produced - consumed);
                prod = QueuePointer.inc(prod, n);
                produced++;
            }
            assertThat(produced - consumed).isEqualTo(size);
            assertThat(QueuePointer.space(prod, cons, n)).isZero();
            while (!QueuePointer.isEmpty(prod, cons, n)) {
                assertThat(QueuePointer.index(cons, n)).isEqualTo((int) (consumed % size));
                assertThat(QueuePointer.wrap(cons, n)).isEqualTo((consumed / size) % 2 == 1);
                cons = QueuePointer.inc(cons, n);
                consumed++;
            }
            assertThat(produced).isEqualTo(consumed);
        }
    }

    @Test
    void incrementByManyEntriesWraps() {
        // 8 entries: from index 6 (no wrap) by 5 -> index 3 with wrap; by 16 -> back where it was.
        assertThat(QueuePointer.inc(6, 3, 5)).isEqualTo(0b1011);
        assertThat(QueuePointer.inc(6, 3, 16)).isEqualTo(6);
        assertThat(QueuePointer.inc(0b1110, 3, 2)).isEqualTo(0);
    }

    @Test
    void bitsAboveTheWrapAreKeptAndIgnored() {
        int n = 4;
        int errIll = QueuePointer.withCmdqError(0, QueuePointer.CERROR_ILL);
        assertThat(errIll).isEqualTo(0x0100_0000);
        // CONS advanced with ERR set keeps ERR (as QEMU does).
        int cons = QueuePointer.inc(errIll | 0xF, n);
        assertThat(cons).isEqualTo(0x0100_0010);
        assertThat(QueuePointer.cmdqError(cons)).isEqualTo(QueuePointer.CERROR_ILL);
        // OVFLG in PROD does not make the queue look non-empty.
        assertThat(QueuePointer.isEmpty(QueuePointer.OVERFLOW_FLAG | 3, 3, n)).isTrue();
        assertThat(QueuePointer.inc(QueuePointer.OVERFLOW_FLAG | 0x1F, n)).isEqualTo(QueuePointer.OVERFLOW_FLAG);
        assertThat(QueuePointer.used(errIll | 5, 2, n)).isEqualTo(3);
    }

    @Test
    void cmdqErrorField() {
        assertThat(QueuePointer.CMDQ_CONS_ERR.lo()).isEqualTo(24);
        assertThat(QueuePointer.CMDQ_CONS_ERR.hi()).isEqualTo(30);
        int cons = QueuePointer.withCmdqError(0x8000_0007, QueuePointer.CERROR_ATC_INV_SYNC);
        assertThat(cons).isEqualTo(0x8300_0007);
        assertThat(QueuePointer.cmdqError(cons)).isEqualTo(3);
        assertThat(QueuePointer.cmdqError(QueuePointer.withCmdqError(cons, QueuePointer.CERROR_NONE))).isZero();
        assertThat(QueuePointer.CERROR_ABT).isEqualTo(2);
        assertThatThrownBy(() -> QueuePointer.withCmdqError(0, 0x80)).hasMessageContaining("ERR");
    }

    @Test
    void overflowProtocol() {
        int prod = 5;
        int cons = 5;
        assertThat(QueuePointer.overflowActive(prod, cons)).isFalse();
        prod = QueuePointer.toggleOverflow(prod); // the SMMU discarded a record
        assertThat(prod).isEqualTo(0x8000_0005);
        assertThat(QueuePointer.overflowFlag(prod)).isTrue();
        assertThat(QueuePointer.overflowActive(prod, cons)).isTrue();
        cons = QueuePointer.acknowledgeOverflow(cons, prod); // Linux copies Q_OVF(prod) into cons
        assertThat(cons).isEqualTo(0x8000_0005);
        assertThat(QueuePointer.overflowActive(prod, cons)).isFalse();
        prod = QueuePointer.toggleOverflow(prod);
        assertThat(QueuePointer.overflowActive(prod, cons)).isTrue();
    }

    @Test
    void entrySizesAndOffsets() {
        assertThat(QueuePointer.CMDQ_ENTRY_SIZE).isEqualTo(Command.SIZE).isEqualTo(16);
        assertThat(QueuePointer.EVENTQ_ENTRY_SIZE).isEqualTo(EventRecord.SIZE).isEqualTo(32);
        assertThat(QueuePointer.PRIQ_ENTRY_SIZE).isEqualTo(16);
        // index 3 of an 8-entry event queue, wrap set: 3 * 32
        assertThat(QueuePointer.entryOffset(0b1011, 3, QueuePointer.EVENTQ_ENTRY_SIZE)).isEqualTo(96);
        assertThat(QueuePointer.entries(19)).isEqualTo(1L << 19);
    }

    @Test
    void queueBaseRegister() {
        // RA bit 62 | ADDR [51:5] | LOG2SIZE [4:0]
        long reg = 1L << 62 | 0x8_0000_0020L | 8;
        QueueBase b = QueueBase.decode(reg);
        assertThat(b).isEqualTo(new QueueBase(0x8_0000_0020L, 8, true));
        assertThat(b.encode()).isEqualTo(reg);
        // Bit 5 is part of ADDR ([51:5] as Linux; QEMU masks [51:6], §9.3); bits 52..61 and 63 are not.
        assertThat(QueueBase.address(0xFFF0_0000_0000_003FL)).isEqualTo(0x20L);
        assertThat(QueueBase.log2Size(0x3F)).isEqualTo(31);
        assertThat(QueueBase.allocateHint(reg)).isTrue();
        assertThat(QueueBase.effectiveLog2Size(reg | 0x1F, 19)).isEqualTo(19);
        assertThat(QueueBase.effectiveLog2Size(reg, 19)).isEqualTo(8);
        assertThat(QueueBase.entryAddress(reg, 8, 0x105, QueuePointer.CMDQ_ENTRY_SIZE))
                .isEqualTo(0x8_0000_0020L + 5 * 16);
        assertThatThrownBy(() -> new QueueBase(0x10, 4, false)).hasMessageContaining("ADDR");
        assertThatThrownBy(() -> new QueueBase(0, 32, false)).hasMessageContaining("LOG2SIZE");
    }
}
