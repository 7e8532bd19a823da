package org.iommuemu.dma;

import org.iommuemu.proto.v1.AccessAttributes;

/**
 * Per-access options: a substream id (PASID) and access attributes.
 *
 * @param substreamId substream id / PASID, or -1 for none
 * @param privileged privileged access (SMMUv3 PnU=0)
 * @param instruction instruction fetch (SMMUv3 InD=1)
 */
public record DmaOptions(int substreamId, boolean privileged, boolean instruction) {
    /** No substream id, unprivileged data access. */
    public static final DmaOptions DEFAULT = new DmaOptions(-1, false, false);

    public DmaOptions withSubstream(int ssid) {
        if (ssid < 0) {
            throw new IllegalArgumentException("substream id " + ssid + " is negative");
        }
        return new DmaOptions(ssid, privileged, instruction);
    }

    public DmaOptions withPrivileged(boolean value) {
        return new DmaOptions(substreamId, value, instruction);
    }

    public DmaOptions withInstruction(boolean value) {
        return new DmaOptions(substreamId, privileged, value);
    }

    boolean hasSubstream() {
        return substreamId >= 0;
    }

    AccessAttributes attributes() {
        if (!privileged && !instruction) {
            return AccessAttributes.getDefaultInstance();
        }
        return AccessAttributes.newBuilder().setPrivileged(privileged).setInstruction(instruction).build();
    }
}
