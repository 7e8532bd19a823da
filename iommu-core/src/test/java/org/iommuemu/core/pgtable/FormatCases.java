package org.iommuemu.core.pgtable;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.iommuemu.core.pgtable.fmt.AmdV1;
import org.iommuemu.core.pgtable.fmt.Arm64Lpae;
import org.iommuemu.core.pgtable.fmt.Armv7s;
import org.iommuemu.core.pgtable.fmt.VtdSs;
import org.iommuemu.core.pgtable.fmt.X86Pt;
import org.junit.jupiter.api.Named;

/** Every format configuration the conformance suite runs: each format × granule × widths × stage × levels. */
final class FormatCases {
    private FormatCases() {}

    static List<PtFormat> all() {
        List<PtFormat> f = new ArrayList<>();
        // arm64 LPAE: stage 1 and 2, every granule, several input/output widths, contiguous hint, HD
        f.add(Arm64Lpae.stage1(12, 48, 48));
        f.add(Arm64Lpae.stage1(12, 39, 40).withContiguous(true));
        f.add(Arm64Lpae.stage1(12, 32, 32));
        f.add(Arm64Lpae.stage1(14, 47, 48).withContiguous(true));
        f.add(Arm64Lpae.stage1(16, 48, 52));
        f.add(Arm64Lpae.stage1(16, 42, 48).withContiguous(true).withHd(true));
        f.add(Arm64Lpae.stage2(12, 48, 48));
        f.add(Arm64Lpae.stage2(12, 40, 44)); // concatenated: L1 x 2
        f.add(Arm64Lpae.stage2(12, 42, 48).withContiguous(true)); // concatenated: L1 x 8
        f.add(Arm64Lpae.stage2(14, 48, 48)); // concatenated: L1 x 2 (mandatory for 16K)
        f.add(Arm64Lpae.stage2(16, 48, 52).withHd(true));
        // armv7s: 32-bit and 40-bit output (supersections only reach past 4 GiB)
        f.add(Armv7s.create());
        f.add(Armv7s.create(40));
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
