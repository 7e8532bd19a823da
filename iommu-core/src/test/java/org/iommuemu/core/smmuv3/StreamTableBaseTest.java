package org.iommuemu.core.smmuv3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** StreamTableBase against spec SMMUV3.md §1 and §5: STRTAB_BASE / STRTAB_BASE_CFG fields and indexing. */
class StreamTableBaseTest {

    @Test
    void baseRegister() {
        // RA bit 62 | ADDR [51:6]
        long base = StreamTableBase.encodeBase(0x8010_0000L, true);
        assertThat(base).isEqualTo(0x4000_0000_8010_0000L);
        assertThat(StreamTableBase.address(base)).isEqualTo(0x8010_0000L);
        assertThat(StreamTableBase.readAllocate(base)).isTrue();
        assertThat(StreamTableBase.address(0xFFFF_FFFF_FFFF_FFFFL)).isEqualTo(0x000F_FFFF_FFFF_FFC0L);
        assertThatThrownBy(() -> StreamTableBase.encodeBase(0x8010_0020L, false)).hasMessageContaining("ADDR");
    }

    @Test
    void cfgRegisterAsLinuxWritesIt() {
        // 2-level, SPLIT 8, 16 SID bits: LOG2SIZE [5:0] | SPLIT [10:6] | FMT [17:16]
        int cfg = StreamTableBase.encodeCfg(16, StreamTableBase.LINUX_SPLIT, StreamTableBase.FMT_2LVL);
        assertThat(cfg).isEqualTo(0x1_0210);
        assertThat(StreamTableBase.log2Size(cfg)).isEqualTo(16);
        assertThat(StreamTableBase.split(cfg)).isEqualTo(8);
        assertThat(StreamTableBase.fmt(cfg)).isEqualTo(StreamTableBase.FMT_2LVL);
        int linear = StreamTableBase.encodeCfg(5, 0, StreamTableBase.FMT_LINEAR);
        assertThat(linear).isEqualTo(5);
        assertThat(StreamTableBase.fmt(0xFFFF_FFFF)).isEqualTo(3);
        assertThat(StreamTableBase.split(0xFFFF_FFFF)).isEqualTo(31);
        assertThat(StreamTableBase.log2Size(0xFFFF_FFFF)).isEqualTo(63);
        assertThatThrownBy(() -> StreamTableBase.encodeCfg(64, 0, 0)).hasMessageContaining("LOG2SIZE");
    }

    @Test
    void streamIdRangeAndIndexing() {
        assertThat(StreamTableBase.inRange(255, 8, 16)).isTrue();
        assertThat(StreamTableBase.inRange(256, 8, 16)).isFalse();
        assertThat(StreamTableBase.inRange(256, 16, 8)).as("SIDSIZE caps LOG2SIZE").isFalse();
        assertThat(StreamTableBase.inRange(0xFFFF_FFFF, 32, 32)).isTrue();
        assertThat(StreamTableBase.inRange(0xFFFF_FFFF, 40, 32)).isTrue();
        assertThat(StreamTableBase.linearSteAddress(0x1000, 3)).isEqualTo(0x1000 + 3 * 64);
        assertThat(StreamTableBase.l1Index(0x1234, 8)).isEqualTo(0x12);
        assertThat(StreamTableBase.l2Index(0x1234, 8)).isEqualTo(0x34);
        assertThat(StreamTableBase.l1DescriptorAddress(0x2000, 0x1234, 8)).isEqualTo(0x2000 + 0x12 * 8);
        assertThat(StreamTableBase.l1Index(0xFFFF_FFFF, 8)).isEqualTo(0xFF_FFFFL);
    }
}
