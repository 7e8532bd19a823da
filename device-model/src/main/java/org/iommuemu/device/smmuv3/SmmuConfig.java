package org.iommuemu.device.smmuv3;

import org.iommuemu.core.smmuv3.Cd;
import org.iommuemu.core.smmuv3.Ste;
import org.iommuemu.device.smmuv3.walk.Stage1Context;
import org.iommuemu.device.smmuv3.walk.Stage2Context;

/**
 * Decoded configuration: a stream's STE, or one substream's CD, as the configuration cache holds them until a
 * CFGI_* command removes them; or the configuration error a fetch found. Errors are not cached (the SMMU
 * caches valid structures only): a bad STE is read and reported again on every access until software fixes it.
 */
sealed interface SmmuConfig {

    /**
     * A stream's configuration from its STE.
     *
     * @param ste the decoded STE
     * @param stage2 the stage-2 context when STE.Config enables stage 2, else null
     * @param vmid the VMID that tags this stream's TLB entries (STE.S2VMID when stage 2 is implemented, else 0)
     */
    record Stream(Ste ste, Stage2Context stage2, int vmid) implements SmmuConfig {}

    /**
     * A substream's configuration from its CD.
     *
     * @param cd the decoded CD
     * @param stage1 the stage-1 context
     */
    record Context(Cd cd, Stage1Context stage1) implements SmmuConfig {}

    /**
     * A configuration error, cached as the event it raises.
     *
     * @param eventType C_BAD_STE, C_BAD_CD, C_BAD_SUBSTREAMID...
     * @param reason why, for messages
     */
    record Bad(int eventType, String reason) implements SmmuConfig {}
}
