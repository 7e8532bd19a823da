package org.iommuemu.core.pgtable.fmt;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.iommuemu.core.pgtable.PtFormat;
import org.junit.jupiter.api.Test;

class FormatsTest {
    @Test
    void everyNameGivesItsFormat() {
        for (String name : Formats.names()) {
            PtFormat f = Formats.byName(name);
            assertThat(f.pageSizes()).as(name).isNotZero();
        }
        assertThat(Formats.byName("vtd-ss")).isInstanceOf(VtdSs.class);
        assertThat(Formats.byName("arm64-lpae-s2-16k").name()).contains("s2", "16K");
    }

    @Test
    void anUnknownNameListsTheKnownOnes() {
        assertThatThrownBy(() -> Formats.byName("riscv-sv39")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("unknown page-table format 'riscv-sv39'").hasMessageContaining("amdv1");
    }
}
