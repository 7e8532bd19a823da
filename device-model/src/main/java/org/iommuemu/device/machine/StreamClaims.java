package org.iommuemu.device.machine;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Which DMA master holds which stream id on which IOMMU instance. As PCIe hardware gives each function
 * its own requester id, one stream id belongs to at most one live master at a time.
 */
public final class StreamClaims {
    private final Map<String, Map<Integer, Object>> byIommu = new ConcurrentHashMap<>();

    /** Claims {@code streamId} on {@code iommu} for {@code owner}; false when someone else holds it. */
    public boolean claim(String iommu, int streamId, Object owner) {
        return byIommu.computeIfAbsent(iommu, k -> new ConcurrentHashMap<>()).putIfAbsent(streamId, owner) == null;
    }

    /** Releases the claim if {@code owner} holds it; returns whether it did. */
    public boolean release(String iommu, int streamId, Object owner) {
        Map<Integer, Object> m = byIommu.get(iommu);
        return m != null && m.remove(streamId, owner);
    }

    /** The current holder, or null. */
    public Object holder(String iommu, int streamId) {
        Map<Integer, Object> m = byIommu.get(iommu);
        return m == null ? null : m.get(streamId);
    }

    /** Number of stream ids held on all instances. */
    public int size() {
        int n = 0;
        for (Map<Integer, Object> m : byIommu.values()) {
            n += m.size();
        }
        return n;
    }
}
