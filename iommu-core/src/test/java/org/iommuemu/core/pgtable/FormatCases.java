package org.iommuemu.core.pgtable;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.iommuemu.core.pgtable.fmt.AmdV1;
import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.core.pgtable.fmt.X86Pt;
import org.junit.jupiter.api.Named;

/** Every format configuration the conformance suite runs: each format × granule × widths × stage × levels. */
final class FormatCases {
    private FormatCases() {}

    static List<PtFormat> all() {
        List<PtFormat> f = new ArrayList<>();
        f.add(VtdSs.levels(3));
        f.add(VtdSs.levels(4));
        f.add(VtdSs.levels(5).withOaBits(52));
        f.add(VtdSs.levels(4).withLargePages(VtdSs.SLLPS_2M).withSnoop(true).withAccessDirty(true));
        f.add(X86Pt.levels(4));
        f.add(X86Pt.levels(5));
        f.add(X86Pt.levels(4).withPages1G(false).withOaBits(46));
        f.add(AmdV1.create());
        f.add(AmdV1.levels(1));
        f.add(AmdV1.levels(4).withOaBits(48));
        return f;
    }

    static Stream<Named<PtFormat>> named() {
        return all().stream().map(fmt -> Named.of(fmt.name(), fmt));
    }
}
