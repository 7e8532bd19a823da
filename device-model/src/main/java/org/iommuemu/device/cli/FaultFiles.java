package org.iommuemu.device.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.iommuemu.device.config.ConfigException;
import org.iommuemu.device.config.YamlFiles;
import org.iommuemu.device.inject.FaultSpec;

/** The {@code --inject FILE} option of {@code run} and {@code serve}: one fault specification per YAML file. */
final class FaultFiles {
    private FaultFiles() {}

    /**
     * Reads and validates each file's {@link FaultSpec} (the shape an {@code inject} step and the
     * {@code FaultInjection} service take), which must name its instance ({@code target.iommu}).
     *
     * @throws IommuEmu.UserError naming the file (and line and column) of the first bad one
     */
    static List<FaultSpec> read(List<Path> files) {
        List<FaultSpec> faults = new ArrayList<>();
        for (Path f : files) {
            try {
                FaultSpec spec = YamlFiles.read(f, FaultSpec.class).validate();
                if (spec.target().iommu().isEmpty()) {
                    throw new IommuEmu.UserError("--inject " + f + ": target.iommu is required");
                }
                faults.add(spec);
            } catch (ConfigException e) {
                throw new IommuEmu.UserError("--inject " + e.getMessage());
            } catch (IllegalArgumentException e) {
                throw new IommuEmu.UserError("--inject " + f + ": " + e.getMessage());
            }
        }
        return faults;
    }
}
