package org.iommuemu.core.driver.vtd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.core.vtd.VtdRegs.*;

import org.junit.jupiter.api.Test;

class VtdFeaturesTest {
    @Test
    void decodesCapAndEcap() {
        VtdFeatures f = VtdFeatures.fromRegisters(0x10, FakeVtd.DEFAULT_CAP | 1L << CAP_CM, FakeVtd.DEFAULT_ECAP);
        assertThat(f.versionMajor()).isEqualTo(1);
        assertThat(f.domainIdBits()).isEqualTo(16);
        assertThat(f.cm()).isTrue();
        assertThat(f.secondStageLevels(3)).isTrue();
        assertThat(f.secondStageLevels(4)).isTrue();
        assertThat(f.secondStageLevels(5)).isFalse();
        assertThat(f.maxSecondStageLevels()).isEqualTo(4);
        assertThat(f.mgawBits()).isEqualTo(48);
        assertThat(f.faultRecordOffset()).isEqualTo(0x220);
        assertThat(f.faultRecords()).isEqualTo(4);
        assertThat(f.iotlbRegOffset()).isEqualTo(0xF0);
        assertThat(f.mamv()).isEqualTo(18);
        assertThat(f.psi()).isTrue();
        assertThat(f.pasidBits()).isEqualTo(20);
        assertThat(f.smts() && f.slts() && f.flts() && f.qi()).isTrue();
        assertThat(f.secondStagePageSizes()).isEqualTo(1L << 12 | 1L << 21 | 1L << 30);
        assertThat(f.firstStagePageSizes()).isEqualTo(1L << 12 | 1L << 21 | 1L << 30);
        assertThat(f.refusal(true)).isNull();
        assertThat(f.names()).contains("CM", "QI", "SMTS", "PASID20", "SAGAW39", "SAGAW48");
    }

    @Test
    void domainIdsFromNd() {
        assertThat(VtdFeatures.fromRegisters(0x10, 0, 0).domainIds()).isEqualTo(16);
        assertThat(VtdFeatures.fromRegisters(0x10, 2, 0).domainIds()).isEqualTo(256);
    }

    @Test
    void refusesWithEveryReason() {
        VtdFeatures noQi = VtdFeatures.fromRegisters(0x10, FakeVtd.DEFAULT_CAP, FakeVtd.DEFAULT_ECAP & ~(1L << ECAP_QI));
        assertThat(noQi.refusal(true)).contains("ECAP.QI=0").contains("register-based");
        VtdFeatures ones = VtdFeatures.fromRegisters(0x10, -1L, -1L);
        assertThat(ones.refusal(true)).contains("all ones");
        long noSagaw = FakeVtd.DEFAULT_CAP & ~(0x1FL << CAP_SAGAW) | 1L << CAP_SAGAW; // 2-level only
        VtdFeatures legacyOnly = VtdFeatures.fromRegisters(0x10, noSagaw, 1L << ECAP_QI);
        assertThat(legacyOnly.refusal(true)).contains("SAGAW=0x1");
        // scalable mode with first-stage translation needs no SAGAW
        VtdFeatures fsOnly = VtdFeatures.fromRegisters(0x10, noSagaw,
                1L << ECAP_QI | 1L << ECAP_SMTS | 1L << ECAP_FLTS);
        assertThat(fsOnly.refusal(true)).isNull();
        assertThat(fsOnly.refusal(false)).contains("SAGAW");
    }
}
