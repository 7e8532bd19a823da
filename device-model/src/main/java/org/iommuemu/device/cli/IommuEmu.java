package org.iommuemu.device.cli;

import org.iommuemu.device.BuildInfo;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;

/** The {@code iommu-emu} command line. */
@Command(
        name = "iommu-emu",
        mixinStandardHelpOptions = true,
        versionProvider = IommuEmu.Version.class,
        subcommands = {ServeCommand.class, DemoCommand.class, RunCommand.class, CampaignCommand.class,
            CampaignMergeCommand.class, CommandLine.HelpCommand.class},
        description = {
            "An emulator of SMMUv3 and VT-d IOMMUs behind a gRPC bus: run DMA scenarios end to end,",
            "plug in device models over gRPC, inject faults.",
            ""
        },
        footer = {"", "Run 'iommu-emu help COMMAND' for the options of a command."})
public final class IommuEmu implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = {"-v", "--verbose"}, scope = ScopeType.INHERIT,
            description = "Log debug detail to standard error (default: warnings and errors only).")
    void verbose(boolean value) {
        Verbosity.apply(value);
    }

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "Missing command: use 'serve', 'demo', 'run' or 'campaign'.");
    }

    public static void main(String[] args) {
        Verbosity.apply(false);
        System.exit(commandLine().execute(args));
    }

    /** The configured command line (tests run it without exiting). */
    public static CommandLine commandLine() {
        return new CommandLine(new IommuEmu())
                .setCaseInsensitiveEnumValuesAllowed(true)
                .setExecutionExceptionHandler((e, cmd, parsed) -> {
                    cmd.getErr().println("iommu-emu: " + e.getMessage());
                    if (!(e instanceof UserError)) {
                        e.printStackTrace(cmd.getErr());
                    }
                    return 2;
                });
    }

    /** A problem the user can fix (bad flag value, bad file, port in use): printed without a stack trace. */
    static final class UserError extends RuntimeException {
        UserError(String message) {
            super(message);
        }
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"iommu-emu " + BuildInfo.version() + " (bus API v1, Java "
                    + Runtime.version() + ")"};
        }
    }
}
