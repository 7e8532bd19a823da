package org.iommuemu.device.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import picocli.CommandLine;

/** For tests of the command line: runs {@code iommu-emu} in this JVM and keeps what the last run printed. */
public final class CliRun {
    private volatile StringWriter out = new StringWriter();
    private volatile StringWriter err = new StringWriter();

    /** Runs {@code iommu-emu args...} and returns its exit status; {@link #out} and {@link #err} start afresh. */
    public int run(String... args) {
        out = new StringWriter();
        err = new StringWriter();
        CommandLine cmd = IommuEmu.commandLine();
        cmd.setOut(new PrintWriter(out, true));
        cmd.setErr(new PrintWriter(err, true));
        return cmd.execute(args);
    }

    /** What the last run printed on standard output. */
    public String out() {
        return out.toString();
    }

    /** What the last run printed on standard error. */
    public String err() {
        return err.toString();
    }
}
