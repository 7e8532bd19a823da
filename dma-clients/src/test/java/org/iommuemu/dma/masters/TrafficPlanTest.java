package org.iommuemu.dma.masters;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.iommuemu.dma.masters.TrafficSpec.Pattern;
import org.junit.jupiter.api.Test;

class TrafficPlanTest {
    private static final long BASE = 0x8000_0000L;

    private static List<Long> addresses(TrafficSpec spec) {
        TrafficPlan p = new TrafficPlan(spec);
        List<Long> out = new ArrayList<>();
        while (p.next()) {
            out.add(p.iova());
        }
        return out;
    }

    private static List<String> requests(TrafficSpec spec) {
        TrafficPlan p = new TrafficPlan(spec);
        List<String> out = new ArrayList<>();
        while (p.next()) {
            out.add((p.read() ? "R" : "W") + Long.toHexString(p.iova()));
        }
        return out;
    }

    @Test
    void sequentialWrapsAtTheEndOfTheRange() {
        TrafficSpec s = TrafficSpec.builder().range(BASE, 3 * 4096 + 100).requestSize(4096).ops(5).build();
        assertThat(addresses(s)).containsExactly(BASE, BASE + 4096, BASE + 8192, BASE, BASE + 4096);
    }

    @Test
    void stridedKeepsEveryRequestInsideTheRange() {
        TrafficSpec s = TrafficSpec.builder().pattern(Pattern.STRIDED).range(BASE, 10_000).requestSize(1000)
                .stride(3000).ops(5).build();
        assertThat(addresses(s)).containsExactly(BASE, BASE + 3000, BASE + 6000, BASE + 9000, BASE);
    }

    @Test
    void randomIsAlignedInsideTheRangeAndDeterministicPerSeed() {
        TrafficSpec s = TrafficSpec.builder().pattern(Pattern.RANDOM).range(BASE, 1 << 20).requestSize(512)
                .readFraction(0.5).seed(42).ops(2000).build();
        List<String> a = requests(s);
        assertThat(a).isEqualTo(requests(s));
        assertThat(a).isNotEqualTo(requests(TrafficSpec.builder().pattern(Pattern.RANDOM).range(BASE, 1 << 20)
                .requestSize(512).readFraction(0.5).seed(43).ops(2000).build()));
        for (long iova : addresses(s)) {
            assertThat(iova - BASE).isBetween(0L, (1L << 20) - 512).matches(o -> o % 512 == 0);
        }
        long reads = a.stream().filter(r -> r.startsWith("R")).count();
        assertThat(reads).as("a 50%% mix over 2000 requests").isBetween(850L, 1150L);
    }

    @Test
    void readFractionZeroAndOneAreExact() {
        TrafficSpec.Builder b = TrafficSpec.builder().pattern(Pattern.RANDOM).range(BASE, 1 << 20).ops(100);
        assertThat(requests(b.readFraction(0).build())).allMatch(r -> r.startsWith("W"));
        assertThat(requests(b.readFraction(1).build())).allMatch(r -> r.startsWith("R"));
    }

    @Test
    void hotSetConcentratesRequestsOnItsPages() {
        TrafficSpec s = TrafficSpec.builder().pattern(Pattern.HOT_SET).range(BASE, 64L << 20).requestSize(1024)
                .pageSize(4096).hotSet(4, 0.9).seed(7).ops(4000).build();
        long[] hot = new TrafficPlan(s).hotPages();
        Set<Long> hotPages = new HashSet<>();
        for (long h : hot) {
            hotPages.add(BASE + h);
        }
        assertThat(hotPages).hasSize(4);
        long hits = addresses(s).stream().filter(a -> hotPages.contains(a & ~4095L)).count();
        assertThat(hits).as("about 90%% of 4000 requests (plus random ones that land there by chance)")
                .isBetween(3400L, 3800L);
    }

    @Test
    void byteBoundDoesNotShortenTheLastRequest() {
        TrafficSpec s = TrafficSpec.builder().range(BASE, 1 << 20).requestSize(4096).bytes(10_000).build();
        assertThat(addresses(s)).hasSize(3);
    }

    @Test
    void badSpecsNameTheParameter() {
        assertThatThrownBy(() -> TrafficSpec.builder().requestSize(0).build())
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("requestSize 0");
        assertThatThrownBy(() -> TrafficSpec.builder().range(0, 100).build()).hasMessageContaining("range 100");
        assertThatThrownBy(() -> TrafficSpec.builder().readFraction(1.5).build())
                .hasMessageContaining("readFraction 1.5 is outside [0, 1]");
        assertThatThrownBy(() -> TrafficSpec.builder().readFraction(Double.NaN).build())
                .hasMessageContaining("readFraction NaN");
        assertThatThrownBy(() -> TrafficSpec.builder().window(0).build()).hasMessageContaining("window 0");
        assertThatThrownBy(() -> TrafficSpec.builder().ops(0).build()).hasMessageContaining("set at least one bound");
        assertThatThrownBy(() -> TrafficSpec.builder().pattern(Pattern.HOT_SET).range(0, 8192).hotSet(3, 0.5).build())
                .hasMessageContaining("hotPages 3 is outside [1, 2]");
        assertThatThrownBy(() -> TrafficSpec.builder().range(-4096, 8192).build())
                .hasMessageContaining("wraps past the top");
        assertThatThrownBy(() -> TrafficSpec.builder().pageSize(3000).build()).hasMessageContaining("pageSize 3000");
    }
}
