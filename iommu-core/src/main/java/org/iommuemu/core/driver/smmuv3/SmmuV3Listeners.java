package org.iommuemu.core.driver.smmuv3;

import java.lang.System.Logger.Level;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommuemu.core.smmuv3.EventRecord;

/** The registered {@link SmmuV3Listener}s; a listener that throws is logged and the others still run. */
final class SmmuV3Listeners {
    private static final System.Logger log = System.getLogger(SmmuV3Listeners.class.getName());

    private final CopyOnWriteArrayList<SmmuV3Listener> listeners = new CopyOnWriteArrayList<>();

    AutoCloseable add(SmmuV3Listener listener) {
        listeners.add(listener);
        return () -> listeners.remove(listener);
    }

    void event(EventRecord event) {
        for (SmmuV3Listener l : listeners) {
            try {
                l.onEvent(event);
            } catch (RuntimeException e) {
                failed(e);
            }
        }
    }

    void eventOverflow() {
        for (SmmuV3Listener l : listeners) {
            try {
                l.onEventOverflow();
            } catch (RuntimeException e) {
                failed(e);
            }
        }
    }

    void globalError(int bit) {
        for (SmmuV3Listener l : listeners) {
            try {
                l.onGlobalError(bit);
            } catch (RuntimeException e) {
                failed(e);
            }
        }
    }

    void commandError(int cerror, int index, long dw0, long dw1) {
        for (SmmuV3Listener l : listeners) {
            try {
                l.onCommandError(cerror, index, dw0, dw1);
            } catch (RuntimeException e) {
                failed(e);
            }
        }
    }

    private static void failed(RuntimeException e) {
        log.log(Level.WARNING, "SMMUv3 listener failed", e);
    }
}
