package org.iommuemu.device.inject;

import java.util.LinkedHashMap;
import java.util.Map;
import org.iommuemu.device.xlate.InjectableCache;

/**
 * The cache kinds on one instance: {@link InjectionKind#CACHE_SHRINK} and {@link InjectionKind#CACHE_EVICT_RANDOM}
 * applied to the instance's caches, named as its statistics name them ("iotlb", "config", "walk" on an SMMUv3;
 * "iotlb", "context", "pasid", "walk" on a VT-d unit).
 *
 * <p>Whenever the instance's faults change it sets each cache's limit to the newest active shrink naming it
 * (evicting at once what is beyond; none active: the configured capacity again) and gives a cache a hit-eviction
 * hook only while an eviction fault names it, so a cache without one pays a single volatile read per hit.
 */
public final class CacheFaults {
    private final InstanceFaults faults;
    private final Map<String, InjectableCache> caches;
    private final Map<String, InjectableCache.HitEviction> hooks = new LinkedHashMap<>();

    /** Binds {@code caches} (by name, in the order the statistics list them) to the instance's faults. */
    public CacheFaults(InstanceFaults faults, Map<String, InjectableCache> caches) {
        this.faults = faults;
        this.caches = new LinkedHashMap<>(caches);
        for (String name : this.caches.keySet()) {
            String what = name + " hit for";
            hooks.put(name, key -> faults.firesInCache(InjectionKind.CACHE_EVICT_RANDOM, name, key, what));
        }
        faults.onChange(this::apply);
        apply();
    }

    /**
     * Refuses a cache fault this instance cannot take: an unknown or missing {@code params.cache} (naming the
     * caches there are), a {@code params.capacity} above the cache's configured capacity. Other kinds pass.
     *
     * @throws FaultSpecException naming the field
     */
    public void check(FaultSpec spec) {
        InjectionKind kind = spec.kind();
        if (kind != InjectionKind.CACHE_SHRINK && kind != InjectionKind.CACHE_EVICT_RANDOM) {
            return;
        }
        String name = spec.params().cache();
        InjectableCache c = caches.get(name);
        if (c == null) {
            throw new FaultSpecException("params.cache", (name.isEmpty() ? "is required"
                    : "'" + name + "' is not a cache of " + faults.name()) + " (caches of " + faults.name() + ": "
                    + String.join(", ", caches.keySet()) + ")");
        }
        if (kind == InjectionKind.CACHE_SHRINK && spec.params().capacity() > c.capacity()) {
            throw new FaultSpecException("params.capacity", spec.params().capacity() + " entries is above the "
                    + "configured capacity of " + faults.name() + "'s " + name + " cache (" + c.capacity()
                    + "): a shrink must be 1.." + c.capacity());
        }
    }

    private void apply() {
        for (Map.Entry<String, InjectableCache> e : caches.entrySet()) {
            FaultSpec.Params shrink = faults.active(InjectionKind.CACHE_SHRINK, e.getKey());
            e.getValue().limit(shrink == null ? 0 : shrink.capacity());
            boolean evict = faults.active(InjectionKind.CACHE_EVICT_RANDOM, e.getKey()) != null;
            e.getValue().hitEviction(evict ? hooks.get(e.getKey()) : null);
        }
    }
}
