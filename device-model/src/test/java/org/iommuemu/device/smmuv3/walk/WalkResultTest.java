package org.iommuemu.device.smmuv3.walk;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.FETCH_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.FETCH_USER;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.HAND;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.READ_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.READ_USER;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.WRITE_PRIV;
import static org.iommuemu.device.smmuv3.walk.WalkFixture.WRITE_USER;

import org.iommuemu.device.machine.Access;
import org.iommuemu.device.machine.FaultType;
import org.iommuemu.device.smmuv3.walk.Stage1Context.TableHalf;
import org.iommuemu.device.smmuv3.walk.WalkResult.Fault;
import org.iommuemu.device.smmuv3.walk.WalkResult.Outcome;
import org.junit.jupiter.api.Test;

/** The result holder: one instance reused across walks of every outcome never shows stale answers. */
class WalkResultTest {
    final WalkFixture f = new WalkFixture();

    @Test
    void faultsMapToEventTypesAndMachineFaultKinds() {
        assertThat(Fault.TRANSLATION.eventType()).isEqualTo(0x10);
        assertThat(Fault.ADDR_SIZE.eventType()).isEqualTo(0x11);
        assertThat(Fault.ACCESS.eventType()).isEqualTo(0x12);
        assertThat(Fault.PERMISSION.eventType()).isEqualTo(0x13);
        assertThat(Fault.WALK_EABT.eventType()).isEqualTo(0x0B);
        assertThat(Fault.ACCESS.faultType()).isEqualTo(FaultType.ACCESS_FLAG);
        assertThat(Fault.WALK_EABT.faultType()).isEqualTo(FaultType.EXTERNAL_ABORT);
    }

    @Test
    void eachAccessNeedsOnePermission() {
        assertThat(WalkResult.requiredPermission(READ_PRIV)).isEqualTo(WalkResult.PRIV_READ);
        assertThat(WalkResult.requiredPermission(WRITE_PRIV)).isEqualTo(WalkResult.PRIV_WRITE);
        assertThat(WalkResult.requiredPermission(FETCH_PRIV)).isEqualTo(WalkResult.PRIV_EXEC);
        assertThat(WalkResult.requiredPermission(READ_USER)).isEqualTo(WalkResult.UNPRIV_READ);
        assertThat(WalkResult.requiredPermission(WRITE_USER)).isEqualTo(WalkResult.UNPRIV_WRITE);
        assertThat(WalkResult.requiredPermission(FETCH_USER)).isEqualTo(WalkResult.UNPRIV_EXEC);
        assertThat(WalkResult.requiredPermission(WRITE_USER | Access.INSTRUCTION)).isEqualTo(WalkResult.UNPRIV_WRITE);
        assertThat(WalkResult.permString(WalkResult.PRIV_READ | WalkResult.UNPRIV_EXEC)).isEqualTo("r--/--x");
    }

    @Test
    void aReusedHolderShowsOnlyTheLatestWalk() {
        long l0 = HAND;
        long va = 0x4000_0000L;
        f.put(l0, Desc.table(l0 + 0x1000));
        f.put(l0 + 0x1000 + 8, Desc.block(0x4000_0000L, Desc.AF | Desc.NG));
        Stage1Context s1 = Stage1Context.builder().ttb0(TableHalf.of(16, 12, l0)).asid(4).build();
        long s2ttb = HAND + 0x10000;
        f.put(s2ttb + 8, Desc.block(0x4000_0000L, Desc.S2_NORMAL | Desc.S2AP_R));
        Stage2Context s2 = Stage2Context.builder().granuleLg2(12).t0sz(32).sl0(1).ttb(s2ttb).vmid(6).build();
        WalkResult out = f.out;

        f.walker.translateStage1(s1, va, READ_PRIV, out);
        assertThat(out.isOk()).isTrue();
        assertThat(out.global()).isFalse();
        assertThat(out.asid()).isEqualTo(4);
        assertThat(out.s1Level()).isEqualTo(1);

        f.walker.translateStage1(s1, va, WRITE_USER, out);
        assertThat(out.outcome()).isEqualTo(Outcome.FAULT);
        assertThat(out.fault()).isEqualTo(Fault.PERMISSION);
        assertThat(out.stages()).isZero();
        assertThat(out.s1Level()).isEqualTo(-1);
        assertThat(out.badConfigReason()).isNull();
        assertThat(out.fetchAddress()).isZero();

        f.walker.translateStage2(s2, va, READ_PRIV, out);
        assertThat(out.isOk()).as("%s", out).isTrue();
        assertThat(out.fault()).isNull();
        assertThat(out.stages()).isEqualTo(WalkResult.STAGE_2);
        assertThat(out.s1Level()).isEqualTo(-1);
        assertThat(out.s1Descriptor()).isZero();
        assertThat(out.asid()).isEqualTo(-1);
        assertThat(out.global()).isTrue();
        assertThat(out.vmid()).isEqualTo(6);
        assertThat(out.level()).isEqualTo(1);
        assertThat(out.s2Level()).isEqualTo(1);

        f.walker.translateStage1(s1, va, READ_PRIV, out);
        assertThat(out.s2Level()).isEqualTo(-1);
        assertThat(out.vmid()).isEqualTo(-1);
        assertThat(out.s2MemAttr()).isZero();

        f.walker.translateStage2(s2.toBuilder().sl0(3).build(), va, READ_PRIV, out);
        assertThat(out.outcome()).isEqualTo(Outcome.BAD_CONFIG);
        assertThat(out.fault()).isNull();
        assertThat(out.badConfigStage()).isEqualTo(2);
        assertThat(out.toString()).startsWith("BAD_CONFIG C_BAD_STE");

        f.walker.translateStage1(s1, va, READ_PRIV, out);
        assertThat(out.badConfigStage()).isZero();
        assertThat(out.badConfigReason()).isNull();
        assertThat(out.toString()).startsWith("OK ");
    }
}
