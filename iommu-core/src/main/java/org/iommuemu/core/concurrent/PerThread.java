package org.iommuemu.core.concurrent;

import java.lang.ref.WeakReference;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Supplier;

/**
 * One value per thread for one owner object (a translator's scratch space and counters, a domain's gathers), like
 * an instance field of type {@code ThreadLocal}, but without its leak.
 *
 * <p>A thread's {@code ThreadLocal} map holds its values strongly and its keys weakly. When a value reaches its
 * owner (an inner-class instance, a lambda capturing {@code this}), the owner reaches the {@code ThreadLocal} key, so
 * the key is never cleared and the owner lives as long as every thread that ever used it: each machine, device or
 * domain made and dropped on a long-lived thread (a server's worker threads, a campaign's jobs, a fuzzer's loop)
 * stayed in memory. Here the thread map holds only a {@link WeakReference}; the values are held strongly by this
 * object, that is by the owner, and go when the owner goes.
 *
 * <p>{@link #get} allocates only the first time a thread asks. Values made for threads that have ended stay until
 * the owner goes (as with the per-thread counters they carry, which must keep counting).
 *
 * @param <T> the value type
 */
public final class PerThread<T> {
    private final ThreadLocal<WeakReference<T>> local = new ThreadLocal<>();
    private final CopyOnWriteArrayList<T> values = new CopyOnWriteArrayList<>();
    private final Supplier<T> factory;

    /**
     * @param factory makes a thread's value the first time that thread calls {@link #get}
     */
    public PerThread(Supplier<T> factory) {
        this.factory = factory;
    }

    /** The calling thread's value, made on its first call. */
    public T get() {
        WeakReference<T> ref = local.get();
        if (ref != null) {
            T value = ref.get();
            if (value != null) {
                return value;
            }
        }
        T value = factory.get();
        values.add(value);
        local.set(new WeakReference<>(value));
        return value;
    }

    /**
     * Drops the calling thread's value, if it has one; its next {@link #get} makes a new one. For a value that can
     * no longer be trusted (a gather an error left half-synced).
     */
    public void remove() {
        WeakReference<T> ref = local.get();
        if (ref != null) {
            T value = ref.get();
            if (value != null) {
                values.removeIf(v -> v == value);
            }
            local.remove();
        }
    }

    /** Every value made so far, of every thread (a snapshot; iterating it allocates nothing more). */
    public List<T> values() {
        return values;
    }
}
