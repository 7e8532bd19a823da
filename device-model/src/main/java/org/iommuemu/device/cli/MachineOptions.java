package org.iommuemu.device.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.iommuemu.core.bits.Sizes;
import org.iommuemu.core.memory.RamRegion;
import org.iommuemu.core.memory.SparseRam;
import org.iommuemu.device.config.ConfigException;
import org.iommuemu.device.config.ServeConfig;
import org.iommuemu.device.config.YamlFiles;
import org.iommuemu.device.machine.IommuSpec;
import org.iommuemu.device.machine.MachineConfig;
import picocli.CommandLine.Option;

/** The options that describe a machine, shared by the commands that build one. */
final class MachineOptions {
    @Option(names = "--iommu", paramLabel = "NAME=KIND",
            description = {"Add an IOMMU instance; KIND is smmuv3 or vtd. Repeatable.",
                "Default: smmu0=smmuv3 and dmar0=vtd."})
    List<String> iommus = new ArrayList<>();

    @Option(names = "--ram", paramLabel = "SIZE[@BASE]",
            description = {"Add a RAM region, e.g. 4GiB@0x80000000 or 512M@0. Repeatable.",
                "Default: 4GiB at 0x8000_0000. BASE defaults to 0x8000_0000."})
    List<String> ram = new ArrayList<>();

    @Option(names = "--config", paramLabel = "FILE",
            description = "Read settings from a YAML file (see README); flags override it.")
    Path config;

    @Option(names = "--max-dma-length", paramLabel = "SIZE",
            description = "Largest single DMA the bus accepts (default 1MiB).")
    String maxDmaLength;

    @Option(names = "--max-ram", paramLabel = "SIZE",
            description = "Most guest RAM the machine may be configured with, all regions together (default 64GiB).")
    String maxRam;

    ServeConfig file;

    /** The configuration file, read once (null when none was given). */
    ServeConfig file() {
        if (file == null && config != null) {
            try {
                file = YamlFiles.read(config, ServeConfig.class);
            } catch (ConfigException e) {
                throw new IommuEmu.UserError(e.getMessage());
            }
        }
        return file;
    }

    MachineConfig machine() {
        try {
            MachineConfig c = MachineConfig.defaults();
            if (file() != null) {
                c = file().apply(c);
            }
            if (!ram.isEmpty()) {
                List<RamRegion> regions = new ArrayList<>();
                for (String r : ram) {
                    regions.add(parseRam(r));
                }
                c = c.withRam(regions);
            }
            if (!iommus.isEmpty()) {
                List<IommuSpec> specs = new ArrayList<>();
                for (String i : iommus) {
                    specs.add(IommuSpec.parse(i));
                }
                c = c.withIommus(specs);
            }
            if (maxDmaLength != null) {
                c = c.withLimits(c.limits().withMaxDmaLength(Sizes.parse(maxDmaLength)));
            }
            if (maxRam != null) {
                c = c.withLimits(c.limits().withMaxRamBytes(Sizes.parse(maxRam)));
            }
            return c.checkRam();
        } catch (IllegalArgumentException | ConfigException e) {
            throw new IommuEmu.UserError(e.getMessage());
        }
    }

    static RamRegion parseRam(String text) {
        int at = text.indexOf('@');
        long size = Sizes.parse(at < 0 ? text : text.substring(0, at));
        long base = at < 0 ? SparseRam.DEFAULT_RAM_BASE : Sizes.parse(text.substring(at + 1));
        return new RamRegion(base, size);
    }
}
