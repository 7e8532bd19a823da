package org.iommuemu.device.cli;

import java.io.IOException;
import java.time.Duration;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.iommuemu.device.bus.MetricsServer;
import org.iommuemu.device.machine.Machine;
import picocli.CommandLine.Option;

/**
 * {@code --metrics-port} and {@code --metrics-bind}, shared by {@code serve} and {@code run}: the same flags, the
 * same checks and messages, the same start-up line.
 */
final class MetricsOptions {
    /** The address the metrics endpoint binds to unless {@code --metrics-bind} names another. */
    static final String DEFAULT_BIND = "127.0.0.1";
    /** The longest {@code --metrics-linger}. */
    static final Duration MAX_LINGER = Duration.ofHours(24);

    private static final Pattern DURATION = Pattern.compile("(\\d{1,9})(ms|s|m|h)?");

    @Option(names = "--metrics-port", paramLabel = "PORT",
            description = {"Also serve Prometheus metrics at http://ADDRESS:PORT/metrics",
                "(0: any free port); off by default."})
    Integer port;

    @Option(names = "--metrics-bind", paramLabel = "ADDRESS",
            description = {"The address of --metrics-port: 127.0.0.1 unless given (a",
                "non-loopback address must be named here; --bind does not apply)."})
    String bind;

    /** Whether {@code --metrics-port} was given. */
    boolean requested() {
        return port != null;
    }

    /** Checks the two flags together. */
    void check() {
        if (port != null && (port < 0 || port > 65535)) {
            throw new IommuEmu.UserError("--metrics-port " + port + " is not a TCP port (0 to 65535)");
        }
        if (bind != null && port == null) {
            throw new IommuEmu.UserError("--metrics-bind goes with --metrics-port");
        }
    }

    /** The address the endpoint binds to. */
    String host() {
        return bind != null ? bind : DEFAULT_BIND;
    }

    /**
     * Starts serving {@code machine}'s metrics as the flags say ({@link #requested()} must hold).
     *
     * @throws IommuEmu.UserError naming {@code --metrics-port} when the address cannot be bound
     */
    MetricsServer start(Machine machine) {
        try {
            return MetricsServer.start(machine, host(), port);
        } catch (IOException | RuntimeException e) {
            throw new IommuEmu.UserError("--metrics-port: cannot listen on " + host() + ":" + port + ": "
                    + ServeCommand.rootMessage(e));
        }
    }

    /** The URL a scraper uses for {@code server}. */
    String url(MetricsServer server) {
        String h = host();
        return "http://" + (h.indexOf(':') >= 0 ? "[" + h + "]" : h) + ":" + server.port() + "/metrics";
    }

    /** The line {@code serve} and {@code run} print once the endpoint listens. */
    String startLine(MetricsServer server) {
        return "  metrics: " + url(server) + " (Prometheus text format)";
    }

    /**
     * Parses a {@code --metrics-linger} value: a whole number with an optional unit {@code ms}, {@code s} (the
     * default), {@code m} or {@code h}, at most {@link #MAX_LINGER}.
     *
     * @throws IommuEmu.UserError naming the option for anything else
     */
    static Duration parseLinger(String text) {
        Matcher m = DURATION.matcher(text.trim().toLowerCase(Locale.ROOT));
        if (!m.matches()) {
            throw new IommuEmu.UserError("--metrics-linger must be a duration such as 30s, 5m or 1h (a number alone"
                    + " is seconds), got '" + text + "'");
        }
        long n = Long.parseLong(m.group(1));
        String unit = m.group(2) == null ? "s" : m.group(2);
        Duration d = switch (unit) {
            case "ms" -> Duration.ofMillis(n);
            case "m" -> Duration.ofMinutes(n);
            case "h" -> Duration.ofHours(n);
            default -> Duration.ofSeconds(n);
        };
        if (d.compareTo(MAX_LINGER) > 0) {
            throw new IommuEmu.UserError("--metrics-linger must be at most 24h, got '" + text + "'");
        }
        return d;
    }
}
