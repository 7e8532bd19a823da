package org.iommuemu.device.machine;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.iommuemu.core.bits.Sizes;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;

/**
 * What a machine is made of: RAM regions, IOMMU instances, bus limits.
 *
 * @param ram RAM regions (non-overlapping)
 * @param iommus IOMMU instances, names unique
 * @param limits bus limits
 */
public record MachineConfig(List<RamRegion> ram, List<IommuSpec> iommus, Limits limits) {
    public MachineConfig {
        ram = List.copyOf(ram);
        iommus = List.copyOf(iommus);
        if (ram.isEmpty()) {
            throw new IllegalArgumentException("a machine needs at least one RAM region");
        }
        Set<String> names = new HashSet<>();
        for (IommuSpec s : iommus) {
            if (!names.add(s.name())) {
                throw new IllegalArgumentException("IOMMU instance name '" + s.name() + "' is used twice");
            }
        }
    }

    /** The embedded default: 4 GiB of RAM at 0x8000_0000, an SMMUv3 "smmu0" and a VT-d "dmar0". */
    public static MachineConfig defaults() {
        return new MachineConfig(
                List.of(new RamRegion(SparseRam.DEFAULT_RAM_BASE, SparseRam.DEFAULT_RAM_SIZE)),
                List.of(new IommuSpec("smmu0", IommuType.SMMUV3), new IommuSpec("dmar0", IommuType.VTD)),
                Limits.DEFAULTS);
    }

    /** All RAM regions together, bytes (saturating at {@code Long.MAX_VALUE}). */
    public long totalRam() {
        long total = 0;
        for (RamRegion r : ram) {
            total = r.size() < 0 || total > Long.MAX_VALUE - r.size() ? Long.MAX_VALUE : total + r.size();
        }
        return total;
    }

    /**
     * Refuses a configuration whose RAM exceeds {@link Limits#maxRamBytes}: checked when a machine is built, not
     * here in the constructor, so RAM and limits can be set in either order.
     *
     * @throws IllegalArgumentException naming the RAM asked for and the limit
     */
    public MachineConfig checkRam() {
        long total = totalRam();
        if (Long.compareUnsigned(total, limits.maxRamBytes()) > 0) {
            throw new IllegalArgumentException("RAM of " + Sizes.format(total) + " (" + ram.size()
                    + " region(s)) exceeds the max RAM of " + Sizes.format(limits.maxRamBytes())
                    + " (limits.max_ram in the config file, --max-ram on the command line)");
        }
        return this;
    }

    public MachineConfig withRam(List<RamRegion> regions) {
        return new MachineConfig(regions, iommus, limits);
    }

    public MachineConfig withIommus(List<IommuSpec> specs) {
        return new MachineConfig(ram, specs, limits);
    }

    public MachineConfig withLimits(Limits newLimits) {
        return new MachineConfig(ram, iommus, newLimits);
    }
}
