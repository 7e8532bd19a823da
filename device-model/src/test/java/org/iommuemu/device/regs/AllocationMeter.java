package org.iommuemu.device.regs;

import java.lang.management.ManagementFactory;

/** Measures the bytes the current thread allocates while running a piece of code (HotSpot's thread MXBean). */
public final class AllocationMeter {
    private AllocationMeter() {}

    /** Runs {@code work} once to warm up (class loading, lazy initialisation), then measures a second run. */
    @SuppressWarnings("deprecation") // Thread.getId: threadId() arrives in Java 19
    public static long bytesAllocated(Runnable work) {
        com.sun.management.ThreadMXBean bean = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long thread = Thread.currentThread().getId();
        work.run();
        long before = bean.getThreadAllocatedBytes(thread);
        work.run();
        return bean.getThreadAllocatedBytes(thread) - before;
    }
}
