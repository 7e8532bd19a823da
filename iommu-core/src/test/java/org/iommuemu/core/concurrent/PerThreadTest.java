package org.iommuemu.core.concurrent;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.ref.WeakReference;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class PerThreadTest {

    /** Collects garbage until the reference is cleared or a generous number of tries has passed. */
    static boolean collected(WeakReference<?> ref) throws InterruptedException {
        for (int i = 0; i < 50 && ref.get() != null; i++) {
            System.gc();
            Thread.sleep(10);
        }
        return ref.get() == null;
    }

    @Test
    void eachThreadHasItsOwnValueAndTheOwnerSeesThemAll() throws Exception {
        AtomicInteger made = new AtomicInteger();
        PerThread<int[]> p = new PerThread<>(() -> new int[] {made.incrementAndGet()});
        int[] mine = p.get();
        assertThat(p.get()).as("the same value on the same thread").isSameAs(mine);
        ExecutorService other = Executors.newSingleThreadExecutor();
        try {
            int[] theirs = other.submit(p::get).get();
            assertThat(theirs).isNotSameAs(mine);
            assertThat(other.submit(p::get).get()).isSameAs(theirs);
            assertThat(p.values()).containsExactlyInAnyOrder(mine, theirs);
            assertThat(made.get()).isEqualTo(2);
        } finally {
            other.shutdownNow();
        }
    }

    @Test
    void removeDropsOnlyTheCallingThreadsValue() throws Exception {
        PerThread<Object> p = new PerThread<>(Object::new);
        ExecutorService other = Executors.newSingleThreadExecutor();
        try {
            Object theirs = other.submit(p::get).get();
            Object mine = p.get();
            p.remove();
            Object next = p.get();
            assertThat(next).as("a fresh value after remove").isNotSameAs(mine);
            assertThat(p.values()).containsExactlyInAnyOrder(theirs, next);
            assertThat(other.submit(p::get).get()).isSameAs(theirs);
        } finally {
            other.shutdownNow();
        }
    }

    /** An owner whose per-thread values point back at it, as an inner class's instances do. */
    private static final class Owner {
        final PerThread<Inner> perThread = new PerThread<>(Inner::new);
        final ThreadLocal<Inner> plain = ThreadLocal.withInitial(Inner::new);

        private final class Inner {
            final byte[] payload = new byte[1024];

            Owner owner() {
                return Owner.this;
            }
        }
    }

    @Test
    void anOwnerGoesAwayWhileTheThreadThatUsedItLivesOn() throws Exception {
        Owner owner = new Owner();
        assertThat(owner.perThread.get().owner()).isSameAs(owner);
        WeakReference<Owner> ref = new WeakReference<>(owner);
        owner = null;
        assertThat(collected(ref)).as("the owner was collected although this thread still runs").isTrue();
    }

    @Test
    void aPlainThreadLocalWithSuchValuesKeepsItsOwnerForever() throws Exception {
        // why PerThread exists: the thread's map holds the value, the value holds the owner, the owner the key
        Owner owner = new Owner();
        assertThat(owner.plain.get().owner()).isSameAs(owner);
        WeakReference<Owner> ref = new WeakReference<>(owner);
        owner = null;
        assertThat(collected(ref)).as("kept by this thread's ThreadLocal map").isFalse();
        ref.get().plain.remove();
        assertThat(collected(ref)).as("until the thread removes the value itself").isTrue();
    }
}
