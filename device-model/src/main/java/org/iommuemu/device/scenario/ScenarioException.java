package org.iommuemu.device.scenario;

/** A scenario file that cannot be run: its message names the file and, where known, the line and the step. */
public final class ScenarioException extends RuntimeException {
    public ScenarioException(String message) {
        super(message);
    }

    public ScenarioException(String message, Throwable cause) {
        super(message, cause);
    }
}
