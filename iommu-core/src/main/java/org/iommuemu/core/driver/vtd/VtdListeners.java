package org.iommuemu.core.driver.vtd;

import java.lang.System.Logger.Level;
import java.util.concurrent.CopyOnWriteArrayList;

/** The registered {@link VtdListener}s; a listener that throws is logged and the others still run. */
final class VtdListeners {
    private static final System.Logger log = System.getLogger(VtdListeners.class.getName());

    private final CopyOnWriteArrayList<VtdListener> listeners = new CopyOnWriteArrayList<>();

    AutoCloseable add(VtdListener listener) {
        listeners.add(listener);
        return () -> listeners.remove(listener);
    }

    void fault(VtdFault fault) {
        for (VtdListener l : listeners) {
            try {
                l.onFault(fault);
            } catch (RuntimeException e) {
                failed(e);
            }
        }
    }

    void faultOverflow() {
        for (VtdListener l : listeners) {
            try {
                l.onFaultOverflow();
            } catch (RuntimeException e) {
                failed(e);
            }
        }
    }

    void queueError(VtdListener.QueueError error, int index, long qw0, long qw1, long iqercd) {
        for (VtdListener l : listeners) {
            try {
                l.onQueueError(error, index, qw0, qw1, iqercd);
            } catch (RuntimeException e) {
                failed(e);
            }
        }
    }

    void invalidationAbandoned(int sourceId, int attempts) {
        for (VtdListener l : listeners) {
            try {
                l.onInvalidationAbandoned(sourceId, attempts);
            } catch (RuntimeException e) {
                failed(e);
            }
        }
    }

    private static void failed(RuntimeException e) {
        log.log(Level.WARNING, "VT-d listener failed", e);
    }
}
