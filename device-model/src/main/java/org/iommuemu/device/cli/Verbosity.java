package org.iommuemu.device.cli;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import org.slf4j.LoggerFactory;

/** Log levels for the command line: quiet by default (warnings and errors), {@code -v} for debug. */
final class Verbosity {
    private Verbosity() {}

    static void apply(boolean verbose) {
        if (LoggerFactory.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME) instanceof Logger root
                && LoggerFactory.getLogger("org.iommuemu") instanceof Logger ours) {
            root.setLevel(verbose ? Level.INFO : Level.WARN);
            ours.setLevel(verbose ? Level.DEBUG : Level.WARN);
        }
    }
}
